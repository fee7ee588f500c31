/*
 * signer/core.h: the signer's side, shared by its files (not a public
 * header).  struct sgn_core is what every request runs against, whether
 * the signer is this process (sgn_local) or its own (`amtca signer`).
 *
 *   core.c    (owner: the signer) opening the home, dispatching requests,
 *             issuance profiles, revocation, CRLs, certificate queries
 *   proc.c    the process: spawn, socketpairs, the request loop
 *   proto.c   the wire format (docs/PROTOCOL.signer); fuzzed
 *   auth.c    requester authentication: admin and EST client records,
 *             Basic passwords (password KDF), client certificate chains,
 *             rate limits, allow lists
 *   cred.c    AMT credentials sealed under a token key
 */
#ifndef AMTCA_SIGNER_CORE_H
#define AMTCA_SIGNER_CORE_H

#include <pthread.h>

#include "enroll/home.h"
#include "signer/signer.h"

struct sgn_auth_state;
struct sgn_cred_state;

struct sgn_core {
	struct home *h;			/* HOME_STORE|HOME_SIGNER: h->store is
					   the CA's records, h->state the
					   operational state (devices, jobs,
					   sealed credentials) */
	char *local_name;		/* SGN_WHO_LOCAL's name: user@host of
					   the peer (SO_PEERCRED) or of us */
	struct sgn_auth_state *auth;	/* auth.c's: rate limits, counters */
	struct sgn_cred_state *cred;	/* cred.c's: one-at-a-time, rate */
	int frontend;			/* the signer process: SGN_WHO_LOCAL
					   is a front end, not the operator */
	int auth_up, cred_up;		/* core.c: which inits ran */
	int borrowed;			/* h is the caller's (sgn_local_home) */
	struct sgn_ratelimit *notes;	/* note.c: audit notes per actor */
};

/* auth.c */
int sgn_core_auth_init(struct sgn_core *c) AMTCA_WUR;
void sgn_core_auth_free(struct sgn_core *c);
/* sgn_auth() on this side. */
int sgn_core_auth(struct sgn_core *c, const struct sgn_who *who,
    struct sgn_client *out) AMTCA_WUR;
/* Does the client's allow list cover `fqdn` (whole labels)? */
int sgn_core_allows(const struct sgn_client *cl, const char *fqdn);
/*
 * After an EST simplereenroll issued `serial` to the client `cl` (which
 * authenticated with its current certificate): make `serial` the client's
 * current certificate, so the renewed one authenticates it from now on and
 * the old one no longer does.  AMTCA_E_NOT_FOUND when the client is no
 * longer active.
 */
int sgn_core_client_rebind(struct sgn_core *c, const struct sgn_client *cl,
    const char *serial) AMTCA_WUR;

/*
 * Replace the Basic rate limits (AMTCA_AUTH_* by default): bursts and
 * refills per minute, per client name and per peer address.  For unit
 * tests, whose KDFs may run slower than any refill (valgrind); call before
 * requests run.
 */
int sgn_core_auth_limits(struct sgn_core *c, unsigned name_burst,
    unsigned name_per_min, unsigned peer_burst, unsigned peer_per_min) AMTCA_WUR;

/*
 * auth.c's token buckets, exposed for unit tests: at most `max` keys, each
 * holding up to `burst` tokens and refilled at `per_min` a minute.
 * sgn_ratelimit_take() takes one token of `key` at `now_ms` (a monotonic
 * clock in milliseconds): 0, or AMTCA_E_RATE when the bucket is empty.
 * Buckets full again are forgotten; when `max` are in use the one idle
 * longest is dropped first.  Thread-safe.
 */
struct sgn_ratelimit;
int sgn_ratelimit_new(unsigned burst, unsigned per_min, size_t max,
    struct sgn_ratelimit **out) AMTCA_WUR;
int sgn_ratelimit_take(struct sgn_ratelimit *rl, const char *key,
    unsigned long long now_ms) AMTCA_WUR;
size_t sgn_ratelimit_size(struct sgn_ratelimit *rl);
void sgn_ratelimit_free(struct sgn_ratelimit *rl);

/* note.c: sgn_audit_note() on this side. */
int sgn_core_audit_note(struct sgn_core *c, const struct sgn_who *who,
    const char *action, const char *subject, const char *detail) AMTCA_WUR;

/* cred.c */
int sgn_core_cred_init(struct sgn_core *c) AMTCA_WUR;
void sgn_core_cred_free(struct sgn_core *c);
int sgn_core_cred_put(struct sgn_core *c, const char *name, const char *user,
    const char *password) AMTCA_WUR;
int sgn_core_cred_get(struct sgn_core *c, const char *name, const char *fqdn,
    char **user, char **password) AMTCA_WUR;
/* Tests: the get rate limit (per second, burst); 0, 0: the defaults. */
void sgn_core_cred_limits(struct sgn_core *c, double per_s, unsigned burst);

#endif
