/*
 * enroll/: the core every front end (enroll/cli/, later the fleet
 * scheduler and the service) shares.  This header: the enrollment engine
 * (one device's steps, as a table), the credential rule, and the network
 * probes it shares with the doctor.  The composition root that opens a CA
 * home is enroll/home.h; the doctor's checks are enroll/doctor.h.
 *
 * The engine is a reconciler, not a script with a resume pointer: every
 * step looks at what AMT actually holds and does only what is missing, so
 * running it again after a failure (or a crash) at any point completes the
 * job without piling up keys or certificates in AMT's store.  The argument
 * for each crash point is in docs/enroll.md.
 */
#ifndef AMTCA_ENROLL_ENROLL_H
#define AMTCA_ENROLL_ENROLL_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "ca/ca.h"
#include "ca/store.h"
#include "common/err.h"

/* The seven steps, in order (1-based numbers are what users see). */
enum enroll_step {
	ENROLL_PREFLIGHT = 0,	/* auth, version, FQDN, DNS, port choice */
	ENROLL_TIME,		/* AMT clock from ours */
	ENROLL_CHAIN,		/* root + intermediate into AMT's store */
	ENROLL_LEAF,		/* key in AMT, CSR, issuance, AddCertificate */
	ENROLL_BIND,		/* credential context, TLS settings, commit */
	ENROLL_VERIFY,		/* handshake, byte-identical leaf, Get over TLS */
	ENROLL_CLEANUP,		/* old unbound leaves, then their keys */
	ENROLL_NSTEPS
};

/* One run's state inside the engine (opaque). */
struct enroll_pass;

/*
 * The step table: the one description of an enrollment.  enroll_run()
 * walks it in order; reports (TTY progress, --json "steps", the device
 * record's last_step) and jobs name steps from it.  enroll_steps[s].id == s.
 */
struct enroll_step_def {
	enum enroll_step id;
	const char *name;		/* "preflight", ...: stable, stored as
					   last_step, printed in JSON */
	const char *title;		/* "pre-flight: ...": for humans */
	/* The engine's: the step, and what runs instead when pre-flight
	 * proved the device enrolled (NULL: skipped as "not needed"). */
	int (*run)(struct enroll_pass *);
	int (*run_enrolled)(struct enroll_pass *);
};
extern const struct enroll_step_def enroll_steps[ENROLL_NSTEPS];

/* enroll_steps[s].name, or "none" out of range. */
const char *enroll_step_name(enum enroll_step s);
/* enroll_steps[s].title, or "?". */
const char *enroll_step_title(enum enroll_step s);
/* The step named `name` (as stored in last_step), or -1. */
int enroll_step_parse(const char *name);

/* Progress events for the CLI (TTY output). */
enum enroll_event { ENROLL_EV_BEGIN, ENROLL_EV_OK, ENROLL_EV_SKIP,
    ENROLL_EV_FAIL, ENROLL_EV_RESTART };

struct enroll_opts {
	const char *host;		/* FQDN as given */
	const char *address;		/* optional IP pin */
	int port;			/* 0 = 16992 */
	int tls_port;			/* 0 = 16993 */
	const char *user;
	const char *password;		/* borrowed; the caller wipes it */
	int force;			/* renew even when the leaf is fine */
	const unsigned char *tls_pin;	/* operator's --tls-pin (32 bytes) */
	int device_reset;		/* operator: AMT was reset; forget the
					   enrolled/compromised record */
	int accept_non_secure;		/* keep 16992 open after TLS is on */
	int allow_fqdn_mismatch;
	int renew_days;			/* renewal window */
	int legacy_tls;
	long tls_wait_ms;		/* 0 = AMTCA_AMT_TLS_WAIT_MS */
	/* Optional: a deadline (amtca_now_ms() clock; *abort_at_ms 0: none)
	 * after which AMT calls and the engine's waits fail at once, and the
	 * run ends recorded as failed, reconcilable (a stopping service). */
	const atomic_llong *abort_at_ms;
	/* Optional progress callback; `detail` may be NULL. */
	void (*progress)(void *ctx, enum enroll_step s, enum enroll_event ev,
	    const char *detail);
	void *progress_ctx;
};

/* What happened; strings malloc'd, released with enroll_result_clear(). */
struct enroll_result {
	char *host;			/* normalised FQDN */
	char *address;			/* the address talked to */
	char *amt_version;
	char *serial;			/* the bound leaf (ours) */
	time_t not_after;
	const char *status;		/* "enrolled" | "renewed" |
					   "already enrolled" | "failed" */
	unsigned steps_done;		/* bit i = step i completed */
	int failed_step;		/* -1 when none */
	int reused;			/* leaf reused from an earlier run */
	int non_secure_open;		/* 16992 left open */
	unsigned removed_certs;		/* cleanup counts */
	unsigned removed_keys;
	unsigned superseded;		/* other leaves of the device revoked
					   (superseded) after the proof */
	char *warning;			/* one line or NULL */
};

void enroll_result_clear(struct enroll_result *r);

/*
 * What the engine works with: the CA's pieces, borrowed (nothing here is
 * freed by the engine).  A front end gets one from the composition root,
 * home_enroll_ctx() in enroll/home.h; a test or another front end may fill
 * it by hand.  The engine never sees a front end's types.
 */
struct sgn;

struct enroll_ctx {
	struct store *store;		/* the operational state: device
					   records, jobs, leases */
	struct sgn *sgn;		/* the signer: issues the leaves, holds
					   and revokes the certificate records
					   (signer/signer.h) */
	const struct ca_policy *policy;	/* which FQDNs this CA may name */
	X509 *root;			/* installed into AMT's store */
	X509 *inter;			/* ditto; NULL when there is none */
	X509 *const *retired;		/* earlier intermediates after `ca
					   rotate`, still in their overlap
					   (newest first): leaves under them
					   are ours but not current */
	size_t nretired;
	const char *chain_path;		/* CA file for verifying AMT's TLS */
	int lease_ttl_s;		/* the per-device lease's lifetime
					   (0: AMTCA_LEASE_TTL_S) */
};

/*
 * Run the enrollment of one device.  Records the device in the store after
 * every step.  Several threads may run it at once on one context for
 * different devices (amtca fleet); runs for the same FQDN, in any process
 * sharing the store, are serialised by a lease in the store
 * (enroll/lease.h): the second fails with AMTCA_E_EXISTS.  Returns 0 or a negative AMTCA_E_* code with an
 * amtca_fail() detail that says what failed, why, and what to do.
 */
int enroll_run(const struct enroll_ctx *c, const struct enroll_opts *o,
    struct enroll_result *res) AMTCA_WUR;

/* --- credrule.c: where AMT credentials may go ------------------------- */

/*
 * The one rule for every command that sends AMT credentials (enroll,
 * doctor, amt-info, the fleet engine, the service).  Load it from the
 * records before logging in, then ask it about the transport:
 *   cred_rule_plain()  before any plain-HTTP login;
 *   cred_rule_tls()    with the leaf a TLS handshake served (verified under
 *                      this CA's chain and the hostname); on 0, `pin` is its
 *                      SHA-256: open the WS-MAN session with
 *                      amt_opts.pin_sha256 = pin so every later handshake
 *                      of that session is held to the same leaf.
 * Both return 0 or AMTCA_E_AMT_TLS with a one-line detail that says why no
 * credentials are sent and what the operator can do.
 */
struct cred_rule {
	int tls_only;			/* records: enrolled; never plain HTTP */
	int compromised;		/* no credentials at all */
	int retired;			/* records: retired (devices retire);
					   nothing is sent until enroll
					   --device-reset */
	int no_records;			/* no CA home: only --ca-file/--tls-pin */
	int op_pin;			/* the operator gave --tls-pin */
	char *bound_serial;		/* recorded bound leaf, or NULL */
	int bound_revoked;		/* ... and it is revoked */
	int bound_reason;		/* its CRLReason, -1 when not revoked */
	unsigned char *bound_der;	/* its DER, when recorded and its key
					   is not known to be elsewhere: TLS
					   forgives this exact leaf's expiry
					   (amt_opts.expired_ok_der) */
	size_t bound_der_len;
	unsigned char (*pins)[32];	/* leaves credentials may go to */
	size_t npins;
};

/*
 * `s` (the operational state: device records) may be NULL (no CA home);
 * `sgn` (the certificate records, through the signer) may be NULL only
 * then.  `op_pin` (32 bytes) is the operator's --tls-pin or NULL.  `device_reset`: the operator says AMT was reset
 * (enroll --device-reset): the enrolled/compromised record is not held
 * against it.  Clear with cred_rule_clear().
 */
int cred_rule_load(struct store *s, struct sgn *sgn, const char *fqdn,
    const unsigned char *op_pin, int device_reset, struct cred_rule *out) AMTCA_WUR;
void cred_rule_clear(struct cred_rule *r);
int cred_rule_plain(const struct cred_rule *r, const char *fqdn) AMTCA_WUR;
int cred_rule_tls(const struct cred_rule *r, const char *fqdn, X509 *served,
    unsigned char pin[32]) AMTCA_WUR;

/*
 * After a revocation: when `c` (as stored) is a device's bound certificate
 * and its reason says the key may be known to others, mark the device
 * `compromised` (never re-enrolled automatically).  0 when nothing to do.
 */
int cred_note_revocation(struct store *s, const struct store_cert *c) AMTCA_WUR;

/*
 * For the operator's CLI, which opens the home itself: revoke one serial
 * in the CA records `s` with CRLReason `reason` at `now`, then
 * cred_note_revocation() on the operational state `state` (NULL: `s`).  *out is what the store then holds (a second
 * revoke keeps the first reason and date, except a change to
 * keyCompromise: see store_cert_revoke); *was says it was already
 * revoked.  AMTCA_E_NOT_FOUND with a detail for an unknown serial.
 */
int cred_revoke(struct store *s, struct store *state, const char *serial,
    int reason, time_t now, struct store_cert **out, int *was) AMTCA_WUR;

/* keyCompromise, caCompromise, aACompromise. */
int cred_reason_compromise(int reason);
/* CRLReason names as RFC 5280 spells them ("superseded"); -1 when unknown. */
const char *cred_reason_name(int reason);
int cred_reason_parse(const char *s);
/* 64 hex digits (colons and a "sha256:" prefix allowed) into pin; 0 or -1. */
int cred_pin_parse(const char *s, unsigned char pin[32]);

/* --- netcheck.c: DNS and reachability -------------------------------- */

/* Numeric addresses of `host` (getaddrinfo, TCP), deduplicated. */
struct net_addrs {
	char **addr;
	size_t n;
};
/* AMTCA_E_DNS with the resolver's reason when nothing resolves. */
int net_resolve(const char *host, struct net_addrs *out) AMTCA_WUR;
void net_addrs_clear(struct net_addrs *a);
/* "10.0.0.5, 10.0.0.6" into buf (truncated with "..."). */
void net_addrs_join(const struct net_addrs *a, char *buf, size_t len);
/* Is `s` a numeric IPv4/IPv6 address? */
int net_is_ip(const char *s);

/*
 * TCP connect to addr:port within timeout_ms.  0 when it connects;
 * AMTCA_E_AMT_TRANSPORT with "connection refused" / "timed out" / ...
 */
int net_tcp_probe(const char *addr, int port, long timeout_ms) AMTCA_WUR;

#endif
