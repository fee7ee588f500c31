/*
 * The AMT WS-Management client: libcurl transport with AMT's Digest (one
 * authenticated attempt, never a loop on 401: AMT locks accounts), TLS
 * with CA + hostname verification and an optional leaf pin, and the typed
 * calls of amt.h built from amt/parse.c.
 */
#include "amt/internal.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/limits.h"
#include "common/util.h"

#define URI_PKMS   AMT_CLASS_URI("AMT_PublicKeyManagementService")
#define URI_KEY    AMT_CLASS_URI("AMT_PublicPrivateKeyPair")
#define URI_CERT   AMT_CLASS_URI("AMT_PublicKeyCertificate")
#define URI_TLSSD  AMT_CLASS_URI("AMT_TLSSettingData")
#define URI_TLSCC  AMT_CLASS_URI("AMT_TLSCredentialContext")
#define URI_TLSPEC AMT_CLASS_URI("AMT_TLSProtocolEndpointCollection")
#define URI_TIME   AMT_CLASS_URI("AMT_TimeSynchronizationService")
#define URI_SETUP  AMT_CLASS_URI("AMT_SetupAndConfigurationService")
#define URI_GEN    AMT_CLASS_URI("AMT_GeneralSettings")

struct amt {
	CURL *curl;
	char *host;
	char *user;
	char *ca_file;
	char *url;
	unsigned char pin[32];
	int have_pin;
	unsigned char *expired_der;	/* o->expired_ok_der, copied */
	size_t expired_len;
	int legacy;
	X509_STORE *ca_store;		/* ca_file parsed, shared (castore.c) */
	struct curl_slist *resolve;
	struct curl_slist *headers;
	unsigned msgid;			/* MessageID of the next request */
	unsigned nreq;			/* HTTP requests sent, all calls */
	struct amt_error err;		/* newest failed call */
	struct amt_error cur;		/* the call in progress */
	/* One perform. */
	struct wsman_buf resp;
	char *server;			/* Server: of the newest response */
	unsigned nsent;			/* requests sent */
	unsigned call_401;		/* 401s seen in this call (each a new nonce) */
	int last_auth;			/* newest request carried Authorization */
	int abort_auth;
	int abort_limit;
	int pin_mismatch;
	const atomic_llong *abort_at_ms;	/* the caller's, or NULL */
	char errbuf[CURL_ERROR_SIZE];
};

int
amt_aborted(const atomic_llong *abort_at_ms)
{
	long long at;

	if (abort_at_ms == NULL || (at = atomic_load(abort_at_ms)) == 0)
		return 0;
	return amtca_now_ms() >= at;
}

/* libcurl calls this at least once a second while a transfer runs. */
static int
on_xfer(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct amt *a = p;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return amt_aborted(a->abort_at_ms);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

/*
 * libcurl's heap goes through these, so that whatever it frees is wiped
 * first.  It keeps its own copies of the password (the option, the
 * connection's credentials) and, for every Digest request, builds and
 * frees a "user:realm:password" string to hash; with plain free() all of
 * them stayed readable in freed memory until reused.  What libcurl still
 * holds while a handle is open is documented in docs/architecture.md.
 */
static void
wipe_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

/* Never realloc in place: the old block would be freed unwiped. */
static void *
wipe_realloc(void *p, size_t n)
{
	void *q;
	size_t old;

	if (p == NULL)
		return malloc(n);
	if ((q = malloc(n != 0 ? n : 1)) == NULL)
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

static char *
wipe_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	if ((d = malloc(n)) != NULL)
		memcpy(d, s, n);
	return d;
}

static void
curl_init(void)
{
	curl_init_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc,
	    wipe_free, wipe_realloc, wipe_strdup, calloc) == CURLE_OK ? 0 : -1;
}

int
amt_global_init(void)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != 0)
		return amtca_fail(AMTCA_E_INTERNAL, "libcurl initialisation failed");
	return 0;
}

/* ----------------------------------------------------------- callbacks */

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct amt *a = arg;
	size_t n = size * nmemb;

	if (wsman_buf_add(&a->resp, p, n) != 0) {
		a->abort_limit = 1;
		return 0;
	}
	return n;
}

static size_t
on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct amt *a = arg;
	size_t n = size * nmemb, k;
	int code;
	char *v;

	if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new response: forget what an earlier one in this perform left. */
		a->resp.len = 0;
		free(a->server);
		a->server = NULL;
		for (k = 5; k < n && p[k] != ' '; k++)
			;
		code = (k + 4 <= n) ? atoi(p + k + 1) : 0;
		if (code == 401) {
			/*
			 * A 401 to a request authenticated against a nonce
			 * from this call's challenge: the password was wrong.
			 * Stop here, before libcurl can try again: AMT locks
			 * accounts after repeated failures.
			 */
			if (a->last_auth && a->call_401 >= 1) {
				a->abort_auth = 1;
				return 0;
			}
			a->call_401++;
		}
	} else if (n > 7 && strncasecmp(p, "Server:", 7) == 0) {
		for (k = 7; k < n && (p[k] == ' ' || p[k] == '\t'); k++)
			;
		while (n > k && (p[n - 1] == '\r' || p[n - 1] == '\n'))
			n--;
		if (n - k < 256 && (v = strndup(p + k, n - k)) != NULL) {
			free(a->server);
			a->server = v;
		}
		return size * nmemb;
	}
	return size * nmemb;
}

/* Counts requests actually sent (header blocks out), incl. the challenge. */
static int
on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	struct amt *a = arg;

	(void)h;
	if (type == CURLINFO_HEADER_OUT && size >= 5 &&
	    memcmp(data, "POST ", 5) == 0) {
		a->nsent++;
		a->nreq++;
		a->last_auth = memmem(data, size, "\r\nAuthorization: Digest ",
		    24) != NULL;
	}
	return 0;
}

/*
 * Replaces OpenSSL's chain check: the CA check (when a CA bundle is set)
 * plus the leaf pin.  Installed with SSL_VERIFY_PEER so a 0 aborts the
 * handshake even in pin-only mode.  The hostname is checked by curl.
 */
static int
verify_cb(X509_STORE_CTX *x, void *arg)
{
	struct amt *a = arg;
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	X509 *leaf;
	int len, ok = 1;

	if (a->ca_file != NULL)
		ok = amt_verify_chain(x, a->expired_der, a->expired_len,
		    NULL) > 0;
	if (ok && a->have_pin) {
		ok = 0;
		leaf = X509_STORE_CTX_get0_cert(x);
		if (leaf != NULL && (len = i2d_X509(leaf, &der)) > 0 &&
		    EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(),
		    NULL) == 1 && mdlen == 32 &&
		    CRYPTO_memcmp(md, a->pin, 32) == 0)
			ok = 1;
		OPENSSL_free(der);
		if (!ok) {
			a->pin_mismatch = 1;
			X509_STORE_CTX_set_error(x,
			    X509_V_ERR_APPLICATION_VERIFICATION);
		}
	}
	return ok;
}

static CURLcode
on_ssl_ctx(CURL *h, void *sslctx, void *arg)
{
	struct amt *a = arg;
	SSL_CTX *ctx = sslctx;

	(void)h;
	if (a->legacy) {
		/* AMT <= 12 lacks RFC 5746 and has old ciphers (opt-in only). */
		SSL_CTX_set_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT |
		    SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION);
		if (SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") != 1)
			return CURLE_SSL_CIPHER;
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	}
	/* The CA bundle parsed once per process, not once per connection. */
	if (a->ca_store != NULL)
		SSL_CTX_set1_cert_store(ctx, a->ca_store);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify_cb, a);
	return CURLE_OK;
}

/* ------------------------------------------------------------- open/free */

static int
host_ok(const char *h)
{
	size_t i, n;

	if (h == NULL || (n = strlen(h)) == 0 || n > AMTCA_FQDN_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' &&
		    h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
		    h[i] == '.' || h[i] == '-' || h[i] == '_' || h[i] == ':'))
			return 0;
	return 1;
}

static int
add_resolve(struct amt *a, const char *host, int port, const char *addr)
{
	struct curl_slist *l;
	char *e = NULL;
	int ipv6 = strchr(addr, ':') != NULL && addr[0] != '[';

	if (asprintf(&e, "%s:%d:%s%s%s", host, port, ipv6 ? "[" : "", addr,
	    ipv6 ? "]" : "") < 0)
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	l = curl_slist_append(a->resolve, e);
	free(e);
	if (l == NULL)
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	a->resolve = l;
	return 0;
}

#define SETOPT(opt, val) do {						\
	if (curl_easy_setopt(a->curl, opt, val) != CURLE_OK) {		\
		ret = amtca_fail(AMTCA_E_INTERNAL,			\
		    "libcurl rejected option " #opt);			\
		goto out;						\
	}								\
} while (0)

int
amt_open(const struct amt_opts *o, struct amt **out)
{
	struct amt *a = NULL;
	struct curl_slist *l;
	long tmo, ctmo;
	int port, tls_port, v6, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (o == NULL || !host_ok(o->host) || o->user == NULL ||
	    o->user[0] == '\0' || o->password == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE,
		    "AMT endpoint needs a valid host name, a user and a password");
		goto out;
	}
	if (o->address != NULL && !host_ok(o->address)) {
		ret = amtca_fail(AMTCA_E_USAGE, "bad AMT address pin");
		goto out;
	}
	port = o->port != 0 ? o->port : 16992;
	tls_port = o->tls_port != 0 ? o->tls_port : 16993;
	if (port < 1 || port > 65535 || tls_port < 1 || tls_port > 65535) {
		ret = amtca_fail(AMTCA_E_USAGE, "bad AMT port");
		goto out;
	}
	if (o->tls && o->ca_file == NULL && o->pin_sha256 == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "TLS to %s needs a CA bundle or "
		    "a certificate pin", o->host);
		goto out;
	}
	if ((ret = amt_global_init()) != 0)
		goto out;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	wsman_buf_init(&a->resp, AMTCA_WSMAN_BODY_MAX);
	a->err.return_value = -1;
	a->legacy = o->legacy_tls != 0;
	a->abort_at_ms = o->abort_at_ms;
	if (o->pin_sha256 != NULL) {
		memcpy(a->pin, o->pin_sha256, sizeof(a->pin));
		a->have_pin = 1;
	}
	if (o->expired_ok_der != NULL && o->expired_ok_len > 0) {
		if ((a->expired_der = malloc(o->expired_ok_len)) == NULL) {
			ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
			goto out;
		}
		memcpy(a->expired_der, o->expired_ok_der, o->expired_ok_len);
		a->expired_len = o->expired_ok_len;
	}
	v6 = strchr(o->host, ':') != NULL;
	if ((a->host = strdup(o->host)) == NULL ||
	    (a->user = strdup(o->user)) == NULL ||
	    (o->ca_file != NULL && (a->ca_file = strdup(o->ca_file)) == NULL) ||
	    asprintf(&a->url, "%s://%s%s%s:%d/wsman", o->tls ? "https" : "http",
	    v6 ? "[" : "", o->host, v6 ? "]" : "", o->tls ? tls_port : port) < 0) {
		a->url = NULL;
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	if (o->address != NULL &&
	    ((ret = add_resolve(a, o->host, port, o->address)) != 0 ||
	    (ret = add_resolve(a, o->host, tls_port, o->address)) != 0))
		goto out;
	if ((l = curl_slist_append(NULL, "Content-Type: application/soap+xml; "
	    "charset=utf-8")) == NULL || (a->headers = l,
	    (l = curl_slist_append(a->headers, "Expect:")) == NULL)) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	a->headers = l;
	if ((a->curl = curl_easy_init()) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "libcurl handle allocation failed");
		goto out;
	}
	tmo = o->timeout_ms > 0 ? o->timeout_ms : AMTCA_AMT_CALL_MS;
	ctmo = tmo < AMTCA_AMT_CONNECT_MS ? tmo : AMTCA_AMT_CONNECT_MS;
	SETOPT(CURLOPT_URL, a->url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_NOPROXY, "*");
	SETOPT(CURLOPT_PROXY, "");
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(CURLOPT_TIMEOUT_MS, tmo);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, ctmo);
	SETOPT(CURLOPT_HTTPHEADER, a->headers);
	SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_DIGEST);
	SETOPT(CURLOPT_USERNAME, o->user);
	SETOPT(CURLOPT_PASSWORD, o->password);
	SETOPT(CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(CURLOPT_WRITEDATA, a);
	SETOPT(CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(CURLOPT_HEADERDATA, a);
	SETOPT(CURLOPT_DEBUGFUNCTION, on_debug);
	SETOPT(CURLOPT_DEBUGDATA, a);
	SETOPT(CURLOPT_VERBOSE, 1L);	/* feeds on_debug only, no stderr */
	SETOPT(CURLOPT_ERRORBUFFER, a->errbuf);
	if (a->abort_at_ms != NULL) {
		SETOPT(CURLOPT_XFERINFOFUNCTION, on_xfer);
		SETOPT(CURLOPT_XFERINFODATA, a);
		SETOPT(CURLOPT_NOPROGRESS, 0L);
	}
	if (a->resolve != NULL)
		SETOPT(CURLOPT_RESOLVE, a->resolve);
	if (o->tls) {
		if (a->ca_file != NULL) {
			/*
			 * libcurl loads nothing (no CAINFO, CAPATH or default
			 * bundle); on_ssl_ctx installs the shared parsed
			 * bundle and verify_cb checks the chain against it.
			 */
			if ((ret = amt_ca_store_get(a->ca_file,
			    &a->ca_store)) != 0)
				goto out;
			SETOPT(CURLOPT_CAINFO, NULL);
			SETOPT(CURLOPT_CAPATH, NULL);
			SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
			SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
		} else {
			/* Pin only: the pin is checked in verify_cb. */
			SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
			SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
		}
		/* Every handshake runs verify_cb: no session resumption. */
		SETOPT(CURLOPT_SSL_SESSIONID_CACHE, 0L);
		SETOPT(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		SETOPT(CURLOPT_SSL_CTX_DATA, a);
	}
	*out = a;
	a = NULL;
	ret = 0;
out:
	amt_free(a);
	return ret;
}

void
amt_free(struct amt *a)
{
	if (a == NULL)
		return;
	if (a->curl != NULL)
		curl_easy_cleanup(a->curl);
	curl_slist_free_all(a->resolve);
	curl_slist_free_all(a->headers);
	X509_STORE_free(a->ca_store);
	wsman_buf_free(&a->resp);
	free(a->server);
	free(a->host);
	free(a->user);
	free(a->ca_file);
	free(a->expired_der);
	free(a->url);
	OPENSSL_cleanse(a->pin, sizeof(a->pin));
	free(a);
}

const struct amt_error *
amt_last_error(const struct amt *a)
{
	return &a->err;
}

unsigned
amt_request_count(const struct amt *a)
{
	return a->nreq;
}

/* ---------------------------------------------------------- parse gate */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static struct amt_parse_gate gate;	/* limit 0: not yet sized */

static unsigned
gate_default(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long v;

	v = (n > 0 ? (unsigned long)n : 1) * AMTCA_AMT_PARSES_PER_CPU;
	if (v < AMTCA_AMT_PARSES_MIN)
		v = AMTCA_AMT_PARSES_MIN;
	if (v > AMTCA_AMT_PARSES_MAX)
		v = AMTCA_AMT_PARSES_MAX;
	return (unsigned)v;
}

void
amt_parse_gate_set(unsigned limit)
{
	pthread_mutex_lock(&gate_mu);
	gate.limit = limit != 0 ? limit : gate_default();
	gate.peak = gate.used;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

void
amt_parse_gate_get(struct amt_parse_gate *out)
{
	pthread_mutex_lock(&gate_mu);
	if (gate.limit == 0)
		gate.limit = gate_default();
	*out = gate;
	pthread_mutex_unlock(&gate_mu);
}

static void
gate_acquire(void)
{
	pthread_mutex_lock(&gate_mu);
	if (gate.limit == 0)
		gate.limit = gate_default();
	gate.waiting++;
	while (gate.used >= gate.limit)
		pthread_cond_wait(&gate_cv, &gate_mu);
	gate.waiting--;
	if (++gate.used > gate.peak)
		gate.peak = gate.used;
	pthread_mutex_unlock(&gate_mu);
}

static void
gate_release(void)
{
	pthread_mutex_lock(&gate_mu);
	gate.used--;
	pthread_cond_signal(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

int
amt_call_check(long http_status, const char *buf, size_t len,
    const char *what, struct amt_error *err, struct wsman_msg **out)
{
	int ret;

	gate_acquire();
	if ((ret = amt_response_check(http_status, buf, len, what, err,
	    out)) != 0) {
		gate_release();
		return ret;
	}
	(*out)->on_free = gate_release;
	return 0;
}

/* ------------------------------------------------------------ transport */

static void
call_begin(struct amt *a)
{
	memset(&a->cur, 0, sizeof(a->cur));
	a->cur.return_value = -1;
}

static int
call_end(struct amt *a, int ret)
{
	if (ret != 0)
		a->err = a->cur;
	return ret;
}

static int
is_tls_error(CURLcode c)
{
	switch (c) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED:
		return 1;
	default:
		return 0;
	}
}

static int
perform_once(struct amt *a, long *status)
{
	CURLcode c;

	a->resp.len = 0;
	free(a->server);
	a->server = NULL;
	a->nsent = 0;
	a->last_auth = 0;
	a->abort_auth = a->abort_limit = a->pin_mismatch = 0;
	a->errbuf[0] = '\0';
	*status = 0;
	if (amt_aborted(a->abort_at_ms))
		return (int)CURLE_ABORTED_BY_CALLBACK;
	c = curl_easy_perform(a->curl);
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, status);
	return (int)c;
}

/* POST one request; on success the body is in a->resp, status in *status. */
static int
http_post(struct amt *a, const char *what, const char *req, size_t len,
    long *status)
{
	CURLcode c;
	int ret = AMTCA_E_INTERNAL;

	*status = 0;
	a->call_401 = 0;
	if (curl_easy_setopt(a->curl, CURLOPT_POSTFIELDSIZE, (long)len) !=
	    CURLE_OK || curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, req) !=
	    CURLE_OK) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "libcurl rejected the request");
		goto out;
	}
	c = (CURLcode)perform_once(a, status);
	/*
	 * A request sent with a nonce left from an earlier call and answered
	 * 401 without stale=true: the nonce has expired, the password was
	 * never tried against a fresh challenge.  libcurl has just taken the
	 * new nonce from that 401, so one more perform holds the single
	 * authenticated attempt against it (on_header aborts if that one is
	 * refused too).  Bounded: once per call.
	 */
	if (c == CURLE_OK && *status == 401 && !a->abort_auth &&
	    a->last_auth && a->call_401 == 1)
		c = (CURLcode)perform_once(a, status);
	a->cur.http_status = (int)*status;
	if (a->abort_limit) {
		ret = amtca_fail(AMTCA_E_LIMIT, "%s: AMT response body exceeds "
		    "%d bytes", what, AMTCA_WSMAN_BODY_MAX);
		goto out;
	}
	if (a->abort_auth || (c == CURLE_OK && *status == 401)) {
		a->cur.http_status = 401;
		ret = amtca_fail(AMTCA_E_AMT_AUTH, "authentication failed for %s "
		    "at %s (wrong user or password, or account locked)",
		    a->user, a->host);
		goto out;
	}
	if (a->pin_mismatch) {
		ret = amtca_fail(AMTCA_E_AMT_TLS, "%s: the certificate served by "
		    "%s does not match the pinned SHA-256", what, a->host);
		goto out;
	}
	if (c == CURLE_ABORTED_BY_CALLBACK && amt_aborted(a->abort_at_ms)) {
		ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "%s: %s: aborted: the "
		    "run is stopping", what, a->url);
		goto out;
	}
	if (c != CURLE_OK) {
		ret = amtca_fail(is_tls_error(c) ? AMTCA_E_AMT_TLS :
		    AMTCA_E_AMT_TRANSPORT, "%s: %s: %s", what, a->url,
		    a->errbuf[0] != '\0' ? a->errbuf : curl_easy_strerror(c));
		goto out;
	}
	ret = 0;
out:
	return ret;
}

/* One WS-MAN exchange; *out is the fault-checked response envelope. */
static int
wsman_call(struct amt *a, const char *what, const char *action,
    const char *uri, const struct wsman_selector *sel, size_t nsel,
    const char *body, struct wsman_msg **out)
{
	struct wsman_buf req;
	long status = 0;
	int ret, fresh;

	*out = NULL;
	wsman_buf_init(&req, AMTCA_WSMAN_REQ_MAX);
	/*
	 * libcurl silently resends a request whose reused connection died
	 * before any response byte.  For a call that changes AMT's state
	 * (Put, Create, Delete, methods) that can run it twice, e.g. generate
	 * two keys; on a fresh connection libcurl never resends, so such calls
	 * either happen once or fail with a transport error the caller sees.
	 * Reads keep the kept-alive connection.
	 */
	fresh = strcmp(action, WSMAN_ACTION_GET) != 0 &&
	    strcmp(action, WSMAN_ACTION_ENUMERATE) != 0 &&
	    strcmp(action, WSMAN_ACTION_PULL) != 0;
	if (curl_easy_setopt(a->curl, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L) !=
	    CURLE_OK) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "libcurl rejected FRESH_CONNECT");
		goto out;
	}
	if ((ret = wsman_envelope(&req, action, uri, a->msgid++, sel, nsel,
	    body)) != 0 ||
	    (ret = http_post(a, what, req.data, req.len, &status)) != 0)
		goto out;
	ret = amt_call_check(status, a->resp.data, a->resp.len, what,
	    &a->cur, out);
	a->cur.http_status = (int)status;
out:
	/* Between calls a handle keeps a small response buffer only. */
	if (a->resp.cap > AMTCA_AMT_RESP_KEEP) {
		OPENSSL_cleanse(a->resp.data, a->resp.len);
		wsman_buf_free(&a->resp);
		wsman_buf_init(&a->resp, AMTCA_WSMAN_BODY_MAX);
	}
	if (req.data != NULL)
		OPENSSL_cleanse(req.data, req.len);	/* may hold AddKey */
	wsman_buf_free(&req);
	return ret;
}

/* Method invocation: checks ReturnValue; *value as amt_msg_output(). */
static int
wsman_method(struct amt *a, const char *uri, const char *cls,
    const char *method, const char *body, const char *field, char **value)
{
	struct wsman_msg *m = NULL;
	char action[256], what[128];
	int rv = -1, ret;

	if (value != NULL)
		*value = NULL;
	snprintf(action, sizeof(action), "%s/%s", uri, method);
	snprintf(what, sizeof(what), "%s", method);
	if ((ret = wsman_call(a, what, action, uri, NULL, 0, body, &m)) != 0 ||
	    (ret = amt_msg_output(m, cls, method, field, value, &rv)) != 0)
		goto out;
	a->cur.return_value = rv;
	if (rv != 0) {
		ret = amtca_fail(AMTCA_E_AMT_STATUS, "%s failed: %d %s", method,
		    rv, amt_status_name(rv));
		goto out;
	}
	ret = 0;
out:
	wsman_msg_free(m);
	return ret;
}

typedef int (*pull_fn)(struct wsman_msg *m, void *v, size_t *n,
    char **context, int *eos);

/* Enumerate + Pull until EndOfSequence, bounded in rounds and items. */
static int
wsman_enumerate(struct amt *a, const char *cls, const char *uri, pull_fn fn,
    void *v, size_t *n)
{
	struct wsman_msg *m = NULL;
	char *ctx = NULL, *next = NULL, *body = NULL, what[128];
	int eos = 0, round, ret;

	snprintf(what, sizeof(what), "Enumerate %s", cls);
	if ((ret = wsman_call(a, what, WSMAN_ACTION_ENUMERATE, uri, NULL, 0,
	    AMT_BODY_ENUMERATE, &m)) != 0 ||
	    (ret = amt_msg_enumerate(m, &ctx)) != 0)
		goto out;
	snprintf(what, sizeof(what), "Pull %s", cls);
	for (round = 0; round < AMTCA_AMT_PULL_MAX; round++) {
		wsman_msg_free(m);
		m = NULL;
		free(body);
		body = NULL;
		if ((ret = amt_body_pull(ctx, &body)) != 0 ||
		    (ret = wsman_call(a, what, WSMAN_ACTION_PULL, uri, NULL, 0,
		    body, &m)) != 0 ||
		    (ret = fn(m, v, n, &next, &eos)) != 0)
			goto out;
		free(ctx);
		ctx = next;
		next = NULL;
		if (eos) {
			ret = 0;
			goto out;
		}
		if (ctx == NULL) {
			ret = amtca_fail(AMTCA_E_AMT_PARSE, "%s: neither "
			    "EndOfSequence nor EnumerationContext", what);
			goto out;
		}
	}
	ret = amtca_fail(AMTCA_E_LIMIT, "%s: no EndOfSequence after %d Pulls",
	    what, AMTCA_AMT_PULL_MAX);
out:
	wsman_msg_free(m);
	free(ctx);
	free(next);
	free(body);
	return ret;
}

/* ---------------------------------------------------------- typed calls */

int
amt_general_get(struct amt *a, struct amt_general *out)
{
	struct wsman_msg *m = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	call_begin(a);
	if ((ret = wsman_call(a, "Get AMT_GeneralSettings", WSMAN_ACTION_GET,
	    URI_GEN, NULL, 0, NULL, &m)) != 0 ||
	    (ret = amt_msg_general(m, out)) != 0)
		goto out;
	/* Version from Server:; NULL when the header carries none. */
	if (a->server != NULL && amt_server_version(a->server,
	    &out->version) != 0)
		out->version = NULL;
	ret = 0;
out:
	wsman_msg_free(m);
	return call_end(a, ret);
}

static int
pull_certs(struct wsman_msg *m, void *v, size_t *n, char **c, int *e)
{
	return amt_msg_pull_certs(m, v, n, c, e);
}

static int
pull_keys(struct wsman_msg *m, void *v, size_t *n, char **c, int *e)
{
	return amt_msg_pull_keys(m, v, n, c, e);
}

static int
pull_tls(struct wsman_msg *m, void *v, size_t *n, char **c, int *e)
{
	return amt_msg_pull_tls_settings(m, v, n, c, e);
}

static int
pull_ctx(struct wsman_msg *m, void *v, size_t *n, char **c, int *e)
{
	return amt_msg_pull_tls_context(m, v, n, c, e);
}

int
amt_certs_list(struct amt *a, struct amt_cert **out, size_t *n)
{
	struct amt_cert *v = NULL;
	size_t k = 0;
	int ret;

	*out = NULL;
	*n = 0;
	call_begin(a);
	if ((ret = wsman_enumerate(a, "AMT_PublicKeyCertificate", URI_CERT,
	    pull_certs, &v, &k)) != 0)
		goto out;
	*out = v;
	*n = k;
	v = NULL;
out:
	amt_certs_free(v, k);
	return call_end(a, ret);
}

int
amt_keys_list(struct amt *a, struct amt_key **out, size_t *n)
{
	struct amt_key *v = NULL;
	size_t k = 0;
	int ret;

	*out = NULL;
	*n = 0;
	call_begin(a);
	if ((ret = wsman_enumerate(a, "AMT_PublicPrivateKeyPair", URI_KEY,
	    pull_keys, &v, &k)) != 0)
		goto out;
	*out = v;
	*n = k;
	v = NULL;
out:
	amt_keys_free(v, k);
	return call_end(a, ret);
}

static int
delete_by_id(struct amt *a, const char *cls, const char *uri,
    const char *instance_id)
{
	struct wsman_selector sel = { .name = "InstanceID" };
	struct wsman_msg *m = NULL;
	char what[128];
	int ret;

	call_begin(a);
	if (instance_id == NULL || instance_id[0] == '\0') {
		ret = amtca_fail(AMTCA_E_USAGE, "Delete %s: no InstanceID", cls);
		goto out;
	}
	sel.value = instance_id;
	snprintf(what, sizeof(what), "Delete %s", cls);
	ret = wsman_call(a, what, WSMAN_ACTION_DELETE, uri, &sel, 1, NULL, &m);
out:
	wsman_msg_free(m);
	return call_end(a, ret);
}

int
amt_cert_delete(struct amt *a, const char *instance_id)
{
	return delete_by_id(a, "AMT_PublicKeyCertificate", URI_CERT,
	    instance_id);
}

int
amt_key_delete(struct amt *a, const char *instance_id)
{
	return delete_by_id(a, "AMT_PublicPrivateKeyPair", URI_KEY,
	    instance_id);
}

int
amt_generate_key_pair(struct amt *a, int alg, int bits, char **handle)
{
	char *body = NULL;
	int ret;

	*handle = NULL;
	call_begin(a);
	if ((ret = amt_body_generate_key_pair(alg, bits, &body)) != 0 ||
	    (ret = wsman_method(a, URI_PKMS, "AMT_PublicKeyManagementService",
	    "GenerateKeyPair", body, "KeyPair", handle)) != 0)
		goto out;
out:
	free(body);
	return call_end(a, ret);
}

int
amt_pkcs10_request(struct amt *a, const char *key_handle, int sigalg,
    const unsigned char *null_csr, size_t len, unsigned char **csr,
    size_t *csr_len)
{
	char *body = NULL, *b64 = NULL;
	int ret;

	*csr = NULL;
	*csr_len = 0;
	call_begin(a);
	if ((ret = amt_body_pkcs10_request(key_handle, sigalg, null_csr, len,
	    &body)) != 0 ||
	    (ret = wsman_method(a, URI_PKMS, "AMT_PublicKeyManagementService",
	    "GeneratePKCS10RequestEx", body, "SignedCertificateRequest",
	    &b64)) != 0)
		goto out;
	if (amtca_b64_decode(b64, strlen(b64), AMTCA_CSR_MAX, csr,
	    csr_len) != 0 || *csr_len == 0) {
		free(*csr);
		*csr = NULL;
		*csr_len = 0;
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "GeneratePKCS10RequestEx: "
		    "SignedCertificateRequest is not base64 DER");
		goto out;
	}
out:
	free(body);
	free(b64);
	return call_end(a, ret);
}

static int
add_cert(struct amt *a, int trusted_root, const unsigned char *der,
    size_t len, char **handle)
{
	char *body = NULL;
	int ret;

	*handle = NULL;
	call_begin(a);
	if ((ret = amt_body_add_cert(trusted_root, der, len, &body)) != 0 ||
	    (ret = wsman_method(a, URI_PKMS, "AMT_PublicKeyManagementService",
	    trusted_root ? "AddTrustedRootCertificate" : "AddCertificate",
	    body, "CreatedCertificate", handle)) != 0)
		goto out;
out:
	free(body);
	return call_end(a, ret);
}

int
amt_add_cert(struct amt *a, const unsigned char *der, size_t len,
    char **handle)
{
	return add_cert(a, 0, der, len, handle);
}

int
amt_add_trusted_root(struct amt *a, const unsigned char *der, size_t len,
    char **handle)
{
	return add_cert(a, 1, der, len, handle);
}

int
amt_add_key(struct amt *a, const unsigned char *pkcs1, size_t len,
    char **handle)
{
	char *body = NULL;
	int ret;

	*handle = NULL;
	call_begin(a);
	if ((ret = amt_body_add_key(pkcs1, len, &body)) != 0 ||
	    (ret = wsman_method(a, URI_PKMS, "AMT_PublicKeyManagementService",
	    "AddKey", body, "CreatedKey", handle)) != 0)
		goto out;
out:
	if (body != NULL)
		OPENSSL_cleanse(body, strlen(body));
	free(body);
	return call_end(a, ret);
}

int
amt_tls_context_get(struct amt *a, char **cert_handle)
{
	char **v = NULL;
	size_t n = 0;
	int ret;

	*cert_handle = NULL;
	call_begin(a);
	if ((ret = wsman_enumerate(a, "AMT_TLSCredentialContext", URI_TLSCC,
	    pull_ctx, &v, &n)) != 0)
		goto out;
	if (n > 0) {
		*cert_handle = v[0];
		v[0] = NULL;
	}
out:
	amt_tls_context_handles_free(v, n);
	return call_end(a, ret);
}

static int
tls_context_write(struct amt *a, int create, const char *cert_handle)
{
	struct wsman_msg *m = NULL;
	char *body = NULL;
	int ret;

	call_begin(a);
	if ((ret = amt_body_tls_context(cert_handle, &body)) != 0 ||
	    (ret = wsman_call(a, create ? "Create AMT_TLSCredentialContext" :
	    "Put AMT_TLSCredentialContext", create ? WSMAN_ACTION_CREATE :
	    WSMAN_ACTION_PUT, URI_TLSCC, NULL, 0, body, &m)) != 0)
		goto out;
out:
	wsman_msg_free(m);
	free(body);
	return call_end(a, ret);
}

int
amt_tls_context_create(struct amt *a, const char *cert_handle)
{
	return tls_context_write(a, 1, cert_handle);
}

int
amt_tls_context_put(struct amt *a, const char *cert_handle)
{
	return tls_context_write(a, 0, cert_handle);
}

int
amt_tls_context_delete(struct amt *a, const char *cert_handle)
{
	struct wsman_selector sel[2] = {
		{ .name = "ElementInContext", .epr_resource = URI_CERT,
		  .epr_sel_name = "InstanceID" },
		{ .name = "ElementProvidingContext", .epr_resource = URI_TLSPEC,
		  .epr_sel_name = "ElementName",
		  .epr_sel_value = AMT_TLS_COLLECTION },
	};
	struct wsman_msg *m = NULL;
	int ret;

	call_begin(a);
	if (cert_handle == NULL || cert_handle[0] == '\0') {
		ret = amtca_fail(AMTCA_E_USAGE,
		    "Delete AMT_TLSCredentialContext: no certificate handle");
		goto out;
	}
	sel[0].epr_sel_value = cert_handle;
	ret = wsman_call(a, "Delete AMT_TLSCredentialContext",
	    WSMAN_ACTION_DELETE, URI_TLSCC, sel, 2, NULL, &m);
out:
	wsman_msg_free(m);
	return call_end(a, ret);
}

int
amt_tls_settings_list(struct amt *a, struct amt_tls_setting **out, size_t *n)
{
	struct amt_tls_setting *v = NULL;
	size_t k = 0;
	int ret;

	*out = NULL;
	*n = 0;
	call_begin(a);
	if ((ret = wsman_enumerate(a, "AMT_TLSSettingData", URI_TLSSD,
	    pull_tls, &v, &k)) != 0)
		goto out;
	*out = v;
	*n = k;
	v = NULL;
out:
	amt_tls_settings_free(v, k);
	return call_end(a, ret);
}

int
amt_tls_setting_get(struct amt *a, const char *instance_id,
    struct amt_tls_setting *out)
{
	struct wsman_selector sel = { .name = "InstanceID" };
	struct wsman_msg *m = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	out->non_secure_supported = -1;
	call_begin(a);
	if (instance_id == NULL || instance_id[0] == '\0') {
		ret = amtca_fail(AMTCA_E_USAGE, "Get AMT_TLSSettingData: no "
		    "InstanceID");
		goto out;
	}
	sel.value = instance_id;
	if ((ret = wsman_call(a, "Get AMT_TLSSettingData", WSMAN_ACTION_GET,
	    URI_TLSSD, &sel, 1, NULL, &m)) != 0 ||
	    (ret = amt_msg_tls_setting(m, out)) != 0)
		goto out;
out:
	wsman_msg_free(m);
	return call_end(a, ret);
}

int
amt_tls_setting_put(struct amt *a, const struct amt_tls_setting *s)
{
	struct wsman_selector sel = { .name = "InstanceID" };
	struct wsman_msg *m = NULL;
	char *body = NULL;
	int ret;

	call_begin(a);
	if ((ret = amt_body_tls_setting(s, &body)) != 0)
		goto out;
	sel.value = s->instance_id;
	ret = wsman_call(a, "Put AMT_TLSSettingData", WSMAN_ACTION_PUT,
	    URI_TLSSD, &sel, 1, body, &m);
out:
	wsman_msg_free(m);
	free(body);
	return call_end(a, ret);
}

int
amt_time_get(struct amt *a, uint32_t *ta0)
{
	char *body = NULL, *t = NULL, *end;
	unsigned long long v;
	int ret;

	*ta0 = 0;
	call_begin(a);
	if ((ret = amt_body_time_get(&body)) != 0 ||
	    (ret = wsman_method(a, URI_TIME, "AMT_TimeSynchronizationService",
	    "GetLowAccuracyTimeSynch", body, "Ta0", &t)) != 0)
		goto out;
	v = strtoull(t, &end, 10);
	if (t[0] < '0' || t[0] > '9' || *end != '\0' || v > UINT32_MAX) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE,
		    "GetLowAccuracyTimeSynch: Ta0 is not a 32-bit number");
		goto out;
	}
	*ta0 = (uint32_t)v;
out:
	free(body);
	free(t);
	return call_end(a, ret);
}

int
amt_time_set(struct amt *a, uint32_t ta0, uint32_t tm1, uint32_t tm2)
{
	char *body = NULL;
	int ret;

	call_begin(a);
	if ((ret = amt_body_time_set(ta0, tm1, tm2, &body)) != 0)
		goto out;
	ret = wsman_method(a, URI_TIME, "AMT_TimeSynchronizationService",
	    "SetHighAccuracyTimeSynch", body, NULL, NULL);
out:
	free(body);
	return call_end(a, ret);
}

int
amt_commit(struct amt *a)
{
	char *body = NULL;
	int ret;

	call_begin(a);
	if ((ret = amt_body_commit(&body)) != 0)
		goto out;
	ret = wsman_method(a, URI_SETUP, "AMT_SetupAndConfigurationService",
	    "CommitChanges", body, NULL, NULL);
out:
	free(body);
	return call_end(a, ret);
}
