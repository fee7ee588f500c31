/*
 * The issuance store's backend-neutral front: the public store_* functions
 * (ca/store.h) check their arguments, pick a backend by URI and dispatch to
 * its `struct store_ops` (ca/store_backend.h).  No SQL here: SQLite is in
 * ca/store_sqlite.c.
 *
 * Group commit, the same for every backend: adders queue a `pending` on the
 * stack and wait.  The first one to find no leader becomes leader, takes up
 * to AMTCA_STORE_BATCH_MAX queued records and hands them to the backend's
 * insert_batch, which makes them durable in one transaction (one fsync) and
 * gives each its own result; the leader then wakes the waiters, and the
 * next waiter with a record still queued leads the next batch.  Signing
 * happens before store_cert_add(), so only the commit is serialised.
 *
 * Pipelined adders (store_cert_add_async) queue a heap `pending` with a
 * completion callback and return at once.  A committer thread, started on
 * the first such add, leads a batch whenever records are queued and no
 * other leader is at work, and runs the callbacks after the batch returned:
 * so a single issuing thread can sign the next certificate while the
 * previous ones are being made durable, and nothing is released before its
 * commit.  Like PostgreSQL's commit_delay, the committer lingers up to
 * AMTCA_STORE_LINGER_US for more records before leading a short batch:
 * an fsync costs CPU as well as time, and on a machine whose cores are all
 * signing, one fsync per record was measured at ~15% of issuance cost.
 *
 * The queue has its own mutex so enqueuing never waits on I/O; only one
 * leader at a time calls insert_batch on a store.
 */
#include "ca/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ca/store_backend.h"
#include "common/limits.h"

/* The backends this amtca knows; the first is the default for plain paths. */
static const struct store_ops *const backends[] = {
	&store_sqlite_ops,
};

struct pending {
	struct store_rec rec;
	int done;
	struct pending *next;
	store_done_fn cb;		/* async: heap pending, callback on commit */
	void *arg;
};

struct store {
	const struct store_ops *ops;
	void *be;			/* the backend's handle */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;		/* batch finished: waiters look again */
	pthread_cond_t ccv;		/* work for the committer thread */
	struct pending *head, **tail;
	size_t qlen;			/* records queued, not yet in a batch */
	int leader;
	pthread_t committer;		/* started by the first async add */
	int committer_running;
	int stopping;
};

/*
 * "scheme:rest" names a backend by scheme; anything without a scheme (a
 * path) is the default backend's location.  A scheme is a letter, then
 * letters, digits, '+', '-' or '.', then ':'.
 */
static int
locate(const char *uri, const struct store_ops **ops, const char **loc)
{
	size_t i, n;

	*ops = NULL;
	*loc = NULL;
	if (uri == NULL || uri[0] == '\0')
		return amtca_fail(AMTCA_E_USAGE, "no database path");
	n = strspn(uri, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789+-.");
	if (n == 0 || uri[n] != ':' || !((uri[0] >= 'a' && uri[0] <= 'z') ||
	    (uri[0] >= 'A' && uri[0] <= 'Z'))) {
		*ops = backends[0];
		*loc = uri;
		return 0;
	}
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strlen(backends[i]->scheme) == n &&
		    strncasecmp(uri, backends[i]->scheme, n) == 0) {
			if (uri[n + 1] == '\0')
				return amtca_fail(AMTCA_E_USAGE, "issuance database "
				    "\"%.64s\" names no location after the "
				    "scheme", uri);
			*ops = backends[i];
			*loc = uri + n + 1;
			return 0;
		}
	return amtca_fail(AMTCA_E_USAGE, "issuance database \"%.200s\": unknown "
	    "store scheme \"%.*s\" (this amtca knows sqlite:PATH; for a file "
	    "name with a colon, write sqlite:NAME or ./NAME)", uri,
	    (int)(n > 32 ? 32 : n), uri);
}

int
store_open(const char *uri, int create, struct store **out)
{
	const struct store_ops *ops;
	const char *loc;
	struct store *s = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((r = locate(uri, &ops, &loc)) != 0) {
		ret = r;
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	s->ops = ops;
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	pthread_cond_init(&s->ccv, NULL);
	s->tail = &s->head;
	if ((r = ops->open(loc, create, &s->be)) != 0) {
		ret = r;
		goto out;
	}
	*out = s;
	s = NULL;
	ret = 0;
out:
	store_close(s);
	return ret;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	/* Drain: every queued async record is committed and called back. */
	pthread_mutex_lock(&s->qmu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->qcv);
	pthread_cond_signal(&s->ccv);
	pthread_mutex_unlock(&s->qmu);
	if (s->committer_running)
		pthread_join(s->committer, NULL);
	s->ops->close(s->be);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	pthread_cond_destroy(&s->ccv);
	free(s);
}

int
store_destroy(const char *uri)
{
	const struct store_ops *ops;
	const char *loc;
	int r;

	if ((r = locate(uri, &ops, &loc)) != 0)
		return r;
	return ops->destroy(loc);
}

int
store_backup(struct store *s, const char *dest_uri)
{
	const struct store_ops *ops;
	const char *loc;
	int r;

	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_backup: no store");
	if ((r = locate(dest_uri, &ops, &loc)) != 0)
		return r;
	if (ops != s->ops)
		return amtca_fail(AMTCA_E_USAGE, "store_backup: %.200s is not a "
		    "%s store", dest_uri, s->ops->scheme);
	if (s->ops->backup == NULL)
		return amtca_fail(AMTCA_E_USAGE, "the %s store has no online "
		    "backup; use its own tools", s->ops->scheme);
	return s->ops->backup(s->be, loc);
}

/* One batch of n records through the backend.  Every pending gets a result. */
static void
run_batch(struct store *s, struct pending *batch, size_t n)
{
	struct store_rec *recs[AMTCA_STORE_BATCH_MAX];
	struct pending *p;
	size_t i;

	for (i = 0, p = batch; p != NULL && i < n; p = p->next, i++) {
		p->rec.result = 0;
		p->rec.msg[0] = '\0';
		recs[i] = &p->rec;
	}
	s->ops->insert_batch(s->be, recs, i);
}

static int
check_record(const struct store_cert *c)
{
	if (c == NULL || c->serial == NULL || c->serial[0] == '\0' ||
	    c->fqdn == NULL || c->der == NULL || c->der_len == 0 ||
	    c->der_len > (size_t)AMTCA_CERT_FILE_MAX)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_add: incomplete record");
	if (strspn(c->serial, "0123456789ABCDEF") != strlen(c->serial))
		return amtca_fail(AMTCA_E_USAGE, "serial \"%.64s\" is not "
		    "uppercase hexadecimal", c->serial);
	return 0;
}

/*
 * Lead one batch.  Called and returns with qmu held (released while
 * committing).  Synchronous waiters are marked done; async pendings are
 * called back after qmu is released, then freed: a waiter's stack pending
 * must not be touched once it can see done.
 */
static void
lead_batch(struct store *s)
{
	struct pending *batch, *p, *next, *async = NULL, **pp;
	size_t n;

	s->leader = 1;
	batch = s->head;
	for (n = 1, pp = &batch->next; *pp != NULL && n < AMTCA_STORE_BATCH_MAX; n++)
		pp = &(*pp)->next;
	s->qlen -= n;
	s->head = *pp;
	*pp = NULL;
	if (s->head == NULL)
		s->tail = &s->head;
	pthread_mutex_unlock(&s->qmu);
	run_batch(s, batch, n);
	pthread_mutex_lock(&s->qmu);
	for (p = batch; p != NULL; p = next) {
		next = p->next;
		if (p->cb != NULL) {
			p->next = async;
			async = p;
		} else
			p->done = 1;
	}
	s->leader = 0;
	pthread_cond_broadcast(&s->qcv);
	if (async == NULL)
		return;
	pthread_mutex_unlock(&s->qmu);
	for (p = async; p != NULL; p = next) {
		next = p->next;
		p->cb(p->arg, p->rec.result, p->rec.msg);
		free(p);
	}
	pthread_mutex_lock(&s->qmu);
}

int
store_cert_add(struct store *s, const struct store_cert *c)
{
	struct pending me;
	int r;

	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_add: no store");
	if ((r = check_record(c)) != 0)
		return r;
	memset(&me, 0, sizeof(me));
	me.rec.c = c;
	pthread_mutex_lock(&s->qmu);
	*s->tail = &me;
	s->tail = &me.next;
	s->qlen++;
	while (!me.done) {
		if (s->leader) {
			pthread_cond_wait(&s->qcv, &s->qmu);
			continue;
		}
		lead_batch(s);
	}
	pthread_mutex_unlock(&s->qmu);
	if (me.rec.result != 0 && me.rec.msg[0] != '\0')
		return amtca_fail(me.rec.result, "%s", me.rec.msg);
	return me.rec.result;
}

/* Wait up to the linger time for the queue to fill, unless stopping. */
static void
linger(struct store *s)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += AMTCA_STORE_LINGER_US * 1000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (s->qlen < AMTCA_STORE_LINGER_BATCH && !s->stopping &&
	    pthread_cond_timedwait(&s->ccv, &s->qmu, &until) == 0)
		;
}

static void *
committer_main(void *arg)
{
	struct store *s = arg;

	pthread_mutex_lock(&s->qmu);
	for (;;) {
		if (s->head != NULL && !s->leader) {
			linger(s);
			if (s->head != NULL && !s->leader)
				lead_batch(s);
			continue;
		}
		if (s->head == NULL && s->stopping)
			break;
		/* qcv too: a synchronous leader's batch may have ended. */
		pthread_cond_wait(s->leader ? &s->qcv : &s->ccv, &s->qmu);
	}
	pthread_mutex_unlock(&s->qmu);
	return NULL;
}

int
store_cert_add_async(struct store *s, const struct store_cert *c,
    store_done_fn done, void *arg)
{
	struct pending *p;
	int r, ret = 0;

	if (s == NULL || done == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_add_async: no store "
		    "or callback");
	if ((r = check_record(c)) != 0)
		return r;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return AMTCA_E_NOMEM;
	p->rec.c = c;
	p->cb = done;
	p->arg = arg;
	pthread_mutex_lock(&s->qmu);
	if (s->stopping) {
		ret = amtca_fail(AMTCA_E_STORE, "issuance database is closing");
		free(p);
		goto out;
	}
	if (!s->committer_running) {
		if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
			ret = amtca_fail(AMTCA_E_INTERNAL, "cannot start the "
			    "database committer thread");
			free(p);
			goto out;
		}
		s->committer_running = 1;
	}
	*s->tail = p;
	s->tail = &p->next;
	/* Wake the committer to start lingering, and again once it is worth it. */
	if (++s->qlen == 1 || s->qlen == AMTCA_STORE_LINGER_BATCH)
		pthread_cond_signal(&s->ccv);
out:
	pthread_mutex_unlock(&s->qmu);
	return ret;
}


/* Uppercase copy of a hex serial; AMTCA_E_USAGE if not hex. */
static int
norm_serial(const char *in, char **out)
{
	size_t i, n;
	char *s;

	*out = NULL;
	if (in == NULL || (n = strlen(in)) == 0 || n > 128)
		return amtca_fail(AMTCA_E_USAGE, "serial is empty or too long");
	if ((s = malloc(n + 1)) == NULL)
		return AMTCA_E_NOMEM;
	for (i = 0; i <= n; i++) {
		char ch = in[i];

		if (ch >= 'a' && ch <= 'f')
			ch = (char)(ch - 32);
		if (i < n && !((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F'))) {
			free(s);
			return amtca_fail(AMTCA_E_USAGE, "serial \"%.64s\" is not "
			    "hexadecimal", in);
		}
		s[i] = ch;
	}
	*out = s;
	return 0;
}

int
store_cert_get(struct store *s, const char *serial, struct store_cert **out)
{
	char *key = NULL;
	int r;

	*out = NULL;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_get: no store");
	if ((r = norm_serial(serial, &key)) != 0)
		return r;
	r = s->ops->cert_get(s->be, key, out);
	free(key);
	return r;
}

int
store_cert_list(struct store *s, struct store_cert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list: no store");
	return s->ops->cert_list(s->be, STORE_CERTS_ALL, NULL, out, n);
}

int
store_cert_list_device(struct store *s, const char *device,
    struct store_cert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL || device == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list_device: no device");
	return s->ops->cert_list(s->be, STORE_CERTS_DEVICE, device, out, n);
}

int
store_cert_list_fqdn(struct store *s, const char *fqdn,
    struct store_cert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL || fqdn == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list_fqdn: no FQDN");
	return s->ops->cert_list(s->be, STORE_CERTS_FQDN, fqdn, out, n);
}

int
store_cert_list_revoked(struct store *s, struct store_cert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list_revoked: no store");
	return s->ops->cert_list(s->be, STORE_CERTS_REVOKED, NULL, out, n);
}

int
store_cert_revoke(struct store *s, const char *serial, int reason, time_t when)
{
	char *key = NULL;
	int r;

	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_revoke: no store");
	if (reason < 0 || reason > 10 || reason == 7)
		return amtca_fail(AMTCA_E_USAGE, "revocation reason %d is not a "
		    "CRLReason (0-10 except 7)", reason);
	if ((r = norm_serial(serial, &key)) != 0)
		return r;
	r = s->ops->cert_revoke(s->be, key, reason, when);
	free(key);
	return r;
}

void
store_cert_clear(struct store_cert *c)
{
	free(c->serial);
	free(c->fqdn);
	free(c->status);
	free(c->requester);
	free(c->device);
	free(c->der);
	memset(c, 0, sizeof(*c));
}

void
store_cert_free(struct store_cert *c)
{
	if (c == NULL)
		return;
	store_cert_clear(c);
	free(c);
}

void
store_certs_free(struct store_cert *c, size_t n)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < n; i++)
		store_cert_clear(&c[i]);
	free(c);
}

static const char *const device_states[] = {
	"pending", "enrolling", "enrolled", "failed", "auth_failed",
	"compromised", "retired",
};

int
store_device_state_valid(const char *state)
{
	size_t i;

	for (i = 0; state != NULL &&
	    i < sizeof(device_states) / sizeof(device_states[0]); i++)
		if (strcmp(state, device_states[i]) == 0)
			return 1;
	return 0;
}

int
store_device_put(struct store *s, const struct store_device *d)
{
	struct store_device row;

	if (s == NULL || d == NULL || d->fqdn == NULL || d->state == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_device_put: device needs "
		    "an FQDN and a state");
	if (!store_device_state_valid(d->state))
		return amtca_fail(AMTCA_E_USAGE, "store_device_put: unknown "
		    "device state %.40s", d->state);
	if (d->port < 0 || d->port > 65535 || d->tls_port < 0 ||
	    d->tls_port > 65535)
		return amtca_fail(AMTCA_E_USAGE, "store_device_put: bad port");
	row = *d;
	if (row.updated_at == 0)
		row.updated_at = time(NULL);
	return s->ops->device_put(s->be, &row);
}

int
store_device_get(struct store *s, const char *fqdn, struct store_device **out)
{
	*out = NULL;
	if (s == NULL || fqdn == NULL)
		return amtca_fail(AMTCA_E_USAGE, "no device FQDN");
	return s->ops->device_get(s->be, fqdn, out);
}

int
store_device_list(struct store *s, struct store_device **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_device_list: no store");
	return s->ops->device_list(s->be, out, n);
}

void
store_device_clear(struct store_device *d)
{
	free(d->fqdn);
	free(d->address);
	free(d->amt_version);
	free(d->cert_serial);
	free(d->state);
	free(d->last_step);
	free(d->error);
	free(d->user);
	free(d->cred_ref);
	free(d->cred_stamp);
	free(d->tls_pin);
	memset(d, 0, sizeof(*d));
}

void
store_device_free(struct store_device *d)
{
	if (d == NULL)
		return;
	store_device_clear(d);
	free(d);
}

void
store_devices_free(struct store_device *d, size_t n)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < n; i++)
		store_device_clear(&d[i]);
	free(d);
}

/* --- jobs ----------------------------------------------------------------- */

static int
job_state_valid(const char *st)
{
	return st != NULL && (strcmp(st, "running") == 0 ||
	    strcmp(st, "done") == 0 || strcmp(st, "cancelled") == 0);
}

static int
job_result_valid(const char *r)
{
	static const char *const results[] = { "pending", "enrolled",
	    "renewed", "unchanged", "failed" };
	size_t i;

	for (i = 0; r != NULL && i < sizeof(results) / sizeof(results[0]); i++)
		if (strcmp(r, results[i]) == 0)
			return 1;
	return 0;
}

int
store_job_put(struct store *s, const struct store_job *j)
{
	struct store_job row;

	if (s == NULL || j == NULL || j->id == NULL || *j->id == '\0' ||
	    !job_state_valid(j->state))
		return amtca_fail(AMTCA_E_USAGE, "store_job_put: a job needs an "
		    "id and a state (running, done, cancelled)");
	row = *j;
	if (row.created_at == 0)
		row.created_at = time(NULL);
	return s->ops->job_put(s->be, &row);
}

int
store_job_get(struct store *s, const char *id, struct store_job **out)
{
	*out = NULL;
	if (s == NULL || id == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_get: no job id");
	return s->ops->job_get(s->be, id, out);
}

int
store_job_list(struct store *s, struct store_job **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_list: no store");
	return s->ops->job_list(s->be, out, n);
}

int
store_job_device_put(struct store *s, const struct store_job_device *d)
{
	struct store_job_device row;

	if (s == NULL || d == NULL || d->job_id == NULL || d->fqdn == NULL ||
	    !job_result_valid(d->result) || d->attempts < 0)
		return amtca_fail(AMTCA_E_USAGE, "store_job_device_put: needs a "
		    "job id, an FQDN and a known result");
	row = *d;
	if (row.updated_at == 0)
		row.updated_at = time(NULL);
	return s->ops->job_device_put(s->be, &row);
}

int
store_job_device_list(struct store *s, const char *job_id,
    struct store_job_device **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL || job_id == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_device_list: no job id");
	return s->ops->job_device_list(s->be, job_id, out, n);
}

void
store_job_clear(struct store_job *j)
{
	free(j->id);
	free(j->state);
	free(j->hosts_digest);
	memset(j, 0, sizeof(*j));
}

void
store_job_free(struct store_job *j)
{
	if (j == NULL)
		return;
	store_job_clear(j);
	free(j);
}

void
store_jobs_free(struct store_job *j, size_t n)
{
	size_t i;

	if (j == NULL)
		return;
	for (i = 0; i < n; i++)
		store_job_clear(&j[i]);
	free(j);
}

void
store_job_device_clear(struct store_job_device *d)
{
	free(d->job_id);
	free(d->fqdn);
	free(d->result);
	free(d->serial);
	free(d->error);
	memset(d, 0, sizeof(*d));
}

void
store_job_devices_free(struct store_job_device *d, size_t n)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < n; i++)
		store_job_device_clear(&d[i]);
	free(d);
}

/* --- leases --------------------------------------------------------------- */

int
store_lease_take(struct store *s, const char *name, const char *owner,
    time_t now, int ttl_s, const char *takeover, char **holder,
    time_t *expires)
{
	if (holder != NULL)
		*holder = NULL;
	if (expires != NULL)
		*expires = 0;
	if (s == NULL || name == NULL || *name == '\0' || owner == NULL ||
	    *owner == '\0' || ttl_s <= 0)
		return amtca_fail(AMTCA_E_USAGE, "store_lease_take: needs a name, "
		    "an owner and a positive lifetime");
	return s->ops->lease_take(s->be, name, owner, now, ttl_s, takeover,
	    holder, expires);
}

int
store_lease_renew(struct store *s, const char *name, const char *owner,
    time_t now, int ttl_s)
{
	if (s == NULL || name == NULL || owner == NULL || ttl_s <= 0)
		return amtca_fail(AMTCA_E_USAGE, "store_lease_renew: bad arguments");
	return s->ops->lease_renew(s->be, name, owner, now, ttl_s);
}

int
store_lease_release(struct store *s, const char *name, const char *owner)
{
	if (s == NULL || name == NULL || owner == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_lease_release: bad arguments");
	return s->ops->lease_release(s->be, name, owner);
}
