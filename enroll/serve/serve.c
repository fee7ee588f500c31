/*
 * enroll/serve/serve.c: `amtca serve`'s core.  Listeners (HTTPS, plain
 * publication, status) on libmicrohttpd, TLS 1.2/1.3 through its GnuTLS,
 * caps, routing to the handlers of api.c, est.c, publish.c and status.c,
 * the service's own certificate (--name) and its renewal, the privilege
 * drop, signals, logging and the reconcile timer.
 *
 * Start order (docs/serve.md): open the home's operational state only
 * (never the token nor the CA's records), start the signer process, bind every socket, drop to
 * --user, then start threads (MHD daemons, timers) and print "ready".
 *
 * Threads: MHD runs one thread per connection (the handlers block on the
 * signer and on SQLite; --max-connections bounds the threads), plus a
 * renewal thread and a reconcile thread; the main thread waits for
 * SIGTERM/SIGINT (stop) and SIGHUP (renew the --name certificate now) in
 * sigwait().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/devices.h"
#include "enroll/home.h"
#include "enroll/lease.h"
#include "enroll/serve/serve.h"

/* TLS 1.2 and 1.3 only, GnuTLS's NORMAL otherwise. */
#define SERVE_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define SERVE_STATE_SUBDIR "state/serve"

struct lctx {
	struct serve *s;
	enum srv_listener which;
};

struct serve {
	const struct serve_opts *o;
	const char *homedir;
	struct home *h;
	struct sgn *sg;
	int fd[3];			/* bound, listening; -1 when unused */
	char *unix_path;		/* status socket to unlink at exit */
	struct MHD_Daemon *d[3];
	struct lctx lc[3];
	pthread_mutex_t mu;		/* tls_*, stats, renew_now */
	pthread_mutex_t swap_mu;	/* d[]: the renewal's swap, shutdown */
	int renew_now;			/* SIGHUP: renew at once */
	pthread_cond_t cv;		/* timers wait on it; stop wakes them */
	atomic_int stop;
	char *tls_cert;			/* PEM: leaf, then the intermediate */
	char *tls_key;			/* PEM; wiped */
	char *trust;			/* PEM: our CA (requests client certs) */
	time_t tls_nb, tls_na;
	int statefd;			/* <home>/state/serve, O_DIRECTORY */
	uid_t uid;			/* after the drop */
	gid_t gid;
	pthread_t renew_t, recon_t;
	int renew_started, recon_started;
	int jobs_started;		/* api_jobs_start() succeeded */
	struct serve_stats st;
	char *node;			/* this node's owner string: its job
					   claims and leader lease */
	atomic_int leader;		/* holds the reconcile leader lease */
};

/* The request being read: its route's body cap and the body so far. */
struct creq {
	size_t cap;
	unsigned char *buf;
	size_t len, alloc;		/* alloc: bytes usable, +1 for a NUL */
	int too_big;
	size_t discarded;		/* bytes past the cap, dropped */
	struct timespec t0;		/* headers complete (monotonic) */
	int started;
};

/* ------------------------------------------------------------ helpers */

void
srv_body(struct srv_resp *rs, int status, const char *ctype,
    unsigned char *body, size_t len)
{
	free(rs->body);
	rs->status = status;
	rs->ctype = ctype;
	rs->body = body;
	rs->len = len;
}

void
srv_error(struct srv_resp *rs, int status, const char *fmt, ...)
{
	char msg[256], *out = NULL;
	size_t o = 0;
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The reason may quote what the client sent (a path, a parameter
	 * name) and may be cut inside a UTF-8 sequence: json_put_string()
	 * escapes it and keeps the body valid JSON. */
	if ((f = open_memstream(&out, &o)) == NULL) {
		srv_body(rs, 500, "application/json", NULL, 0);
		return;
	}
	fputs("{\"error\":", f);
	json_put_string(f, msg);
	fputs("}\n", f);
	if (fclose(f) != 0 || out == NULL) {
		free(out);
		srv_body(rs, 500, "application/json", NULL, 0);
		return;
	}
	srv_body(rs, status, "application/json", (unsigned char *)out, o);
}

int
srv_status_of(int code)
{
	switch (code) {
	case AMTCA_E_AUTH:
		return 401;
	case AMTCA_E_DENIED:
		return 403;
	case AMTCA_E_RATE:
		return 429;
	case AMTCA_E_LIMIT:
		return 413;
	case AMTCA_E_NOT_FOUND:
		return 404;
	case AMTCA_E_USAGE:
	case AMTCA_E_CSR:
	case AMTCA_E_FQDN:
	case AMTCA_E_POLICY:
		return 400;
	default:
		return 500;
	}
}

int
srv_header(struct srv_resp *rs, const char *name, const char *value)
{
	char *v;

	if (rs->nhdr >= SRV_HDR_MAX)
		return AMTCA_E_LIMIT;
	if (strpbrk(value, "\r\n") != NULL)
		return AMTCA_E_USAGE;
	if ((v = strdup(value)) == NULL)
		return AMTCA_E_NOMEM;
	rs->hdr_name[rs->nhdr] = name;
	rs->hdr_value[rs->nhdr++] = v;
	return 0;
}

static void
resp_clear(struct srv_resp *rs)
{
	size_t i;

	free(rs->body);
	for (i = 0; i < rs->nhdr; i++)
		free(rs->hdr_value[i]);
	memset(rs, 0, sizeof(*rs));
}

struct sgn *
serve_sgn(struct serve *s)
{
	return s->sg;
}

struct home *
serve_home(struct serve *s)
{
	return s->h;
}

const char *
serve_node(struct serve *s)
{
	return s->node;
}

int
serve_claim_ttl(struct serve *s)
{
	return s->o->claim_ttl_s > 0 ? s->o->claim_ttl_s : AMTCA_CLAIM_TTL_S;
}

int
serve_leader(struct serve *s)
{
	return atomic_load(&s->leader);
}

int
serve_stopping(struct serve *s)
{
	return atomic_load(&s->stop);
}

void
serve_stats_get(struct serve *s, struct serve_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	pthread_mutex_unlock(&s->mu);
}

/*
 * One line on stderr: "ts=... event=EVENT key=value ...".  Bytes that
 * would break the line (controls, non-ASCII) become '?': values that come
 * from clients are escaped by the callers (log_value()).
 */
void
serve_log(struct serve *s, const char *event, const char *fmt, ...)
{
	char line[1024], ts[32];
	size_t i;
	int n;
	va_list ap;
	time_t now = time(NULL);
	struct tm tm;

	(void)s;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof(line), "ts=%s event=%s ", ts, event);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] > 0x7e)
			line[i] = '?';
	fprintf(stderr, "%s\n", line);
}

/* A client-supplied value for a log line: printable, no spaces or '"'. */
static void
log_value(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o + 4 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		if (c > 0x20 && c < 0x7f && c != '"' && c != '%' && c != '=') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

/* -------------------------------------------------------- listeners */

/*
 * "ADDR:PORT" or "[V6]:PORT" into a bound, listening socket; with out
 * NULL only check the form (before anything slow runs).
 */
static int
bind_tcp(const char *spec, const char *what, int *out)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints, *ai = NULL;
	int fd = -1, one = 1, e, ret = AMTCA_E_INTERNAL;
	size_t hl;

	if (out != NULL)
		*out = -1;
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (rb == NULL || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - spec - 1);
		colon = rb + 1;
		spec++;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			goto bad;
		hl = (size_t)(colon - spec);
	}
	port = colon + 1;
	if (hl == 0 || hl >= sizeof(host) || *port == '\0')
		goto bad;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if ((e = getaddrinfo(host, port, &hints, &ai)) != 0)
		goto bad;
	if (out == NULL) {
		ret = 0;
		goto out;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, 128) != 0) {
		ret = amtca_fail(AMTCA_E_IO, "%s %s: %s", what, spec,
		    strerror(errno));
		goto out;
	}
	*out = fd;
	fd = -1;
	ret = 0;
	goto out;
bad:
	ret = amtca_fail(AMTCA_E_USAGE, "%s \"%.64s\" is not ADDR:PORT "
	    "(numeric address)", what, spec);
out:
	if (fd >= 0)
		close(fd);
	if (ai != NULL)
		freeaddrinfo(ai);
	return ret;
}

/* "unix:PATH": a stream socket, mode 0660, owned by the service's user. */
static int
bind_unix(struct serve *s, const char *path, int *out)
{
	struct sockaddr_un sun;
	int fd = -1, ret = AMTCA_E_INTERNAL;
	struct stat st;

	*out = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) == 0 || strlen(path) >= sizeof(sun.sun_path)) {
		ret = amtca_fail(AMTCA_E_USAGE, "--status-listen unix: path is "
		    "empty or longer than %zu bytes", sizeof(sun.sun_path) - 1);
		goto out;
	}
	memcpy(sun.sun_path, path, strlen(path));
	/* A stale socket of an earlier run goes; anything else stays. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			ret = amtca_fail(AMTCA_E_EXISTS, "--status-listen %s "
			    "exists and is not a socket", path);
			goto out;
		}
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0660) != 0 ||
	    (geteuid() == 0 && chown(path, s->uid, s->gid) != 0) ||
	    listen(fd, 64) != 0) {
		ret = amtca_fail(AMTCA_E_IO, "--status-listen unix:%s: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((s->unix_path = strdup(path)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*out = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* --------------------------------------------------------- requests */

static size_t
body_cap(enum srv_listener l, const char *path)
{
	if (l == SRV_HTTPS && strncmp(path, "/.well-known/est/", 17) == 0)
		return AMTCA_SERVE_EST_BODY_MAX;
	if (l == SRV_HTTPS && strncmp(path, "/api/v1/", 8) == 0)
		return AMTCA_SERVE_API_BODY_MAX;
	return 0;
}

static void
route(struct serve *s, const struct srv_req *rq, struct srv_resp *rs)
{
	int getlike = strcmp(rq->method, "GET") == 0 ||
	    strcmp(rq->method, "HEAD") == 0;

	if (rq->listener == SRV_STATUS) {
		status_handle(s, rq, rs);
		return;
	}
	if (rq->listener == SRV_HTTPS &&
	    strncmp(rq->path, "/.well-known/est/", 17) == 0) {
		est_handle(s, rq, rs);
		return;
	}
	if (rq->listener == SRV_HTTPS && strncmp(rq->path, "/api/v1/", 8) == 0) {
		api_handle(s, rq, rs);
		return;
	}
	if (publish_path(rq->path)) {
		if (!getlike) {
			srv_error(rs, 405, "method %s not allowed here",
			    rq->method);
			(void)srv_header(rs, "Allow", "GET, HEAD");
			return;
		}
		publish_handle(s, rq, rs);
		return;
	}
	srv_error(rs, 404, "no such resource");
}

/* What the client presented on this connection: certificate chain. */
static void
who_cert(struct MHD_Connection *c, struct sgn_who *who)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *peers;
	unsigned int n = 0, i;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return;
	peers = gnutls_certificate_get_peers(
	    (gnutls_session_t)ci->tls_session, &n);
	if (peers == NULL || n == 0)
		return;
	who->kind = SGN_WHO_CERT;
	for (i = 0; i < n && i < SGN_CHAIN_MAX; i++) {
		who->cert[i] = peers[i].data;
		who->certlen[i] = peers[i].size;
	}
	who->ncert = i;
}

static void
peer_of(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	snprintf(buf, len, "unknown");
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		    (socklen_t)len);
	else if (sa->sa_family == AF_UNIX)
		snprintf(buf, len, "unix");
}

static enum MHD_Result
send_resp(struct serve *s, struct MHD_Connection *c, struct srv_resp *rs,
    const char *method, const char *path, const char *peer)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char lp[256], lm[40];
	size_t i;

	if (rs->status == 0)
		srv_error(rs, 500, "no response");
	r = MHD_create_response_from_buffer(rs->len, rs->body,
	    MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		resp_clear(rs);
		return MHD_NO;
	}
	rs->body = NULL;		/* MHD frees it */
	if (rs->ctype != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		    rs->ctype);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	for (i = 0; i < rs->nhdr; i++)
		MHD_add_response_header(r, rs->hdr_name[i], rs->hdr_value[i]);
	ret = MHD_queue_response(c, (unsigned int)rs->status, r);
	MHD_destroy_response(r);
	log_value(path, lp, sizeof(lp));
	log_value(method, lm, sizeof(lm));
	serve_log(s, "request", "method=%s path=%s status=%d peer=%s",
	    lm, lp, rs->status, peer);
	pthread_mutex_lock(&s->mu);
	s->st.requests++;
	if (rs->status >= 500)
		s->st.errors_5xx++;
	else if (rs->status >= 400)
		s->st.errors_4xx++;
	pthread_mutex_unlock(&s->mu);
	resp_clear(rs);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct lctx *lc = cls;
	struct serve *s = lc->s;
	struct creq *q = *con_cls;
	struct srv_req rq;
	struct srv_resp rs;
	char peer[INET6_ADDRSTRLEN + 8], *user = NULL, *pass = NULL;
	enum MHD_Result ret;

	(void)version;
	memset(&rs, 0, sizeof(rs));
	if (q == NULL) {
		const char *cl;
		long long n;

		if ((q = calloc(1, sizeof(*q))) == NULL)
			return MHD_NO;
		*con_cls = q;
		clock_gettime(CLOCK_MONOTONIC, &q->t0);
		q->cap = body_cap(lc->which, url);
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && (n = strtoll(cl, NULL, 10)) > 0 &&
		    (unsigned long long)n > q->cap) {
			const char *ex = MHD_lookup_connection_value(c,
			    MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

			q->too_big = 1;
			/*
			 * A client that sends its body without waiting for
			 * "100 Continue" would meet a closed connection (a
			 * reset, not our 413) if we answered now: read and
			 * drop what it sends, then answer, unless that is
			 * more than we ever drop.
			 */
			if ((ex == NULL || strcasecmp(ex, "100-continue") != 0) &&
			    (unsigned long long)n - q->cap <=
			    AMTCA_SERVE_DISCARD_MAX)
				return MHD_YES;
			/* Refused before a byte of the body is read. */
			q->started = 1;
			peer_of(c, peer, sizeof(peer));
			srv_error(&rs, 413, "request body larger than %zu bytes",
			    q->cap);
			return send_resp(s, c, &rs, method, url, peer);
		}
		return MHD_YES;
	}
	if (*upload_size != 0) {
		struct timespec now;

		/* A body that trickles in: the idle timeout alone would let
		   it hold its thread for ever. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - q->t0.tv_sec > (time_t)s->o->timeout_s *
		    AMTCA_SERVE_BODY_TIMEOUTS) {
			char lm[40];

			peer_of(c, peer, sizeof(peer));
			log_value(method, lm, sizeof(lm));
			serve_log(s, "request", "method=%s status=408 peer=%s "
			    "msg=\"body too slow\"", lm, peer);
			return MHD_NO;
		}
		if (!q->too_big && q->len + *upload_size <= q->cap) {
			size_t need = q->len + *upload_size;

			/* Grown as the body comes: a slow client announcing
			   nothing holds little memory. */
			if (need > q->alloc) {
				size_t na = q->alloc < 16384 ? 16384 : q->alloc;
				unsigned char *nb;

				while (na < need)
					na *= 2;
				if (na > q->cap)
					na = q->cap;
				if ((nb = realloc(q->buf, na + 1)) == NULL)
					return MHD_NO;
				q->buf = nb;
				q->alloc = na;
			}
			memcpy(q->buf + q->len, upload, *upload_size);
			q->len += *upload_size;
		} else {
			/*
			 * Chunked past the cap.  libmicrohttpd cannot answer
			 * in the middle of a body, so the rest is discarded
			 * as it arrives (nothing kept) and answered 413 at
			 * its end; a body that goes on past
			 * AMTCA_SERVE_DISCARD_MAX more is cut off.
			 */
			if (!q->too_big) {
				q->too_big = 1;
				if (q->buf != NULL)
					explicit_bzero(q->buf, q->len);
				free(q->buf);
				q->buf = NULL;
				q->len = q->alloc = 0;
			}
			q->discarded += *upload_size;
			if (q->discarded > AMTCA_SERVE_DISCARD_MAX) {
				char lm[40];

				peer_of(c, peer, sizeof(peer));
				log_value(method, lm, sizeof(lm));
				serve_log(s, "request", "method=%s status=413 "
				    "peer=%s msg=\"body cut off\"", lm, peer);
				return MHD_NO;
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	peer_of(c, peer, sizeof(peer));
	if (q->started)
		return MHD_YES;	/* response already queued */
	q->started = 1;
	if (q->too_big) {
		srv_error(&rs, 413, "request body larger than %zu bytes", q->cap);
		return send_resp(s, c, &rs, method, url, peer);
	}
	if (atomic_load(&s->stop)) {
		srv_error(&rs, 503, "shutting down");
		return send_resp(s, c, &rs, method, url, peer);
	}
	memset(&rq, 0, sizeof(rq));
	rq.listener = lc->which;
	rq.method = method;
	rq.path = url;
	rq.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	rq.body = q->buf;
	rq.bodylen = q->len;
	if (q->buf != NULL)
		q->buf[q->len] = '\0';
	rq.conn = c;
	rq.peer = peer;
	rq.who.kind = SGN_WHO_LOCAL;
	rq.who.peer = peer;
	rq.anonymous = 1;
	if (lc->which == SRV_HTTPS) {
		who_cert(c, &rq.who);
		if (rq.who.kind == SGN_WHO_CERT)
			rq.anonymous = 0;
		else if ((user = MHD_basic_auth_get_username_password(c,
		    &pass)) != NULL) {
			rq.who.kind = SGN_WHO_BASIC;
			rq.who.user = user;
			rq.who.password = pass != NULL ? pass : "";
			rq.anonymous = 0;
		}
	}
	route(s, &rq, &rs);
	if (pass != NULL) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	if (user != NULL)
		MHD_free(user);
	ret = send_resp(s, c, &rs, method, url, peer);
	return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct creq *q = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (q != NULL) {
		if (q->buf != NULL)
			explicit_bzero(q->buf, q->len);
		free(q->buf);
		free(q);
	}
	*con_cls = NULL;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	for (n = 0; msg[n] != '\0'; n++)
		if (msg[n] == '"')
			msg[n] = '\'';
	serve_log(cls, "httpd", "msg=\"%s\"", msg);
}

static struct MHD_Daemon *
start_daemon(struct serve *s, enum srv_listener which, int fd)
{
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION |
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
	    MHD_USE_ERROR_LOG;
	struct MHD_OptionItem ops[16];
	size_t n = 0;

	s->lc[which].s = s;
	s->lc[which].which = which;
#define OPT(o, v, p) do { ops[n].option = (o); ops[n].value = (intptr_t)(v); \
	ops[n].ptr_value = (p); n++; } while (0)
	OPT(MHD_OPTION_LISTEN_SOCKET, fd, NULL);
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, AMTCA_SERVE_HEADER_MAX, NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, s->o->max_connections, NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, s->o->timeout_s, NULL);
	OPT(MHD_OPTION_THREAD_STACK_SIZE, AMTCA_SERVE_STACK, NULL);
	if (which == SRV_HTTPS) {
		flags |= MHD_USE_TLS;
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key);
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert);
		OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, SERVE_TLS_PRIORITIES);
		/* A trust list makes MHD request (not require) a client
		   certificate; the signer verifies what comes. */
		OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, s->trust);
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
	/* The callbacks with their closures, as varargs. */
	return MHD_start_daemon(flags, 0, NULL, NULL, on_request, &s->lc[which],
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_ARRAY, ops,
	    MHD_OPTION_END);
}

/* ------------------------------------------- the service's certificate */

/* Read a regular file `name` in directory `dfd` (at most `max` bytes). */
static int
read_at(int dfd, const char *name, size_t max, char **out)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd = -1, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		ret = errno == ENOENT ? AMTCA_E_NOT_FOUND :
		    amtca_fail(AMTCA_E_IO, "%s: %s", name, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max) {
		ret = amtca_fail(AMTCA_E_IO, "%s is not a regular file of at "
		    "most %zu bytes", name, max);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size &&
	    (n = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	*out = buf;
	buf = NULL;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/*
 * Replace `name` in `dfd` atomically and durably: the directory was opened
 * before the privilege drop, and the home above it may no longer be
 * traversable by us, hence the *at() calls.
 */
static int
write_at(int dfd, const char *name, const void *buf, size_t len, mode_t mode)
{
	char tmp[128];
	unsigned char rnd[8];
	const unsigned char *p = buf;
	size_t done = 0;
	ssize_t n;
	int fd = -1, r, ret = AMTCA_E_INTERNAL;

	if ((r = amtca_random(rnd, sizeof(rnd))) != 0)
		return r;
	snprintf(tmp, sizeof(tmp), ".%s.%02x%02x%02x%02x%02x%02x%02x%02x", name,
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if ((fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode)) < 0) {
		ret = amtca_fail(AMTCA_E_IO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	while (done < len && (n = write(fd, p + done, len - done)) > 0)
		done += (size_t)n;
	if (done != len || fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		ret = amtca_fail(AMTCA_E_IO, "%s: %s", tmp, strerror(errno));
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, name) != 0) {
		ret = amtca_fail(AMTCA_E_IO, "%s: %s", name, strerror(errno));
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	(void)fsync(dfd);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static char *
bio_str(BIO *b)
{
	char *p = NULL, *out;
	long n = BIO_get_mem_data(b, &p);

	if (n < 0 || (out = malloc((size_t)n + 1)) == NULL)
		return NULL;
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
	return out;
}

static time_t
asn1_time_t(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static time_t
renew_at(time_t nb, time_t na)
{
	return nb + (na - nb) / 3 * 2;
}

/*
 * Take PEM cert (leaf first) and key for the HTTPS listener: the key must
 * be the leaf's; with `fqdn`, the leaf must name it and be issued by our
 * intermediate.  Fills s->tls_* (under the lock: the renewal thread).
 */
static int
tls_take(struct serve *s, char *cert, char *key, const char *fqdn,
    int check_fresh)
{
	BIO *b = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	time_t nb, na, now = time(NULL);
	int ret = AMTCA_E_INTERNAL;

	if ((b = BIO_new_mem_buf(cert, -1)) == NULL ||
	    (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "TLS certificate is not PEM");
		goto out;
	}
	BIO_free(b);
	if ((b = BIO_new_mem_buf(key, -1)) == NULL ||
	    (k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "TLS key is not a PEM private "
		    "key");
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "the TLS key does not match "
		    "the certificate");
		goto out;
	}
	nb = asn1_time_t(X509_get0_notBefore(x));
	na = asn1_time_t(X509_get0_notAfter(x));
	if (fqdn != NULL && (X509_check_host(x, fqdn, 0, 0, NULL) != 1 ||
	    X509_check_issued(s->h->inter, x) != X509_V_OK ||
	    X509_verify(x, X509_get0_pubkey(s->h->inter)) != 1)) {
		ret = amtca_fail(AMTCA_E_CERT, "stored service certificate is "
		    "not ours for %s", fqdn);
		goto out;
	}
	if (check_fresh && (now >= renew_at(nb, na) || now < nb)) {
		ret = amtca_fail(AMTCA_E_CERT, "stored service certificate is "
		    "due for renewal");
		goto out;
	}
	if (!check_fresh && now >= na) {
		ret = amtca_fail(AMTCA_E_CERT, "TLS certificate expired");
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	s->tls_cert = cert;
	s->tls_key = key;
	s->tls_nb = nb;
	s->tls_na = na;
	s->st.tls_not_after = na;
	pthread_mutex_unlock(&s->mu);
	ret = 0;
out:
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
	return ret;
}

static void
key_free(char *key)
{
	if (key != NULL)
		explicit_bzero(key, strlen(key));
	free(key);
}

/* A fresh P-256 key, a CSR, the signer's SERVICE certificate, kept. */
static int
svc_issue(struct serve *s, char **certp, char **keyp)
{
	EVP_PKEY *k = NULL;
	X509_REQ *rq = NULL;
	X509_NAME *nm = NULL;
	X509 *leaf = NULL;
	BIO *b = NULL;
	unsigned char *csr = NULL, *der = NULL;
	const unsigned char *p;
	char *serial = NULL, *cert = NULL, *key = NULL, kn[300], cn[300];
	size_t derlen = 0;
	int n, r, ret = AMTCA_E_INTERNAL;
	struct sgn_who who;
	struct sgn_issue_req ir;

	*certp = *keyp = NULL;
	if ((k = EVP_EC_gen("P-256")) == NULL ||
	    (rq = X509_REQ_new()) == NULL || (nm = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8,
	    (const unsigned char *)s->o->name, -1, -1, 0) ||
	    !X509_REQ_set_subject_name(rq, nm) ||
	    !X509_REQ_set_pubkey(rq, k) ||
	    X509_REQ_sign(rq, k, EVP_sha256()) <= 0 ||
	    (n = i2d_X509_REQ(rq, &csr)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_CSR, "cannot make the service's "
		    "key and CSR");
		goto out;
	}
	memset(&who, 0, sizeof(who));
	who.kind = SGN_WHO_LOCAL;
	memset(&ir, 0, sizeof(ir));
	ir.profile = SGN_PROFILE_SERVICE;
	ir.fqdn = s->o->name;
	ir.csr = csr;
	ir.csrlen = (size_t)n;
	if ((r = sgn_issue(s->sg, &who, &ir, &der, &derlen, &serial)) != 0) {
		ret = r;
		goto out;
	}
	p = der;
	if ((leaf = d2i_X509(NULL, &p, (long)derlen)) == NULL ||
	    (b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509(b, leaf) || !PEM_write_bio_X509(b, s->h->inter) ||
	    (cert = bio_str(b)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode the service "
		    "certificate");
		goto out;
	}
	BIO_free(b);
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) ||
	    (key = bio_str(b)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode the service key");
		goto out;
	}
	snprintf(kn, sizeof(kn), "%s.key", s->o->name);
	snprintf(cn, sizeof(cn), "%s.pem", s->o->name);
	if ((r = write_at(s->statefd, kn, key, strlen(key), 0600)) != 0 ||
	    (r = write_at(s->statefd, cn, cert, strlen(cert), 0600)) != 0) {
		ret = r;
		goto out;
	}
	serve_log(s, "service_cert", "fqdn=%s serial=%s", s->o->name, serial);
	*certp = cert;
	*keyp = key;
	cert = key = NULL;
	ret = 0;
out:
	if (b != NULL) {
		(void)BIO_reset(b);
		BIO_free(b);
	}
	key_free(key);
	free(cert);
	free(serial);
	free(der);
	OPENSSL_free(csr);
	X509_free(leaf);
	X509_NAME_free(nm);
	X509_REQ_free(rq);
	EVP_PKEY_free(k);
	return ret;
}

/* --name: the stored certificate while fresh, else a new one. */
static int
svc_cert(struct serve *s)
{
	char kn[300], cn[300], *cert = NULL, *key = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	snprintf(kn, sizeof(kn), "%s.key", s->o->name);
	snprintf(cn, sizeof(cn), "%s.pem", s->o->name);
	if (read_at(s->statefd, cn, AMTCA_CERT_FILE_MAX, &cert) == 0 &&
	    read_at(s->statefd, kn, AMTCA_CERT_FILE_MAX, &key) == 0 &&
	    tls_take(s, cert, key, s->o->name, 1) == 0) {
		serve_log(s, "service_cert", "fqdn=%s reused=1", s->o->name);
		return 0;
	}
	amtca_err_clear();
	free(cert);
	key_free(key);
	cert = key = NULL;
	if ((r = svc_issue(s, &cert, &key)) != 0 ||
	    (r = tls_take(s, cert, key, s->o->name, 0)) != 0) {
		ret = r;
		goto out;
	}
	cert = key = NULL;
	ret = 0;
out:
	free(cert);
	key_free(key);
	return ret;
}

static int
file_cert(struct serve *s)
{
	unsigned char *cert = NULL, *key = NULL;
	size_t cl, kl;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = amtca_file_read(s->o->tls_cert, AMTCA_CERT_FILE_MAX, &cert,
	    &cl)) != 0 ||
	    (r = amtca_file_read(s->o->tls_key, AMTCA_CERT_FILE_MAX, &key,
	    &kl)) != 0 ||
	    (r = tls_take(s, (char *)cert, (char *)key, NULL, 0)) != 0) {
		ret = r;
		goto out;
	}
	cert = key = NULL;
	ret = 0;
out:
	free(cert);
	key_free((char *)key);
	return ret;
}

/* Wait on the timers' condition until `until` (monotonic) or stop. */
static void
timer_wait(struct serve *s, const struct timespec *until)
{
	pthread_mutex_lock(&s->mu);
	while (!atomic_load(&s->stop) && !s->renew_now &&
	    pthread_cond_timedwait(&s->cv, &s->mu, until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&s->mu);
}

static void
in_seconds(struct timespec *ts, long sec)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += sec;
}

/*
 * Renewal: at 2/3 of the lifetime (or on SIGHUP), a new key and
 * certificate; a second HTTPS daemon starts on the same listening socket
 * with them, the old one stops accepting (MHD_quiesce_daemon) and is
 * stopped once its connections ended (or after the idle timeout).  The
 * swap itself runs under swap_mu, which shutdown takes too, so the two
 * never handle the same daemon.
 */
static void
svc_swap(struct serve *s)
{
	char *cert = NULL, *key = NULL, *ocert = NULL, *okey = NULL;
	struct MHD_Daemon *nd = NULL, *od = NULL;
	const union MHD_DaemonInfo *di;
	time_t t0;
	int r;

	if ((r = svc_issue(s, &cert, &key)) != 0) {
		serve_log(s, "service_cert", "fqdn=%s renewed=0 error=\"%s\"",
		    s->o->name, amtca_errmsg(r));
		goto out;
	}
	pthread_mutex_lock(&s->swap_mu);
	if (atomic_load(&s->stop)) {
		pthread_mutex_unlock(&s->swap_mu);
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	ocert = s->tls_cert;
	okey = s->tls_key;
	pthread_mutex_unlock(&s->mu);
	if ((r = tls_take(s, cert, key, s->o->name, 0)) != 0) {
		pthread_mutex_unlock(&s->swap_mu);
		ocert = okey = NULL;
		serve_log(s, "service_cert", "renewed=0 error=\"%s\"",
		    amtca_errmsg(r));
		goto out;
	}
	cert = key = NULL;
	if ((nd = start_daemon(s, SRV_HTTPS, s->fd[SRV_HTTPS])) == NULL) {
		pthread_mutex_lock(&s->mu);
		cert = s->tls_cert;
		key = s->tls_key;
		s->tls_cert = ocert;
		s->tls_key = okey;
		pthread_mutex_unlock(&s->mu);
		pthread_mutex_unlock(&s->swap_mu);
		ocert = okey = NULL;
		serve_log(s, "service_cert", "renewed=0 error=\"cannot restart "
		    "the HTTPS listener\"");
		goto out;
	}
	od = s->d[SRV_HTTPS];
	s->d[SRV_HTTPS] = nd;
	(void)MHD_quiesce_daemon(od);
	pthread_mutex_unlock(&s->swap_mu);
	serve_log(s, "service_cert", "fqdn=%s renewed=1", s->o->name);
	/* The old daemon's connections finish their requests. */
	t0 = time(NULL);
	while (time(NULL) - t0 < (time_t)s->o->timeout_s &&
	    !atomic_load(&s->stop) &&
	    (di = MHD_get_daemon_info(od,
	    MHD_DAEMON_INFO_CURRENT_CONNECTIONS)) != NULL &&
	    di->num_connections > 0)
		amtca_sleep_ms(200);
	MHD_stop_daemon(od);
out:
	free(ocert);
	key_free(okey);
	free(cert);
	key_free(key);
}

static void *
renew_main(void *arg)
{
	struct serve *s = arg;
	struct timespec ts;
	time_t due;
	int now;

	while (!atomic_load(&s->stop)) {
		in_seconds(&ts, AMTCA_SERVE_RENEW_CHECK_S);
		timer_wait(s, &ts);
		if (atomic_load(&s->stop))
			break;
		pthread_mutex_lock(&s->mu);
		due = renew_at(s->tls_nb, s->tls_na);
		now = s->renew_now;
		s->renew_now = 0;
		pthread_mutex_unlock(&s->mu);
		if (now || time(NULL) >= due)
			svc_swap(s);
	}
	return NULL;
}

/*
 * Reconcile runs on one node at a time: the one holding the leader lease
 * (AMTCA_SERVE_LEADER_LEASE in the store), which it renews every third of
 * the claim lifetime; the others try to take it as often, and one does
 * once it lapses (at once when its holder was a process of this host that
 * is gone).  A new leader reconciles a full interval after it took over.
 */
static void *
recon_main(void *arg)
{
	struct serve *s = arg;
	struct store *st = s->h->state;
	struct timespec ts;
	char *holder = NULL, *last = NULL, who[200];
	int ttl = serve_claim_ttl(s), r;
	long tick = ttl / 3 > 0 ? ttl / 3 : 1;
	time_t now, exp = 0, next = 0;

	/* Renew the lease every third of it, reconcile on time. */
	if (tick > s->o->reconcile_every_s)
		tick = s->o->reconcile_every_s;

	while (!atomic_load(&s->stop)) {
		now = time(NULL);
		r = store_lease_take(st, AMTCA_SERVE_LEADER_LEASE, s->node, now,
		    ttl, NULL, &holder, &exp);
		if (r == AMTCA_E_EXISTS && devlock_owner_dead(holder))
			r = store_lease_take(st, AMTCA_SERVE_LEADER_LEASE,
			    s->node, now, ttl, holder, NULL, NULL);
		if (r == 0 && !atomic_load(&s->leader)) {
			atomic_store(&s->leader, 1);
			next = now + s->o->reconcile_every_s;
			devlock_owner_describe(last != NULL ? last : "-", who,
			    sizeof(who));
			serve_log(s, "leader", "role=reconcile state=leader "
			    "previous=\"%s\" ttl=%d", last != NULL ? who : "-",
			    ttl);
		} else if (r != 0 && atomic_load(&s->leader)) {
			atomic_store(&s->leader, 0);
			serve_log(s, "leader", "role=reconcile state=lost "
			    "error=\"%s\"", amtca_errmsg(r));
		}
		if (r == AMTCA_E_EXISTS && holder != NULL &&
		    (last == NULL || strcmp(last, holder) != 0)) {
			devlock_owner_describe(holder, who, sizeof(who));
			serve_log(s, "leader", "role=reconcile state=follower "
			    "holder=\"%s\"", who);
			free(last);
			last = holder;
			holder = NULL;
		}
		free(holder);
		holder = NULL;
		amtca_err_clear();
		if (atomic_load(&s->leader) && now >= next) {
			next = now + s->o->reconcile_every_s;
			/* The job runner (jobs.c) queues it; the fleet engine's
			   rules and per-device lock apply there. */
			r = api_reconcile(s);
			serve_log(s, "reconcile", "queued=%d result=%s", r == 0,
			    r == 0 ? "ok" : amtca_errname(r));
		}
		in_seconds(&ts, tick);
		timer_wait(s, &ts);
	}
	if (atomic_load(&s->leader))
		(void)!store_lease_release(st, AMTCA_SERVE_LEADER_LEASE, s->node);
	free(last);
	return NULL;
}

/* ------------------------------------------------------- privileges */

static int
user_lookup(struct serve *s)
{
	struct passwd *pw;

	s->uid = geteuid();
	s->gid = getegid();
	if (s->o->user == NULL)
		return 0;
	errno = 0;
	if ((pw = getpwnam(s->o->user)) == NULL)
		return amtca_fail(AMTCA_E_USAGE, "--user %s: no such user",
		    s->o->user);
	if (geteuid() != 0 && pw->pw_uid != geteuid())
		return amtca_fail(AMTCA_E_USAGE, "--user %s needs amtca serve "
		    "to start as root", s->o->user);
	if (pw->pw_uid == 0)
		return amtca_fail(AMTCA_E_USAGE, "--user must not be root");
	s->uid = pw->pw_uid;
	s->gid = pw->pw_gid;
	return 0;
}

/* Root: become --user for good, and prove there is no way back. */
static int
drop_privileges(struct serve *s)
{
	if (geteuid() != 0)
		return 0;
	if (s->o->user == NULL) {
		serve_log(s, "warning", "msg=\"running as root: give --user\"");
		return 0;
	}
	if (setgroups(1, &s->gid) != 0 ||
	    setresgid(s->gid, s->gid, s->gid) != 0 ||
	    setresuid(s->uid, s->uid, s->uid) != 0)
		return amtca_fail(AMTCA_E_IO, "cannot become %s: %s", s->o->user,
		    strerror(errno));
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 ||
	    getuid() != s->uid || geteuid() != s->uid || getgid() != s->gid)
		return amtca_fail(AMTCA_E_INTERNAL, "privileges could be "
		    "regained after dropping to %s", s->o->user);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return amtca_fail(AMTCA_E_IO, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno));
	serve_log(s, "privileges", "user=%s uid=%lu gid=%lu", s->o->user,
	    (unsigned long)s->uid, (unsigned long)s->gid);
	return 0;
}

/* <home>/state/serve: the service's own files, ours after the drop. */
static int
state_open(struct serve *s)
{
	char *path = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (asprintf(&path, "%s/%s", s->h->dir, SERVE_STATE_SUBDIR) < 0) {
		path = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = amtca_mkdirs(path, 0700)) != 0) {
		ret = r;
		goto out;
	}
	if ((s->statefd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0 ||
	    (geteuid() == 0 && fchown(s->statefd, s->uid, s->gid) != 0) ||
	    fchmod(s->statefd, 0700) != 0) {
		ret = amtca_fail(AMTCA_E_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(path);
	return ret;
}

/*
 * --publish-url and amtca.conf: the CA's issuance policy (crl_url,
 * aia_url) lives in amtca.conf, which the signer reads; the network-facing
 * process never changes what the CA signs.  serve checks that they agree,
 * and says which lines to write when they do not.
 */
static int
publish_url_check(struct serve *s)
{
	const ASN1_OCTET_STRING *ki;
	char *hex = NULL, crl[AMTCA_URL_MAX + 64], aia[AMTCA_URL_MAX + 64];
	const char *u = s->o->publish_url;
	size_t ul;
	int r, ret = AMTCA_E_INTERNAL;

	if (u == NULL)
		return 0;
	ul = strlen(u);
	while (ul > 0 && u[ul - 1] == '/')
		ul--;
	if ((strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
	    ul > AMTCA_URL_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "--publish-url must be an http:// "
		    "URL of at most %d bytes", AMTCA_URL_MAX);
		goto out;
	}
	if ((ki = X509_get0_subject_key_id(s->h->inter)) == NULL) {
		ret = amtca_fail(AMTCA_E_CERT, "the intermediate has no subject "
		    "key identifier");
		goto out;
	}
	if ((r = amtca_hex_encode(ASN1_STRING_get0_data(ki),
	    (size_t)ASN1_STRING_length(ki), &hex)) != 0) {
		ret = r;
		goto out;
	}
	for (r = 0; hex[r] != '\0'; r++)
		hex[r] = (char)(hex[r] >= 'A' && hex[r] <= 'F' ? hex[r] + 32 :
		    hex[r]);
	snprintf(crl, sizeof(crl), "%.*s/crl/%s.crl", (int)ul, u, hex);
	snprintf(aia, sizeof(aia), "%.*s/ca/%s.cer", (int)ul, u, hex);
	if (s->h->conf.crl_url == NULL || s->h->conf.aia_url == NULL ||
	    strcmp(s->h->conf.crl_url, crl) != 0 ||
	    strcmp(s->h->conf.aia_url, aia) != 0) {
		ret = amtca_fail(AMTCA_E_CONFIG, "--publish-url: amtca.conf must "
		    "say \"crl_url = %s\" and \"aia_url = %s\" (the CA's policy "
		    "is in amtca.conf)", crl, aia);
		goto out;
	}
	ret = 0;
out:
	free(hex);
	return ret;
}

static int
trust_pem(struct serve *s)
{
	BIO *b = NULL;
	X509 *c[SERVE_CAS_MAX];
	size_t i, n;
	int ok, ret = AMTCA_E_INTERNAL;

	/* The retired intermediates too: clients enrolled before a `ca
	 * rotate` present leaves under them during the overlap (the signer
	 * decides whether each is still accepted). */
	n = serve_ca_certs(s->h, c);
	ok = (b = BIO_new(BIO_s_mem())) != NULL;
	for (i = 0; ok && i < n; i++)
		ok = PEM_write_bio_X509(b, c[i]);
	if (!ok || (s->trust = bio_str(b)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_NOMEM, "cannot encode the chain");
		goto out;
	}
	ret = 0;
out:
	BIO_free(b);
	return ret;
}

/* ------------------------------------------------------------- run */

struct stopper {
	struct serve *s;
	struct timespec t0;
};

/* SIGTERM's deadline: whatever is still running then is abandoned. */
static void *
watchdog_main(void *arg)
{
	struct stopper *w = arg;

	amtca_sleep_ms(AMTCA_SERVE_STOP_S * 1000L - 500);
	serve_log(w->s, "stop", "forced=1 msg=\"in-flight work abandoned at "
	    "the deadline; the next run reconciles it\"");
	fflush(stderr);
	_exit(0);
	return NULL;
}

static void
shutdown_all(struct serve *s)
{
	struct timespec t0, t1, dl;
	pthread_t wd;
	struct stopper w;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	w.s = s;
	w.t0 = t0;
	if (pthread_create(&wd, NULL, watchdog_main, &w) == 0)
		pthread_detach(wd);
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stop, 1);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* Stop accepting first. */
	pthread_mutex_lock(&s->swap_mu);
	for (i = 0; i < 3; i++)
		if (s->d[i] != NULL)
			(void)MHD_quiesce_daemon(s->d[i]);
	for (i = 0; i < 3; i++)
		if (s->fd[i] >= 0) {
			close(s->fd[i]);
			s->fd[i] = -1;
		}
	pthread_mutex_unlock(&s->swap_mu);
	if (s->unix_path != NULL)
		unlink(s->unix_path);
	/* The job runner gets what is left of the deadline, less a margin
	   for the daemons' own stop. */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	api_jobs_stop(s, AMTCA_SERVE_STOP_S * 1000L - 1500 -
	    ((t1.tv_sec - t0.tv_sec) * 1000L +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000L));
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += AMTCA_SERVE_STOP_S;
	/* Past the deadline the watchdog ends the process: never free what
	   a thread still uses. */
	if (s->renew_started && pthread_timedjoin_np(s->renew_t, NULL, &dl) != 0)
		pthread_join(s->renew_t, NULL);
	if (s->recon_started && pthread_timedjoin_np(s->recon_t, NULL, &dl) != 0)
		pthread_join(s->recon_t, NULL);
	s->renew_started = s->recon_started = 0;
	for (i = 0; i < 3; i++)
		if (s->d[i] != NULL) {
			MHD_stop_daemon(s->d[i]);
			s->d[i] = NULL;
		}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	serve_log(s, "stop", "seconds=%.3f",
	    (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

int
serve_run(const char *homedir, const struct serve_opts *o)
{
	struct serve *s = NULL;
	struct device_info *dv = NULL;
	size_t ndv = 0;
	sigset_t set;
	pthread_condattr_t ca;
	char status_def[64];
	const char *st;
	int i, sig, r, ret = AMTCA_E_INTERNAL;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return AMTCA_E_NOMEM;
	s->o = o;
	s->homedir = homedir;
	s->statefd = -1;
	for (i = 0; i < 3; i++)
		s->fd[i] = -1;
	s->st.started = (long long)time(NULL);
	if ((r = devlock_owner(&s->node)) != 0) {
		free(s);
		return r;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->swap_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);

	snprintf(status_def, sizeof(status_def), "127.0.0.1:%d",
	    AMTCA_SERVE_STATUS_PORT);
	st = o->status_listen != NULL ? o->status_listen : status_def;
	if ((r = bind_tcp(o->listen, "--listen", NULL)) != 0 ||
	    (o->publish_listen != NULL && (r = bind_tcp(o->publish_listen,
	    "--publish-listen", NULL)) != 0) ||
	    (strncmp(st, "unix:", 5) != 0 &&
	    (r = bind_tcp(st, "--status-listen", NULL)) != 0) ||
	    (r = user_lookup(s)) != 0 ||
	    /* The operational state only: the CA's records and the token
	       stay with the signer (keys/). */
	    (r = home_open(homedir, HOME_STATE, &s->h)) != 0 ||
	    (r = publish_url_check(s)) != 0 ||
	    (r = sgn_spawn_ex(s->h->dir, 0, SGN_SPAWN_LOG, &s->sg)) != 0 ||
	    (r = state_open(s)) != 0 ||
	    (r = trust_pem(s)) != 0 ||
	    (r = o->name != NULL ? svc_cert(s) : file_cert(s)) != 0) {
		ret = r;
		goto out;
	}
	s->h->engine.sgn = s->sg;
	serve_log(s, "signer", "pid=%ld", sgn_pid(s->sg));
	if ((r = bind_tcp(o->listen, "--listen", &s->fd[SRV_HTTPS])) != 0 ||
	    (o->publish_listen != NULL && (r = bind_tcp(o->publish_listen,
	    "--publish-listen", &s->fd[SRV_PUBLISH])) != 0) ||
	    (r = strncmp(st, "unix:", 5) == 0 ?
	    bind_unix(s, st + 5, &s->fd[SRV_STATUS]) :
	    bind_tcp(st, "--status-listen", &s->fd[SRV_STATUS])) != 0) {
		ret = r;
		goto out;
	}
	/* SQLite opens its WAL files now, while the home is still ours. */
	if ((r = devices_list(s->h->state, NULL, NULL, &dv, &ndv)) != 0) {
		ret = r;
		goto out;
	}
	device_infos_free(dv, ndv);
	if ((r = drop_privileges(s)) != 0) {
		ret = r;
		goto out;
	}
	/* Every thread from here on inherits this mask: sigwait() below. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < 3; i++) {
		if (s->fd[i] < 0)
			continue;
		if ((s->d[i] = start_daemon(s, (enum srv_listener)i,
		    s->fd[i])) == NULL) {
			ret = amtca_fail(AMTCA_E_IO, "cannot start the %s listener",
			    i == SRV_HTTPS ? "HTTPS" : i == SRV_PUBLISH ?
			    "publication" : "status");
			goto out;
		}
	}
	if ((r = api_jobs_start(s)) != 0) {
		ret = r;
		goto out;
	}
	s->jobs_started = 1;
	if (o->name != NULL) {
		if (pthread_create(&s->renew_t, NULL, renew_main, s) != 0) {
			ret = amtca_fail(AMTCA_E_INTERNAL, "cannot start a thread");
			goto out;
		}
		s->renew_started = 1;
	}
	if (o->reconcile_every_s > 0) {
		if (pthread_create(&s->recon_t, NULL, recon_main, s) != 0) {
			ret = amtca_fail(AMTCA_E_INTERNAL, "cannot start a thread");
			goto out;
		}
		s->recon_started = 1;
	}
	serve_log(s, "ready", "listen=%s publish=%s status=%s",
	    o->listen, o->publish_listen != NULL ? o->publish_listen : "-", st);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		serve_log(s, "signal", "sig=HUP action=%s", o->name != NULL ?
		    "renew" : "none");
		pthread_mutex_lock(&s->mu);
		s->renew_now = o->name != NULL;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	serve_log(s, "signal", "sig=%s", sig == SIGTERM ? "TERM" : "INT");
	shutdown_all(s);
	ret = 0;
out:
	if (ret != 0 && s != NULL) {
		atomic_store(&s->stop, 1);
		pthread_mutex_lock(&s->mu);
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		for (i = 0; i < 3; i++)
			if (s->d[i] != NULL) {
				(void)MHD_quiesce_daemon(s->d[i]);
				MHD_stop_daemon(s->d[i]);
			}
		if (s->jobs_started)
			api_jobs_stop(s, AMTCA_SERVE_STOP_S * 1000L);
		if (s->renew_started)
			pthread_join(s->renew_t, NULL);
		if (s->recon_started)
			pthread_join(s->recon_t, NULL);
	}
	for (i = 0; i < 3; i++)
		if (s->fd[i] >= 0)
			close(s->fd[i]);
	if (s->unix_path != NULL)
		unlink(s->unix_path);
	if (s->statefd >= 0)
		close(s->statefd);
	sgn_close(s->sg);
	home_free(s->h);
	free(s->unix_path);
	free(s->tls_cert);
	key_free(s->tls_key);
	free(s->trust);
	free(s->node);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->swap_mu);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return ret;
}
