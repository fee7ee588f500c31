/*
 * signer/auth.c: allow lists match whole labels; token buckets refuse past
 * their burst and refill with time; Basic authentication against client
 * records is rate-limited before the KDF, refuses wrong, unknown and
 * removed clients alike, and failures are logged aggregated without the
 * password.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "ca/store.h"
#include "signer/clients.h"
#include "signer/core.h"

static void
test_allow_whole_labels(void **state)
{
	static char e1[] = "example.test", e2[] = "host.other.test";
	char *allow[] = { e1, e2 };
	struct sgn_client cl;

	(void)state;
	assert_true(sgn_allow_match("example.test", "example.test"));
	assert_true(sgn_allow_match("example.test", "a.example.test"));
	assert_true(sgn_allow_match("example.test", "b.a.EXAMPLE.test"));
	assert_false(sgn_allow_match("example.test", "badexample.test"));
	assert_false(sgn_allow_match("example.test", ".example.test"));
	assert_false(sgn_allow_match("example.test", "example.test.evil"));
	assert_false(sgn_allow_match("example.test", "xample.test"));
	assert_false(sgn_allow_match("a.example.test", "example.test"));
	assert_false(sgn_allow_match("", "example.test"));
	assert_false(sgn_allow_match(NULL, "example.test"));

	memset(&cl, 0, sizeof(cl));
	assert_false(sgn_core_allows(&cl, "example.test"));	/* empty list */
	cl.allow = allow;
	cl.nallow = 2;
	assert_true(sgn_core_allows(&cl, "www.example.test"));
	assert_true(sgn_core_allows(&cl, "host.other.test"));
	assert_true(sgn_core_allows(&cl, "a.host.other.test"));
	assert_false(sgn_core_allows(&cl, "other.test"));
	assert_false(sgn_core_allows(&cl, "badhost.other.test"));
	assert_false(sgn_core_allows(&cl, ""));
}

static void
test_allow_check(void **state)
{
	static const char *const doms[] = { "example.test" };
	struct ca_policy p;
	char out[AMTCA_FQDN_MAX + 1];

	(void)state;
	ca_policy_init(&p);
	p.domains = doms;
	p.ndomains = 1;
	assert_int_equal(sgn_allow_check("A.Example.Test", &p, out), 0);
	assert_string_equal(out, "a.example.test");
	assert_int_equal(sgn_allow_check("example.test", &p, out), 0);
	assert_int_not_equal(sgn_allow_check("example.org", &p, out), 0);
	assert_int_not_equal(sgn_allow_check("*.example.test", &p, out), 0);
	assert_int_not_equal(sgn_allow_check("bad_name.example.test", &p, out), 0);
}

static void
test_ratelimit(void **state)
{
	struct sgn_ratelimit *rl = NULL;
	unsigned long long t = 1000000;
	int i;

	(void)state;
	/* 3 at once, then one every 20 s (3 a minute). */
	assert_int_equal(sgn_ratelimit_new(3, 3, 4, &rl), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(sgn_ratelimit_take(rl, "a", t), 0);
	assert_int_equal(sgn_ratelimit_take(rl, "a", t), AMTCA_E_RATE);
	assert_int_equal(sgn_ratelimit_take(rl, "a", t + 19999), AMTCA_E_RATE);
	/* Keys are independent. */
	assert_int_equal(sgn_ratelimit_take(rl, "b", t), 0);
	/* One token back after 20 s, and only one. */
	assert_int_equal(sgn_ratelimit_take(rl, "a", t + 20000), 0);
	assert_int_equal(sgn_ratelimit_take(rl, "a", t + 20001), AMTCA_E_RATE);
	/* Refill stops at the burst. */
	t += 3600 * 1000;
	for (i = 0; i < 3; i++)
		assert_int_equal(sgn_ratelimit_take(rl, "a", t), 0);
	assert_int_equal(sgn_ratelimit_take(rl, "a", t), AMTCA_E_RATE);
	/* Full table: "b" refilled long ago and is forgotten to make room,
	 * while "a", still empty, keeps its state. */
	assert_int_equal(sgn_ratelimit_take(rl, "c", t), 0);
	assert_int_equal(sgn_ratelimit_take(rl, "d", t), 0);
	assert_int_equal(sgn_ratelimit_size(rl), 4);
	assert_int_equal(sgn_ratelimit_take(rl, "e", t), 0);
	assert_int_equal(sgn_ratelimit_size(rl), 4);
	assert_int_equal(sgn_ratelimit_take(rl, "a", t), AMTCA_E_RATE);
	/* Never more than max keys, whatever a flood of names does. */
	for (i = 0; i < 100; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%d", i);
		assert_int_equal(sgn_ratelimit_take(rl, k, t + (unsigned)i), 0);
	}
	assert_int_equal(sgn_ratelimit_size(rl), 4);
	sgn_ratelimit_free(rl);
	assert_int_equal(sgn_ratelimit_new(0, 1, 1, &rl), AMTCA_E_USAGE);
}

struct fx {
	char dir[64];
	char db[128];
	struct store *s;
	struct home h;
	struct sgn_core c;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_client rec;
	char *phc = NULL;

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_auth.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/amtca.db", f->dir);
	if (store_open(f->db, 1, &f->s) != 0)
		return -1;
	f->h.store = f->h.state = f->s;
	f->c.h = &f->h;
	f->c.local_name = (char *)"op@host";
	if (sgn_password_hash("correct horse", &phc) != 0)
		return -1;
	memset(&rec, 0, sizeof(rec));
	rec.name = (char *)"est1";
	rec.roles = STORE_CLIENT_EST;
	rec.allow = (char *)"example.test b.example.org";
	rec.pwhash = phc;
	if (store_client_add(f->s, &rec) != 0)
		return -1;
	rec.name = (char *)"gone";
	if (store_client_add(f->s, &rec) != 0 ||
	    store_client_remove(f->s, "gone", 0) != 0)
		return -1;
	rec.name = (char *)"adm";
	rec.roles = STORE_CLIENT_ADMIN;
	rec.allow = NULL;
	if (store_client_add(f->s, &rec) != 0)
		return -1;
	free(phc);
	if (sgn_core_auth_init(&f->c) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	sgn_core_auth_free(&f->c);
	store_close(f->s);
	amtca_rmtree(f->dir);
	free(f);
	return 0;
}

static int
basic(struct fx *f, const char *user, const char *pw, const char *peer,
    struct sgn_client *cl)
{
	struct sgn_who w;

	memset(&w, 0, sizeof(w));
	w.kind = SGN_WHO_BASIC;
	w.user = user;
	w.password = pw;
	w.peer = peer;
	return sgn_core_auth(&f->c, &w, cl);
}

static void
clear(struct sgn_client *cl)
{
	size_t i;

	free(cl->name);
	free(cl->serial);
	for (i = 0; i < cl->nallow; i++)
		free(cl->allow[i]);
	free(cl->allow);
	memset(cl, 0, sizeof(*cl));
}

static void
test_password_hash_format(void **state)
{
	char *a = NULL, *b = NULL, want[64];

	(void)state;
	assert_int_equal(sgn_password_hash("pw", &a), 0);
	assert_int_equal(sgn_password_hash("pw", &b), 0);
	snprintf(want, sizeof(want), "$argon2id$v=19$m=%d,t=%d,p=%d$",
	    AMTCA_ARGON2_M_KIB, AMTCA_ARGON2_T, AMTCA_ARGON2_P);
	assert_memory_equal(a, want, strlen(want));
	assert_string_not_equal(a, b);		/* fresh salt each time */
	assert_null(strstr(a, "pw$"));
	free(a);
	free(b);
	assert_int_equal(sgn_password_hash("", &a), AMTCA_E_USAGE);
	assert_null(a);
}

static void
test_basic_auth(void **state)
{
	struct fx *f = *state;
	struct sgn_client cl;
	struct sgn_who w;

	assert_int_equal(basic(f, "est1", "correct horse", "192.0.2.1", &cl), 0);
	assert_string_equal(cl.name, "est1");
	assert_int_equal(cl.roles, SGN_ROLE_EST);
	assert_null(cl.serial);
	assert_int_equal(cl.nallow, 2);
	assert_string_equal(cl.allow[0], "example.test");
	assert_string_equal(cl.allow[1], "b.example.org");
	assert_true(sgn_core_allows(&cl, "www.example.test"));
	assert_false(sgn_core_allows(&cl, "badexample.test"));
	clear(&cl);

	/* Wrong password, unknown, removed, wrong role: all the same 401,
	 * and nothing handed back. */
	assert_int_equal(basic(f, "est1", "wrong", "192.0.2.1", &cl),
	    AMTCA_E_AUTH);
	assert_null(cl.name);
	assert_int_equal(basic(f, "nobody", "correct horse", "192.0.2.1", &cl),
	    AMTCA_E_AUTH);
	assert_int_equal(basic(f, "gone", "correct horse", "192.0.2.1", &cl),
	    AMTCA_E_AUTH);
	assert_int_equal(basic(f, "adm", "correct horse", "192.0.2.1", &cl),
	    AMTCA_E_AUTH);
	assert_int_equal(basic(f, "est1", NULL, "192.0.2.1", &cl), AMTCA_E_AUTH);

	/* LOCAL is the signer's starter; CERT without a chain never passes. */
	memset(&w, 0, sizeof(w));
	w.kind = SGN_WHO_LOCAL;
	assert_int_equal(sgn_core_auth(&f->c, &w, &cl), 0);
	assert_string_equal(cl.name, "op@host");
	assert_int_equal(cl.roles, SGN_ROLE_LOCAL);
	clear(&cl);
	w.kind = SGN_WHO_CERT;
	assert_int_equal(sgn_core_auth(&f->c, &w, &cl), AMTCA_E_AUTH);
}

/* The name's bucket empties, then even the right password is refused
 * (429) without running the KDF; another name from another address is
 * unaffected, and one address cannot spray names past its own bucket.
 * Limits of 3 and 1 a minute, so that slow KDFs (valgrind) refill nothing
 * that matters. */
static void
test_basic_rate_limited_before_kdf(void **state)
{
	struct fx *f = *state;
	struct sgn_client cl;
	char peer[32], name[32];
	int i;

	assert_int_equal(sgn_core_auth_limits(&f->c, 3, 1, 4, 1), 0);
	for (i = 0; i < 3; i++) {
		snprintf(peer, sizeof(peer), "198.51.100.%d", i);
		assert_int_equal(basic(f, "est1", "wrong", peer, &cl),
		    AMTCA_E_AUTH);
	}
	/* The right password from a fresh address: refused before the KDF. */
	assert_int_equal(basic(f, "est1", "correct horse", "203.0.113.9", &cl),
	    AMTCA_E_RATE);
	assert_null(cl.name);
	/* Another client is not affected by est1's bucket. */
	assert_int_equal(basic(f, "nobody", "x", "203.0.113.10", &cl),
	    AMTCA_E_AUTH);
	/* One address, many names: its own bucket (4) runs out. */
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		assert_int_equal(basic(f, name, "x", "203.0.113.7", &cl),
		    AMTCA_E_AUTH);
	}
	assert_int_equal(basic(f, "n9", "x", "203.0.113.7", &cl), AMTCA_E_RATE);
	assert_int_equal(sgn_core_auth_limits(&f->c, 0, 1, 1, 1), AMTCA_E_USAGE);
}

/* Failures are logged once per client per minute with a count, never
 * with the password. */
static void
test_failures_logged_aggregated(void **state)
{
	struct fx *f = *state;
	struct sgn_client cl;
	char path[160], buf[4096];
	int fd, saved, i;
	ssize_t n;
	FILE *fp;
	long minute = (long)(time(NULL) / 60);

	snprintf(path, sizeof(path), "%s/stderr", f->dir);
	fflush(stderr);
	saved = dup(2);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, 2);
	close(fd);
	for (i = 0; i < 3; i++)
		assert_int_equal(basic(f, "est1", "hunter2-secret", "192.0.2.5",
		    &cl), AMTCA_E_AUTH);
	assert_int_equal(basic(f, "nobody", "hunter2-secret", "192.0.2.5",
	    &cl), AMTCA_E_AUTH);
	/* Nothing yet: the minute has not turned (unless it just did). */
	fflush(stderr);
	fp = fopen(path, "r");
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	if (minute != (long)(time(NULL) / 60)) {
		dup2(saved, 2);
		close(saved);
		skip();
	}
	assert_int_equal(n, 0);
	sgn_core_auth_free(&f->c);		/* flushes */
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fp = fopen(path, "r");
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "event=auth_fail client=est1 count=3"));
	assert_non_null(strstr(buf, "event=auth_fail client=nobody count=1"));
	assert_null(strstr(buf, "hunter2"));
	/* one line each */
	assert_null(strstr(strstr(buf, "client=est1") + 1, "client=est1"));
	assert_int_equal(sgn_core_auth_init(&f->c), 0);	/* for teardown */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allow_whole_labels),
		cmocka_unit_test(test_allow_check),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_password_hash_format),
		cmocka_unit_test_setup_teardown(test_basic_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_basic_rate_limited_before_kdf,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures_logged_aggregated,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
