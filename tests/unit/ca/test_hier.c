/*
 * The external root and the root's CRL (ca/hier.c, ca_intermediate_csr):
 * the request carries amtca's intermediate profile; an external root that
 * copies it makes a certificate the import check accepts; the check refuses
 * another key, a missing CA flag or key usage, another root, and name
 * constraints that differ from the policy or leave IP names open; the
 * root's CRL lists the revoked intermediates and verifies with the root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <time.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "soft_signer.h"

/*
 * What an external root does: a certificate for the request's key under
 * `root`, carrying either the request's extensions (exts NULL) or the
 * extensions of `exts` ("nid=value" lines, openssl config syntax).
 */
static X509 *
root_signs(struct test_pki *t, X509 *root_cert, EVP_PKEY *root_key,
    X509_REQ *req, const char *const *exts)
{
	STACK_OF(X509_EXTENSION) *rx;
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	X509 *x = X509_new();
	int i;

	(void)t;
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(root_cert)), 1);
	assert_int_equal(X509_set_subject_name(x, X509_REQ_get_subject_name(req)), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365));
	assert_int_equal(X509_set_pubkey(x, X509_REQ_get0_pubkey(req)), 1);
	if (exts == NULL) {
		rx = X509_REQ_get_extensions(req);
		for (i = 0; i < sk_X509_EXTENSION_num(rx); i++)
			assert_int_equal(X509_add_ext(x, sk_X509_EXTENSION_value(rx, i), -1), 1);
		sk_X509_EXTENSION_pop_free(rx, X509_EXTENSION_free);
	} else {
		X509V3_set_ctx(&ctx, root_cert, x, NULL, NULL, 0);
		for (; *exts != NULL; exts += 2) {
			e = X509V3_EXT_nconf(NULL, &ctx, exts[0], exts[1]);
			assert_non_null(e);
			assert_int_equal(X509_add_ext(x, e, -1), 1);
			X509_EXTENSION_free(e);
		}
	}
	assert_true(X509_sign(x, root_key, EVP_sha256()) > 0);
	return x;
}

struct fx {
	struct test_pki t;
	struct soft_signer *inter;
	X509_REQ *req;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	EVP_PKEY *k;

	assert_non_null(f);
	test_pki_init(&f->t, "p256", "p256", 0, 0, NULL);
	k = soft_key("p256#ext-inter", 0);
	f->inter = soft_signer_new(k);
	EVP_PKEY_free(k);
	assert_int_equal(ca_intermediate_csr(&f->inter->s, "amtca Sub CA", "Acme",
	    &f->t.pol, &f->req), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	X509_REQ_free(f->req);
	soft_signer_free(f->inter);
	test_pki_free(&f->t);
	free(f);
	return 0;
}

static int
check(struct fx *f, X509 *x, int any)
{
	int r = ca_intermediate_check(x, f->t.root_cert, f->inter->s.pub,
	    &f->t.pol, any);

	X509_free(x);
	return r;
}

/* The request is self-signed by the key and asks for the CA profile. */
static void
test_csr_profile(void **state)
{
	struct fx *f = *state;
	STACK_OF(X509_EXTENSION) *rx;
	NAME_CONSTRAINTS *nc;
	BASIC_CONSTRAINTS *bc;
	int i, dns = 0, ip = 0;

	assert_int_equal(X509_REQ_verify(f->req, f->inter->s.pub), 1);
	assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(f->req), f->inter->s.pub), 1);
	rx = X509_REQ_get_extensions(f->req);
	assert_non_null(rx);
	bc = X509V3_get_d2i(rx, NID_basic_constraints, NULL, NULL);
	assert_non_null(bc);
	assert_true(bc->ca);
	assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
	BASIC_CONSTRAINTS_free(bc);
	nc = X509V3_get_d2i(rx, NID_name_constraints, &i, NULL);
	assert_non_null(nc);
	assert_int_equal(i, 1);		/* critical */
	for (i = 0; i < sk_GENERAL_SUBTREE_num(nc->permittedSubtrees); i++) {
		int ty = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i)->base->type;

		dns += ty == GEN_DNS;
		ip += ty == GEN_IPADD;
	}
	assert_int_equal(dns, (int)test_ndomains);
	assert_int_equal(ip, (int)test_nip_ranges);
	NAME_CONSTRAINTS_free(nc);
	assert_null(X509V3_get_d2i(rx, NID_subject_key_identifier, NULL, NULL));
	sk_X509_EXTENSION_pop_free(rx, X509_EXTENSION_free);
}

static void
test_import_accepts_copied_request(void **state)
{
	struct fx *f = *state;

	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, f->req, NULL), 0), 0);
}

static void
test_import_refuses_other_key(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k = soft_key("p256#ext-other", 0);
	X509_REQ *other = NULL;
	struct soft_signer *ss = soft_signer_new(k);

	assert_int_equal(ca_intermediate_csr(&ss->s, "amtca Sub CA", "Acme",
	    &f->t.pol, &other), 0);
	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, other, NULL), 0), AMTCA_E_CERT);
	X509_REQ_free(other);
	soft_signer_free(ss);
	EVP_PKEY_free(k);
}

static void
test_import_refuses_flags(void **state)
{
	struct fx *f = *state;
	static const char *const noca[] = { "basicConstraints", "critical,CA:FALSE",
	    "keyUsage", "critical,keyCertSign,cRLSign", NULL };
	static const char *const nobc[] = { "keyUsage",
	    "critical,keyCertSign,cRLSign", NULL };
	static const char *const nocrl[] = { "basicConstraints",
	    "critical,CA:TRUE,pathlen:0", "keyUsage", "critical,keyCertSign", NULL };

	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, f->req, noca), 0), AMTCA_E_CERT);
	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, f->req, nobc), 0), AMTCA_E_CERT);
	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, f->req, nocrl), 0), AMTCA_E_CERT);
}

/* Signed by a key that is not the given root's. */
static void
test_import_refuses_other_root(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k = soft_key("p256#ext-rogue", 0);

	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert, k, f->req,
	    NULL), 0), AMTCA_E_CERT);
	EVP_PKEY_free(k);
}

static void
test_import_name_constraints(void **state)
{
	struct fx *f = *state;
	static const char *const base[] = { "basicConstraints",
	    "critical,CA:TRUE,pathlen:0", "keyUsage", "critical,keyCertSign,cRLSign" };
	const char *nc_cases[] = {
		/* none at all */
		NULL,
		/* a domain missing */
		"critical,permitted;DNS:example.com,permitted;IP:192.0.2.0/255.255.255.0,"
		    "permitted;IP:2001:db8:0:0:0:0:0:0/ffff:ffff:0:0:0:0:0:0",
		/* an extra domain */
		"critical,permitted;DNS:example.com,permitted;DNS:corp.local,"
		    "permitted;DNS:evil.test,permitted;IP:192.0.2.0/255.255.255.0,"
		    "permitted;IP:2001:db8:0:0:0:0:0:0/ffff:ffff:0:0:0:0:0:0",
		/* a range missing */
		"critical,permitted;DNS:example.com,permitted;DNS:corp.local,"
		    "permitted;IP:192.0.2.0/255.255.255.0",
		/* a wider range */
		"critical,permitted;DNS:example.com,permitted;DNS:corp.local,"
		    "permitted;IP:192.0.0.0/255.255.0.0,"
		    "permitted;IP:2001:db8:0:0:0:0:0:0/ffff:ffff:0:0:0:0:0:0",
	};
	const char *exts[7];
	size_t i;

	for (i = 0; i < sizeof(nc_cases) / sizeof(nc_cases[0]); i++) {
		memcpy(exts, base, sizeof(base));
		exts[4] = nc_cases[i] != NULL ? "nameConstraints" : NULL;
		exts[5] = nc_cases[i];
		exts[6] = NULL;
		assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
		    f->t.root->key, f->req, exts), 0), AMTCA_E_CERT);
	}
	/* The same as the request, written by the root (leading dots too). */
	exts[4] = "nameConstraints";
	exts[5] = "critical,permitted;DNS:.example.com,permitted;DNS:corp.local,"
	    "permitted;IP:192.0.2.0/255.255.255.0,"
	    "permitted;IP:2001:db8:0:0:0:0:0:0/ffff:ffff:0:0:0:0:0:0";
	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, f->req, exts), 0), 0);
	/* --any-domain: no constraints needed. */
	exts[4] = NULL;
	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, f->req, exts), 1), 0);
}

/* No ranges asked: both families must be excluded whole. */
static void
test_import_ip_open(void **state)
{
	struct fx *f = *state;
	const char *exts[] = { "basicConstraints", "critical,CA:TRUE,pathlen:0",
	    "keyUsage", "critical,keyCertSign,cRLSign", "nameConstraints",
	    "critical,permitted;DNS:example.com,permitted;DNS:corp.local,"
	    "excluded;IP:0.0.0.0/0.0.0.0", NULL };

	f->t.pol.nip_ranges = 0;
	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, f->req, exts), 0), AMTCA_E_CERT);
	exts[5] = "critical,permitted;DNS:example.com,permitted;DNS:corp.local,"
	    "excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0";
	assert_int_equal(check(f, root_signs(&f->t, f->t.root_cert,
	    f->t.root->key, f->req, exts), 0), 0);
	f->t.pol.nip_ranges = test_nip_ranges;
}

static void
test_root_crl(void **state)
{
	struct fx *f = *state;
	X509 *inter = root_signs(&f->t, f->t.root_cert, f->t.root->key, f->req, NULL);
	X509 *const list[] = { inter };
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509_CRL *crl;
	X509_REVOKED *rv = NULL;
	AUTHORITY_KEYID *aki;
	ASN1_INTEGER *num;
	BIGNUM *bn, *lo = BN_new();
	BIO *b;

	/* Seconds since 1970 times 1000: a lower bound in milliseconds. */
	assert_non_null(lo);
	assert_true(BN_set_word(lo, (BN_ULONG)time(NULL)) &&
	    BN_mul_word(lo, 1000));
	assert_int_equal(ca_root_crl_create(&f->t.root->s, f->t.root_cert, list,
	    1, 30, 0, &der, &len), 0);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(f->t.root_cert)), 1);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl),
	    X509_get_subject_name(f->t.root_cert)), 0);
	assert_int_equal(X509_CRL_get0_by_serial(crl, &rv,
	    X509_get_serialNumber(inter)), 1);
	assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1);
	aki = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid,
	    X509_get0_subject_key_id(f->t.root_cert)), 0);
	AUTHORITY_KEYID_free(aki);
	/* CRLNumber: the creation time in Unix milliseconds. */
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	assert_non_null(num);
	assert_non_null(bn = ASN1_INTEGER_to_BN(num, NULL));
	assert_true(BN_cmp(bn, lo) >= 0);
	BN_free(bn);
	ASN1_INTEGER_free(num);
	X509_CRL_free(crl);
	free(der);
	/* PEM, with nothing listed. */
	assert_int_equal(ca_root_crl_create(&f->t.root->s, f->t.root_cert, NULL,
	    0, 30, 1, &der, &len), 0);
	assert_non_null(strstr((char *)der, "-----BEGIN X509 CRL-----"));
	assert_non_null(b = BIO_new_mem_buf(der, (int)len));
	assert_non_null(crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL));
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(f->t.root_cert)), 1);
	assert_null(X509_CRL_get_REVOKED(crl));
	X509_CRL_free(crl);
	BIO_free(b);
	free(der);
	/* Not the root's key: refused. */
	assert_int_not_equal(ca_root_crl_create(&f->inter->s, f->t.root_cert,
	    NULL, 0, 30, 1, &der, &len), 0);
	X509_free(inter);
	BN_free(lo);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csr_profile),
		cmocka_unit_test(test_import_accepts_copied_request),
		cmocka_unit_test(test_import_refuses_other_key),
		cmocka_unit_test(test_import_refuses_flags),
		cmocka_unit_test(test_import_refuses_other_root),
		cmocka_unit_test(test_import_name_constraints),
		cmocka_unit_test(test_import_ip_open),
		cmocka_unit_test(test_root_crl),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
