/*
 * The issuance store: certificates issued and the devices enrolled.
 *
 * This header is the whole interface; callers never see the backend.  A
 * store is named by a URI: "sqlite:PATH", or a plain PATH, is the embedded
 * SQLite backend (ca/store_sqlite.c: WAL mode, synchronous=FULL);
 * "postgresql://..." (or "postgres://...", any libpq connection URI without
 * a password) is a PostgreSQL database that several nodes can share
 * (ca/store_pg.c).  Whatever the backend, when store_cert_add() returns 0 the
 * record is durable; concurrent adders are batched into one transaction
 * (group commit, backend-neutral, in ca/store.c), so durability does not
 * serialise issuance.  All functions are safe to call from several threads
 * on one store.  No SQL outside the backend files.
 *
 * tests/unit/ca/test_store.c is a conformance suite over this interface,
 * run once per backend in its table: a new backend adds a row and passes it.
 *
 * Adding a backend: a ca/store_<name>.c defining a `struct store_ops`
 * (ca/store_backend.h) with its scheme, listed in store.c's backends[].
 *
 * Adding a table (say, fleet jobs):
 *   1. a record struct here with its _free functions, and the store_*
 *      functions callers need (AMTCA_WUR, int return, *out = NULL first);
 *   2. matching function pointers in struct store_ops;
 *   3. in store.c, a dispatcher per function that checks arguments the
 *      same way for every backend, then calls the op;
 *   4. in each backend, the schema (for SQLite: CREATE TABLE IF NOT EXISTS
 *      in schema_sql, bump SCHEMA_VERSION and upgrade older files in
 *      schema(); for PostgreSQL: a new entry appended to migrations[] in
 *      ca/store_pg.c, never an edit of an old one), and the ops (a backend
 *      that leaves one NULL makes its dispatcher fail with AMTCA_E_STORE);
 *   5. cases in tests/unit/ca/test_store.c, which every backend runs.
 */
#ifndef AMTCA_CA_STORE_H
#define AMTCA_CA_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

struct store;

struct store_cert {
	char *serial;			/* uppercase hex, as openssl prints */
	char *fqdn;
	time_t not_before;
	time_t not_after;
	time_t issued_at;
	char *status;			/* "valid" | "revoked" (expiry is derived) */
	int revoke_reason;		/* CRLReason when revoked */
	time_t revoked_at;
	char *requester;
	char *device;			/* AMT device FQDN or NULL */
	unsigned char *der;
	size_t der_len;
	char *issuer;			/* key id (lowercase hex, ca_keyid_hex)
					   of the intermediate that issued it;
					   NULL in records made before
					   rotation: the first intermediate's
					   (docs/rotation.md) */
	const char *actor;		/* add only: who the audit entry names
					   (NULL: the store's actor, else the
					   requester); borrowed, never stored
					   in the row, NULL when read back */
};

/*
 * A device's record.  States: "pending" (listed, never tried), "enrolling",
 * "enrolled" (bound certificate ours, valid, proven), "failed",
 * "auth_failed" (AMT refused the credential: not retried until the
 * credential changes, see cred_stamp), "compromised" (left alone),
 * "retired" (out of every reconcile).
 *
 * store_device_put() replaces the engine's fields (address to updated_at)
 * but keeps the stored value of each descriptive field the caller leaves
 * unset (port/tls_port 0, user/cred_ref/cred_stamp/tls_pin NULL), so the
 * engine's per-step records never erase what a hosts file told us; an
 * empty string clears one.
 */
struct store_device {
	char *fqdn;
	char *address;
	char *amt_version;
	char *cert_serial;		/* serial of the certificate bound on AMT */
	char *state;			/* one of the states above */
	char *last_step;		/* last completed enrollment step */
	char *error;			/* last error line or NULL */
	time_t updated_at;
	int port;			/* 0: unknown (16992) */
	int tls_port;			/* 0: unknown (16993) */
	char *user;			/* AMT user name */
	char *cred_ref;			/* where the password comes from: its
					   file's path, or "credential:NAME"
					   (STORE_CRED_REF_PREFIX, a sealed
					   credential); never the password */
	char *cred_stamp;		/* the credential an auth_failed was
					   seen with: "dev:ino:size:mtime" of
					   the password file, never a hash */
	char *tls_pin;			/* operator's pin, 64 hex digits */
};

/* Is `state` one of the device states above? */
int store_device_state_valid(const char *state);

/*
 * A fleet job and each device's progress in it.  A job is identified by a
 * random id; hosts_digest (SHA-256 hex of the hosts list) lets a rerun of
 * the same command find the unfinished job it continues.
 */
struct store_job {
	char *id;
	time_t created_at;
	time_t finished_at;		/* 0 while running */
	char *state;			/* "running" | "done" | "cancelled" */
	char *hosts_digest;
	unsigned total;			/* devices in the job */
};

struct store_job_device {
	char *job_id;
	char *fqdn;
	char *result;			/* "pending" | "enrolled" | "renewed" |
					   "unchanged" | "failed" */
	char *serial;			/* bound leaf after the run, or NULL */
	char *error;			/* one line or NULL */
	int attempts;
	time_t updated_at;
};

/*
 * Open (creating the schema when `create`) the store named by `uri` (see
 * above).  AMTCA_E_NOT_FOUND when it does not exist and !create;
 * AMTCA_E_USAGE for an unknown scheme; AMTCA_E_STORE for anything that is
 * not an amtca store.
 */
int store_open(const char *uri, int create, struct store **out) AMTCA_WUR;
void store_close(struct store *s);

/*
 * Remove the store named by `uri` and whatever its backend keeps beside it
 * (SQLite: the -wal, -shm and -journal files).  0 when it did not exist.
 * Nothing may have it open.
 */
int store_destroy(const char *uri) AMTCA_WUR;

/*
 * An online, consistent copy of the whole store `s` into a new store named
 * by `dest_uri` (same backend; for SQLite the online backup API: one read
 * snapshot, so writers on `s` in this or other processes go on and the copy
 * is what one instant saw, never a file copy).  AMTCA_E_EXISTS when
 * `dest_uri` already exists, AMTCA_E_USAGE for another backend's URI.  The
 * copy is complete and durable on return; on failure nothing is left at
 * `dest_uri`.
 */
int store_backup(struct store *s, const char *dest_uri) AMTCA_WUR;

/*
 * Durably record a freshly issued certificate (status "valid").
 * AMTCA_E_EXISTS when the serial is already known (caller draws another).
 */
int store_cert_add(struct store *s, const struct store_cert *c) AMTCA_WUR;

/*
 * Pipelined form: validate and queue `c` for the next group commit and
 * return at once.  `done(arg, result, msg)` runs exactly once, on the
 * store's committer thread, after the record's transaction committed
 * (result 0: durable) or failed (AMTCA_E_EXISTS for a known serial; `msg`
 * is a one-line detail).  `c` and what it points to must stay valid until
 * then.  A non-zero return means nothing was queued and done never runs.
 * store_close() waits for every queued record.
 */
typedef void (*store_done_fn)(void *arg, int result, const char *msg);
int store_cert_add_async(struct store *s, const struct store_cert *c,
    store_done_fn done, void *arg) AMTCA_WUR;

/* AMTCA_E_NOT_FOUND when unknown.  Free with store_cert_free(). */
int store_cert_get(struct store *s, const char *serial,
    struct store_cert **out) AMTCA_WUR;

/* All certificates, oldest first.  Free with store_certs_free(). */
int store_cert_list(struct store *s, struct store_cert **out, size_t *n) AMTCA_WUR;

/* The certificates recorded for one AMT device (case-insensitive), oldest
 * first, with their DER; indexed, so cheap in a fleet-sized store. */
int store_cert_list_device(struct store *s, const char *device,
    struct store_cert **out, size_t *n) AMTCA_WUR;

/* The certificates issued for one FQDN (case-insensitive), oldest first,
 * with their DER. */
int store_cert_list_fqdn(struct store *s, const char *fqdn,
    struct store_cert **out, size_t *n) AMTCA_WUR;

/*
 * Revoked certificates only (der left NULL, der_len 0), by serial: what a
 * CRL needs without loading every certificate.  Free with store_certs_free().
 */
int store_cert_list_revoked(struct store *s, struct store_cert **out,
    size_t *n) AMTCA_WUR;

/*
 * The revoked certificates one intermediate issued (issuer = `issuer`),
 * and with `with_unknown` also those without an issuer (the first
 * intermediate's): the CRL of that intermediate.  As above otherwise.
 */
int store_cert_list_revoked_by(struct store *s, const char *issuer,
    int with_unknown, struct store_cert **out, size_t *n) AMTCA_WUR;
/* The same for the certificates not revoked (expired ones included):
 * whether an intermediate's overlap may end (ca prune). */
int store_cert_list_unrevoked_by(struct store *s, const char *issuer,
    int with_unknown, struct store_cert **out, size_t *n) AMTCA_WUR;

/*
 * Mark revoked (idempotent for an already revoked serial: the first reason
 * and date are kept, except that a later keyCompromise replaces the
 * reason; the date stays).  Callers print what store_cert_get() then reads.  `reason` is a CRLReason 0-10 except 7;
 * AMTCA_E_USAGE otherwise, AMTCA_E_NOT_FOUND for an unknown serial.
 * Serials are matched case-insensitively.
 */
int store_cert_revoke(struct store *s, const char *serial, int reason,
    time_t when) AMTCA_WUR;

void store_cert_free(struct store_cert *c);
/* Free what one record's fields hold and zero it (the struct stays). */
void store_cert_clear(struct store_cert *c);
void store_certs_free(struct store_cert *c, size_t n);

/* Insert or replace the device row keyed by FQDN; durable on return. */
int store_device_put(struct store *s, const struct store_device *d) AMTCA_WUR;
int store_device_get(struct store *s, const char *fqdn,
    struct store_device **out) AMTCA_WUR;
int store_device_list(struct store *s, struct store_device **out, size_t *n) AMTCA_WUR;
void store_device_free(struct store_device *d);
void store_devices_free(struct store_device *d, size_t n);

/* Insert or replace a job (by id); AMTCA_E_USAGE without id, state or a
 * known state.  Durable on return. */
int store_job_put(struct store *s, const struct store_job *j) AMTCA_WUR;
/* AMTCA_E_NOT_FOUND when unknown. */
int store_job_get(struct store *s, const char *id, struct store_job **out) AMTCA_WUR;
/* All jobs, newest first. */
int store_job_list(struct store *s, struct store_job **out, size_t *n) AMTCA_WUR;
void store_job_free(struct store_job *j);
void store_jobs_free(struct store_job *j, size_t n);

/* Insert or replace one device's progress in a job (by job id and FQDN);
 * the job must exist (AMTCA_E_NOT_FOUND otherwise). */
int store_job_device_put(struct store *s, const struct store_job_device *d) AMTCA_WUR;
/* A job's devices, by FQDN. */
int store_job_device_list(struct store *s, const char *job_id,
    struct store_job_device **out, size_t *n) AMTCA_WUR;
void store_job_devices_free(struct store_job_device *d, size_t n);

/*
 * Job claims: how the devices of a stored job are shared out between the
 * processes (service nodes) running it.  A device of a job is unfinished
 * while its result is "pending"; it is claimable when the job is
 * "running" and the device is unclaimed or its claim expired (expires <=
 * now).  store_job_device_put() clears a row's claim (a finished device's
 * claim is over).
 *
 * store_job_claim(): claim the next claimable device of `job_id` for
 * `owner` until now + ttl_s, atomically against every other claimer on the
 * store (PostgreSQL: UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED);
 * SQLite: one BEGIN IMMEDIATE transaction).  *fqdn (malloc'd) is the
 * device; *prev (if not NULL; malloc'd or NULL) the owner of the expired
 * claim it took over.  AMTCA_E_NOT_FOUND when nothing is claimable (the
 * job is not running, every device is finished or claimed by a live
 * claim).
 */
int store_job_claim(struct store *s, const char *job_id, const char *owner,
    time_t now, int ttl_s, char **fqdn, char **prev) AMTCA_WUR;
/* Extend every claim `owner` holds on unfinished devices of `job_id` (all
 * jobs when NULL) to now + ttl_s; *n (if not NULL) how many. */
int store_job_claim_renew(struct store *s, const char *job_id,
    const char *owner, time_t now, int ttl_s, size_t *n) AMTCA_WUR;
/* Drop `owner`'s claim on `fqdn` of `job_id` (every claim of the owner in
 * that job when fqdn is NULL) on unfinished devices, so others may claim
 * them at once. */
int store_job_claim_release(struct store *s, const char *job_id,
    const char *owner, const char *fqdn) AMTCA_WUR;
/* The ids of the running jobs with a claimable device at `now`, oldest
 * first.  Free each id, then the array. */
int store_job_claimable(struct store *s, time_t now, char ***ids,
    size_t *n) AMTCA_WUR;
/* The owners holding claims (live or lapsed) on unfinished devices of
 * `job_id`, each once: a restarted node releases those of its dead
 * predecessors on this host.  Free each, then the array. */
int store_job_claim_owners(struct store *s, const char *job_id,
    char ***owners, size_t *n) AMTCA_WUR;
/*
 * Mark `job_id` done at `when` if it is running and none of its devices is
 * unfinished, in one statement: of the nodes finishing a job's last
 * devices at once, exactly one sees *finished = 1.
 */
int store_job_finish(struct store *s, const char *job_id, time_t when,
    int *finished) AMTCA_WUR;

/*
 * A number that changes whenever a certificate's revocation record changes
 * in this store (the seq of the newest "cert.revoke" audit entry; 0 when
 * none): what a cached CRL is checked against before it is served.
 */
int store_revocation_mark(struct store *s, uint64_t *mark) AMTCA_WUR;

/*
 * Leases: named locks kept in the store, so that processes (enroll, fleet,
 * the service, on one host or several sharing a store) never work on the
 * same device at once.  An owner is an opaque string; the caller decides
 * what it means (enroll/engine.c: "host:pid:start-time:random").
 *
 * store_lease_take(): take `name` for `owner` until now + ttl_s.  It is
 * taken when nobody holds it, the holder's lease expired (expires_at <=
 * now), the holder is `owner` itself (a renewal), or the holder is exactly
 * `takeover` (the caller proved that owner dead; compare-and-swap, so two
 * takers of a dead owner's lease cannot both win).  Otherwise
 * AMTCA_E_EXISTS, with *holder (if not NULL) set to the holder's owner
 * string (free it) and *expires to its expiry.
 */
int store_lease_take(struct store *s, const char *name, const char *owner,
    time_t now, int ttl_s, const char *takeover, char **holder,
    time_t *expires) AMTCA_WUR;
/* Extend a lease `owner` holds; AMTCA_E_NOT_FOUND when it no longer does. */
int store_lease_renew(struct store *s, const char *name, const char *owner,
    time_t now, int ttl_s) AMTCA_WUR;
/* Drop the lease if `owner` holds it (0 either way). */
int store_lease_release(struct store *s, const char *name,
    const char *owner) AMTCA_WUR;

/*
 * AMT credentials, in the operational state: a name, the AMT user, and the
 * password sealed by the signer (hsm_aead_seal(), the name as associated
 * data).  The store never sees a password; `mechanism` is the sealing
 * mechanism's name, for listing.
 */
/*
 * A device whose password is a sealed credential has cred_ref
 * STORE_CRED_REF_PREFIX NAME ("credential:lab"); see docs/credentials.md
 * for when the signer opens it for that device.
 */
#define STORE_CRED_REF_PREFIX "credential:"

struct store_cred {
	char *name;
	char *user;
	unsigned char *sealed;		/* NULL in store_cred_list() rows */
	size_t sealed_len;
	char *mechanism;		/* "aes-256-gcm", ... */
	time_t created_at;		/* first put */
	time_t updated_at;		/* last put */
};

/*
 * Insert or replace the credential `name`: a replacement keeps created_at
 * (0 in `c`: now) and sets updated_at (0: now).  AMTCA_E_USAGE without a
 * name, user, sealed blob or mechanism.  Durable on return.
 */
int store_cred_put(struct store *s, const struct store_cred *c) AMTCA_WUR;
/* With the sealed blob; AMTCA_E_NOT_FOUND when unknown. */
int store_cred_get(struct store *s, const char *name,
    struct store_cred **out) AMTCA_WUR;
/* Every credential by name, without the sealed blobs. */
int store_cred_list(struct store *s, struct store_cred **out, size_t *n) AMTCA_WUR;
/* AMTCA_E_NOT_FOUND when unknown. */
int store_cred_remove(struct store *s, const char *name) AMTCA_WUR;
void store_cred_free(struct store_cred *c);
void store_creds_free(struct store_cred *c, size_t n);

/*
 * Admin and EST clients (amtca admin add, amtca est-client add): the
 * requesters the signer authenticates besides itself.  Written by the
 * signer only (CA records).  A name is unique forever: removing or revoking
 * a client keeps its record (history) with removed_at set, and a removed
 * client never authenticates again.
 */
#define STORE_CLIENT_ADMIN 0x2		/* same bits as SGN_ROLE_ADMIN */
#define STORE_CLIENT_EST   0x4		/* same bits as SGN_ROLE_EST */

struct store_client {
	char *name;			/* ca_client_name_check() syntax */
	unsigned roles;			/* STORE_CLIENT_* */
	char *allow;			/* EST: names and suffixes it may
					   obtain, lowercase, space-separated;
					   NULL for admins */
	char *pwhash;			/* Argon2id PHC string, or NULL */
	char *serial;			/* its current certificate, or NULL */
	time_t created_at;
	time_t removed_at;		/* 0 while active */
};

/* Record a new client; AMTCA_E_EXISTS when the name is known (removed
 * ones included).  Durable on return. */
int store_client_add(struct store *s, const struct store_client *c) AMTCA_WUR;
/* By name (exact) or by its current certificate's serial (case-
 * insensitive); AMTCA_E_NOT_FOUND when none.  store_client_free(). */
int store_client_get(struct store *s, const char *name,
    struct store_client **out) AMTCA_WUR;
int store_client_by_serial(struct store *s, const char *serial,
    struct store_client **out) AMTCA_WUR;
/* Every client, removed ones included, by name. */
int store_client_list(struct store *s, struct store_client **out,
    size_t *n) AMTCA_WUR;
/* Bind an active client to its new current certificate; AMTCA_E_NOT_FOUND
 * when unknown or removed. */
int store_client_bind(struct store *s, const char *name,
    const char *serial) AMTCA_WUR;
/* Disable: set removed_at (the first removal's time is kept);
 * AMTCA_E_NOT_FOUND when unknown. */
int store_client_remove(struct store *s, const char *name,
    time_t when) AMTCA_WUR;
/*
 * The same, naming `actor` in the audit entry each change appends in its
 * own transaction (NULL: the store's actor): "client.add" (detail
 * role=<admin|est> [serial=<s>] [allow=<n1,n2>]), "client.rebind"
 * (serial=<s>), "client.remove" (role=... [serial=<s>]; a repeat removal
 * changes nothing and appends nothing).
 */
int store_client_add_as(struct store *s, const struct store_client *c,
    const char *actor) AMTCA_WUR;
int store_client_bind_as(struct store *s, const char *name,
    const char *serial, const char *actor) AMTCA_WUR;
int store_client_remove_as(struct store *s, const char *name, time_t when,
    const char *actor) AMTCA_WUR;
void store_client_free(struct store_client *c);
void store_clients_free(struct store_client *c, size_t n);

/*
 * The audit trail (ca/audit.h, docs/audit.md): entries appended in the same
 * transaction as the change they record, chained by hash, sealed now and
 * then with the audit key.  Appends by this store itself: "cert.issue" (one
 * per certificate, in its group commit's transaction), "cert.revoke" (when
 * a revocation changes the record), "client.add", "client.rebind",
 * "client.remove" (store_client_*, when the record changes).  Everything
 * else calls store_audit_append().
 */
#define STORE_AUDIT_HASH_LEN 32

struct store_audit {
	uint64_t seq;			/* from 1 */
	int64_t time;			/* Unix seconds */
	char *actor;			/* user@host, or a client's name */
	char *action;			/* "cert.issue", ... (docs/audit.md) */
	char *subject;			/* serial, FQDN, name; may be "" */
	char *detail;			/* may be "" */
	unsigned char prev[STORE_AUDIT_HASH_LEN];
	unsigned char hash[STORE_AUDIT_HASH_LEN];
};

struct store_seal {
	uint64_t seq;			/* the sealed entry */
	unsigned char hash[STORE_AUDIT_HASH_LEN];	/* its hash */
	unsigned char *sig;		/* audit key, SHA-256 over hash */
	size_t siglen;
	int64_t time;
};

/*
 * The actor this handle's own entries name when the caller gives none
 * (the CLI: the OS user@host).  Copied; NULL clears.  Set it right after
 * store_open(), before the handle is shared: queued records point at it.
 */
int store_set_actor(struct store *s, const char *actor) AMTCA_WUR;

/*
 * Append one entry in its own transaction; durable on return.  `actor`
 * NULL: the store's actor.  Fields must be UTF-8 (AMTCA_E_USAGE otherwise)
 * of at most AMTCA_AUDIT_FIELD_MAX bytes (detail AMTCA_AUDIT_DETAIL_MAX);
 * subject and detail may be NULL (empty).  *seq and hash (when not NULL)
 * are the new entry's.
 */
int store_audit_append(struct store *s, const char *actor, const char *action,
    const char *subject, const char *detail) AMTCA_WUR;
int store_audit_append_get(struct store *s, const char *actor,
    const char *action, const char *subject, const char *detail,
    uint64_t *seq, unsigned char hash[STORE_AUDIT_HASH_LEN]) AMTCA_WUR;

/* Entries with seq > after (0: all), by seq.  Free with store_audits_free(). */
int store_audit_list(struct store *s, uint64_t after, struct store_audit **out,
    size_t *n) AMTCA_WUR;
void store_audits_free(struct store_audit *e, size_t n);

/* The newest entry's seq (0 when none) and the newest seal's seq (0). */
int store_audit_status(struct store *s, uint64_t *head, uint64_t *sealed) AMTCA_WUR;

/*
 * Record a seal.  The entry it names must be stored with that hash
 * (AMTCA_E_AUDIT otherwise): a seal is never recorded over a head that is
 * not the store's.
 */
int store_seal_add(struct store *s, const struct store_seal *seal) AMTCA_WUR;
/* All seals, by seq.  Free with store_seals_free(). */
int store_seal_list(struct store *s, struct store_seal **out, size_t *n) AMTCA_WUR;
void store_seals_free(struct store_seal *v, size_t n);

/*
 * Sealing hook: `fn(arg, s)` runs after a commit that appended entries,
 * outside every lock of the store, when AMTCA_AUDIT_SEAL_EVERY or more
 * entries are unsealed, none was ever sealed, or a "ca.*" entry was
 * appended.  Only the process
 * holding the audit key sets one (enroll/home.c); one seal runs at a time,
 * and entries the seal itself appends never call it again.  NULL removes.
 */
typedef void (*store_seal_fn)(void *arg, struct store *s);
void store_set_sealer(struct store *s, store_seal_fn fn, void *arg);

/* Run the hook now if the condition above holds (e.g. at open). */
void store_seal_due(struct store *s);

/*
 * The CA's own certificates (docs/rotation.md): each intermediate this home
 * has had, keyed by its key id.  States: "current" (issuing), "retired"
 * (in its overlap: signs only its CRL), "ended" (overlap over: out of the
 * chain), "revoked" (listed by the root's CRL; never leaves that state).
 */
struct store_cacert {
	char *keyid;			/* ca_keyid_hex, lowercase */
	char *role;			/* "intermediate" */
	int generation;			/* 1 (init), 2, ... (ca rotate) */
	char *subject;			/* the subject CN */
	char *serial;			/* uppercase hex */
	time_t not_after;
	char *state;			/* one of the states above */
	int revoke_reason;		/* CRLReason when revoked */
	time_t created_at;
	time_t revoked_at;
	unsigned char *der;
	size_t der_len;
};

/* Is `state` one of the CA certificate states above? */
int store_cacert_state_valid(const char *state);

/*
 * Insert or update v[0..n) (by keyid; a revoked row stays revoked, its
 * reason and date kept) and, when `action` is not NULL, append one audit
 * entry (action, subject, detail; by the store's actor) in the same
 * transaction.  1 <= n <= AMTCA_CACERT_PUT_MAX.
 */

int store_cacert_put(struct store *s, const struct store_cacert *v, size_t n,
    const char *action, const char *subject, const char *detail) AMTCA_WUR;
/* All, by generation.  Free with store_cacerts_free(). */
int store_cacert_list(struct store *s, struct store_cacert **out,
    size_t *n) AMTCA_WUR;
/*
 * Mark one revoked (reason a CRLReason as for certificates) with a
 * "ca.revoke-intermediate" entry in the same transaction; AMTCA_E_NOT_FOUND
 * for an unknown key id, 0 without a change for a revoked one.
 */
int store_cacert_revoke(struct store *s, const char *keyid, int reason,
    time_t when) AMTCA_WUR;
void store_cacerts_free(struct store_cacert *v, size_t n);

/* store_cert_revoke(), naming `actor` in the audit entry (NULL: the store's). */
int store_cert_revoke_as(struct store *s, const char *serial, int reason,
    time_t when, const char *actor) AMTCA_WUR;

/*
 * Shared configuration: named blobs (name -> value) that every node of a
 * shared store reads, so that nodes keep one CA (enroll/home.c,
 * docs/deployment.md): the shareable part of amtca.conf and the CA's
 * certificate files.  Never secrets, never node-local settings.  Names are
 * 1..AMTCA_STORE_META_NAME_MAX printable ASCII characters; values at most
 * AMTCA_STORE_META_VALUE_MAX bytes (may be empty).
 */
struct store_meta {
	char *name;
	unsigned char *value;		/* in a put: NULL removes the item */
	size_t len;
	time_t updated_at;		/* in a put: 0 is now */
};

/*
 * Set (or, value NULL, remove) v[0..n) (1 <= n <= AMTCA_STORE_META_PUT_MAX)
 * in ONE transaction: another node reads the whole old set or the whole new
 * one.  AMTCA_E_USAGE for a bad name or value.  Durable on return.
 */
int store_meta_put(struct store *s, const struct store_meta *v, size_t n) AMTCA_WUR;
/* One item with its value; AMTCA_E_NOT_FOUND when unknown. */
int store_meta_get(struct store *s, const char *name,
    struct store_meta **out) AMTCA_WUR;
/* Every item with its value, by name, read in one snapshot. */
int store_meta_list(struct store *s, struct store_meta **out, size_t *n) AMTCA_WUR;
void store_meta_free(struct store_meta *m);
void store_metas_free(struct store_meta *m, size_t n);

#endif
