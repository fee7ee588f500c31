/*
 * The job engine's rules that do not need a device: which failures are
 * retried, the credential stamp auth_failed is recorded against (changes
 * with the password file, never holds the password), the result names of
 * the contract, refusing an empty job, and (with a store but no device)
 * the service's additions: a given job id, sealed credentials fetched at
 * the device's turn, stopping a run (cancel, shutdown), and claim mode
 * (the service's nodes sharing a job's devices through the store).
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

#include "ca/store.h"
#include "common/err.h"
#include "common/util.h"
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

static void
put_device(struct store *st, const char *fqdn, const char *user,
    const char *ref)
{
	struct store_device d;

	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)fqdn;
	d.state = (char *)"pending";
	d.user = (char *)user;
	d.cred_ref = (char *)ref;
	assert_int_equal(store_device_put(st, &d), 0);
}

/* The record's (user, cred_ref) after a run; NULL user as "-". */
static void
assert_cred(struct store *st, const char *fqdn, const char *user,
    const char *ref)
{
	struct store_device *d = NULL;

	assert_int_equal(store_device_get(st, fqdn, &d), 0);
	assert_string_equal(d->user != NULL ? d->user : "-", user);
	assert_non_null(d->cred_ref);
	assert_string_equal(d->cred_ref, ref);
	store_device_free(d);
}

/*
 * What a fleet run (amtca fleet --hosts) records as a device's credential:
 * a sealed credential the API stored ("credential:NAME") is replaced only
 * by the hosts file row's own password_file, never by the command line's
 * default (--password-file); a password file in the record, or none, is
 * replaced by either.  The password files are empty, so each device fails
 * at its turn before any device is contacted.
 */
static void
test_cred_ref_kept(void **state)
{
	char dir[] = "/tmp/amtca-fleetref-XXXXXX", db[64], pw[64], pw2[64];
	struct fleet_host h[4];
	struct fleet_opts o;
	struct fleet_report rep;
	struct enroll_ctx c;
	struct store *st = NULL;
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/s.db", dir);
	snprintf(pw, sizeof(pw), "%s/pw", dir);
	snprintf(pw2, sizeof(pw2), "%s/pw2", dir);
	write_file(pw, "");
	write_file(pw2, "");
	assert_int_equal(store_open(db, 1, &st), 0);
	put_device(st, "api.example.test", NULL, "credential:site");
	put_device(st, "file.example.test", "old", "/etc/amt/old-pw");
	put_device(st, "named.example.test", NULL, "credential:site");
	memset(h, 0, sizeof(h));
	h[0].fqdn = (char *)"api.example.test";		/* default file */
	h[1].fqdn = (char *)"file.example.test";	/* default file */
	h[2].fqdn = (char *)"named.example.test";	/* the row's file */
	h[3].fqdn = (char *)"new.example.test";		/* no record yet */
	for (i = 0; i < 4; i++) {
		h[i].address = (char *)"127.0.0.1";
		h[i].user = (char *)"admin";
		h[i].password_file = pw;
	}
	h[2].password_file = pw2;
	h[2].password_file_named = 1;
	memset(&c, 0, sizeof(c));
	c.store = st;
	memset(&o, 0, sizeof(o));
	o.hosts = h;
	o.nhosts = 4;
	o.concurrency = 1;
	o.tries = 1;
	assert_int_equal(fleet_run(&c, &o, &rep), 0);
	assert_int_equal(rep.counts[FLEET_FAILED], 4);
	for (i = 0; i < 4; i++)
		assert_non_null(strstr(rep.dev[i].error, "empty"));
	fleet_report_clear(&rep);

	assert_cred(st, "api.example.test", "-", "credential:site");
	assert_cred(st, "file.example.test", "admin", pw);
	assert_cred(st, "named.example.test", "admin", pw2);
	assert_cred(st, "new.example.test", "admin", pw);

	store_close(st);
	amtca_rmtree(dir);
}

/* What the credential callback saw; it refuses, so no device is contacted. */
struct credlog {
	char asked[8][96];
	size_t n;
	struct fleet_stop *stop;
	size_t stop_after;		/* set CANCEL after this many calls */
};

static int
cred_refuse(void *ctx, const char *name, const char *fqdn, char **user,
    char **password)
{
	struct credlog *l = ctx;

	*user = NULL;
	*password = NULL;
	if (l->n < 8)
		snprintf(l->asked[l->n], sizeof(l->asked[0]), "%s/%s", name, fqdn);
	l->n++;
	if (l->stop != NULL && l->n == l->stop_after)
		atomic_store(&l->stop->stop, FLEET_STOP_CANCEL);
	return amtca_fail(AMTCA_E_DENIED, "no pending work for %s", fqdn);
}

static void
put_job(struct store *st, const char *id, const char *state,
    const struct fleet_host *h, size_t n)
{
	struct store_job j;
	struct store_job_device jd;
	size_t i;

	memset(&j, 0, sizeof(j));
	j.id = (char *)id;
	j.state = (char *)state;
	j.hosts_digest = (char *)"api:test";
	j.total = (unsigned)n;
	assert_int_equal(store_job_put(st, &j), 0);
	for (i = 0; i < n; i++) {
		memset(&jd, 0, sizeof(jd));
		jd.job_id = (char *)id;
		jd.fqdn = h[i].fqdn;
		jd.result = (char *)"pending";
		assert_int_equal(store_job_device_put(st, &jd), 0);
	}
}

static const char *
job_state(struct store *st, const char *id)
{
	static char buf[32];
	struct store_job *j = NULL;

	assert_int_equal(store_job_get(st, id, &j), 0);
	snprintf(buf, sizeof(buf), "%s", j->state);
	store_job_free(j);
	return buf;
}

static void
test_service_jobs(void **state)
{
	char dir[] = "/tmp/amtca-fleetjob-XXXXXX", db[64];
	struct fleet_host h[4];
	struct fleet_opts o;
	struct fleet_report rep;
	struct fleet_stop stop;
	struct enroll_ctx c;
	struct credlog log;
	struct store *st = NULL;
	struct store_device *d = NULL;
	struct store_job_device *jd = NULL;
	size_t njd = 0, i;
	const char *names[4] = { "a.example.test", "b.example.test",
	    "c.example.test", "d.example.test" };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/s.db", dir);
	assert_int_equal(store_open(db, 1, &st), 0);
	memset(h, 0, sizeof(h));
	for (i = 0; i < 4; i++) {
		h[i].fqdn = (char *)names[i];
		h[i].address = (char *)"127.0.0.1";
		h[i].credential = (char *)(i < 2 ? "site-a" : "site-b");
	}
	memset(&c, 0, sizeof(c));
	c.store = st;
	memset(&log, 0, sizeof(log));
	memset(&stop, 0, sizeof(stop));
	memset(&o, 0, sizeof(o));
	o.hosts = h;
	o.nhosts = 4;
	o.concurrency = 1;		/* in order: the stop lands between */
	o.tries = 1;
	o.cred_get = cred_refuse;
	o.cred_ctx = &log;
	o.stop = &stop;

	/* A job id that was never stored is refused; so is a finished one. */
	o.job_id = "0123456789abcdef0123456789abcdef";
	assert_int_equal(fleet_run(&c, &o, &rep), AMTCA_E_NOT_FOUND);
	fleet_report_clear(&rep);
	put_job(st, o.job_id, "done", h, 4);
	assert_int_equal(fleet_run(&c, &o, &rep), AMTCA_E_USAGE);
	fleet_report_clear(&rep);
	assert_int_equal(log.n, 0);

	/*
	 * The stored job runs; each device's credential is asked for by
	 * name at its turn (never read from a file), its record names the
	 * credential, and a cancel after the second device stops the run:
	 * the rest are skipped and stay pending, the job ends cancelled.
	 */
	o.job_id = "fedcba9876543210fedcba9876543210";
	put_job(st, o.job_id, "running", h, 4);
	log.stop = &stop;
	log.stop_after = 2;
	assert_int_equal(fleet_run(&c, &o, &rep), 0);
	assert_string_equal(rep.job_id, o.job_id);
	assert_int_equal(rep.stopped, FLEET_STOP_CANCEL);
	assert_int_equal(log.n, 2);
	assert_string_equal(log.asked[0], "site-a/a.example.test");
	assert_string_equal(log.asked[1], "site-a/b.example.test");
	assert_int_equal(rep.counts[FLEET_FAILED], 2);
	assert_false(rep.dev[0].skipped);
	assert_non_null(strstr(rep.dev[0].error, "no pending work"));
	assert_true(rep.dev[2].skipped);
	assert_true(rep.dev[3].skipped);
	assert_string_equal(job_state(st, o.job_id), "cancelled");
	assert_int_equal(store_job_device_list(st, o.job_id, &jd, &njd), 0);
	assert_int_equal(njd, 4);
	assert_string_equal(jd[0].result, "failed");
	assert_string_equal(jd[2].result, "pending");
	assert_string_equal(jd[3].result, "pending");
	store_job_devices_free(jd, njd);
	assert_int_equal(store_device_get(st, "a.example.test", &d), 0);
	assert_string_equal(d->cred_ref, "credential:site-a");
	store_device_free(d);
	fleet_report_clear(&rep);

	/* A shutdown leaves the job running, for the next start. */
	o.job_id = "00000000000000000000000000000001";
	put_job(st, o.job_id, "running", h, 4);
	atomic_store(&stop.stop, FLEET_STOP_SHUTDOWN);
	log.n = 0;
	log.stop = NULL;
	assert_int_equal(fleet_run(&c, &o, &rep), 0);
	assert_int_equal(rep.stopped, FLEET_STOP_SHUTDOWN);
	assert_int_equal(log.n, 0);
	for (i = 0; i < 4; i++)
		assert_true(rep.dev[i].skipped);
	assert_string_equal(job_state(st, o.job_id), "running");
	fleet_report_clear(&rep);

	/* ... and the next run of it, unstopped, finishes it. */
	atomic_store(&stop.stop, FLEET_RUN);
	assert_int_equal(fleet_run(&c, &o, &rep), 0);
	assert_int_equal(rep.stopped, FLEET_RUN);
	assert_true(rep.resumed);
	assert_int_equal(log.n, 4);
	assert_string_equal(log.asked[3], "site-b/d.example.test");
	assert_string_equal(job_state(st, o.job_id), "done");
	fleet_report_clear(&rep);

	store_close(st);
	amtca_rmtree(dir);
}

/* fleet_opts.on_claim: what was claimed, and whose lapsed claim. */
struct claimlog {
	size_t n;
	size_t took_over;
	char prev[32];
};

static void
on_claim(void *ctx, const char *fqdn, const char *prev)
{
	struct claimlog *l = ctx;

	(void)fqdn;
	l->n++;
	if (prev != NULL) {
		l->took_over++;
		snprintf(l->prev, sizeof(l->prev), "%s", prev);
	}
}

/*
 * Claim mode (the service's nodes): the run takes only the devices the
 * store hands it, leaves the ones another node claims, does not finish a
 * job another node still works on, takes a lapsed claim over, and then
 * finishes the job.
 */
static void
test_claim_mode(void **state)
{
	char dir[] = "/tmp/amtca-fleetclaim-XXXXXX", db[64];
	struct fleet_host h[4];
	struct fleet_opts o;
	struct fleet_report rep;
	struct fleet_stop stop;
	struct enroll_ctx c;
	struct credlog log;
	struct claimlog cl;
	struct store *st = NULL;
	struct store_job_device *jd = NULL;
	char *x = NULL, *y = NULL;
	size_t njd = 0, i;
	time_t now = time(NULL);
	const char *names[4] = { "a.example.test", "b.example.test",
	    "c.example.test", "d.example.test" };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/s.db", dir);
	assert_int_equal(store_open(db, 1, &st), 0);
	memset(h, 0, sizeof(h));
	for (i = 0; i < 4; i++) {
		h[i].fqdn = (char *)names[i];
		h[i].address = (char *)"127.0.0.1";
		h[i].credential = (char *)"site";
	}
	memset(&c, 0, sizeof(c));
	c.store = st;
	memset(&log, 0, sizeof(log));
	memset(&cl, 0, sizeof(cl));
	memset(&stop, 0, sizeof(stop));
	memset(&o, 0, sizeof(o));
	o.hosts = h;
	o.nhosts = 4;
	o.concurrency = 2;
	o.tries = 1;
	o.cred_get = cred_refuse;
	o.cred_ctx = &log;
	o.job_id = "c1a1c1a1c1a1c1a1c1a1c1a1c1a1c1a1";
	o.claim_owner = "me";
	o.claim_ttl_s = 30;
	o.on_claim = on_claim;
	o.progress_ctx = &cl;

	/* Without a stop control claim mode is refused. */
	assert_int_equal(fleet_run(&c, &o, &rep), AMTCA_E_USAGE);
	fleet_report_clear(&rep);
	o.stop = &stop;

	/* Another node holds two devices, one until long after now. */
	put_job(st, o.job_id, "running", h, 4);
	assert_int_equal(store_job_claim(st, o.job_id, "other", now, 3600, &x,
	    NULL), 0);
	assert_int_equal(store_job_claim(st, o.job_id, "other", now - 100, 30,
	    &y, NULL), 0);
	assert_string_equal(x, "a.example.test");
	assert_string_equal(y, "b.example.test");
	/* The lapsed one (b) and the two free ones run here; a does not. */
	assert_int_equal(fleet_run(&c, &o, &rep), 0);
	assert_int_equal(log.n, 3);
	for (i = 0; i < log.n; i++)
		assert_null(strstr(log.asked[i], "a.example.test"));
	assert_int_equal(rep.claimed, 3);
	assert_int_equal(cl.n, 3);
	assert_int_equal(cl.took_over, 1);
	assert_string_equal(cl.prev, "other");
	assert_true(rep.dev[0].skipped);
	assert_false(rep.dev[1].skipped);
	/* a is still the other node's: the job is not finished here. */
	assert_false(rep.finished);
	assert_string_equal(job_state(st, o.job_id), "running");
	fleet_report_clear(&rep);

	/* The other node finishes a (its put ends the claim), then a run here
	   finds nothing to claim and finishes the job. */
	assert_int_equal(store_job_device_list(st, o.job_id, &jd, &njd), 0);
	assert_int_equal(njd, 4);
	free(jd[0].result);
	jd[0].result = strdup("enrolled");
	assert_int_equal(store_job_device_put(st, &jd[0]), 0);
	store_job_devices_free(jd, njd);
	log.n = 0;
	assert_int_equal(fleet_run(&c, &o, &rep), 0);
	assert_int_equal(log.n, 0);
	assert_int_equal(rep.claimed, 0);
	assert_true(rep.finished);
	assert_string_equal(job_state(st, o.job_id), "done");
	fleet_report_clear(&rep);

	free(x);
	free(y);
	store_close(st);
	amtca_rmtree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transient),
		cmocka_unit_test(test_cred_stamp),
		cmocka_unit_test(test_names_and_empty_job),
		cmocka_unit_test(test_cred_ref_kept),
		cmocka_unit_test(test_service_jobs),
		cmocka_unit_test(test_claim_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
