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

#include "ca/audit.h"
#include "ca/store_backend.h"
#include "common/limits.h"

/* The backends this amtca knows; the first is the default for plain paths. */
static const struct store_ops *const backends[] = {
	&store_sqlite_ops,
	&store_pg_ops,
	&store_pg_alias_ops,
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
	char *actor;			/* store_set_actor(): this handle's actor */
	pthread_mutex_t sealmu;		/* one seal at a time (tried, not waited) */
	store_seal_fn sealer;		/* set while the handle is in use */
	void *sealer_arg;
};

/*
 * A backend may leave an op NULL (one added to the interface after it was
 * written): its dispatcher fails cleanly instead of calling it.
 */
static int
missing_op(const struct store *s, const char *op)
{
	return amtca_fail(AMTCA_E_STORE, "the %s store does not support %s yet",
	    s->ops->scheme, op);
}

#define NEED_OP(s, op) do { \
	if ((s)->ops->op == NULL) \
		return missing_op((s), #op); \
} while (0)

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
	    "store scheme \"%.*s\" (this amtca knows sqlite:PATH and "
	    "postgresql://...; for a file name with a colon, write "
	    "sqlite:NAME or ./NAME)", uri,
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
	pthread_mutex_init(&s->sealmu, NULL);
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
	if (s->ops->close != NULL)
		s->ops->close(s->be);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	pthread_cond_destroy(&s->ccv);
	pthread_mutex_destroy(&s->sealmu);
	free(s->actor);
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
static void seal_due(struct store *s, int force);
static int check_field(const char *what, const char *v, size_t max,
    int may_be_empty);
static int keyid_ok(const char *k);

/* One batch of n records through the backend.  Every pending gets a result. */
static void
run_batch(struct store *s, struct pending *batch, size_t n)
{
	struct store_rec *recs[AMTCA_STORE_BATCH_MAX];
	struct pending *p;
	size_t i, k, ok = 0;

	for (i = 0, p = batch; p != NULL && i < n; p = p->next, i++) {
		p->rec.result = 0;
		p->rec.msg[0] = '\0';
		recs[i] = &p->rec;
	}
	s->ops->insert_batch(s->be, recs, i);
	for (k = 0; k < i; k++)
		ok += recs[k]->result == 0;
	/* Entries were appended: a seal may be due (outside every lock). */
	if (ok > 0)
		seal_due(s, 0);
}

/*
 * Who an issuance entry names: the caller's actor, else this handle's
 * (the CLI's user@host), else the requester.
 */
static const char *
rec_actor(const struct store *s, const struct store_cert *c)
{
	if (c->actor != NULL && c->actor[0] != '\0')
		return c->actor;
	if (s->actor != NULL)
		return s->actor;
	if (c->requester != NULL && c->requester[0] != '\0')
		return c->requester;
	return "unknown";
}

static int
check_record(const struct store_cert *c)
{
	if (c == NULL || c->serial == NULL || c->serial[0] == '\0' ||
	    c->fqdn == NULL || c->der == NULL || c->der_len == 0 ||
	    c->der_len > (size_t)AMTCA_CERT_FILE_MAX)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_add: incomplete record");
	if (!audit_text_ok(c->fqdn, AMTCA_AUDIT_FIELD_MAX) ||
	    !audit_text_ok(c->actor, AMTCA_AUDIT_FIELD_MAX) ||
	    !audit_text_ok(c->requester, AMTCA_AUDIT_FIELD_MAX) ||
	    !audit_text_ok(c->device, AMTCA_AUDIT_FIELD_MAX))
		return amtca_fail(AMTCA_E_USAGE, "store_cert_add: a name is not "
		    "UTF-8 or too long for the audit trail");
	if (strspn(c->serial, "0123456789ABCDEF") != strlen(c->serial))
		return amtca_fail(AMTCA_E_USAGE, "serial \"%.64s\" is not "
		    "uppercase hexadecimal", c->serial);
	if (c->issuer != NULL && !keyid_ok(c->issuer))
		return amtca_fail(AMTCA_E_USAGE, "store_cert_add: the issuer "
		    "is not a lowercase hex key id");
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
	NEED_OP(s, insert_batch);
	if ((r = check_record(c)) != 0)
		return r;
	memset(&me, 0, sizeof(me));
	me.rec.c = c;
	me.rec.actor = rec_actor(s, c);
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
	NEED_OP(s, insert_batch);
	if ((r = check_record(c)) != 0)
		return r;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return AMTCA_E_NOMEM;
	p->rec.c = c;
	p->rec.actor = rec_actor(s, c);
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
	NEED_OP(s, cert_get);
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
	NEED_OP(s, cert_list);
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
	NEED_OP(s, cert_list);
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
	NEED_OP(s, cert_list);
	return s->ops->cert_list(s->be, STORE_CERTS_FQDN, fqdn, out, n);
}

int
store_cert_list_revoked(struct store *s, struct store_cert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list_revoked: no store");
	NEED_OP(s, cert_list);
	return s->ops->cert_list(s->be, STORE_CERTS_REVOKED, NULL, out, n);
}

int
store_cert_list_revoked_by(struct store *s, const char *issuer,
    int with_unknown, struct store_cert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL || issuer == NULL || issuer[0] == '\0')
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list_revoked_by: "
		    "no store or issuer");
	NEED_OP(s, cert_list);
	return s->ops->cert_list(s->be, with_unknown ?
	    STORE_CERTS_REVOKED_BY_FIRST : STORE_CERTS_REVOKED_BY, issuer, out,
	    n);
}

int
store_cert_list_unrevoked_by(struct store *s, const char *issuer,
    int with_unknown, struct store_cert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL || issuer == NULL || issuer[0] == '\0')
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list_unrevoked_by: "
		    "no store or issuer");
	NEED_OP(s, cert_list);
	return s->ops->cert_list(s->be, with_unknown ?
	    STORE_CERTS_VALID_BY_FIRST : STORE_CERTS_VALID_BY, issuer, out, n);
}

/* --- the CA's own certificates ------------------------------------------ */

int
store_cacert_state_valid(const char *state)
{
	return state != NULL && (strcmp(state, "current") == 0 ||
	    strcmp(state, "retired") == 0 || strcmp(state, "ended") == 0 ||
	    strcmp(state, "revoked") == 0);
}

static int
keyid_ok(const char *k)
{
	size_t i, n;

	if (k == NULL || (n = strlen(k)) == 0 || n > 128)
		return 0;
	for (i = 0; i < n; i++)
		if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'f')))
			return 0;
	return 1;
}

int
store_cacert_put(struct store *s, const struct store_cacert *v, size_t n,
    const char *action, const char *subject, const char *detail)
{
	const char *actor;
	size_t i;
	int r;

	if (s == NULL || v == NULL || n == 0 || n > AMTCA_CACERT_PUT_MAX)
		return amtca_fail(AMTCA_E_USAGE, "store_cacert_put: no store or "
		    "records");
	for (i = 0; i < n; i++)
		if (!keyid_ok(v[i].keyid) || v[i].role == NULL ||
		    v[i].generation < 1 || v[i].subject == NULL ||
		    v[i].serial == NULL || v[i].der == NULL || v[i].der_len == 0 ||
		    !store_cacert_state_valid(v[i].state))
			return amtca_fail(AMTCA_E_USAGE, "store_cacert_put: an "
			    "incomplete CA certificate record");
	actor = s->actor != NULL ? s->actor : "unknown";
	if (action != NULL && ((r = check_field("action", action,
	    AMTCA_AUDIT_FIELD_MAX, 0)) != 0 || (r = check_field("subject",
	    subject, AMTCA_AUDIT_FIELD_MAX, 1)) != 0 || (r = check_field(
	    "detail", detail, AMTCA_AUDIT_DETAIL_MAX, 1)) != 0))
		return r;
	NEED_OP(s, cacert_put);
	if ((r = s->ops->cacert_put(s->be, v, n, actor, action,
	    subject != NULL ? subject : "", detail != NULL ? detail : "")) != 0)
		return r;
	if (action != NULL)
		seal_due(s, strncmp(action, "ca.", 3) == 0);
	return 0;
}

int
store_cacert_list(struct store *s, struct store_cacert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cacert_list: no store");
	NEED_OP(s, cacert_list);
	return s->ops->cacert_list(s->be, out, n);
}

int
store_cacert_revoke(struct store *s, const char *keyid, int reason,
    time_t when)
{
	int r;

	if (s == NULL || !keyid_ok(keyid))
		return amtca_fail(AMTCA_E_USAGE, "store_cacert_revoke: no store "
		    "or key id");
	if (reason < 0 || reason > 10 || reason == 7)
		return amtca_fail(AMTCA_E_USAGE, "revocation reason %d is not a "
		    "CRLReason (0-10 except 7)", reason);
	NEED_OP(s, cacert_revoke);
	if ((r = s->ops->cacert_revoke(s->be, keyid, reason, when,
	    s->actor != NULL ? s->actor : "unknown")) != 0)
		return r;
	seal_due(s, 1);
	return 0;
}

void
store_cacert_clear(struct store_cacert *c)
{
	free(c->keyid);
	free(c->role);
	free(c->subject);
	free(c->serial);
	free(c->state);
	free(c->der);
	memset(c, 0, sizeof(*c));
}

void
store_cacerts_free(struct store_cacert *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		store_cacert_clear(&v[i]);
	free(v);
}

int
store_cert_revoke(struct store *s, const char *serial, int reason, time_t when)
{
	return store_cert_revoke_as(s, serial, reason, when, NULL);
}

int
store_cert_revoke_as(struct store *s, const char *serial, int reason,
    time_t when, const char *actor)
{
	char *key = NULL;
	int r;

	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_revoke: no store");
	if (actor == NULL || actor[0] == '\0')
		actor = s->actor != NULL ? s->actor : "unknown";
	if (!audit_text_ok(actor, AMTCA_AUDIT_FIELD_MAX))
		return amtca_fail(AMTCA_E_USAGE, "store_cert_revoke: the actor is "
		    "not UTF-8 or too long");
	NEED_OP(s, cert_revoke);
	if (reason < 0 || reason > 10 || reason == 7)
		return amtca_fail(AMTCA_E_USAGE, "revocation reason %d is not a "
		    "CRLReason (0-10 except 7)", reason);
	if ((r = norm_serial(serial, &key)) != 0)
		return r;
	r = s->ops->cert_revoke(s->be, key, reason, when, actor);
	free(key);
	if (r == 0)
		seal_due(s, 0);
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
	free(c->issuer);
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
	NEED_OP(s, device_put);
	return s->ops->device_put(s->be, &row);
}

int
store_device_get(struct store *s, const char *fqdn, struct store_device **out)
{
	*out = NULL;
	if (s == NULL || fqdn == NULL)
		return amtca_fail(AMTCA_E_USAGE, "no device FQDN");
	NEED_OP(s, device_get);
	return s->ops->device_get(s->be, fqdn, out);
}

int
store_device_list(struct store *s, struct store_device **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_device_list: no store");
	NEED_OP(s, device_list);
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
	NEED_OP(s, job_put);
	return s->ops->job_put(s->be, &row);
}

int
store_job_get(struct store *s, const char *id, struct store_job **out)
{
	*out = NULL;
	if (s == NULL || id == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_get: no job id");
	NEED_OP(s, job_get);
	return s->ops->job_get(s->be, id, out);
}

int
store_job_list(struct store *s, struct store_job **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_list: no store");
	NEED_OP(s, job_list);
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
	NEED_OP(s, job_device_put);
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
	NEED_OP(s, job_device_list);
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

/* --- job claims ------------------------------------------------------------ */

int
store_job_claim(struct store *s, const char *job_id, const char *owner,
    time_t now, int ttl_s, char **fqdn, char **prev)
{
	if (fqdn != NULL)
		*fqdn = NULL;
	if (prev != NULL)
		*prev = NULL;
	if (s == NULL || job_id == NULL || owner == NULL || *owner == '\0' ||
	    ttl_s <= 0 || fqdn == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_claim: needs a job "
		    "id, an owner and a positive lifetime");
	NEED_OP(s, job_claim);
	return s->ops->job_claim(s->be, job_id, owner, now, ttl_s, fqdn, prev);
}

int
store_job_claim_renew(struct store *s, const char *job_id, const char *owner,
    time_t now, int ttl_s, size_t *n)
{
	size_t dummy;

	if (n == NULL)
		n = &dummy;
	*n = 0;
	if (s == NULL || owner == NULL || *owner == '\0' || ttl_s <= 0)
		return amtca_fail(AMTCA_E_USAGE, "store_job_claim_renew: bad "
		    "arguments");
	NEED_OP(s, job_claim_renew);
	return s->ops->job_claim_renew(s->be, job_id, owner, now, ttl_s, n);
}

int
store_job_claim_release(struct store *s, const char *job_id,
    const char *owner, const char *fqdn)
{
	if (s == NULL || job_id == NULL || owner == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_claim_release: bad "
		    "arguments");
	NEED_OP(s, job_claim_release);
	return s->ops->job_claim_release(s->be, job_id, owner, fqdn);
}

int
store_job_claimable(struct store *s, time_t now, char ***ids, size_t *n)
{
	if (ids != NULL)
		*ids = NULL;
	if (n != NULL)
		*n = 0;
	if (s == NULL || ids == NULL || n == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_claimable: bad "
		    "arguments");
	NEED_OP(s, job_claimable);
	return s->ops->job_claimable(s->be, now, ids, n);
}

int
store_job_claim_owners(struct store *s, const char *job_id, char ***owners,
    size_t *n)
{
	if (owners != NULL)
		*owners = NULL;
	if (n != NULL)
		*n = 0;
	if (s == NULL || job_id == NULL || owners == NULL || n == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_claim_owners: bad "
		    "arguments");
	NEED_OP(s, job_claim_owners);
	return s->ops->job_claim_owners(s->be, job_id, owners, n);
}

int
store_job_finish(struct store *s, const char *job_id, time_t when,
    int *finished)
{
	if (finished != NULL)
		*finished = 0;
	if (s == NULL || job_id == NULL || finished == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_job_finish: bad arguments");
	NEED_OP(s, job_finish);
	return s->ops->job_finish(s->be, job_id, when, finished);
}

int
store_revocation_mark(struct store *s, uint64_t *mark)
{
	if (mark != NULL)
		*mark = 0;
	if (s == NULL || mark == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_revocation_mark: bad "
		    "arguments");
	NEED_OP(s, revocation_mark);
	return s->ops->revocation_mark(s->be, mark);
}

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
	NEED_OP(s, lease_take);
	return s->ops->lease_take(s->be, name, owner, now, ttl_s, takeover,
	    holder, expires);
}

int
store_lease_renew(struct store *s, const char *name, const char *owner,
    time_t now, int ttl_s)
{
	if (s == NULL || name == NULL || owner == NULL || ttl_s <= 0)
		return amtca_fail(AMTCA_E_USAGE, "store_lease_renew: bad arguments");
	NEED_OP(s, lease_renew);
	return s->ops->lease_renew(s->be, name, owner, now, ttl_s);
}

int
store_lease_release(struct store *s, const char *name, const char *owner)
{
	if (s == NULL || name == NULL || owner == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_lease_release: bad arguments");
	NEED_OP(s, lease_release);
	return s->ops->lease_release(s->be, name, owner);
}

/* --- credentials ---------------------------------------------------------- */

/* A backend written before this table existed leaves these ops NULL. */
static int
no_cred_ops(const struct store *s)
{
	return amtca_fail(AMTCA_E_STORE, "the %s store does not keep AMT "
	    "credentials yet", s->ops->scheme);
}

int
store_cred_put(struct store *s, const struct store_cred *c)
{
	struct store_cred row;
	time_t now = time(NULL);

	if (s == NULL || c == NULL || c->name == NULL || *c->name == '\0' ||
	    c->user == NULL || *c->user == '\0' || c->sealed == NULL ||
	    c->sealed_len == 0 || c->mechanism == NULL || *c->mechanism == '\0')
		return amtca_fail(AMTCA_E_USAGE, "store_cred_put: a credential "
		    "needs a name, a user, a sealed blob and its mechanism");
	row = *c;
	if (row.created_at == 0)
		row.created_at = now;
	if (row.updated_at == 0)
		row.updated_at = now;
	if (s->ops->cred_put == NULL)
		return no_cred_ops(s);
	return s->ops->cred_put(s->be, &row);
}

int
store_cred_get(struct store *s, const char *name, struct store_cred **out)
{
	*out = NULL;
	if (s == NULL || name == NULL || *name == '\0')
		return amtca_fail(AMTCA_E_USAGE, "store_cred_get: no name");
	if (s->ops->cred_get == NULL)
		return no_cred_ops(s);
	return s->ops->cred_get(s->be, name, out);
}

int
store_cred_list(struct store *s, struct store_cred **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cred_list: no store");
	if (s->ops->cred_list == NULL)
		return no_cred_ops(s);
	return s->ops->cred_list(s->be, out, n);
}

int
store_cred_remove(struct store *s, const char *name)
{
	if (s == NULL || name == NULL || *name == '\0')
		return amtca_fail(AMTCA_E_USAGE, "store_cred_remove: no name");
	if (s->ops->cred_remove == NULL)
		return no_cred_ops(s);
	return s->ops->cred_remove(s->be, name);
}

void
store_cred_clear(struct store_cred *c)
{
	free(c->name);
	free(c->user);
	free(c->sealed);
	free(c->mechanism);
	memset(c, 0, sizeof(*c));
}

void
store_cred_free(struct store_cred *c)
{
	if (c == NULL)
		return;
	store_cred_clear(c);
	free(c);
}

void
store_creds_free(struct store_cred *c, size_t n)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < n; i++)
		store_cred_clear(&c[i]);
	free(c);
}

/* --- admin and EST clients ------------------------------------------------ */

void
store_client_clear(struct store_client *c)
{
	if (c == NULL)
		return;
	free(c->name);
	free(c->allow);
	if (c->pwhash != NULL) {
		explicit_bzero(c->pwhash, strlen(c->pwhash));
		free(c->pwhash);
	}
	free(c->serial);
	memset(c, 0, sizeof(*c));
}

void
store_client_free(struct store_client *c)
{
	if (c == NULL)
		return;
	store_client_clear(c);
	free(c);
}

void
store_clients_free(struct store_client *c, size_t n)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < n; i++)
		store_client_clear(&c[i]);
	free(c);
}

/* A backend that predates client records leaves the ops NULL. */
static int
no_clients(const struct store *s)
{
	return s->ops->client_add == NULL || s->ops->client_get == NULL ||
	    s->ops->client_list == NULL || s->ops->client_bind == NULL ||
	    s->ops->client_remove == NULL;
}

#define CLIENTS_OR_FAIL(s) do {						\
	if (no_clients(s))						\
		return amtca_fail(AMTCA_E_STORE, "the %s store keeps no "	\
		    "client records", (s)->ops->scheme);			\
} while (0)

/* A record name: what ca_client_name_check() accepts, checked again here
 * so no backend ever sees an empty or oversized key. */
static int
client_name_ok(const char *name)
{
	size_t n;

	return name != NULL && (n = strlen(name)) > 0 &&
	    n <= AMTCA_CLIENT_NAME_MAX;
}

/* The actor an entry names: the caller's, else the store's. */
static const char *
entry_actor(const struct store *s, const char *actor)
{
	if (actor == NULL || actor[0] == '\0')
		actor = s->actor != NULL ? s->actor : "unknown";
	return actor;
}

/*
 * A client entry's detail: role=<admin|est|admin,est> [serial=<s>]
 * [allow=<n1,n2>].  An allow list longer than the detail may hold is cut
 * at a name and ends in ",..." (the record keeps it whole).
 */
static void
client_detail(const struct store_client *c, const char *serial, int allow,
    char *buf, size_t len)
{
	size_t n, i, cut;
	int w;

	w = snprintf(buf, len, "role=%s%s%s",
	    (c->roles & STORE_CLIENT_ADMIN) ? "admin" : "",
	    (c->roles & STORE_CLIENT_ADMIN) && (c->roles & STORE_CLIENT_EST) ?
	    "," : "", (c->roles & STORE_CLIENT_EST) ? "est" : "");
	if (w < 0 || (size_t)w >= len)
		return;
	n = (size_t)w;
	if (serial != NULL) {
		w = snprintf(buf + n, len - n, " serial=%s", serial);
		if (w < 0 || (size_t)w >= len - n)
			return;
		n += (size_t)w;
	}
	if (!allow || c->allow == NULL || c->allow[0] == '\0' ||
	    n + sizeof(" allow=,...") >= len)
		return;
	memcpy(buf + n, " allow=", 7);
	n += 7;
	cut = n;
	for (i = 0; c->allow[i] != '\0'; i++) {
		if (n + 1 + sizeof(",...") > len) {
			/* Back to the last whole name. */
			n = cut;
			memcpy(buf + n, ",...", 4);
			n += 4;
			break;
		}
		if (c->allow[i] == ' ')
			cut = n;
		buf[n++] = c->allow[i] == ' ' ? ',' : c->allow[i];
	}
	buf[n] = '\0';
}

int
store_client_add(struct store *s, const struct store_client *c)
{
	return store_client_add_as(s, c, NULL);
}

int
store_client_add_as(struct store *s, const struct store_client *c,
    const char *actor)
{
	char detail[AMTCA_AUDIT_DETAIL_MAX];
	struct store_client row;
	char *key = NULL;
	int r;

	if (s == NULL || c == NULL || !client_name_ok(c->name) ||
	    c->roles == 0 || (c->roles & ~(unsigned)(STORE_CLIENT_ADMIN |
	    STORE_CLIENT_EST)) != 0)
		return amtca_fail(AMTCA_E_USAGE, "store_client_add: a client "
		    "needs a name and a role");
	if (c->allow != NULL && strlen(c->allow) > AMTCA_CLIENT_ALLOW_TEXT_MAX)
		return amtca_fail(AMTCA_E_LIMIT, "allow list of client %.64s is "
		    "too long", c->name);
	CLIENTS_OR_FAIL(s);
	row = *c;
	if (c->serial != NULL) {
		if ((r = norm_serial(c->serial, &key)) != 0)
			return r;
		row.serial = key;
	}
	if (row.created_at == 0)
		row.created_at = time(NULL);
	actor = entry_actor(s, actor);
	if (!audit_text_ok(actor, AMTCA_AUDIT_FIELD_MAX)) {
		free(key);
		return amtca_fail(AMTCA_E_USAGE, "store_client_add: the actor "
		    "is not UTF-8 or too long");
	}
	client_detail(&row, row.serial, 1, detail, sizeof(detail));
	r = s->ops->client_add(s->be, &row, actor, detail);
	free(key);
	if (r == 0)
		seal_due(s, 0);
	return r;
}

int
store_client_get(struct store *s, const char *name, struct store_client **out)
{
	*out = NULL;
	if (s == NULL || !client_name_ok(name))
		return amtca_fail(AMTCA_E_NOT_FOUND, "no client %.64s",
		    name != NULL ? name : "");
	CLIENTS_OR_FAIL(s);
	return s->ops->client_get(s->be, name, NULL, out);
}

int
store_client_by_serial(struct store *s, const char *serial,
    struct store_client **out)
{
	char *key = NULL;
	int r;

	*out = NULL;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_client_by_serial: no store");
	CLIENTS_OR_FAIL(s);
	if ((r = norm_serial(serial, &key)) != 0)
		return r;
	r = s->ops->client_get(s->be, NULL, key, out);
	free(key);
	return r;
}

int
store_client_list(struct store *s, struct store_client **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_client_list: no store");
	CLIENTS_OR_FAIL(s);
	return s->ops->client_list(s->be, out, n);
}

int
store_client_bind(struct store *s, const char *name, const char *serial)
{
	return store_client_bind_as(s, name, serial, NULL);
}

int
store_client_bind_as(struct store *s, const char *name, const char *serial,
    const char *actor)
{
	char *key = NULL;
	int r;

	if (s == NULL || !client_name_ok(name))
		return amtca_fail(AMTCA_E_USAGE, "store_client_bind: no client");
	CLIENTS_OR_FAIL(s);
	if ((r = norm_serial(serial, &key)) != 0)
		return r;
	actor = entry_actor(s, actor);
	if (!audit_text_ok(actor, AMTCA_AUDIT_FIELD_MAX)) {
		free(key);
		return amtca_fail(AMTCA_E_USAGE, "store_client_bind: the actor "
		    "is not UTF-8 or too long");
	}
	r = s->ops->client_bind(s->be, name, key, actor);
	free(key);
	if (r == 0)
		seal_due(s, 0);
	return r;
}

int
store_client_remove(struct store *s, const char *name, time_t when)
{
	return store_client_remove_as(s, name, when, NULL);
}

int
store_client_remove_as(struct store *s, const char *name, time_t when,
    const char *actor)
{
	struct store_client *c = NULL;
	char detail[AMTCA_AUDIT_DETAIL_MAX];
	int r;

	if (s == NULL || !client_name_ok(name))
		return amtca_fail(AMTCA_E_USAGE, "store_client_remove: no client");
	CLIENTS_OR_FAIL(s);
	actor = entry_actor(s, actor);
	if (!audit_text_ok(actor, AMTCA_AUDIT_FIELD_MAX))
		return amtca_fail(AMTCA_E_USAGE, "store_client_remove: the actor "
		    "is not UTF-8 or too long");
	/* The entry names the role and certificate the record had. */
	if ((r = s->ops->client_get(s->be, name, NULL, &c)) != 0)
		return r;
	client_detail(c, c->serial, 0, detail, sizeof(detail));
	store_client_free(c);
	r = s->ops->client_remove(s->be, name, when != 0 ? when : time(NULL),
	    actor, detail);
	if (r == 0)
		seal_due(s, 0);
	return r;
}

/* --- the audit trail ------------------------------------------------------ */

int
store_set_actor(struct store *s, const char *actor)
{
	char *a = NULL;

	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_set_actor: no store");
	if (actor != NULL) {
		if (actor[0] == '\0' || !audit_text_ok(actor, AMTCA_AUDIT_FIELD_MAX))
			return amtca_fail(AMTCA_E_USAGE, "audit actor is empty, not "
			    "UTF-8 or too long");
		if ((a = strdup(actor)) == NULL)
			return AMTCA_E_NOMEM;
	}
	free(s->actor);
	s->actor = a;
	return 0;
}

void
store_set_sealer(struct store *s, store_seal_fn fn, void *arg)
{
	if (s == NULL)
		return;
	/* Under sealmu: a seal running on another thread finishes first. */
	pthread_mutex_lock(&s->sealmu);
	s->sealer = fn;
	s->sealer_arg = arg;
	pthread_mutex_unlock(&s->sealmu);
}

/*
 * Seal when due.  trylock: a seal in progress (on this thread, appending
 * its own "audit.seal" entry, or another) covers what is appended now or
 * leaves it to the next append; nobody waits on a token signature here.
 */
static void
seal_due(struct store *s, int force)
{
	uint64_t head = 0, sealed = 0;

	if (s->sealer == NULL || s->ops->audit_status == NULL ||
	    pthread_mutex_trylock(&s->sealmu) != 0)
		return;
	/* Due: a trail never sealed (pinned from its start), or the limit. */
	if (s->sealer != NULL && (force || (s->ops->audit_status(s->be, &head,
	    &sealed) == 0 && head > sealed && (sealed == 0 ||
	    head - sealed >= AMTCA_AUDIT_SEAL_EVERY))))
		s->sealer(s->sealer_arg, s);
	pthread_mutex_unlock(&s->sealmu);
}

void
store_seal_due(struct store *s)
{
	if (s != NULL)
		seal_due(s, 0);
}

/* A backend without the audit trail yet fails its dispatchers cleanly. */
static int
no_audit(const struct store *s, const char *what)
{
	return amtca_fail(AMTCA_E_STORE, "the %s store does not support %s yet",
	    s->ops->scheme, what);
}

static int
check_field(const char *what, const char *v, size_t max, int may_be_empty)
{
	if ((v == NULL || v[0] == '\0') && !may_be_empty)
		return amtca_fail(AMTCA_E_USAGE, "audit entry without %s", what);
	if (!audit_text_ok(v, max))
		return amtca_fail(AMTCA_E_USAGE, "audit entry: the %s is not UTF-8 "
		    "or longer than %zu bytes", what, max);
	return 0;
}

int
store_audit_append_get(struct store *s, const char *actor, const char *action,
    const char *subject, const char *detail, uint64_t *seq,
    unsigned char hash[STORE_AUDIT_HASH_LEN])
{
	unsigned char h[STORE_AUDIT_HASH_LEN];
	uint64_t q = 0;
	int r;

	if (seq != NULL)
		*seq = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_audit_append: no store");
	if (actor == NULL || actor[0] == '\0')
		actor = s->actor != NULL ? s->actor : "unknown";
	if ((r = check_field("actor", actor, AMTCA_AUDIT_FIELD_MAX, 0)) != 0 ||
	    (r = check_field("action", action, AMTCA_AUDIT_FIELD_MAX, 0)) != 0 ||
	    (r = check_field("subject", subject, AMTCA_AUDIT_FIELD_MAX, 1)) != 0 ||
	    (r = check_field("detail", detail, AMTCA_AUDIT_DETAIL_MAX, 1)) != 0)
		return r;
	if (s->ops->audit_append == NULL)
		return no_audit(s, "audit_append");
	if ((r = s->ops->audit_append(s->be, actor, action,
	    subject != NULL ? subject : "", detail != NULL ? detail : "", &q,
	    h)) != 0)
		return r;
	if (seq != NULL)
		*seq = q;
	if (hash != NULL)
		memcpy(hash, h, sizeof(h));
	/* A change of the CA itself is sealed at once. */
	seal_due(s, strncmp(action, "ca.", 3) == 0);
	return 0;
}

int
store_audit_append(struct store *s, const char *actor, const char *action,
    const char *subject, const char *detail)
{
	return store_audit_append_get(s, actor, action, subject, detail, NULL,
	    NULL);
}

int
store_audit_list(struct store *s, uint64_t after, struct store_audit **out,
    size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_audit_list: no store");
	if (s->ops->audit_list == NULL)
		return no_audit(s, "audit_list");
	return s->ops->audit_list(s->be, after, out, n);
}

int
store_audit_status(struct store *s, uint64_t *head, uint64_t *sealed)
{
	*head = 0;
	*sealed = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_audit_status: no store");
	if (s->ops->audit_status == NULL)
		return no_audit(s, "audit_status");
	return s->ops->audit_status(s->be, head, sealed);
}

int
store_seal_add(struct store *s, const struct store_seal *seal)
{
	if (s == NULL || seal == NULL || seal->seq == 0 || seal->sig == NULL ||
	    seal->siglen == 0 || seal->siglen > CA_SIG_MAX)
		return amtca_fail(AMTCA_E_USAGE, "store_seal_add: a seal needs an "
		    "entry and a signature");
	if (s->ops->seal_add == NULL)
		return no_audit(s, "seal_add");
	return s->ops->seal_add(s->be, seal);
}

int
store_seal_list(struct store *s, struct store_seal **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_seal_list: no store");
	if (s->ops->seal_list == NULL)
		return no_audit(s, "seal_list");
	return s->ops->seal_list(s->be, out, n);
}

void
store_audit_clear(struct store_audit *e)
{
	free(e->actor);
	free(e->action);
	free(e->subject);
	free(e->detail);
	memset(e, 0, sizeof(*e));
}

void
store_audits_free(struct store_audit *e, size_t n)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < n; i++)
		store_audit_clear(&e[i]);
	free(e);
}

void
store_seal_clear(struct store_seal *e)
{
	free(e->sig);
	memset(e, 0, sizeof(*e));
}

void
store_seals_free(struct store_seal *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		store_seal_clear(&v[i]);
	free(v);
}

/* --- shared configuration ------------------------------------------------- */

static int
meta_name_ok(const char *name)
{
	size_t n;

	if (name == NULL || (n = strlen(name)) == 0 ||
	    n > AMTCA_STORE_META_NAME_MAX)
		return 0;
	for (; *name != '\0'; name++)
		if ((unsigned char)*name <= 0x20 || (unsigned char)*name >= 0x7f)
			return 0;
	return 1;
}

int
store_meta_put(struct store *s, const struct store_meta *v, size_t n)
{
	struct store_meta rows[AMTCA_STORE_META_PUT_MAX];
	time_t now = time(NULL);
	size_t i, j;

	if (s == NULL || v == NULL || n == 0 || n > AMTCA_STORE_META_PUT_MAX)
		return amtca_fail(AMTCA_E_USAGE, "store_meta_put: 1 to %d items",
		    AMTCA_STORE_META_PUT_MAX);
	for (i = 0; i < n; i++) {
		if (!meta_name_ok(v[i].name))
			return amtca_fail(AMTCA_E_USAGE, "store_meta_put: an item "
			    "name is 1-%d printable characters without spaces",
			    AMTCA_STORE_META_NAME_MAX);
		if (v[i].len > AMTCA_STORE_META_VALUE_MAX ||
		    (v[i].value == NULL && v[i].len != 0))
			return amtca_fail(AMTCA_E_USAGE, "store_meta_put: %s: "
			    "a value is at most %d bytes", v[i].name,
			    AMTCA_STORE_META_VALUE_MAX);
		for (j = 0; j < i; j++)
			if (strcmp(v[i].name, v[j].name) == 0)
				return amtca_fail(AMTCA_E_USAGE, "store_meta_put: "
				    "%s twice", v[i].name);
		rows[i] = v[i];
		if (rows[i].updated_at == 0)
			rows[i].updated_at = now;
	}
	NEED_OP(s, meta_put);
	return s->ops->meta_put(s->be, rows, n);
}

int
store_meta_get(struct store *s, const char *name, struct store_meta **out)
{
	*out = NULL;
	if (s == NULL || !meta_name_ok(name))
		return amtca_fail(AMTCA_E_USAGE, "store_meta_get: bad name");
	NEED_OP(s, meta_get);
	return s->ops->meta_get(s->be, name, out);
}

int
store_meta_list(struct store *s, struct store_meta **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_meta_list: no store");
	NEED_OP(s, meta_list);
	return s->ops->meta_list(s->be, out, n);
}

void
store_meta_clear(struct store_meta *m)
{
	free(m->name);
	free(m->value);
	memset(m, 0, sizeof(*m));
}

void
store_meta_free(struct store_meta *m)
{
	if (m == NULL)
		return;
	store_meta_clear(m);
	free(m);
}

void
store_metas_free(struct store_meta *m, size_t n)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < n; i++)
		store_meta_clear(&m[i]);
	free(m);
}
