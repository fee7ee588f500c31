/*
 * The issuance store on SQLite: the only file in amtca that speaks SQL.
 *
 * Durability: WAL with synchronous=FULL, so COMMIT returns after the WAL is
 * fsync'ed.  store_cert_add() returns only after its record's COMMIT.
 *
 * Group commit: adders queue a `pending` on the stack and wait.  The first
 * one to find no leader becomes leader, takes up to AMTCA_STORE_BATCH_MAX
 * queued records, runs BEGIN IMMEDIATE; INSERT...; COMMIT for all of them
 * (one fsync), hands each waiter its own result and wakes them; the next
 * waiter with a record still queued leads the next batch.  A duplicate
 * serial fails only its own INSERT: SQLite's default ABORT resolution rolls
 * back just that statement and keeps the transaction.  Signing happens
 * before store_cert_add(), so only the commit is serialised.
 *
 * Pipelined adders (store_cert_add_async) queue a heap `pending` with a
 * completion callback and return at once.  A committer thread, started on
 * the first such add, leads a batch whenever records are queued and no
 * other leader is at work, and runs the callbacks after the COMMIT: so a
 * single issuing thread can sign the next certificate while the previous
 * ones are being made durable, and nothing is released before its fsync.
 * Like PostgreSQL's commit_delay, the committer lingers up to
 * AMTCA_STORE_LINGER_US for more records before leading a short batch:
 * an fsync costs CPU as well as time, and on a machine whose cores are all
 * signing, one fsync per record was measured at ~15% of issuance cost.
 *
 * One connection, guarded by `dbmu` for every use (transactions must not
 * interleave); the queue has its own mutex so enqueuing never waits on I/O.
 */
#include "ca/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "common/limits.h"

#define SCHEMA_VERSION 1

/* Longest SQLite message copied into a waiter's result. */
#define STORE_MSG_MAX 200

struct pending {
	const struct store_cert *c;
	int result;
	int done;
	char msg[STORE_MSG_MAX];
	struct pending *next;
	store_done_fn cb;		/* async: heap pending, callback on commit */
	void *arg;
};

struct store {
	sqlite3 *db;
	pthread_mutex_t dbmu;
	pthread_mutex_t qmu;
	pthread_cond_t qcv;		/* batch finished: waiters look again */
	pthread_cond_t ccv;		/* work for the committer thread */
	struct pending *head, **tail;
	size_t qlen;			/* records queued, not yet in a batch */
	int leader;
	pthread_t committer;		/* started by the first async add */
	int committer_running;
	int stopping;
	sqlite3_stmt *ins;		/* prepared once; used under dbmu */
	char *path;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS certificates ("
    " serial TEXT PRIMARY KEY NOT NULL,"
    " fqdn TEXT NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " issued_at INTEGER NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid','revoked')),"
    " revoke_reason INTEGER,"
    " revoked_at INTEGER,"
    " requester TEXT,"
    " device TEXT,"
    " der BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS certificates_fqdn ON certificates(fqdn);"
    "CREATE INDEX IF NOT EXISTS certificates_device ON certificates(device"
    " COLLATE NOCASE) WHERE device IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS certificates_revoked ON certificates(serial)"
    " WHERE status = 'revoked';"
    "CREATE TABLE IF NOT EXISTS devices ("
    " fqdn TEXT PRIMARY KEY NOT NULL,"
    " address TEXT,"
    " amt_version TEXT,"
    " cert_serial TEXT,"
    " state TEXT NOT NULL,"
    " last_step TEXT,"
    " error TEXT,"
    " updated_at INTEGER NOT NULL);"
    "PRAGMA user_version = 1;";

static const char cert_cols[] =
    "serial, fqdn, not_before, not_after, issued_at, status, revoke_reason,"
    " revoked_at, requester, device";

static int
db_fail(struct store *s, const char *what)
{
	return amtca_fail(AMTCA_E_STORE, "issuance database %s: %s", what,
	    sqlite3_errmsg(s->db));
}

static int
exec(struct store *s, const char *sql, const char *what)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, what);
	return 0;
}

static int
pragma_int(struct store *s, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int ret;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		ret = db_fail(s, "query");
		goto out;
	}
	*out = sqlite3_column_int(st, 0);
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int
schema(struct store *s, int create)
{
	int v = 0, r, ret = AMTCA_E_INTERNAL;

	/* IMMEDIATE: two processes creating at once do it one after the other. */
	if ((r = exec(s, "BEGIN IMMEDIATE", "lock")) != 0)
		return r;
	if ((r = pragma_int(s, "PRAGMA user_version", &v)) != 0) {
		ret = r;
		goto out;
	}
	if (v == 0 && create) {
		if ((r = exec(s, schema_sql, "schema creation")) != 0) {
			ret = r;
			goto out;
		}
	} else if (v == 0) {
		ret = amtca_fail(AMTCA_E_STORE, "%s is not an amtca issuance "
		    "database (no schema)", s->path);
		goto out;
	} else if (v > SCHEMA_VERSION) {
		ret = amtca_fail(AMTCA_E_STORE, "%s has schema version %d, newer "
		    "than this amtca (%d): upgrade amtca", s->path, v,
		    SCHEMA_VERSION);
		goto out;
	}
	if ((r = exec(s, "COMMIT", "commit")) != 0) {
		ret = r;
		goto out;
	}
	return 0;
out:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

int
store_open(const char *path, int create, struct store **out)
{
	struct store *s = NULL;
	struct stat sb;
	sqlite3_stmt *st = NULL;
	int r, flags, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (path == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "no database path");
		goto out;
	}
	if (!create && stat(path, &sb) == -1) {
		ret = amtca_fail(errno == ENOENT ? AMTCA_E_NOT_FOUND : AMTCA_E_STORE,
		    "issuance database %s: %s", path, strerror(errno));
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->path = strdup(path)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	pthread_mutex_init(&s->dbmu, NULL);
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	pthread_cond_init(&s->ccv, NULL);
	s->tail = &s->head;
	flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX |
	    (create ? SQLITE_OPEN_CREATE : 0);
	if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
		ret = s->db != NULL ? db_fail(s, "open") :
		    amtca_fail(AMTCA_E_NOMEM, "cannot open %s", path);
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, AMTCA_STORE_BUSY_MS);
	/* WAL is persistent in the file; check we really got it. */
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st,
	    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_text(st, 0) == NULL ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		ret = amtca_fail(AMTCA_E_STORE, "issuance database %s: cannot "
		    "switch to WAL mode", path);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((r = exec(s, "PRAGMA synchronous=FULL", "setup")) != 0 ||
	    (r = exec(s, "PRAGMA cache_size=-16384", "setup")) != 0 ||
	    (r = schema(s, create)) != 0) {
		ret = r;
		goto out;
	}
	if (sqlite3_prepare_v3(s->db, "INSERT INTO certificates (serial, fqdn,"
	    " not_before, not_after, issued_at, status, requester, device, der)"
	    " VALUES (?, ?, ?, ?, ?, 'valid', ?, ?, ?)", -1,
	    SQLITE_PREPARE_PERSISTENT, &s->ins, NULL) != SQLITE_OK) {
		ret = db_fail(s, "prepare");
		goto out;
	}
	*out = s;
	s = NULL;
	ret = 0;
out:
	sqlite3_finalize(st);
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
	sqlite3_finalize(s->ins);
	if (s->db != NULL)
		sqlite3_close(s->db);
	pthread_mutex_destroy(&s->dbmu);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	pthread_cond_destroy(&s->ccv);
	free(s->path);
	free(s);
}

static void
set_msg(struct pending *p, int code, const char *fmt, const char *detail)
{
	p->result = code;
	snprintf(p->msg, sizeof(p->msg), fmt, detail);
}

/* One batch under dbmu.  Every pending gets a result. */
static void
run_batch(struct store *s, struct pending *batch)
{
	struct pending *p;
	const struct store_cert *c;
	int rc, failed = 0;

	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		for (p = batch; p != NULL; p = p->next)
			set_msg(p, AMTCA_E_STORE, "issuance database lock: %s",
			    sqlite3_errmsg(s->db));
		goto out;
	}
	for (p = batch; p != NULL; p = p->next) {
		c = p->c;
		p->result = 0;
		if (failed) {
			p->result = AMTCA_E_STORE;
			continue;
		}
		sqlite3_reset(s->ins);
		sqlite3_clear_bindings(s->ins);
		sqlite3_bind_text(s->ins, 1, c->serial, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 2, c->fqdn, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s->ins, 3, (sqlite3_int64)c->not_before);
		sqlite3_bind_int64(s->ins, 4, (sqlite3_int64)c->not_after);
		sqlite3_bind_int64(s->ins, 5, (sqlite3_int64)c->issued_at);
		sqlite3_bind_text(s->ins, 6, c->requester, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 7, c->device, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s->ins, 8, c->der, (int)c->der_len, SQLITE_STATIC);
		rc = sqlite3_step(s->ins);
		if (rc == SQLITE_DONE)
			continue;
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
			set_msg(p, AMTCA_E_EXISTS, "serial %s is already recorded",
			    c->serial);
			continue;
		}
		/* Anything else may have ended the transaction: fail the rest. */
		set_msg(p, AMTCA_E_STORE, "issuance database insert: %s",
		    sqlite3_errmsg(s->db));
		failed = 1;
	}
	sqlite3_reset(s->ins);
	sqlite3_clear_bindings(s->ins);
	if (!failed && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		goto out;
	if (!failed)
		set_msg(batch, AMTCA_E_STORE, "issuance database commit: %s",
		    sqlite3_errmsg(s->db));
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	/* Nothing of this batch is on disk: nobody may report success. */
	for (p = batch; p != NULL; p = p->next)
		if (p->result == 0) {
			p->result = AMTCA_E_STORE;
			snprintf(p->msg, sizeof(p->msg), "%s", batch->msg[0] ?
			    batch->msg : "issuance database transaction failed");
		}
out:
	pthread_mutex_unlock(&s->dbmu);
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
	int n;

	s->leader = 1;
	batch = s->head;
	for (n = 1, pp = &batch->next; *pp != NULL && n < AMTCA_STORE_BATCH_MAX; n++)
		pp = &(*pp)->next;
	s->qlen -= (size_t)n;
	s->head = *pp;
	*pp = NULL;
	if (s->head == NULL)
		s->tail = &s->head;
	pthread_mutex_unlock(&s->qmu);
	run_batch(s, batch);
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
		p->cb(p->arg, p->result, p->msg);
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
	me.c = c;
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
	if (me.result != 0 && me.msg[0] != '\0')
		return amtca_fail(me.result, "%s", me.msg);
	return me.result;
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
	p->c = c;
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

static int
dup_text(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	*out = NULL;
	if (t == NULL)
		return 0;
	return (*out = strdup((const char *)t)) == NULL ? AMTCA_E_NOMEM : 0;
}

static void
cert_clear(struct store_cert *c)
{
	free(c->serial);
	free(c->fqdn);
	free(c->status);
	free(c->requester);
	free(c->device);
	free(c->der);
	memset(c, 0, sizeof(*c));
}

/* Columns in cert_cols order, then optionally der. */
static int
row_cert(sqlite3_stmt *st, int with_der, struct store_cert *c)
{
	const void *b;
	int n;

	memset(c, 0, sizeof(*c));
	if (dup_text(st, 0, &c->serial) != 0 || dup_text(st, 1, &c->fqdn) != 0 ||
	    dup_text(st, 5, &c->status) != 0 ||
	    dup_text(st, 8, &c->requester) != 0 ||
	    dup_text(st, 9, &c->device) != 0)
		goto nomem;
	c->not_before = (time_t)sqlite3_column_int64(st, 2);
	c->not_after = (time_t)sqlite3_column_int64(st, 3);
	c->issued_at = (time_t)sqlite3_column_int64(st, 4);
	c->revoke_reason = sqlite3_column_int(st, 6);
	c->revoked_at = (time_t)sqlite3_column_int64(st, 7);
	if (with_der) {
		b = sqlite3_column_blob(st, 10);
		n = sqlite3_column_bytes(st, 10);
		if (b != NULL && n > 0) {
			if ((c->der = malloc((size_t)n)) == NULL)
				goto nomem;
			memcpy(c->der, b, (size_t)n);
			c->der_len = (size_t)n;
		}
	}
	return 0;
nomem:
	cert_clear(c);
	return AMTCA_E_NOMEM;
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
	sqlite3_stmt *st = NULL;
	struct store_cert *c = NULL;
	char sql[256], *key = NULL;
	int r, rc, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((r = norm_serial(serial, &key)) != 0)
		return r;
	snprintf(sql, sizeof(sql), "SELECT %s, der FROM certificates WHERE "
	    "serial = ?", cert_cols);
	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no certificate with serial %s",
		    key);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = db_fail(s, "query");
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (r = row_cert(st, 1, c)) != 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->dbmu);
	free(c);
	free(key);
	return ret;
}

/* `where` may hold one '?', bound to `arg`. */
static int
list_certs(struct store *s, const char *where, const char *arg, int with_der,
    struct store_cert **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct store_cert *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	char sql[512];
	int rc, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*n = 0;
	snprintf(sql, sizeof(sql), "SELECT %s%s FROM certificates %s ORDER BY "
	    "issued_at, rowid", cert_cols, with_der ? ", der" : "", where);
	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			v = nv;
		}
		if (row_cert(st, with_der, &v[cnt]) != 0) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(s, "query");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->dbmu);
	store_certs_free(v, cnt);
	return ret;
}

int
store_cert_list(struct store *s, struct store_cert **out, size_t *n)
{
	return list_certs(s, "", NULL, 1, out, n);
}

int
store_cert_list_device(struct store *s, const char *device,
    struct store_cert **out, size_t *n)
{
	if (device == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list_device: no device");
	return list_certs(s, "WHERE device = ? COLLATE NOCASE", device, 1, out, n);
}

int
store_cert_list_fqdn(struct store *s, const char *fqdn,
    struct store_cert **out, size_t *n)
{
	if (fqdn == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_cert_list_fqdn: no FQDN");
	return list_certs(s, "WHERE fqdn = ? COLLATE NOCASE", fqdn, 1, out, n);
}

int
store_cert_list_revoked(struct store *s, struct store_cert **out, size_t *n)
{
	return list_certs(s, "WHERE status = 'revoked'", NULL, 0, out, n);
}

int
store_cert_revoke(struct store *s, const char *serial, int reason, time_t when)
{
	sqlite3_stmt *st = NULL;
	char *key = NULL;
	int r, rc, ret = AMTCA_E_INTERNAL;

	if (reason < 0 || reason > 10 || reason == 7)
		return amtca_fail(AMTCA_E_USAGE, "revocation reason %d is not a "
		    "CRLReason (0-10 except 7)", reason);
	if ((r = norm_serial(serial, &key)) != 0)
		return r;
	pthread_mutex_lock(&s->dbmu);
	/*
	 * The first revocation fixes reason and date.  One change is allowed
	 * later, as RFC 5280 5.3.1 practice has it: to keyCompromise, which
	 * the next CRL then shows (the date stays the first one).
	 */
	if (sqlite3_prepare_v2(s->db, "UPDATE certificates SET status = "
	    "'revoked', revoke_reason = ?1, revoked_at = CASE WHEN status = "
	    "'revoked' THEN revoked_at ELSE ?2 END WHERE serial = ?3 AND "
	    "(status = 'valid' OR (?1 = 1 AND revoke_reason IS NOT 1))", -1,
	    &st, NULL) != SQLITE_OK) {
		ret = db_fail(s, "revoke");
		goto out;
	}
	sqlite3_bind_int(st, 1, reason);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)when);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "revoke");
		goto out;
	}
	if (sqlite3_changes(s->db) == 0) {
		/* Already revoked (fine) or unknown. */
		sqlite3_finalize(st);
		st = NULL;
		if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM certificates WHERE "
		    "serial = ?", -1, &st, NULL) != SQLITE_OK) {
			ret = db_fail(s, "query");
			goto out;
		}
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			ret = amtca_fail(AMTCA_E_NOT_FOUND, "no certificate with "
			    "serial %s", key);
			goto out;
		}
		if (rc != SQLITE_ROW) {
			ret = db_fail(s, "query");
			goto out;
		}
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->dbmu);
	free(key);
	return ret;
}

void
store_cert_free(struct store_cert *c)
{
	if (c == NULL)
		return;
	cert_clear(c);
	free(c);
}

void
store_certs_free(struct store_cert *c, size_t n)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < n; i++)
		cert_clear(&c[i]);
	free(c);
}

int
store_device_put(struct store *s, const struct store_device *d)
{
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	if (s == NULL || d == NULL || d->fqdn == NULL || d->state == NULL)
		return amtca_fail(AMTCA_E_USAGE, "store_device_put: device needs "
		    "an FQDN and a state");
	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO devices (fqdn, "
	    "address, amt_version, cert_serial, state, last_step, error, "
	    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", -1, &st,
	    NULL) != SQLITE_OK) {
		ret = db_fail(s, "device update");
		goto out;
	}
	sqlite3_bind_text(st, 1, d->fqdn, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d->address, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->amt_version, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, d->cert_serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, d->state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, d->last_step, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, d->error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)(d->updated_at != 0 ?
	    d->updated_at : time(NULL)));
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "device update");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static void
device_clear(struct store_device *d)
{
	free(d->fqdn);
	free(d->address);
	free(d->amt_version);
	free(d->cert_serial);
	free(d->state);
	free(d->last_step);
	free(d->error);
	memset(d, 0, sizeof(*d));
}

static int
row_device(sqlite3_stmt *st, struct store_device *d)
{
	memset(d, 0, sizeof(*d));
	if (dup_text(st, 0, &d->fqdn) != 0 || dup_text(st, 1, &d->address) != 0 ||
	    dup_text(st, 2, &d->amt_version) != 0 ||
	    dup_text(st, 3, &d->cert_serial) != 0 ||
	    dup_text(st, 4, &d->state) != 0 ||
	    dup_text(st, 5, &d->last_step) != 0 ||
	    dup_text(st, 6, &d->error) != 0) {
		device_clear(d);
		return AMTCA_E_NOMEM;
	}
	d->updated_at = (time_t)sqlite3_column_int64(st, 7);
	return 0;
}

#define DEVICE_SELECT "SELECT fqdn, address, amt_version, cert_serial, state, " \
	"last_step, error, updated_at FROM devices "

int
store_device_get(struct store *s, const char *fqdn, struct store_device **out)
{
	sqlite3_stmt *st = NULL;
	struct store_device *d = NULL;
	int rc, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (fqdn == NULL)
		return amtca_fail(AMTCA_E_USAGE, "no device FQDN");
	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_prepare_v2(s->db, DEVICE_SELECT "WHERE fqdn = ?", -1, &st,
	    NULL) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	sqlite3_bind_text(st, 1, fqdn, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no device %.253s", fqdn);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = db_fail(s, "query");
		goto out;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL || row_device(st, d) != 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*out = d;
	d = NULL;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->dbmu);
	free(d);
	return ret;
}

int
store_device_list(struct store *s, struct store_device **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct store_device *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_prepare_v2(s->db, DEVICE_SELECT "ORDER BY fqdn", -1, &st,
	    NULL) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			v = nv;
		}
		if (row_device(st, &v[cnt]) != 0) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(s, "query");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->dbmu);
	store_devices_free(v, cnt);
	return ret;
}

void
store_device_free(struct store_device *d)
{
	if (d == NULL)
		return;
	device_clear(d);
	free(d);
}

void
store_devices_free(struct store_device *d, size_t n)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < n; i++)
		device_clear(&d[i]);
	free(d);
}
