/*
 * Integration-test helpers around build/amtsim: spawn one on a private
 * loopback address with the password in a 0600 temp file, wait for its
 * "ready", stop it with SIGTERM; and a raw HTTP/1.1 client for the paths
 * the WS-MAN client library deliberately cannot take (bad Digest headers).
 */
#ifndef AMTCA_TESTS_HELPER_SIM_PROC_H
#define AMTCA_TESTS_HELPER_SIM_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct simh {
	pid_t pid;
	int out_fd;			/* amtsim's stdout */
	char dir[64];			/* private temp dir (password file, state) */
	char pwfile[96];
};

/*
 * A loopback address private to this test process: 127.A.B.k with A.B
 * derived from the pid, so parallel test binaries do not collide.
 */
void simh_addr(char *out, size_t outlen, unsigned k);

/*
 * Start $AMTSIM with --user admin --password-file <tmp> and `args`
 * (NULL-terminated), wait up to 30 s for "ready".  A state file placed in
 * s->dir survives simh_stop() only when `keep_dir` is set there.
 * Returns 0 or -1.
 */
int simh_start(struct simh *s, const char *password, const char *const *args);

/* Reuse s->dir (and its password file) for a restart. */
int simh_restart(struct simh *s, const char *const *args);

/* SIGTERM, wait (10 s, then SIGKILL); exit status, or -1. */
int simh_stop(struct simh *s);

/* Remove s->dir and what is in it. */
void simh_cleanup(struct simh *s);

struct simh_resp {
	int status;			/* 0 when the connection closed first */
	char *head;			/* raw header block, NUL-terminated */
	char *body;			/* de-chunked body, NUL-terminated */
	size_t body_len;
	unsigned nchunks;		/* chunks seen (Transfer-Encoding: chunked) */
};

/*
 * One request on a fresh connection (Connection: close).  `headers` are
 * extra header lines, each ending in "\r\n" (may be NULL).  Returns 0 when
 * a response (or a clean close: status 0) was read, -1 on connect errors.
 */
int simh_http(const char *addr, int port, const char *method,
    const char *path, const char *headers, const char *body,
    struct simh_resp *out);
void simh_resp_free(struct simh_resp *r);

/* Value of header `name` (case-insensitive), malloc'd, or NULL. */
char *simh_header(const struct simh_resp *r, const char *name);

/* Value of Digest parameter `name` in a WWW-Authenticate value, malloc'd. */
char *simh_digest_param(const char *www, const char *name);

#endif
