/*
 * signer/proc.h: the signer's private pieces shared by core.c, proc.c and
 * proto.c (not a public header; front ends use signer/signer.h).
 *
 *   struct sgn        one handle for both modes: a core in this process
 *                     (sgn_local) or a pool of connections to the signer
 *                     process (sgn_spawn)
 *   sgn_core_*()      the requests on the signer's side: what sgn_local()
 *                     calls directly and the signer process calls for each
 *                     decoded message
 *   sgn_msg, sgn_proto_*()  the wire format of docs/PROTOCOL.signer
 */
#ifndef AMTCA_SIGNER_PROC_H
#define AMTCA_SIGNER_PROC_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/limits.h"
#include "signer/core.h"
#include "signer/signer.h"

/* --- core.c ----------------------------------------------------------- */

/*
 * Open the home `dir` for the signer (HOME_STORE|HOME_SIGNER) and run the
 * auth and cred parts' init.  `frontend`: requests come from a front end
 * over the socket (the process signer), so SGN_WHO_LOCAL is the front end,
 * not the operator: see sgn_core_revoke() and the ADMIN profile.
 * `local_name` (NULL: user@host of this process) names SGN_WHO_LOCAL.
 */
int sgn_core_open(const char *dir, int frontend, const char *local_name,
    struct sgn_core **out) AMTCA_WUR;
void sgn_core_free(struct sgn_core *c);

int sgn_core_issue(struct sgn_core *c, const struct sgn_who *who,
    const struct sgn_issue_req *req, unsigned char **der, size_t *derlen,
    char **serial) AMTCA_WUR;
int sgn_core_cert_get(struct sgn_core *c, const char *serial,
    struct store_cert **out) AMTCA_WUR;
int sgn_core_cert_list(struct sgn_core *c, const struct sgn_cert_query *q,
    struct store_cert **out, size_t *n) AMTCA_WUR;
int sgn_core_revoke(struct sgn_core *c, const struct sgn_who *who,
    const char *serial, int reason, struct store_cert **out, int *was) AMTCA_WUR;
int sgn_core_crl(struct sgn_core *c, const char *issuer, unsigned char **der,
    size_t *len) AMTCA_WUR;

/* "user@host" of uid `uid` on this host, malloc'd. */
int sgn_user_at_host(uid_t uid, char **out) AMTCA_WUR;

/* --- proto.c: docs/PROTOCOL.signer --------------------------------- */

enum sgn_msg_type {
	SGN_MSG_HELLO = 1,		/* signer -> front end, once, on the
					   first connection: it opened the home */
	SGN_MSG_AUTH,
	SGN_MSG_ISSUE,
	SGN_MSG_CERT_GET,
	SGN_MSG_CERT_LIST,
	SGN_MSG_REVOKE,
	SGN_MSG_CRL,
	SGN_MSG_CRED_PUT,
	SGN_MSG_CRED_GET,
	SGN_MSG_AUDIT_NOTE,
	SGN_MSG__LAST = SGN_MSG_AUDIT_NOTE,
	SGN_MSG_REPLY = 0x80		/* | the request's type */
};

/*
 * One message, decoded or to encode.  Which fields count depends on
 * `type`; decoded strings and blobs are owned by the message (freed, and
 * wiped, by sgn_msg_clear()), so are `certs` and `client`.
 */
struct sgn_msg {
	uint8_t type;
	uint32_t id;
	/* requests */
	struct sgn_who who;		/* AUTH, ISSUE, REVOKE */
	struct sgn_issue_req issue;	/* ISSUE */
	const char *ips[AMTCA_IPS_MAX];
	struct sgn_cert_query query;	/* CERT_LIST */
	const char *serial;		/* CERT_GET, REVOKE; reply ISSUE */
	int reason;			/* REVOKE */
	const char *issuer;		/* CRL, or NULL */
	const char *name;		/* CRED_PUT, CRED_GET */
	const char *user;		/* CRED_PUT; reply CRED_GET */
	const char *password;		/* CRED_PUT; reply CRED_GET */
	const char *fqdn;		/* CRED_GET */
	const char *action;		/* AUDIT_NOTE */
	const char *subject;		/* AUDIT_NOTE */
	const char *detail;		/* AUDIT_NOTE */
	/* replies (and HELLO) */
	int32_t result;			/* 0 or AMTCA_E_* */
	const char *errmsg;		/* result != 0 */
	struct sgn_client client;	/* AUTH */
	const unsigned char *der;	/* ISSUE, CRL */
	size_t derlen;
	struct store_cert *certs;	/* CERT_GET (1), CERT_LIST, REVOKE (1) */
	size_t ncerts;
	int was;			/* REVOKE */
	/* decoder-owned storage */
	void **owned;
	size_t nowned, capowned;
	int owns_certs;			/* certs/client were decoded */
};

void sgn_msg_init(struct sgn_msg *m, uint8_t type, uint32_t id);
void sgn_msg_clear(struct sgn_msg *m);

/*
 * Encode `m` as one frame (u32 length first) into *out (malloc'd; wipe
 * and free it with sgn_proto_free()).  AMTCA_E_LIMIT when a field or the
 * whole exceeds its cap.
 */
int sgn_proto_encode(const struct sgn_msg *m, unsigned char **out,
    size_t *len) AMTCA_WUR;
void sgn_proto_free(unsigned char *buf, size_t len);

/*
 * Decode one frame body (what follows the u32 length: type, id, fields;
 * `len` bytes, at most `max`) into `m` (initialised here).  Strict: every
 * field within its cap, free text valid UTF-8 without control characters,
 * no trailing bytes, no unknown type.  `want_reply` says which side is
 * reading: a signer accepts only requests, a front end only replies and
 * HELLO.  AMTCA_E_IPC with a one-line reason otherwise.
 */
int sgn_proto_decode(const unsigned char *buf, size_t len, size_t max,
    int want_reply, struct sgn_msg *m) AMTCA_WUR;

/* --- the handle ------------------------------------------------------- */

struct sgn_conn {
	int fd;				/* -1 once dead */
	int busy;
	uint32_t next_id;
};

struct sgn {
	struct sgn_core *core;		/* sgn_local */
	pid_t pid;			/* sgn_spawn: the child */
	struct sgn_conn *conn;
	unsigned nconn;
	pthread_mutex_t lock;		/* guards conn[].busy and fd */
	pthread_cond_t freed;
	int sync_up;			/* lock and freed initialised */
};

/* proc.c: each sgn_* call in process mode. */
int sgn_proc_call(struct sgn *s, struct sgn_msg *req, struct sgn_msg *rep) AMTCA_WUR;
void sgn_proc_close(struct sgn *s);

#endif
