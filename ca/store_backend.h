/*
 * The store's backend interface: between the backend-neutral front
 * (ca/store.c: argument checks, URI selection, the group commit) and one
 * storage engine (ca/store_sqlite.c, ca/store_pg.c).  Only ca/store*.c
 * include this file; everyone else uses ca/store.h.
 *
 * A backend is a `struct store_ops` table.  Its functions get the handle its
 * open() made, arguments the front has already checked (serials normalised
 * to uppercase hex, revocation reasons valid, records complete), and must be
 * safe to call from several threads on one handle; they report errors as
 * the public store_* functions document (amtca_fail() for the message).
 * All SQL lives in backends.  An op left NULL (one the backend does not
 * have yet) is never called: the front fails with AMTCA_E_STORE ("the
 * postgresql store does not support X yet"); open and close are required.
 */
#ifndef AMTCA_CA_STORE_BACKEND_H
#define AMTCA_CA_STORE_BACKEND_H

#include <stddef.h>
#include <time.h>

#include "ca/store.h"

/* Longest backend message copied into a queued record's result. */
#define STORE_MSG_MAX 200

/* One record of a group commit, with its own outcome. */
struct store_rec {
	const struct store_cert *c;
	const char *actor;		/* the audit entry's actor (never NULL) */
	int result;			/* set by insert_batch */
	char msg[STORE_MSG_MAX];	/* one-line detail when result != 0 */
};

/* Which certificates cert_list returns (all oldest first). */
enum store_cert_filter {
	STORE_CERTS_ALL,		/* with DER */
	STORE_CERTS_FQDN,		/* arg: FQDN, case-insensitive; with DER */
	STORE_CERTS_DEVICE,		/* arg: device, case-insensitive; with DER */
	STORE_CERTS_REVOKED,		/* without DER */
	STORE_CERTS_REVOKED_BY,		/* arg: issuer key id; without DER */
	STORE_CERTS_REVOKED_BY_FIRST,	/* the same, and issuer NULL */
	STORE_CERTS_VALID_BY,		/* not revoked, issuer arg; no DER */
	STORE_CERTS_VALID_BY_FIRST,	/* the same, and issuer NULL */
};

struct store_ops {
	const char *scheme;		/* "sqlite" for "sqlite:PATH" */

	/* Open `location` (the URI after "scheme:"), creating the schema
	 * when `create`; AMTCA_E_NOT_FOUND if absent and !create. */
	int (*open)(const char *location, int create, void **out);
	void (*close)(void *be);	/* NULL is fine */
	/* Remove the database at `location` and its companions; 0 if absent. */
	int (*destroy)(const char *location);
	/* As store_backup(): a consistent copy of the open store into a new
	 * database at `location`; AMTCA_E_EXISTS if something is there, and
	 * nothing left there on failure. */
	int (*backup)(void *be, const char *location);

	/*
	 * Insert recs[0..n) (1 <= n <= AMTCA_STORE_BATCH_MAX) in ONE
	 * transaction and give each its result: 0 means durable once this
	 * returns; AMTCA_E_EXISTS means that serial was already recorded and
	 * only that record was left out; any other failure means nothing of
	 * the batch is durable and no record may report 0.  Called by one
	 * thread at a time per handle (the front's leader).
	 */
	void (*insert_batch)(void *be, struct store_rec **recs, size_t n);

	int (*cert_get)(void *be, const char *serial, struct store_cert **out);
	int (*cert_list)(void *be, enum store_cert_filter f, const char *arg,
	    struct store_cert **out, size_t *n);
	/* Revocations that change the record append a "cert.revoke" entry
	 * by `actor` (never NULL) in the same transaction. */
	int (*cert_revoke)(void *be, const char *serial, int reason,
	    time_t when, const char *actor);
	int (*device_put)(void *be, const struct store_device *d);
	int (*device_get)(void *be, const char *fqdn,
	    struct store_device **out);
	int (*device_list)(void *be, struct store_device **out, size_t *n);

	int (*job_put)(void *be, const struct store_job *j);
	int (*job_get)(void *be, const char *id, struct store_job **out);
	int (*job_list)(void *be, struct store_job **out, size_t *n);
	int (*job_device_put)(void *be, const struct store_job_device *d);
	int (*job_device_list)(void *be, const char *job_id,
	    struct store_job_device **out, size_t *n);

	/*
	 * The audit trail (arguments checked by the front).  insert_batch
	 * appends one "cert.issue" entry per inserted record, by rec->actor,
	 * in the batch's transaction, reading the head inside it.
	 */
	int (*audit_append)(void *be, const char *actor, const char *action,
	    const char *subject, const char *detail, uint64_t *seq,
	    unsigned char hash[STORE_AUDIT_HASH_LEN]);
	int (*audit_list)(void *be, uint64_t after, struct store_audit **out,
	    size_t *n);
	int (*audit_status)(void *be, uint64_t *head, uint64_t *sealed);
	int (*seal_add)(void *be, const struct store_seal *seal);
	int (*seal_list)(void *be, struct store_seal **out, size_t *n);

	/* As store_job_claim*, store_job_claimable, store_job_finish,
	 * store_revocation_mark (arguments checked by the front). */
	int (*job_claim)(void *be, const char *job_id, const char *owner,
	    time_t now, int ttl_s, char **fqdn, char **prev);
	int (*job_claim_renew)(void *be, const char *job_id, const char *owner,
	    time_t now, int ttl_s, size_t *n);
	int (*job_claim_release)(void *be, const char *job_id,
	    const char *owner, const char *fqdn);
	int (*job_claimable)(void *be, time_t now, char ***ids, size_t *n);
	int (*job_claim_owners)(void *be, const char *job_id, char ***owners,
	    size_t *n);
	int (*job_finish)(void *be, const char *job_id, time_t when,
	    int *finished);
	int (*revocation_mark)(void *be, uint64_t *mark);

	/* As store_lease_*; atomic against other processes on the store. */
	int (*lease_take)(void *be, const char *name, const char *owner,
	    time_t now, int ttl_s, const char *takeover, char **holder,
	    time_t *expires);
	int (*lease_renew)(void *be, const char *name, const char *owner,
	    time_t now, int ttl_s);
	int (*lease_release)(void *be, const char *name, const char *owner);

	/*
	 * As store_client_*.  add, bind and remove append one audit entry
	 * ("client.add", "client.rebind", "client.remove") by `actor` (never
	 * NULL) with `detail` (may be "") in the change's own transaction,
	 * only when the record changed.
	 */
	int (*client_add)(void *be, const struct store_client *c,
	    const char *actor, const char *detail);
	int (*client_get)(void *be, const char *name, const char *serial,
	    struct store_client **out);	/* by name, or by serial if name NULL */
	int (*client_list)(void *be, struct store_client **out, size_t *n);
	int (*client_bind)(void *be, const char *name, const char *serial,
	    const char *actor);
	int (*client_remove)(void *be, const char *name, time_t when,
	    const char *actor, const char *detail);

	/* As store_cacert_*; `actor` never NULL.  revoke appends its entry
	 * only when the row changed. */
	int (*cacert_put)(void *be, const struct store_cacert *v, size_t n,
	    const char *actor, const char *action, const char *subject,
	    const char *detail);
	int (*cacert_list)(void *be, struct store_cacert **out, size_t *n);
	int (*cacert_revoke)(void *be, const char *keyid, int reason,
	    time_t when, const char *actor);

	/* As store_cred_*; put gets created_at/updated_at already set. */
	int (*cred_put)(void *be, const struct store_cred *c);
	int (*cred_get)(void *be, const char *name, struct store_cred **out);
	int (*cred_list)(void *be, struct store_cred **out, size_t *n);
	int (*cred_remove)(void *be, const char *name);

	/* As store_meta_*; put gets checked items, updated_at set. */
	int (*meta_put)(void *be, const struct store_meta *v, size_t n);
	int (*meta_get)(void *be, const char *name, struct store_meta **out);
	int (*meta_list)(void *be, struct store_meta **out, size_t *n);
};

extern const struct store_ops store_sqlite_ops;
void store_client_clear(struct store_client *c);
extern const struct store_ops store_pg_ops;		/* postgresql:// */
extern const struct store_ops store_pg_alias_ops;	/* postgres:// */

/* Free what a record owns and zero it (for backends building arrays). */
void store_cert_clear(struct store_cert *c);
void store_cacert_clear(struct store_cacert *c);
void store_device_clear(struct store_device *d);
void store_job_clear(struct store_job *j);
void store_job_device_clear(struct store_job_device *d);
void store_cred_clear(struct store_cred *c);
void store_audit_clear(struct store_audit *e);
void store_seal_clear(struct store_seal *e);
void store_meta_clear(struct store_meta *m);

#endif
