/* FQDN rules of ca_fqdn_check(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ca/ca.h"

static char out[AMTCA_FQDN_MAX + 1];

static void
expect_reject(const char *in, const struct ca_policy *p, int code,
    const char *why)
{
	int r;

	memset(out, 'x', sizeof(out));
	r = ca_fqdn_check(in, p, out);
	if (r != code)
		fail_msg("\"%s\": got %d (%s), want %d", in ? in : "(null)", r,
		    amtca_errmsg(r), code);
	assert_string_equal(out, "");	/* nothing half-written */
	if (why != NULL && strstr(amtca_errmsg(r), why) == NULL)
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", in, amtca_errmsg(r),
		    why);
}

static void
expect_ok(const char *in, const struct ca_policy *p, const char *want)
{
	int r = ca_fqdn_check(in, p, out);

	if (r != 0)
		fail_msg("\"%s\": %s", in, amtca_errmsg(r));
	assert_string_equal(out, want);
}

static void
test_accepts_and_lowercases(void **state)
{
	struct ca_policy p;

	(void)state;
	ca_policy_init(&p);
	expect_ok("amt-01.example.com", &p, "amt-01.example.com");
	expect_ok("AMT-01.Example.COM", &p, "amt-01.example.com");
	expect_ok("a.b", &p, "a.b");
	expect_ok("x1.corp.local", &p, "x1.corp.local");
}

static void
test_policy_defaults(void **state)
{
	struct ca_policy p;

	(void)state;
	ca_policy_init(&p);
	assert_int_equal(p.days, 397);
	assert_int_equal(p.skew_s, 3600);
	assert_int_equal(p.allow_wildcard, 0);
	assert_int_equal(p.client_auth, 0);
	assert_int_equal(p.ndomains, 0);
	assert_null(p.crl_url);
}

static void
test_syntax_rejections(void **state)
{
	struct ca_policy p;

	(void)state;
	ca_policy_init(&p);
	expect_reject("host.example.com.", &p, AMTCA_E_FQDN, "trailing dot");
	expect_reject("x..y", &p, AMTCA_E_FQDN, NULL);
	assert_string_equal(amtca_errmsg(AMTCA_E_FQDN),
	    "FQDN \"x..y\": empty label");
	expect_reject(".example.com", &p, AMTCA_E_FQDN, "empty label");
	expect_reject("ho_st.example.com", &p, AMTCA_E_FQDN, "invalid character");
	expect_reject("ho st.example.com", &p, AMTCA_E_FQDN, "invalid character");
	expect_reject("h\xc3\xa9.example.com", &p, AMTCA_E_FQDN, "invalid character");
	expect_reject("-host.example.com", &p, AMTCA_E_FQDN, "hyphen");
	expect_reject("host-.example.com", &p, AMTCA_E_FQDN, "hyphen");
	expect_reject("host.-example.com", &p, AMTCA_E_FQDN, "hyphen");
	expect_reject("localhost", &p, AMTCA_E_FQDN, "two labels");
	expect_reject("", &p, AMTCA_E_FQDN, "empty");
	expect_reject(NULL, &p, AMTCA_E_FQDN, "empty");
	expect_reject("10.0.0.1", &p, AMTCA_E_FQDN, "numeric");
	expect_reject("a.*.example.com", &p, AMTCA_E_FQDN, "wildcard");
	expect_reject("a*.example.com", &p, AMTCA_E_FQDN, "wildcard");
}

static void
test_label_and_name_lengths(void **state)
{
	struct ca_policy p;
	char name[400], want[400];
	int i;

	(void)state;
	ca_policy_init(&p);
	/* Exactly 63: accepted; 64: rejected. */
	memset(name, 'A', 63);
	strcpy(name + 63, ".example.com");
	memset(want, 'a', 63);
	strcpy(want + 63, ".example.com");
	expect_ok(name, &p, want);
	memset(name, 'a', 64);
	strcpy(name + 64, ".example.com");
	expect_reject(name, &p, AMTCA_E_FQDN, "label longer than 63");

	/* 63+1+63+1+63+1+61 = 253: accepted; one more: rejected. */
	memset(name, 0, sizeof(name));
	for (i = 0; i < 3; i++) {
		memset(name + i * 64, 'b', 63);
		name[i * 64 + 63] = '.';
	}
	memset(name + 192, 'c', 61);
	assert_int_equal(strlen(name), 253);
	expect_ok(name, &p, name);
	name[253] = 'c';
	assert_int_equal(strlen(name), 254);
	expect_reject(name, &p, AMTCA_E_FQDN, "longer than 253");
}

static void
test_wildcard(void **state)
{
	struct ca_policy p;

	(void)state;
	ca_policy_init(&p);
	expect_reject("*.example.com", &p, AMTCA_E_POLICY, "wildcard not allowed");
	p.allow_wildcard = 1;
	expect_ok("*.Example.com", &p, "*.example.com");
	expect_reject("*.com", &p, AMTCA_E_POLICY, "at least two labels");
	expect_reject("*", &p, AMTCA_E_FQDN, "two labels");
	expect_reject("a.*.example.com", &p, AMTCA_E_FQDN, "leftmost");
}

static void
test_suffixes(void **state)
{
	static const char *const doms[] = { "Example.com", ".corp.local" };
	struct ca_policy p;

	(void)state;
	ca_policy_init(&p);
	p.domains = doms;
	p.ndomains = 2;
	expect_ok("a.example.com", &p, "a.example.com");
	expect_ok("A.B.EXAMPLE.COM", &p, "a.b.example.com");
	expect_ok("amt7.corp.local", &p, "amt7.corp.local");
	/* The suffix itself is allowed, as dNSName name constraints do. */
	expect_ok("example.com", &p, "example.com");
	expect_reject("badexample.com", &p, AMTCA_E_POLICY, "not under");
	expect_reject("example.com.evil.org", &p, AMTCA_E_POLICY, "not under");
	expect_reject("a.example.org", &p, AMTCA_E_POLICY, "not under");
	expect_reject("xcorp.local", &p, AMTCA_E_POLICY, "not under");
	p.allow_wildcard = 1;
	expect_ok("*.example.com", &p, "*.example.com");
	expect_reject("*.example.org", &p, AMTCA_E_POLICY, "not under");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_and_lowercases),
		cmocka_unit_test(test_policy_defaults),
		cmocka_unit_test(test_syntax_rejections),
		cmocka_unit_test(test_label_and_name_lengths),
		cmocka_unit_test(test_wildcard),
		cmocka_unit_test(test_suffixes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
