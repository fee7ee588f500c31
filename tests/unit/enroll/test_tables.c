/*
 * The core's shared descriptions: the enrollment step table (enroll.h) and
 * the doctor's check table (doctor.h).  Their names are stored (last_step)
 * and scripted against (--json ids, --skip), so they must not drift; the
 * engine walks the step table by index, so ids must equal positions.  And
 * the engine takes a context, not a front end's type: an incomplete one is
 * refused before anything is contacted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/err.h"
#include "enroll/doctor.h"
#include "enroll/enroll.h"

static void
test_steps(void **state)
{
	static const char *const names[ENROLL_NSTEPS] = {
		"preflight", "time", "chain", "leaf", "bind", "verify", "cleanup",
	};
	int i;

	(void)state;
	for (i = 0; i < ENROLL_NSTEPS; i++) {
		assert_int_equal(enroll_steps[i].id, i);
		assert_string_equal(enroll_steps[i].name, names[i]);
		assert_string_equal(enroll_step_name((enum enroll_step)i), names[i]);
		assert_non_null(enroll_steps[i].title);
		assert_ptr_equal(enroll_step_title((enum enroll_step)i),
		    enroll_steps[i].title);
		/* Every step runs on a device not yet enrolled. */
		assert_non_null(enroll_steps[i].run);
		assert_int_equal(enroll_step_parse(names[i]), i);
	}
	/* An enrolled device: only verify (proven in pre-flight) and cleanup. */
	for (i = ENROLL_TIME; i <= ENROLL_BIND; i++)
		assert_null(enroll_steps[i].run_enrolled);
	assert_non_null(enroll_steps[ENROLL_VERIFY].run_enrolled);
	assert_non_null(enroll_steps[ENROLL_CLEANUP].run_enrolled);
	assert_int_equal(enroll_step_parse("none"), -1);
	assert_int_equal(enroll_step_parse(NULL), -1);
	assert_int_equal(enroll_step_parse("Preflight"), -1);
	assert_string_equal(enroll_step_name(ENROLL_NSTEPS), "none");
}

static void
test_checks(void **state)
{
	static const char *const keys[DOCTOR_NCHECKS] = {
		"dns", "port_tls", "tls_handshake", "port_plain", "validity_local",
		"chain_file", "login", "identity", "validity_amt", "redirection",
		"home",
	};
	int i;

	(void)state;
	for (i = 0; i < DOCTOR_NCHECKS; i++) {
		assert_int_equal(doctor_checks[i].id, i);
		assert_string_equal(doctor_checks[i].key, keys[i]);
		assert_non_null(doctor_checks[i].name);
		if (i == DOCTOR_HOME) {
			/* Reported only: not run, not skippable. */
			assert_null(doctor_checks[i].run);
			assert_int_equal(doctor_check_parse(keys[i]), -1);
		} else {
			assert_non_null(doctor_checks[i].run);
			assert_int_equal(doctor_check_parse(keys[i]), i);
		}
	}
	assert_int_equal(doctor_check_parse("DNS"), -1);
	assert_int_equal(doctor_check_parse(""), -1);
	assert_int_equal(doctor_check_parse(NULL), -1);
}

static void
test_engine_context(void **state)
{
	struct enroll_ctx c;
	struct enroll_opts o;
	struct enroll_result res;

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	o.host = "amt-1.example.test";
	o.user = "admin";
	o.password = "x";
	assert_int_equal(enroll_run(&c, &o, &res), AMTCA_E_CONFIG);
	assert_string_equal(res.status, "failed");
	assert_int_equal(res.failed_step, ENROLL_PREFLIGHT);
	assert_int_equal(res.steps_done, 0);
	enroll_result_clear(&res);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_steps),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_engine_context),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
