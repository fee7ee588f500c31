/*
 * amt/client.c's parse gate: at most `limit` response DOMs alive at once,
 * whatever the number of threads; a failed parse or a SOAP fault returns
 * its permit; the client's calls go through the gate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "amt/internal.h"
#include "amt/wsman.h"
#include "common/limits.h"
#include "unit/amt/helper_amt.h"

static const char env_ok[] =
    "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">"
    "<s:Header/><s:Body/></s:Envelope>";

static struct amt_parse_gate
gate_now(void)
{
	struct amt_parse_gate g;

	amt_parse_gate_get(&g);
	return g;
}

static int
check_ok(struct wsman_msg **m)
{
	return amt_call_check(200, env_ok, sizeof(env_ok) - 1, "test", NULL, m);
}

struct waiter {
	pthread_t th;
	struct wsman_msg *m;
	int rc;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->rc = check_ok(&w->m);
	return NULL;
}

static void
test_gate_bounds_live_documents(void **state)
{
	struct wsman_msg *m1 = NULL, *m2 = NULL;
	struct waiter w = { .rc = -1 };
	struct amt_parse_gate g;

	(void)state;
	amt_parse_gate_set(2);
	assert_int_equal(check_ok(&m1), 0);
	assert_int_equal(check_ok(&m2), 0);
	g = gate_now();
	assert_int_equal(g.limit, 2);
	assert_int_equal(g.used, 2);
	/* A third parse waits while two documents are alive. */
	assert_int_equal(pthread_create(&w.th, NULL, waiter_main, &w), 0);
	while (gate_now().waiting == 0)
		sched_yield();
	g = gate_now();
	assert_int_equal(g.used, 2);
	assert_int_equal(g.waiting, 1);
	assert_null(w.m);
	/* Freeing one document lets it through. */
	wsman_msg_free(m1);
	assert_int_equal(pthread_join(w.th, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_non_null(w.m);
	g = gate_now();
	assert_int_equal(g.used, 2);
	assert_int_equal(g.waiting, 0);
	assert_int_equal(g.peak, 2);
	wsman_msg_free(m2);
	wsman_msg_free(w.m);
	assert_int_equal(gate_now().used, 0);
}

static void
test_gate_failures_return_their_permit(void **state)
{
	static const char bad[] = "<s:Envelope";
	static const char fault[] =
	    "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">"
	    "<s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code>"
	    "<s:Reason><s:Text>no</s:Text></s:Reason></s:Fault></s:Body>"
	    "</s:Envelope>";
	struct wsman_msg *m = NULL;
	int i;

	(void)state;
	amt_parse_gate_set(1);
	/* More failures than permits: each must give its permit back. */
	for (i = 0; i < 3; i++) {
		assert_int_equal(amt_call_check(200, bad, sizeof(bad) - 1, "t",
		    NULL, &m), AMTCA_E_AMT_PARSE);
		assert_null(m);
		assert_int_equal(amt_call_check(400, fault, sizeof(fault) - 1,
		    "t", NULL, &m), AMTCA_E_AMT_FAULT);
		assert_null(m);
		assert_int_equal(amt_call_check(500, NULL, 0, "t", NULL, &m),
		    AMTCA_E_AMT_HTTP);
	}
	assert_int_equal(gate_now().used, 0);
	assert_int_equal(check_ok(&m), 0);
	wsman_msg_free(m);
	assert_int_equal(gate_now().used, 0);
}

static void
test_gate_default_follows_cpus(void **state)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want = (unsigned)(n > 0 ? n : 1) * AMTCA_AMT_PARSES_PER_CPU;

	(void)state;
	if (want < AMTCA_AMT_PARSES_MIN)
		want = AMTCA_AMT_PARSES_MIN;
	if (want > AMTCA_AMT_PARSES_MAX)
		want = AMTCA_AMT_PARSES_MAX;
	amt_parse_gate_set(0);
	assert_int_equal(gate_now().limit, want);
}

/* A real call holds a permit while it parses and none once it returns. */
static void
test_client_calls_go_through_gate(void **state)
{
	char *gen = fx_load("amt/general/get.xml", NULL);
	char *c1 = http_401("false"), *r1 = http_chunked(200, "OK", gen);
	struct tsrv_resp script[] = { { c1, 0, 0 }, { r1, 0, 0 } };
	struct amt_opts o = {
		.host = "amt.test", .address = "127.0.0.1", .user = "admin",
		.password = "pw", .timeout_ms = 10000,
	};
	struct amt_general g;
	struct tsrv s;
	struct amt *a = NULL;

	(void)state;
	amt_parse_gate_set(3);
	assert_int_equal(gate_now().peak, 0);
	assert_int_equal(tsrv_start(&s, script, 2), 0);
	o.port = s.port;
	assert_int_equal(amt_open(&o, &a), 0);
	assert_int_equal(amt_general_get(a, &g), 0);
	amt_general_clear(&g);
	assert_int_equal(gate_now().peak, 1);
	assert_int_equal(gate_now().used, 0);
	tsrv_stop(&s);
	amt_free(a);
	tsrv_free(&s);
	free(gen); free(c1); free(r1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gate_bounds_live_documents),
		cmocka_unit_test(test_gate_failures_return_their_permit),
		cmocka_unit_test(test_gate_default_follows_cpus),
		cmocka_unit_test(test_client_calls_go_through_gate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
