/*
 * enroll/devices.c: the device inventory and decommissioning, for every
 * front end (amtca devices, the fleet run, later the service).
 *
 * A device's state is one of device_states[]: pending, enrolling,
 * enrolled, failed, auth_failed, compromised, retired.  `retired` is set
 * only by device_retire(); every reconcile (enroll, fleet, the service)
 * skips a retired device, and only `enroll --device-reset` brings it back.
 */
#ifndef AMTCA_ENROLL_DEVICES_H
#define AMTCA_ENROLL_DEVICES_H

#include <stddef.h>
#include <time.h>

#include "ca/store.h"
#include "common/err.h"
#include "enroll/enroll.h"

/* The complete list of device states, NULL-terminated. */
extern const char *const device_states[];
/* Is `s` one of device_states[]? */
int device_state_valid(const char *s);

/* One row of the inventory: the record and its current certificate. */
struct device_info {
	struct store_device d;		/* as stored (strings owned) */
	time_t not_after;		/* of d.cert_serial; 0 when unknown */
	/* With device_filter.ca: the intermediate d.cert_serial is under
	 * (after `ca rotate`, the current one or a retired one). */
	char issuer[CA_KEYID_HEX_MAX + 1];	/* its key id (ca_keyid_hex),
					   "" when unknown */
	int issuer_current;		/* 1 current, 0 retired or not ours,
					   -1 unknown */
};

struct device_filter {
	const char *state;		/* only this state; NULL: all */
	int expiring_days;		/* < 0: no filter; else only devices
					   whose current certificate ends
					   before now + days (expired ones
					   included) */
	time_t now;			/* 0: time(NULL) */
	const struct enroll_ctx *ca;	/* NULL: issuer unknown; else each
					   row's issuer against ca->inter and
					   ca->retired */
};

/*
 * The devices the operational state `s` holds that pass `f` (NULL: all),
 * ordered by FQDN, with their certificate's end from the signer `sgn`
 * (NULL: unknown, 0).  *out is released with device_infos_free().  AMTCA_E_USAGE for an
 * unknown state in the filter.
 */
int devices_list(struct store *s, struct sgn *sgn, const struct device_filter *f,
    struct device_info **out, size_t *n) AMTCA_WUR;
void device_infos_free(struct device_info *v, size_t n);

/*
 * The fields one device shows as JSON (`amtca devices --json`, the
 * service's GET /api/v1/devices), in order: the one list of them, so that
 * front ends writing JSON with different writers agree.  str(): a string
 * or NULL (null).  time(): a Unix time printed as RFC 3339 UTC; when
 * `nullable` and t is 0, null.  flag(): true (1), false (0), null (-1).
 */
struct device_fields {
	void (*str)(void *ctx, const char *key, const char *val);
	void (*time)(void *ctx, const char *key, time_t t, int nullable);
	void (*flag)(void *ctx, const char *key, int val);
	void *ctx;
};
void device_info_fields(const struct device_info *v,
    const struct device_fields *out);

struct retire_opts {
	const char *fqdn;
	int remove_from_device;		/* also take the leaf and key out of AMT */
	/* Only with remove_from_device: */
	const char *address;		/* NULL: the record's, else DNS */
	int port;			/* 0: the record's, else 16992 */
	int tls_port;			/* 0: the record's, else 16993 */
	const char *user;		/* NULL: the record's */
	const char *password_file;	/* NULL: the record's cred_ref; read
					   only here, wiped before returning */
	long tls_wait_ms;		/* 0 = AMTCA_AMT_TLS_WAIT_MS: for the
					   plain port after TLS is turned off */
	time_t now;			/* 0: time(NULL) */
};

struct retire_result {
	char *fqdn;			/* normalised */
	char *serial;			/* the bound certificate, or NULL */
	int was_revoked;		/* it was revoked before (reason kept) */
	int was_retired;		/* the record already said retired */
	int tls_disabled;		/* TLS turned off in AMT (committed) */
	unsigned removed_certs;		/* our leaves deleted from AMT */
	unsigned removed_keys;		/* their key pairs */
};
void retire_result_clear(struct retire_result *r);

/*
 * Decommission one device:
 *  1. with remove_from_device, open a session the credential rule allows
 *     (TLS pinned to a leaf our records issued to it; plain HTTP only when
 *     the records do not say it is enrolled and its TLS port is closed);
 *  2. revoke its bound certificate with cessationOfOperation (cred_revoke:
 *     an earlier revocation keeps its reason) and set its state to
 *     `retired`;
 *  3. with remove_from_device: turn TLS off on both interfaces (the
 *     network one accepting plain HTTP), delete the TLS credential context
 *     and commit, so AMT serves plain HTTP as before enrollment; then
 *     delete every leaf our records issued to the device and the key pair
 *     of each (over plain HTTP once TLS is off: the record says retired).
 * Rerunning completes an interrupted retire (a retired device is talked to
 * only by this function).  A compromised device is retired in the records
 * only: with remove_from_device nothing is sent (AMTCA_E_AMT_TLS).  Uses
 * c->store, c->policy and c->chain_path, and holds the device's lease
 * (enroll/lease.h) as enroll_run() does.  The credential is the
 * operator's, else the one the record names (user, cred_ref); without
 * either, AMTCA_E_USAGE.
 */
int device_retire(const struct enroll_ctx *c, const struct retire_opts *o,
    struct retire_result *res) AMTCA_WUR;

#endif
