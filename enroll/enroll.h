/*
 * enroll/: the enrollment engine (one device's steps) and the network
 * checks it shares with `amtca doctor`.
 *
 * The engine is a reconciler, not a script with a resume pointer: every
 * step looks at what AMT actually holds and does only what is missing, so
 * running it again after a failure (or a crash) at any point completes the
 * job without piling up keys or certificates in AMT's store.  The argument
 * for each crash point is in docs/enroll.md.
 */
#ifndef AMTCA_ENROLL_ENROLL_H
#define AMTCA_ENROLL_ENROLL_H

#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "enroll/cli.h"

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

/* "preflight", "time", ... (stable: stored as last_step, printed in JSON). */
const char *enroll_step_name(enum enroll_step s);
/* "pre-flight checks", ... (for humans). */
const char *enroll_step_title(enum enroll_step s);

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
 * Run the enrollment of one device against the opened home (HOME_STORE |
 * HOME_SIGNER).  Records the device in the store after every step.
 * Several threads may run it at once on one home for different devices
 * (amtca fleet); runs for the same FQDN, in any process, are serialised by
 * <home>/locks/<fqdn>.lock: the second fails with AMTCA_E_EXISTS.
 * Returns 0 or a negative AMTCA_E_* code with an amtca_fail() detail that
 * says what failed, why, and what to do.
 */
int enroll_run(struct home *h, const struct enroll_opts *o,
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
	int no_records;			/* no CA home: only --ca-file/--tls-pin */
	int op_pin;			/* the operator gave --tls-pin */
	char *bound_serial;		/* recorded bound leaf, or NULL */
	int bound_revoked;		/* ... and it is revoked */
	int bound_reason;		/* its CRLReason, -1 when not revoked */
	unsigned char (*pins)[32];	/* leaves credentials may go to */
	size_t npins;
};

/*
 * `s` may be NULL (no CA home).  `op_pin` (32 bytes) is the operator's
 * --tls-pin or NULL.  `device_reset`: the operator says AMT was reset
 * (enroll --device-reset): the enrolled/compromised record is not held
 * against it.  Clear with cred_rule_clear().
 */
int cred_rule_load(struct store *s, const char *fqdn, const unsigned char *op_pin,
    int device_reset, struct cred_rule *out) AMTCA_WUR;
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
