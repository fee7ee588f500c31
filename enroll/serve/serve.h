/*
 * enroll/serve/serve.h: the HTTPS service's internals, shared by its files
 * (not a public header).  `amtca serve` is a front end: it parses HTTP (via
 * libmicrohttpd; no HTTP parsing of our own), JSON (jansson), EST bodies,
 * and talks WS-MAN through the fleet engine; it never holds the PIN or a
 * PKCS#11 session.  Everything the CA decides goes through `struct sgn`
 * (signer/signer.h), to the signer process.
 *
 *   serve.c    (owner: service core) options, listeners (HTTPS, plain
 *              publication, status), TLS, caps, routing, privilege drop,
 *              signals, logging, the reconcile timer
 *   api.c      /api/v1/... (admin client certificates only), openapi.json
 *   est.c      /.well-known/est/... (RFC 7030)
 *   publish.c  /chain.pem, /chain.p7b, /root.pem, /crl, /crl/<id>.crl,
 *              /ca/<id>.cer
 *   status.c   GET / (HTML) and GET /metrics (Prometheus) on the status
 *              listener
 */
#ifndef AMTCA_ENROLL_SERVE_SERVE_H
#define AMTCA_ENROLL_SERVE_SERVE_H

#include <stddef.h>

#include <openssl/x509.h>

#include "common/err.h"
#include "common/limits.h"
#include "signer/signer.h"

struct home;

struct serve;				/* the running service (serve.c) */
struct MHD_Connection;

/* Which listener a request came in on. */
enum srv_listener { SRV_HTTPS = 0, SRV_PUBLISH, SRV_STATUS };

/* One request, complete (body read within its route's cap). */
struct srv_req {
	enum srv_listener listener;
	const char *method;		/* "GET", "POST", ... */
	const char *path;		/* without the query string */
	const char *content_type;	/* NULL when absent */
	const unsigned char *body;
	size_t bodylen;
	struct MHD_Connection *conn;	/* query arguments, headers */
	struct sgn_who who;		/* what the client presented: its TLS
					   chain (SGN_WHO_CERT), Basic
					   (SGN_WHO_BASIC), or nothing (kind
					   SGN_WHO_LOCAL means anonymous
					   here; never forwarded as such) */
	int anonymous;			/* no credentials presented */
	const char *peer;		/* client address */
};

/* The reply; body malloc'd (free()d by serve.c after sending). */
#define SRV_HDR_MAX 4
struct srv_resp {
	int status;
	const char *ctype;		/* static string */
	unsigned char *body;
	size_t len;
	const char *hdr_name[SRV_HDR_MAX];	/* static strings */
	char *hdr_value[SRV_HDR_MAX];		/* malloc'd */
	size_t nhdr;
};

/* Fill `rs` with status and a one-line JSON reason {"error":"..."}. */
void srv_error(struct srv_resp *rs, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Map an AMTCA_E_* code to an HTTP status (AUTH 401, DENIED 403, RATE
 * 429, LIMIT 413, NOT_FOUND 404, USAGE/CSR/FQDN/POLICY 400, else 500). */
int srv_status_of(int code);
/* Take ownership of a malloc'd body. */
void srv_body(struct srv_resp *rs, int status, const char *ctype,
    unsigned char *body, size_t len);
int srv_header(struct srv_resp *rs, const char *name, const char *value);

/* What handlers may use of the running service. */
struct sgn *serve_sgn(struct serve *s);
struct home *serve_home(struct serve *s);
/* This node's owner string ("host:pid:start:random"): its job claims and
 * leader lease; the lifetime of those (serve --claim-ttl); whether it
 * holds the reconcile leader lease now. */
const char *serve_node(struct serve *s);
int serve_claim_ttl(struct serve *s);
int serve_leader(struct serve *s);
/* One structured log line on stderr: "event=... key=value ...". */
void serve_log(struct serve *s, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * True once SIGTERM/SIGINT arrived (serve.c then stops accepting and calls
 * api_jobs_stop() with what is left of AMTCA_SERVE_STOP_S).
 */
int serve_stopping(struct serve *s);

/* What `amtca serve` was asked to do (cmd_serve.c parses, serve.c runs). */
struct serve_opts {
	const char *listen;		/* HTTPS ADDR:PORT (required) */
	const char *name;		/* --name FQDN: our own certificate */
	const char *tls_cert;		/* or --tls-cert/--tls-key (PEM) */
	const char *tls_key;
	const char *publish_listen;	/* plain HTTP ADDR:PORT, or NULL */
	const char *status_listen;	/* ADDR:PORT or unix:PATH; NULL: the
					   default 127.0.0.1:AMTCA_SERVE_STATUS_PORT */
	const char *publish_url;	/* base URL of the publication, or NULL */
	const char *user;		/* drop to this user when root */
	long reconcile_every_s;		/* 0: never */
	int claim_ttl_s;		/* job claims, device and leader
					   leases (0: AMTCA_CLAIM_TTL_S) */
	unsigned max_connections;	/* per listener */
	unsigned timeout_s;		/* per connection (idle) */
};
/* Run until SIGTERM/SIGINT; 0 on a clean stop. */
int serve_run(const char *home, const struct serve_opts *o) AMTCA_WUR;

/*
 * publish.c: the CA certificates the service hands out (publication, EST
 * cacerts, its client trust list): the current intermediate, the retired
 * ones still in their overlap, the root last.  Borrowed from `h`.
 */
#define SERVE_CAS_MAX (AMTCA_RETIRED_MAX + 2)
size_t serve_ca_certs(struct home *h, X509 *out[SERVE_CAS_MAX]);
/* publish.c: is `path` one of the publication's paths? */
int publish_path(const char *path);
/* publish.c: GET/HEAD of a publication path (any listener but status). */
void publish_handle(struct serve *s, const struct srv_req *rq,
    struct srv_resp *rs);
/* status.c: everything on the status listener. */
void status_handle(struct serve *s, const struct srv_req *rq,
    struct srv_resp *rs);

/* Counters for /metrics (serve.c keeps them). */
struct serve_stats {
	unsigned long long requests;
	unsigned long long errors_4xx;
	unsigned long long errors_5xx;
	long long started;		/* unix time */
	long long tls_not_after;	/* our HTTPS certificate's, 0 unknown */
};
void serve_stats_get(struct serve *s, struct serve_stats *out);

/* est.c: every path under /.well-known/est/ (on SRV_HTTPS). */
void est_handle(struct serve *s, const struct srv_req *rq, struct srv_resp *rs);
/* api.c: every path under /api/v1/. */
void api_handle(struct serve *s, const struct srv_req *rq, struct srv_resp *rs);

/*
 * jobs.c: the admin API's job runner, for serve.c.
 *   api_jobs_start()  after the signer is up and privileges are dropped:
 *                     starts the runner thread and queues every job a
 *                     killed or stopped service left "running" (each is
 *                     continued, its finished devices carried).
 *   api_jobs_stop()   on SIGTERM (deadline 10000 ms): no further device;
 *                     AMT calls in flight are aborted before the deadline
 *                     and every device is left recorded, reconcilable; the
 *                     job stays "running" for the next start.  Returns by
 *                     the deadline even if the runner has not finished.
 *   api_reconcile()   the reconcile timer: queue one job over every known
 *                     device with a sealed credential (not retired, not
 *                     compromised), unless a reconcile already waits or
 *                     runs.  0, or a negative AMTCA_E_* code.
 */
int api_jobs_start(struct serve *s) AMTCA_WUR;
void api_jobs_stop(struct serve *s, long deadline_ms);
int api_reconcile(struct serve *s) AMTCA_WUR;

#endif
