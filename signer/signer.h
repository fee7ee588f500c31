/*
 * signer/: the CA's keys and records behind typed requests.
 *
 * Only the signer loads the PKCS#11 module, reads the PIN, signs, and
 * writes the CA's own records (issued certificates, revocations, admin and
 * EST clients, the audit trail).  Front ends (enroll, fleet, serve) hold a
 * `struct sgn` and ask it for results: "issue a certificate for these names,
 * this CSR, this profile", "revoke this serial", "the CRL of this issuer",
 * "who is this client", "the credential for this device".  It is never a
 * signing oracle: nothing here signs bytes the caller chose.
 *
 * Two implementations of one interface:
 *   sgn_spawn()  the signer in its own process (`amtca signer`, same binary,
 *                exec'd, over socketpairs); what every front end that parses
 *                outside input uses.  The wire format is docs/PROTOCOL.signer.
 *   sgn_local()  the same code in this process: for administrative commands
 *                run by the CA's operator (init, issue, revoke, credential
 *                add, ...) and for unit tests.
 * Both enforce the same checks, because the process signer runs sgn_local()'s
 * code on its side of the socket.
 *
 * Every function is safe to call from several threads on one `struct sgn`.
 * Functions return 0 or a negative AMTCA_E_* code with an amtca_fail()
 * detail; out-parameters are NULL/0 on failure.
 */
#ifndef AMTCA_SIGNER_SIGNER_H
#define AMTCA_SIGNER_SIGNER_H

#include <stddef.h>
#include <time.h>

#include "ca/store.h"
#include "common/err.h"

struct sgn;

/*
 * Who asks.  The signer decides who that is; a front end only forwards
 * what a client presented.
 *   SGN_WHO_LOCAL  the process that started the signer, acting for itself
 *                  (the operator's enroll/fleet, or the service's own job
 *                  engine).  The signer names it from the socket's peer
 *                  credentials (SO_PEERCRED) as user@host.
 *   SGN_WHO_CERT   a TLS client: the certificate chain it presented, leaf
 *                  first, each DER.  The signer verifies it under the CA,
 *                  finds the recorded admin or EST client by the leaf's
 *                  serial, and checks it is not revoked.
 *   SGN_WHO_BASIC  an EST client's HTTP Basic name and password; `peer` is
 *                  the client's address (rate limits are per name and per
 *                  address, applied before the password KDF runs).
 */
enum sgn_who_kind {
	SGN_WHO_LOCAL = 0,
	SGN_WHO_CERT,
	SGN_WHO_BASIC
};

#define SGN_CHAIN_MAX 4			/* certificates forwarded per client */

struct sgn_who {
	enum sgn_who_kind kind;
	const unsigned char *cert[SGN_CHAIN_MAX];	/* SGN_WHO_CERT */
	size_t certlen[SGN_CHAIN_MAX];
	size_t ncert;
	const char *user;		/* SGN_WHO_BASIC */
	const char *password;		/* SGN_WHO_BASIC; borrowed, never kept */
	const char *peer;		/* client address or NULL */
};

/* What a requester is allowed to be. */
#define SGN_ROLE_LOCAL 0x1		/* the front end itself */
#define SGN_ROLE_ADMIN 0x2		/* admin API client (admin add) */
#define SGN_ROLE_EST   0x4		/* EST client (est-client add) */

/* An authenticated requester, as the signer found it. */
struct sgn_client {
	char *name;			/* record name, or user@host for LOCAL */
	unsigned roles;			/* SGN_ROLE_* */
	char *serial;			/* the certificate it used, or NULL */
	char **allow;			/* EST: names/suffixes it may obtain */
	size_t nallow;
};
void sgn_client_clear(struct sgn_client *c);

/*
 * Authenticate `who`.  AMTCA_E_AUTH when it cannot be authenticated
 * (unknown, wrong password, chain not ours, revoked: HTTP 401),
 * AMTCA_E_RATE when rate-limited (429).  The failure is counted and logged
 * by the signer, aggregated per client per minute; it never writes a
 * record per failed request.
 */
int sgn_auth(struct sgn *s, const struct sgn_who *who,
    struct sgn_client *out) AMTCA_WUR;

/* Certificate profiles the signer issues. */
enum sgn_profile {
	SGN_PROFILE_AMT = 0,	/* AMT WebServer leaf for `device` (LOCAL only) */
	SGN_PROFILE_EST,	/* serverAuth+clientAuth, names in the client's
				   allow list (EST role; see docs/est.md) */
	SGN_PROFILE_SERVICE,	/* the service's own HTTPS certificate (LOCAL) */
	SGN_PROFILE_ADMIN	/* admin client: clientAuth + admin marker
				   (LOCAL, i.e. the operator's CLI) */
};

struct sgn_issue_req {
	enum sgn_profile profile;
	const char *fqdn;		/* the name; never taken from the CSR */
	const char *const *ips;		/* extra iPAddress SANs (policy-checked) */
	size_t nips;
	const char *device;		/* AMT profile: the device's FQDN */
	const unsigned char *csr;	/* PEM or DER, <= AMTCA_CSR_MAX; the
					   signer checks its signature */
	size_t csrlen;
	int days;			/* 0: policy default */
	const char *name;		/* ADMIN profile: the admin's record name */
	int reenroll;			/* EST simplereenroll: `who` must be the
					   client's current certificate, whose
					   names are kept */
	int digest;			/* leaf signature digest, an enum
					   ca_digest (ca/ca.h): 0 the issuer
					   key's default, 2 SHA-384 (AMT 22);
					   copied into ca_request.digest */
};

/*
 * Issue under the policy and the requester's allow list; returns only
 * after the record is durable.  AMTCA_E_AUTH (401), AMTCA_E_DENIED (403:
 * a name outside the allow list, an AMT device's name over EST, a profile
 * this requester may not use), AMTCA_E_POLICY / AMTCA_E_FQDN /
 * AMTCA_E_CSR (400).  Nothing is recorded on failure.
 */
int sgn_issue(struct sgn *s, const struct sgn_who *who,
    const struct sgn_issue_req *req, unsigned char **der, size_t *derlen,
    char **serial) AMTCA_WUR;

/* One certificate record (with DER). AMTCA_E_NOT_FOUND when unknown. */
int sgn_cert_get(struct sgn *s, const char *serial,
    struct store_cert **out) AMTCA_WUR;

/* Which certificates: every set field must match. */
struct sgn_cert_query {
	const char *fqdn;		/* case-insensitive */
	const char *device;		/* recorded AMT device binding */
	const char *status;		/* "valid" | "revoked" | "expired" */
	const char *after;		/* paging: serials after this one */
	size_t limit;			/* 0: no limit */
	int with_der;			/* fill der/der_len */
};
/* Oldest first (by serial when paging).  Free with store_certs_free(). */
int sgn_cert_list(struct sgn *s, const struct sgn_cert_query *q,
    struct store_cert **out, size_t *n) AMTCA_WUR;

/*
 * Revoke with CRLReason `reason`.  ADMIN role or LOCAL; a LOCAL requester
 * that is a front end may only supersede (reason 4) an AMT leaf of a device
 * that has a newer valid one.  *out (if not NULL) is the record after; *was
 * says it was already revoked.
 */
int sgn_revoke(struct sgn *s, const struct sgn_who *who, const char *serial,
    int reason, struct store_cert **out, int *was) AMTCA_WUR;

/*
 * DER CRL of the issuer whose certificate's SHA-1 key identifier is the
 * hex `issuer` (NULL: the current issuing CA), built from the records now.
 */
int sgn_crl(struct sgn *s, const char *issuer, unsigned char **der,
    size_t *len) AMTCA_WUR;

/*
 * AMT credentials, sealed with an AEAD under a non-extractable key in the
 * token; the name is the associated data.  put: LOCAL only (the operator's
 * `credential add`).  get: only for a device with work pending in the
 * operational state, one at a time, rate-limited; *password is released
 * with amtca_secret_free().  The API never returns a password.
 */
/*
 * An audit entry a front end reports (docs/audit.md, docs/PROTOCOL.signer
 * AUDIT_NOTE).  The signer appends it naming the requester it
 * authenticated: "enroll.outcome" (LOCAL only; subject the device FQDN,
 * detail "result=<enrolled|renewed|unchanged|failed> [serial=<s>]
 * [error=...]"), "job.create" / "job.cancel" (an ADMIN client; subject the
 * job id).  Nothing else; rate limited per actor (AMTCA_E_RATE).
 */
int sgn_audit_note(struct sgn *s, const struct sgn_who *who,
    const char *action, const char *subject, const char *detail) AMTCA_WUR;

int sgn_cred_put(struct sgn *s, const char *name, const char *user,
    const char *password) AMTCA_WUR;
int sgn_cred_get(struct sgn *s, const char *name, const char *fqdn,
    char **user, char **password) AMTCA_WUR;

/*
 * Start the signer for the CA home `home` in its own process: the same
 * binary (/proc/self/exe) exec'd as `amtca signer`, with `nconn`
 * socketpairs (0: one per CPU, at least 2) so that requests from several
 * threads run in parallel.  Call before dropping privileges and before
 * starting threads.  The child exits when every socket closes.
 */
int sgn_spawn(const char *home, unsigned nconn, struct sgn **out) AMTCA_WUR;
/*
 * As sgn_spawn(), with SGN_SPAWN_LOG: the signer's one-line key=value
 * events (issue, revoke, credential use, dropped connections) go to this
 * process's stderr, as a service wants.  Without it the signer's stderr is
 * /dev/null, so that a command's output stays its own; failures still
 * come back as the requests' errors.
 */
#define SGN_SPAWN_LOG 0x1
int sgn_spawn_ex(const char *home, unsigned nconn, int flags,
    struct sgn **out) AMTCA_WUR;

/* The same signer in this process (opens the home with its token). */
int sgn_local(const char *home, struct sgn **out) AMTCA_WUR;

/*
 * The core over a home the caller opened and keeps (borrowed: it must
 * outlive the handle), acting for the operator like sgn_local().  Reads
 * need h->store and h->state; issuing and CRLs need h->ca.  For unit
 * tests (a store without a token) and for operator commands that already
 * hold the home.
 */
struct home;
int sgn_local_home(struct home *h, struct sgn **out) AMTCA_WUR;

/* Close the sockets (the child then exits and is reaped) or the local CA. */
void sgn_close(struct sgn *s);

/*
 * `amtca signer --home DIR --fds A,B,...`: the signer process's main, run
 * by the binary sgn_spawn() execs; serves the connections until all close.
 * Not for anyone else to call.
 */
int sgn_signer_main(const char *home, const int *fds, size_t nfds) AMTCA_WUR;

/* The signer process's pid (0 for sgn_local): for tests and logs. */
long sgn_pid(const struct sgn *s);

#endif
