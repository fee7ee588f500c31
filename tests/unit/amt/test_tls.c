/*
 * TLS paths against an in-test OpenSSL server on loopback with a freshly
 * made self-signed certificate for amt.test: amt_tls_fetch_leaf() chain,
 * hostname and pin checks, and the client's https transport with the
 * address pin, CA verification and the leaf pin.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "amt/amt.h"
#include "amt/internal.h"
#include "unit/amt/helper_amt.h"

struct tls_srv {
	int lfd, port;
	SSL_CTX *ctx;
	pthread_t th;
	volatile int stop;
	const char *reply;		/* sent after reading a request, or NULL */
};

static EVP_PKEY *key;
static X509 *cert;
static char ca_path[] = "/tmp/amtca-test-tls-XXXXXX";

static X509 *
make_cert_with(EVP_PKEY *k)
{
	X509 *c;
	X509_NAME *nm;
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	c = X509_new();
	assert_non_null(c);
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 43);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 3600);
	X509_set_pubkey(c, k);
	nm = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)"amt.test", -1, -1, 0);
	X509_set_issuer_name(c, nm);
	X509V3_set_ctx(&v3, c, c, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:amt.test");
	X509_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(c, k, EVP_sha256()) > 0);
	return c;
}

/* Write `c` as a PEM bundle at `path`, replacing it by rename (new inode). */
static void
write_bundle(const char *path, X509 *c)
{
	char tmp[256];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, c), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static void
make_cert(void)
{
	X509_NAME *nm;
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	key = EVP_RSA_gen(2048);
	assert_non_null(key);
	cert = X509_new();
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 42);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	nm = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)"amt.test", -1, -1, 0);
	X509_set_issuer_name(cert, nm);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:amt.test");
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
}

static int
setup(void **state)
{
	int fd;
	FILE *f;

	(void)state;
	/* The in-test server writes to clients that hang up on purpose. */
	signal(SIGPIPE, SIG_IGN);
	make_cert();
	fd = mkstemp(ca_path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	PEM_write_X509(f, cert);
	fclose(f);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(ca_path);
	X509_free(cert);
	EVP_PKEY_free(key);
	return 0;
}

static void *
tls_serve(void *arg)
{
	struct tls_srv *s = arg;
	struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
	char buf[8192];
	SSL *ssl;
	int fd, n;

	while (!s->stop) {
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) < 0)
			continue;
		ssl = SSL_new(s->ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1 && s->reply != NULL) {
			n = SSL_read(ssl, buf, sizeof(buf));
			if (n > 0)
				SSL_write(ssl, s->reply, (int)strlen(s->reply));
		}
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	return NULL;
}

static void
tls_start(struct tls_srv *s, const char *reply)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(s, 0, sizeof(*s));
	s->reply = reply;
	s->ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate(s->ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, key), 1);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->lfd, 8), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &sl), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, tls_serve, s), 0);
}

static void
tls_stop(struct tls_srv *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	close(s->lfd);
	SSL_CTX_free(s->ctx);
}

static void
leaf_sha256(unsigned char md[32])
{
	unsigned char *der = NULL;
	unsigned int mdlen;
	int len = i2d_X509(cert, &der);

	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(),
	    NULL), 1);
	OPENSSL_free(der);
}

static void
test_fetch_leaf(void **state)
{
	struct tls_srv s;
	struct amt_opts o = { .host = "amt.test", .address = "127.0.0.1",
	    .ca_file = ca_path, .timeout_ms = 5000 };
	unsigned char pin[32];
	X509 *leaf = NULL;

	(void)state;
	tls_start(&s, NULL);
	o.tls_port = s.port;
	assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), 0);
	assert_int_equal(X509_cmp(leaf, cert), 0);
	X509_free(leaf);
	leaf = NULL;
	/* Pin matches. */
	leaf_sha256(pin);
	o.pin_sha256 = pin;
	assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), 0);
	X509_free(leaf);
	leaf = NULL;
	/* Pin mismatch. */
	pin[0] ^= 1;
	assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), AMTCA_E_AMT_TLS);
	assert_null(leaf);
	o.pin_sha256 = NULL;
	/* Wrong host name: chain fine, name not. */
	o.host = "other.test";
	assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), AMTCA_E_AMT_TLS);
	assert_null(leaf);
	/* No CA: diagnostics only, the leaf comes back unverified. */
	o.ca_file = NULL;
	assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), 0);
	X509_free(leaf);
	tls_stop(&s);
	/* Nothing listening: transport. */
	o.host = "amt.test";
	leaf = NULL;
	assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), AMTCA_E_AMT_TRANSPORT);
}

static void
test_client_https(void **state)
{
	char *gen = fx_load("amt/general/get.xml", NULL);
	char *reply = http_chunked(200, "OK", gen);
	struct amt_opts o = { .host = "amt.test", .address = "127.0.0.1",
	    .tls = 1, .ca_file = ca_path, .user = "admin", .password = "pw",
	    .timeout_ms = 5000 };
	struct amt_general g;
	unsigned char pin[32];
	struct tls_srv s;
	struct amt *a = NULL;

	(void)state;
	tls_start(&s, reply);
	o.tls_port = s.port;
	o.port = 1;	/* never used with tls */
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), 0);
	assert_string_equal(g.hostname, "Test Host Name");
	assert_string_equal(g.version, "15.0.23.1706");
	amt_general_clear(&g);
	amt_free(a);
	a = NULL;

	/* Wrong FQDN for the certificate: TLS error, nothing parsed. */
	o.host = "other.test";
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), AMTCA_E_AMT_TLS);
	amt_free(a);
	a = NULL;
	o.host = "amt.test";

	/* Pin only (no CA): right pin works, wrong pin is a TLS error. */
	leaf_sha256(pin);
	o.ca_file = NULL;
	o.pin_sha256 = pin;
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), 0);
	amt_general_clear(&g);
	amt_free(a);
	a = NULL;
	pin[5] ^= 0x80;
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), AMTCA_E_AMT_TLS);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_AMT_TLS), "pinned SHA-256"));
	amt_free(a);
	a = NULL;
	/* CA + wrong pin: still refused. */
	o.ca_file = ca_path;
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), AMTCA_E_AMT_TLS);
	amt_free(a);
	/* Legacy mode still verifies. */
	o.pin_sha256 = NULL;
	o.legacy_tls = 1;
	o.host = "other.test";
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), AMTCA_E_AMT_TLS);
	amt_free(a);
	o.host = "amt.test";
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), 0);
	amt_general_clear(&g);
	amt_free(a);
	tls_stop(&s);
	free(gen);
	free(reply);
}

/*
 * The CA bundle is parsed once per process however many TLS connections
 * use it (amt/castore.c), and again when the file changes: a bundle that
 * no longer holds the server's CA then refuses it.  A bundle without the
 * server's CA never verifies it.
 */
static void
test_ca_bundle_parsed_once_and_reloaded(void **state)
{
	char *gen = fx_load("amt/general/get.xml", NULL);
	char *reply = http_chunked(200, "OK", gen);
	char path[64];
	struct amt_opts o = { .host = "amt.test", .address = "127.0.0.1",
	    .tls = 1, .user = "admin", .password = "pw", .timeout_ms = 5000 };
	struct amt_general g;
	struct tls_srv s;
	struct amt *a = NULL;
	EVP_PKEY *other_key = EVP_RSA_gen(2048);
	X509 *other = make_cert_with(other_key), *leaf = NULL;
	unsigned long before;
	int i;

	(void)state;
	snprintf(path, sizeof(path), "%s-bundle", ca_path);
	write_bundle(path, cert);
	o.ca_file = path;
	tls_start(&s, reply);
	o.tls_port = s.port;
	before = amt_ca_store_loads();
	for (i = 0; i < 3; i++) {
		assert_int_equal(amt_open(&o, &a), 0);
		assert_int_equal(amt_general_get(a, &g), 0);
		amt_general_clear(&g);
		amt_free(a);
		a = NULL;
		assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), 0);
		X509_free(leaf);
		leaf = NULL;
	}
	assert_int_equal(amt_ca_store_loads() - before, 1);

	/* The bundle now names another CA: read again, and refused. */
	write_bundle(path, other);
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), AMTCA_E_AMT_TLS);
	amt_free(a);
	a = NULL;
	assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), AMTCA_E_AMT_TLS);
	assert_null(leaf);
	assert_int_equal(amt_ca_store_loads() - before, 2);

	/* A bundle that is not there: refused at open, before any traffic. */
	unlink(path);
	assert_int_equal(amt_open(&o, &a), AMTCA_E_NOT_FOUND);
	assert_null(a);
	assert_int_equal(amt_tls_fetch_leaf(&o, &leaf), AMTCA_E_CONFIG);
	tls_stop(&s);
	X509_free(other);
	EVP_PKEY_free(other_key);
	free(gen);
	free(reply);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fetch_leaf),
		cmocka_unit_test(test_client_https),
		cmocka_unit_test(test_ca_bundle_parsed_once_and_reloaded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
