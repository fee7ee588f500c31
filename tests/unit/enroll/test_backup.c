/*
 * The backup manifest parser (enroll/backup.h): what restore reads from a
 * backup directory, outside input.  Good manifests come back sorted by
 * path with their hashes; every malformed line, unsafe path, duplicate or
 * unterminated line is refused with AMTCA_E_BACKUP.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/limits.h"
#include "enroll/backup.h"

#define H1 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA256_HEX_TEST 67
#define H2 "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

static int
parse(const char *text, struct backup_manifest **m)
{
	return backup_manifest_parse(text, strlen(text), "MANIFEST", m);
}

static void
test_good(void **state)
{
	struct backup_manifest *m = NULL;

	(void)state;
	assert_int_equal(parse(H2 "  state/state.db\n" H1 "  amtca.conf\n"
	    H1 "  keys/softhsm/tokens/x-y/token.object\n" H2 "  keys.txt\n", &m), 0);
	assert_int_equal(m->n, 4);
	/* strcmp order: "keys.txt" before "keys/..." ('.' < '/'). */
	assert_string_equal(m->e[0].path, "amtca.conf");
	assert_string_equal(m->e[0].sha256, H1);
	assert_string_equal(m->e[1].path, "keys.txt");
	assert_string_equal(m->e[2].path, "keys/softhsm/tokens/x-y/token.object");
	assert_string_equal(m->e[3].path, "state/state.db");
	assert_string_equal(m->e[3].sha256, H2);
	backup_manifest_free(m);
	/* An empty manifest is a (useless) manifest. */
	assert_int_equal(parse("", &m), 0);
	assert_int_equal(m->n, 0);
	backup_manifest_free(m);
}

static void
test_bad(void **state)
{
	static const char *const bad[] = {
		H1 "  a\n" H1 "  a\n",			/* twice */
		H1 "  /etc/passwd\n",			/* absolute */
		H1 "  ../x\n",				/* escapes */
		H1 "  a/../../x\n",
		H1 "  a/./b\n",
		H1 "  a//b\n",
		H1 "  a/\n",
		H1 "  .\n",
		H1 "  \n",				/* no path */
		H1 " a\n",				/* one space */
		H1 "\ta\n",
		"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef  a\n",
		"0123  a\n",				/* short hash */
		H1 "0  a\n",				/* long hash */
		H1 "  a\\b\n",				/* sha256sum would escape */
		H1 "  a\rb\n",
		H1 "  a\n" H1 "  b",			/* unterminated */
		"garbage\n",
		"\n",
	};
	struct backup_manifest *m = (struct backup_manifest *)&m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &m), AMTCA_E_BACKUP);
		assert_null(m);
	}
	/* A NUL inside a line. */
	{
		char t[] = H1 "  ab\n";

		t[SHA256_HEX_TEST] = '\0';
		assert_int_equal(backup_manifest_parse(t, sizeof(t) - 1, "M", &m),
		    AMTCA_E_BACKUP);
		assert_null(m);
	}
}

static void
test_limit(void **state)
{
	size_t n = AMTCA_BACKUP_FILES_MAX + 1, i, len = 0;
	char *t = malloc(n * 80);
	struct backup_manifest *m = NULL;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < n; i++)
		len += (size_t)sprintf(t + len, H1 "  f%zu\n", i);
	assert_int_equal(backup_manifest_parse(t, len, "M", &m), AMTCA_E_LIMIT);
	assert_null(m);
	/* One fewer is fine. */
	{
		char last[32];

		snprintf(last, sizeof(last), "  f%d\n", AMTCA_BACKUP_FILES_MAX);
		len = (size_t)(strstr(t, last) - t) - 64;
	}
	assert_int_equal(backup_manifest_parse(t, len, "M", &m), 0);
	assert_int_equal(m->n, AMTCA_BACKUP_FILES_MAX);
	backup_manifest_free(m);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
