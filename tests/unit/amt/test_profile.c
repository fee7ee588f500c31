/*
 * amt/profile.c: the profile table by AMT version.  AMT 22 and later ask
 * for ECC-384, then RSA-3072, with SHA-384 CSRs and leaves; older firmware,
 * and versions that do not parse, keep the RSA-2048/SHA-256 profile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "amt/amt.h"

static void
assert_legacy(const struct amt_profile *p)
{
	assert_non_null(p);
	assert_int_equal(p->nkeys, 1);
	assert_int_equal(p->keys[0].alg, AMT_KEYALG_RSA);
	assert_int_equal(p->keys[0].bits, 2048);
	assert_int_equal(p->csr_sigalg, 1);
	assert_int_equal(p->leaf_sha384, 0);
	assert_int_equal(p->chain_sha384, 0);
}

static void
assert_amt22(const struct amt_profile *p)
{
	assert_non_null(p);
	assert_int_equal(p->nkeys, 2);
	/* ECC-384 first (KeyAlgorithm 1, KeyLength 384), then RSA-3072. */
	assert_int_equal(p->keys[0].alg, AMT_KEYALG_ECC);
	assert_int_equal(p->keys[0].bits, 384);
	assert_string_equal(p->keys[0].name, "ECC-384");
	assert_int_equal(p->keys[1].alg, AMT_KEYALG_RSA);
	assert_int_equal(p->keys[1].bits, 3072);
	assert_int_equal(p->csr_sigalg, 2);
	assert_int_equal(p->leaf_sha384, 1);
	assert_int_equal(p->min_rsa_bits, 3072);
	assert_int_equal(p->min_ec_bits, 384);
	assert_int_equal(p->chain_sha384, 1);
}

static void
test_profile_by_version(void **state)
{
	static const char *const old[] = { "11.8.50.3425", "16.1.27.2225",
	    "18.0.5.2040", "21.9.99.9999", "21" };
	static const char *const new[] = { "22.0.0.1000", "22.1.5.77", "22",
	    "23.0.0.1", "99.0.0.0" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(old) / sizeof(old[0]); i++)
		assert_legacy(amt_profile_for(old[i]));
	for (i = 0; i < sizeof(new) / sizeof(new[0]); i++)
		assert_amt22(amt_profile_for(new[i]));
}

/* Unknown or garbled: the oldest profile, never NULL, never 22's by accident. */
static void
test_profile_unparsable_version(void **state)
{
	static const char *const bad[] = { "", "x22", "-22.0", "22x.0",
	    "220000000000000000000000.0", " 22.0", "v22" };
	size_t i;

	(void)state;
	assert_legacy(amt_profile_for(NULL));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_legacy(amt_profile_for(bad[i]));
}

static void
test_key_weakness(void **state)
{
	const struct amt_profile *p22 = amt_profile_for("22.0.0.1000");
	const struct amt_profile *p16 = amt_profile_for("16.1.27.2225");
	EVP_PKEY *rsa2k = EVP_RSA_gen(2048);
	EVP_PKEY *p256 = EVP_EC_gen("P-256"), *p384 = EVP_EC_gen("P-384");

	(void)state;
	assert_non_null(rsa2k);
	assert_non_null(p256);
	assert_non_null(p384);
	assert_true(amt_profile_key_weak(p22, rsa2k));
	assert_true(amt_profile_key_weak(p22, p256));
	assert_false(amt_profile_key_weak(p22, p384));
	assert_false(amt_profile_key_weak(p16, rsa2k));
	assert_false(amt_profile_key_weak(p16, p256));
	assert_true(amt_profile_key_weak(p22, NULL));
	EVP_PKEY_free(rsa2k);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(p384);
}

/* Only refusals of a key type move on to the next type; busy, full or
 * internal errors do not (they would be retried or reported). */
static void
test_keygen_refusals(void **state)
{
	(void)state;
	assert_true(amt_profile_keygen_refusal(AMT_PT_UNSUPPORTED));
	assert_true(amt_profile_keygen_refusal(AMT_PT_INVALID_KEY));
	assert_true(amt_profile_keygen_refusal(AMT_PT_INVALID_PARAMETER));
	assert_false(amt_profile_keygen_refusal(AMT_PT_SUCCESS));
	assert_false(amt_profile_keygen_refusal(AMT_PT_PKI_GENERATING_KEYS));
	assert_false(amt_profile_keygen_refusal(AMT_PT_MAX_LIMIT_REACHED));
	assert_false(amt_profile_keygen_refusal(AMT_PT_INTERNAL_ERROR));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profile_by_version),
		cmocka_unit_test(test_profile_unparsable_version),
		cmocka_unit_test(test_key_weakness),
		cmocka_unit_test(test_keygen_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
