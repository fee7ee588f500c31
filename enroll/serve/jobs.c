/*
 * The service's job runner (enroll/serve/api.h, serve.h).
 *
 * A job is stored before it is queued: its row (state "running"), a row
 * per device in it (result "pending"), and each device's record naming
 * its sealed credential (cred_ref "credential:NAME").  One runner thread
 * takes jobs in order and runs each with the fleet engine (fleet_run with
 * the job's id), so everything the engine guarantees holds here too: a
 * device's steps reconcile, the per-device lease keeps other processes
 * off it, and a job left "running" by a killed service is continued on
 * the next start from what its rows say (finished devices are carried,
 * the rest run again).  One job at a time: a job's `concurrency` (capped)
 * is what runs in parallel.
 *
 * Several nodes (docs/serve.md, "Several nodes"): the engine runs in claim
 * mode, taking the job's devices one by one from the store as this node
 * (serve_node()), so every node running the job shares its devices; when
 * idle, the runner polls the store every AMTCA_SERVE_JOB_POLL_MS for
 * running jobs with a claimable device (submitted elsewhere, or left by a
 * node that died) and runs them too.
 *
 * Stopping: DELETE sets FLEET_STOP_CANCEL on the running job (no further
 * device, AMT calls in flight aborted after AMTCA_API_CANCEL_GRACE_MS);
 * SIGTERM sets FLEET_STOP_SHUTDOWN with the caller's deadline, which
 * leaves the job "running" so the next start continues it.
 *
 * One service per process, so the runner's state is this file's.
 */
#include "enroll/serve/api.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/fleet.h"
#include "enroll/home.h"
#include "enroll/lease.h"
#include "enroll/serve/serve.h"

struct qjob {
	char *id;
	unsigned concurrency;		/* 0: the default */
	int reconcile;
	int resume;			/* left running by a stopped service:
					   its failed devices run again */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct serve *s;
	pthread_t th;
	int started;			/* the thread runs */
	int stopping;			/* api_jobs_stop() called */
	struct qjob q[AMTCA_API_QUEUE_MAX];
	size_t nq;
	char *current;			/* the job fleet_run() has, or NULL */
	int current_reconcile;
	int reconciling;		/* api_reconcile() is storing one */
	struct fleet_stop stop;		/* the current run's */
} R = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* The engine's view: the operational state, and the signer process. */
static void
engine_ctx(struct serve *s, struct enroll_ctx *c)
{
	*c = serve_home(s)->engine;
	c->store = serve_home(s)->state;
	c->sgn = serve_sgn(s);
	/* A device of a node that died is free when its claim is. */
	c->lease_ttl_s = serve_claim_ttl(s);
}

/* fleet_cred_fn: the sealed credential, from the signer, at the turn. */
static int
cred_get(void *ctx, const char *name, const char *fqdn, char **user,
    char **password)
{
	return sgn_cred_get(serve_sgn(ctx), name, fqdn, user, password);
}

/*
 * fleet_stamp_fn: what an auth_failed is recorded against: the credential's
 * name and when it was last replaced, so `amtca credential add` with a new
 * password lets the device be tried again (never the password or a hash).
 */
static int
cred_stamp(void *ctx, const char *name, char **stamp)
{
	struct store_cred *c = NULL;
	int r;

	*stamp = NULL;
	if ((r = store_cred_get(serve_home(ctx)->state, name, &c)) != 0 &&
	    r != AMTCA_E_NOT_FOUND)
		return r;
	amtca_err_clear();
	r = asprintf(stamp, "credential:%s:%lld", name,
	    c != NULL ? (long long)c->updated_at : 0LL);
	store_cred_free(c);
	if (r == -1) {
		*stamp = NULL;
		return AMTCA_E_NOMEM;
	}
	return 0;
}

static void
progress(void *ctx, const struct fleet_progress *p)
{
	if (p->last == NULL)
		return;
	serve_log(ctx, "job_device", "job=%s fqdn=%s result=%s done=%zu "
	    "total=%zu%s%s", R.current != NULL ? R.current : "-", p->last->fqdn,
	    fleet_result_name(p->last->result), p->done, p->total,
	    p->last->error != NULL ? " error=" : "",
	    p->last->error != NULL ? "recorded" : "");
}

/* "credential:NAME" -> NAME (borrowed), else NULL. */
static const char *
cred_name_of(const char *ref)
{
	const char *pfx = "credential:";

	if (ref == NULL || strncmp(ref, pfx, strlen(pfx)) != 0)
		return NULL;
	return ref + strlen(pfx);
}

/* fleet_opts.on_claim: one line per claim, naming a takeover. */
static void
on_claim(void *ctx, const char *fqdn, const char *prev)
{
	char who[200];

	if (prev == NULL) {
		serve_log(ctx, "claim", "job=%s fqdn=%s", R.current != NULL ?
		    R.current : "-", fqdn);
		return;
	}
	devlock_owner_describe(prev, who, sizeof(who));
	serve_log(ctx, "claim", "job=%s fqdn=%s expired=1 taken_over_from=\"%s\"",
	    R.current != NULL ? R.current : "-", fqdn, who);
}

/*
 * A job's hosts from its rows and the devices' records.  `resume`: the job
 * was left running by a stopped service, whose failed devices run again.
 */
static int
job_hosts(struct store *st, const char *id, int resume,
    struct fleet_host **out, size_t *n)
{
	struct store_job_device *jd = NULL;
	struct store_device *d = NULL;
	struct fleet_host *h = NULL;
	const char *name;
	size_t njd = 0, i, k = 0;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*n = 0;
	if ((r = store_job_device_list(st, id, &jd, &njd)) != 0) {
		ret = r;
		goto out;
	}
	if (njd > 0 && (h = calloc(njd, sizeof(*h))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < njd; i++) {
		/*
		 * A device this job failed earlier (a resumed job) is to be
		 * run again: pending again, which is also what lets the signer
		 * open its credential (signer/cred.c: work pending).
		 */
		if (resume && jd[i].result != NULL &&
		    strcmp(jd[i].result, "failed") == 0) {
			free(jd[i].result);
			if ((jd[i].result = strdup("pending")) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			if ((r = store_job_device_put(st, &jd[i])) != 0) {
				ret = r;
				goto out;
			}
		}
		if ((r = store_device_get(st, jd[i].fqdn, &d)) != 0) {
			ret = r;
			goto out;
		}
		h[k].line = (unsigned)k + 1;
		h[k].port = d->port;
		h[k].tls_port = d->tls_port;
		if (d->tls_pin != NULL && d->tls_pin[0] != '\0' &&
		    cred_pin_parse(d->tls_pin, h[k].tls_pin) == 0)
			h[k].has_pin = 1;
		if ((h[k].fqdn = strdup(d->fqdn)) == NULL ||
		    (d->address != NULL && d->address[0] != '\0' &&
		    (h[k].address = strdup(d->address)) == NULL)) {
			k++;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		/*
		 * The record names the credential; a device an operator's
		 * `amtca fleet` ran since names its password file instead,
		 * which the engine then reads (and fails on, if the service
		 * may not read it).
		 */
		if ((name = cred_name_of(d->cred_ref)) != NULL) {
			if ((h[k].credential = strdup(name)) == NULL) {
				k++;
				ret = AMTCA_E_NOMEM;
				goto out;
			}
		} else if ((d->cred_ref != NULL &&
		    (h[k].password_file = strdup(d->cred_ref)) == NULL) ||
		    (d->user != NULL && (h[k].user = strdup(d->user)) == NULL)) {
			k++;
			ret = AMTCA_E_NOMEM;
			goto out;
		} else if (h[k].password_file == NULL &&
		    (h[k].password_file = strdup("/nonexistent")) == NULL) {
			k++;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		k++;
		store_device_free(d);
		d = NULL;
	}
	*out = h;
	*n = k;
	h = NULL;
	k = 0;
	ret = 0;
out:
	hosts_free(h, k);
	store_device_free(d);
	store_job_devices_free(jd, njd);
	return ret;
}

static void
job_mark(struct store *st, const char *id, const char *state)
{
	struct store_job *j = NULL;

	if (store_job_get(st, id, &j) != 0)
		return;
	free(j->state);
	if ((j->state = strdup(state)) != NULL) {
		j->finished_at = time(NULL);
		(void)!store_job_put(st, j);
	}
	store_job_free(j);
}

/*
 * Claims a killed predecessor of this node (a process of this host that
 * is gone) left on job `id`: free at once, as its device leases are
 * (enroll/lease.h), rather than after they lapse.
 */
static void
release_dead_claims(struct serve *s, const char *id)
{
	struct store *st = serve_home(s)->state;
	char **own = NULL, who[200];
	size_t n = 0, i;

	if (store_job_claim_owners(st, id, &own, &n) != 0) {
		amtca_err_clear();
		return;
	}
	for (i = 0; i < n; i++) {
		if (devlock_owner_dead(own[i]) &&
		    store_job_claim_release(st, id, own[i], NULL) == 0) {
			devlock_owner_describe(own[i], who, sizeof(who));
			serve_log(s, "claim", "job=%s released=1 owner=\"%s\" "
			    "reason=\"its process is gone\"", id, who);
		}
		free(own[i]);
	}
	free(own);
}

static void
run_one(struct serve *s, struct qjob *q)
{
	struct enroll_ctx c;
	struct fleet_opts fo;
	struct fleet_report rep;
	struct fleet_host *hosts = NULL;
	struct store *st = serve_home(s)->state;
	size_t n = 0;
	int r;

	memset(&rep, 0, sizeof(rep));
	if (q->resume)
		release_dead_claims(s, q->id);
	if ((r = job_hosts(st, q->id, q->resume, &hosts, &n)) != 0 || n == 0) {
		serve_log(s, "job_error", "job=%s error=\"%s\"", q->id,
		    r != 0 ? amtca_errmsg(r) : "no devices");
		if (r == 0 || r == AMTCA_E_NOT_FOUND)
			job_mark(st, q->id, "done");
		goto out;
	}
	engine_ctx(s, &c);
	memset(&fo, 0, sizeof(fo));
	fo.hosts = hosts;
	fo.nhosts = n;
	fo.concurrency = q->concurrency > 0 ? q->concurrency :
	    AMTCA_API_CONCURRENCY_DEFAULT;
	fo.renew_days = AMTCA_RENEW_WINDOW_DAYS;
	fo.progress = progress;
	fo.progress_ctx = s;
	fo.job_id = q->id;
	fo.stop = &R.stop;
	fo.cred_get = cred_get;
	fo.cred_stamp = cred_stamp;
	fo.cred_ctx = s;
	/* Devices one by one from the store, shared with every other node
	   running this job. */
	fo.claim_owner = serve_node(s);
	fo.claim_ttl_s = serve_claim_ttl(s);
	fo.on_claim = on_claim;
	serve_log(s, "job_start", "job=%s devices=%zu concurrency=%u%s", q->id,
	    n, fo.concurrency, q->reconcile ? " reconcile=1" : "");
	if ((r = fleet_run(&c, &fo, &rep)) != 0) {
		serve_log(s, "job_error", "job=%s error=\"%s\"", q->id,
		    amtca_errmsg(r));
		goto out;
	}
	/* state: "done" only from the node that finished the job's last
	   device; "shared" when other nodes still hold claims on it. */
	serve_log(s, "job_end", "job=%s state=%s resumed=%d claimed=%zu "
	    "enrolled=%zu renewed=%zu unchanged=%zu failed=%zu seconds=%.3f",
	    q->id, rep.stopped == FLEET_STOP_CANCEL ? "cancelled" :
	    rep.stopped == FLEET_STOP_SHUTDOWN ? "running" :
	    rep.finished ? "done" : "shared", rep.resumed, rep.claimed,
	    rep.counts[FLEET_ENROLLED], rep.counts[FLEET_RENEWED],
	    rep.counts[FLEET_UNCHANGED], rep.counts[FLEET_FAILED], rep.seconds);
out:
	fleet_report_clear(&rep);
	hosts_free(hosts, n);
}

/* Wait on R.cv (R.mu held) for at most AMTCA_SERVE_JOB_POLL_MS. */
static int
poll_wait(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += AMTCA_SERVE_JOB_POLL_MS / 1000;
	ts.tv_nsec += (AMTCA_SERVE_JOB_POLL_MS % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_cond_timedwait(&R.cv, &R.mu, &ts);
}

static int enqueue(const char *id, unsigned concurrency, int reconcile,
    int resume);
static unsigned job_concurrency(const char *digest);

/*
 * Every node runs every job: the running jobs with a device nobody claims
 * (submitted to another node, or whose claims lapsed with a node that
 * died) are queued here as if submitted to this one.
 */
static void
poll_store(struct serve *s)
{
	struct store *st = serve_home(s)->state;
	struct store_job *j = NULL;
	char **ids = NULL;
	size_t n = 0, i, k;
	int queued;

	if (store_job_claimable(st, time(NULL), &ids, &n) != 0) {
		amtca_err_clear();
		return;
	}
	for (i = 0; i < n; i++) {
		pthread_mutex_lock(&R.mu);
		queued = R.stopping || (R.current != NULL &&
		    strcmp(R.current, ids[i]) == 0);
		for (k = 0; k < R.nq && !queued; k++)
			queued = strcmp(R.q[k].id, ids[i]) == 0;
		pthread_mutex_unlock(&R.mu);
		if (queued || store_job_get(st, ids[i], &j) != 0) {
			amtca_err_clear();
			continue;
		}
		pthread_mutex_lock(&R.mu);
		if (enqueue(ids[i], job_concurrency(j->hosts_digest),
		    j->hosts_digest != NULL &&
		    strncmp(j->hosts_digest, "reconcile:", 10) == 0, 0) == 0)
			serve_log(s, "job_pickup", "job=%s", ids[i]);
		pthread_mutex_unlock(&R.mu);
		store_job_free(j);
		j = NULL;
	}
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static void *
runner(void *arg)
{
	struct serve *s = arg;
	struct qjob q;

	pthread_mutex_lock(&R.mu);
	for (;;) {
		while (R.nq == 0 && !R.stopping) {
			if (poll_wait() == ETIMEDOUT) {
				pthread_mutex_unlock(&R.mu);
				poll_store(s);
				pthread_mutex_lock(&R.mu);
			}
		}
		if (R.stopping)
			break;
		q = R.q[0];
		memmove(&R.q[0], &R.q[1], (R.nq - 1) * sizeof(R.q[0]));
		R.nq--;
		R.current = q.id;
		R.current_reconcile = q.reconcile;
		atomic_store(&R.stop.stop, FLEET_RUN);
		atomic_store(&R.stop.abort_at_ms, 0);
		pthread_mutex_unlock(&R.mu);

		run_one(s, &q);

		pthread_mutex_lock(&R.mu);
		R.current = NULL;
		R.current_reconcile = 0;
		free(q.id);
		pthread_cond_broadcast(&R.cv);
	}
	pthread_mutex_unlock(&R.mu);
	return NULL;
}

/* Queue a stored job; R.mu held. */
static int
enqueue(const char *id, unsigned concurrency, int reconcile, int resume)
{
	char *dup;

	if (R.stopping)
		return amtca_fail(AMTCA_E_USAGE, "the service is stopping");
	if (R.nq >= AMTCA_API_QUEUE_MAX)
		return amtca_fail(AMTCA_E_RATE, "%d jobs are waiting already",
		    AMTCA_API_QUEUE_MAX);
	if ((dup = strdup(id)) == NULL)
		return AMTCA_E_NOMEM;
	R.q[R.nq].id = dup;
	R.q[R.nq].concurrency = concurrency;
	R.q[R.nq].reconcile = reconcile;
	R.q[R.nq].resume = resume;
	R.nq++;
	pthread_cond_broadcast(&R.cv);
	return 0;
}

/*
 * The device's record as the job needs it: what the request says (address,
 * ports, pin, credential), the engine's fields as they are.
 */
static int
record_device(struct store *st, const struct fleet_host *h)
{
	struct store_device *cur = NULL, d;
	char *ref = NULL, *pin = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = store_device_get(st, h->fqdn, &cur)) != 0 &&
	    r != AMTCA_E_NOT_FOUND) {
		ret = r;
		goto out;
	}
	amtca_err_clear();
	memset(&d, 0, sizeof(d));
	if (cur != NULL)
		d = *cur;		/* borrowed */
	else {
		d.fqdn = h->fqdn;
		d.state = (char *)"pending";
	}
	d.address = h->address != NULL ? h->address : d.address;
	d.port = h->port;
	d.tls_port = h->tls_port;
	d.user = NULL;			/* kept: the credential has its own */
	if (asprintf(&ref, "credential:%s", h->credential) == -1) {
		ref = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	d.cred_ref = ref;
	if (h->has_pin && (r = amtca_hex_encode(h->tls_pin, 32, &pin)) != 0) {
		ret = r;
		goto out;
	}
	d.tls_pin = pin != NULL ? pin : (char *)"";
	d.updated_at = 0;
	ret = store_device_put(st, &d);
out:
	free(ref);
	free(pin);
	store_device_free(cur);
	return ret;
}

/* Store a job and its devices; *id malloc'd. */
static int
job_store(struct store *st, const struct fleet_host *hosts, size_t n,
    int reconcile, unsigned concurrency, char **id)
{
	struct store_job j;
	struct store_job_device jd;
	unsigned char rnd[16];
	char *jid = NULL, *digest = NULL;
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	*id = NULL;
	if ((r = amtca_random(rnd, sizeof(rnd))) != 0 ||
	    (r = amtca_hex_encode(rnd, sizeof(rnd), &jid)) != 0) {
		ret = r;
		goto out;
	}
	/*
	 * Never the digest of a hosts file, so `amtca fleet` never takes the
	 * job; it says what kind of job this is and its concurrency, which a
	 * resumed job keeps (job_concurrency()).
	 */
	if (asprintf(&digest, "%s:%s:c=%u", reconcile ? "reconcile" : "api",
	    jid, concurrency) == -1) {
		digest = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memset(&j, 0, sizeof(j));
	j.id = jid;
	j.state = (char *)"running";
	j.hosts_digest = digest;
	j.total = (unsigned)n;
	if ((r = store_job_put(st, &j)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = record_device(st, &hosts[i])) != 0) {
			ret = r;
			goto out;
		}
		memset(&jd, 0, sizeof(jd));
		jd.job_id = jid;
		jd.fqdn = hosts[i].fqdn;
		jd.result = (char *)"pending";
		if ((r = store_job_device_put(st, &jd)) != 0) {
			ret = r;
			goto out;
		}
	}
	*id = jid;
	jid = NULL;
	ret = 0;
out:
	if (jid != NULL && ret != 0)
		job_mark(st, jid, "cancelled");	/* a half-stored job never runs */
	free(jid);
	free(digest);
	return ret;
}

int
api_job_submit(struct serve *s, const struct fleet_host *hosts, size_t n,
    unsigned concurrency, char **id)
{
	struct store *st = serve_home(s)->state;
	int r, ret = AMTCA_E_INTERNAL;

	*id = NULL;
	/* Refuse early (same refusal as enqueue's, nothing stored)... */
	pthread_mutex_lock(&R.mu);
	r = R.stopping || R.nq >= AMTCA_API_QUEUE_MAX ? enqueue("", 0, 0, 0) :
	    0;
	pthread_mutex_unlock(&R.mu);
	if (r != 0) {
		ret = r;
		goto out;
	}
	/*
	 * ... then store without holding the runner's lock (a durable write
	 * per row).  Killed here, the job is "running" and the next start
	 * runs it; a DELETE of it before it is queued leaves it cancelled.
	 */
	if ((r = job_store(st, hosts, n, 0, concurrency, id)) != 0) {
		ret = r;
		goto out;
	}
	pthread_mutex_lock(&R.mu);
	r = enqueue(*id, concurrency, 0, 0);
	pthread_mutex_unlock(&R.mu);
	if (r != 0) {
		job_mark(st, *id, "cancelled");
		free(*id);
		*id = NULL;
		ret = r;
		goto out;
	}
	ret = 0;
out:
	return ret;
}

int
api_job_cancel(struct serve *s, const char *id, int *cancelling)
{
	struct store *st = serve_home(s)->state;
	struct store_job *j = NULL;
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	*cancelling = 0;
	pthread_mutex_lock(&R.mu);
	if ((r = store_job_get(st, id, &j)) != 0) {
		ret = r;
		goto out;
	}
	if (R.current != NULL && strcmp(R.current, id) == 0) {
		if (atomic_load(&R.stop.stop) == FLEET_RUN) {
			atomic_store(&R.stop.abort_at_ms, amtca_now_ms() +
			    AMTCA_API_CANCEL_GRACE_MS);
			atomic_store(&R.stop.stop, FLEET_STOP_CANCEL);
			serve_log(s, "job_cancel", "job=%s running=1", id);
		}
		*cancelling = 1;
		ret = 0;
		goto out;
	}
	for (i = 0; i < R.nq; i++)
		if (strcmp(R.q[i].id, id) == 0) {
			free(R.q[i].id);
			memmove(&R.q[i], &R.q[i + 1], (R.nq - i - 1) *
			    sizeof(R.q[0]));
			R.nq--;
			break;
		}
	/* Waiting (or left "running" by a stopped service): ends here. */
	if (strcmp(j->state, "running") == 0) {
		job_mark(st, id, "cancelled");
		serve_log(s, "job_cancel", "job=%s running=0", id);
	}
	ret = 0;
out:
	pthread_mutex_unlock(&R.mu);
	store_job_free(j);
	return ret;
}

int
api_job_cancelling(const char *id)
{
	int yes;

	pthread_mutex_lock(&R.mu);
	yes = R.current != NULL && strcmp(R.current, id) == 0 &&
	    atomic_load(&R.stop.stop) == FLEET_STOP_CANCEL;
	pthread_mutex_unlock(&R.mu);
	return yes;
}

/* The concurrency job_store() recorded (0: the default). */
static unsigned
job_concurrency(const char *digest)
{
	const char *p = digest != NULL ? strstr(digest, ":c=") : NULL;
	unsigned long v;
	char *end = NULL;

	if (p == NULL)
		return 0;
	v = strtoul(p + 3, &end, 10);
	if (end == p + 3 || *end != '\0' || v > AMTCA_API_CONCURRENCY_MAX)
		return 0;
	return (unsigned)v;
}

int
api_jobs_start(struct serve *s)
{
	struct store *st = serve_home(s)->state;
	struct store_job *jobs = NULL;
	size_t nj = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&R.mu);
	if (R.started) {
		ret = 0;
		goto out;
	}
	R.s = s;
	R.stopping = 0;
	/*
	 * Jobs a killed (or stopped) service left running, oldest first:
	 * fleet_run() continues each from its rows.
	 */
	if ((r = store_job_list(st, &jobs, &nj)) != 0) {
		ret = r;
		goto out;
	}
	for (i = nj; i-- > 0;) {
		if (strcmp(jobs[i].state, "running") != 0)
			continue;
		if ((r = enqueue(jobs[i].id,
		    job_concurrency(jobs[i].hosts_digest),
		    jobs[i].hosts_digest != NULL &&
		    strncmp(jobs[i].hosts_digest, "reconcile:", 10) == 0,
		    1)) != 0) {
			serve_log(s, "job_error", "job=%s resume=1 error=\"%s\"",
			    jobs[i].id, amtca_errmsg(r));
			continue;
		}
		serve_log(s, "job_resume", "job=%s", jobs[i].id);
	}
	if ((r = pthread_create(&R.th, NULL, runner, s)) != 0) {
		ret = amtca_fail(AMTCA_E_NOMEM, "cannot start the job runner: %s",
		    strerror(r));
		goto out;
	}
	R.started = 1;
	ret = 0;
out:
	pthread_mutex_unlock(&R.mu);
	store_jobs_free(jobs, nj);
	return ret;
}

void
api_jobs_stop(struct serve *s, long deadline_ms)
{
	struct timespec ts, now;
	long long t0 = amtca_now_ms(), abort_at, join_by, left;
	size_t i;
	int r;

	/* Calls are aborted first, so that the engine can record each device
	 * before the deadline; what is left of it is for the join. */
	abort_at = t0 + (deadline_ms > 3000 ? deadline_ms - 2000 :
	    deadline_ms / 2);
	join_by = t0 + (deadline_ms > 1000 ? deadline_ms - 500 : deadline_ms);
	pthread_mutex_lock(&R.mu);
	R.stopping = 1;
	if (R.current != NULL) {
		if (atomic_load(&R.stop.stop) == FLEET_RUN)
			atomic_store(&R.stop.stop, FLEET_STOP_SHUTDOWN);
		if (atomic_load(&R.stop.abort_at_ms) == 0 ||
		    atomic_load(&R.stop.abort_at_ms) > abort_at)
			atomic_store(&R.stop.abort_at_ms, abort_at);
	}
	/* Waiting jobs stay "running" in the store: the next start runs them. */
	for (i = 0; i < R.nq; i++)
		free(R.q[i].id);
	R.nq = 0;
	pthread_cond_broadcast(&R.cv);
	pthread_mutex_unlock(&R.mu);
	if (!R.started)
		return;
	/* join_by is on amtca_now_ms()'s clock; timedjoin takes REALTIME. */
	if ((left = join_by - amtca_now_ms()) < 0)
		left = 0;
	clock_gettime(CLOCK_REALTIME, &now);
	ts.tv_sec = now.tv_sec + (time_t)(left / 1000);
	ts.tv_nsec = now.tv_nsec + (long)(left % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if ((r = pthread_timedjoin_np(R.th, NULL, &ts)) == 0)
		R.started = 0;
	else
		serve_log(s, "job_stop", "error=\"the runner did not stop within "
		    "%ld ms (%s); its job resumes on the next start\"",
		    deadline_ms, strerror(r));
}

int
api_reconcile(struct serve *s)
{
	struct store *st = serve_home(s)->state;
	struct store_device *d = NULL;
	struct fleet_host *h = NULL;
	const char *name;
	char *id = NULL;
	size_t nd = 0, i, k = 0;
	int r, busy = 0, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&R.mu);
	/* One reconcile at a time: waiting, running or being stored. */
	busy = R.reconciling || (R.current != NULL && R.current_reconcile);
	for (i = 0; i < R.nq; i++)
		busy |= R.q[i].reconcile;
	if (!busy)
		R.reconciling = 1;
	pthread_mutex_unlock(&R.mu);
	if (busy) {
		serve_log(s, "reconcile", "skipped=1 reason=\"one is waiting or "
		    "running\"");
		return 0;
	}
	if ((r = store_device_list(st, &d, &nd)) != 0) {
		ret = r;
		goto out;
	}
	if (nd > 0 && (h = calloc(nd, sizeof(*h))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	/*
	 * Every device the service has a credential for and may touch: not
	 * retired (out of every reconcile) nor compromised (left alone).
	 */
	for (i = 0; i < nd; i++) {
		if ((name = cred_name_of(d[i].cred_ref)) == NULL ||
		    strcmp(d[i].state, "retired") == 0 ||
		    strcmp(d[i].state, "compromised") == 0)
			continue;
		h[k].port = d[i].port;
		h[k].tls_port = d[i].tls_port;
		if (d[i].tls_pin != NULL && d[i].tls_pin[0] != '\0' &&
		    cred_pin_parse(d[i].tls_pin, h[k].tls_pin) == 0)
			h[k].has_pin = 1;
		if ((h[k].fqdn = strdup(d[i].fqdn)) == NULL ||
		    (h[k].credential = strdup(name)) == NULL ||
		    (d[i].address != NULL && d[i].address[0] != '\0' &&
		    (h[k].address = strdup(d[i].address)) == NULL)) {
			k++;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		k++;
	}
	if (k == 0) {
		serve_log(s, "reconcile", "devices=0");
		ret = 0;
		goto out;
	}
	if ((r = job_store(st, h, k, 1, AMTCA_API_CONCURRENCY_DEFAULT,
	    &id)) != 0) {
		ret = r;
		goto out;
	}
	pthread_mutex_lock(&R.mu);
	r = enqueue(id, 0, 1, 0);
	pthread_mutex_unlock(&R.mu);
	if (r != 0) {
		job_mark(st, id, "cancelled");
		ret = r;
		goto out;
	}
	serve_log(s, "reconcile", "job=%s devices=%zu", id, k);
	ret = 0;
out:
	pthread_mutex_lock(&R.mu);
	R.reconciling = 0;
	pthread_mutex_unlock(&R.mu);
	free(id);
	hosts_free(h, k);
	store_devices_free(d, nd);
	return ret;
}
