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
};

/* auth.c */
int sgn_core_auth_init(struct sgn_core *c) AMTCA_WUR;
void sgn_core_auth_free(struct sgn_core *c);
/* sgn_auth() on this side. */
int sgn_core_auth(struct sgn_core *c, const struct sgn_who *who,
    struct sgn_client *out) AMTCA_WUR;
/* Does the client's allow list cover `fqdn` (whole labels)? */
int sgn_core_allows(const struct sgn_client *cl, const char *fqdn);

/* cred.c */
int sgn_core_cred_init(struct sgn_core *c) AMTCA_WUR;
void sgn_core_cred_free(struct sgn_core *c);
int sgn_core_cred_put(struct sgn_core *c, const char *name, const char *user,
    const char *password) AMTCA_WUR;
int sgn_core_cred_get(struct sgn_core *c, const char *name, const char *fqdn,
    char **user, char **password) AMTCA_WUR;

#endif
