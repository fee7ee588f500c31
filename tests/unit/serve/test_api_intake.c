/*
 * The admin API's request bodies (enroll/serve/api_intake.c): what a POST
 * must look like before the service looks anything up or stores anything.
 * The file is compiled in here: it is part of the service, not the library.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "enroll/serve/api_intake.c"

static const char *const domains[] = { "example.test" };

static struct ca_policy
policy(void)
{
	struct ca_policy p;

	ca_policy_init(&p);
	p.domains = domains;
	p.ndomains = 1;
	return p;
}

static int
job(const char *text, struct api_job_req *out)
{
	struct ca_policy p = policy();

	return api_job_parse((const unsigned char *)text, strlen(text), &p, out);
}

/* A body refused with 400 (USAGE), its detail naming `what`. */
static void
refused(const char *text, const char *what)
{
	struct api_job_req jr;
	int r = job(text, &jr);

	if (r != AMTCA_E_USAGE)
		fail_msg("accepted or wrong code %d: %s", r, text);
	if (strstr(amtca_errmsg(r), what) == NULL)
		fail_msg("detail \"%s\" does not name \"%s\"", amtca_errmsg(r), what);
	assert_null(jr.hosts);
	assert_int_equal(jr.n, 0);
}

static void
test_ctype(void **state)
{
	(void)state;
	assert_true(api_ctype_is_json("application/json"));
	assert_true(api_ctype_is_json("Application/JSON; charset=utf-8"));
	assert_true(api_ctype_is_json(" application/json ;charset=UTF-8"));
	assert_false(api_ctype_is_json(NULL));
	assert_false(api_ctype_is_json(""));
	assert_false(api_ctype_is_json("text/plain"));
	/* What browsers may send cross-origin without a preflight. */
	assert_false(api_ctype_is_json("application/x-www-form-urlencoded"));
	assert_false(api_ctype_is_json("multipart/form-data"));
	assert_false(api_ctype_is_json("text/plain; a=application/json"));
	assert_false(api_ctype_is_json("application/jsonx"));
	assert_false(api_ctype_is_json("application/json-patch+json"));
}

static void
test_depth(void **state)
{
	const char *s;

	(void)state;
	s = "{\"a\":[1,{\"b\":[]}]}";
	assert_int_equal(api_json_depth((const unsigned char *)s, strlen(s), 8), 4);
	/* Brackets inside strings, and escaped quotes, are data. */
	s = "{\"a\":\"[[[[[[[[[[\\\"{{{{{{{{{\"}";
	assert_int_equal(api_json_depth((const unsigned char *)s, strlen(s), 8), 1);
	s = "[[[[[[[[[1]]]]]]]]]";
	assert_int_equal(api_json_depth((const unsigned char *)s, strlen(s), 8), -1);
	assert_int_equal(api_json_depth((const unsigned char *)s, strlen(s), 9), 9);
}

static void
test_job_ok(void **state)
{
	struct api_job_req jr;
	const char *text =
	    "{\"devices\":["
	    "{\"fqdn\":\"AMT1.Example.Test\",\"credential\":\"site-a\"},"
	    "{\"fqdn\":\"amt2.example.test\",\"address\":\"127.0.0.2\","
	    "\"credential\":\"site_b.2\",\"port\":16992,\"tls_port\":26993,"
	    "\"tls_pin_sha256\":\"" "00112233445566778899aabbccddeeff"
	    "00112233445566778899AABBCCDDEEFF" "\"}],\"concurrency\":3}";

	(void)state;
	assert_int_equal(job(text, &jr), 0);
	assert_int_equal(jr.n, 2);
	assert_int_equal(jr.concurrency, 3);
	assert_string_equal(jr.hosts[0].fqdn, "amt1.example.test");
	assert_string_equal(jr.hosts[0].credential, "site-a");
	assert_null(jr.hosts[0].address);
	assert_null(jr.hosts[0].password_file);
	assert_null(jr.hosts[0].user);
	assert_int_equal(jr.hosts[0].port, 0);
	assert_int_equal(jr.hosts[0].has_pin, 0);
	assert_string_equal(jr.hosts[1].address, "127.0.0.2");
	assert_string_equal(jr.hosts[1].credential, "site_b.2");
	assert_int_equal(jr.hosts[1].port, 16992);
	assert_int_equal(jr.hosts[1].tls_port, 26993);
	assert_int_equal(jr.hosts[1].has_pin, 1);
	assert_int_equal(jr.hosts[1].tls_pin[0], 0x00);
	assert_int_equal(jr.hosts[1].tls_pin[31], 0xff);
	api_job_req_clear(&jr);
	assert_null(jr.hosts);
}

static void
test_job_concurrency(void **state)
{
	struct api_job_req jr;

	(void)state;
	/* Absent: the default; too many: capped, not refused. */
	assert_int_equal(job("{\"devices\":[{\"fqdn\":\"a.example.test\","
	    "\"credential\":\"c\"}]}", &jr), 0);
	assert_int_equal(jr.concurrency, AMTCA_API_CONCURRENCY_DEFAULT);
	api_job_req_clear(&jr);
	assert_int_equal(job("{\"devices\":[{\"fqdn\":\"a.example.test\","
	    "\"credential\":\"c\"}],\"concurrency\":100000}", &jr), 0);
	assert_int_equal(jr.concurrency, AMTCA_API_CONCURRENCY_MAX);
	api_job_req_clear(&jr);
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"}],"
	    "\"concurrency\":0}", "concurrency");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"}],"
	    "\"concurrency\":\"4\"}", "concurrency");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"}],"
	    "\"concurrency\":2.5}", "concurrency");
}

/* After `ca rotate`: moving devices onto the current intermediate. */
static void
test_job_reissue(void **state)
{
	struct api_job_req jr;

	(void)state;
	assert_int_equal(job("{\"devices\":[{\"fqdn\":\"a.example.test\","
	    "\"credential\":\"c\"}]}", &jr), 0);
	assert_int_equal(jr.reissue, 0);	/* absent: left alone */
	api_job_req_clear(&jr);
	assert_int_equal(job("{\"devices\":[{\"fqdn\":\"a.example.test\","
	    "\"credential\":\"c\"}],\"reissue_older_than_intermediate\":true}",
	    &jr), 0);
	assert_int_equal(jr.reissue, 1);
	api_job_req_clear(&jr);
	assert_int_equal(jr.reissue, 0);
	assert_int_equal(job("{\"reissue_older_than_intermediate\":false,"
	    "\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"}]}",
	    &jr), 0);
	assert_int_equal(jr.reissue, 0);
	api_job_req_clear(&jr);
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"}],"
	    "\"reissue_older_than_intermediate\":1}",
	    "reissue_older_than_intermediate");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"}],"
	    "\"reissue_older_than_intermediate\":\"true\"}",
	    "reissue_older_than_intermediate");
	/* A per-device flag is not a thing: unknown field. */
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\","
	    "\"reissue_older_than_intermediate\":true}]}", "unknown field");
}

static void
test_job_refused(void **state)
{
	(void)state;
	refused("", "empty");
	refused("[]", "object");
	refused("\"x\"", "bad JSON");
	refused("{\"devices\":[]}", "devices");
	refused("{\"devices\":{}}", "devices");
	refused("{}", "devices");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"}]} x",
	    "bad JSON");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"}],"
	    "\"extra\":1}", "unknown field \"extra\"");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\","
	    "\"password\":\"x\"}]}", "unknown field \"password\"");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\"}]}",
	    "\"credential\" is required");
	refused("{\"devices\":[{\"credential\":\"c\"}]}", "\"fqdn\" is required");
	refused("{\"devices\":[1]}", "an object is expected");
	refused("{\"devices\":[{\"fqdn\":7,\"credential\":\"c\"}]}", "string");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"a b\"}]}",
	    "credential");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"\"}]}",
	    "credential");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c/../d\"}]}",
	    "credential");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":"
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
	    "credential");
	/* A NUL inside a string would cut the name short (jansson refuses
	 * it while parsing; get_str() would too). */
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\\u0000.evil.test\","
	    "\"credential\":\"c\"}]}", "bad JSON");
	refused("{\"devices\":[{\"fqdn\":\"a.other.test\",\"credential\":\"c\"}]}",
	    "devices[0]: fqdn");
	refused("{\"devices\":[{\"fqdn\":\"*.example.test\",\"credential\":\"c\"}]}",
	    "devices[0]: fqdn");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\","
	    "\"address\":\"host.example.test\"}]}", "address");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\","
	    "\"port\":0}]}", "port");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\","
	    "\"tls_port\":65536}]}", "tls_port");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\","
	    "\"tls_pin_sha256\":\"abcd\"}]}", "tls_pin_sha256");
	/* The same device twice, whatever its case: which one would win? */
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"credential\":\"c\"},"
	    "{\"fqdn\":\"b.example.test\",\"credential\":\"c\"},"
	    "{\"fqdn\":\"A.EXAMPLE.TEST\",\"credential\":\"d\"}]}",
	    "devices[2]: a.example.test is already devices[0]");
	refused("{\"devices\":[{\"fqdn\":\"a.example.test\",\"fqdn\":"
	    "\"b.example.test\",\"credential\":\"c\"}]}", "bad JSON");
	refused("{\"devices\":[[[[[[[[[[]]]]]]]]]]}", "deeper");
}

static void
test_job_too_many(void **state)
{
	struct api_job_req jr;
	size_t i, n = AMTCA_API_JOB_DEVICES_MAX + 1, cap = n * 64 + 64, len = 0;
	char *buf = malloc(cap);

	(void)state;
	assert_non_null(buf);
	len += (size_t)snprintf(buf + len, cap - len, "{\"devices\":[");
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		    "%s{\"fqdn\":\"d%zu.example.test\",\"credential\":\"c\"}",
		    i ? "," : "", i);
	len += (size_t)snprintf(buf + len, cap - len, "]}");
	assert_int_equal(job(buf, &jr), AMTCA_E_USAGE);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_USAGE), "1 to"));
	/* One fewer is fine. */
	len = 0;
	len += (size_t)snprintf(buf + len, cap - len, "{\"devices\":[");
	for (i = 0; i + 1 < n; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		    "%s{\"fqdn\":\"d%zu.example.test\",\"credential\":\"c\"}",
		    i ? "," : "", i);
	len += (size_t)snprintf(buf + len, cap - len, "]}");
	assert_int_equal(job(buf, &jr), 0);
	assert_int_equal(jr.n, AMTCA_API_JOB_DEVICES_MAX);
	api_job_req_clear(&jr);
	free(buf);
}

static int
revoke(const char *text, int *reason)
{
	return api_revoke_parse((const unsigned char *)text, strlen(text), reason);
}

static void
test_revoke(void **state)
{
	int reason = 99;

	(void)state;
	assert_int_equal(revoke("{\"reason\":\"keyCompromise\"}", &reason), 0);
	assert_int_equal(reason, 1);
	assert_int_equal(revoke("{\"reason\":\"cessationOfOperation\"}", &reason), 0);
	assert_int_equal(reason, 5);
	assert_int_equal(revoke("{\"reason\":\"unspecified\"}", &reason), 0);
	assert_int_equal(reason, 0);
	assert_int_equal(revoke("{\"reason\":\"KeyCompromise\"}", &reason),
	    AMTCA_E_USAGE);
	assert_int_equal(reason, -1);
	assert_int_equal(revoke("{\"reason\":\"removeFromCRL\"}", &reason),
	    AMTCA_E_USAGE);
	assert_int_equal(revoke("{}", &reason), AMTCA_E_USAGE);
	assert_int_equal(revoke("{\"reason\":1}", &reason), AMTCA_E_USAGE);
	assert_int_equal(revoke("{\"reason\":\"keyCompromise\",\"serial\":\"01\"}",
	    &reason), AMTCA_E_USAGE);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_USAGE), "unknown field"));
	assert_int_equal(revoke("{\"reason\":\"keyCompromise\"", &reason),
	    AMTCA_E_USAGE);
	assert_int_equal(revoke("", &reason), AMTCA_E_USAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctype),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_job_ok),
		cmocka_unit_test(test_job_concurrency),
		cmocka_unit_test(test_job_reissue),
		cmocka_unit_test(test_job_refused),
		cmocka_unit_test(test_job_too_many),
		cmocka_unit_test(test_revoke),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
