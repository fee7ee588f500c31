/* CSR intake: ca_csr_parse(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "ca/ca_int.h"
#include "common/util.h"
#include "soft_signer.h"

static void
expect_reject(const unsigned char *buf, size_t len, const char *why)
{
	struct ca_csr *req = (struct ca_csr *)&req;	/* must be reset to NULL */
	int r = ca_csr_parse(buf, len, &req);

	if (r != AMTCA_E_CSR)
		fail_msg("want AMTCA_E_CSR (%s), got %d: %s", why, r,
		    amtca_errmsg(r));
	assert_null(req);
	if (strstr(amtca_errmsg(r), why) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", amtca_errmsg(r), why);
}

static struct ca_csr *
expect_ok(const unsigned char *buf, size_t len)
{
	struct ca_csr *req = NULL;
	int r = ca_csr_parse(buf, len, &req);

	if (r != 0)
		fail_msg("rejected: %s", amtca_errmsg(r));
	assert_non_null(req);
	return req;
}

static void
corpus(const char *name, unsigned char **buf, size_t *len)
{
	char path[512];
	int r;

	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/csr/%s", test_top(),
	    name);
	r = amtca_file_read(path, AMTCA_CSR_MAX * 2, buf, len);
	if (r != 0)
		fail_msg("%s: %s (run from the source top or set AMTCA_TOP)", path,
		    amtca_errmsg(r));
}

/* What AMT 22 hands back (SigningAlgorithm 2): an ECC-384 or RSA-3072
 * key signed with SHA-384 is taken; a signature over other bytes is not. */
static void
test_amt22_sha384_requests(void **state)
{
	static const char *const kinds[] = { "p384", "rsa3072" };
	unsigned char *der = NULL;
	struct ca_csr *req;
	X509_REQ *x;
	EVP_PKEY *k;
	size_t i;
	int len;

	(void)state;
	for (i = 0; i < 2; i++) {
		k = soft_key(kinds[i], 0);
		x = soft_csr(k, 0);
		assert_true(X509_REQ_sign(x, k, EVP_sha384()) > 0);
		assert_true((len = i2d_X509_REQ(x, &der)) > 0);
		req = expect_ok(der, (size_t)len);
		assert_int_equal(EVP_PKEY_eq(ca_csr_pubkey(req), k), 1);
		ca_csr_free(req);
		/* Flip a byte of the subject: the SHA-384 signature fails. */
		der[20] ^= 0x01;
		assert_int_equal(ca_csr_parse(der, (size_t)len, &req), AMTCA_E_CSR);
		OPENSSL_free(der);
		der = NULL;
		X509_REQ_free(x);
		EVP_PKEY_free(k);
	}
}

static void
test_good_pem_and_der(void **state)
{
	static const char *const kinds[] = { "rsa2048", "p256", "p384" };
	unsigned char *der;
	char *pem;
	size_t i, len;
	struct ca_csr *req;
	EVP_PKEY *k;

	(void)state;
	for (i = 0; i < 3; i++) {
		k = soft_key(kinds[i], 0);
		len = soft_csr_der(k, 0, &der);
		req = expect_ok(der, len);
		/* The key we get back is the requester's. */
		assert_int_equal(EVP_PKEY_eq(ca_csr_pubkey(req), k), 1);
		ca_csr_free(req);
		OPENSSL_free(der);
		len = soft_csr_pem(k, 0, &pem);
		req = expect_ok((unsigned char *)pem, len);
		assert_int_equal(EVP_PKEY_eq(ca_csr_pubkey(req), k), 1);
		ca_csr_free(req);
		free(pem);
		EVP_PKEY_free(k);
	}
}

static void
test_openssl_cli_requests(void **state)
{
	static const char *const good[] = { "rsa2048.pem", "rsa2048.der",
	    "p256.der", "p384.pem", "rsa4096.der" };
	unsigned char *buf;
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		corpus(good[i], &buf, &len);
		ca_csr_free(expect_ok(buf, len));
		free(buf);
	}
	corpus("rsa4160.der", &buf, &len);
	expect_reject(buf, len, "RSA-4160");
	free(buf);
	corpus("ed25519.der", &buf, &len);
	expect_reject(buf, len, "key type");
	free(buf);
	corpus("p256_badsig.der", &buf, &len);
	expect_reject(buf, len, "signature does not verify");
	free(buf);
}

static void
test_weak_and_odd_keys(void **state)
{
	static const struct { const char *kind, *why; } bad[] = {
		{ "rsa1024", "RSA-1024" },
		{ "secp256k1", "curve secp256k1" },
		{ "p521", "curve secp521r1" },
	};
	unsigned char *der;
	size_t i, len;
	EVP_PKEY *k;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		k = soft_key(bad[i].kind, 0);
		len = soft_csr_der(k, 0, &der);
		expect_reject(der, len, bad[i].why);
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
}

static void
test_bad_signature(void **state)
{
	unsigned char *der;
	size_t len;
	EVP_PKEY *k;

	(void)state;
	k = soft_key("rsa2048", 0);
	len = soft_csr_der(k, 0, &der);
	ca_csr_free(expect_ok(der, len));
	der[len - 1] ^= 0x01;		/* last octet of the RSA signature */
	expect_reject(der, len, "signature does not verify");
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

static void
test_ca_true_rejected(void **state)
{
	unsigned char *der;
	size_t len;
	EVP_PKEY *k;

	(void)state;
	k = soft_key("p256", 0);
	len = soft_csr_der(k, 1, &der);
	expect_reject(der, len, "CA:TRUE");
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

static void
test_malformed_and_oversized(void **state)
{
	static const char junk_pem[] =
	    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
	    "-----END CERTIFICATE REQUEST-----\n";
	unsigned char *der, *big;
	size_t len;
	EVP_PKEY *k;

	(void)state;
	expect_reject(NULL, 0, "empty");
	expect_reject((const unsigned char *)"x", 0, "empty");
	expect_reject((const unsigned char *)"\x30\x03\x02\x01", 4, "not a PEM");
	expect_reject((const unsigned char *)junk_pem, sizeof(junk_pem) - 1,
	    "not a PEM");
	k = soft_key("p256", 0);
	len = soft_csr_der(k, 0, &der);
	expect_reject(der, len / 2, "not a PEM");		/* truncated */
	/* Valid DER followed by one more byte. */
	big = malloc(AMTCA_CSR_MAX + 1);
	assert_non_null(big);
	memcpy(big, der, len);
	big[len] = 0;
	expect_reject(big, len + 1, "trailing");
	/* Over the cap, whatever the content. */
	memset(big + len, '\n', AMTCA_CSR_MAX + 1 - len);
	expect_reject(big, AMTCA_CSR_MAX + 1, "larger than");
	free(big);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

/*
 * What a certificate will carry is the canonical SubjectPublicKeyInfo,
 * whatever equivalent encoding the request used: RSA with NULL parameters,
 * EC with the uncompressed point.
 */
static void
test_spki_written_canonically(void **state)
{
	static const struct { const char *kind, *form; } cases[] = {
		{ "rsa2048", NULL }, { "rsa2048", "rsa-noparams" },
		{ "p256", NULL }, { "p256", "compressed" }, { "p256", "hybrid" },
		{ "p384", NULL }, { "p384", "compressed" }, { "p384", "hybrid" },
	};
	const unsigned char *spki, *bits;
	unsigned char *der, *want;
	size_t i, len, wlen, spki_len, bits_len;
	struct ca_csr *req;
	EVP_PKEY *k;
	int is_rsa;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		k = soft_key(cases[i].kind, 0);
		len = cases[i].form == NULL ? soft_csr_der(k, 0, &der) :
		    soft_csr_der_spki(k, cases[i].form, &der);
		req = expect_ok(der, len);
		assert_int_equal(EVP_PKEY_eq(ca_csr_pubkey(req), k), 1);
		assert_int_equal(ca_csr_spki(req, &spki, &spki_len, &bits,
		    &bits_len, &is_rsa), 0);
		wlen = soft_spki_canonical(k, &want);
		if (spki_len != wlen || memcmp(spki, want, wlen) != 0)
			fail_msg("%s %s: SPKI is not the canonical encoding",
			    cases[i].kind, cases[i].form ? cases[i].form : "");
		/* The key bits (hashed into the SKI) end the SPKI. */
		assert_true(bits + bits_len == spki + spki_len);
		if (!is_rsa)
			assert_int_equal(bits[0], 0x04);
		ca_csr_free(req);
		OPENSSL_free(want);
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
}

/* What is not an equivalent encoding of an allowed key is refused. */
static void
test_spki_forms_refused(void **state)
{
	static const struct { const char *kind, *form, *why; } cases[] = {
		{ "p256", "explicit", "explicit parameters" },
		{ "p384", "explicit", "explicit parameters" },
		{ "p256", "hybrid-badparity", "public key is invalid" },
		{ "p256", "tag05", "not an uncompressed, compressed or hybrid" },
	};
	EVP_PKEY_CTX *ctx;
	unsigned char *der;
	size_t i, len;
	EVP_PKEY *k;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		k = soft_key(cases[i].kind, 0);
		len = soft_csr_der_spki(k, cases[i].form, &der);
		expect_reject(der, len, cases[i].why);
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
	/* RSA-PSS keys: a different algorithm, not another encoding. */
	k = NULL;
	assert_non_null(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL));
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
	EVP_PKEY_CTX_free(ctx);
	len = soft_csr_der(k, 0, &der);
	expect_reject(der, len, "key type");
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_pem_and_der),
		cmocka_unit_test(test_amt22_sha384_requests),
		cmocka_unit_test(test_openssl_cli_requests),
		cmocka_unit_test(test_weak_and_odd_keys),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_ca_true_rejected),
		cmocka_unit_test(test_malformed_and_oversized),
		cmocka_unit_test(test_spki_written_canonically),
		cmocka_unit_test(test_spki_forms_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
