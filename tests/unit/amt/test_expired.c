/*
 * amt_verify_chain(): the chain check that forgives a leaf's expiry only
 * when the leaf is byte-equal to the recorded bound one (issue 10, section
 * 5: devices offline past expiry).  Certificates are made in memory; the
 * check runs on an X509_STORE_CTX as the TLS paths set it up (purpose TLS
 * server, the hostname).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "amt/internal.h"

static EVP_PKEY *rkey, *lkey;

static void
add_ext(X509 *c, X509 *issuer, int nid, const char *val)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer, c, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, val);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(c, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* Root when issuer == NULL; times are offsets from now in seconds. */
static X509 *
mk(X509 *issuer, long serial, const char *cn, long nb, long na)
{
	X509 *c = X509_new();

	assert_non_null(c);
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	X509_gmtime_adj(X509_getm_notBefore(c), nb);
	X509_gmtime_adj(X509_getm_notAfter(c), na);
	X509_set_pubkey(c, issuer == NULL ? rkey : lkey);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, issuer == NULL ? X509_get_subject_name(c) :
	    X509_get_subject_name(issuer));
	if (issuer == NULL) {
		add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(c, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(c, issuer, NID_ext_key_usage, "serverAuth");
		add_ext(c, issuer, NID_subject_alt_name, "DNS:amt.test");
	}
	assert_true(X509_sign(c, rkey, EVP_sha256()) > 0);
	return c;
}

static unsigned char *
der_of(X509 *c, size_t *len)
{
	unsigned char *d = NULL;
	int n = i2d_X509(c, &d);

	assert_true(n > 0);
	*len = (size_t)n;
	return d;
}

/* Verify `leaf` under `root` for amt.test (or `host`), forgiving `rec`. */
static int
check(X509 *root, X509 *leaf, X509 *rec, const char *host, int *forgiven,
    int *err)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *vp;
	unsigned char *d = NULL;
	size_t dl = 0;
	int r;

	assert_non_null(st);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(st, root), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, NULL), 1);
	vp = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER);
	assert_int_equal(X509_VERIFY_PARAM_set1_host(vp, host ? host :
	    "amt.test", 0), 1);
	if (rec != NULL)
		d = der_of(rec, &dl);
	r = amt_verify_chain(ctx, d, dl, forgiven);
	*err = X509_STORE_CTX_get_error(ctx);
	OPENSSL_free(d);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return r;
}

static int
setup(void **state)
{
	(void)state;
	rkey = EVP_EC_gen("P-256");
	lkey = EVP_EC_gen("P-256");
	return rkey != NULL && lkey != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rkey);
	EVP_PKEY_free(lkey);
	return 0;
}

/* The recorded leaf, expired ten days ago: accepted, error reads OK. */
static void
test_bound_expired_leaf_forgiven(void **state)
{
	X509 *root = mk(NULL, 1, "root", -86400 * 100, 86400 * 100);
	X509 *leaf = mk(root, 2, "amt.test", -86400 * 20, -86400 * 10);
	int fg = -1, err = -1;

	(void)state;
	assert_true(check(root, leaf, leaf, NULL, &fg, &err) > 0);
	assert_int_equal(fg, 1);
	assert_int_equal(err, X509_V_OK);
	/* Without a record it is refused as expired. */
	assert_true(check(root, leaf, NULL, NULL, &fg, &err) <= 0);
	assert_int_equal(fg, 0);
	assert_int_equal(err, X509_V_ERR_CERT_HAS_EXPIRED);
	X509_free(leaf);
	X509_free(root);
}

/* Same CA, name and key, expired, but not the recorded bytes: refused. */
static void
test_other_expired_leaf_refused(void **state)
{
	X509 *root = mk(NULL, 1, "root", -86400 * 100, 86400 * 100);
	X509 *leaf = mk(root, 2, "amt.test", -86400 * 20, -86400 * 10);
	X509 *other = mk(root, 3, "amt.test", -86400 * 20, -86400 * 10);
	int fg = -1, err = -1;

	(void)state;
	assert_true(check(root, other, leaf, NULL, &fg, &err) <= 0);
	assert_int_equal(fg, 0);
	assert_int_equal(err, X509_V_ERR_CERT_HAS_EXPIRED);
	X509_free(other);
	X509_free(leaf);
	X509_free(root);
}

/* Only the leaf's expiry: not an expired root, not a future leaf, not
 * another name. */
static void
test_only_leaf_expiry_forgiven(void **state)
{
	X509 *old_root = mk(NULL, 1, "root", -86400 * 100, -86400 * 5);
	X509 *root = mk(NULL, 1, "root", -86400 * 100, 86400 * 100);
	X509 *leaf = mk(old_root, 2, "amt.test", -86400 * 20, -86400 * 10);
	X509 *future = mk(root, 4, "amt.test", 86400 * 2, 86400 * 10);
	int fg = -1, err = -1;

	(void)state;
	assert_true(check(old_root, leaf, leaf, NULL, &fg, &err) <= 0);
	assert_int_equal(fg, 0);
	assert_int_equal(err, X509_V_ERR_CERT_HAS_EXPIRED);
	assert_true(check(root, future, future, NULL, &fg, &err) <= 0);
	assert_int_equal(err, X509_V_ERR_CERT_NOT_YET_VALID);
	/* A current root of the same name and key, the expired leaf byte-
	 * equal: accepted; but not for another host name. */
	assert_true(check(root, leaf, leaf, NULL, &fg, &err) > 0);
	assert_true(check(root, leaf, leaf, "other.test", &fg, &err) <= 0);
	assert_int_equal(fg, 0);
	assert_int_equal(err, X509_V_ERR_HOSTNAME_MISMATCH);
	X509_free(future);
	X509_free(leaf);
	X509_free(root);
	X509_free(old_root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bound_expired_leaf_forgiven),
		cmocka_unit_test(test_other_expired_leaf_refused),
		cmocka_unit_test(test_only_leaf_expiry_forgiven),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
