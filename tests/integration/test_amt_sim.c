/*
 * amtsim driven end to end: each test spawns build/amtsim on its own
 * loopback address and talks to it with the WS-MAN client (amt/amt.h), or
 * with raw HTTP where the client cannot misbehave on purpose.
 *
 * Env: AMTSIM (path of build/amtsim), AMTCA_TOP (repo).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "amt/amt.h"
#include "amt/wsman.h"
#include "common/util.h"
#include "integration/helper_sim_proc.h"

#define PW "S1m-P@ss!"
#define FQDN "amt1.example.test"

/* ---- OpenSSL test material ---- */

static EVP_PKEY *
rsa_key(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);

	assert_non_null(k);
	return k;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *val)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, val);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* Certificate for `pub`, signed by (issuer, ikey); self-signed when NULL. */
static X509 *
make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *ikey,
    int ca, long nb_offset_s)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	char san[300];
	static long serial = 1000;

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	    (const unsigned char *)"amtsim tests", -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : n);
	X509_gmtime_adj(X509_getm_notBefore(x), nb_offset_s);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
	X509_set_pubkey(x, pub);
	if (ca)
		add_ext(x, issuer != NULL ? issuer : x, NID_basic_constraints,
		    "critical,CA:TRUE");
	else {
		snprintf(san, sizeof(san), "DNS:%s", cn);
		add_ext(x, issuer, NID_subject_alt_name, san);
		add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
	}
	assert_true(X509_sign(x, ikey != NULL ? ikey : pub, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

static unsigned char *
cert_der(X509 *x, size_t *len)
{
	unsigned char *p = NULL;
	int n = i2d_X509(x, &p);

	assert_true(n > 0);
	*len = (size_t)n;
	return p;
}

static void
write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	if (x != NULL)
		assert_int_equal(PEM_write_X509(fp, x), 1);
	if (k != NULL)
		assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL,
		    NULL), 1);
	fclose(fp);
}

/* ---- client helpers ---- */

struct dev {
	struct simh sim;
	char addr[32];
	struct amt_opts o;
	struct amt *a;
};

static void
dev_opts(struct dev *d, const char *fqdn, const char *pw)
{
	memset(&d->o, 0, sizeof(d->o));
	d->o.host = fqdn;
	d->o.address = d->addr;
	d->o.user = "admin";
	d->o.password = pw;
	d->o.timeout_ms = 15000;
}

/* Spawn a single-device amtsim on address k with extra args. */
static void
dev_start(struct dev *d, unsigned k, const char *const *extra)
{
	const char *args[40];
	size_t n = 0, i;

	memset(d, 0, sizeof(*d));
	simh_addr(d->addr, sizeof(d->addr), k);
	args[n++] = "--listen";
	args[n++] = d->addr;
	args[n++] = "--fqdn";
	args[n++] = FQDN;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	assert_int_equal(simh_start(&d->sim, PW, args), 0);
	dev_opts(d, FQDN, PW);
	assert_int_equal(amt_open(&d->o, &d->a), 0);
}

static void
dev_stop(struct dev *d)
{
	amt_free(d->a);
	d->a = NULL;
	assert_int_equal(simh_stop(&d->sim), 0);
	simh_cleanup(&d->sim);
}

static char *
gen_key(struct amt *a)
{
	char *h = NULL;

	assert_int_equal(amt_generate_key_pair(a, 0, 2048, &h), 0);
	assert_non_null(h);
	return h;
}

static EVP_PKEY *
key_pub(struct amt *a, const char *handle)
{
	struct amt_key *k = NULL;
	EVP_PKEY *pub = NULL;
	size_t n = 0, i;

	assert_int_equal(amt_keys_list(a, &k, &n), 0);
	for (i = 0; i < n; i++) {
		if (strcmp(k[i].instance_id, handle) == 0) {
			pub = k[i].pub;
			assert_int_equal(EVP_PKEY_up_ref(pub), 1);
		}
	}
	amt_keys_free(k, n);
	assert_non_null(pub);
	return pub;
}

/* ---- tests ---- */

static void
test_general_settings(void **state)
{
	struct amt_general g;
	struct dev d;

	(void)state;
	dev_start(&d, 1, NULL);
	memset(&g, 0, sizeof(g));
	assert_int_equal(amt_general_get(d.a, &g), 0);
	assert_string_equal(g.hostname, "amt1");
	assert_string_equal(g.domainname, "example.test");
	assert_string_equal(g.version, "16.1.27.2225");
	assert_int_equal(strlen(g.realm), 7 + 32);
	assert_memory_equal(g.realm, "Digest:", 7);
	assert_int_equal(strspn(g.realm + 7, "0123456789ABCDEF"), 32);
	amt_general_clear(&g);
	dev_stop(&d);
}

static void
test_wrong_password_one_attempt(void **state)
{
	struct amt_general g;
	struct dev d;
	struct amt *bad = NULL;

	(void)state;
	dev_start(&d, 2, NULL);
	dev_opts(&d, FQDN, "wrong-password");
	assert_int_equal(amt_open(&d.o, &bad), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(amt_general_get(bad, &g), AMTCA_E_AMT_AUTH);
	assert_int_equal(amt_request_count(bad), 2);
	amt_free(bad);
	dev_stop(&d);
}

/* Flow A end to end, then TLS on 16993 and the plain port closing. */
static void
test_flow_a_tls(void **state)
{
	const char *extra[] = { "--commit-delay-ms", "100", NULL };
	struct dev d;
	EVP_PKEY *ca_key, *pub, *throwaway, *evil_key;
	X509 *ca, *leaf, *served = NULL, *evil;
	X509_REQ *req;
	unsigned char *der, *csr = NULL, *sreq = NULL;
	const unsigned char *p;
	size_t der_len, sreq_len = 0, n = 0, i;
	char *root_h = NULL, *key_h, *leaf_h = NULL, *ctx = NULL, ca_path[128];
	char evil_path[128];
	struct amt_cert *certs = NULL;
	struct amt_tls_setting s;
	struct amt_general g;
	struct amt *tls = NULL;
	uint32_t ta0 = 0;
	int csr_len, r, tries;

	(void)state;
	dev_start(&d, 3, extra);

	/* AddTrustedRootCertificate, then a duplicate → 2058. */
	ca_key = rsa_key();
	ca = make_cert("amtsim test root", ca_key, NULL, NULL, 1, -3600);
	der = cert_der(ca, &der_len);
	assert_int_equal(amt_add_trusted_root(d.a, der, der_len, &root_h), 0);
	assert_string_equal(root_h, "Intel(r) AMT Certificate: Handle: 0");
	assert_int_equal(amt_add_trusted_root(d.a, der, der_len, &ctx),
	    AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value, AMT_PT_DUPLICATE);
	OPENSSL_free(der);

	/* GenerateKeyPair, DERKey, GeneratePKCS10RequestEx. */
	key_h = gen_key(d.a);
	assert_string_equal(key_h, "Intel(r) AMT Key: Handle: 0");
	pub = key_pub(d.a, key_h);
	req = X509_REQ_new();
	X509_REQ_set_version(req, 0);
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_ASC, (const unsigned char *)FQDN, -1, -1, 0);
	assert_int_equal(X509_REQ_set_pubkey(req, pub), 1);
	/* "Null-signed": any signature; AMT re-signs with the device key. */
	throwaway = rsa_key();
	assert_true(X509_REQ_sign(req, throwaway, EVP_sha256()) > 0);
	assert_int_equal(X509_REQ_verify(req, pub), 0);
	csr_len = i2d_X509_REQ(req, &csr);
	X509_REQ_free(req);
	assert_int_equal(amt_pkcs10_request(d.a, key_h, 1, csr, (size_t)csr_len,
	    &sreq, &sreq_len), 0);
	p = sreq;
	req = d2i_X509_REQ(NULL, &p, (long)sreq_len);
	assert_non_null(req);
	assert_int_equal(X509_REQ_verify(req, pub), 1);
	assert_int_equal(X509_REQ_get_signature_nid(req),
	    NID_sha256WithRSAEncryption);
	X509_REQ_free(req);
	free(sreq);
	/* A CSR over another key is refused: 2062. */
	req = X509_REQ_new();
	X509_REQ_set_pubkey(req, throwaway);
	X509_REQ_sign(req, throwaway, EVP_sha256());
	OPENSSL_free(csr);
	csr = NULL;
	csr_len = i2d_X509_REQ(req, &csr);
	X509_REQ_free(req);
	assert_int_equal(amt_pkcs10_request(d.a, key_h, 1, csr, (size_t)csr_len,
	    &sreq, &sreq_len), AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value, AMT_PT_INVALID_KEY);
	assert_int_equal(amt_pkcs10_request(d.a, "Intel(r) AMT Key: Handle: 9",
	    1, csr, (size_t)csr_len, &sreq, &sreq_len), AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value, 2053);
	OPENSSL_free(csr);

	/* The leaf pairs with the key; the store lists both, roots flagged. */
	leaf = make_cert(FQDN, pub, ca, ca_key, 0, -3600);
	der = cert_der(leaf, &der_len);
	assert_int_equal(amt_add_cert(d.a, der, der_len, &leaf_h), 0);
	assert_string_equal(leaf_h, "Intel(r) AMT Certificate: Handle: 1");
	assert_int_equal(amt_certs_list(d.a, &certs, &n), 0);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		if (strcmp(certs[i].instance_id, root_h) == 0) {
			assert_true(certs[i].trusted_root);
			assert_string_equal(certs[i].subject,
			    "O=amtsim tests,CN=amtsim test root");
		} else {
			assert_false(certs[i].trusted_root);
			assert_int_equal(certs[i].der_len, der_len);
			assert_memory_equal(certs[i].der, der, der_len);
			assert_string_equal(certs[i].issuer,
			    "O=amtsim tests,CN=amtsim test root");
		}
	}
	amt_certs_free(certs, n);

	/* A context to a key-less cert (the root) is refused. */
	assert_int_not_equal(amt_tls_context_create(d.a, root_h), 0);
	assert_int_equal(amt_tls_context_get(d.a, &ctx), 0);
	assert_null(ctx);
	assert_int_equal(amt_tls_context_create(d.a, leaf_h), 0);
	assert_int_equal(amt_tls_context_get(d.a, &ctx), 0);
	assert_non_null(ctx);
	assert_string_equal(ctx, leaf_h);
	free(ctx);
	ctx = NULL;
	/* Create when one exists: HTTP 400 e:AlreadyExists. */
	assert_int_equal(amt_tls_context_create(d.a, leaf_h), AMTCA_E_AMT_FAULT);
	assert_int_equal(amt_last_error(d.a)->http_status, 400);
	assert_string_equal(amt_last_error(d.a)->fault_subcode, "AlreadyExists");
	assert_int_equal(amt_tls_context_put(d.a, leaf_h), 0);
	/* A bound certificate cannot be deleted. */
	assert_int_equal(amt_cert_delete(d.a, leaf_h), AMTCA_E_AMT_FAULT);

	/* Time sync. */
	assert_int_equal(amt_time_get(d.a, &ta0), 0);
	assert_true(labs((long)ta0 - (long)time(NULL)) < 5);
	assert_int_equal(amt_time_set(d.a, ta0, (uint32_t)time(NULL),
	    (uint32_t)time(NULL)), 0);

	/* Remote TLS on, non-secure off; LMS on (its Accept is read-only). */
	memset(&s, 0, sizeof(s));
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_REMOTE, &s), 0);
	assert_int_equal(s.enabled, 0);
	assert_int_equal(s.non_secure_supported, 1);
	s.enabled = 1;
	s.mutual_auth = 0;
	s.accept_non_secure = 0;
	assert_int_equal(amt_tls_setting_put(d.a, &s), 0);
	amt_tls_setting_clear(&s);
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_LOCAL, &s), 0);
	assert_int_equal(s.accept_non_secure, 1);
	s.enabled = 1;
	s.accept_non_secure = 0;
	assert_int_equal(amt_tls_setting_put(d.a, &s), AMTCA_E_AMT_FAULT);
	s.accept_non_secure = 1;
	assert_int_equal(amt_tls_setting_put(d.a, &s), 0);
	amt_tls_setting_clear(&s);

	/* Nothing changes before the commit: plain still answers. */
	memset(&g, 0, sizeof(g));
	assert_int_equal(amt_general_get(d.a, &g), 0);
	amt_general_clear(&g);
	assert_int_equal(amt_commit(d.a), 0);

	/* 16993 comes up with exactly the installed leaf. */
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", d.sim.dir);
	write_pem(ca_path, ca, NULL);
	d.o.ca_file = ca_path;
	for (tries = 0; tries < 100; tries++) {
		if ((r = amt_tls_fetch_leaf(&d.o, &served)) == 0)
			break;
		usleep(100000);
	}
	assert_int_equal(r, 0);
	assert_int_equal(X509_cmp(served, leaf), 0);
	X509_free(served);
	served = NULL;

	/* Wrong CA bundle, wrong host name: refused. */
	evil_key = rsa_key();
	evil = make_cert("evil root", evil_key, NULL, NULL, 1, -3600);
	snprintf(evil_path, sizeof(evil_path), "%s/evil.pem", d.sim.dir);
	write_pem(evil_path, evil, NULL);
	d.o.ca_file = evil_path;
	assert_int_equal(amt_tls_fetch_leaf(&d.o, &served), AMTCA_E_AMT_TLS);
	d.o.ca_file = ca_path;
	d.o.host = "other.example.test";
	assert_int_equal(amt_tls_fetch_leaf(&d.o, &served), AMTCA_E_AMT_TLS);
	d.o.host = FQDN;

	/* WS-MAN over TLS works; plain HTTP stopped answering. */
	d.o.tls = 1;
	assert_int_equal(amt_open(&d.o, &tls), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(amt_general_get(tls, &g), 0);
	assert_string_equal(g.hostname, "amt1");
	amt_general_clear(&g);
	memset(&g, 0, sizeof(g));
	assert_int_equal(amt_general_get(d.a, &g), AMTCA_E_AMT_TRANSPORT);

	/* Rotation: a second key and leaf, Put, commit, new leaf served. */
	{
		char *key2 = gen_key(tls), *leaf2_h = NULL;
		EVP_PKEY *pub2 = key_pub(tls, key2);
		X509 *leaf2 = make_cert(FQDN, pub2, ca, ca_key, 0, -3600);
		unsigned char *der2;
		size_t der2_len;

		der2 = cert_der(leaf2, &der2_len);
		assert_int_equal(amt_add_cert(tls, der2, der2_len, &leaf2_h), 0);
		assert_int_equal(amt_tls_context_put(tls, leaf2_h), 0);
		assert_int_equal(amt_commit(tls), 0);
		for (tries = 0; tries < 100; tries++) {
			if (amt_tls_fetch_leaf(&d.o, &served) == 0 &&
			    X509_cmp(served, leaf2) == 0)
				break;
			X509_free(served);
			served = NULL;
			usleep(100000);
		}
		assert_non_null(served);
		assert_int_equal(X509_cmp(served, leaf2), 0);
		X509_free(served);
		/* The old leaf is free now; its key after it. */
		assert_int_equal(amt_cert_delete(tls, leaf_h), 0);
		assert_int_equal(amt_key_delete(tls, key_h), 0);
		/* The bound one's key is refused. */
		assert_int_equal(amt_key_delete(tls, key2), AMTCA_E_AMT_FAULT);
		OPENSSL_free(der2);
		X509_free(leaf2);
		EVP_PKEY_free(pub2);
		free(key2);
		free(leaf2_h);
	}
	amt_free(tls);

	OPENSSL_free(der);
	X509_free(leaf);
	X509_free(ca);
	X509_free(evil);
	EVP_PKEY_free(evil_key);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(throwaway);
	EVP_PKEY_free(pub);
	free(root_h);
	free(key_h);
	free(leaf_h);
	dev_stop(&d);
}

/* --serve-cert/--serve-key: a "man in the middle" is caught. */
static void
test_mitm_cert_refused(void **state)
{
	struct dev d;
	EVP_PKEY *ca_key, *mitm_key, *pub;
	X509 *ca, *leaf, *mitm, *served = NULL;
	unsigned char *der;
	size_t der_len;
	char *key_h, *leaf_h = NULL, path[128], ca_path[128];
	const char *extra[] = { "--commit-delay-ms", "50", "--serve-cert", path,
	    "--serve-key", path, NULL };
	struct amt_tls_setting s;
	int r = -1, tries;

	(void)state;
	/* The impostor's cert carries the right name but the wrong issuer. */
	mitm_key = rsa_key();
	mitm = make_cert(FQDN, mitm_key, NULL, NULL, 0, -3600);
	snprintf(path, sizeof(path), "/tmp/amtsim-mitm-%d.pem", (int)getpid());
	write_pem(path, mitm, mitm_key);
	dev_start(&d, 4, extra);
	unlink(path);

	ca_key = rsa_key();
	ca = make_cert("amtsim test root", ca_key, NULL, NULL, 1, -3600);
	key_h = gen_key(d.a);
	pub = key_pub(d.a, key_h);
	leaf = make_cert(FQDN, pub, ca, ca_key, 0, -3600);
	der = cert_der(leaf, &der_len);
	assert_int_equal(amt_add_cert(d.a, der, der_len, &leaf_h), 0);
	assert_int_equal(amt_tls_context_create(d.a, leaf_h), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_REMOTE, &s), 0);
	s.enabled = 1;
	s.accept_non_secure = 1;
	assert_int_equal(amt_tls_setting_put(d.a, &s), 0);
	amt_tls_setting_clear(&s);
	assert_int_equal(amt_commit(d.a), 0);

	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", d.sim.dir);
	write_pem(ca_path, ca, NULL);
	d.o.ca_file = NULL;	/* diagnostics: wait until something answers */
	for (tries = 0; tries < 100; tries++) {
		if ((r = amt_tls_fetch_leaf(&d.o, &served)) == 0)
			break;
		usleep(100000);
	}
	assert_int_equal(r, 0);
	assert_int_equal(X509_cmp(served, mitm), 0);
	X509_free(served);
	served = NULL;
	d.o.ca_file = ca_path;
	assert_int_equal(amt_tls_fetch_leaf(&d.o, &served), AMTCA_E_AMT_TLS);
	assert_null(served);

	OPENSSL_free(der);
	X509_free(leaf);
	X509_free(ca);
	X509_free(mitm);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(mitm_key);
	free(key_h);
	free(leaf_h);
	dev_stop(&d);
}

static void
test_keygen_busy_then_success(void **state)
{
	const char *extra[] = { "--keygen-busy", "2", NULL };
	struct dev d;
	char *h = NULL;

	(void)state;
	dev_start(&d, 5, extra);
	assert_int_equal(amt_generate_key_pair(d.a, 0, 2048, &h),
	    AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value,
	    AMT_PT_PKI_GENERATING_KEYS);
	assert_int_equal(amt_generate_key_pair(d.a, 0, 2048, &h),
	    AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value,
	    AMT_PT_PKI_GENERATING_KEYS);
	assert_int_equal(amt_generate_key_pair(d.a, 0, 2048, &h), 0);
	assert_string_equal(h, "Intel(r) AMT Key: Handle: 0");
	free(h);
	h = NULL;
	/* Other sizes are unsupported. */
	assert_int_equal(amt_generate_key_pair(d.a, 0, 3072, &h),
	    AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value, AMT_PT_UNSUPPORTED);
	dev_stop(&d);
}

static void
test_store_limits_and_blobs(void **state)
{
	const char *extra[] = { "--store-max", "2", NULL };
	struct dev d;
	EVP_PKEY *k1, *k2, *k3;
	X509 *c1, *c2, *c3;
	unsigned char *der, *pk1 = NULL, junk[64];
	size_t len;
	char *h = NULL;
	int n;

	(void)state;
	dev_start(&d, 6, extra);
	k1 = rsa_key();
	k2 = rsa_key();
	k3 = rsa_key();
	c1 = make_cert("one", k1, NULL, NULL, 1, -3600);
	c2 = make_cert("two", k2, NULL, NULL, 1, -3600);
	c3 = make_cert("three", k3, NULL, NULL, 1, -3600);

	/* Bad blob → 2063; > 4100 bytes → 2063. */
	memset(junk, 0x30, sizeof(junk));
	assert_int_equal(amt_add_cert(d.a, junk, sizeof(junk), &h),
	    AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value, AMT_PT_INVALID_CERT);
	/* (> 4100 bytes is refused by the client itself: see test_faults_raw.) */

	der = cert_der(c1, &len);
	assert_int_equal(amt_add_cert(d.a, der, len, &h), 0);
	free(h);
	h = NULL;
	assert_int_equal(amt_add_cert(d.a, der, len, &h), AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value, AMT_PT_DUPLICATE);
	OPENSSL_free(der);
	der = cert_der(c2, &len);
	assert_int_equal(amt_add_trusted_root(d.a, der, len, &h), 0);
	assert_string_equal(h, "Intel(r) AMT Certificate: Handle: 1");
	free(h);
	h = NULL;
	OPENSSL_free(der);
	der = cert_der(c3, &len);
	assert_int_equal(amt_add_cert(d.a, der, len, &h), AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value,
	    AMT_PT_MAX_LIMIT_REACHED);
	OPENSSL_free(der);

	/* AddKey: PKCS#1 accepted, PKCS#8 refused (2062), duplicate 2058. */
	{
		PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k1);
		unsigned char *p8der = NULL;
		int p8len = i2d_PKCS8_PRIV_KEY_INFO(p8, &p8der);

		assert_true(p8len > 0);
		assert_int_equal(amt_add_key(d.a, p8der, (size_t)p8len, &h),
		    AMTCA_E_AMT_STATUS);
		assert_int_equal(amt_last_error(d.a)->return_value,
		    AMT_PT_INVALID_KEY);
		OPENSSL_free(p8der);
		PKCS8_PRIV_KEY_INFO_free(p8);
	}
	n = i2d_PrivateKey(k1, &pk1);
	assert_true(n > 0);
	assert_int_equal(amt_add_key(d.a, pk1, (size_t)n, &h), 0);
	assert_string_equal(h, "Intel(r) AMT Key: Handle: 0");
	free(h);
	h = NULL;
	assert_int_equal(amt_add_key(d.a, pk1, (size_t)n, &h),
	    AMTCA_E_AMT_STATUS);
	assert_int_equal(amt_last_error(d.a)->return_value, AMT_PT_DUPLICATE);
	OPENSSL_clear_free(pk1, (size_t)n);

	/* Handles are not reused after a delete. */
	assert_int_equal(amt_cert_delete(d.a,
	    "Intel(r) AMT Certificate: Handle: 0"), 0);
	der = cert_der(c3, &len);
	assert_int_equal(amt_add_cert(d.a, der, len, &h), 0);
	assert_string_equal(h, "Intel(r) AMT Certificate: Handle: 2");
	free(h);
	OPENSSL_free(der);

	X509_free(c1);
	X509_free(c2);
	X509_free(c3);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	dev_stop(&d);
}

static void
test_drop_at(void **state)
{
	const char *extra[] = { "--drop-at", "AddTrustedRootCertificate", NULL };
	struct dev d;
	EVP_PKEY *k;
	X509 *c;
	unsigned char *der;
	size_t len, n = 0;
	char *h = NULL;
	struct amt_cert *certs = NULL;

	(void)state;
	dev_start(&d, 7, extra);
	k = rsa_key();
	c = make_cert("dropped root", k, NULL, NULL, 1, -3600);
	der = cert_der(c, &len);
	assert_int_equal(amt_add_trusted_root(d.a, der, len, &h),
	    AMTCA_E_AMT_TRANSPORT);
	assert_null(h);
	/* Dropped before it took effect: the store is still empty. */
	assert_int_equal(amt_certs_list(d.a, &certs, &n), 0);
	assert_int_equal(n, 0);
	amt_certs_free(certs, n);
	/* Once per device: the retry works. */
	assert_int_equal(amt_add_trusted_root(d.a, der, len, &h), 0);
	assert_non_null(h);
	free(h);
	OPENSSL_free(der);
	X509_free(c);
	EVP_PKEY_free(k);
	dev_stop(&d);
}

static void
test_state_survives_restart(void **state)
{
	struct dev d;
	char path[128], *h = NULL, *k0, *ctx = NULL;
	const char *extra[] = { "--state", path, NULL };
	const char *args[8];
	struct amt_key *keys = NULL;
	struct amt_cert *certs = NULL;
	unsigned char *der;
	size_t len, n = 0, nc = 0;
	EVP_PKEY *pub, *before;
	X509 *leaf;
	struct amt_tls_setting s;
	uint32_t ta0 = 0;

	(void)state;
	/* The state path lives in the simh dir, created by dev_start. */
	snprintf(path, sizeof(path), "/tmp/amtsim-state-%d", (int)getpid());
	dev_start(&d, 8, extra);
	k0 = gen_key(d.a);
	before = key_pub(d.a, k0);
	{
		EVP_PKEY *cak = rsa_key();
		X509 *ca = make_cert("state root", cak, NULL, NULL, 1, -3600);

		leaf = make_cert(FQDN, before, ca, cak, 0, -3600);
		X509_free(ca);
		EVP_PKEY_free(cak);
	}
	der = cert_der(leaf, &len);
	assert_int_equal(amt_add_cert(d.a, der, len, &h), 0);
	assert_int_equal(amt_tls_context_create(d.a, h), 0);
	assert_int_equal(amt_time_get(d.a, &ta0), 0);
	assert_int_equal(amt_time_set(d.a, ta0, ta0 + 1000, ta0 + 1000), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_REMOTE, &s), 0);
	s.enabled = 1;
	s.accept_non_secure = 1;
	assert_int_equal(amt_tls_setting_put(d.a, &s), 0);
	amt_tls_setting_clear(&s);
	amt_free(d.a);
	d.a = NULL;
	assert_int_equal(simh_stop(&d.sim), 0);

	args[0] = "--listen";
	args[1] = d.addr;
	args[2] = "--fqdn";
	args[3] = FQDN;
	args[4] = "--state";
	args[5] = path;
	args[6] = NULL;
	assert_int_equal(simh_restart(&d.sim, args), 0);
	assert_int_equal(amt_open(&d.o, &d.a), 0);
	/* Same key (same public key), same cert, same binding, same clock. */
	pub = key_pub(d.a, k0);
	assert_int_equal(EVP_PKEY_eq(pub, before), 1);
	EVP_PKEY_free(pub);
	assert_int_equal(amt_certs_list(d.a, &certs, &nc), 0);
	assert_int_equal(nc, 1);
	assert_memory_equal(certs[0].der, der, len);
	amt_certs_free(certs, nc);
	assert_int_equal(amt_tls_context_get(d.a, &ctx), 0);
	assert_non_null(ctx);
	assert_string_equal(ctx, h);
	free(ctx);
	assert_int_equal(amt_time_get(d.a, &ta0), 0);
	assert_true((long)ta0 - (long)time(NULL) > 900);
	/* Pending settings survive too. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_REMOTE, &s), 0);
	assert_int_equal(s.enabled, 1);
	amt_tls_setting_clear(&s);
	/* Handle counters continue. */
	free(h);
	h = gen_key(d.a);
	assert_string_equal(h, "Intel(r) AMT Key: Handle: 1");
	assert_int_equal(amt_keys_list(d.a, &keys, &n), 0);
	assert_int_equal(n, 2);
	amt_keys_free(keys, n);

	OPENSSL_free(der);
	X509_free(leaf);
	EVP_PKEY_free(before);
	free(h);
	free(k0);
	dev_stop(&d);
	unlink(path);
}

/*
 * Fleet mode at the size the issue asks for: 1000 devices in one process,
 * device i on base + i (crossing octet boundaries) answering as its own
 * FQDN with its own Digest realm.
 */
#define FLEET_N 1000

static void
test_fleet_1000(void **state)
{
	struct simh sim;
	char base[32], addr[INET_ADDRSTRLEN], fqdn[64], n[8];
	static char realms[FLEET_N][48];
	static unsigned char keyids[FLEET_N][SHA256_DIGEST_LENGTH];
	const char *pool = getenv("AMTSIM_KEY_POOL");
	const char *args[] = { "--devices", n, "--address-base", base,
	    "--fqdn-pattern", "dev%05d.example.test", "--key-pool", pool, NULL };
	struct amt_opts o;
	struct amt_general g;
	struct in_addr a0, ai;
	struct amt *a;
	unsigned i, j;
	int r;

	(void)state;
	/*
	 * With a key pool (AMTSIM_KEY_POOL=FILE; the first run fills it, which
	 * takes minutes) every device also generates a key, and no two get the
	 * same one.  Without, GenerateKeyPair would cost 1000 RSA generations.
	 */
	if (pool == NULL)
		args[6] = NULL;
	snprintf(n, sizeof(n), "%d", FLEET_N);
	/* x.y.200.1: the fleet runs on into the next third octet. */
	simh_addr(base, sizeof(base), 0);
	*strrchr(base, '.') = '\0';
	*strrchr(base, '.') = '\0';
	snprintf(base + strlen(base), sizeof(base) - strlen(base), ".200.1");
	assert_int_equal(inet_pton(AF_INET, base, &a0), 1);
	assert_int_equal(simh_start(&sim, PW, args), 0);
	for (i = 0; i < FLEET_N; i++) {
		ai.s_addr = htonl(ntohl(a0.s_addr) + i);
		assert_non_null(inet_ntop(AF_INET, &ai, addr, sizeof(addr)));
		snprintf(fqdn, sizeof(fqdn), "dev%05u.example.test", i);
		memset(&o, 0, sizeof(o));
		o.host = fqdn;
		o.address = addr;
		o.user = "admin";
		o.password = PW;
		o.timeout_ms = 15000;
		assert_int_equal(amt_open(&o, &a), 0);
		memset(&g, 0, sizeof(g));
		if ((r = amt_general_get(a, &g)) != 0)
			fail_msg("device %u at %s: %s", i, addr, amtca_errmsg(r));
		snprintf(fqdn, sizeof(fqdn), "dev%05u", i);
		assert_string_equal(g.hostname, fqdn);
		snprintf(realms[i], sizeof(realms[i]), "%s", g.realm);
		amt_general_clear(&g);
		if (pool != NULL) {
			char *h = gen_key(a);
			EVP_PKEY *pub = key_pub(a, h);
			unsigned char *der = NULL;
			int dl = i2d_PublicKey(pub, &der);

			assert_true(dl > 0);
			SHA256(der, (size_t)dl, keyids[i]);
			OPENSSL_free(der);
			EVP_PKEY_free(pub);
			free(h);
		}
		amt_free(a);
	}
	if (pool != NULL)
		for (i = 0; i < FLEET_N; i++)
			for (j = 0; j < i; j++)
				if (memcmp(keyids[i], keyids[j],
				    sizeof(keyids[i])) == 0)
					fail_msg("devices %u and %u got the same "
					    "key", j, i);
	/* Every device has a realm of its own. */
	for (i = 0; i < FLEET_N; i++)
		for (j = 0; j < i; j++)
			if (strcmp(realms[i], realms[j]) == 0)
				fail_msg("devices %u and %u share a realm", j, i);
	assert_int_equal(simh_stop(&sim), 0);
	simh_cleanup(&sim);
}

/* ---- raw Digest paths ---- */

static const char get_general[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?><Envelope "
    "xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" "
    "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" "
    "xmlns=\"http://www.w3.org/2003/05/soap-envelope\"><Header><a:Action>"
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action><a:To>"
    "/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/"
    "1/AMT_GeneralSettings</w:ResourceURI><a:MessageID>42</a:MessageID>"
    "</Header><Body></Body></Envelope>";

/* Fetch a challenge; returns the WWW-Authenticate value. */
static char *
challenge(const char *addr)
{
	struct simh_resp r;
	char *www, *v;

	assert_int_equal(simh_http(addr, 16992, "POST", "/wsman", NULL,
	    get_general, &r), 0);
	assert_int_equal(r.status, 401);
	www = simh_header(&r, "WWW-Authenticate");
	assert_non_null(www);
	v = simh_header(&r, "Connection");
	assert_non_null(v);
	assert_string_equal(v, "close");
	free(v);
	v = simh_header(&r, "Content-Type");
	assert_string_equal(v, "text/html");
	free(v);
	assert_non_null(strstr(r.body, "Log on failed"));
	simh_resp_free(&r);
	return www;
}

/* One request with an Authorization header built from the parts. */
static int
authed(const char *addr, const char *www, const char *pw, const char *nc,
    int quoted, const char *override_response, struct simh_resp *r)
{
	char *realm = simh_digest_param(www, "realm");
	char *nonce = simh_digest_param(www, "nonce");
	char resp[33], hdr[1024];

	assert_non_null(realm);
	assert_non_null(nonce);
	assert_int_equal(wsman_digest_response("admin", realm, pw, "POST",
	    "/wsman", nonce, nc, "0a4f113b", "auth", resp), 0);
	if (quoted)
		snprintf(hdr, sizeof(hdr), "Authorization: Digest username="
		    "\"admin\",realm=\"%s\",nonce=\"%s\",uri=\"/wsman\","
		    "response=\"%s\",qop=\"auth\",nc=\"%s\",cnonce=\"0a4f113b\""
		    "\r\n", realm, nonce,
		    override_response != NULL ? override_response : resp, nc);
	else
		snprintf(hdr, sizeof(hdr), "Authorization: Digest username="
		    "\"admin\", realm=\"%s\", nonce=\"%s\", uri=\"/wsman\", "
		    "cnonce=\"0a4f113b\", nc=%s, qop=auth, response=\"%s\"\r\n",
		    realm, nonce, nc,
		    override_response != NULL ? override_response : resp);
	free(realm);
	free(nonce);
	return simh_http(addr, 16992, "POST", "/wsman", hdr, get_general, r);
}

static void
test_digest_raw(void **state)
{
	const char *extra[] = { "--lockout", "4", "--lockout-s", "2", NULL };
	struct dev d;
	struct simh_resp r;
	char *www, *v;

	(void)state;
	dev_start(&d, 9, extra);
	www = challenge(d.addr);
	/* The exact AMT challenge form. */
	assert_int_equal(strncmp(www, "Digest realm=\"Digest:", 21), 0);
	assert_non_null(strstr(www, "\", nonce=\""));
	assert_non_null(strstr(www, "\",stale=\"false\",qop=\"auth\""));
	v = simh_digest_param(www, "nonce");
	assert_int_equal(strlen(v), 32);
	free(v);

	/* The right answer works, quoted (go) and unquoted (libcurl) forms. */
	assert_int_equal(authed(d.addr, www, PW, "00000001", 1, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "<b:RelatesTo>42</b:RelatesTo>"));
	/* Chunked at irregular sizes. */
	assert_true(r.nchunks > 2);
	v = simh_header(&r, "X-Frame-Options");
	assert_string_equal(v, "DENY");
	free(v);
	simh_resp_free(&r);
	assert_int_equal(authed(d.addr, www, PW, "2", 0, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	simh_resp_free(&r);

	/* response="" (the 2017 bypass) and a wrong response: 401. */
	assert_int_equal(authed(d.addr, www, PW, "00000003", 1, "", &r), 0);
	assert_int_equal(r.status, 401);
	simh_resp_free(&r);
	assert_int_equal(authed(d.addr, www, "nope", "00000004", 1, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	simh_resp_free(&r);
	/* uri must be /wsman: a good digest for another path is refused. */
	assert_int_equal(simh_http(d.addr, 16992, "GET", "/index.htm", NULL,
	    NULL, &r), 0);
	assert_int_equal(r.status, 404);
	simh_resp_free(&r);

	/* Two more failures lock the account: even the right answer fails. */
	assert_int_equal(authed(d.addr, www, "nope", "00000005", 1, NULL, &r), 0);
	simh_resp_free(&r);
	assert_int_equal(authed(d.addr, www, "nope", "00000006", 1, NULL, &r), 0);
	simh_resp_free(&r);
	assert_int_equal(authed(d.addr, www, PW, "00000007", 1, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	simh_resp_free(&r);
	/* ... until the lockout period is over. */
	sleep(3);
	assert_int_equal(authed(d.addr, www, PW, "00000008", 1, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	simh_resp_free(&r);
	free(www);
	dev_stop(&d);
}

static void
test_stale_nonce(void **state)
{
	const char *extra[] = { "--nonce-ttl", "1", NULL };
	struct dev d;
	struct simh_resp r;
	char *www, *v;

	(void)state;
	dev_start(&d, 10, extra);
	www = challenge(d.addr);
	assert_int_equal(authed(d.addr, www, PW, "00000001", 1, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	simh_resp_free(&r);
	sleep(2);
	assert_int_equal(authed(d.addr, www, PW, "00000002", 1, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	v = simh_header(&r, "WWW-Authenticate");
	assert_non_null(strstr(v, "stale=\"true\""));
	free(v);
	simh_resp_free(&r);
	free(www);
	dev_stop(&d);
}

/* One authenticated raw POST of `body` (nc = idx). */
static void
raw_call(const char *addr, const char *www, unsigned idx, const char *body,
    struct simh_resp *r)
{
	char *realm = simh_digest_param(www, "realm");
	char *nonce = simh_digest_param(www, "nonce");
	char resp[33], hdr[1024], nc[16];

	snprintf(nc, sizeof(nc), "%08x", idx);
	assert_int_equal(wsman_digest_response("admin", realm, PW, "POST",
	    "/wsman", nonce, nc, "c0ffee", "auth", resp), 0);
	snprintf(hdr, sizeof(hdr), "Authorization: Digest username="
	    "\"admin\",realm=\"%s\",nonce=\"%s\",uri=\"/wsman\","
	    "response=\"%s\",qop=auth,nc=%s,cnonce=\"c0ffee\"\r\n",
	    realm, nonce, resp, nc);
	assert_int_equal(simh_http(addr, 16992, "POST", "/wsman", hdr, body,
	    r), 0);
	free(realm);
	free(nonce);
}

/* SOAP faults (and limits) for what the typed client never sends. */
static void
test_faults_raw(void **state)
{
	static const char *const cases[][3] = {
		{ "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
		  "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_Nonexistent",
		  "b:DestinationUnreachable" },
		{ "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
		  "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings",
		  "b:ActionNotSupported" },
		{ "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
		  "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate",
		  "e:InvalidSelectors" },
	};
	struct dev d;
	struct simh_resp r;
	char *www, body[2048];
	size_t i;

	(void)state;
	dev_start(&d, 11, NULL);
	www = challenge(d.addr);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "<Envelope xmlns:a=\"http://"
		    "schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:w=\""
		    "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns="
		    "\"http://www.w3.org/2003/05/soap-envelope\"><Header>"
		    "<a:Action>%s</a:Action><w:ResourceURI>%s</w:ResourceURI>"
		    "<a:MessageID>7</a:MessageID>%s</Header><Body/></Envelope>",
		    cases[i][0], cases[i][1], i == 2 ? "<w:SelectorSet><w:"
		    "Selector Name=\"InstanceID\">Intel(r) AMT Certificate: "
		    "Handle: 77</w:Selector></w:SelectorSet>" : "");
		raw_call(d.addr, www, (unsigned)i + 1, body, &r);
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(r.body, cases[i][2]));
		assert_null(strstr(r.body, "ResourceURI"));
		assert_non_null(strstr(r.body, "<b:RelatesTo>7</b:RelatesTo>"));
		simh_resp_free(&r);
	}
	/* A certificate blob over 4100 bytes of DER: ReturnValue 2063. */
	{
		unsigned char *big = calloc(1, 4101);
		char *b64 = NULL, *xml = NULL;

		big[0] = 0x30;
		big[1] = 0x82;
		big[2] = 0x10;
		big[3] = 0x01;
		assert_int_equal(amtca_b64_encode(big, 4101, &b64), 0);
		assert_true(asprintf(&xml, "<Envelope xmlns:a=\"http://schemas."
		    "xmlsoap.org/ws/2004/08/addressing\" xmlns:w=\"http://"
		    "schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns=\"http://"
		    "www.w3.org/2003/05/soap-envelope\"><Header><a:Action>http:"
		    "//intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagem"
		    "entService/AddCertificate</a:Action><w:ResourceURI>http://"
		    "intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagemen"
		    "tService</w:ResourceURI><a:MessageID>8</a:MessageID>"
		    "</Header><Body><h:AddCertificate_INPUT xmlns:h=\"http://"
		    "intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagemen"
		    "tService\"><h:CertificateBlob>%s</h:CertificateBlob></h:"
		    "AddCertificate_INPUT></Body></Envelope>", b64) > 0);
		raw_call(d.addr, www, 99, xml, &r);
		assert_int_equal(r.status, 200);
		assert_non_null(strstr(r.body,
		    "<g:ReturnValue>2063</g:ReturnValue>"));
		simh_resp_free(&r);
		free(xml);
		free(b64);
		free(big);
	}
	free(www);
	dev_stop(&d);
}

/* CSME >= 16.1 with NonSecureConnectionsSupported=false. */
static void
test_non_secure_unsupported(void **state)
{
	const char *extra[] = { "--non-secure-unsupported", NULL };
	struct dev d;
	struct amt_tls_setting s;

	(void)state;
	dev_start(&d, 12, extra);
	memset(&s, 0, sizeof(s));
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_REMOTE, &s), 0);
	assert_int_equal(s.non_secure_supported, 0);
	s.enabled = 1;
	s.accept_non_secure = 1;
	assert_int_equal(amt_tls_setting_put(d.a, &s), AMTCA_E_AMT_FAULT);
	amt_tls_setting_clear(&s);
	/* Enabled without a bound certificate: the commit fails. */
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_REMOTE, &s), 0);
	s.enabled = 1;
	s.accept_non_secure = 0;
	assert_int_equal(amt_tls_setting_put(d.a, &s), 0);
	amt_tls_setting_clear(&s);
	assert_int_equal(amt_commit(d.a), AMTCA_E_AMT_STATUS);
	assert_int_not_equal(amt_last_error(d.a)->return_value, 0);
	dev_stop(&d);
}

/* --clock-skew: the AMT clock is off until SetHighAccuracyTimeSynch. */
static void
test_clock_skew(void **state)
{
	const char *extra[] = { "--clock-skew", "-86400", NULL };
	struct dev d;
	uint32_t ta0 = 0;
	long now;

	(void)state;
	dev_start(&d, 13, extra);
	assert_int_equal(amt_time_get(d.a, &ta0), 0);
	now = (long)time(NULL);
	assert_true(labs((long)ta0 - (now - 86400)) < 5);
	assert_int_equal(amt_time_set(d.a, ta0, (uint32_t)now, (uint32_t)now), 0);
	assert_int_equal(amt_time_get(d.a, &ta0), 0);
	assert_true(labs((long)ta0 - (long)time(NULL)) < 5);
	/* Ta0 must echo what the device handed out. */
	assert_int_equal(amt_time_set(d.a, ta0 - 77, (uint32_t)now,
	    (uint32_t)now), AMTCA_E_AMT_STATUS);
	dev_stop(&d);
}

/*
 * Flow B (AddKey) on an "old AMT" (--old-tls): the TLS port works only for
 * a client that opts into legacy renegotiation.
 */
static void
test_old_tls_flow_b(void **state)
{
	const char *extra[] = { "--old-tls", "--commit-delay-ms", "50", NULL };
	struct dev d;
	EVP_PKEY *ca_key, *k;
	X509 *ca, *leaf, *served = NULL;
	unsigned char *der, *pk = NULL;
	size_t len;
	char *key_h = NULL, *cert_h = NULL, ca_path[128];
	struct amt_tls_setting s;
	int n, r = -1, tries;

	(void)state;
	dev_start(&d, 14, extra);
	ca_key = rsa_key();
	ca = make_cert("old root", ca_key, NULL, NULL, 1, -3600);
	k = rsa_key();
	n = i2d_PrivateKey(k, &pk);
	assert_true(n > 0);
	assert_int_equal(amt_add_key(d.a, pk, (size_t)n, &key_h), 0);
	OPENSSL_clear_free(pk, (size_t)n);
	leaf = make_cert(FQDN, k, ca, ca_key, 0, -3600);
	der = cert_der(leaf, &len);
	assert_int_equal(amt_add_cert(d.a, der, len, &cert_h), 0);
	assert_int_equal(amt_tls_context_create(d.a, cert_h), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_REMOTE, &s), 0);
	s.enabled = 1;
	s.accept_non_secure = 1;
	assert_int_equal(amt_tls_setting_put(d.a, &s), 0);
	amt_tls_setting_clear(&s);
	assert_int_equal(amt_commit(d.a), 0);

	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", d.sim.dir);
	write_pem(ca_path, ca, NULL);
	d.o.ca_file = ca_path;
	d.o.legacy_tls = 1;
	for (tries = 0; tries < 100; tries++) {
		if ((r = amt_tls_fetch_leaf(&d.o, &served)) == 0)
			break;
		usleep(100000);
	}
	assert_int_equal(r, 0);
	assert_int_equal(X509_cmp(served, leaf), 0);
	X509_free(served);
	served = NULL;
	d.o.legacy_tls = 0;
	assert_int_equal(amt_tls_fetch_leaf(&d.o, &served), AMTCA_E_AMT_TLS);
	/* Plain stays up: AcceptNonSecureConnections=true. */
	{
		struct amt_general g;

		memset(&g, 0, sizeof(g));
		assert_int_equal(amt_general_get(d.a, &g), 0);
		amt_general_clear(&g);
	}
	OPENSSL_free(der);
	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ca_key);
	free(key_h);
	free(cert_h);
	dev_stop(&d);
}

/* ---- key pool and simulated clock ---- */

/* SIGTERM, then what amtsim prints on stdout after "ready" until it exits. */
static void
sim_stop_output(struct simh *s, char *out, size_t outlen)
{
	size_t got = 0;
	ssize_t r;

	assert_int_equal(kill(s->pid, SIGTERM), 0);
	while (got < outlen - 1) {
		struct pollfd p = { s->out_fd, POLLIN, 0 };

		if (poll(&p, 1, 15000) <= 0)
			break;
		if ((r = read(s->out_fd, out + got, outlen - 1 - got)) <= 0)
			break;
		got += (size_t)r;
	}
	out[got] = '\0';
	assert_int_equal(simh_stop(s), 0);
}

/* The private keys in a key pool file, in file order. */
static size_t
pool_keys(const char *path, EVP_PKEY **keys, size_t max)
{
	FILE *fp = fopen(path, "r");
	size_t n = 0;

	assert_non_null(fp);
	while (n < max && (keys[n] = PEM_read_PrivateKey(fp, NULL, NULL,
	    NULL)) != NULL)
		n++;
	ERR_clear_error();
	fclose(fp);
	return n;
}

static void
keys_free(EVP_PKEY **k, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		EVP_PKEY_free(k[i]);
}

/* Device i of a "pool%02d.example.test" fleet at base: GenerateKeyPair. */
static EVP_PKEY *
fleet_keygen(const char *base, unsigned i)
{
	struct in_addr a0;
	struct amt_opts o;
	struct amt *a = NULL;
	char addr[INET_ADDRSTRLEN], fqdn[64], *h;
	EVP_PKEY *pub;

	assert_int_equal(inet_pton(AF_INET, base, &a0), 1);
	a0.s_addr = htonl(ntohl(a0.s_addr) + i);
	assert_non_null(inet_ntop(AF_INET, &a0, addr, sizeof(addr)));
	snprintf(fqdn, sizeof(fqdn), "pool%02u.example.test", i);
	memset(&o, 0, sizeof(o));
	o.host = fqdn;
	o.address = addr;
	o.user = "admin";
	o.password = PW;
	o.timeout_ms = 15000;
	assert_int_equal(amt_open(&o, &a), 0);
	h = gen_key(a);
	pub = key_pub(a, h);
	free(h);
	amt_free(a);
	return pub;
}

/*
 * --key-pool: devices of one run never share a key; keys come from the
 * file in order; a dry pool generates on the fly and keeps those keys; a
 * second run reuses the file without generating or rewriting it; keys that
 * devices restored from --state hold are not handed out again; two
 * running simulators cannot share a pool.
 */
static void
test_key_pool(void **state)
{
	char dir[] = "/tmp/amtsim-pool.XXXXXX", pool[96], lock[96], st[96];
	char base[32], base2[32], out[512];
	const char *args[] = { "--devices", "3", "--address-base", base,
	    "--fqdn-pattern", "pool%02d.example.test", "--key-pool", pool,
	    "--key-pool-size", "2", NULL, NULL, NULL };
	const char *args2[] = { "--devices", "1", "--address-base", base2,
	    "--fqdn-pattern", "pool%02d.example.test", "--key-pool", pool, NULL };
	EVP_PKEY *got[4], *fk[8];
	unsigned char *before = NULL, *after = NULL;
	size_t blen = 0, alen = 0, nf, i, j;
	struct stat sb, sa;
	struct simh sim, other;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(pool, sizeof(pool), "%s/pool.pem", dir);
	snprintf(lock, sizeof(lock), "%s/pool.pem.lock", dir);
	snprintf(st, sizeof(st), "%s/state", dir);
	simh_addr(base, sizeof(base), 30);
	simh_addr(base2, sizeof(base2), 35);

	/* Run 1: two keys made at start-up; the fourth call runs the pool dry. */
	assert_int_equal(simh_start(&sim, PW, args), 0);
	nf = pool_keys(pool, fk, 8);
	assert_int_equal(nf, 2);
	for (i = 0; i < 3; i++)
		got[i] = fleet_keygen(base, i);
	got[3] = fleet_keygen(base, 0);
	assert_int_equal(EVP_PKEY_eq(got[0], fk[0]), 1);
	assert_int_equal(EVP_PKEY_eq(got[1], fk[1]), 1);
	for (i = 0; i < 4; i++)
		for (j = 0; j < i; j++)
			if (EVP_PKEY_eq(got[i], got[j]) == 1)
				fail_msg("calls %zu and %zu got the same key", j, i);
	sim_stop_output(&sim, out, sizeof(out));
	simh_cleanup(&sim);
	assert_non_null(strstr(out, "key-pool keys=4 used=4 skipped=0 "
	    "generated=2 on_the_fly=2\n"));
	keys_free(fk, nf);
	/* The keys made on the fly joined the file, in the order handed out. */
	nf = pool_keys(pool, fk, 8);
	assert_int_equal(nf, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(EVP_PKEY_eq(got[i], fk[i]), 1);
	keys_free(got, 4);
	assert_int_equal(stat(pool, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(amtca_file_read(pool, 1 << 20, &before, &blen), 0);

	/* Run 2: the same work reuses the pool: nothing generated or written. */
	assert_int_equal(simh_start(&sim, PW, args), 0);
	/* A second simulator on the same pool would hand out the same keys. */
	assert_int_equal(simh_start(&other, PW, args2), -1);
	simh_cleanup(&other);
	for (i = 0; i < 3; i++)
		got[i] = fleet_keygen(base, i);
	got[3] = fleet_keygen(base, 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(EVP_PKEY_eq(got[i], fk[i]), 1);
	keys_free(got, 4);
	sim_stop_output(&sim, out, sizeof(out));
	simh_cleanup(&sim);
	assert_non_null(strstr(out, "key-pool keys=4 used=4 skipped=0 "
	    "generated=0 on_the_fly=0\n"));
	assert_int_equal(stat(pool, &sa), 0);
	assert_true(sa.st_ino == sb.st_ino);
	assert_true(sa.st_mtim.tv_sec == sb.st_mtim.tv_sec &&
	    sa.st_mtim.tv_nsec == sb.st_mtim.tv_nsec);
	assert_int_equal(amtca_file_read(pool, 1 << 20, &after, &alen), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);

	/* Runs 3 and 4: a restart from --state skips the keys devices hold. */
	args[10] = "--state";
	args[11] = st;
	assert_int_equal(simh_start(&sim, PW, args), 0);
	got[0] = fleet_keygen(base, 0);
	assert_int_equal(EVP_PKEY_eq(got[0], fk[0]), 1);
	sim_stop_output(&sim, out, sizeof(out));
	assert_int_equal(simh_restart(&sim, args), 0);
	got[1] = fleet_keygen(base, 1);
	assert_int_equal(EVP_PKEY_eq(got[1], fk[1]), 1);
	sim_stop_output(&sim, out, sizeof(out));
	simh_cleanup(&sim);
	assert_non_null(strstr(out, "key-pool keys=4 used=1 skipped=1 "));
	keys_free(got, 2);

	keys_free(fk, nf);
	free(before);
	free(after);
	unlink(pool);
	unlink(lock);
	unlink(st);
	rmdir(dir);
}

/* AMT clock minus host clock, in seconds. */
static long long
amt_clock_ahead(struct amt *a)
{
	uint32_t ta0 = 0;

	assert_int_equal(amt_time_get(a, &ta0), 0);
	return (long long)ta0 - (long long)time(NULL);
}

#define assert_near(x, want) do {					\
	long long x_ = (x), w_ = (want);				\
	if (llabs(x_ - w_) > 5)						\
		fail_msg("%s = %lld, want %lld", #x, x_, w_);		\
} while (0)

/* Write the --clock-file, SIGHUP, wait for amtsim's acknowledgement. */
static void
sim_set_clock(struct simh *s, const char *path, long long off)
{
	char want[64], buf[512];
	size_t got = 0;
	ssize_t r;
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fprintf(fp, "%lld\n", off);
	assert_int_equal(fclose(fp), 0);
	snprintf(want, sizeof(want), "clock-offset %lld\n", off);
	buf[0] = '\0';
	assert_int_equal(kill(s->pid, SIGHUP), 0);
	while (strstr(buf, want) == NULL && got < sizeof(buf) - 1) {
		struct pollfd p = { s->out_fd, POLLIN, 0 };

		if (poll(&p, 1, 15000) <= 0)
			fail_msg("amtsim did not acknowledge %s", want);
		if ((r = read(s->out_fd, buf + got, sizeof(buf) - 1 - got)) <= 0)
			fail_msg("amtsim closed stdout");
		got += (size_t)r;
		buf[got] = '\0';
	}
	assert_non_null(strstr(buf, want));
}

/* The Date header of a 401, against the host clock. */
static long long
date_ahead(const char *addr)
{
	struct simh_resp r;
	struct tm tm;
	char *date;

	memset(&r, 0, sizeof(r));
	assert_int_equal(simh_http(addr, 16992, "POST", "/wsman", NULL, "", &r), 0);
	assert_int_equal(r.status, 401);
	date = simh_header(&r, "Date");
	assert_non_null(date);
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm));
	free(date);
	simh_resp_free(&r);
	return (long long)timegm(&tm) - (long long)time(NULL);
}

/* Poll (up to 10 s) until the TLS port serves (want=1) or not (want=0). */
static void
wait_tls(struct dev *d, int want)
{
	X509 *served = NULL;
	int tries, up = !want;

	for (tries = 0; tries < 100; tries++) {
		up = amt_tls_fetch_leaf(&d->o, &served) == 0;
		X509_free(served);
		served = NULL;
		if (up == want)
			break;
		usleep(100000);
	}
	assert_int_equal(up, want);
}

/*
 * --clock-offset: the simulated clock drives the AMT clock (time calls and
 * the Date header) and the validity check of the served certificate; it
 * moves at run time (--clock-file + SIGHUP) and survives in --state.
 */
static void
test_clock_offset(void **state)
{
	char dir[] = "/tmp/amtsim-clock.XXXXXX", clk[96], st[96], ca_path[128];
	const char *extra[] = { "--clock-offset", "2592000", "--clock-file", clk,
	    "--state", st, "--commit-delay-ms", "50", NULL };
	const char *args[10];
	struct dev d;
	EVP_PKEY *ca_key, *pub;
	X509 *ca, *leaf;
	unsigned char *der;
	size_t len;
	char *kh, *ch = NULL;
	struct amt_tls_setting s;
	uint32_t ta0 = 0, now;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(clk, sizeof(clk), "%s/clock", dir);
	snprintf(st, sizeof(st), "%s/state", dir);
	dev_start(&d, 40, extra);
	assert_near(amt_clock_ahead(d.a), 2592000);
	assert_near(date_ahead(d.addr), 2592000);

	/* Moved at run time, backwards too. */
	sim_set_clock(&d.sim, clk, -3600);
	assert_near(amt_clock_ahead(d.a), -3600);
	assert_near(date_ahead(d.addr), -3600);

	/* Time sync sets the device's own drift; the simulated clock still
	 * carries the device along. */
	assert_int_equal(amt_time_get(d.a, &ta0), 0);
	now = (uint32_t)time(NULL);
	assert_int_equal(amt_time_set(d.a, ta0, now, now), 0);
	assert_near(amt_clock_ahead(d.a), 0);
	sim_set_clock(&d.sim, clk, 1000);
	assert_near(amt_clock_ahead(d.a), 4600);

	/* A certificate valid for a year is served ... */
	ca_key = rsa_key();
	ca = make_cert("clock root", ca_key, NULL, NULL, 1, -3600);
	kh = gen_key(d.a);
	pub = key_pub(d.a, kh);
	leaf = make_cert(FQDN, pub, ca, ca_key, 0, -3600);
	der = cert_der(leaf, &len);
	assert_int_equal(amt_add_cert(d.a, der, len, &ch), 0);
	assert_int_equal(amt_tls_context_create(d.a, ch), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(amt_tls_setting_get(d.a, AMT_TLS_REMOTE, &s), 0);
	s.enabled = 1;
	s.accept_non_secure = 1;
	assert_int_equal(amt_tls_setting_put(d.a, &s), 0);
	amt_tls_setting_clear(&s);
	assert_int_equal(amt_commit(d.a), 0);
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
	write_pem(ca_path, ca, NULL);
	d.o.ca_file = ca_path;
	wait_tls(&d, 1);
	/* ... still once the simulated clock is past its notAfter (issue
	 * 10 §5: an expired leaf is served, and renewed over TLS) ... */
	sim_set_clock(&d.sim, clk, 2L * 365 * 86400);
	wait_tls(&d, 1);
	/* ... not while the clock is before its notBefore ... */
	sim_set_clock(&d.sim, clk, -2L * 86400);
	wait_tls(&d, 0);
	/* ... and again when the clock comes back. */
	sim_set_clock(&d.sim, clk, 7200);
	wait_tls(&d, 1);
	d.o.ca_file = NULL;

	/* A restart with --state keeps the offset (and the drift) ... */
	amt_free(d.a);
	d.a = NULL;
	assert_int_equal(simh_stop(&d.sim), 0);
	unlink(clk);
	args[0] = "--listen";
	args[1] = d.addr;
	args[2] = "--fqdn";
	args[3] = FQDN;
	args[4] = "--state";
	args[5] = st;
	args[6] = NULL;
	assert_int_equal(simh_restart(&d.sim, args), 0);
	assert_int_equal(amt_open(&d.o, &d.a), 0);
	assert_near(amt_clock_ahead(d.a), 7200 + 3600);
	/* ... and --clock-offset given again takes precedence. */
	amt_free(d.a);
	d.a = NULL;
	assert_int_equal(simh_stop(&d.sim), 0);
	args[6] = "--clock-offset";
	args[7] = "0";
	args[8] = NULL;
	assert_int_equal(simh_restart(&d.sim, args), 0);
	assert_int_equal(amt_open(&d.o, &d.a), 0);
	assert_near(amt_clock_ahead(d.a), 3600);

	OPENSSL_free(der);
	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(ca_key);
	free(kh);
	free(ch);
	dev_stop(&d);
	unlink(st);
	unlink(ca_path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_general_settings),
		cmocka_unit_test(test_wrong_password_one_attempt),
		cmocka_unit_test(test_flow_a_tls),
		cmocka_unit_test(test_mitm_cert_refused),
		cmocka_unit_test(test_keygen_busy_then_success),
		cmocka_unit_test(test_store_limits_and_blobs),
		cmocka_unit_test(test_drop_at),
		cmocka_unit_test(test_state_survives_restart),
		cmocka_unit_test(test_fleet_1000),
		cmocka_unit_test(test_digest_raw),
		cmocka_unit_test(test_stale_nonce),
		cmocka_unit_test(test_faults_raw),
		cmocka_unit_test(test_non_secure_unsupported),
		cmocka_unit_test(test_clock_skew),
		cmocka_unit_test(test_old_tls_flow_b),
		cmocka_unit_test(test_key_pool),
		cmocka_unit_test(test_clock_offset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
