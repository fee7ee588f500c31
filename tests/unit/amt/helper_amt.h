/* Test helpers for tests/unit/amt: fixtures, real AMT captures, a tiny HTTP server. */
#ifndef AMTCA_TEST_HELPER_AMT_H
#define AMTCA_TEST_HELPER_AMT_H

#include <pthread.h>
#include <stddef.h>

/* A fixture below go-wsman-messages/.../responses/ (AMTCA_FIXTURES or
 * tests/fixtures); NUL-terminated, free(); aborts the test when missing. */
char *fx_load(const char *rel, size_t *len);

/* Real captures quoted in docs/amt-wsman-reference.md (see helper_amt.c). */
extern const char cap_already_exists[];		/* AMT 15.0.23, rps AMTMessages.ts */
extern const char cap_destination_unreachable[];	/* go-wsman-messages amterror test */
extern const char cap_401_head[];		/* AMT 11.8.50 401, headers only */
extern const char cap_401_body[];

/* One scripted HTTP response, written in `piece`-byte writes (0 = at once). */
struct tsrv_resp {
	const char *raw;		/* NULL: close without answering */
	size_t len;			/* 0: strlen(raw) */
	size_t piece;
};

#define TSRV_MAX_REQ 16
struct tsrv {
	int lfd;
	int port;
	pthread_t th;
	const struct tsrv_resp *script;
	size_t nscript;
	unsigned nreq;			/* requests received */
	unsigned nconn;			/* connections accepted */
	char *req[TSRV_MAX_REQ];	/* each request: headers + body */
	volatile int stop;
};

/* Listen on 127.0.0.1:<ephemeral> answering request i with script[i]. */
int tsrv_start(struct tsrv *s, const struct tsrv_resp *script, size_t n);
/* Stop and join; the recorded requests stay until tsrv_free(). */
void tsrv_stop(struct tsrv *s);
void tsrv_free(struct tsrv *s);

/* Build "HTTP/1.1 200 OK ... Transfer-Encoding: chunked" around body,
 * with chunk sizes cycling through odd values; malloc'd. */
char *http_chunked(int status, const char *reason, const char *body);
/* As AMT's 401 (exact WWW-Authenticate form), stale "false"/"true". */
char *http_401(const char *stale);

/* Value of `key` in a Digest Authorization header inside `req`; malloc'd or NULL. */
char *auth_param(const char *req, const char *key);

#endif
