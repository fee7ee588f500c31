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

struct store_device {
	char *fqdn;
	char *address;
	char *amt_version;
	char *cert_serial;		/* serial of the certificate bound on AMT */
	char *state;			/* "enrolling" | "enrolled" | "failed" |
					   "compromised" */
	char *last_step;		/* last completed enrollment step */
	char *error;			/* last error line or NULL */
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
void store_certs_free(struct store_cert *c, size_t n);

/* Insert or replace the device row keyed by FQDN; durable on return. */
int store_device_put(struct store *s, const struct store_device *d) AMTCA_WUR;
int store_device_get(struct store *s, const char *fqdn,
    struct store_device **out) AMTCA_WUR;
int store_device_list(struct store *s, struct store_device **out, size_t *n) AMTCA_WUR;
void store_device_free(struct store_device *d);
void store_devices_free(struct store_device *d, size_t n);

#endif
