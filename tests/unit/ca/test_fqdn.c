/* Policy rules: FQDNs (ca_fqdn_check()) and IP ranges (ca_ip_range_*()). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>

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

static struct ca_ip_range
range_ok(const char *in, const char *canonical)
{
	struct ca_ip_range r;
	char buf[CA_IP_RANGE_STRLEN];
	int rc = ca_ip_range_parse(in, &r);

	if (rc != 0)
		fail_msg("\"%s\" refused: %s", in, amtca_errmsg(rc));
	ca_ip_range_format(&r, buf, sizeof(buf));
	assert_string_equal(buf, canonical);
	return r;
}

static void
range_bad(const char *in, const char *why)
{
	struct ca_ip_range r;
	int rc;

	memset(&r, 0xa5, sizeof(r));
	rc = ca_ip_range_parse(in, &r);
	if (rc != AMTCA_E_USAGE)
		fail_msg("\"%s\": got %d (%s), want AMTCA_E_USAGE", in ? in : "(null)",
		    rc, amtca_errmsg(rc));
	assert_int_equal(r.len, 0);	/* nothing half-written */
	if (strstr(amtca_errmsg(rc), why) == NULL)
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", in,
		    amtca_errmsg(rc), why);
}

static int
in_range(const struct ca_ip_range *r, const char *ip)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, ip, a) == 1)
		return ca_ip_range_contains(r, a, 4);
	assert_int_equal(inet_pton(AF_INET6, ip, a), 1);
	return ca_ip_range_contains(r, a, 16);
}

static void
test_ip_range_parse(void **state)
{
	(void)state;
	range_ok("10.0.0.0/8", "10.0.0.0/8");
	range_ok("0.0.0.0/0", "0.0.0.0/0");
	range_ok("192.0.2.7/32", "192.0.2.7/32");
	range_ok("::/0", "::/0");
	range_ok("2001:DB8:0:0::/32", "2001:db8::/32");
	range_ok("2001:db8::1/128", "2001:db8::1/128");
	range_ok("2001:db8::/29", "2001:db8::/29");	/* not byte-aligned */
	range_ok("::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104");
	/* Host bits set: refused, naming the network it would be. */
	range_bad("10.0.0.1/8", "10.0.0.0/8");
	range_bad("192.0.2.7/24", "192.0.2.0/24");
	range_bad("2001:db8::/28", "2001:db0::/28");
	range_bad("2001:db8::1/64", "2001:db8::/64");
	range_bad("0.0.0.1/0", "0.0.0.0/0");
	/* Syntax. */
	range_bad(NULL, "ADDRESS/PREFIX");
	range_bad("10.0.0.0", "ADDRESS/PREFIX");
	range_bad("/8", "bad address");
	range_bad("10.0.0/8", "neither IPv4 nor IPv6");
	range_bad("010.0.0.0/8", "neither IPv4 nor IPv6");
	range_bad("fe80::1%eth0/64", "neither IPv4 nor IPv6");
	range_bad("host.example/8", "neither IPv4 nor IPv6");
	range_bad("10.0.0.0/", "prefix must be 0-32");
	range_bad("10.0.0.0/33", "prefix must be 0-32");
	range_bad("10.0.0.0/08", "prefix must be 0-32");
	range_bad("10.0.0.0/+8", "prefix must be 0-32");
	range_bad("10.0.0.0/-1", "prefix must be 0-32");
	range_bad("10.0.0.0/8/8", "prefix must be 0-32");
	range_bad("10.0.0.0/8 ", "prefix must be 0-32");
	range_bad("::/129", "prefix must be 0-128");
	range_bad("::/1000", "prefix must be 0-128");
}

static void
test_ip_range_contains(void **state)
{
	struct ca_ip_range r;

	(void)state;
	r = range_ok("10.0.0.0/8", "10.0.0.0/8");
	assert_true(in_range(&r, "10.0.0.0"));
	assert_true(in_range(&r, "10.255.255.255"));
	assert_false(in_range(&r, "11.0.0.0"));
	assert_false(in_range(&r, "9.255.255.255"));
	/* Families never mix, as in RFC 5280 name constraints. */
	assert_false(in_range(&r, "::ffff:10.0.0.1"));
	assert_false(in_range(&r, "::a00:1"));
	r = range_ok("0.0.0.0/0", "0.0.0.0/0");
	assert_true(in_range(&r, "8.8.8.8"));
	assert_true(in_range(&r, "0.0.0.0"));
	assert_false(in_range(&r, "::"));
	r = range_ok("192.0.2.7/32", "192.0.2.7/32");
	assert_true(in_range(&r, "192.0.2.7"));
	assert_false(in_range(&r, "192.0.2.6"));
	assert_false(in_range(&r, "192.0.2.8"));
	r = range_ok("::/0", "::/0");
	assert_true(in_range(&r, "2001:db8::1"));
	assert_true(in_range(&r, "::ffff:10.0.0.1"));
	assert_false(in_range(&r, "10.0.0.1"));
	r = range_ok("2001:db8::1/128", "2001:db8::1/128");
	assert_true(in_range(&r, "2001:db8::1"));
	assert_false(in_range(&r, "2001:db8::"));
	assert_false(in_range(&r, "2001:db8::3"));
	r = range_ok("2001:db8::/29", "2001:db8::/29");
	assert_true(in_range(&r, "2001:db8::1"));
	assert_true(in_range(&r, "2001:dbf:ffff::1"));
	assert_false(in_range(&r, "2001:dc0::"));
	assert_false(in_range(&r, "2001:db7:ffff::"));
	r = range_ok("172.16.0.0/12", "172.16.0.0/12");
	assert_true(in_range(&r, "172.31.255.255"));
	assert_false(in_range(&r, "172.32.0.0"));
	assert_false(in_range(&r, "172.15.255.255"));
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
		cmocka_unit_test(test_ip_range_parse),
		cmocka_unit_test(test_ip_range_contains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
