/*
 * The job engine's rules that do not need a device: which failures are
 * retried, the credential stamp auth_failed is recorded against (changes
 * with the password file, never holds the password), the result names of
 * the contract, and refusing an empty job.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "enroll/fleet.h"

static void
test_transient(void **state)
{
	(void)state;
	assert_true(fleet_transient(AMTCA_E_AMT_TRANSPORT));
	/* AMT locks accounts: an authentication failure is never retried. */
	assert_false(fleet_transient(AMTCA_E_AMT_AUTH));
	assert_false(fleet_transient(AMTCA_E_AMT_TLS));
	assert_false(fleet_transient(AMTCA_E_POLICY));
	assert_false(fleet_transient(0));
}

static void
write_file(const char *p, const char *s)
{
	FILE *fp = fopen(p, "w");

	assert_non_null(fp);
	fputs(s, fp);
	fclose(fp);
}

static void
test_cred_stamp(void **state)
{
	char dir[] = "/tmp/amtca-fleet-XXXXXX", p[64], p2[64];
	char *a = NULL, *b = NULL, *c = NULL;
	struct timespec ts[2];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/pw", dir);
	snprintf(p2, sizeof(p2), "%s/pw2", dir);
	write_file(p, "S3cret-Pa55\n");
	assert_int_equal(fleet_cred_stamp(p, &a), 0);
	assert_int_equal(fleet_cred_stamp(p, &b), 0);
	assert_string_equal(a, b);		/* same file, same stamp */
	assert_null(strstr(a, "S3cret"));	/* never the password */
	free(b);
	b = NULL;
	/* The operator writes a new password (same length, same second). */
	write_file(p2, "Other-Pa55\n");
	rename(p2, p);
	assert_int_equal(fleet_cred_stamp(p, &b), 0);
	assert_string_not_equal(a, b);
	/* Rewritten in place: mtime moves. */
	ts[0].tv_sec = ts[1].tv_sec = 1000000;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	assert_int_equal(fleet_cred_stamp(p, &c), 0);
	assert_string_not_equal(b, c);
	free(a);
	free(b);
	free(c);
	a = (char *)&a;
	assert_int_equal(fleet_cred_stamp("/nonexistent/pw", &a), AMTCA_E_IO);
	assert_null(a);
	unlink(p);
	rmdir(dir);
}

static void
test_names_and_empty_job(void **state)
{
	struct fleet_opts o;
	struct fleet_report rep;
	struct enroll_ctx c;

	(void)state;
	assert_string_equal(fleet_result_name(FLEET_ENROLLED), "enrolled");
	assert_string_equal(fleet_result_name(FLEET_RENEWED), "renewed");
	assert_string_equal(fleet_result_name(FLEET_UNCHANGED), "unchanged");
	assert_string_equal(fleet_result_name(FLEET_FAILED), "failed");
	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	assert_int_equal(fleet_run(&c, &o, &rep), AMTCA_E_USAGE);
	assert_null(rep.dev);
	fleet_report_clear(&rep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transient),
		cmocka_unit_test(test_cred_stamp),
		cmocka_unit_test(test_names_and_empty_job),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
