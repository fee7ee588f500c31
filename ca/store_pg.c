/*
 * The store's PostgreSQL backend (libpq): with ca/store_sqlite.c, the only
 * code in amtca that speaks SQL.  Selected by a libpq connection URI,
 * "postgresql://[user@]host[:port]/db[?param=...]" or, for a local server,
 * "postgresql:///db?host=/socket/dir" ("postgres://" is the same); the whole
 * URI goes to libpq.  Credentials never sit in the URI: one with a password
 * is refused, and libpq reads it from a passfile (?passfile=PATH, PGPASSFILE
 * or ~/.pgpass) instead.
 *
 * Layout: the store is the schema "amtca" in that database (search_path is
 * set to it on every connection), so it lives beside whatever else the
 * database holds; store_destroy() drops that schema and nothing else.  A
 * missing database is created when creating the store (if the role may).
 *
 * Schema: versioned migrations (migrations[] below), recorded in the table
 * schema_version.  store_open(create=1) runs those the database lacks in one
 * transaction under an advisory lock, so two nodes initialising at once do
 * it one after the other; store_open(create=0) only checks, and refuses a
 * schema newer than this binary knows or older than it needs (migrating is
 * an explicit step when several nodes share the database).
 *
 * Durability: with synchronous_commit on (or local, remote_*), COMMIT
 * returns after the commit record is flushed; a connection on which it is
 * off, or a server running with fsync off, is refused.  insert_batch sends
 * BEGIN, one INSERT ... ON CONFLICT (serial) DO NOTHING per record and
 * COMMIT in one libpq pipeline: one round trip and one flush per batch, and
 * a serial already recorded (by this node or another) fails only its own
 * record, by its row count, without aborting the transaction.
 *
 * Threads: libpq connections are not shared, so the handle keeps a small
 * pool (up to AMTCA_STORE_PG_POOL_MAX, opened on demand); each call borrows
 * one for its duration.  A connection that broke or was left inside a
 * transaction is not returned to the pool.
 */
#include "ca/store_backend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/limits.h"

/* The newest schema this amtca knows (the last entry of migrations[]). */
#define PG_SCHEMA_VERSION 1

/* pg_advisory_xact_lock key serialising migrations ("amtca" in ASCII). */
#define PG_MIGRATE_LOCK "418262983521"

/* PostgreSQL 10: identity columns; 14: pipeline mode is client-side only. */
#define PG_SERVER_MIN 100000

struct pgc {
	PGconn *conn;
	int prepared;			/* the INSERT below is prepared on it */
	struct pgc *next;		/* in the idle list */
};

struct pg {
	char *uri;
	char *db;			/* database name, for messages */
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* a connection was returned */
	struct pgc *idle;
	size_t open;			/* connections, idle or borrowed */
};

/*
 * Version 1 holds what SQLite's schema 2 holds: certificates (serial is the
 * key, so a collision between nodes is a constraint, not a race), devices,
 * fleet jobs with each device's progress, and leases.  `seq` keeps
 * insertion order, as SQLite's rowid does.  Migrations are appended, never
 * edited.
 */
static const char migrate_v1_sql[] =
    "CREATE TABLE certificates ("
    " seq bigint GENERATED ALWAYS AS IDENTITY,"
    " serial text PRIMARY KEY,"
    " fqdn text NOT NULL,"
    " not_before bigint NOT NULL,"
    " not_after bigint NOT NULL,"
    " issued_at bigint NOT NULL,"
    " status text NOT NULL DEFAULT 'valid' CHECK (status IN ('valid','revoked')),"
    " revoke_reason integer,"
    " revoked_at bigint,"
    " requester text,"
    " device text,"
    " der bytea NOT NULL);"
    "CREATE INDEX certificates_fqdn ON certificates (lower(fqdn));"
    "CREATE INDEX certificates_device ON certificates (lower(device))"
    " WHERE device IS NOT NULL;"
    "CREATE INDEX certificates_revoked ON certificates (serial)"
    " WHERE status = 'revoked';"
    "CREATE TABLE devices ("
    " fqdn text PRIMARY KEY,"
    " address text,"
    " amt_version text,"
    " cert_serial text,"
    " state text NOT NULL,"
    " last_step text,"
    " error text,"
    " updated_at bigint NOT NULL,"
    " port integer NOT NULL DEFAULT 0,"
    " tls_port integer NOT NULL DEFAULT 0,"
    " amt_user text,"
    " cred_ref text,"
    " cred_stamp text,"
    " tls_pin text);"
    "CREATE TABLE jobs ("
    " seq bigint GENERATED ALWAYS AS IDENTITY,"
    " id text PRIMARY KEY,"
    " created_at bigint NOT NULL,"
    " finished_at bigint NOT NULL DEFAULT 0,"
    " state text NOT NULL,"
    " hosts_digest text,"
    " total bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_digest ON jobs (hosts_digest, state);"
    "CREATE TABLE job_devices ("
    " job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    " fqdn text NOT NULL,"
    " result text NOT NULL,"
    " serial text,"
    " error text,"
    " attempts integer NOT NULL DEFAULT 0,"
    " updated_at bigint NOT NULL,"
    " PRIMARY KEY (job_id, fqdn));"
    "CREATE TABLE leases ("
    " name text PRIMARY KEY,"
    " owner text NOT NULL,"
    " expires_at bigint NOT NULL);"
    /* Sealed AMT credentials (issue 9): no password, the signer's blob. */
    "CREATE TABLE IF NOT EXISTS credentials ("
    " name text PRIMARY KEY,"
    " amt_user text NOT NULL,"
    " sealed bytea NOT NULL,"
    " mechanism text NOT NULL,"
    " created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL);";

static const struct {
	int version;
	const char *sql;
} migrations[] = {
	{ 1, migrate_v1_sql },
};

static const char ins_sql[] =
    "INSERT INTO certificates (serial, fqdn, not_before, not_after,"
    " issued_at, status, requester, device, der) VALUES ($1, $2, $3, $4, $5,"
    " 'valid', $6, $7, $8) ON CONFLICT (serial) DO NOTHING";

#define CERT_COLS "serial, fqdn, not_before, not_after, issued_at, status, " \
	"revoke_reason, revoked_at, requester, device"

/* --- parameters and results ----------------------------------------------- */

#define PRM_MAX 16

/* Positional parameters: text, or binary for bytea; integers formatted here. */
struct prm {
	int n;
	const char *v[PRM_MAX];
	int len[PRM_MAX];
	int fmt[PRM_MAX];
	char num[PRM_MAX][24];
};

static void
p_text(struct prm *a, const char *t)
{
	a->v[a->n] = t;			/* NULL is SQL NULL */
	a->len[a->n] = 0;
	a->fmt[a->n] = 0;
	a->n++;
}

static void
p_int(struct prm *a, long long x)
{
	snprintf(a->num[a->n], sizeof(a->num[a->n]), "%lld", x);
	p_text(a, a->num[a->n]);
}

static void
p_bin(struct prm *a, const unsigned char *b, size_t len)
{
	a->v[a->n] = (const char *)b;
	a->len[a->n] = (int)len;
	a->fmt[a->n] = 1;
	a->n++;
}

/* One line of libpq's message: the primary message of `res` when there is one. */
static int
pq_fail(PGconn *conn, const PGresult *res, const char *what)
{
	const char *m = NULL;

	if (res != NULL)
		m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (m == NULL && conn != NULL)
		m = PQerrorMessage(conn);
	if (m == NULL || *m == '\0')
		m = "unknown error";
	return amtca_fail(AMTCA_E_STORE, "issuance database %s: %.*s", what,
	    (int)strcspn(m, "\n"), m);
}

static int
dupval(const PGresult *res, int row, int col, char **out)
{
	*out = NULL;
	if (PQgetisnull(res, row, col))
		return 0;
	return (*out = strdup(PQgetvalue(res, row, col))) == NULL ?
	    AMTCA_E_NOMEM : 0;
}

static long long
ival(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int
truth(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) &&
	    strcmp(PQgetvalue(res, row, col), "t") == 0;
}

/* libpq prints NOTICEs on stderr by default ("schema exists, skipping"). */
static void
quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* --- URIs and connections ------------------------------------------------- */

/*
 * Parse `uri` as libpq would; refuse a password in it (it would be on the
 * command line and in the configuration).  *dbname: the database named, or
 * NULL for libpq's default (the user name).
 */
static int
check_uri(const char *uri, char **dbname)
{
	PQconninfoOption *opts = NULL, *o;
	char *err = NULL;
	int ret = AMTCA_E_INTERNAL;

	*dbname = NULL;
	if (strlen(uri) > AMTCA_STORE_PG_URI_MAX)
		return amtca_fail(AMTCA_E_USAGE, "PostgreSQL store URI is longer "
		    "than %d bytes", AMTCA_STORE_PG_URI_MAX);
	if ((opts = PQconninfoParse(uri, &err)) == NULL) {
		if (err == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		ret = amtca_fail(AMTCA_E_USAGE, "PostgreSQL store URI: %.*s",
		    (int)strcspn(err, "\n"), err);
		goto out;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
		    o->val[0] != '\0') {
			ret = amtca_fail(AMTCA_E_USAGE, "PostgreSQL store URI "
			    "carries a password: put it in a passfile "
			    "(?passfile=PATH or PGPASSFILE), never in the URI");
			goto out;
		}
		if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL &&
		    o->val[0] != '\0' && (*dbname = strdup(o->val)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	}
	ret = 0;
out:
	if (ret != 0) {
		free(*dbname);
		*dbname = NULL;
	}
	PQconninfoFree(opts);
	PQfreemem(err);
	return ret;
}

/* Connect to `uri`, or to database `other` on the same server. */
static PGconn *
connect_to(const char *uri, const char *other)
{
	const char *kw[] = { "dbname", other ? "dbname" : NULL, NULL };
	const char *val[] = { uri, other, NULL };
	PGconn *conn;

	conn = PQconnectdbParams(kw, val, 1);
	if (conn != NULL)
		PQsetNoticeProcessor(conn, quiet_notice, NULL);
	return conn;
}

/*
 * A fresh connection for the pool, set up for the store: search_path, and
 * the durability check.  *reached is 1 when the server let us in (a later
 * failure is about the server's settings, not about reaching it).
 */
static int
conn_new(struct pg *p, struct pgc **out, int *reached)
{
	struct pgc *c = NULL;
	PGresult *res = NULL;
	const char *sync;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*reached = 0;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return AMTCA_E_NOMEM;
	if ((c->conn = connect_to(p->uri, NULL)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (PQstatus(c->conn) != CONNECTION_OK) {
		ret = pq_fail(c->conn, NULL, "connection");
		goto out;
	}
	*reached = 1;
	if (PQserverVersion(c->conn) < PG_SERVER_MIN) {
		ret = amtca_fail(AMTCA_E_STORE, "PostgreSQL server version %d is "
		    "too old for the amtca store (10 or newer)",
		    PQserverVersion(c->conn));
		goto out;
	}
	res = PQexec(c->conn, "SET search_path = amtca; SELECT "
	    "current_setting('synchronous_commit'), current_setting('fsync')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		ret = pq_fail(c->conn, res, "connection setup");
		goto out;
	}
	sync = PQgetvalue(res, 0, 0);
	if (strcmp(sync, "off") == 0) {
		ret = amtca_fail(AMTCA_E_STORE, "PostgreSQL database %s has "
		    "synchronous_commit off: a certificate could leave the CA "
		    "before its record is durable; set it on (ALTER DATABASE "
		    "... SET synchronous_commit = on)", p->db);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "on") != 0) {
		ret = amtca_fail(AMTCA_E_STORE, "PostgreSQL server of database "
		    "%s runs with fsync off: committed records are not durable",
		    p->db);
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	PQclear(res);
	if (c != NULL) {
		PQfinish(c->conn);
		free(c);
	}
	return ret;
}

/* Borrow a connection: an idle one, a new one, or wait for one. */
static int
conn_get(struct pg *p, struct pgc **out)
{
	struct pgc *c;
	int r, reached;

	*out = NULL;
	pthread_mutex_lock(&p->mu);
	while (p->idle == NULL && p->open >= AMTCA_STORE_PG_POOL_MAX)
		pthread_cond_wait(&p->cv, &p->mu);
	if ((c = p->idle) != NULL) {
		p->idle = c->next;
		c->next = NULL;
		pthread_mutex_unlock(&p->mu);
		*out = c;
		return 0;
	}
	p->open++;
	pthread_mutex_unlock(&p->mu);
	if ((r = conn_new(p, &c, &reached)) != 0) {
		pthread_mutex_lock(&p->mu);
		p->open--;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		return r;
	}
	*out = c;
	return 0;
}

/* Return a borrowed connection; one that broke or is mid-transaction goes. */
static void
conn_put(struct pg *p, struct pgc *c)
{
	PGresult *res;

	if (c == NULL)
		return;
	if (PQstatus(c->conn) == CONNECTION_OK &&
	    PQtransactionStatus(c->conn) != PQTRANS_IDLE &&
	    PQtransactionStatus(c->conn) != PQTRANS_ACTIVE) {
		res = PQexec(c->conn, "ROLLBACK");
		PQclear(res);
	}
	if (PQstatus(c->conn) != CONNECTION_OK ||
	    PQtransactionStatus(c->conn) != PQTRANS_IDLE ||
	    PQpipelineStatus(c->conn) != PQ_PIPELINE_OFF) {
		PQfinish(c->conn);
		free(c);
		pthread_mutex_lock(&p->mu);
		p->open--;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	pthread_mutex_lock(&p->mu);
	c->next = p->idle;
	p->idle = c;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/*
 * A connection broke (server restart, failover, an administrator's
 * pg_terminate_backend): the idle ones most likely did too.  Close them
 * all, so the retry gets a fresh connection.
 */
static void
pool_flush(struct pg *p)
{
	struct pgc *c, *next, *list;
	size_t n = 0;

	pthread_mutex_lock(&p->mu);
	list = p->idle;
	p->idle = NULL;
	for (c = list; c != NULL; c = c->next)
		n++;
	p->open -= n;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (c = list; c != NULL; c = next) {
		next = c->next;
		PQfinish(c->conn);
		free(c);
	}
}

/*
 * Run `sql` on a pooled connection.  *out (if not NULL) gets the result on
 * success (PQclear it).  On failure the message is set and, if `state` is
 * not NULL, the SQLSTATE copied there ("" when none).
 */
static int
run(struct pg *p, const char *sql, const struct prm *a, const char *what,
    PGresult **out, char state[6])
{
	struct pgc *c = NULL;
	PGresult *res = NULL;
	const char *ss;
	ExecStatusType st;
	int r, attempt = 0, ret = AMTCA_E_INTERNAL;

	if (out != NULL)
		*out = NULL;
	if (state != NULL)
		state[0] = '\0';
again:
	if ((r = conn_get(p, &c)) != 0)
		return r;
	res = PQexecParams(c->conn, sql, a ? a->n : 0, NULL, a ? a->v : NULL,
	    a ? a->len : NULL, a ? a->fmt : NULL, 0);
	st = PQresultStatus(res);
	/*
	 * A broken connection: once more on a fresh one.  Every statement
	 * run() executes is safe to repeat (reads, upserts, a revocation, a
	 * lease upsert that finds its own owner), whether or not the first
	 * attempt reached the server.
	 */
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    PQstatus(c->conn) == CONNECTION_BAD && attempt++ == 0) {
		PQclear(res);
		res = NULL;
		conn_put(p, c);
		c = NULL;
		pool_flush(p);
		goto again;
	}
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		if (state != NULL && res != NULL &&
		    (ss = PQresultErrorField(res, PG_DIAG_SQLSTATE)) != NULL)
			snprintf(state, 6, "%s", ss);
		ret = pq_fail(c->conn, res, what);
		goto out;
	}
	if (out != NULL) {
		*out = res;
		res = NULL;
	}
	ret = 0;
out:
	PQclear(res);
	conn_put(p, c);
	return ret;
}

/* Rows changed by the command of `res`. */
static long
changed(PGresult *res)
{
	return strtol(PQcmdTuples(res), NULL, 10);
}

/* --- open, schema, destroy ------------------------------------------------ */

/*
 * The connection to `uri` failed: does its database exist?  Asks the
 * server's maintenance database.  0: it exists (the failure is something
 * else, or we cannot tell); AMTCA_E_NOT_FOUND: it does not; 1: it
 * did not and `create` made it; otherwise creating it failed.
 */
static int
missing_db(const char *uri, const char *dbname, int create)
{
	PGconn *m = NULL;
	PGresult *res = NULL;
	struct prm a = { 0 };
	char *ident = NULL, *sql = NULL;
	const char *ss;
	int ret = 0;

	if ((m = connect_to(uri, "postgres")) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (PQstatus(m) != CONNECTION_OK) {
		PQfinish(m);
		if ((m = connect_to(uri, "template1")) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (PQstatus(m) != CONNECTION_OK)
			goto out;
	}
	p_text(&a, dbname);
	res = PQexecParams(m, "SELECT n, EXISTS (SELECT 1 FROM pg_database "
	    "WHERE datname = n) FROM (SELECT coalesce($1::text, "
	    "current_user::text) AS n) q", a.n, NULL, a.v, a.len, a.fmt, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		goto out;
	if (truth(res, 0, 1))
		goto out;
	if (!create) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "PostgreSQL database %.200s "
		    "does not exist", PQgetvalue(res, 0, 0));
		goto out;
	}
	if ((ident = PQescapeIdentifier(m, PQgetvalue(res, 0, 0),
	    strlen(PQgetvalue(res, 0, 0)))) == NULL ||
	    asprintf(&sql, "CREATE DATABASE %s", ident) == -1) {
		sql = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	PQclear(res);
	res = PQexec(m, sql);
	/* Another node created it meanwhile: 42P04, or 23505 when both were
	 * past the existence check. */
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    ((ss = PQresultErrorField(res, PG_DIAG_SQLSTATE)) == NULL ||
	    (strcmp(ss, "42P04") != 0 && strcmp(ss, "23505") != 0))) {
		ret = pq_fail(m, res, "creation");
		goto out;
	}
	ret = 1;
out:
	PQclear(res);
	PQfreemem(ident);
	free(sql);
	PQfinish(m);
	return ret;
}

static int
version_ok(struct pg *p, int v, int create)
{
	if (v > PG_SCHEMA_VERSION)
		return amtca_fail(AMTCA_E_STORE, "store schema version %d is newer "
		    "than this amtca (%d): upgrade amtca", v, PG_SCHEMA_VERSION);
	if (v < PG_SCHEMA_VERSION && !create)
		return amtca_fail(AMTCA_E_STORE, "store schema version %d in "
		    "PostgreSQL database %s is older than this amtca (%d): "
		    "migrate it first (amtca store migrate)", v, p->db,
		    PG_SCHEMA_VERSION);
	return 0;
}

/* One statement (or several) without parameters on `conn`. */
static int
exec1(PGconn *conn, const char *sql, const char *what, PGresult **out)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int r;

	if (out != NULL)
		*out = NULL;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		r = pq_fail(conn, res, what);
		PQclear(res);
		return r;
	}
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

/*
 * Check the schema, or (create) bring it to PG_SCHEMA_VERSION: one
 * transaction, under an advisory lock, so concurrent creators queue.
 */
static int
schema(struct pg *p, PGconn *conn, int create)
{
	PGresult *res = NULL;
	struct prm a;
	char ver[24];
	const char *vals[1];
	size_t i;
	int v, r, ret = AMTCA_E_INTERNAL;

	if (create && ((r = exec1(conn, "BEGIN", "schema", NULL)) != 0 ||
	    (r = exec1(conn, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")",
	    "schema lock", NULL)) != 0 ||
	    (r = exec1(conn, "CREATE SCHEMA IF NOT EXISTS amtca", "schema "
	    "creation", NULL)) != 0)) {
		ret = r;
		goto out;
	}
	if ((r = exec1(conn, "SELECT to_regnamespace('amtca') IS NOT NULL, "
	    "to_regclass('amtca.schema_version') IS NOT NULL, (SELECT count(*) "
	    "FROM pg_class WHERE relnamespace = to_regnamespace('amtca'))",
	    "schema check", &res)) != 0) {
		ret = r;
		goto out;
	}
	if (!truth(res, 0, 0)) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "PostgreSQL database %s holds "
		    "no amtca store", p->db);
		goto out;
	}
	if (!truth(res, 0, 1) && (!create || ival(res, 0, 2) != 0)) {
		ret = amtca_fail(AMTCA_E_STORE, "PostgreSQL database %s: schema "
		    "amtca is not an amtca store (no schema_version table)", p->db);
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (create && (r = exec1(conn, "CREATE TABLE IF NOT EXISTS "
	    "schema_version (version integer PRIMARY KEY, applied_at bigint "
	    "NOT NULL)", "schema creation", NULL)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = exec1(conn, "SELECT coalesce(max(version), 0) FROM "
	    "schema_version", "schema check", &res)) != 0) {
		ret = r;
		goto out;
	}
	v = (int)ival(res, 0, 0);
	PQclear(res);
	res = NULL;
	if ((r = version_ok(p, v, create)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; create && i < sizeof(migrations) / sizeof(migrations[0]); i++) {
		if (migrations[i].version <= v)
			continue;
		if ((r = exec1(conn, migrations[i].sql, "schema migration",
		    NULL)) != 0) {
			ret = r;
			goto out;
		}
		memset(&a, 0, sizeof(a));
		snprintf(ver, sizeof(ver), "%d", migrations[i].version);
		vals[0] = ver;
		res = PQexecParams(conn, "INSERT INTO schema_version (version, "
		    "applied_at) VALUES ($1, extract(epoch FROM now())::bigint)",
		    1, NULL, vals, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			ret = pq_fail(conn, res, "schema migration");
			goto out;
		}
		PQclear(res);
		res = NULL;
	}
	if (create && (r = exec1(conn, "COMMIT", "schema commit", NULL)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	if (ret != 0 && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
	return ret;
}

static void
pg_close(void *be)
{
	struct pg *p = be;
	struct pgc *c;

	if (p == NULL)
		return;
	while ((c = p->idle) != NULL) {
		p->idle = c->next;
		PQfinish(c->conn);
		free(c);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->uri);
	free(p->db);
	free(p);
}

static int
pg_open_uri(const char *uri, int create, void **out)
{
	struct pg *p = NULL;
	struct pgc *c = NULL;
	char *dbname = NULL, first[STORE_MSG_MAX * 2];
	int r, m, reached, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((r = check_uri(uri, &dbname)) != 0)
		return r;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		free(dbname);
		return AMTCA_E_NOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((p->uri = strdup(uri)) == NULL || (p->db = strdup(dbname ?
	    dbname : "(the user's)")) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = conn_new(p, &c, &reached)) != 0) {
		if (reached) {
			ret = r;
			goto out;
		}
		/* Unreachable, or no such database: only the latter is ours. */
		snprintf(first, sizeof(first), "%s", amtca_errmsg(r));
		if ((m = missing_db(uri, dbname, create)) < 0) {
			ret = m;
			goto out;
		}
		if (m != 1) {
			ret = amtca_fail(r, "%s", first);
			goto out;
		}
		if ((r = conn_new(p, &c, &reached)) != 0) {
			ret = r;
			goto out;
		}
	}
	p->open = 1;
	if ((r = schema(p, c->conn, create)) != 0) {
		ret = r;
		goto out;
	}
	conn_put(p, c);
	c = NULL;
	*out = p;
	p = NULL;
	ret = 0;
out:
	if (c != NULL) {
		PQfinish(c->conn);
		free(c);
	}
	pg_close(p);
	free(dbname);
	return ret;
}

static int
pg_destroy_uri(const char *uri)
{
	PGconn *conn = NULL;
	char *dbname = NULL, first[STORE_MSG_MAX * 2];
	int r, m, ret = AMTCA_E_INTERNAL;

	if ((r = check_uri(uri, &dbname)) != 0)
		return r;
	if ((conn = connect_to(uri, NULL)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		r = pq_fail(conn, NULL, "connection");
		snprintf(first, sizeof(first), "%s", amtca_errmsg(r));
		m = missing_db(uri, dbname, 0);
		/* No database, no store. */
		ret = m == AMTCA_E_NOT_FOUND ? 0 : amtca_fail(r, "%s", first);
		goto out;
	}
	if ((r = exec1(conn, "DROP SCHEMA IF EXISTS amtca CASCADE",
	    "removal", NULL)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	PQfinish(conn);
	free(dbname);
	return ret;
}

/* store.c hands over what follows "scheme:"; libpq wants the whole URI. */
static int
with_scheme(const char *scheme, const char *loc, char **uri)
{
	if (asprintf(uri, "%s:%s", scheme, loc) == -1) {
		*uri = NULL;
		return AMTCA_E_NOMEM;
	}
	return 0;
}

static int
pg_open_postgresql(const char *loc, int create, void **out)
{
	char *uri;
	int r;

	*out = NULL;
	if ((r = with_scheme("postgresql", loc, &uri)) != 0)
		return r;
	r = pg_open_uri(uri, create, out);
	free(uri);
	return r;
}

static int
pg_open_postgres(const char *loc, int create, void **out)
{
	char *uri;
	int r;

	*out = NULL;
	if ((r = with_scheme("postgres", loc, &uri)) != 0)
		return r;
	r = pg_open_uri(uri, create, out);
	free(uri);
	return r;
}

static int
pg_destroy_postgresql(const char *loc)
{
	char *uri;
	int r;

	if ((r = with_scheme("postgresql", loc, &uri)) != 0)
		return r;
	r = pg_destroy_uri(uri);
	free(uri);
	return r;
}

static int
pg_destroy_postgres(const char *loc)
{
	char *uri;
	int r;

	if ((r = with_scheme("postgres", loc, &uri)) != 0)
		return r;
	r = pg_destroy_uri(uri);
	free(uri);
	return r;
}

/* --- certificates --------------------------------------------------------- */

static void
fail_rest(struct store_rec **recs, size_t n, int code, const char *msg)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (recs[i]->result == 0) {
			recs[i]->result = code;
			snprintf(recs[i]->msg, sizeof(recs[i]->msg), "%s", msg);
		}
}

/* The next query's first result in a pipeline, its closing NULL consumed. */
static PGresult *
pipe_next(PGconn *conn)
{
	PGresult *res = PQgetResult(conn), *extra;

	if (res == NULL || PQresultStatus(res) == PGRES_PIPELINE_SYNC)
		return res;
	while ((extra = PQgetResult(conn)) != NULL)
		PQclear(extra);
	return res;
}

/*
 * BEGIN, the INSERTs, COMMIT: sent in one pipeline, then the results read
 * in order.  A row count of 0 is a serial already recorded.  *broken: the
 * connection broke (every record then failed).
 */
static void
batch_once(struct pg *p, struct store_rec **recs, size_t n, int *broken)
{
	struct pgc *c = NULL;
	PGresult *res = NULL;
	struct prm a;
	const struct store_cert *ct;
	char msg[STORE_MSG_MAX];
	size_t i;
	int r, failed = 0, sent = 0;

	msg[0] = '\0';
	*broken = 0;
	for (i = 0; i < n; i++) {
		recs[i]->result = 0;
		recs[i]->msg[0] = '\0';
	}
	if ((r = conn_get(p, &c)) != 0) {
		fail_rest(recs, n, r, amtca_errmsg(r));
		return;
	}
	if (!c->prepared) {
		res = PQprepare(c->conn, "ins", ins_sql, 8, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			r = pq_fail(c->conn, res, "prepare");
			fail_rest(recs, n, r, amtca_errmsg(r));
			*broken = PQstatus(c->conn) == CONNECTION_BAD;
			goto out;
		}
		PQclear(res);
		res = NULL;
		c->prepared = 1;
	}
	if (PQenterPipelineMode(c->conn) != 1 ||
	    PQsendQueryParams(c->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1)
		goto broken;
	for (i = 0; i < n; i++) {
		ct = recs[i]->c;
		memset(&a, 0, sizeof(a));
		p_text(&a, ct->serial);
		p_text(&a, ct->fqdn);
		p_int(&a, (long long)ct->not_before);
		p_int(&a, (long long)ct->not_after);
		p_int(&a, (long long)ct->issued_at);
		p_text(&a, ct->requester);
		p_text(&a, ct->device);
		p_bin(&a, ct->der, ct->der_len);
		if (PQsendQueryPrepared(c->conn, "ins", a.n, a.v, a.len, a.fmt,
		    0) != 1)
			goto broken;
	}
	if (PQsendQueryParams(c->conn, "COMMIT", 0, NULL, NULL, NULL, NULL,
	    0) != 1 || PQpipelineSync(c->conn) != 1)
		goto broken;
	sent = 1;

	res = pipe_next(c->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = pq_fail(c->conn, res, "transaction");
		snprintf(msg, sizeof(msg), "%s", amtca_errmsg(r));
		failed = 1;
	}
	PQclear(res);
	for (i = 0; i < n; i++) {
		res = pipe_next(c->conn);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			if (changed(res) == 0) {
				recs[i]->result = AMTCA_E_EXISTS;
				snprintf(recs[i]->msg, sizeof(recs[i]->msg),
				    "serial %s is already recorded",
				    recs[i]->c->serial);
			}
		} else if (!failed) {
			r = pq_fail(c->conn, res, "insert");
			snprintf(msg, sizeof(msg), "%s", amtca_errmsg(r));
			failed = 1;
		}
		PQclear(res);
	}
	/* An aborted transaction answers COMMIT with "ROLLBACK". */
	res = pipe_next(c->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK ||
	    strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		if (!failed) {
			r = pq_fail(c->conn, res, "commit");
			snprintf(msg, sizeof(msg), "%s", amtca_errmsg(r));
		}
		failed = 1;
	}
	PQclear(res);
	res = pipe_next(c->conn);
	if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
		goto broken;
	PQclear(res);
	res = NULL;
	if (PQexitPipelineMode(c->conn) != 1)
		goto broken;
	if (failed)		/* nothing of this batch is durable */
		fail_rest(recs, n, AMTCA_E_STORE, msg[0] ? msg :
		    "issuance database transaction failed");
	*broken = PQstatus(c->conn) == CONNECTION_BAD;
	goto out;
broken:
	/* The connection is unusable (conn_put drops it): nothing committed
	 * that we know of, so nobody may report success. */
	PQclear(res);
	res = NULL;
	r = pq_fail(c->conn, NULL, sent ? "commit" : "send");
	fail_rest(recs, n, AMTCA_E_STORE, amtca_errmsg(r));
	*broken = 1;
out:
	PQclear(res);
	conn_put(p, c);
}

/*
 * A batch, once more on a fresh connection if the first one broke (a
 * server restart or failover, or an idle connection the server dropped).
 * Nothing is lost either way: if the first attempt's COMMIT did happen,
 * the second finds those serials recorded and reports AMTCA_E_EXISTS, so
 * the caller signs again under a new serial and never hands out a
 * certificate whose record is not durable.
 */
static void
pg_insert_batch(void *be, struct store_rec **recs, size_t n)
{
	struct pg *p = be;
	int broken = 0;

	batch_once(p, recs, n, &broken);
	if (!broken)
		return;
	pool_flush(p);
	batch_once(p, recs, n, &broken);
}

/* Columns in CERT_COLS order, then optionally der. */
static int
row_cert(const PGresult *res, int i, int with_der, struct store_cert *c)
{
	unsigned char *b;
	size_t len = 0;

	memset(c, 0, sizeof(*c));
	if (dupval(res, i, 0, &c->serial) != 0 || dupval(res, i, 1, &c->fqdn) != 0 ||
	    dupval(res, i, 5, &c->status) != 0 ||
	    dupval(res, i, 8, &c->requester) != 0 ||
	    dupval(res, i, 9, &c->device) != 0)
		goto nomem;
	c->not_before = (time_t)ival(res, i, 2);
	c->not_after = (time_t)ival(res, i, 3);
	c->issued_at = (time_t)ival(res, i, 4);
	c->revoke_reason = (int)ival(res, i, 6);
	c->revoked_at = (time_t)ival(res, i, 7);
	if (with_der && !PQgetisnull(res, i, 10)) {
		if ((b = PQunescapeBytea((const unsigned char *)
		    PQgetvalue(res, i, 10), &len)) == NULL)
			goto nomem;
		if (len > 0 && (c->der = malloc(len)) == NULL) {
			PQfreemem(b);
			goto nomem;
		}
		if (len > 0)
			memcpy(c->der, b, len);
		c->der_len = len;
		PQfreemem(b);
	}
	return 0;
nomem:
	store_cert_clear(c);
	return AMTCA_E_NOMEM;
}

/*
 * The rows of `res` into an array of `size`-byte records filled by `row`
 * (cleared with `clear` on failure).
 */
static int
rows(const PGresult *res, size_t size,
    int (*row)(const PGresult *, int, void *), void (*clear)(void *),
    void **out, size_t *n)
{
	unsigned char *v = NULL;
	size_t cnt = 0, i, total = (size_t)PQntuples(res);

	*out = NULL;
	*n = 0;
	if (total > 0 && (v = calloc(total, size)) == NULL)
		return AMTCA_E_NOMEM;
	for (cnt = 0; cnt < total; cnt++)
		if (row(res, (int)cnt, v + cnt * size) != 0) {
			for (i = 0; i < cnt; i++)
				clear(v + i * size);
			free(v);
			return AMTCA_E_NOMEM;
		}
	*out = v;
	*n = total;
	return 0;
}

static int
row_cert_der_v(const PGresult *res, int i, void *c)
{
	return row_cert(res, i, 1, c);
}

static int
row_cert_v(const PGresult *res, int i, void *c)
{
	return row_cert(res, i, 0, c);
}

static void
clear_cert_v(void *c)
{
	store_cert_clear(c);
}

static int
pg_cert_get(void *be, const char *key, struct store_cert **out)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	struct store_cert *c = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	p_text(&a, key);
	if ((r = run(be, "SELECT " CERT_COLS ", der FROM certificates WHERE "
	    "serial = $1", &a, "query", &res, NULL)) != 0)
		return r;
	if (PQntuples(res) == 0) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no certificate with serial %s",
		    key);
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL || row_cert(res, 0, 1, c) != 0) {
		free(c);
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*out = c;
	ret = 0;
out:
	PQclear(res);
	return ret;
}

static int
pg_cert_list(void *be, enum store_cert_filter f, const char *arg,
    struct store_cert **out, size_t *n)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	const char *sql = NULL;
	int with_der = 1, r;

	*out = NULL;
	*n = 0;
	switch (f) {
	case STORE_CERTS_ALL:
		sql = "SELECT " CERT_COLS ", der FROM certificates ORDER BY "
		    "issued_at, seq";
		break;
	case STORE_CERTS_FQDN:
		sql = "SELECT " CERT_COLS ", der FROM certificates WHERE "
		    "lower(fqdn) = lower($1) ORDER BY issued_at, seq";
		p_text(&a, arg);
		break;
	case STORE_CERTS_DEVICE:
		sql = "SELECT " CERT_COLS ", der FROM certificates WHERE "
		    "lower(device) = lower($1) ORDER BY issued_at, seq";
		p_text(&a, arg);
		break;
	case STORE_CERTS_REVOKED:
		sql = "SELECT " CERT_COLS " FROM certificates WHERE status = "
		    "'revoked' ORDER BY issued_at, seq";
		with_der = 0;
		break;
	}
	if (sql == NULL)
		return amtca_fail(AMTCA_E_USAGE, "unknown certificate filter");
	if ((r = run(be, sql, &a, "query", &res, NULL)) != 0)
		return r;
	r = rows(res, sizeof(**out), with_der ? row_cert_der_v : row_cert_v,
	    clear_cert_v, (void **)out, n);
	PQclear(res);
	return r;
}

static int
pg_cert_revoke(void *be, const char *key, int reason, time_t when,
    const char *actor)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	long cnt;
	int r;

	/* The audit entry that SQLite appends in this transaction is not
	 * kept by this backend yet (no audit ops: see docs/deployment.md). */
	(void)actor;
	/* As SQLite: the first revocation fixes reason and date; a later
	 * keyCompromise replaces the reason, keeping the date. */
	p_int(&a, reason);
	p_int(&a, (long long)when);
	p_text(&a, key);
	if ((r = run(be, "UPDATE certificates SET status = 'revoked', "
	    "revoke_reason = $1, revoked_at = CASE WHEN status = 'revoked' THEN "
	    "revoked_at ELSE $2 END WHERE serial = $3 AND (status = 'valid' OR "
	    "($1 = 1 AND revoke_reason IS DISTINCT FROM 1))", &a, "revoke",
	    &res, NULL)) != 0)
		return r;
	cnt = changed(res);
	PQclear(res);
	if (cnt > 0)
		return 0;
	/* Already revoked (fine) or unknown. */
	memset(&a, 0, sizeof(a));
	p_text(&a, key);
	if ((r = run(be, "SELECT 1 FROM certificates WHERE serial = $1", &a,
	    "query", &res, NULL)) != 0)
		return r;
	cnt = PQntuples(res);
	PQclear(res);
	if (cnt == 0)
		return amtca_fail(AMTCA_E_NOT_FOUND, "no certificate with serial %s",
		    key);
	return 0;
}

/* --- devices -------------------------------------------------------------- */

/* As SQLite: descriptive fields left unset keep their value, "" clears. */
#define KEEP(c) " " c " = CASE WHEN excluded." c " IS NULL THEN devices." c \
	" WHEN excluded." c " = '' THEN NULL ELSE excluded." c " END"
#define KEEP_INT(c) " " c " = CASE WHEN excluded." c " = 0 THEN devices." c \
	" ELSE excluded." c " END"

static int
pg_device_put(void *be, const struct store_device *d)
{
	struct prm a = { 0 };

	p_text(&a, d->fqdn);
	p_text(&a, d->address);
	p_text(&a, d->amt_version);
	p_text(&a, d->cert_serial);
	p_text(&a, d->state);
	p_text(&a, d->last_step);
	p_text(&a, d->error);
	p_int(&a, (long long)d->updated_at);
	p_int(&a, d->port);
	p_int(&a, d->tls_port);
	p_text(&a, d->user);
	p_text(&a, d->cred_ref);
	p_text(&a, d->cred_stamp);
	p_text(&a, d->tls_pin);
	return run(be, "INSERT INTO devices (fqdn, address, amt_version, "
	    "cert_serial, state, last_step, error, updated_at, port, tls_port, "
	    "amt_user, cred_ref, cred_stamp, tls_pin) VALUES ($1, $2, $3, $4, "
	    "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (fqdn) DO "
	    "UPDATE SET address = excluded.address, amt_version = "
	    "excluded.amt_version, cert_serial = excluded.cert_serial, state = "
	    "excluded.state, last_step = excluded.last_step, error = "
	    "excluded.error, updated_at = excluded.updated_at,"
	    KEEP_INT("port") "," KEEP_INT("tls_port") "," KEEP("amt_user") ","
	    KEEP("cred_ref") "," KEEP("cred_stamp") "," KEEP("tls_pin"), &a,
	    "device update", NULL, NULL);
}

#define DEVICE_SELECT "SELECT fqdn, address, amt_version, cert_serial, state, " \
	"last_step, error, updated_at, port, tls_port, NULLIF(amt_user, ''), " \
	"NULLIF(cred_ref, ''), NULLIF(cred_stamp, ''), NULLIF(tls_pin, '') " \
	"FROM devices "

static int
row_device(const PGresult *res, int i, void *p)
{
	struct store_device *d = p;

	memset(d, 0, sizeof(*d));
	if (dupval(res, i, 0, &d->fqdn) != 0 || dupval(res, i, 1, &d->address) != 0 ||
	    dupval(res, i, 2, &d->amt_version) != 0 ||
	    dupval(res, i, 3, &d->cert_serial) != 0 ||
	    dupval(res, i, 4, &d->state) != 0 ||
	    dupval(res, i, 5, &d->last_step) != 0 ||
	    dupval(res, i, 6, &d->error) != 0 ||
	    dupval(res, i, 10, &d->user) != 0 ||
	    dupval(res, i, 11, &d->cred_ref) != 0 ||
	    dupval(res, i, 12, &d->cred_stamp) != 0 ||
	    dupval(res, i, 13, &d->tls_pin) != 0) {
		store_device_clear(d);
		return AMTCA_E_NOMEM;
	}
	d->updated_at = (time_t)ival(res, i, 7);
	d->port = (int)ival(res, i, 8);
	d->tls_port = (int)ival(res, i, 9);
	return 0;
}

static void
clear_device_v(void *d)
{
	store_device_clear(d);
}

/* `sql` with at most one text parameter, rows into records. */
static int
list(struct pg *p, const char *sql, const char *arg, size_t size,
    int (*row)(const PGresult *, int, void *), void (*clear)(void *),
    void **out, size_t *n)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	int r;

	*out = NULL;
	*n = 0;
	if (arg != NULL)
		p_text(&a, arg);
	if ((r = run(p, sql, &a, "query", &res, NULL)) != 0)
		return r;
	r = rows(res, size, row, clear, out, n);
	PQclear(res);
	return r;
}

static int
pg_device_get(void *be, const char *fqdn, struct store_device **out)
{
	struct store_device *v = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if ((r = list(be, DEVICE_SELECT "WHERE fqdn = $1", fqdn, sizeof(*v),
	    row_device, clear_device_v, (void **)&v, &n)) != 0)
		return r;
	if (n == 0)
		return amtca_fail(AMTCA_E_NOT_FOUND, "no device %.253s", fqdn);
	*out = v;		/* n is 1: the FQDN is the key */
	return 0;
}

static int
pg_device_list(void *be, struct store_device **out, size_t *n)
{
	return list(be, DEVICE_SELECT "ORDER BY fqdn COLLATE \"C\"", NULL,
	    sizeof(**out), row_device, clear_device_v, (void **)out, n);
}

/* --- jobs ----------------------------------------------------------------- */

#define JOB_SELECT "SELECT id, created_at, finished_at, state, hosts_digest, " \
	"total FROM jobs "

static int
row_job(const PGresult *res, int i, void *p)
{
	struct store_job *j = p;

	memset(j, 0, sizeof(*j));
	if (dupval(res, i, 0, &j->id) != 0 || dupval(res, i, 3, &j->state) != 0 ||
	    dupval(res, i, 4, &j->hosts_digest) != 0) {
		store_job_clear(j);
		return AMTCA_E_NOMEM;
	}
	j->created_at = (time_t)ival(res, i, 1);
	j->finished_at = (time_t)ival(res, i, 2);
	j->total = (unsigned)ival(res, i, 5);
	return 0;
}

static void
clear_job_v(void *j)
{
	store_job_clear(j);
}

static int
pg_job_put(void *be, const struct store_job *j)
{
	struct prm a = { 0 };

	p_text(&a, j->id);
	p_int(&a, (long long)j->created_at);
	p_int(&a, (long long)j->finished_at);
	p_text(&a, j->state);
	p_text(&a, j->hosts_digest);
	p_int(&a, (long long)j->total);
	return run(be, "INSERT INTO jobs (id, created_at, finished_at, state, "
	    "hosts_digest, total) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT "
	    "(id) DO UPDATE SET created_at = excluded.created_at, finished_at = "
	    "excluded.finished_at, state = excluded.state, hosts_digest = "
	    "excluded.hosts_digest, total = excluded.total", &a, "job update",
	    NULL, NULL);
}

static int
pg_job_get(void *be, const char *id, struct store_job **out)
{
	struct store_job *v = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if ((r = list(be, JOB_SELECT "WHERE id = $1", id, sizeof(*v), row_job,
	    clear_job_v, (void **)&v, &n)) != 0)
		return r;
	if (n == 0)
		return amtca_fail(AMTCA_E_NOT_FOUND, "no job %.64s", id);
	*out = v;
	return 0;
}

static int
pg_job_list(void *be, struct store_job **out, size_t *n)
{
	return list(be, JOB_SELECT "ORDER BY created_at DESC, seq DESC", NULL,
	    sizeof(**out), row_job, clear_job_v, (void **)out, n);
}

static int
row_job_device(const PGresult *res, int i, void *p)
{
	struct store_job_device *d = p;

	memset(d, 0, sizeof(*d));
	if (dupval(res, i, 0, &d->job_id) != 0 || dupval(res, i, 1, &d->fqdn) != 0 ||
	    dupval(res, i, 2, &d->result) != 0 ||
	    dupval(res, i, 3, &d->serial) != 0 ||
	    dupval(res, i, 4, &d->error) != 0) {
		store_job_device_clear(d);
		return AMTCA_E_NOMEM;
	}
	d->attempts = (int)ival(res, i, 5);
	d->updated_at = (time_t)ival(res, i, 6);
	return 0;
}

static void
clear_job_device_v(void *d)
{
	store_job_device_clear(d);
}

static int
pg_job_device_put(void *be, const struct store_job_device *d)
{
	struct prm a = { 0 };
	char state[6];
	int r;

	p_text(&a, d->job_id);
	p_text(&a, d->fqdn);
	p_text(&a, d->result);
	p_text(&a, d->serial);
	p_text(&a, d->error);
	p_int(&a, d->attempts);
	p_int(&a, (long long)d->updated_at);
	r = run(be, "INSERT INTO job_devices (job_id, fqdn, result, serial, "
	    "error, attempts, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
	    "ON CONFLICT (job_id, fqdn) DO UPDATE SET result = excluded.result, "
	    "serial = excluded.serial, error = excluded.error, attempts = "
	    "excluded.attempts, updated_at = excluded.updated_at", &a,
	    "job progress update", NULL, state);
	/* 23503: the job's foreign key. */
	if (r == AMTCA_E_STORE && strcmp(state, "23503") == 0)
		return amtca_fail(AMTCA_E_NOT_FOUND, "no job %.64s", d->job_id);
	return r;
}

static int
pg_job_device_list(void *be, const char *job_id,
    struct store_job_device **out, size_t *n)
{
	return list(be, "SELECT job_id, fqdn, result, serial, error, attempts, "
	    "updated_at FROM job_devices WHERE job_id = $1 ORDER BY fqdn "
	    "COLLATE \"C\"", job_id, sizeof(**out), row_job_device,
	    clear_job_device_v, (void **)out, n);
}

/* --- leases --------------------------------------------------------------- */

/*
 * One statement decides: the upsert's WHERE is evaluated on the row as
 * locked, so two takers (on any node) of a free or dead owner's lease
 * cannot both see their row count 1.
 */
static int
pg_lease_take(void *be, const char *name, const char *owner, time_t now,
    int ttl_s, const char *takeover, char **holder, time_t *expires)
{
	PGresult *res = NULL;
	struct prm a;
	int try, r;
	long cnt;

	for (try = 0; try < AMTCA_STORE_PG_LEASE_TRIES; try++) {
		memset(&a, 0, sizeof(a));
		p_text(&a, name);
		p_text(&a, owner);
		p_int(&a, (long long)now);
		p_int(&a, ttl_s);
		p_text(&a, takeover);
		if ((r = run(be, "INSERT INTO leases (name, owner, expires_at) "
		    "VALUES ($1, $2, $3::bigint + $4::bigint) ON CONFLICT (name) "
		    "DO UPDATE SET owner = excluded.owner, expires_at = "
		    "excluded.expires_at WHERE leases.expires_at <= $3::bigint OR "
		    "leases.owner = $2 OR leases.owner = $5::text", &a, "lease",
		    &res, NULL)) != 0)
			return r;
		cnt = changed(res);
		PQclear(res);
		res = NULL;
		if (cnt == 1)
			return 0;
		memset(&a, 0, sizeof(a));
		p_text(&a, name);
		p_int(&a, (long long)now);
		p_text(&a, owner);
		p_text(&a, takeover);
		if ((r = run(be, "SELECT owner, expires_at FROM leases WHERE name = "
		    "$1 AND expires_at > $2::bigint AND owner <> $3 AND owner IS "
		    "DISTINCT FROM $4::text", &a, "lease", &res, NULL)) != 0)
			return r;
		if (PQntuples(res) == 1) {
			if (holder != NULL &&
			    (*holder = strdup(PQgetvalue(res, 0, 0))) == NULL) {
				PQclear(res);
				return AMTCA_E_NOMEM;
			}
			if (expires != NULL)
				*expires = (time_t)ival(res, 0, 1);
			PQclear(res);
			return AMTCA_E_EXISTS;
		}
		/* Released or lapsed between the two statements: again. */
		PQclear(res);
		res = NULL;
	}
	return amtca_fail(AMTCA_E_STORE, "lease %.300s keeps changing hands",
	    name);
}

static int
pg_lease_renew(void *be, const char *name, const char *owner, time_t now,
    int ttl_s)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	long cnt;
	int r;

	p_text(&a, name);
	p_text(&a, owner);
	p_int(&a, (long long)now + ttl_s);
	if ((r = run(be, "UPDATE leases SET expires_at = $3 WHERE name = $1 AND "
	    "owner = $2", &a, "lease", &res, NULL)) != 0)
		return r;
	cnt = changed(res);
	PQclear(res);
	if (cnt == 0)
		return amtca_fail(AMTCA_E_NOT_FOUND, "lease %.300s is no longer "
		    "held by this process", name);
	return 0;
}

static int
pg_lease_release(void *be, const char *name, const char *owner)
{
	struct prm a = { 0 };

	p_text(&a, name);
	p_text(&a, owner);
	return run(be, "DELETE FROM leases WHERE name = $1 AND owner = $2", &a,
	    "lease", NULL, NULL);
}

/* --- credentials ---------------------------------------------------------- */

#define CRED_COLS "name, amt_user, mechanism, created_at, updated_at"

static int
row_cred(const PGresult *res, int i, int with_blob, struct store_cred *c)
{
	unsigned char *b;
	size_t len = 0;

	memset(c, 0, sizeof(*c));
	if (dupval(res, i, 0, &c->name) != 0 || dupval(res, i, 1, &c->user) != 0 ||
	    dupval(res, i, 2, &c->mechanism) != 0)
		goto nomem;
	c->created_at = (time_t)ival(res, i, 3);
	c->updated_at = (time_t)ival(res, i, 4);
	if (with_blob && !PQgetisnull(res, i, 5)) {
		if ((b = PQunescapeBytea((const unsigned char *)
		    PQgetvalue(res, i, 5), &len)) == NULL)
			goto nomem;
		if (len > 0 && (c->sealed = malloc(len)) == NULL) {
			PQfreemem(b);
			goto nomem;
		}
		if (len > 0)
			memcpy(c->sealed, b, len);
		c->sealed_len = len;
		PQfreemem(b);
	}
	return 0;
nomem:
	store_cred_clear(c);
	return AMTCA_E_NOMEM;
}

static int
row_cred_v(const PGresult *res, int i, void *c)
{
	return row_cred(res, i, 0, c);
}

static void
clear_cred_v(void *c)
{
	store_cred_clear(c);
}

static int
pg_cred_put(void *be, const struct store_cred *c)
{
	struct prm a = { 0 };

	p_text(&a, c->name);
	p_text(&a, c->user);
	p_bin(&a, c->sealed, c->sealed_len);
	p_text(&a, c->mechanism);
	p_int(&a, (long long)c->created_at);
	p_int(&a, (long long)c->updated_at);
	/* A replacement keeps the first created_at. */
	return run(be, "INSERT INTO credentials (name, amt_user, sealed, "
	    "mechanism, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) "
	    "ON CONFLICT (name) DO UPDATE SET amt_user = excluded.amt_user, "
	    "sealed = excluded.sealed, mechanism = excluded.mechanism, "
	    "updated_at = excluded.updated_at", &a, "credential update", NULL,
	    NULL);
}

static int
pg_cred_get(void *be, const char *name, struct store_cred **out)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	struct store_cred *c = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	p_text(&a, name);
	if ((r = run(be, "SELECT " CRED_COLS ", sealed FROM credentials WHERE "
	    "name = $1", &a, "query", &res, NULL)) != 0)
		return r;
	if (PQntuples(res) == 0) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no credential %.64s", name);
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL || row_cred(res, 0, 1, c) != 0) {
		free(c);
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*out = c;
	ret = 0;
out:
	PQclear(res);
	return ret;
}

static int
pg_cred_list(void *be, struct store_cred **out, size_t *n)
{
	return list(be, "SELECT " CRED_COLS " FROM credentials ORDER BY name "
	    "COLLATE \"C\"", NULL, sizeof(**out), row_cred_v, clear_cred_v,
	    (void **)out, n);
}

static int
pg_cred_remove(void *be, const char *name)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	int r, ret;

	p_text(&a, name);
	if ((r = run(be, "DELETE FROM credentials WHERE name = $1", &a,
	    "credential removal", &res, NULL)) != 0)
		return r;
	ret = strcmp(PQcmdTuples(res), "0") == 0 ? amtca_fail(AMTCA_E_NOT_FOUND,
	    "no credential %.64s", name) : 0;
	PQclear(res);
	return ret;
}

#define PG_OPS \
	.close = pg_close, \
	.insert_batch = pg_insert_batch, \
	.cert_get = pg_cert_get, \
	.cert_list = pg_cert_list, \
	.cert_revoke = pg_cert_revoke, \
	.device_put = pg_device_put, \
	.device_get = pg_device_get, \
	.device_list = pg_device_list, \
	.job_put = pg_job_put, \
	.job_get = pg_job_get, \
	.job_list = pg_job_list, \
	.job_device_put = pg_job_device_put, \
	.job_device_list = pg_job_device_list, \
	.lease_take = pg_lease_take, \
	.lease_renew = pg_lease_renew, \
	.lease_release = pg_lease_release, \
	.cred_put = pg_cred_put, \
	.cred_get = pg_cred_get, \
	.cred_list = pg_cred_list, \
	.cred_remove = pg_cred_remove

const struct store_ops store_pg_ops = {
	.scheme = "postgresql",
	.open = pg_open_postgresql,
	.destroy = pg_destroy_postgresql,
	PG_OPS,
};

/* libpq's other spelling of the scheme. */
const struct store_ops store_pg_alias_ops = {
	.scheme = "postgres",
	.open = pg_open_postgres,
	.destroy = pg_destroy_postgres,
	PG_OPS,
};
