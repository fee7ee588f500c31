/*
 * amt_tls_fetch_leaf(): one TLS handshake with the device, outside
 * libcurl, to see which certificate AMT actually serves on 16993.
 */
#include "amt/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/limits.h"
#include "common/util.h"

/* Connect with a deadline; returns the fd or -1. */
static int
connect_to(const char *name, int port, long ms)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct pollfd pfd;
	struct timeval tv;
	char serv[16];
	socklen_t sl;
	int fd = -1, err, fl;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(serv, sizeof(serv), "%d", port);
	if (getaddrinfo(name, serv, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol)) < 0)
			continue;
		fl = fcntl(fd, F_GETFL);
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			goto connected;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			err = 0;
			sl = sizeof(err);
			if (poll(&pfd, 1, (int)ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == 0 &&
			    err == 0)
				goto connected;
		}
		close(fd);
		fd = -1;
		continue;
connected:
		(void)fcntl(fd, F_SETFL, fl);
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		break;
	}
	freeaddrinfo(res);
	return fd;
}

static int
is_ip(const char *h)
{
	struct addrinfo hints, *res = NULL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(h, NULL, &hints, &res) != 0)
		return 0;
	freeaddrinfo(res);
	return 1;
}

/*
 * A peer closing mid-handshake must not kill the process with SIGPIPE:
 * block it in this thread for the duration, and swallow one if raised.
 */
static void
sigpipe_block(sigset_t *old)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &s, old);
}

static void
sigpipe_restore(const sigset_t *old)
{
	sigset_t s, pend;
	struct timespec zero = { 0, 0 };

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	if (sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) &&
	    !sigismember(old, SIGPIPE))
		(void)sigtimedwait(&s, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int fetch_leaf(const struct amt_opts *o, X509 **leaf);

int
amt_tls_fetch_leaf(const struct amt_opts *o, X509 **leaf)
{
	sigset_t old;
	int ret;

	sigpipe_block(&old);
	ret = fetch_leaf(o, leaf);
	sigpipe_restore(&old);
	return ret;
}

/* The chain check, forgiving only the recorded leaf's expiry (castore.c). */
static int
fetch_verify_cb(X509_STORE_CTX *x, void *arg)
{
	const struct amt_opts *o = arg;

	return amt_verify_chain(x, o->expired_ok_der, o->expired_ok_len,
	    NULL);
}

static int
fetch_leaf(const struct amt_opts *o, X509 **leaf)
{
	SSL_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	SSL *ssl = NULL;
	X509 *peer = NULL;
	X509_VERIFY_PARAM *vp;
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	long ms, vr;
	int fd = -1, port, len, r, ret = AMTCA_E_INTERNAL;

	*leaf = NULL;
	if (o == NULL || o->host == NULL || o->host[0] == '\0') {
		ret = amtca_fail(AMTCA_E_USAGE, "TLS probe needs a host name");
		goto out;
	}
	port = o->tls_port != 0 ? o->tls_port : 16993;
	ms = o->timeout_ms > 0 ? o->timeout_ms : AMTCA_AMT_CONNECT_MS;
	if (o->abort_at_ms != NULL && atomic_load(o->abort_at_ms) != 0) {
		long long left = atomic_load(o->abort_at_ms) - amtca_now_ms();

		if (left <= 0) {
			ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "TLS probe of "
			    "%s aborted: the run is stopping", o->host);
			goto out;
		}
		if (left < ms)
			ms = (long)left;
	}
	/*
	 * Connect first: after a commit the engine probes a port that is
	 * restarting, and a refused connection should not have paid for a
	 * TLS context (about a million instructions under OpenSSL 3).
	 */
	if ((fd = connect_to(o->address != NULL ? o->address : o->host, port,
	    ms)) < 0) {
		ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "cannot connect to %s "
		    "port %d", o->address != NULL ? o->address : o->host, port);
		goto out;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_NOMEM, "TLS context allocation failed");
		goto out;
	}
	if (o->legacy_tls) {
		SSL_CTX_set_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT |
		    SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION);
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
		if (SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") != 1) {
			ret = amtca_fail_ssl(AMTCA_E_INTERNAL,
			    "legacy TLS ciphers unavailable");
			goto out;
		}
	}
	if (o->ca_file != NULL) {
		/* Parsed once per process (amt/castore.c); ctx takes the ref. */
		if ((r = amt_ca_store_get(o->ca_file, &store)) != 0) {
			ret = r == AMTCA_E_CONFIG ? r : amtca_fail(AMTCA_E_CONFIG,
			    "cannot load CA bundle %s", o->ca_file);
			goto out;
		}
		SSL_CTX_set_cert_store(ctx, store);
		store = NULL;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (o->expired_ok_der != NULL)
			SSL_CTX_set_cert_verify_callback(ctx, fetch_verify_cb,
			    (void *)o);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if ((ssl = SSL_new(ctx)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_NOMEM, "TLS allocation failed");
		goto out;
	}
	if (!is_ip(o->host) &&
	    SSL_set_tlsext_host_name(ssl, o->host) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_USAGE, "bad TLS server name %s",
		    o->host);
		goto out;
	}
	if (o->ca_file != NULL) {
		vp = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set_hostflags(vp,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		r = is_ip(o->host) ? X509_VERIFY_PARAM_set1_ip_asc(vp, o->host) :
		    X509_VERIFY_PARAM_set1_host(vp, o->host, 0);
		if (r != 1) {
			ret = amtca_fail_ssl(AMTCA_E_USAGE, "bad host name %s",
			    o->host);
			goto out;
		}
	}
	if (SSL_set_fd(ssl, fd) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "SSL_set_fd failed");
		goto out;
	}
	ERR_clear_error();
	if ((r = SSL_connect(ssl)) != 1) {
		vr = SSL_get_verify_result(ssl);
		if (vr != X509_V_OK)
			ret = amtca_fail(AMTCA_E_AMT_TLS, "TLS certificate of %s "
			    "does not verify: %s", o->host,
			    X509_verify_cert_error_string(vr));
		else if (SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL &&
		    ERR_peek_error() == 0)
			ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "%s port %d "
			    "closed the connection during the TLS handshake",
			    o->host, port);
		else
			ret = amtca_fail_ssl(AMTCA_E_AMT_TLS, "TLS handshake with "
			    "%s port %d failed", o->host, port);
		goto out;
	}
	if ((peer = SSL_get1_peer_certificate(ssl)) == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_TLS, "%s served no certificate",
		    o->host);
		goto out;
	}
	if (o->ca_file != NULL && SSL_get_verify_result(ssl) != X509_V_OK) {
		ret = amtca_fail(AMTCA_E_AMT_TLS, "TLS certificate of %s does "
		    "not verify", o->host);
		goto out;
	}
	if (o->pin_sha256 != NULL) {
		if ((len = i2d_X509(peer, &der)) <= 0 ||
		    EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(),
		    NULL) != 1 || mdlen != 32 ||
		    CRYPTO_memcmp(md, o->pin_sha256, 32) != 0) {
			ret = amtca_fail(AMTCA_E_AMT_TLS, "the certificate served "
			    "by %s does not match the pinned SHA-256", o->host);
			goto out;
		}
	}
	*leaf = peer;
	peer = NULL;
	ret = 0;
out:
	OPENSSL_free(der);
	X509_free(peer);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	X509_STORE_free(store);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	return ret;
}
