/*
 * libmicrohttpd glue.  One daemon per device and port, each bound to the
 * device's own loopback address (MHD_OPTION_SOCK_ADDR) with its own small
 * internal polling thread, so a device serialises its requests as AMT does.
 *
 * Listener changes after CommitChanges happen on the control thread,
 * never inside a request handler: the commit's response is completed
 * first (MHD_OPTION_NOTIFY_COMPLETED schedules the change), then after
 * --commit-delay-ms the plain daemon is stopped or started and the TLS
 * daemon restarted with the committed certificate and the device key.
 * The same thread writes the --state file when something changed.
 *
 * With TLS on, AMT also serves its redirection port (16995) with the same
 * certificate.  amtsim completes the TLS handshake there (what consoles and
 * `amtca doctor` check) but does not model the redirection protocol
 * (SOL/IDE-R/KVM): whatever is sent after the handshake closes the
 * connection.
 */
#include "amt/sim/sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "common/limits.h"
#include "common/util.h"

#define CT_SOAP "application/soap+xml; charset=UTF-8"
#define TLS_PRIO "NORMAL:-VERS-ALL:+VERS-TLS1.2"
#define TLS_PRIO_OLD "NORMAL:-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.1:" \
	"+VERS-TLS1.0:%DISABLE_SAFE_RENEGOTIATION"

enum listener_kind { L_HTTP, L_TLS, L_REDIR };

struct sim_listener {
	struct sim_fleet *f;
	struct sim_device *d;
	struct MHD_Daemon *mhd;
	int tls;
	int redir;
	char *cert_pem;			/* TLS only: what is being served */
	char *key_pem;
};

/* Per request. */
struct conn {
	struct wsman_buf body;
	int too_big;
	int commit;
};

/* A response body handed out in irregular chunks. */
struct stream {
	char *data;
	size_t len;
	uint32_t rng;
};

static const char html_404[] =
    "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" >\n"
    "<html><head><title>Intel&reg; Active Management Technology</title>"
    "</head><body><h2>Not Found</h2></body></html>\n";

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	size_t n;

	if (pos >= s->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* xorshift32: deterministic odd sizes 1..700, boundaries mid-token. */
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 17;
	s->rng ^= s->rng << 5;
	n = 1 + s->rng % SIM_CHUNK_MAX;
	if (n > max)
		n = max;
	if (n > s->len - pos)
		n = s->len - (size_t)pos;
	memcpy(buf, s->data + pos, n);
	return (ssize_t)n;
}

static void
stream_free(void *cls)
{
	struct stream *s = cls;

	if (s == NULL)
		return;
	free(s->data);
	free(s);
}

static int
add_common(struct MHD_Response *r, const struct sim_device *d)
{
	char server[96], date[64];
	time_t now = sim_device_clock(d);
	struct tm tm;

	snprintf(server, sizeof(server),
	    "Intel(R) Active Management Technology %s", d->cfg->amt_version);
	/* Date from the AMT clock, not the host's (MHD's own is suppressed). */
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		return -1;
	return MHD_add_response_header(r, "Server", server) == MHD_YES &&
	    MHD_add_response_header(r, "Date", date) == MHD_YES ? 0 : -1;
}

static enum MHD_Result
queue_html(struct MHD_Connection *c, const struct sim_device *d,
    unsigned status, const char *html, const char *www_auth)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(html), (void *)html,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	if ((www_auth != NULL &&
	    MHD_add_response_header(r, "WWW-Authenticate", www_auth) != MHD_YES) ||
	    MHD_add_response_header(r, "Content-Type", "text/html") != MHD_YES ||
	    add_common(r, d) != 0 ||
	    MHD_add_response_header(r, "Connection", "close") != MHD_YES ||
	    (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	    MHD_add_response_header(r, "Allow", "POST") != MHD_YES)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
queue_soap(struct MHD_Connection *c, const struct sim_device *d,
    unsigned status, struct wsman_buf *body)
{
	struct MHD_Response *r = NULL;
	struct stream *s;
	enum MHD_Result ret = MHD_NO;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return MHD_NO;
	s->data = body->data;
	s->len = body->len;
	body->data = NULL;
	body->len = body->cap = 0;
	s->rng = 0x8086u ^ (uint32_t)(s->len * 2654435761u);
	if (s->rng == 0)
		s->rng = 1;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024,
	    stream_read, s, stream_free);
	if (r == NULL) {
		stream_free(s);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, "Content-Type", CT_SOAP) != MHD_YES ||
	    add_common(r, d) != 0 ||
	    MHD_add_response_header(r, "X-Frame-Options", "DENY") != MHD_YES ||
	    (status != MHD_HTTP_OK &&
	    MHD_add_response_header(r, "Connection", "close") != MHD_YES))
		goto out;
	ret = MHD_queue_response(c, status, r);
out:
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
access_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct sim_listener *l = cls;
	struct sim_device *d = l->d;
	struct conn *cn = *con_cls;
	struct wsman_buf out;
	const char *authz;
	char chal[256];
	enum sim_auth a;
	int status = 0, r;
	enum MHD_Result ret;

	(void)version;
	if (cn == NULL) {
		if ((cn = calloc(1, sizeof(*cn))) == NULL)
			return MHD_NO;
		wsman_buf_init(&cn->body, AMTCA_WSMAN_REQ_MAX);
		*con_cls = cn;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		if (!cn->too_big &&
		    wsman_buf_add(&cn->body, upload, *upload_size) != 0)
			cn->too_big = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	if (d->cfg->latency_ms > 0)
		amtca_sleep_ms((long)d->cfg->latency_ms);
	if (strcmp(url, "/wsman") != 0)
		return queue_html(c, d, MHD_HTTP_NOT_FOUND, html_404, NULL);
	if (strcmp(method, "POST") != 0)
		return queue_html(c, d, MHD_HTTP_METHOD_NOT_ALLOWED, html_404,
		    NULL);
	authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	a = sim_auth_check(d, method, url, authz);
	if (a != SIM_AUTH_OK) {
		if (sim_auth_challenge(d, a == SIM_AUTH_STALE, chal,
		    sizeof(chal)) != 0)
			return MHD_NO;
		if (d->cfg->verbose)
			fprintf(stderr, "amtsim: %s: 401 (%s)\n", d->fqdn,
			    a == SIM_AUTH_LOCKED ? "locked" :
			    a == SIM_AUTH_STALE ? "stale nonce" :
			    authz == NULL ? "challenge" : "rejected");
		return queue_html(c, d, MHD_HTTP_UNAUTHORIZED, sim_html_401,
		    chal);
	}
	if (cn->too_big)
		return queue_html(c, d, MHD_HTTP_CONTENT_TOO_LARGE, html_404,
		    NULL);
	wsman_buf_init(&out, AMTCA_WSMAN_BODY_MAX);
	r = sim_handle(d, cn->body.data != NULL ? cn->body.data : "",
	    cn->body.len, &out, &status);
	pthread_mutex_lock(&d->lock);
	if (d->commit_requested) {
		cn->commit = 1;
		d->commit_requested = 0;
	}
	pthread_mutex_unlock(&d->lock);
	if (d->cfg->verbose)
		fprintf(stderr, "amtsim: %s: %d (%zu bytes)\n", d->fqdn, status,
		    out.len);
	if (r != 0 || status == 0) {
		/* --drop-at, or no response could be built: close silently. */
		wsman_buf_free(&out);
		return MHD_NO;
	}
	ret = queue_soap(c, d, (unsigned)status, &out);
	wsman_buf_free(&out);
	return ret;
}

/* Redirection port: TLS handshake done by MHD; the protocol is not modelled. */
static enum MHD_Result
redir_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)c;
	(void)url;
	(void)method;
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;
	return MHD_NO;
}

static void
schedule(struct sim_fleet *f, struct sim_device *d, long delay_ms)
{
	pthread_mutex_lock(&f->ctl_lock);
	d->apply_at_ms = amtca_now_ms() + delay_ms;
	if (d->apply_at_ms == 0)
		d->apply_at_ms = 1;
	pthread_cond_signal(&f->ctl_cond);
	pthread_mutex_unlock(&f->ctl_lock);
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct sim_listener *l = cls;
	struct conn *cn = *con_cls;

	(void)c;
	(void)toe;
	if (cn == NULL)
		return;
	if (cn->commit)
		schedule(l->f, l->d, (long)l->d->cfg->commit_delay_ms);
	wsman_buf_free(&cn->body);
	free(cn);
	*con_cls = NULL;
}

static void
listener_free(struct sim_listener *l)
{
	if (l == NULL)
		return;
	if (l->mhd != NULL)
		MHD_stop_daemon(l->mhd);
	free(l->cert_pem);
	if (l->key_pem != NULL) {
		OPENSSL_cleanse(l->key_pem, strlen(l->key_pem));
		free(l->key_pem);
	}
	free(l);
}

/* Takes ownership of cert/key. */
static int
listener_start(struct sim_fleet *f, struct sim_device *d,
    enum listener_kind kind, char *cert, char *key, struct sim_listener **out)
{
	struct sim_listener *l;
	struct sockaddr_in sa;
	struct MHD_OptionItem opts[12];
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_SUPPRESS_DATE_NO_CLOCK;
	int n = 0, tls = kind != L_HTTP;
	int port = kind == L_HTTP ? f->cfg->http_port :
	    kind == L_TLS ? f->cfg->tls_port : f->cfg->redir_port;
	char ab[INET_ADDRSTRLEN];

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		free(cert);
		if (key != NULL)
			OPENSSL_cleanse(key, strlen(key));
		free(key);
		return AMTCA_E_NOMEM;
	}
	l->f = f;
	l->d = d;
	l->tls = tls;
	l->redir = kind == L_REDIR;
	l->cert_pem = cert;
	l->key_pem = key;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr = d->addr;
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &sa };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_STACK_SIZE,
	    SIM_THREAD_STACK, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
	    SIM_CONN_LIMIT, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
	    SIM_CONN_TIMEOUT_S, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
	    (intptr_t)completed, l };
	if (tls) {
		flags |= MHD_USE_TLS;
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY,
		    0, key };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT,
		    0, cert };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES,
		    0, (void *)(f->cfg->old_tls ? TLS_PRIO_OLD : TLS_PRIO) };
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	if (f->cfg->verbose)
		flags |= MHD_USE_ERROR_LOG;
	l->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL,
	    l->redir ? redir_handler : access_handler, l, MHD_OPTION_ARRAY, opts,
	    MHD_OPTION_END);
	if (l->mhd == NULL) {
		inet_ntop(AF_INET, &d->addr, ab, sizeof(ab));
		listener_free(l);
		return amtca_fail(AMTCA_E_IO, "cannot listen on %s:%d%s", ab,
		    port, kind == L_HTTP ? "" : " (TLS)");
	}
	*out = l;
	return 0;
}

/* Bring a device's listeners in line with its committed settings. */
static int
apply(struct sim_fleet *f, struct sim_device *d)
{
	char *cert = NULL, *key = NULL;
	int http, r, ret = 0;

	pthread_mutex_lock(&d->lock);
	http = sim_device_wants_http(d);
	r = sim_device_tls_material(d, &cert, &key);
	pthread_mutex_unlock(&d->lock);
	if (r != 0)
		return r;
	if (http && d->http_l == NULL)
		ret = listener_start(f, d, L_HTTP, NULL, NULL, &d->http_l);
	else if (!http && d->http_l != NULL) {
		listener_free(d->http_l);
		d->http_l = NULL;
	}
	if (d->tls_l != NULL && (cert == NULL ||
	    strcmp(cert, d->tls_l->cert_pem) != 0 ||
	    strcmp(key, d->tls_l->key_pem) != 0)) {
		listener_free(d->tls_l);
		d->tls_l = NULL;
	}
	/* The redirection port follows the TLS port and its certificate. */
	if (d->redir_l != NULL && d->tls_l == NULL) {
		listener_free(d->redir_l);
		d->redir_l = NULL;
	}
	if (cert != NULL && d->tls_l == NULL) {
		char *rc = NULL, *rk = NULL;

		if (f->cfg->redir_port != 0 && ((rc = strdup(cert)) == NULL ||
		    (rk = strdup(key)) == NULL)) {
			free(rc);
			r = AMTCA_E_NOMEM;
		} else {
			r = listener_start(f, d, L_TLS, cert, key, &d->tls_l);
			if (r == 0 && rc != NULL)
				r = listener_start(f, d, L_REDIR, rc, rk, &d->redir_l);
			else if (rc != NULL) {
				free(rc);
				OPENSSL_cleanse(rk, strlen(rk));
				free(rk);
			}
		}
		cert = key = NULL;
		if (ret == 0)
			ret = r;
	}
	free(cert);
	if (key != NULL) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	return ret;
}

void
sim_fleet_changed(void *arg)
{
	struct sim_fleet *f = arg;

	pthread_mutex_lock(&f->ctl_lock);
	f->state_dirty = 1;
	pthread_cond_signal(&f->ctl_cond);
	pthread_mutex_unlock(&f->ctl_lock);
}

void
sim_fleet_clock_moved(struct sim_fleet *f)
{
	long long now = amtca_now_ms();
	size_t i;

	pthread_mutex_lock(&f->ctl_lock);
	/* A commit still in its --commit-delay-ms re-checks when it lands. */
	for (i = 0; i < f->n; i++)
		if (f->dev[i]->apply_at_ms == 0)
			f->dev[i]->apply_at_ms = now > 0 ? now : 1;
	f->state_dirty = 1;
	pthread_cond_signal(&f->ctl_cond);
	pthread_mutex_unlock(&f->ctl_lock);
}

static void *
control(void *arg)
{
	struct sim_fleet *f = arg;
	struct timespec ts;
	long long now, next;
	size_t i;
	int save, r;

	pthread_mutex_lock(&f->ctl_lock);
	while (!f->ctl_stop) {
		now = amtca_now_ms();
		next = now + 1000;
		for (i = 0; i < f->n; i++) {
			struct sim_device *d = f->dev[i];

			if (d->apply_at_ms == 0)
				continue;
			if (d->apply_at_ms > now) {
				if (d->apply_at_ms < next)
					next = d->apply_at_ms;
				continue;
			}
			d->apply_at_ms = 0;
			pthread_mutex_unlock(&f->ctl_lock);
			if ((r = apply(f, d)) != 0)
				fprintf(stderr, "amtsim: %s: %s\n", d->fqdn,
				    amtca_errmsg(r));
			pthread_mutex_lock(&f->ctl_lock);
			now = amtca_now_ms();
		}
		save = f->state_dirty && f->state_path != NULL;
		f->state_dirty = 0;
		if (save) {
			pthread_mutex_unlock(&f->ctl_lock);
			if ((r = sim_state_save(f)) != 0)
				fprintf(stderr, "amtsim: state: %s\n",
				    amtca_errmsg(r));
			pthread_mutex_lock(&f->ctl_lock);
			continue;
		}
		if (f->ctl_stop || f->state_dirty)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = amtca_now_ms();
		if (next > now) {
			long long ms = next - now;

			ts.tv_sec += ms / 1000;
			ts.tv_nsec += (ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&f->ctl_cond, &f->ctl_lock, &ts);
		}
	}
	pthread_mutex_unlock(&f->ctl_lock);
	return NULL;
}

int
sim_fleet_start(struct sim_fleet *f)
{
	pthread_condattr_t ca;
	size_t i;
	int r;

	if (pthread_mutex_init(&f->ctl_lock, NULL) != 0)
		return AMTCA_E_INTERNAL;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r = pthread_cond_init(&f->ctl_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (r != 0) {
		pthread_mutex_destroy(&f->ctl_lock);
		return AMTCA_E_INTERNAL;
	}
	f->ctl_stop = 0;
	if (pthread_create(&f->ctl_thread, NULL, control, f) != 0)
		return amtca_fail(AMTCA_E_INTERNAL, "cannot start control thread");
	f->ctl_running = 1;
	for (i = 0; i < f->n; i++) {
		f->dev[i]->on_change = sim_fleet_changed;
		f->dev[i]->on_change_arg = f;
		if ((r = apply(f, f->dev[i])) != 0)
			return r;
	}
	return 0;
}

void
sim_fleet_stop(struct sim_fleet *f)
{
	size_t i;
	int had = f->ctl_running;

	if (had) {
		pthread_mutex_lock(&f->ctl_lock);
		f->ctl_stop = 1;
		pthread_cond_signal(&f->ctl_cond);
		pthread_mutex_unlock(&f->ctl_lock);
		pthread_join(f->ctl_thread, NULL);
		f->ctl_running = 0;
	}
	/* Daemons last-but-one: their completions may still take ctl_lock. */
	for (i = 0; i < f->n; i++) {
		if (f->dev[i] == NULL)
			continue;
		listener_free(f->dev[i]->http_l);
		listener_free(f->dev[i]->tls_l);
		listener_free(f->dev[i]->redir_l);
		f->dev[i]->http_l = f->dev[i]->tls_l = f->dev[i]->redir_l = NULL;
		f->dev[i]->on_change = NULL;
	}
	if (had) {
		pthread_cond_destroy(&f->ctl_cond);
		pthread_mutex_destroy(&f->ctl_lock);
	}
}
