/*
 * json_put_string() (common/json.c), the one JSON string writer (the CLI's
 * --json documents, serve's {"error":"..."} lines): quotes, backslashes and
 * control characters are escaped, well-formed UTF-8 passes through, and any
 * other byte above 0x7f (a stray byte, a sequence cut short, an overlong
 * form, a surrogate) becomes U+FFFD, so what it writes always parses as
 * JSON (jansson checks) and says what was meant.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "common/json.h"

/* What json_put_string(s) writes, malloc'd. */
static char *
put(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	json_put_string(f, s);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* json_put_string(in) is exactly `want` and parses back to `text`. */
static void
check(const char *in, const char *want, const char *text)
{
	char *got = put(in), *doc = NULL;
	json_error_t e;
	json_t *v;

	if (strcmp(got, want) != 0)
		fail_msg("wrote %s, want %s", got, want);
	assert_true(asprintf(&doc, "{\"error\":%s}", got) > 0);
	if ((v = json_loads(doc, JSON_REJECT_DUPLICATES, &e)) == NULL)
		fail_msg("%s is not JSON: %s", doc, e.text);
	assert_string_equal(json_string_value(json_object_get(v, "error")), text);
	json_decref(v);
	free(doc);
	free(got);
}

static void
test_escapes(void **state)
{
	(void)state;
	check("no device \"a\\b\" here", "\"no device \\\"a\\\\b\\\" here\"",
	    "no device \"a\\b\" here");
	check("line\nbreak\r\ttab\x01\x1f", "\"line\\nbreak\\r\\ttab\\u0001\\u001f\"",
	    "line\nbreak\r\ttab\x01\x1f");
	check("", "\"\"", "");
	check(NULL, "\"\"", "");
	/* A closing brace or quote in a reason cannot end the document. */
	check("\"}, \"x\": \"", "\"\\\"}, \\\"x\\\": \\\"\"", "\"}, \"x\": \"");
}

static void
test_utf8(void **state)
{
	(void)state;
	/* Well-formed: 2, 3 and 4 bytes, the largest code point. */
	check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xf4\x8f\xbf\xbf",
	    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xf4\x8f\xbf\xbf\"",
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xf4\x8f\xbf\xbf");
	/* A stray byte, and a sequence cut short (vsnprintf's %.40s can cut
	 * a client's name there): U+FFFD, the rest kept. */
	check("a\xff" "b", "\"a\\ufffdb\"", "a\xef\xbf\xbd" "b");
	check("x\xc3", "\"x\\ufffd\"", "x\xef\xbf\xbd");
	check("\xe2\x82", "\"\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd");
	check("\xe2\x82\"", "\"\\ufffd\\ufffd\\\"\"", "\xef\xbf\xbd\xef\xbf\xbd\"");
	/* Overlong forms, a surrogate, past U+10FFFF, a lone continuation. */
	check("\xc0\xaf", "\"\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd");
	check("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"",
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	check("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"",
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	check("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"",
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	check("\x80", "\"\\ufffd\"", "\xef\xbf\xbd");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
