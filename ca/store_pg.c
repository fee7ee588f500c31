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

#include "ca/audit.h"
#include "common/limits.h"

/* The newest schema this amtca knows (the last entry of migrations[]). */
#define PG_SCHEMA_VERSION 5

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
    " expires_at bigint NOT NULL);";

/*
 * Version 2 holds what SQLite's schema 3 adds: admin and EST clients,
 * sealed AMT credentials, and the audit trail with its seals.  The chain's
 * head is the one row of audit_head: every append reads it with SELECT ...
 * FOR UPDATE inside its transaction, so appends from any number of nodes
 * queue on that row lock and never fork the chain; the head row and the
 * entries change in the same transaction.
 */
static const char migrate_v2_sql[] =
    "CREATE TABLE clients ("
    " name text PRIMARY KEY,"
    " roles bigint NOT NULL,"
    " allow text,"
    " pwhash text,"
    " serial text,"
    " created_at bigint NOT NULL,"
    " removed_at bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX clients_serial ON clients (serial) WHERE serial IS NOT NULL;"
    /* IF NOT EXISTS: an interim version 1 (never released) had it. */
    "CREATE TABLE IF NOT EXISTS credentials ("
    " name text PRIMARY KEY,"
    " amt_user text NOT NULL,"
    " sealed bytea NOT NULL,"
    " mechanism text NOT NULL,"
    " created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL);"
    "CREATE TABLE audit ("
    " seq bigint PRIMARY KEY CHECK (seq > 0),"
    " time bigint NOT NULL,"
    " actor text NOT NULL,"
    " action text NOT NULL,"
    " subject text NOT NULL,"
    " detail text NOT NULL,"
    " prev bytea NOT NULL,"
    " hash bytea NOT NULL);"
    "CREATE TABLE audit_head ("
    " one boolean PRIMARY KEY DEFAULT true CHECK (one),"
    " seq bigint NOT NULL,"
    " hash bytea NOT NULL);"
    "INSERT INTO audit_head (seq, hash) VALUES (0, decode(repeat('00', 32),"
    " 'hex'));"
    "CREATE TABLE audit_seals ("
    " seq bigint PRIMARY KEY,"
    " hash bytea NOT NULL,"
    " sig bytea NOT NULL,"
    " time bigint NOT NULL);";

/*
 * Version 3 holds what SQLite's schema 4 adds (intermediate rotation,
 * docs/rotation.md): each certificate's issuing intermediate (its key id;
 * NULL in older rows: the first intermediate's) and the CA's own
 * certificates.
 */
static const char migrate_v3_sql[] =
    "ALTER TABLE certificates ADD COLUMN issuer text;"
    "CREATE INDEX certificates_revoked_issuer ON certificates (issuer)"
    " WHERE status = 'revoked';"
    "CREATE TABLE ca_certs ("
    " keyid text PRIMARY KEY,"
    " role text NOT NULL,"
    " generation integer NOT NULL,"
    " subject text NOT NULL,"
    " serial text NOT NULL,"
    " not_after bigint NOT NULL,"
    " state text NOT NULL CHECK (state IN ('current','retired','ended',"
    "'revoked')),"
    " revoke_reason integer,"
    " created_at bigint NOT NULL,"
    " revoked_at bigint,"
    " der bytea NOT NULL);";

/*
 * Version 4 (issue 11, several nodes): job claims on each device's row of
 * a job, and the indexes the claim and the CRL cache's revocation mark
 * read.  Version 3 is the intermediate rotation's.
 */
static const char migrate_v4_sql[] =
    "ALTER TABLE job_devices ADD COLUMN claimed_by text;"
    "ALTER TABLE job_devices ADD COLUMN claim_expires bigint NOT NULL"
    " DEFAULT 0;"
    "CREATE INDEX job_devices_pending ON job_devices (job_id, fqdn)"
    " WHERE result = 'pending';"
    "CREATE INDEX audit_revoke ON audit (seq) WHERE action = 'cert.revoke';";

/* Version 5: the shared configuration (store_meta_*, init --join). */
static const char migrate_v5_sql[] =
    "CREATE TABLE meta ("
    " name text PRIMARY KEY,"
    " value bytea NOT NULL,"
    " updated_at bigint NOT NULL);";

static const struct {
	int version;
	const char *sql;
} migrations[] = {
	{ 1, migrate_v1_sql },
	{ 2, migrate_v2_sql },
	{ 3, migrate_v3_sql },
	{ 4, migrate_v4_sql },
	{ 5, migrate_v5_sql },
};

static const char ins_sql[] =
    "INSERT INTO certificates (serial, fqdn, not_before, not_after,"
    " issued_at, status, requester, device, der, issuer) VALUES ($1, $2, $3,"
    " $4, $5, 'valid', $6, $7, $8, $9) ON CONFLICT (serial) DO NOTHING";

#define CERT_COLS "serial, fqdn, not_before, not_after, issued_at, status, " \
	"revoke_reason, revoked_at, requester, device, issuer"

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

/* The detail of a cert.issue entry (as SQLite writes it). */
static void
issue_detail(const struct store_cert *c, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len, "fqdn=%s", c->fqdn);
	if (n > 0 && (size_t)n < len && c->device != NULL)
		n += snprintf(buf + n, len - (size_t)n, " device=%s", c->device);
	if (n > 0 && (size_t)n < len && c->requester != NULL)
		(void)snprintf(buf + n, len - (size_t)n, " requester=%s",
		    c->requester);
}

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

/* The 32 bytes of a bytea column (text format); zeros for anything else. */
static int
col_hash(const PGresult *res, int row, int col,
    unsigned char out[STORE_AUDIT_HASH_LEN])
{
	unsigned char *b;
	size_t len = 0;

	memset(out, 0, STORE_AUDIT_HASH_LEN);
	if (PQgetisnull(res, row, col))
		return 0;
	if ((b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row,
	    col), &len)) == NULL)
		return AMTCA_E_NOMEM;
	if (len == STORE_AUDIT_HASH_LEN)
		memcpy(out, b, STORE_AUDIT_HASH_LEN);
	PQfreemem(b);
	return 0;
}

/* The locked head row's result into *seq and hash. */
static int
head_read(PGconn *conn, const PGresult *res, uint64_t *seq,
    unsigned char hash[STORE_AUDIT_HASH_LEN])
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return pq_fail(conn, res, "audit head");
	if (PQntuples(res) != 1 || ival(res, 0, 0) < 0)
		return amtca_fail(AMTCA_E_AUDIT, "issuance database: the audit "
		    "trail's head is damaged; run 'amtca audit verify'");
	*seq = (uint64_t)ival(res, 0, 0);
	return col_hash(res, 0, 1, hash);
}

static const char head_sql[] = "SELECT seq, hash FROM audit_head FOR UPDATE";
static const char ains_sql[] =
    "INSERT INTO audit (seq, time, actor, action, subject, detail, prev, "
    "hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
static const char head_set_sql[] =
    "UPDATE audit_head SET seq = $1, hash = $2";

/*
 * The parameters of the entry after (*seq, hash), advancing both (the
 * entry's own prev goes to `prev`, which must outlive `a`).
 */
static int
entry_params(struct prm *a, uint64_t *seq, unsigned char hash[STORE_AUDIT_HASH_LEN],
    unsigned char prev[STORE_AUDIT_HASH_LEN], const char *actor,
    const char *action, const char *subject, const char *detail)
{
	unsigned char h[STORE_AUDIT_HASH_LEN];
	int64_t now = (int64_t)time(NULL);
	int r;

	if ((r = audit_entry_hash(hash, *seq + 1, now, actor, action, subject,
	    detail, h)) != 0)
		return r;
	memcpy(prev, hash, STORE_AUDIT_HASH_LEN);
	memcpy(hash, h, STORE_AUDIT_HASH_LEN);
	*seq += 1;
	memset(a, 0, sizeof(*a));
	p_int(a, (long long)*seq);
	p_int(a, (long long)now);
	p_text(a, actor);
	p_text(a, action);
	p_text(a, subject);
	p_text(a, detail);
	p_bin(a, prev, STORE_AUDIT_HASH_LEN);
	return 0;
}

/* Prepare the batch's statements on a fresh pooled connection. */
static int
prepare_batch(struct pgc *c)
{
	static const struct {
		const char *name, *sql;
		int n;
	} stmts[] = {
		{ "ins", ins_sql, 9 },
		{ "ains", ains_sql, 8 },
		{ "head", head_sql, 0 },
		{ "headset", head_set_sql, 2 },
	};
	PGresult *res;
	size_t i;
	int r;

	for (i = 0; !c->prepared && i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		res = PQprepare(c->conn, stmts[i].name, stmts[i].sql, stmts[i].n,
		    NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			r = pq_fail(c->conn, res, "prepare");
			PQclear(res);
			return r;
		}
		PQclear(res);
	}
	c->prepared = 1;
	return 0;
}

/*
 * One batch, in two pipelined round trips on one connection:
 *   1. BEGIN, the head row locked (FOR UPDATE), one INSERT ... ON CONFLICT
 *      DO NOTHING per record, Sync: a row count of 0 is a serial already
 *      recorded (by this node or another), which fails only that record;
 *   2. one audit entry per inserted record, chained on the head read in
 *      step 1, the head row moved on, COMMIT, Sync.
 * The head's row lock is held from step 1 to COMMIT, so batches and
 * appends of other nodes queue behind it and the chain never forks.  Any
 * failure rolls everything back: no record reports 0 unless COMMIT
 * answered COMMIT.  *broken: the connection broke.
 */
static void
batch_once(struct pg *p, struct store_rec **recs, size_t n, int *broken)
{
	struct pgc *c = NULL;
	PGresult *res = NULL;
	struct prm a;
	const struct store_cert *ct;
	char msg[STORE_MSG_MAX], detail[AMTCA_AUDIT_DETAIL_MAX + 1];
	unsigned char hash[STORE_AUDIT_HASH_LEN], *prevs = NULL;
	uint64_t seq = 0;
	size_t i, added = 0;
	int r, failed = 0, sent = 0;

	msg[0] = '\0';
	*broken = 0;
	for (i = 0; i < n; i++) {
		recs[i]->result = 0;
		recs[i]->msg[0] = '\0';
	}
	if ((prevs = calloc(n, STORE_AUDIT_HASH_LEN)) == NULL) {
		fail_rest(recs, n, AMTCA_E_NOMEM, "out of memory");
		return;
	}
	if ((r = conn_get(p, &c)) != 0) {
		fail_rest(recs, n, r, amtca_errmsg(r));
		free(prevs);
		return;
	}
	if ((r = prepare_batch(c)) != 0) {
		fail_rest(recs, n, r, amtca_errmsg(r));
		*broken = PQstatus(c->conn) == CONNECTION_BAD;
		goto out;
	}
	if (PQenterPipelineMode(c->conn) != 1 ||
	    PQsendQueryParams(c->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(c->conn, "head", 0, NULL, NULL, NULL, 0) != 1)
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
		p_text(&a, ct->issuer);
		if (PQsendQueryPrepared(c->conn, "ins", a.n, a.v, a.len, a.fmt,
		    0) != 1)
			goto broken;
	}
	if (PQpipelineSync(c->conn) != 1)
		goto broken;

	res = pipe_next(c->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = pq_fail(c->conn, res, "transaction");
		snprintf(msg, sizeof(msg), "%s", amtca_errmsg(r));
		failed = 1;
	}
	PQclear(res);
	res = pipe_next(c->conn);
	if (!failed && (r = head_read(c->conn, res, &seq, hash)) != 0) {
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
	res = pipe_next(c->conn);
	if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
		goto broken;
	PQclear(res);
	res = NULL;

	/* Step 2: the entries, or a rollback. */
	for (i = 0; !failed && i < n; i++) {
		if (recs[i]->result != 0)
			continue;
		ct = recs[i]->c;
		issue_detail(ct, detail, sizeof(detail));
		if ((r = entry_params(&a, &seq, hash, prevs + added *
		    STORE_AUDIT_HASH_LEN, recs[i]->actor, "cert.issue",
		    ct->serial, detail)) != 0) {
			snprintf(msg, sizeof(msg), "%s", amtca_errmsg(r));
			failed = 1;
			break;
		}
		p_bin(&a, hash, STORE_AUDIT_HASH_LEN);
		/* hash changes on the next entry: libpq copies on send. */
		if (PQsendQueryPrepared(c->conn, "ains", a.n, a.v, a.len, a.fmt,
		    0) != 1)
			goto broken;
		added++;
	}
	if (failed) {
		if (PQsendQueryParams(c->conn, "ROLLBACK", 0, NULL, NULL, NULL,
		    NULL, 0) != 1 || PQpipelineSync(c->conn) != 1)
			goto broken;
		PQclear(pipe_next(c->conn));
		res = pipe_next(c->conn);
		if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
			goto broken;
		PQclear(res);
		res = NULL;
		goto done;
	}
	memset(&a, 0, sizeof(a));
	p_int(&a, (long long)seq);
	p_bin(&a, hash, STORE_AUDIT_HASH_LEN);
	if ((added > 0 && PQsendQueryPrepared(c->conn, "headset", a.n, a.v,
	    a.len, a.fmt, 0) != 1) ||
	    PQsendQueryParams(c->conn, "COMMIT", 0, NULL, NULL, NULL, NULL,
	    0) != 1 || PQpipelineSync(c->conn) != 1)
		goto broken;
	sent = 1;
	for (i = 0; i < added + (added > 0); i++) {
		res = pipe_next(c->conn);
		if (PQresultStatus(res) != PGRES_COMMAND_OK && !failed) {
			r = pq_fail(c->conn, res, "audit append");
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
done:
	if (PQexitPipelineMode(c->conn) != 1)
		goto broken;
	if (failed) {		/* nothing of this batch is durable */
		fail_rest(recs, n, AMTCA_E_STORE, msg[0] ? msg :
		    "issuance database transaction failed");
	}
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
	free(prevs);
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
	    dupval(res, i, 9, &c->device) != 0 ||
	    dupval(res, i, 10, &c->issuer) != 0)
		goto nomem;
	c->not_before = (time_t)ival(res, i, 2);
	c->not_after = (time_t)ival(res, i, 3);
	c->issued_at = (time_t)ival(res, i, 4);
	c->revoke_reason = (int)ival(res, i, 6);
	c->revoked_at = (time_t)ival(res, i, 7);
	if (with_der && !PQgetisnull(res, i, 11)) {
		if ((b = PQunescapeBytea((const unsigned char *)
		    PQgetvalue(res, i, 11), &len)) == NULL)
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
	case STORE_CERTS_REVOKED_BY:
		sql = "SELECT " CERT_COLS " FROM certificates WHERE status = "
		    "'revoked' AND issuer = $1 ORDER BY issued_at, seq";
		p_text(&a, arg);
		with_der = 0;
		break;
	case STORE_CERTS_REVOKED_BY_FIRST:
		sql = "SELECT " CERT_COLS " FROM certificates WHERE status = "
		    "'revoked' AND (issuer = $1 OR issuer IS NULL) ORDER BY "
		    "issued_at, seq";
		p_text(&a, arg);
		with_der = 0;
		break;
	case STORE_CERTS_VALID_BY:
		sql = "SELECT " CERT_COLS " FROM certificates WHERE status = "
		    "'valid' AND issuer = $1 ORDER BY issued_at, seq";
		p_text(&a, arg);
		with_der = 0;
		break;
	case STORE_CERTS_VALID_BY_FIRST:
		sql = "SELECT " CERT_COLS " FROM certificates WHERE status = "
		    "'valid' AND (issuer = $1 OR issuer IS NULL) ORDER BY "
		    "issued_at, seq";
		p_text(&a, arg);
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

/* --- transactions with audit entries ------------------------------------- */

/*
 * Borrow a connection and BEGIN on it; once more on a fresh one if the
 * connection broke (nothing of the transaction was sent yet).
 */
static int
tx_begin(struct pg *p, struct pgc **out)
{
	PGresult *res;
	int r, attempt;

	for (attempt = 0;; attempt++) {
		if ((r = conn_get(p, out)) != 0)
			return r;
		res = PQexec((*out)->conn, "BEGIN");
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			PQclear(res);
			return 0;
		}
		r = pq_fail((*out)->conn, res, "transaction");
		PQclear(res);
		if (PQstatus((*out)->conn) != CONNECTION_BAD || attempt > 0) {
			conn_put(p, *out);
			*out = NULL;
			return r;
		}
		conn_put(p, *out);
		*out = NULL;
		pool_flush(p);
	}
}

/* COMMIT (when `ok` is 0) or roll back, and return the connection. */
static int
tx_end(struct pg *p, struct pgc *c, int ok)
{
	PGresult *res;

	if (ok == 0) {
		res = PQexec(c->conn, "COMMIT");
		if (PQresultStatus(res) != PGRES_COMMAND_OK ||
		    strcmp(PQcmdStatus(res), "COMMIT") != 0)
			ok = pq_fail(c->conn, res, "commit");
		PQclear(res);
	}
	conn_put(p, c);		/* rolls back whatever is still open */
	return ok;
}

/* One statement inside the caller's transaction. */
static int
tx_exec(struct pgc *c, const char *sql, const struct prm *a, const char *what,
    PGresult **out)
{
	PGresult *res;
	ExecStatusType st;
	int r;

	if (out != NULL)
		*out = NULL;
	res = PQexecParams(c->conn, sql, a ? a->n : 0, NULL, a ? a->v : NULL,
	    a ? a->len : NULL, a ? a->fmt : NULL, 0);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		r = pq_fail(c->conn, res, what);
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
 * Append one entry inside the caller's transaction: the head row locked,
 * the entry chained on it, the head moved on.  *seq and hash: the entry's.
 */
static int
audit_put(struct pgc *c, const char *actor, const char *action,
    const char *subject, const char *detail, uint64_t *seq,
    unsigned char hash[STORE_AUDIT_HASH_LEN])
{
	PGresult *res = NULL;
	struct prm a;
	unsigned char prev[STORE_AUDIT_HASH_LEN];
	int r;

	*seq = 0;
	res = PQexec(c->conn, head_sql);
	r = head_read(c->conn, res, seq, hash);
	PQclear(res);
	if (r != 0)
		return r;
	if ((r = entry_params(&a, seq, hash, prev, actor, action,
	    subject != NULL ? subject : "", detail != NULL ? detail : "")) != 0)
		return r;
	p_bin(&a, hash, STORE_AUDIT_HASH_LEN);
	if ((r = tx_exec(c, ains_sql, &a, "audit append", NULL)) != 0)
		return r;
	memset(&a, 0, sizeof(a));
	p_int(&a, (long long)*seq);
	p_bin(&a, hash, STORE_AUDIT_HASH_LEN);
	return tx_exec(c, head_set_sql, &a, "audit append", NULL);
}

static int
pg_cert_revoke(void *be, const char *key, int reason, time_t when,
    const char *actor)
{
	struct pg *p = be;
	struct pgc *c = NULL;
	PGresult *res = NULL;
	struct prm a = { 0 };
	char detail[AMTCA_AUDIT_FIELD_MAX + 64];
	unsigned char hash[STORE_AUDIT_HASH_LEN];
	uint64_t seq;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = tx_begin(p, &c)) != 0)
		return r;
	/*
	 * As SQLite: the first revocation fixes reason and date; a later
	 * keyCompromise replaces the reason, keeping the date.  The change
	 * and its audit entry commit together.
	 */
	p_int(&a, reason);
	p_int(&a, (long long)when);
	p_text(&a, key);
	if ((r = tx_exec(c, "UPDATE certificates SET status = 'revoked', "
	    "revoke_reason = $1, revoked_at = CASE WHEN status = 'revoked' THEN "
	    "revoked_at ELSE $2 END WHERE serial = $3 AND (status = 'valid' OR "
	    "($1 = 1 AND revoke_reason IS DISTINCT FROM 1)) RETURNING fqdn, "
	    "revoke_reason", &a, "revoke", &res)) != 0) {
		ret = r;
		goto out;
	}
	if (PQntuples(res) == 1) {
		snprintf(detail, sizeof(detail), "reason=%d fqdn=%s",
		    (int)ival(res, 0, 1), PQgetvalue(res, 0, 0));
		if ((r = audit_put(c, actor, "cert.revoke", key, detail, &seq,
		    hash)) != 0) {
			ret = r;
			goto out;
		}
		ret = 0;
		goto out;
	}
	PQclear(res);
	res = NULL;
	/* Already revoked (fine, nothing to record) or unknown. */
	memset(&a, 0, sizeof(a));
	p_text(&a, key);
	if ((r = tx_exec(c, "SELECT 1 FROM certificates WHERE serial = $1", &a,
	    "query", &res)) != 0) {
		ret = r;
		goto out;
	}
	ret = PQntuples(res) == 0 ? amtca_fail(AMTCA_E_NOT_FOUND, "no "
	    "certificate with serial %s", key) : 0;
out:
	PQclear(res);
	return tx_end(p, c, ret);
}

static int
pg_audit_append(void *be, const char *actor, const char *action,
    const char *subject, const char *detail, uint64_t *seq,
    unsigned char hash[STORE_AUDIT_HASH_LEN])
{
	struct pg *p = be;
	struct pgc *c = NULL;
	uint64_t q = 0;
	unsigned char h[STORE_AUDIT_HASH_LEN];
	int r;

	if ((r = tx_begin(p, &c)) != 0)
		return r;
	r = audit_put(c, actor, action, subject, detail, &q, h);
	if ((r = tx_end(p, c, r)) != 0)
		return r;
	*seq = q;
	memcpy(hash, h, STORE_AUDIT_HASH_LEN);
	return 0;
}

static int
row_audit(const PGresult *res, int i, void *v)
{
	struct store_audit *e = v;

	memset(e, 0, sizeof(*e));
	if (dupval(res, i, 2, &e->actor) != 0 ||
	    dupval(res, i, 3, &e->action) != 0 ||
	    dupval(res, i, 4, &e->subject) != 0 ||
	    dupval(res, i, 5, &e->detail) != 0 ||
	    col_hash(res, i, 6, e->prev) != 0 ||
	    col_hash(res, i, 7, e->hash) != 0) {
		store_audit_clear(e);
		return AMTCA_E_NOMEM;
	}
	e->seq = (uint64_t)ival(res, i, 0);
	e->time = (int64_t)ival(res, i, 1);
	return 0;
}

static void
clear_audit_v(void *e)
{
	store_audit_clear(e);
}

static int list(struct pg *, const char *, const char *, size_t,
    int (*)(const PGresult *, int, void *), void (*)(void *), void **,
    size_t *);

static int
pg_audit_list(void *be, uint64_t after, struct store_audit **out, size_t *n)
{
	char arg[24];

	snprintf(arg, sizeof(arg), "%llu", (unsigned long long)after);
	return list(be, "SELECT seq, time, actor, action, subject, detail, "
	    "prev, hash FROM audit WHERE seq > $1::bigint ORDER BY seq", arg,
	    sizeof(**out), row_audit, clear_audit_v, (void **)out, n);
}

static int
pg_audit_status(void *be, uint64_t *head, uint64_t *sealed)
{
	PGresult *res = NULL;
	int r;

	if ((r = run(be, "SELECT (SELECT coalesce(max(seq), 0) FROM audit), "
	    "(SELECT coalesce(max(seq), 0) FROM audit_seals)", NULL,
	    "audit query", &res, NULL)) != 0)
		return r;
	*head = (uint64_t)ival(res, 0, 0);
	*sealed = (uint64_t)ival(res, 0, 1);
	PQclear(res);
	return 0;
}

static int
pg_seal_add(void *be, const struct store_seal *seal)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	long cnt;
	int r;

	/* Only over an entry stored with exactly that hash. */
	p_int(&a, (long long)seal->seq);
	p_bin(&a, seal->hash, STORE_AUDIT_HASH_LEN);
	p_bin(&a, seal->sig, seal->siglen);
	p_int(&a, (long long)seal->time);
	if ((r = run(be, "INSERT INTO audit_seals (seq, hash, sig, time) SELECT "
	    "$1::bigint, $2::bytea, $3::bytea, $4::bigint WHERE EXISTS (SELECT 1 "
	    "FROM audit WHERE seq = $1::bigint AND hash = $2::bytea) ON CONFLICT "
	    "(seq) DO UPDATE SET hash = excluded.hash, sig = excluded.sig, time "
	    "= excluded.time", &a, "seal", &res, NULL)) != 0)
		return r;
	cnt = changed(res);
	PQclear(res);
	if (cnt == 0)
		return amtca_fail(AMTCA_E_AUDIT, "no audit entry %llu with the "
		    "hash to be sealed", (unsigned long long)seal->seq);
	return 0;
}

/* A bytea column into a fresh buffer (NULL, 0 when empty). */
static int
col_bytes(const PGresult *res, int row, int col, unsigned char **out,
    size_t *len)
{
	unsigned char *b;
	size_t l = 0;

	*out = NULL;
	*len = 0;
	if (PQgetisnull(res, row, col))
		return 0;
	if ((b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row,
	    col), &l)) == NULL)
		return AMTCA_E_NOMEM;
	if (l > 0) {
		if ((*out = malloc(l)) == NULL) {
			PQfreemem(b);
			return AMTCA_E_NOMEM;
		}
		memcpy(*out, b, l);
		*len = l;
	}
	PQfreemem(b);
	return 0;
}

static int
row_seal(const PGresult *res, int i, void *v)
{
	struct store_seal *e = v;

	memset(e, 0, sizeof(*e));
	if (col_hash(res, i, 1, e->hash) != 0 ||
	    col_bytes(res, i, 2, &e->sig, &e->siglen) != 0) {
		store_seal_clear(e);
		return AMTCA_E_NOMEM;
	}
	e->seq = (uint64_t)ival(res, i, 0);
	e->time = (int64_t)ival(res, i, 3);
	return 0;
}

static void
clear_seal_v(void *e)
{
	store_seal_clear(e);
}

static int
pg_seal_list(void *be, struct store_seal **out, size_t *n)
{
	return list(be, "SELECT seq, hash, sig, time FROM audit_seals ORDER BY "
	    "seq", NULL, sizeof(**out), row_seal, clear_seal_v, (void **)out, n);
}

/* --- credentials ---------------------------------------------------------- */

#define CRED_COLS "name, amt_user, mechanism, created_at, updated_at"

static int
row_cred(const PGresult *res, int i, int with_blob, struct store_cred *c)
{
	memset(c, 0, sizeof(*c));
	if (dupval(res, i, 0, &c->name) != 0 || dupval(res, i, 1, &c->user) != 0 ||
	    dupval(res, i, 2, &c->mechanism) != 0 ||
	    (with_blob && col_bytes(res, i, 5, &c->sealed, &c->sealed_len) != 0)) {
		store_cred_clear(c);
		return AMTCA_E_NOMEM;
	}
	c->created_at = (time_t)ival(res, i, 3);
	c->updated_at = (time_t)ival(res, i, 4);
	return 0;
}

static int
row_cred_v(const PGresult *res, int i, void *c)
{
	return row_cred(res, i, 0, c);
}

static int
row_cred_blob_v(const PGresult *res, int i, void *c)
{
	return row_cred(res, i, 1, c);
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

	/* A replacement keeps the first created_at. */
	p_text(&a, c->name);
	p_text(&a, c->user);
	p_bin(&a, c->sealed, c->sealed_len);
	p_text(&a, c->mechanism);
	p_int(&a, (long long)c->created_at);
	p_int(&a, (long long)c->updated_at);
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
	struct store_cred *v = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if ((r = list(be, "SELECT " CRED_COLS ", sealed FROM credentials WHERE "
	    "name = $1", name, sizeof(*v), row_cred_blob_v, clear_cred_v,
	    (void **)&v, &n)) != 0)
		return r;
	if (n == 0)
		return amtca_fail(AMTCA_E_NOT_FOUND, "no credential %.64s", name);
	*out = v;
	return 0;
}

static int
pg_cred_list(void *be, struct store_cred **out, size_t *n)
{
	return list(be, "SELECT " CRED_COLS " FROM credentials ORDER BY name "
	    "COLLATE \"C\"", NULL, sizeof(**out), row_cred_v, clear_cred_v,
	    (void **)out, n);
}

/* One statement with `name` as $1 (and `arg` as $2 if not NULL); its row
 * count in *cnt. */
static int
run_count(struct pg *p, const char *sql, const char *name, const char *arg,
    const char *what, long *cnt)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	int r;

	*cnt = 0;
	p_text(&a, name);
	if (arg != NULL)
		p_text(&a, arg);
	if ((r = run(p, sql, &a, what, &res, NULL)) != 0)
		return r;
	*cnt = changed(res);
	PQclear(res);
	return 0;
}

static int
pg_cred_remove(void *be, const char *name)
{
	long cnt;
	int r;

	if ((r = run_count(be, "DELETE FROM credentials WHERE name = $1", name,
	    NULL, "credential removal", &cnt)) != 0)
		return r;
	if (cnt == 0)
		return amtca_fail(AMTCA_E_NOT_FOUND, "no credential %.64s", name);
	return 0;
}

/* --- admin and EST clients ----------------------------------------------- */

#define CLIENT_SELECT "SELECT name, roles, allow, pwhash, serial, " \
	"created_at, removed_at FROM clients "

static int
row_client(const PGresult *res, int i, void *v)
{
	struct store_client *c = v;

	memset(c, 0, sizeof(*c));
	if (dupval(res, i, 0, &c->name) != 0 || dupval(res, i, 2, &c->allow) != 0 ||
	    dupval(res, i, 3, &c->pwhash) != 0 ||
	    dupval(res, i, 4, &c->serial) != 0) {
		store_client_clear(c);
		return AMTCA_E_NOMEM;
	}
	c->roles = (unsigned)ival(res, i, 1);
	c->created_at = (time_t)ival(res, i, 5);
	c->removed_at = (time_t)ival(res, i, 6);
	return 0;
}

static void
clear_client_v(void *c)
{
	store_client_clear(c);
}

static int
pg_client_add(void *be, const struct store_client *c, const char *actor,
    const char *detail)
{
	struct pg *p = be;
	struct pgc *k = NULL;
	PGresult *res = NULL;
	struct prm a = { 0 };
	unsigned char hash[STORE_AUDIT_HASH_LEN];
	uint64_t seq;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = tx_begin(p, &k)) != 0)
		return r;
	/* The record and its "client.add" entry commit together; a known
	 * name inserts nothing (names are never reused). */
	p_text(&a, c->name);
	p_int(&a, (long long)c->roles);
	p_text(&a, c->allow);
	p_text(&a, c->pwhash);
	p_text(&a, c->serial);
	p_int(&a, (long long)c->created_at);
	p_int(&a, (long long)c->removed_at);
	if ((r = tx_exec(k, "INSERT INTO clients (name, roles, allow, pwhash, "
	    "serial, created_at, removed_at) VALUES ($1, $2, $3, $4, $5, $6, "
	    "$7) ON CONFLICT (name) DO NOTHING RETURNING name", &a,
	    "client record", &res)) != 0) {
		ret = r;
		goto out;
	}
	if (PQntuples(res) != 1) {
		ret = amtca_fail(AMTCA_E_EXISTS, "a client named %.64s is "
		    "already recorded (names are never reused, removed ones "
		    "included)", c->name);
		goto out;
	}
	ret = audit_put(k, actor, "client.add", c->name, detail, &seq, hash);
out:
	PQclear(res);
	return tx_end(p, k, ret);
}

/*
 * One UPDATE of a client row and, when it changed a row, its audit entry,
 * in one transaction.  AMTCA_E_NOT_FOUND when no row changed.
 */
static int
client_update(struct pg *p, const char *sql, const char *name,
    const char *val, const char *actor, const char *action,
    const char *detail)
{
	struct pgc *k = NULL;
	PGresult *res = NULL;
	struct prm a = { 0 };
	unsigned char hash[STORE_AUDIT_HASH_LEN];
	uint64_t seq;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = tx_begin(p, &k)) != 0)
		return r;
	p_text(&a, name);
	p_text(&a, val);
	if ((r = tx_exec(k, sql, &a, "client update", &res)) != 0) {
		ret = r;
		goto out;
	}
	if (PQntuples(res) == 0) {
		ret = AMTCA_E_NOT_FOUND;
		goto out;
	}
	ret = audit_put(k, actor, action, name, detail, &seq, hash);
out:
	PQclear(res);
	return tx_end(p, k, ret);
}

static int
pg_client_get(void *be, const char *name, const char *serial,
    struct store_client **out)
{
	struct store_client *v = NULL;
	size_t n = 0, i;
	int r;

	*out = NULL;
	if (name != NULL)
		r = list(be, CLIENT_SELECT "WHERE name = $1", name, sizeof(*v),
		    row_client, clear_client_v, (void **)&v, &n);
	else
		r = list(be, CLIENT_SELECT "WHERE serial = $1 ORDER BY "
		    "removed_at <> 0, created_at DESC", serial, sizeof(*v),
		    row_client, clear_client_v, (void **)&v, &n);
	if (r != 0)
		return r;
	if (n == 0) {
		free(v);
		return name != NULL ?
		    amtca_fail(AMTCA_E_NOT_FOUND, "no client %.64s", name) :
		    amtca_fail(AMTCA_E_NOT_FOUND, "no client holds certificate "
		    "%.64s", serial);
	}
	for (i = 1; i < n; i++)
		store_client_clear(&v[i]);
	*out = v;		/* the first row; its array slot is the block */
	return 0;
}

static int
pg_client_list(void *be, struct store_client **out, size_t *n)
{
	return list(be, CLIENT_SELECT "ORDER BY name COLLATE \"C\"", NULL,
	    sizeof(**out), row_client, clear_client_v, (void **)out, n);
}

static int
pg_client_bind(void *be, const char *name, const char *serial,
    const char *actor)
{
	char detail[AMTCA_AUDIT_FIELD_MAX + 16];
	int r;

	snprintf(detail, sizeof(detail), "serial=%s", serial);
	r = client_update(be, "UPDATE clients SET serial = $2 WHERE name = $1 "
	    "AND removed_at = 0 RETURNING name", name, serial, actor,
	    "client.rebind", detail);
	if (r == AMTCA_E_NOT_FOUND)
		return amtca_fail(r, "no active client %.64s", name);
	return r;
}

static int
pg_client_remove(void *be, const char *name, time_t when, const char *actor,
    const char *detail)
{
	struct store_client *c = NULL;
	char num[24];
	int r;

	snprintf(num, sizeof(num), "%lld", (long long)when);
	r = client_update(be, "UPDATE clients SET removed_at = $2::bigint "
	    "WHERE name = $1 AND removed_at = 0 RETURNING name", name, num,
	    actor, "client.remove", detail);
	if (r != AMTCA_E_NOT_FOUND)
		return r;
	/* Already removed is fine (the first time is kept); unknown is not. */
	r = pg_client_get(be, name, NULL, &c);
	store_client_free(c);
	return r;
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
	    "excluded.attempts, updated_at = excluded.updated_at, claimed_by = "
	    "NULL, claim_expires = 0", &a,
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

/* --- job claims ------------------------------------------------------------ */

/*
 * One statement: the subquery picks and row-locks the first claimable row,
 * skipping rows another node's claim has locked (SKIP LOCKED), and the
 * UPDATE claims it; a row that changed since the statement's snapshot is
 * re-checked on its newest version when locked (READ COMMITTED), so two
 * claimers never get the same device.  `prev` is the row as it was.
 */
static int
pg_job_claim(void *be, const char *job_id, const char *owner, time_t now,
    int ttl_s, char **fqdn, char **prev)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	int r, ret = AMTCA_E_INTERNAL;

	p_text(&a, job_id);
	p_text(&a, owner);
	p_int(&a, (long long)now);
	p_int(&a, ttl_s);
	if ((r = run(be, "UPDATE job_devices d SET claimed_by = $2, "
	    "claim_expires = $3::bigint + $4::bigint FROM (SELECT jd.job_id, "
	    "jd.fqdn, jd.claimed_by AS prev FROM job_devices jd WHERE jd.job_id "
	    "= $1 AND jd.result = 'pending' AND (jd.claimed_by IS NULL OR "
	    "jd.claim_expires <= $3::bigint) AND EXISTS (SELECT 1 FROM jobs "
	    "WHERE id = $1 AND state = 'running') ORDER BY jd.fqdn COLLATE \"C\" "
	    "LIMIT 1 FOR UPDATE OF jd SKIP LOCKED) c WHERE d.job_id = c.job_id "
	    "AND d.fqdn = c.fqdn RETURNING d.fqdn, c.prev", &a, "claim", &res,
	    NULL)) != 0)
		return r;
	if (PQntuples(res) != 1) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "job %.64s has no device to "
		    "claim", job_id);
		goto out;
	}
	if (dupval(res, 0, 0, fqdn) != 0 ||
	    (prev != NULL && dupval(res, 0, 1, prev) != 0)) {
		free(*fqdn);
		*fqdn = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	return ret;
}

static int
pg_job_claim_renew(void *be, const char *job_id, const char *owner,
    time_t now, int ttl_s, size_t *n)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	int r;

	p_text(&a, job_id);
	p_text(&a, owner);
	p_int(&a, (long long)now + ttl_s);
	if ((r = run(be, "UPDATE job_devices SET claim_expires = $3 WHERE "
	    "claimed_by = $2 AND result = 'pending' AND ($1::text IS NULL OR "
	    "job_id = $1)", &a, "claim renewal", &res, NULL)) != 0)
		return r;
	*n = (size_t)changed(res);
	PQclear(res);
	return 0;
}

static int
pg_job_claim_release(void *be, const char *job_id, const char *owner,
    const char *fqdn)
{
	struct prm a = { 0 };

	p_text(&a, job_id);
	p_text(&a, owner);
	p_text(&a, fqdn);
	return run(be, "UPDATE job_devices SET claimed_by = NULL, claim_expires "
	    "= 0 WHERE job_id = $1 AND claimed_by = $2 AND result = 'pending' "
	    "AND ($3::text IS NULL OR fqdn = $3)", &a, "claim release", NULL,
	    NULL);
}

/* The first column of every row of `sql` with parameters `a`. */
static int
pg_strings(struct pg *p, const char *sql, const struct prm *a, char ***out,
    size_t *n)
{
	PGresult *res = NULL;
	char **v = NULL;
	int i, cnt, r, ret = AMTCA_E_INTERNAL;

	if ((r = run(p, sql, a, "query", &res, NULL)) != 0)
		return r;
	cnt = PQntuples(res);
	if (cnt > 0 && (v = calloc((size_t)cnt, sizeof(*v))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < cnt; i++)
		if (dupval(res, i, 0, &v[i]) != 0) {
			while (i-- > 0)
				free(v[i]);
			free(v);
			v = NULL;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	*out = v;
	*n = (size_t)cnt;
	ret = 0;
out:
	PQclear(res);
	return ret;
}

static int
pg_job_claimable(void *be, time_t now, char ***ids, size_t *n)
{
	struct prm a = { 0 };

	p_int(&a, (long long)now);
	return pg_strings(be, "SELECT id FROM jobs j WHERE state = 'running' AND "
	    "EXISTS (SELECT 1 FROM job_devices jd WHERE jd.job_id = j.id AND "
	    "jd.result = 'pending' AND (jd.claimed_by IS NULL OR "
	    "jd.claim_expires <= $1::bigint)) ORDER BY created_at, seq", &a, ids,
	    n);
}

static int
pg_job_claim_owners(void *be, const char *job_id, char ***owners, size_t *n)
{
	struct prm a = { 0 };

	p_text(&a, job_id);
	return pg_strings(be, "SELECT DISTINCT claimed_by FROM job_devices WHERE "
	    "job_id = $1 AND result = 'pending' AND claimed_by IS NOT NULL ORDER "
	    "BY claimed_by", &a, owners, n);
}

static int
pg_job_finish(void *be, const char *job_id, time_t when, int *finished)
{
	PGresult *res = NULL;
	struct prm a = { 0 };
	int r;

	p_text(&a, job_id);
	p_int(&a, (long long)when);
	/*
	 * Each finisher runs this after its own last result committed, so the
	 * one whose result committed last sees no pending row; the row lock
	 * and the state check make it the only one.
	 */
	if ((r = run(be, "UPDATE jobs SET state = 'done', finished_at = $2 "
	    "WHERE id = $1 AND state = 'running' AND NOT EXISTS (SELECT 1 FROM "
	    "job_devices WHERE job_id = $1 AND result = 'pending')", &a,
	    "job update", &res, NULL)) != 0)
		return r;
	*finished = changed(res) == 1;
	PQclear(res);
	return 0;
}

static int
pg_revocation_mark(void *be, uint64_t *mark)
{
	PGresult *res = NULL;
	int r;

	if ((r = run(be, "SELECT coalesce(max(seq), 0) FROM audit WHERE action "
	    "= 'cert.revoke'", NULL, "query", &res, NULL)) != 0)
		return r;
	*mark = (uint64_t)ival(res, 0, 0);
	PQclear(res);
	return 0;
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

/* --- the CA's own certificates ------------------------------------------- */

static int
pg_cacert_put(void *be, const struct store_cacert *v, size_t n,
    const char *actor, const char *action, const char *subject,
    const char *detail)
{
	struct pg *p = be;
	struct pgc *c = NULL;
	struct prm a;
	unsigned char hash[STORE_AUDIT_HASH_LEN];
	uint64_t seq;
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = tx_begin(p, &c)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		memset(&a, 0, sizeof(a));
		p_text(&a, v[i].keyid);
		p_text(&a, v[i].role);
		p_int(&a, v[i].generation);
		p_text(&a, v[i].subject);
		p_text(&a, v[i].serial);
		p_int(&a, (long long)v[i].not_after);
		p_text(&a, v[i].state);
		p_int(&a, (long long)(v[i].created_at != 0 ? v[i].created_at :
		    time(NULL)));
		p_bin(&a, v[i].der, v[i].der_len);
		/* A revoked row stays revoked (the root's CRL lists it). */
		if ((r = tx_exec(c, "INSERT INTO ca_certs (keyid, role, "
		    "generation, subject, serial, not_after, state, created_at, "
		    "der) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT "
		    "(keyid) DO UPDATE SET role = $2, generation = $3, subject = "
		    "$4, serial = $5, not_after = $6, der = $9, state = CASE WHEN "
		    "ca_certs.state = 'revoked' THEN 'revoked' ELSE $7 END", &a,
		    "CA certificate record", NULL)) != 0) {
			ret = r;
			goto out;
		}
	}
	if (action != NULL && (r = audit_put(c, actor, action, subject, detail,
	    &seq, hash)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	return tx_end(p, c, ret);
}

static int
row_cacert(const PGresult *res, int i, void *vp)
{
	struct store_cacert *c = vp;
	unsigned char *b;
	size_t len = 0;

	memset(c, 0, sizeof(*c));
	if (dupval(res, i, 0, &c->keyid) != 0 ||
	    dupval(res, i, 1, &c->role) != 0 ||
	    dupval(res, i, 3, &c->subject) != 0 ||
	    dupval(res, i, 4, &c->serial) != 0 ||
	    dupval(res, i, 6, &c->state) != 0)
		goto nomem;
	c->generation = (int)ival(res, i, 2);
	c->not_after = (time_t)ival(res, i, 5);
	c->revoke_reason = (int)ival(res, i, 7);
	c->created_at = (time_t)ival(res, i, 8);
	c->revoked_at = (time_t)ival(res, i, 9);
	if (!PQgetisnull(res, i, 10)) {
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
	store_cacert_clear(c);
	return AMTCA_E_NOMEM;
}

static void
clear_cacert_v(void *c)
{
	store_cacert_clear(c);
}

static int
pg_cacert_list(void *be, struct store_cacert **out, size_t *n)
{
	PGresult *res = NULL;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = run(be, "SELECT keyid, role, generation, subject, serial, "
	    "not_after, state, revoke_reason, created_at, revoked_at, der FROM "
	    "ca_certs ORDER BY generation, keyid", NULL, "query", &res,
	    NULL)) != 0)
		return r;
	r = rows(res, sizeof(**out), row_cacert, clear_cacert_v, (void **)out,
	    n);
	PQclear(res);
	return r;
}

static int
pg_cacert_revoke(void *be, const char *keyid, int reason, time_t when,
    const char *actor)
{
	struct pg *p = be;
	struct pgc *c = NULL;
	PGresult *res = NULL;
	struct prm a = { 0 };
	char detail[96];
	unsigned char hash[STORE_AUDIT_HASH_LEN];
	uint64_t seq;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = tx_begin(p, &c)) != 0)
		return r;
	p_int(&a, reason);
	p_int(&a, (long long)when);
	p_text(&a, keyid);
	if ((r = tx_exec(c, "UPDATE ca_certs SET state = 'revoked', "
	    "revoke_reason = $1, revoked_at = $2 WHERE keyid = $3 AND state <> "
	    "'revoked' RETURNING serial", &a, "revoke", &res)) != 0) {
		ret = r;
		goto out;
	}
	if (PQntuples(res) == 1) {
		snprintf(detail, sizeof(detail), "reason=%d serial=%.40s", reason,
		    PQgetvalue(res, 0, 0));
		ret = audit_put(c, actor, "ca.revoke-intermediate", keyid, detail,
		    &seq, hash);
		goto out;
	}
	PQclear(res);
	res = NULL;
	memset(&a, 0, sizeof(a));
	p_text(&a, keyid);
	if ((r = tx_exec(c, "SELECT 1 FROM ca_certs WHERE keyid = $1", &a,
	    "query", &res)) != 0) {
		ret = r;
		goto out;
	}
	ret = PQntuples(res) == 0 ? amtca_fail(AMTCA_E_NOT_FOUND, "no "
	    "intermediate with key identifier %s", keyid) : 0;
out:
	PQclear(res);
	return tx_end(p, c, ret);
}

/* --- shared configuration ------------------------------------------------- */

static int
row_meta(const PGresult *res, int i, void *p)
{
	struct store_meta *m = p;

	memset(m, 0, sizeof(*m));
	if (dupval(res, i, 0, &m->name) != 0 ||
	    col_bytes(res, i, 1, &m->value, &m->len) != 0 ||
	    /* An empty value is a non-NULL, zero-length buffer. */
	    (m->value == NULL && (m->value = malloc(1)) == NULL)) {
		store_meta_clear(m);
		return AMTCA_E_NOMEM;
	}
	m->updated_at = (time_t)ival(res, i, 2);
	return 0;
}

static void
clear_meta_v(void *m)
{
	store_meta_clear(m);
}

static int
pg_meta_put(void *be, const struct store_meta *v, size_t n)
{
	struct pg *p = be;
	struct pgc *c = NULL;
	struct prm a;
	size_t i;
	int r;

	if ((r = tx_begin(p, &c)) != 0)
		return r;
	for (i = 0; i < n && r == 0; i++) {
		memset(&a, 0, sizeof(a));
		p_text(&a, v[i].name);
		if (v[i].value == NULL) {
			r = tx_exec(c, "DELETE FROM meta WHERE name = $1", &a,
			    "configuration update", NULL);
			continue;
		}
		p_bin(&a, v[i].value, v[i].len);
		p_int(&a, (long long)v[i].updated_at);
		r = tx_exec(c, "INSERT INTO meta (name, value, updated_at) VALUES "
		    "($1, $2, $3) ON CONFLICT (name) DO UPDATE SET value = "
		    "excluded.value, updated_at = excluded.updated_at", &a,
		    "configuration update", NULL);
	}
	return tx_end(p, c, r);
}

static int
pg_meta_list(void *be, struct store_meta **out, size_t *n)
{
	return list(be, "SELECT name, value, updated_at FROM meta ORDER BY name "
	    "COLLATE \"C\"", NULL, sizeof(**out), row_meta, clear_meta_v,
	    (void **)out, n);
}

static int
pg_meta_get(void *be, const char *name, struct store_meta **out)
{
	struct store_meta *v = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if ((r = list(be, "SELECT name, value, updated_at FROM meta WHERE name "
	    "= $1", name, sizeof(*v), row_meta, clear_meta_v, (void **)&v,
	    &n)) != 0)
		return r;
	if (n == 0) {
		free(v);
		return amtca_fail(AMTCA_E_NOT_FOUND, "no configuration item %.64s",
		    name);
	}
	*out = v;		/* n is 1: the name is the key */
	return 0;
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
	.job_claim = pg_job_claim, \
	.job_claim_renew = pg_job_claim_renew, \
	.job_claim_release = pg_job_claim_release, \
	.job_claimable = pg_job_claimable, \
	.job_claim_owners = pg_job_claim_owners, \
	.job_finish = pg_job_finish, \
	.revocation_mark = pg_revocation_mark, \
	.lease_take = pg_lease_take, \
	.lease_renew = pg_lease_renew, \
	.lease_release = pg_lease_release, \
	.audit_append = pg_audit_append, \
	.audit_list = pg_audit_list, \
	.audit_status = pg_audit_status, \
	.seal_add = pg_seal_add, \
	.seal_list = pg_seal_list, \
	.client_add = pg_client_add, \
	.client_get = pg_client_get, \
	.client_list = pg_client_list, \
	.client_bind = pg_client_bind, \
	.client_remove = pg_client_remove, \
	.cred_put = pg_cred_put, \
	.cred_get = pg_cred_get, \
	.cred_list = pg_cred_list, \
	.cred_remove = pg_cred_remove, \
	.cacert_put = pg_cacert_put, \
	.cacert_list = pg_cacert_list, \
	.cacert_revoke = pg_cacert_revoke, \
	.meta_put = pg_meta_put, \
	.meta_get = pg_meta_get, \
	.meta_list = pg_meta_list

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
