/*
 * Which of a home's intermediates issued a certificate (enroll/issuer.c),
 * the engine's test for "ours" and "current" after `ca rotate`: a leaf
 * under the current or a retired intermediate is ours (by name and
 * signature, expired or not), a leaf of a look-alike CA (same name,
 * another key) or a CA certificate is not; retired intermediates are
 * matched by DER only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "enroll/enroll.h"

static EVP_PKEY *
ec_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void
ext(X509 *x, X509 *issuer, int nid, const char *val)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, val);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/*
 * A certificate for `cn` over `key`, signed by `ikey` under `issuer`
 * (NULL: self-signed), CA or leaf, valid from now + from_days for `days`.
 */
static X509 *
make(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, int ca,
    long serial, int from_days, int days)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	assert_non_null(x);
	assert_non_null(n);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0);
	assert_int_equal(X509_set_subject_name(x, n), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : n), 1);
	X509_NAME_free(n);
	X509_gmtime_adj(X509_getm_notBefore(x), (long)from_days * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)(from_days + days) * 86400);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	ext(x, issuer, NID_subject_key_identifier, "hash");
	if (issuer != NULL)
		ext(x, issuer, NID_authority_key_identifier, "keyid:always");
	ext(x, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE" :
	    "critical,CA:FALSE");
	ext(x, issuer, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" :
	    "critical,digitalSignature");
	assert_true(X509_sign(x, issuer != NULL ? ikey : key, EVP_sha256()) > 0);
	return x;
}

struct pki {
	EVP_PKEY *kroot, *k1, *k2, *k3, *kleaf, *kfake;
	X509 *root, *g1, *g2, *g3, *fake;
};

static void
pki_make(struct pki *p)
{
	memset(p, 0, sizeof(*p));
	p->kroot = ec_key();
	p->k1 = ec_key();
	p->k2 = ec_key();
	p->k3 = ec_key();
	p->kleaf = ec_key();
	p->kfake = ec_key();
	p->root = make("Test Root", p->kroot, NULL, NULL, 1, 1, -1, 3650);
	p->g1 = make("Test Issuing CA", p->k1, p->root, p->kroot, 1, 2, -1, 1000);
	p->g2 = make("Test Issuing CA G2", p->k2, p->root, p->kroot, 1, 3, -1, 1000);
	p->g3 = make("Test Issuing CA G3", p->k3, p->root, p->kroot, 1, 4, -1, 1000);
	/* Same name as G1, another key: not ours. */
	p->fake = make("Test Issuing CA", p->kfake, NULL, NULL, 1, 5, -1, 1000);
}

static void
pki_free(struct pki *p)
{
	X509_free(p->root);
	X509_free(p->g1);
	X509_free(p->g2);
	X509_free(p->g3);
	X509_free(p->fake);
	EVP_PKEY_free(p->kroot);
	EVP_PKEY_free(p->k1);
	EVP_PKEY_free(p->k2);
	EVP_PKEY_free(p->k3);
	EVP_PKEY_free(p->kleaf);
	EVP_PKEY_free(p->kfake);
}

static void
test_issuer(void **state)
{
	struct pki p;
	struct enroll_ctx c;
	X509 *retired[2], *l1, *l2, *l3, *lold, *lfake;

	(void)state;
	pki_make(&p);
	/* After two rotations: G3 current, G2 and G1 retired, newest first. */
	memset(&c, 0, sizeof(c));
	c.root = p.root;
	c.inter = p.g3;
	retired[0] = p.g2;
	retired[1] = p.g1;
	c.retired = retired;
	c.nretired = 2;
	l1 = make("d1.example.test", p.kleaf, p.g1, p.k1, 0, 10, -1, 30);
	l2 = make("d1.example.test", p.kleaf, p.g2, p.k2, 0, 11, -1, 30);
	l3 = make("d1.example.test", p.kleaf, p.g3, p.k3, 0, 12, -1, 30);
	/* Expired: still recognised (renewal of a device offline past it). */
	lold = make("d1.example.test", p.kleaf, p.g1, p.k1, 0, 13, -60, 30);
	lfake = make("d1.example.test", p.kleaf, p.fake, p.kfake, 0, 14, -1, 30);

	assert_int_equal(enroll_issuer(&c, l3), ENROLL_ISSUER_CURRENT);
	assert_int_equal(enroll_issuer(&c, l2), 1);
	assert_int_equal(enroll_issuer(&c, l1), 2);
	assert_int_equal(enroll_issuer(&c, lold), 2);
	assert_int_equal(enroll_issuer(&c, lfake), ENROLL_ISSUER_NONE);
	/* CA certificates are never "leaves we issued". */
	assert_int_equal(enroll_issuer(&c, p.g2), ENROLL_ISSUER_NONE);
	assert_int_equal(enroll_issuer(&c, p.root), ENROLL_ISSUER_NONE);
	assert_int_equal(enroll_issuer(&c, NULL), ENROLL_ISSUER_NONE);

	/* Before any rotation: only the current one. */
	c.inter = p.g1;
	c.retired = NULL;
	c.nretired = 0;
	assert_int_equal(enroll_issuer(&c, l1), ENROLL_ISSUER_CURRENT);
	assert_int_equal(enroll_issuer(&c, l2), ENROLL_ISSUER_NONE);
	/* No intermediate at all (a root-only home): nothing is ours. */
	c.inter = NULL;
	assert_int_equal(enroll_issuer(&c, l1), ENROLL_ISSUER_NONE);

	X509_free(l1);
	X509_free(l2);
	X509_free(l3);
	X509_free(lold);
	X509_free(lfake);
	pki_free(&p);
}

static int
der(X509 *x, unsigned char **out)
{
	*out = NULL;
	return i2d_X509(x, out);
}

static void
test_retired_match(void **state)
{
	struct pki p;
	struct enroll_ctx c;
	X509 *retired[2];
	unsigned char *d = NULL;
	int n;

	(void)state;
	pki_make(&p);
	memset(&c, 0, sizeof(c));
	c.root = p.root;
	c.inter = p.g3;
	retired[0] = p.g2;
	retired[1] = p.g1;
	c.retired = retired;
	c.nretired = 2;
	n = der(p.g2, &d);
	assert_int_equal(enroll_retired_match(&c, d, (size_t)n), 0);
	/* One byte short, or one flipped: not a match (DER, not names). */
	assert_int_equal(enroll_retired_match(&c, d, (size_t)n - 1), -1);
	d[n - 1] ^= 1;
	assert_int_equal(enroll_retired_match(&c, d, (size_t)n), -1);
	OPENSSL_free(d);
	n = der(p.g1, &d);
	assert_int_equal(enroll_retired_match(&c, d, (size_t)n), 1);
	OPENSSL_free(d);
	/* Never the current intermediate, the root, or a look-alike. */
	n = der(p.g3, &d);
	assert_int_equal(enroll_retired_match(&c, d, (size_t)n), -1);
	OPENSSL_free(d);
	n = der(p.root, &d);
	assert_int_equal(enroll_retired_match(&c, d, (size_t)n), -1);
	OPENSSL_free(d);
	n = der(p.fake, &d);
	assert_int_equal(enroll_retired_match(&c, d, (size_t)n), -1);
	OPENSSL_free(d);
	assert_int_equal(enroll_retired_match(&c, NULL, 0), -1);
	pki_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issuer),
		cmocka_unit_test(test_retired_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
