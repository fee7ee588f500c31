/*
 * amtsim's firmware facts by version (amt/sim/quirks.c): defaults per AMT
 * major version and --amt-quirk parsing.  quirks.c is pure data and string
 * handling, so it is compiled in here rather than linking the simulator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "amt/sim/quirks.c"

#define ON(q, f) (((q) & (1u << (f))) != 0)

static void
test_defaults_by_version(void **state)
{
	unsigned q16 = sim_quirks_default("16.1.27.2225");
	unsigned q18 = sim_quirks_default("18.0.5.2040");
	unsigned q22 = sim_quirks_default("22.0.0.1000");
	unsigned q23 = sim_quirks_default("23.5.0.1");

	(void)state;
	/* Up to 21: today's firmware. */
	assert_true(ON(q16, SIM_Q_KEYGEN_RSA2048));
	assert_false(ON(q16, SIM_Q_KEYGEN_ECC384));
	assert_false(ON(q16, SIM_Q_KEYGEN_RSA3072));
	assert_true(ON(q16, SIM_Q_CSR_SHA1));
	assert_true(ON(q16, SIM_Q_CSR_SHA256));
	assert_false(ON(q16, SIM_Q_CSR_SHA384));
	assert_false(ON(q16, SIM_Q_REFUSE_WEAK_LEAF));
	assert_false(ON(q16, SIM_Q_REFUSE_SHA256_LEAF));
	/* SHA-1 CSRs gone from CSME 18. */
	assert_false(ON(q18, SIM_Q_CSR_SHA1));
	assert_true(ON(q18, SIM_Q_CSR_SHA256));
	/* 22 and later: the public statements about AMT 22. */
	assert_int_equal(q22, q23);
	assert_false(ON(q22, SIM_Q_KEYGEN_RSA2048));
	assert_true(ON(q22, SIM_Q_KEYGEN_ECC384));
	assert_true(ON(q22, SIM_Q_KEYGEN_RSA3072));
	assert_false(ON(q22, SIM_Q_CSR_SHA256));
	assert_true(ON(q22, SIM_Q_CSR_SHA384));
	assert_true(ON(q22, SIM_Q_REFUSE_WEAK_LEAF));
	assert_true(ON(q22, SIM_Q_REFUSE_SHA256_LEAF));
	/* Unknown for AMT 22: off unless asked for, on every version. */
	assert_false(ON(q16, SIM_Q_REFUSE_SHA256_CHAIN));
	assert_false(ON(q22, SIM_Q_REFUSE_SHA256_CHAIN));
	/* A version that does not parse counts as the oldest. */
	assert_int_equal(sim_quirks_default("garbage"),
	    sim_quirks_default("0.0.0.0"));
	assert_int_equal(sim_quirks_default(NULL), sim_quirks_default("0"));
}

static void
test_quirk_set(void **state)
{
	unsigned q = sim_quirks_default("22.0.0.1000"), before;

	(void)state;
	assert_int_equal(sim_quirk_set(&q, "keygen-ecc384=off"), 0);
	assert_false(ON(q, SIM_Q_KEYGEN_ECC384));
	assert_int_equal(sim_quirk_set(&q, "keygen-rsa2048=on"), 0);
	assert_true(ON(q, SIM_Q_KEYGEN_RSA2048));
	assert_int_equal(sim_quirk_set(&q, "refuse-sha256-chain=on"), 0);
	assert_true(ON(q, SIM_Q_REFUSE_SHA256_CHAIN));
	before = q;
	/* Refused, and nothing changes. */
	assert_int_equal(sim_quirk_set(&q, "keygen-ecc384"), AMTCA_E_USAGE);
	assert_int_equal(sim_quirk_set(&q, "keygen-ecc384=yes"), AMTCA_E_USAGE);
	assert_int_equal(sim_quirk_set(&q, "keygen-ecc=on"), AMTCA_E_USAGE);
	assert_int_equal(sim_quirk_set(&q, "keygen-ecc3840=on"), AMTCA_E_USAGE);
	assert_int_equal(sim_quirk_set(&q, "=on"), AMTCA_E_USAGE);
	assert_int_equal(sim_quirk_set(&q, "keygen-ecc384=on "), AMTCA_E_USAGE);
	assert_int_equal(q, before);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_by_version),
		cmocka_unit_test(test_quirk_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
