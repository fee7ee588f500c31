/*
 * The issuance store: certificates issued and the devices enrolled.
 *
 * This header is the whole interface; callers never see the backend.  A
 * store is named by a URI: "sqlite:PATH", or a plain PATH, is the embedded
 * SQLite backend (ca/store_sqlite.c: WAL mode, synchronous=FULL), the only
 * one today.  Whatever the backend, when store_cert_add() returns 0 the
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
 *      schema()), and the ops;
 *   5. cases in tests/unit/ca/test_store.c, which every backend runs.
 */
#ifndef AMTCA_CA_STORE_H
#define AMTCA_CA_STORE_H

#include <stddef.h>
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
	char *cred_ref;			/* where the password came from (its
					   file's path); never the password */
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

#endif
