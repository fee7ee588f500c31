/*
 * amt/client.c transport against a scripted in-test HTTP server on
 * loopback: AMT's Digest challenge, one authenticated attempt only,
 * chunked reassembly at odd boundaries, faults, statuses, limits.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "amt/amt.h"
#include "amt/wsman.h"
#include "common/limits.h"
#include "unit/amt/helper_amt.h"

#define PASSWORD "P@ssw0rd-not-logged"
#define REALM "Digest:A4070000000000000000000000000000"

static struct amt *
open_at(int port)
{
	struct amt_opts o = {
		.host = "amt.test", .address = "127.0.0.1", .port = port,
		.user = "admin", .password = PASSWORD, .timeout_ms = 10000,
	};
	struct amt *a = NULL;

	assert_int_equal(amt_open(&o, &a), 0);
	assert_non_null(a);
	return a;
}

static const char *
req_body(const char *req)
{
	const char *p = strstr(req, "\r\n\r\n");

	assert_non_null(p);
	return p + 4;
}

/* The Authorization header in `req` carries a correct Digest response. */
static void
assert_digest_ok(const char *req, const char *want_nc)
{
	char *user = auth_param(req, "username"), *realm = auth_param(req, "realm");
	char *nonce = auth_param(req, "nonce"), *uri = auth_param(req, "uri");
	char *qop = auth_param(req, "qop"), *nc = auth_param(req, "nc");
	char *cnonce = auth_param(req, "cnonce"), *resp = auth_param(req, "response");
	char want[33];

	assert_non_null(resp);
	assert_string_equal(user, "admin");
	assert_string_equal(realm, REALM);
	assert_string_equal(uri, "/wsman");
	assert_string_equal(qop, "auth");
	assert_string_equal(nc, want_nc);
	assert_non_null(cnonce);
	assert_int_equal(wsman_digest_response(user, realm, PASSWORD, "POST",
	    uri, nonce, nc, cnonce, qop, want), 0);
	assert_string_equal(resp, want);
	assert_null(strstr(req, PASSWORD));
	free(user); free(realm); free(nonce); free(uri);
	free(qop); free(nc); free(cnonce); free(resp);
}

static void
test_wrong_password_one_attempt(void **state)
{
	char *c1 = http_401("false"), *c2 = http_401("false");
	struct tsrv_resp script[] = { { c1, 0, 0 }, { c2, 0, 0 } };
	struct amt_general g;
	struct tsrv s;
	struct amt *a;
	const char *msg;

	(void)state;
	assert_int_equal(tsrv_start(&s, script, 2), 0);
	a = open_at(s.port);
	assert_int_equal(amt_general_get(a, &g), AMTCA_E_AMT_AUTH);
	msg = amtca_errmsg(AMTCA_E_AMT_AUTH);
	assert_non_null(strstr(msg, "authentication failed for admin at amt.test"));
	assert_non_null(strstr(msg, "account locked"));
	assert_null(strstr(msg, PASSWORD));
	assert_int_equal(amt_last_error(a)->http_status, 401);
	/* Challenge + exactly one authenticated attempt, never more. */
	assert_int_equal(amt_request_count(a), 2);
	usleep(300 * 1000);	/* a third request would arrive by now */
	tsrv_stop(&s);
	assert_int_equal(s.nreq, 2);
	assert_null(strstr(s.req[0], "Authorization:"));
	/* libcurl probes the challenge with an empty POST (authneg). */
	assert_non_null(strstr(s.req[0], "\r\nContent-Length: 0\r\n"));
	assert_string_equal(req_body(s.req[0]), "");
	assert_non_null(strstr(s.req[0], "\r\nHost: amt.test:"));
	assert_non_null(strstr(s.req[0], "POST /wsman HTTP/1.1\r\n"));
	assert_digest_ok(s.req[1], "00000001");
	amt_free(a);
	tsrv_free(&s);
	free(c1);
	free(c2);
}

static void
test_chunked_success_then_nonce_reuse(void **state)
{
	char *gen = fx_load("amt/general/get.xml", NULL);
	char *com = fx_load("amt/setupandconfiguration/commitchanges.xml", NULL);
	char *c1 = http_401("false"), *r1 = http_chunked(200, "OK", gen);
	char *r2 = http_chunked(200, "OK", com);
	struct tsrv_resp script[] = { { c1, 0, 0 }, { r1, 0, 7 }, { r2, 0, 13 } };
	struct amt_general g;
	struct wsman_buf want;
	struct tsrv s;
	struct amt *a;

	(void)state;
	assert_int_equal(tsrv_start(&s, script, 3), 0);
	a = open_at(s.port);
	assert_int_equal(amt_general_get(a, &g), 0);
	assert_string_equal(g.hostname, "Test Host Name");
	assert_string_equal(g.realm, "Digest:F3EB554784E729164447A89F60B641C5");
	assert_string_equal(g.version, "15.0.23.1706");
	amt_general_clear(&g);
	assert_int_equal(amt_request_count(a), 2);
	/* Same handle: libcurl reuses the nonce, nc counts up. */
	assert_int_equal(amt_commit(a), 0);
	assert_int_equal(amt_request_count(a), 3);
	tsrv_stop(&s);
	assert_int_equal(s.nreq, 3);
	assert_digest_ok(s.req[1], "00000001");
	assert_digest_ok(s.req[2], "00000002");
	/* The wire request is exactly the go-wsman-messages form, id 0. */
	wsman_buf_init(&want, 0);
	assert_int_equal(wsman_envelope(&want, WSMAN_ACTION_GET,
	    AMT_CLASS_URI("AMT_GeneralSettings"), 0, NULL, 0, NULL), 0);
	assert_string_equal(req_body(s.req[1]), want.data);
	wsman_buf_free(&want);
	assert_non_null(strstr(req_body(s.req[2]), "<a:MessageID>1</a:MessageID>"));
	assert_non_null(strstr(s.req[1],
	    "\r\nContent-Type: application/soap+xml; charset=utf-8\r\n"));
	amt_free(a);
	tsrv_free(&s);
	free(gen); free(com); free(c1); free(r1); free(r2);
}

/*
 * A call that changes AMT's state goes on a fresh connection, so a drop
 * before the answer is an error the caller sees, never a silent resend
 * (libcurl resends on a reused connection that dies): sent exactly once.
 */
static void
test_state_change_never_resent(void **state)
{
	char *gen = fx_load("amt/general/get.xml", NULL);
	char *c1 = http_401("false"), *r1 = http_chunked(200, "OK", gen);
	struct tsrv_resp script[] = { { c1, 0, 0 }, { r1, 0, 0 }, { NULL, 0, 0 } };
	struct amt_general g;
	struct tsrv s;
	struct amt *a;

	(void)state;
	assert_int_equal(tsrv_start(&s, script, 3), 0);
	a = open_at(s.port);
	assert_int_equal(amt_general_get(a, &g), 0);
	amt_general_clear(&g);
	assert_int_equal(amt_commit(a), AMTCA_E_AMT_TRANSPORT);
	tsrv_stop(&s);
	assert_int_equal(s.nreq, 3);		/* CommitChanges sent once */
	assert_int_equal(s.nconn, 3);		/* challenge, Get, commit */
	assert_non_null(strstr(req_body(s.req[2]), "CommitChanges"));
	amt_free(a);
	tsrv_free(&s);
	free(gen);
	free(c1);
	free(r1);
}

/* An expired nonce (401 without stale=true) gets one fresh attempt. */
static void
test_expired_nonce(void **state)
{
	char *gen = fx_load("amt/general/get.xml", NULL);
	char *com = fx_load("amt/setupandconfiguration/commitchanges.xml", NULL);
	char *c1 = http_401("false"), *r1 = http_chunked(200, "OK", gen);
	char *c2 = http_401("false"), *r2 = http_chunked(200, "OK", com);
	char *c3 = http_401("false");
	struct tsrv_resp ok[] = { { c1, 0, 0 }, { r1, 0, 0 }, { c2, 0, 0 }, { r2, 0, 0 } };
	struct tsrv_resp bad[] = { { c1, 0, 0 }, { r1, 0, 0 }, { c2, 0, 0 }, { c3, 0, 0 } };
	struct amt_general g;
	struct tsrv s;
	struct amt *a;

	(void)state;
	assert_int_equal(tsrv_start(&s, ok, 4), 0);
	a = open_at(s.port);
	assert_int_equal(amt_general_get(a, &g), 0);
	amt_general_clear(&g);
	assert_int_equal(amt_commit(a), 0);
	assert_int_equal(amt_request_count(a), 4);
	tsrv_stop(&s);
	assert_int_equal(s.nreq, 4);
	assert_digest_ok(s.req[3], "00000001");	/* against the new nonce */
	amt_free(a);
	tsrv_free(&s);

	/* The fresh attempt is rejected too: AUTH, and no further request. */
	assert_int_equal(tsrv_start(&s, bad, 4), 0);
	a = open_at(s.port);
	assert_int_equal(amt_general_get(a, &g), 0);
	amt_general_clear(&g);
	assert_int_equal(amt_commit(a), AMTCA_E_AMT_AUTH);
	assert_int_equal(amt_request_count(a), 4);
	usleep(300 * 1000);
	tsrv_stop(&s);
	assert_int_equal(s.nreq, 4);
	amt_free(a);
	tsrv_free(&s);
	free(gen); free(com); free(c1); free(r1); free(c2); free(r2); free(c3);
}

static void
test_fault_400(void **state)
{
	char *c1 = http_401("false"), *r1 = http_chunked(400, "Bad Request",
	    cap_already_exists);
	struct tsrv_resp script[] = { { c1, 0, 0 }, { r1, 0, 5 } };
	const struct amt_error *e;
	struct tsrv s;
	struct amt *a;

	(void)state;
	assert_int_equal(tsrv_start(&s, script, 2), 0);
	a = open_at(s.port);
	assert_int_equal(amt_tls_context_create(a,
	    "Intel(r) AMT Certificate: Handle: 1"), AMTCA_E_AMT_FAULT);
	e = amt_last_error(a);
	assert_int_equal(e->http_status, 400);
	assert_string_equal(e->fault_subcode, "AlreadyExists");
	assert_string_equal(e->fault_reason,
	    "The sender attempted to create a resource which already exists.");
	tsrv_stop(&s);
	assert_non_null(strstr(req_body(s.req[1]),
	    "<a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</a:Action>"));
	amt_free(a);
	tsrv_free(&s);
	free(c1);
	free(r1);
}

static void
test_status_duplicate(void **state)
{
	char *x = fx_load("amt/publickey/management/addcertificate.xml", NULL);
	char *p = strstr(x, "<g:ReturnValue>0</g:ReturnValue>"), *y = NULL;
	char *c1 = http_401("false"), *r1;
	static const unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
	const struct amt_error *e;
	char *handle = (char *)1;
	struct tsrv s;
	struct amt *a;

	(void)state;
	assert_non_null(p);
	*p = '\0';
	assert_true(asprintf(&y, "%s<g:ReturnValue>2058</g:ReturnValue>%s", x,
	    p + strlen("<g:ReturnValue>0</g:ReturnValue>")) > 0);
	r1 = http_chunked(200, "OK", y);
	{
		struct tsrv_resp script[] = { { c1, 0, 0 }, { r1, 0, 0 } };

		assert_int_equal(tsrv_start(&s, script, 2), 0);
		a = open_at(s.port);
		assert_int_equal(amt_add_cert(a, der, sizeof(der), &handle),
		    AMTCA_E_AMT_STATUS);
		assert_null(handle);
		assert_string_equal(amtca_errmsg(AMTCA_E_AMT_STATUS),
		    "AddCertificate failed: 2058 DUPLICATE");
		e = amt_last_error(a);
		assert_int_equal(e->return_value, AMT_PT_DUPLICATE);
		assert_int_equal(e->http_status, 200);
		tsrv_stop(&s);
		amt_free(a);
	tsrv_free(&s);
	}
	free(x); free(y); free(c1); free(r1);
}

static void
test_enumerate_two_pulls(void **state)
{
	char *en = fx_load("amt/tls/settingdata/enumerate.xml", NULL);
	char *pl = fx_load("amt/tls/settingdata/pull.xml", NULL), *p1 = NULL, *p;
	char *c1 = http_401("false"), *r1, *r2, *r3;
	struct amt_tls_setting *v = NULL;
	struct tsrv s;
	struct amt *a;
	size_t n = 0;

	(void)state;
	p = strstr(pl, "<g:EndOfSequence></g:EndOfSequence>");
	assert_non_null(p);
	*p = '\0';
	assert_true(asprintf(&p1, "%s<g:EnumerationContext>CA000000-0000-0000-0000-000000000001</g:EnumerationContext>%s",
	    pl, p + strlen("<g:EndOfSequence></g:EndOfSequence>")) > 0);
	*p = '<';
	r1 = http_chunked(200, "OK", en);
	r2 = http_chunked(200, "OK", p1);
	r3 = http_chunked(200, "OK", pl);
	{
		struct tsrv_resp script[] = { { c1, 0, 0 }, { r1, 0, 0 },
		    { r2, 0, 0 }, { r3, 0, 0 } };

		assert_int_equal(tsrv_start(&s, script, 4), 0);
		a = open_at(s.port);
		assert_int_equal(amt_tls_settings_list(a, &v, &n), 0);
		assert_int_equal(n, 4);
		assert_string_equal(v[2].instance_id, AMT_TLS_REMOTE);
		assert_string_equal(v[3].instance_id, AMT_TLS_LOCAL);
		amt_tls_settings_free(v, n);
		tsrv_stop(&s);
		assert_int_equal(s.nreq, 4);
		assert_non_null(strstr(req_body(s.req[2]),
		    "<EnumerationContext>CA000000-0000-0000-0000-000000000000</EnumerationContext>"));
		assert_non_null(strstr(req_body(s.req[3]),
		    "<EnumerationContext>CA000000-0000-0000-0000-000000000001</EnumerationContext>"));
		amt_free(a);
	tsrv_free(&s);
	}
	free(en); free(pl); free(p1); free(c1); free(r1); free(r2); free(r3);
}

static void
test_body_cap(void **state)
{
	size_t n = AMTCA_WSMAN_BODY_MAX + 4096, hl;
	char *c1 = http_401("false"), *big;
	struct amt_general g;
	struct tsrv s;
	struct amt *a;

	(void)state;
	big = malloc(n + 256);
	assert_non_null(big);
	hl = (size_t)sprintf(big, "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\n"
	    "Content-Length: %zu\r\n\r\n", n);
	memset(big + hl, ' ', n);
	big[hl + n] = '\0';
	{
		struct tsrv_resp script[] = { { c1, 0, 0 }, { big, hl + n, 0 } };

		assert_int_equal(tsrv_start(&s, script, 2), 0);
		a = open_at(s.port);
		assert_int_equal(amt_general_get(a, &g), AMTCA_E_LIMIT);
		tsrv_stop(&s);
		amt_free(a);
	tsrv_free(&s);
	}
	free(big);
	free(c1);
}

static void
test_unreachable(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct amt_general g;
	struct amt *a;
	int fd, port;

	(void)state;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	a = open_at(port);
	assert_int_equal(amt_general_get(a, &g), AMTCA_E_AMT_TRANSPORT);
	assert_int_equal(amt_last_error(a)->http_status, 0);
	assert_int_equal(amt_request_count(a), 0);
	amt_free(a);
}

static void
test_open_usage(void **state)
{
	struct amt_opts o = { .host = "amt.test", .user = "admin",
	    .password = "x", .tls = 1 };
	struct amt *a = (struct amt *)1;

	(void)state;
	/* TLS without a CA bundle or pin is refused. */
	assert_int_equal(amt_open(&o, &a), AMTCA_E_USAGE);
	assert_null(a);
	o.tls = 0;
	o.host = "evil/host";
	assert_int_equal(amt_open(&o, &a), AMTCA_E_USAGE);
	o.host = "amt.test";
	o.port = 70000;
	assert_int_equal(amt_open(&o, &a), AMTCA_E_USAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrong_password_one_attempt),
		cmocka_unit_test(test_chunked_success_then_nonce_reuse),
		cmocka_unit_test(test_expired_nonce),
		cmocka_unit_test(test_state_change_never_resent),
		cmocka_unit_test(test_fault_400),
		cmocka_unit_test(test_status_duplicate),
		cmocka_unit_test(test_enumerate_two_pulls),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_open_usage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
