/*
 * Conformance suite for the issuance store interface (ca/store.h).  Every
 * case runs once per backend in backends[] below, each store opened by URI;
 * a new backend adds a row with its hooks and must pass all of them.
 * SQLite always runs; PostgreSQL runs when AMTCA_TEST_PG_URI names a
 * server (tests/integration/t_store_pg.sh starts a throwaway cluster and
 * sets it): each store is then a database of its own on that server.  The
 * URI selection tests at the end are about the front, not a backend, and
 * run once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "ca/audit.h"
#include "ca/store.h"
#include "common/limits.h"
#include "soft_signer.h"

/* What the suite needs to know about a backend beyond the interface. */
struct backend {
	const char *name;
	/* The URI of a fresh store called `name` for a test using `dir`. */
	void (*uri)(const char *dir, const char *name, char *out, size_t len);
	/* Assert the backend's own evidence that committed records are durable. */
	void (*check_durable)(const char *uri);
	/* Make `uri` name something that exists but is not an amtca store. */
	void (*make_foreign)(const char *uri);
	/* Leave what a crashed writer leaves beside the store (may be a no-op). */
	void (*litter)(const char *uri);
	/* Assert that nothing of the store at `uri` is left. */
	void (*check_gone)(const char *uri);
	/* Make, by hand, the store the previous release (schema 1) left at
	 * `uri`, with one device and one certificate; NULL: no history. */
	void (*make_previous)(const char *uri);
	/* Mark the (closed) store at `uri` as made by a newer amtca. */
	void (*make_newer)(const char *uri);
};

/* SQLite: "sqlite:PATH". */
static const char *
sqlite_path(const char *uri)
{
	assert_int_equal(strncmp(uri, "sqlite:", 7), 0);
	return uri + 7;
}

static void
sqlite_uri(const char *dir, const char *name, char *out, size_t len)
{
	snprintf(out, len, "sqlite:%s/%s.db", dir, name);
}

static void
sqlite_check_durable(const char *uri)
{
	struct stat sb;
	char wal[600];

	/* WAL mode: the log exists beside the database. */
	snprintf(wal, sizeof(wal), "%s-wal", sqlite_path(uri));
	assert_int_equal(stat(wal, &sb), 0);
}

static void
sqlite_make_foreign(const char *uri)
{
	FILE *fp = fopen(sqlite_path(uri), "w");

	assert_non_null(fp);
	fclose(fp);
}

static const char *const sqlite_companions[] = { "-wal", "-shm", "-journal" };

static void
sqlite_litter(const char *uri)
{
	char p[600];
	FILE *fp;
	size_t i;

	for (i = 0; i < 2; i++) {	/* a crashed WAL writer's leftovers */
		snprintf(p, sizeof(p), "%s%s", sqlite_path(uri),
		    sqlite_companions[i]);
		fp = fopen(p, "w");
		assert_non_null(fp);
		fclose(fp);
	}
}

static void
sqlite_check_gone(const char *uri)
{
	char p[600];
	size_t i;

	assert_int_equal(access(sqlite_path(uri), F_OK), -1);
	for (i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", sqlite_path(uri),
		    sqlite_companions[i]);
		assert_int_equal(access(p, F_OK), -1);
	}
}

/* Schema 1 as the release before fleet enrollment created it. */
static void
sqlite_make_previous(const char *uri)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(sqlite_path(uri), &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "PRAGMA journal_mode=WAL;"
	    "CREATE TABLE certificates (serial TEXT PRIMARY KEY NOT NULL,"
	    " fqdn TEXT NOT NULL, not_before INTEGER NOT NULL,"
	    " not_after INTEGER NOT NULL, issued_at INTEGER NOT NULL,"
	    " status TEXT NOT NULL DEFAULT 'valid' CHECK (status IN"
	    " ('valid','revoked')), revoke_reason INTEGER, revoked_at INTEGER,"
	    " requester TEXT, device TEXT, der BLOB NOT NULL);"
	    "CREATE INDEX certificates_fqdn ON certificates(fqdn);"
	    "CREATE INDEX certificates_device ON certificates(device"
	    " COLLATE NOCASE) WHERE device IS NOT NULL;"
	    "CREATE INDEX certificates_revoked ON certificates(serial)"
	    " WHERE status = 'revoked';"
	    "CREATE TABLE devices (fqdn TEXT PRIMARY KEY NOT NULL, address TEXT,"
	    " amt_version TEXT, cert_serial TEXT, state TEXT NOT NULL,"
	    " last_step TEXT, error TEXT, updated_at INTEGER NOT NULL);"
	    "INSERT INTO certificates (serial, fqdn, not_before, not_after,"
	    " issued_at, requester, device, der) VALUES ('0B01', 'old.example.com',"
	    " 1, 2, 1, 'enroll', 'old.example.com', x'3000');"
	    "INSERT INTO devices VALUES ('old.example.com', '10.0.0.9', '16.1.25',"
	    " '0B01', 'enrolled', 'cleanup', NULL, 77);"
	    "PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void
sqlite_make_newer(const char *uri)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(sqlite_path(uri), &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
}

/*
 * PostgreSQL: AMTCA_TEST_PG_URI is a libpq URI of the test server (its
 * database part is replaced); a store called `name` is the database
 * t_<name>, which store_open(create) makes.  Tests reuse those databases
 * (a CREATE DATABASE costs ~1 s on a busy machine, a schema much less):
 * setup() destroys whatever store an earlier test left there first.
 */
static const char *pg_base;

static void
pg_uri(const char *dir, const char *name, char *out, size_t len)
{
	const char *auth, *path, *q;

	(void)dir;
	assert_non_null(pg_base);
	assert_non_null(auth = strstr(pg_base, "://"));
	auth += 3;
	path = auth + strcspn(auth, "/?");
	q = strchr(path, '?');
	snprintf(out, len, "%.*s/t_%s%s", (int)(path - pg_base), pg_base, name,
	    q != NULL ? q : "");
}

/* Connect to the database of `uri`, or to `other` on the same server. */
static PGconn *
pg_connect(const char *uri, const char *other)
{
	const char *kw[] = { "dbname", other ? "dbname" : NULL, NULL };
	const char *val[] = { uri, other, NULL };
	PGconn *c = PQconnectdbParams(kw, val, 1);

	assert_non_null(c);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("%s", PQerrorMessage(c));
	return c;
}

/* Run SQL; return the first value of its result ("" when none). */
static char *
pg_sql(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	char *v;

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	v = strdup(PQntuples(res) > 0 && PQnfields(res) > 0 ?
	    PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return v;
}

static void
pg_exec_at(const char *uri, const char *other, const char *sql)
{
	PGconn *c = pg_connect(uri, other);

	free(pg_sql(c, sql));
	PQfinish(c);
}

/* The first value of `sql`'s result as a number. */
static long
pg_number(const char *uri, const char *sql)
{
	PGconn *c = pg_connect(uri, NULL);
	char *v = pg_sql(c, sql);
	long n = strtol(v, NULL, 10);

	free(v);
	PQfinish(c);
	return n;
}

static int
pg_equals(const char *uri, const char *sql, const char *want)
{
	PGconn *c = pg_connect(uri, NULL);
	char *v = pg_sql(c, sql);
	int eq = strcmp(v, want) == 0;

	if (!eq)
		print_message("%s -> \"%s\", want \"%s\"\n", sql, v, want);
	free(v);
	PQfinish(c);
	return eq;
}

/* The database name in `uri`. */
static void
pg_dbname(const char *uri, char *out, size_t len)
{
	const char *auth = strstr(uri, "://") + 3, *path = auth + strcspn(auth, "/?");

	assert_int_equal(*path, '/');
	snprintf(out, len, "%.*s", (int)strcspn(path + 1, "?"), path + 1);
}

static void
pg_check_durable(const char *uri)
{
	/* A new session sees the records; the server flushes its WAL, and
	 * this database does not turn synchronous_commit off. */
	assert_true(pg_equals(uri, "SELECT count(*) > 0 FROM "
	    "amtca.certificates", "t"));
	assert_true(pg_equals(uri, "SHOW fsync", "on"));
	assert_true(pg_equals(uri, "SELECT current_setting('synchronous_commit') "
	    "<> 'off'", "t"));
}

static void
pg_make_foreign(const char *uri)
{
	PGconn *c;
	char db[128], sql[256], *v;

	pg_dbname(uri, db, sizeof(db));
	c = pg_connect(uri, "postgres");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_database WHERE "
	    "datname = '%s'", db);
	v = pg_sql(c, sql);
	if (strcmp(v, "0") == 0) {
		snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", db);
		free(pg_sql(c, sql));
	}
	free(v);
	PQfinish(c);
	pg_exec_at(uri, NULL, "DROP SCHEMA IF EXISTS amtca CASCADE; CREATE SCHEMA "
	    "amtca; CREATE TABLE amtca.other (x integer)");
}

static void
pg_litter(const char *uri)
{
	(void)uri;		/* nothing lives beside a PostgreSQL store */
}

static void
pg_check_gone(const char *uri)
{
	assert_true(pg_equals(uri, "SELECT to_regnamespace('amtca') IS NULL", "t"));
}

/* A store of the previous release: schema version 1 (certificates,
 * devices, jobs, leases), no clients, credentials or audit trail. */
static void
pg_make_previous(const char *uri)
{
	pg_make_foreign(uri);		/* the database, and a bare schema */
	pg_exec_at(uri, NULL, "DROP TABLE amtca.other;"
	    "CREATE TABLE amtca.schema_version (version integer PRIMARY KEY,"
	    " applied_at bigint NOT NULL);"
	    "INSERT INTO amtca.schema_version VALUES (1, 0);"
	    "CREATE TABLE amtca.certificates (seq bigint GENERATED ALWAYS AS"
	    " IDENTITY, serial text PRIMARY KEY, fqdn text NOT NULL,"
	    " not_before bigint NOT NULL, not_after bigint NOT NULL,"
	    " issued_at bigint NOT NULL, status text NOT NULL DEFAULT 'valid'"
	    " CHECK (status IN ('valid','revoked')), revoke_reason integer,"
	    " revoked_at bigint, requester text, device text, der bytea NOT NULL);"
	    "CREATE TABLE amtca.devices (fqdn text PRIMARY KEY, address text,"
	    " amt_version text, cert_serial text, state text NOT NULL,"
	    " last_step text, error text, updated_at bigint NOT NULL,"
	    " port integer NOT NULL DEFAULT 0, tls_port integer NOT NULL"
	    " DEFAULT 0, amt_user text, cred_ref text, cred_stamp text,"
	    " tls_pin text);"
	    "CREATE TABLE amtca.jobs (seq bigint GENERATED ALWAYS AS IDENTITY,"
	    " id text PRIMARY KEY, created_at bigint NOT NULL, finished_at"
	    " bigint NOT NULL DEFAULT 0, state text NOT NULL, hosts_digest text,"
	    " total bigint NOT NULL DEFAULT 0);"
	    "CREATE TABLE amtca.job_devices (job_id text NOT NULL REFERENCES"
	    " amtca.jobs (id) ON DELETE CASCADE, fqdn text NOT NULL, result text"
	    " NOT NULL, serial text, error text, attempts integer NOT NULL"
	    " DEFAULT 0, updated_at bigint NOT NULL, PRIMARY KEY (job_id, fqdn));"
	    "CREATE TABLE amtca.leases (name text PRIMARY KEY, owner text NOT"
	    " NULL, expires_at bigint NOT NULL);"
	    "INSERT INTO amtca.certificates (serial, fqdn, not_before, not_after,"
	    " issued_at, requester, device, der) VALUES ('0B01',"
	    " 'old.example.com', 1, 2, 1, 'enroll', 'old.example.com',"
	    " '\\x3000');"
	    "INSERT INTO amtca.devices (fqdn, address, amt_version, cert_serial,"
	    " state, last_step, error, updated_at) VALUES ('old.example.com',"
	    " '10.0.0.9', '16.1.25', '0B01', 'enrolled', 'cleanup', NULL, 77)");
}

static void
pg_make_newer(const char *uri)
{
	pg_exec_at(uri, NULL, "INSERT INTO amtca.schema_version VALUES (99, 0)");
}

static const struct backend backends[] = {
	{ "sqlite", sqlite_uri, sqlite_check_durable, sqlite_make_foreign,
	    sqlite_litter, sqlite_check_gone, sqlite_make_previous,
	    sqlite_make_newer },
	{ "postgresql", pg_uri, pg_check_durable, pg_make_foreign, pg_litter,
	    pg_check_gone, pg_make_previous, pg_make_newer },
};

/* The backend the current group runs on. */
static const struct backend *be;

struct fx {
	char *dir;
	char uri[512];
	struct store *s;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = test_tmpdir();
	be->uri(f->dir, "amtca", f->uri, sizeof(f->uri));
	if (store_destroy(f->uri) != 0 || store_open(f->uri, 1, &f->s) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	test_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void
rec(struct store_cert *c, const char *serial, const char *fqdn,
    unsigned char *der, size_t len)
{
	memset(c, 0, sizeof(*c));
	c->serial = (char *)serial;
	c->fqdn = (char *)fqdn;
	c->not_before = 1000;
	c->not_after = 2000;
	c->issued_at = 1500;
	c->requester = (char *)"unit";
	c->der = der;
	c->der_len = len;
}

static size_t
count(struct store *s)
{
	struct store_cert *v = NULL;
	size_t n = 0;

	assert_int_equal(store_cert_list(s, &v, &n), 0);
	store_certs_free(v, n);
	return n;
}

static void
test_cert_round_trip(void **state)
{
	struct fx *f = *state;
	unsigned char der1[] = { 0x30, 0x03, 0x01, 0x02, 0x03 };
	unsigned char der2[] = { 0x30, 0x01, 0x00 };
	struct store_cert c, *got = (struct store_cert *)&got, *v = NULL;
	size_t n = 0;

	rec(&c, "0A11", "a.example.com", der1, sizeof(der1));
	c.device = (char *)"a.example.com";
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "0B22", "b.example.com", der2, sizeof(der2));
	c.issued_at = 1600;
	assert_int_equal(store_cert_add(f->s, &c), 0);
	be->check_durable(f->uri);

	assert_int_equal(store_cert_get(f->s, "0a11", &got), 0);	/* any case */
	assert_string_equal(got->serial, "0A11");
	assert_string_equal(got->fqdn, "a.example.com");
	assert_string_equal(got->status, "valid");
	assert_string_equal(got->requester, "unit");
	assert_string_equal(got->device, "a.example.com");
	assert_int_equal(got->not_before, 1000);
	assert_int_equal(got->not_after, 2000);
	assert_int_equal(got->issued_at, 1500);
	assert_int_equal(got->der_len, sizeof(der1));
	assert_memory_equal(got->der, der1, sizeof(der1));
	store_cert_free(got);
	got = (struct store_cert *)&got;
	assert_int_equal(store_cert_get(f->s, "0C33", &got), AMTCA_E_NOT_FOUND);
	assert_null(got);

	assert_int_equal(store_cert_list(f->s, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].serial, "0A11");	/* oldest first */
	assert_string_equal(v[1].serial, "0B22");
	assert_null(v[1].device);
	store_certs_free(v, n);

	/* Revoke: reason/date kept, idempotent, unknown and bad reasons refused. */
	assert_int_equal(store_cert_revoke(f->s, "0B22", 1, 1700), 0);
	assert_int_equal(store_cert_revoke(f->s, "0b22", 4, 1800), 0);
	assert_int_equal(store_cert_get(f->s, "0B22", &got), 0);
	assert_string_equal(got->status, "revoked");
	assert_int_equal(got->revoke_reason, 1);
	assert_int_equal(got->revoked_at, 1700);
	store_cert_free(got);
	assert_int_equal(store_cert_revoke(f->s, "0C33", 1, 1700), AMTCA_E_NOT_FOUND);
	assert_int_equal(store_cert_revoke(f->s, "0A11", 7, 1700), AMTCA_E_USAGE);
	assert_int_equal(store_cert_revoke(f->s, "0A11", 11, 1700), AMTCA_E_USAGE);
	assert_int_equal(store_cert_list_revoked(f->s, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].serial, "0B22");
	assert_null(v[0].der);
	store_certs_free(v, n);
}

/*
 * A second revocation keeps the stored reason and date, except a later
 * keyCompromise, which replaces the reason (the CRL lists it) and keeps the
 * first date; nothing changes it back.
 */
static void
test_revoke_reason_rules(void **state)
{
	struct fx *f = *state;
	unsigned char der1[] = { 0x30, 0x01, 0x01 };
	struct store_cert c, *got = NULL, *v = NULL;
	size_t n = 0;

	rec(&c, "0A11", "a.example.com", der1, sizeof(der1));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "0B22", "A.example.com", der1, sizeof(der1));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "0C33", "b.example.com", der1, sizeof(der1));
	assert_int_equal(store_cert_add(f->s, &c), 0);

	assert_int_equal(store_cert_revoke(f->s, "0A11", 4, 1700), 0);
	assert_int_equal(store_cert_revoke(f->s, "0A11", 5, 1800), 0);
	assert_int_equal(store_cert_get(f->s, "0A11", &got), 0);
	assert_int_equal(got->revoke_reason, 4);	/* superseded kept */
	assert_int_equal(got->revoked_at, 1700);
	store_cert_free(got);
	assert_int_equal(store_cert_revoke(f->s, "0A11", 1, 1900), 0);
	assert_int_equal(store_cert_get(f->s, "0A11", &got), 0);
	assert_int_equal(got->revoke_reason, 1);	/* to keyCompromise */
	assert_int_equal(got->revoked_at, 1700);
	store_cert_free(got);
	assert_int_equal(store_cert_revoke(f->s, "0A11", 4, 2000), 0);
	assert_int_equal(store_cert_get(f->s, "0A11", &got), 0);
	assert_int_equal(got->revoke_reason, 1);	/* never back */
	store_cert_free(got);
	assert_int_equal(store_cert_list_revoked(f->s, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].revoke_reason, 1);
	store_certs_free(v, n);

	/* By FQDN, case-insensitively, oldest first. */
	assert_int_equal(store_cert_list_fqdn(f->s, "a.EXAMPLE.com", &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].serial, "0A11");
	assert_string_equal(v[1].serial, "0B22");
	assert_non_null(v[1].der);
	store_certs_free(v, n);
	assert_int_equal(store_cert_list_fqdn(f->s, "c.example.com", &v, &n), 0);
	assert_int_equal(n, 0);
	store_certs_free(v, n);
}

static void
test_duplicate_serial(void **state)
{
	struct fx *f = *state;
	unsigned char der1[] = { 0x30, 0x01, 0x01 };
	unsigned char der2[] = { 0x30, 0x01, 0x02 };
	struct store_cert c, *got = NULL;

	rec(&c, "ABCD", "a.example.com", der1, sizeof(der1));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "ABCD", "evil.example.com", der2, sizeof(der2));
	assert_int_equal(store_cert_add(f->s, &c), AMTCA_E_EXISTS);
	/* Nothing of the second record was written. */
	assert_int_equal(count(f->s), 1);
	assert_int_equal(store_cert_get(f->s, "ABCD", &got), 0);
	assert_string_equal(got->fqdn, "a.example.com");
	assert_memory_equal(got->der, der1, sizeof(der1));
	store_cert_free(got);
	/* Malformed records are refused before SQL. */
	rec(&c, "abcd", "a.example.com", der1, sizeof(der1));
	assert_int_equal(store_cert_add(f->s, &c), AMTCA_E_USAGE);
	rec(&c, "ABCE", NULL, der1, sizeof(der1));
	assert_int_equal(store_cert_add(f->s, &c), AMTCA_E_USAGE);
	assert_int_equal(count(f->s), 1);
}

static void
test_visible_to_second_connection(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x00 };
	struct store *s2 = NULL;
	struct store_cert c, *got = NULL;

	assert_int_equal(store_open(f->uri, 0, &s2), 0);
	assert_int_equal(store_cert_get(s2, "0123", &got), AMTCA_E_NOT_FOUND);
	rec(&c, "0123", "v.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	assert_int_equal(store_cert_get(s2, "0123", &got), 0);
	assert_string_equal(got->fqdn, "v.example.com");
	store_cert_free(got);
	/* And the other way round, for revocation. */
	assert_int_equal(store_cert_revoke(s2, "0123", 4, 5), 0);
	assert_int_equal(store_cert_get(f->s, "0123", &got), 0);
	assert_string_equal(got->status, "revoked");
	store_cert_free(got);
	store_close(s2);
}

#define THREADS 8
#define PER_THREAD 40

struct adder {
	struct store *s;
	int id;
	int failures;
	int exists;
	const char *fixed_serial;	/* all threads race on this one when set */
};

static void *
add_many(void *arg)
{
	struct adder *a = arg;
	unsigned char der[8] = { 0x30, 0x06 };
	struct store_cert c;
	char serial[32];
	int i, r;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf(serial, sizeof(serial), "%02X%04X", a->id, i);
		der[2] = (unsigned char)a->id;
		der[3] = (unsigned char)i;
		rec(&c, a->fixed_serial ? a->fixed_serial : serial, "t.example.com",
		    der, sizeof(der));
		r = store_cert_add(a->s, &c);
		if (r == AMTCA_E_EXISTS)
			a->exists++;
		else if (r != 0)
			a->failures++;
	}
	return NULL;
}

static void
test_concurrent_adders_survive_reopen(void **state)
{
	struct fx *f = *state;
	struct adder a[THREADS];
	pthread_t th[THREADS];
	struct store_cert *got = NULL;
	char serial[32];
	int i, j;

	for (i = 0; i < THREADS; i++) {
		a[i] = (struct adder){ .s = f->s, .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, add_many, &a[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].failures, 0);
		assert_int_equal(a[i].exists, 0);
	}
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->uri, 0, &f->s), 0);
	assert_int_equal(count(f->s), THREADS * PER_THREAD);
	for (i = 0; i < THREADS; i++)
		for (j = 0; j < PER_THREAD; j += 7) {
			snprintf(serial, sizeof(serial), "%02X%04X", i, j);
			assert_int_equal(store_cert_get(f->s, serial, &got), 0);
			assert_int_equal(got->der[2], i);
			assert_int_equal(got->der[3], j);
			store_cert_free(got);
		}
}

static void
test_concurrent_duplicates_one_wins(void **state)
{
	struct fx *f = *state;
	struct adder a[THREADS];
	pthread_t th[THREADS];
	int i, exists = 0;

	/* Same serial from every thread, likely inside one batch: one lands. */
	for (i = 0; i < THREADS; i++) {
		a[i] = (struct adder){ .s = f->s, .id = i, .fixed_serial = "77" };
		assert_int_equal(pthread_create(&th[i], NULL, add_many, &a[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].failures, 0);
		exists += a[i].exists;
	}
	assert_int_equal(exists, THREADS * PER_THREAD - 1);
	assert_int_equal(count(f->s), 1);
}

static void
test_devices_round_trip(void **state)
{
	struct fx *f = *state;
	struct store_device d, *got = NULL, *v = NULL;
	size_t n = 0;

	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)"b.example.com";
	d.address = (char *)"10.0.0.2";
	d.amt_version = (char *)"16.1.25";
	d.state = (char *)"enrolling";
	d.last_step = (char *)"keygen";
	d.updated_at = 42;
	assert_int_equal(store_device_put(f->s, &d), 0);
	d.fqdn = (char *)"a.example.com";
	d.state = (char *)"failed";
	d.error = (char *)"AMT answered 401";
	assert_int_equal(store_device_put(f->s, &d), 0);
	/* Replace keeps one row per FQDN. */
	d.fqdn = (char *)"b.example.com";
	d.state = (char *)"enrolled";
	d.cert_serial = (char *)"0A11";
	d.error = NULL;
	d.updated_at = 43;
	assert_int_equal(store_device_put(f->s, &d), 0);

	assert_int_equal(store_device_get(f->s, "b.example.com", &got), 0);
	assert_string_equal(got->state, "enrolled");
	assert_string_equal(got->cert_serial, "0A11");
	assert_string_equal(got->address, "10.0.0.2");
	assert_string_equal(got->amt_version, "16.1.25");
	assert_string_equal(got->last_step, "keygen");
	assert_null(got->error);
	assert_int_equal(got->updated_at, 43);
	store_device_free(got);
	got = (struct store_device *)&got;
	assert_int_equal(store_device_get(f->s, "c.example.com", &got),
	    AMTCA_E_NOT_FOUND);
	assert_null(got);
	assert_int_equal(store_device_list(f->s, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].fqdn, "a.example.com");
	assert_string_equal(v[0].error, "AMT answered 401");
	assert_string_equal(v[1].fqdn, "b.example.com");
	store_devices_free(v, n);
	d.state = NULL;
	assert_int_equal(store_device_put(f->s, &d), AMTCA_E_USAGE);
}

static void
test_open_rules(void **state)
{
	struct fx *f = *state;
	struct store *s2 = (struct store *)&s2;
	char uri[600];

	be->uri(f->dir, "missing", uri, sizeof(uri));
	assert_int_equal(store_open(uri, 0, &s2), AMTCA_E_NOT_FOUND);
	assert_null(s2);
	/* ... and not created by asking. */
	assert_int_equal(store_open(uri, 0, &s2), AMTCA_E_NOT_FOUND);
	/* Something that exists but is not an amtca store. */
	be->uri(f->dir, "empty", uri, sizeof(uri));
	be->make_foreign(uri);
	assert_int_equal(store_open(uri, 0, &s2), AMTCA_E_STORE);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_STORE), "not an amtca"));
	/* Reopening an existing database with create is harmless. */
	assert_int_equal(store_open(f->uri, 1, &s2), 0);
	store_close(s2);
}

/* store_destroy removes the store and what its backend keeps beside it. */
static void
test_destroy(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x01, 0x00 };
	struct store_cert c;
	struct store *s2 = (struct store *)&s2;
	char uri[600];

	rec(&c, "0A11", "a.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	store_close(f->s);
	f->s = NULL;
	be->litter(f->uri);
	assert_int_equal(store_destroy(f->uri), 0);
	be->check_gone(f->uri);
	assert_int_equal(store_open(f->uri, 0, &s2), AMTCA_E_NOT_FOUND);
	assert_null(s2);
	/* Destroying what does not exist is not an error. */
	assert_int_equal(store_destroy(f->uri), 0);
	be->uri(f->dir, "never", uri, sizeof(uri));
	assert_int_equal(store_destroy(uri), 0);
	/* A fresh store at the same place starts empty. */
	assert_int_equal(store_open(f->uri, 1, &f->s), 0);
	assert_int_equal(count(f->s), 0);
}

/*
 * store_backup: a consistent copy while another thread keeps adding; the
 * copy opens as a store of its own with every table's rows, holds a prefix
 * of what was added (never a torn record), and refuses an existing target.
 */
struct bk_writer {
	struct store *s;
	volatile int stop;
	int added;
	int failures;
};

static void *
bk_write(void *arg)
{
	struct bk_writer *w = arg;
	unsigned char der[4] = { 0x30, 0x02 };
	struct store_cert c;
	char serial[32];

	while (!w->stop && w->added < 5000) {
		snprintf(serial, sizeof(serial), "B%05X", w->added);
		der[2] = (unsigned char)(w->added >> 8);
		der[3] = (unsigned char)w->added;
		rec(&c, serial, "w.example.com", der, sizeof(der));
		if (store_cert_add(w->s, &c) != 0)
			w->failures++;
		else
			w->added++;
	}
	return NULL;
}

static void
test_backup(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x01, 0x07 };
	struct store_cert c, *v = NULL;
	struct store_device d, *gd = NULL;
	struct store_job j, *gj = NULL;
	struct store *copy = NULL;
	struct bk_writer w;
	pthread_t th;
	char uri[600];
	size_t n = 0, i;
	int r, before;

	/* A backend without an online backup says so, and that is all. */
	be->uri(f->dir, "probe", uri, sizeof(uri));
	if ((r = store_backup(f->s, uri)) == AMTCA_E_USAGE) {
		assert_non_null(strstr(amtca_errmsg(r), "no online backup"));
		skip();
	}
	assert_int_equal(r, 0);
	rec(&c, "0C01", "b.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	assert_int_equal(store_cert_revoke(f->s, "0C01", 1, 9), 0);
	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)"amt.example.com";
	d.state = (char *)"enrolled";
	d.updated_at = 5;
	assert_int_equal(store_device_put(f->s, &d), 0);
	memset(&j, 0, sizeof(j));
	j.id = (char *)"job1";
	j.state = (char *)"running";
	j.created_at = 3;
	j.total = 2;
	assert_int_equal(store_job_put(f->s, &j), 0);

	memset(&w, 0, sizeof(w));
	w.s = f->s;
	assert_int_equal(pthread_create(&th, NULL, bk_write, &w), 0);
	while (w.added < 20)
		usleep(1000);
	before = w.added;
	be->uri(f->dir, "copy", uri, sizeof(uri));
	assert_int_equal(store_backup(f->s, uri), 0);
	w.stop = 1;
	pthread_join(th, NULL);
	assert_int_equal(w.failures, 0);

	assert_int_equal(store_open(uri, 0, &copy), 0);
	assert_int_equal(store_cert_list(copy, &v, &n), 0);
	/* The revoked one, then a prefix of the writer's, each whole. */
	assert_true(n >= (size_t)before + 1);
	assert_true(n <= (size_t)w.added + 1);
	assert_string_equal(v[0].serial, "0C01");
	assert_string_equal(v[0].status, "revoked");
	for (i = 1; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "B%05zX", i - 1);
		assert_string_equal(v[i].serial, want);
		assert_int_equal(v[i].der_len, 4);
		assert_int_equal(v[i].der[3], (unsigned char)(i - 1));
	}
	store_certs_free(v, n);
	assert_int_equal(store_device_get(copy, "amt.example.com", &gd), 0);
	assert_string_equal(gd->state, "enrolled");
	store_device_free(gd);
	assert_int_equal(store_job_get(copy, "job1", &gj), 0);
	assert_int_equal(gj->total, 2);
	store_job_free(gj);
	/* The copy is a store of its own: it takes writes, the source not. */
	rec(&c, "0C02", "only-copy.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(copy, &c), 0);
	store_close(copy);
	assert_int_equal(store_cert_get(f->s, "0C02", &v), AMTCA_E_NOT_FOUND);

	/* An existing target is never written over. */
	assert_int_equal(store_backup(f->s, uri), AMTCA_E_EXISTS);
	assert_int_equal(store_open(uri, 0, &copy), 0);
	assert_int_equal(store_cert_get(copy, "0C02", &v), 0);
	store_cert_free(v);
	store_close(copy);
	assert_int_equal(store_backup(f->s, "nosuch:x"), AMTCA_E_USAGE);
}

static void
test_list_by_device(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x01, 0x00 };
	struct store_cert c, *v = NULL;
	size_t n = 0;

	rec(&c, "D1", "pc1.example.com", der, sizeof(der));
	c.device = (char *)"PC1.example.com";
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "D2", "pc2.example.com", der, sizeof(der));
	c.device = (char *)"pc2.example.com";
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "D3", "pc1.example.com", der, sizeof(der));	/* no device */
	assert_int_equal(store_cert_add(f->s, &c), 0);
	/* Case-insensitive, only that device's records, with their DER. */
	assert_int_equal(store_cert_list_device(f->s, "pc1.EXAMPLE.com", &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].serial, "D1");
	assert_int_equal(v[0].der_len, sizeof(der));
	store_certs_free(v, n);
	assert_int_equal(store_cert_list_device(f->s, "pc9.example.com", &v, &n), 0);
	assert_int_equal(n, 0);
	store_certs_free(v, n);
}

/* Async adds: the callback runs only once the record is durable. */
struct async_ctx {
	const char *uri;
	pthread_mutex_t mu;
	int calls;
	int ok;
	int visible_at_callback;
	int dup_errors;
};

static void
async_done(void *arg, int result, const char *msg)
{
	struct async_ctx *a = arg;
	struct store *other = NULL;
	size_t n;

	(void)msg;
	/* A second connection must already see everything reported durable. */
	if (result == 0 && store_open(a->uri, 0, &other) == 0) {
		n = count(other);
		pthread_mutex_lock(&a->mu);
		if (n >= (size_t)a->ok + 1)
			a->visible_at_callback++;
		pthread_mutex_unlock(&a->mu);
		store_close(other);
	}
	pthread_mutex_lock(&a->mu);
	a->calls++;
	if (result == 0)
		a->ok++;
	else if (result == AMTCA_E_EXISTS)
		a->dup_errors++;
	pthread_mutex_unlock(&a->mu);
}

static void
test_async_add_calls_back_after_commit(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x01, 0x00 };
	struct store_cert c[21];
	char serials[21][16];
	struct async_ctx a = { .uri = f->uri };
	int i;

	pthread_mutex_init(&a.mu, NULL);
	for (i = 0; i < 20; i++) {
		snprintf(serials[i], sizeof(serials[i]), "A%03d", i);
		rec(&c[i], serials[i], "a.example.com", der, sizeof(der));
		assert_int_equal(store_cert_add_async(f->s, &c[i], async_done, &a), 0);
	}
	/* A duplicate in the stream fails alone. */
	rec(&c[20], "A005", "dup.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add_async(f->s, &c[20], async_done, &a), 0);
	/* An incomplete record is refused up front: no callback. */
	rec(&c[0], "", "x", der, sizeof(der));
	assert_int_equal(store_cert_add_async(f->s, &c[0], async_done, &a),
	    AMTCA_E_USAGE);
	/* Closing drains the queue: every callback has run afterwards. */
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(a.calls, 21);
	assert_int_equal(a.ok, 20);
	assert_int_equal(a.dup_errors, 1);
	assert_int_equal(a.visible_at_callback, 20);
	assert_int_equal(store_open(f->uri, 0, &f->s), 0);
	assert_int_equal(count(f->s), 20);
	pthread_mutex_destroy(&a.mu);
}

/*
 * Not per backend: how a URI picks one.  A plain path and "sqlite:PATH"
 * name the same SQLite store; an unknown scheme is refused, never taken
 * for a file name.
 */
static void
test_uri_selection(void **state)
{
	unsigned char der[] = { 0x30, 0x01, 0x00 };
	struct store *a = NULL, *b = (struct store *)&b;
	struct store_cert c, *got = NULL;
	char *dir = test_tmpdir(), plain[512], uri[600], colon[600];

	(void)state;
	snprintf(plain, sizeof(plain), "%s/plain.db", dir);
	snprintf(uri, sizeof(uri), "sqlite:%s", plain);
	assert_int_equal(store_open(plain, 1, &a), 0);
	rec(&c, "0A11", "a.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(a, &c), 0);
	assert_int_equal(store_open(uri, 0, &b), 0);
	assert_int_equal(store_cert_get(b, "0A11", &got), 0);
	store_cert_free(got);
	store_close(b);
	store_close(a);
	/* An absolute path with a colon in it is still a path. */
	snprintf(colon, sizeof(colon), "%s/a:b.db", dir);
	assert_int_equal(store_open(colon, 1, &a), 0);
	store_close(a);
	assert_int_equal(access(colon, F_OK), 0);

	b = (struct store *)&b;
	assert_int_equal(store_open("mysql://db.example.com/amtca", 1, &b),
	    AMTCA_E_USAGE);
	assert_null(b);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_USAGE),
	    "unknown store scheme \"mysql\""));
	/* PostgreSQL URIs are known; a password in one is refused before any
	 * connection, and the message does not repeat it. */
	assert_int_equal(store_open("postgresql://amtca:s3cr3t@db.example.com/"
	    "amtca", 1, &b), AMTCA_E_USAGE);
	assert_null(b);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_USAGE), "passfile"));
	assert_null(strstr(amtca_errmsg(AMTCA_E_USAGE), "s3cr3t"));
	assert_int_equal(store_open("postgres:///amtca?host=/run/postgresql&"
	    "password=s3cr3t", 1, &b), AMTCA_E_USAGE);
	assert_null(strstr(amtca_errmsg(AMTCA_E_USAGE), "s3cr3t"));
	assert_int_equal(store_destroy("postgresql://u:s3cr3t@h/amtca"),
	    AMTCA_E_USAGE);
	assert_int_equal(store_open("postgresql://h/amtca?nosuchparam=1", 1, &b),
	    AMTCA_E_USAGE);
	assert_int_equal(store_open("sqlite:", 1, &b), AMTCA_E_USAGE);
	assert_int_equal(store_open(NULL, 1, &b), AMTCA_E_USAGE);
	assert_int_equal(store_destroy("nosuch:thing"), AMTCA_E_USAGE);
	/* Nothing was created for the refused names. */
	assert_int_equal(access("postgresql:", F_OK), -1);
	assert_int_equal(store_destroy(uri), 0);
	assert_int_equal(access(plain, F_OK), -1);
	test_rmrf(dir);
	free(dir);
}

/* The device record's fleet fields; the engine's puts keep them. */
static void
test_device_fleet_fields(void **state)
{
	struct fx *f = *state;
	struct store_device d, *got = NULL;
	static const char *const states[] = { "pending", "enrolling",
	    "enrolled", "failed", "auth_failed", "compromised", "retired" };
	size_t i;

	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)"f.example.com";
	d.state = (char *)"pending";
	d.port = 16000;
	d.tls_port = 16001;
	d.user = (char *)"admin";
	d.cred_ref = (char *)"/etc/amt/f.pw";
	d.cred_stamp = (char *)"2049:77:9:1700000000";
	d.tls_pin = (char *)"00112233445566778899aabbccddeeff"
	    "00112233445566778899aabbccddeeff";
	assert_int_equal(store_device_put(f->s, &d), 0);
	/* The engine writes its own fields only: the rest is kept. */
	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)"f.example.com";
	d.state = (char *)"enrolled";
	d.cert_serial = (char *)"0C01";
	assert_int_equal(store_device_put(f->s, &d), 0);
	assert_int_equal(store_device_get(f->s, "f.example.com", &got), 0);
	assert_string_equal(got->state, "enrolled");
	assert_string_equal(got->cert_serial, "0C01");
	assert_int_equal(got->port, 16000);
	assert_int_equal(got->tls_port, 16001);
	assert_string_equal(got->user, "admin");
	assert_string_equal(got->cred_ref, "/etc/amt/f.pw");
	assert_string_equal(got->cred_stamp, "2049:77:9:1700000000");
	assert_int_equal(strlen(got->tls_pin), 64);
	store_device_free(got);
	/* "" clears one. */
	d.cred_stamp = (char *)"";
	assert_int_equal(store_device_put(f->s, &d), 0);
	assert_int_equal(store_device_get(f->s, "f.example.com", &got), 0);
	assert_null(got->cred_stamp);
	assert_string_equal(got->user, "admin");
	store_device_free(got);
	/* Every state of the contract, and nothing else. */
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		d.state = (char *)states[i];
		assert_int_equal(store_device_put(f->s, &d), 0);
		assert_true(store_device_state_valid(states[i]));
	}
	d.state = (char *)"sleeping";
	assert_int_equal(store_device_put(f->s, &d), AMTCA_E_USAGE);
	d.state = (char *)"enrolled";
	d.port = 70000;
	assert_int_equal(store_device_put(f->s, &d), AMTCA_E_USAGE);
}

static void
test_jobs(void **state)
{
	struct fx *f = *state;
	struct store_job j, *got = NULL, *v = NULL;
	struct store_job_device jd, *dv = NULL;
	size_t n = 0;

	memset(&j, 0, sizeof(j));
	j.id = (char *)"job-1";
	j.created_at = 100;
	j.state = (char *)"running";
	j.hosts_digest = (char *)"abcd";
	j.total = 2;
	assert_int_equal(store_job_put(f->s, &j), 0);
	j.id = (char *)"job-2";
	j.created_at = 200;
	assert_int_equal(store_job_put(f->s, &j), 0);

	memset(&jd, 0, sizeof(jd));
	jd.job_id = (char *)"job-1";
	jd.fqdn = (char *)"b.example.com";
	jd.result = (char *)"pending";
	assert_int_equal(store_job_device_put(f->s, &jd), 0);
	jd.fqdn = (char *)"a.example.com";
	jd.result = (char *)"failed";
	jd.error = (char *)"connection refused";
	jd.attempts = 3;
	jd.updated_at = 150;
	assert_int_equal(store_job_device_put(f->s, &jd), 0);
	/* Replace by (job, FQDN). */
	jd.fqdn = (char *)"b.example.com";
	jd.result = (char *)"enrolled";
	jd.serial = (char *)"0D01";
	jd.error = NULL;
	jd.attempts = 1;
	assert_int_equal(store_job_device_put(f->s, &jd), 0);
	/* Unknown job, unknown result. */
	jd.job_id = (char *)"job-9";
	assert_int_equal(store_job_device_put(f->s, &jd), AMTCA_E_NOT_FOUND);
	jd.job_id = (char *)"job-1";
	jd.result = (char *)"maybe";
	assert_int_equal(store_job_device_put(f->s, &jd), AMTCA_E_USAGE);

	assert_int_equal(store_job_device_list(f->s, "job-1", &dv, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(dv[0].fqdn, "a.example.com");
	assert_string_equal(dv[0].result, "failed");
	assert_string_equal(dv[0].error, "connection refused");
	assert_int_equal(dv[0].attempts, 3);
	assert_int_equal(dv[0].updated_at, 150);
	assert_string_equal(dv[1].result, "enrolled");
	assert_string_equal(dv[1].serial, "0D01");
	assert_null(dv[1].error);
	store_job_devices_free(dv, n);
	assert_int_equal(store_job_device_list(f->s, "job-2", &dv, &n), 0);
	assert_int_equal(n, 0);
	store_job_devices_free(dv, n);

	/* Finish one; list is newest first. */
	j.id = (char *)"job-1";
	j.created_at = 100;
	j.state = (char *)"done";
	j.finished_at = 300;
	assert_int_equal(store_job_put(f->s, &j), 0);
	assert_int_equal(store_job_get(f->s, "job-1", &got), 0);
	assert_string_equal(got->state, "done");
	assert_int_equal(got->finished_at, 300);
	assert_int_equal(got->created_at, 100);
	assert_string_equal(got->hosts_digest, "abcd");
	assert_int_equal(got->total, 2);
	store_job_free(got);
	got = (struct store_job *)&got;
	assert_int_equal(store_job_get(f->s, "job-3", &got), AMTCA_E_NOT_FOUND);
	assert_null(got);
	assert_int_equal(store_job_list(f->s, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "job-2");
	assert_string_equal(v[1].id, "job-1");
	store_jobs_free(v, n);
	j.state = (char *)"lost";
	assert_int_equal(store_job_put(f->s, &j), AMTCA_E_USAGE);
}

static void
test_leases(void **state)
{
	struct fx *f = *state;
	struct store *s2 = NULL;
	char *holder = NULL;
	time_t exp = 0;

	assert_int_equal(store_open(f->uri, 0, &s2), 0);
	assert_int_equal(store_lease_take(f->s, "device:a", "A", 1000, 60, NULL,
	    NULL, NULL), 0);
	/* Another owner, even through another connection, is refused and
	 * told who holds it until when. */
	assert_int_equal(store_lease_take(s2, "device:a", "B", 1010, 60, NULL,
	    &holder, &exp), AMTCA_E_EXISTS);
	assert_string_equal(holder, "A");
	assert_int_equal(exp, 1060);
	free(holder);
	holder = NULL;
	/* Other names are independent. */
	assert_int_equal(store_lease_take(s2, "device:b", "B", 1010, 60, NULL,
	    NULL, NULL), 0);
	/* Renewal by the holder; not by others. */
	assert_int_equal(store_lease_renew(f->s, "device:a", "A", 1050, 60), 0);
	assert_int_equal(store_lease_renew(s2, "device:a", "B", 1050, 60),
	    AMTCA_E_NOT_FOUND);
	assert_int_equal(store_lease_take(s2, "device:a", "B", 1100, 60, NULL,
	    NULL, NULL), AMTCA_E_EXISTS);
	/* Takeover only of the named (dead) holder. */
	assert_int_equal(store_lease_take(s2, "device:a", "B", 1100, 60, "C",
	    NULL, NULL), AMTCA_E_EXISTS);
	assert_int_equal(store_lease_take(s2, "device:a", "B", 1100, 60, "A",
	    NULL, NULL), 0);
	assert_int_equal(store_lease_renew(f->s, "device:a", "A", 1101, 60),
	    AMTCA_E_NOT_FOUND);
	/* A lapsed lease is anyone's. */
	assert_int_equal(store_lease_take(f->s, "device:a", "A", 1160, 60, NULL,
	    NULL, NULL), 0);
	/* Release by a non-holder does nothing; by the holder frees it. */
	assert_int_equal(store_lease_release(s2, "device:a", "B"), 0);
	assert_int_equal(store_lease_take(s2, "device:a", "B", 1161, 60, NULL,
	    NULL, NULL), AMTCA_E_EXISTS);
	assert_int_equal(store_lease_release(f->s, "device:a", "A"), 0);
	assert_int_equal(store_lease_take(s2, "device:a", "B", 1161, 60, NULL,
	    NULL, NULL), 0);
	assert_int_equal(store_lease_take(s2, "device:a", "", 1161, 60, NULL,
	    NULL, NULL), AMTCA_E_USAGE);
	store_close(s2);
}

/* A running job of `n` pending devices d00.example.com... plus one done. */
static void
claim_job(struct store *s, const char *id, int n, time_t created)
{
	struct store_job j;
	struct store_job_device jd;
	char fqdn[64];
	int i;

	memset(&j, 0, sizeof(j));
	j.id = (char *)id;
	j.created_at = created;
	j.state = (char *)"running";
	j.total = (unsigned)n + 1;
	assert_int_equal(store_job_put(s, &j), 0);
	memset(&jd, 0, sizeof(jd));
	jd.job_id = (char *)id;
	jd.result = (char *)"pending";
	for (i = 0; i < n; i++) {
		snprintf(fqdn, sizeof(fqdn), "d%02d.example.com", i);
		jd.fqdn = fqdn;
		assert_int_equal(store_job_device_put(s, &jd), 0);
	}
	jd.fqdn = (char *)"done.example.com";
	jd.result = (char *)"enrolled";
	assert_int_equal(store_job_device_put(s, &jd), 0);
}

static void
claim_done(struct store *s, const char *id, const char *fqdn)
{
	struct store_job_device jd;

	memset(&jd, 0, sizeof(jd));
	jd.job_id = (char *)id;
	jd.fqdn = (char *)fqdn;
	jd.result = (char *)"enrolled";
	jd.attempts = 1;
	assert_int_equal(store_job_device_put(s, &jd), 0);
}

static void
claimable_is(struct store *s, time_t now, const char *want)
{
	char **ids = NULL;
	size_t n = 0, i;

	assert_int_equal(store_job_claimable(s, now, &ids, &n), 0);
	if (want == NULL)
		assert_int_equal(n, 0);
	else {
		assert_int_equal(n, 1);
		assert_string_equal(ids[0], want);
	}
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/*
 * Job claims: each unfinished device of a running job goes to one claimer
 * until its claim expires; a finished device never; renewal keeps it,
 * release frees it; the job is finished once, when nothing is pending.
 */
static void
test_job_claims(void **state)
{
	struct fx *f = *state;
	struct store *s2 = NULL;
	struct store_job *j = NULL;
	char *a = NULL, *b = NULL, *c = NULL, *x = NULL, *prev = NULL;
	char **owners = NULL;
	size_t n = 0;
	int fin = -1;

	assert_int_equal(store_open(f->uri, 0, &s2), 0);
	claim_job(f->s, "job-c", 3, 100);
	claimable_is(f->s, 1000, "job-c");
	assert_int_equal(store_job_claim(f->s, "job-c", "A", 1000, 30, &a,
	    &prev), 0);
	assert_null(prev);
	assert_int_equal(store_job_claim(s2, "job-c", "B", 1000, 30, &b, &prev),
	    0);
	assert_null(prev);
	assert_int_equal(store_job_claim(f->s, "job-c", "A", 1001, 30, &c, NULL),
	    0);
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_not_equal(b, c);
	assert_null(strstr(a, "done"));
	assert_null(strstr(b, "done"));
	assert_null(strstr(c, "done"));
	/* All claimed, none lapsed: nothing for anyone, the job not listed. */
	x = (char *)&x;
	assert_int_equal(store_job_claim(s2, "job-c", "B", 1010, 30, &x, NULL),
	    AMTCA_E_NOT_FOUND);
	assert_null(x);
	claimable_is(f->s, 1010, NULL);
	assert_int_equal(store_job_claim_owners(s2, "job-c", &owners, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(owners[0], "A");
	assert_string_equal(owners[1], "B");
	free(owners[0]);
	free(owners[1]);
	free(owners);
	/* A renews its claims (two), B does not: at 1030 B's has lapsed. */
	assert_int_equal(store_job_claim_renew(f->s, "job-c", "A", 1020, 30, &n),
	    0);
	assert_int_equal(n, 2);
	claimable_is(f->s, 1030, "job-c");
	assert_int_equal(store_job_claim(f->s, "job-c", "A", 1030, 30, &x,
	    &prev), 0);
	assert_string_equal(x, b);
	assert_non_null(prev);
	assert_string_equal(prev, "B");
	free(prev);
	prev = NULL;
	free(x);
	x = NULL;
	/* Release: the device is claimable at once. */
	assert_int_equal(store_job_claim_release(f->s, "job-c", "A", a), 0);
	assert_int_equal(store_job_claim(s2, "job-c", "B", 1031, 30, &x, &prev),
	    0);
	assert_string_equal(x, a);
	assert_null(prev);
	free(x);
	x = NULL;
	/* Finishing: not while anything is pending; then exactly once. */
	claim_done(f->s, "job-c", a);
	claim_done(s2, "job-c", b);
	assert_int_equal(store_job_finish(f->s, "job-c", 1040, &fin), 0);
	assert_int_equal(fin, 0);
	/* A finished device stays finished: a lapsed claim does not revive it. */
	claimable_is(f->s, 5000, "job-c");
	assert_int_equal(store_job_claim(s2, "job-c", "B", 5000, 30, &x, NULL),
	    0);
	assert_string_equal(x, c);
	free(x);
	x = NULL;
	assert_int_equal(store_job_claim(s2, "job-c", "B", 5000, 30, &x, NULL),
	    AMTCA_E_NOT_FOUND);
	claim_done(s2, "job-c", c);
	claimable_is(f->s, 9000, NULL);
	assert_int_equal(store_job_finish(s2, "job-c", 5001, &fin), 0);
	assert_int_equal(fin, 1);
	assert_int_equal(store_job_finish(f->s, "job-c", 5002, &fin), 0);
	assert_int_equal(fin, 0);
	assert_int_equal(store_job_get(f->s, "job-c", &j), 0);
	assert_string_equal(j->state, "done");
	assert_int_equal(j->finished_at, 5001);
	store_job_free(j);
	/* A job that is not running hands out nothing. */
	claim_job(f->s, "job-x", 2, 200);
	assert_int_equal(store_job_get(f->s, "job-x", &j), 0);
	free(j->state);
	j->state = strdup("cancelled");
	assert_int_equal(store_job_put(f->s, j), 0);
	store_job_free(j);
	assert_int_equal(store_job_claim(f->s, "job-x", "A", 1000, 30, &x, NULL),
	    AMTCA_E_NOT_FOUND);
	claimable_is(f->s, 1000, NULL);
	assert_int_equal(store_job_finish(f->s, "job-x", 1000, &fin), 0);
	assert_int_equal(fin, 0);
	assert_int_equal(store_job_claim(f->s, "job-x", "", 1000, 30, &x, NULL),
	    AMTCA_E_USAGE);
	free(a);
	free(b);
	free(c);
	store_close(s2);
}

/* Nodes (handles of their own) claiming one job at once. */
#define CLAIM_DEVICES 60
#define CLAIM_NODES 4

struct claimer {
	const char *uri;
	char owner[16];
	pthread_barrier_t *go;
	char *got[CLAIM_DEVICES];
	size_t n;
	int finished;
	int errors;
};

static void *
claimer_main(void *arg)
{
	struct claimer *c = arg;
	struct store *s = NULL;
	char *fqdn = NULL;
	size_t i;
	int r, fin = 0;

	assert_int_equal(store_open(c->uri, 0, &s), 0);
	pthread_barrier_wait(c->go);
	while ((r = store_job_claim(s, "job-n", c->owner, 1000, 60, &fqdn,
	    NULL)) == 0) {
		if (c->n < CLAIM_DEVICES)
			c->got[c->n++] = fqdn;
		else {
			c->errors++;
			free(fqdn);
		}
		fqdn = NULL;
	}
	if (r != AMTCA_E_NOT_FOUND)
		c->errors++;
	/* Everyone finishes its devices, then tries to finish the job. */
	pthread_barrier_wait(c->go);
	for (i = 0; i < c->n; i++) {
		struct store_job_device jd;

		memset(&jd, 0, sizeof(jd));
		jd.job_id = (char *)"job-n";
		jd.fqdn = c->got[i];
		jd.result = (char *)"enrolled";
		if (store_job_device_put(s, &jd) != 0)
			c->errors++;
		if (store_job_finish(s, "job-n", 2000, &fin) != 0)
			c->errors++;
		c->finished += fin;
	}
	store_close(s);
	return NULL;
}

static void
test_job_claims_concurrent(void **state)
{
	struct fx *f = *state;
	struct claimer c[CLAIM_NODES];
	pthread_t th[CLAIM_NODES];
	pthread_barrier_t go;
	char seen[CLAIM_DEVICES];
	struct store_job *j = NULL;
	size_t i, total = 0;
	int k, idx, finished = 0;

	claim_job(f->s, "job-n", CLAIM_DEVICES, 100);
	memset(c, 0, sizeof(c));
	memset(seen, 0, sizeof(seen));
	pthread_barrier_init(&go, NULL, CLAIM_NODES);
	for (k = 0; k < CLAIM_NODES; k++) {
		c[k].uri = f->uri;
		c[k].go = &go;
		snprintf(c[k].owner, sizeof(c[k].owner), "node%d", k);
		assert_int_equal(pthread_create(&th[k], NULL, claimer_main, &c[k]),
		    0);
	}
	for (k = 0; k < CLAIM_NODES; k++)
		pthread_join(th[k], NULL);
	pthread_barrier_destroy(&go);
	for (k = 0; k < CLAIM_NODES; k++) {
		assert_int_equal(c[k].errors, 0);
		finished += c[k].finished;
		for (i = 0; i < c[k].n; i++) {
			assert_int_equal(sscanf(c[k].got[i], "d%d.example.com",
			    &idx), 1);
			assert_true(idx >= 0 && idx < CLAIM_DEVICES);
			/* Never the same device twice. */
			assert_int_equal(seen[idx], 0);
			seen[idx] = 1;
			total++;
			free(c[k].got[i]);
		}
	}
	assert_int_equal(total, CLAIM_DEVICES);
	assert_int_equal(finished, 1);
	assert_int_equal(store_job_get(f->s, "job-n", &j), 0);
	assert_string_equal(j->state, "done");
	store_job_free(j);
}

/* The revocation mark moves with every change to a revocation, only then. */
static void
test_revocation_mark(void **state)
{
	struct fx *f = *state;
	struct store_cert c;
	unsigned char der[4] = { 0x30, 0x02, 0x05, 0x00 };
	uint64_t m0 = 1, m1 = 0, m2 = 0, m3 = 0;

	assert_int_equal(store_revocation_mark(f->s, &m0), 0);
	assert_int_equal(m0, 0);
	rec(&c, "7A01", "a.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "7A02", "b.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	assert_int_equal(store_revocation_mark(f->s, &m1), 0);
	assert_int_equal(m1, 0);
	assert_int_equal(store_cert_revoke(f->s, "7A01", 4, 1600), 0);
	assert_int_equal(store_revocation_mark(f->s, &m1), 0);
	assert_true(m1 > 0);
	/* An issuance and a repeat revocation change nothing on a CRL. */
	rec(&c, "7A03", "c.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	assert_int_equal(store_cert_revoke(f->s, "7A01", 4, 1700), 0);
	assert_int_equal(store_revocation_mark(f->s, &m2), 0);
	assert_int_equal(m2, m1);
	/* keyCompromise replaces the reason: the CRL changes, so does the mark. */
	assert_int_equal(store_cert_revoke(f->s, "7A01", 1, 1800), 0);
	assert_int_equal(store_revocation_mark(f->s, &m3), 0);
	assert_true(m3 > m2);
}

/* Sealed credentials: put replaces but keeps created_at; list has no blob. */
static void
test_credentials(void **state)
{
	struct fx *f = *state;
	struct store *s2 = NULL;
	struct store_cred c, *g = NULL, *v = NULL;
	unsigned char blob1[] = { 1, 2, 3, 0, 4 }, blob2[] = { 9, 8, 7 };
	size_t n = 0;

	memset(&c, 0, sizeof(c));
	c.name = (char *)"lab";
	c.user = (char *)"admin";
	c.sealed = blob1;
	c.sealed_len = sizeof(blob1);
	c.mechanism = (char *)"aes-256-gcm";
	c.created_at = c.updated_at = 100;
	assert_int_equal(store_cred_put(f->s, &c), 0);
	c.name = (char *)"branch";
	assert_int_equal(store_cred_put(f->s, &c), 0);
	/* Replacing "lab" through another connection. */
	assert_int_equal(store_open(f->uri, 0, &s2), 0);
	c.name = (char *)"lab";
	c.user = (char *)"operator";
	c.sealed = blob2;
	c.sealed_len = sizeof(blob2);
	c.mechanism = (char *)"aes-256-cbc-hmac-sha256";
	c.created_at = 0;
	c.updated_at = 200;
	assert_int_equal(store_cred_put(s2, &c), 0);
	assert_int_equal(store_cred_get(f->s, "lab", &g), 0);
	assert_string_equal(g->name, "lab");
	assert_string_equal(g->user, "operator");
	assert_string_equal(g->mechanism, "aes-256-cbc-hmac-sha256");
	assert_int_equal(g->sealed_len, sizeof(blob2));
	assert_memory_equal(g->sealed, blob2, sizeof(blob2));
	assert_int_equal(g->created_at, 100);
	assert_int_equal(g->updated_at, 200);
	store_cred_free(g);
	g = NULL;
	/* Binary blobs come back whole (an embedded NUL included). */
	assert_int_equal(store_cred_get(s2, "branch", &g), 0);
	assert_int_equal(g->sealed_len, sizeof(blob1));
	assert_memory_equal(g->sealed, blob1, sizeof(blob1));
	store_cred_free(g);
	g = NULL;
	assert_int_equal(store_cred_list(f->s, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "branch");
	assert_string_equal(v[1].name, "lab");
	assert_string_equal(v[1].user, "operator");
	assert_null(v[0].sealed);
	assert_int_equal(v[0].sealed_len, 0);
	store_creds_free(v, n);
	/* Removal; unknown names. */
	assert_int_equal(store_cred_remove(s2, "lab"), 0);
	assert_int_equal(store_cred_remove(s2, "lab"), AMTCA_E_NOT_FOUND);
	assert_int_equal(store_cred_get(f->s, "lab", &g), AMTCA_E_NOT_FOUND);
	assert_null(g);
	/* Incomplete records are refused before the backend sees them. */
	c.sealed = NULL;
	c.sealed_len = 0;
	assert_int_equal(store_cred_put(f->s, &c), AMTCA_E_USAGE);
	c.sealed = blob1;
	c.sealed_len = sizeof(blob1);
	c.mechanism = NULL;
	assert_int_equal(store_cred_put(f->s, &c), AMTCA_E_USAGE);
	c.mechanism = (char *)"aes-256-gcm";
	c.user = (char *)"";
	assert_int_equal(store_cred_put(f->s, &c), AMTCA_E_USAGE);
	assert_int_equal(store_cred_get(f->s, "", &g), AMTCA_E_USAGE);
	store_close(s2);
}

/*
 * The shared configuration: a put of several items is one transaction that
 * a second connection sees whole; a value round-trips byte for byte (NUL
 * bytes, empty); a NULL value removes; bad names and oversize values are
 * refused and change nothing.
 */
static void
test_meta(void **state)
{
	struct fx *f = *state;
	struct store *s2 = NULL;
	struct store_meta v[3], *g = NULL, *l = NULL;
	unsigned char blob[] = { 'a', 0, 'b', 0xff };
	unsigned char *big = NULL;
	size_t n = 0;

	assert_int_equal(store_meta_list(f->s, &l, &n), 0);
	assert_int_equal(n, 0);
	store_metas_free(l, n);
	l = NULL;
	assert_int_equal(store_meta_get(f->s, "conf", &g), AMTCA_E_NOT_FOUND);
	assert_null(g);

	memset(v, 0, sizeof(v));
	v[0].name = (char *)"root.pem";
	v[0].value = blob;
	v[0].len = sizeof(blob);
	v[1].name = (char *)"conf";
	v[1].value = (unsigned char *)"";
	v[1].len = 0;
	v[2].name = (char *)"chain.pem";
	v[2].value = (unsigned char *)"x";
	v[2].len = 1;
	v[2].updated_at = 42;
	assert_int_equal(store_meta_put(f->s, v, 3), 0);

	/* Another connection (another node) reads the whole set. */
	assert_int_equal(store_open(f->uri, 0, &s2), 0);
	assert_int_equal(store_meta_list(s2, &l, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(l[0].name, "chain.pem");
	assert_int_equal(l[0].updated_at, 42);
	assert_string_equal(l[1].name, "conf");
	assert_non_null(l[1].value);
	assert_int_equal(l[1].len, 0);
	assert_true(l[1].updated_at > 0);
	assert_string_equal(l[2].name, "root.pem");
	assert_int_equal(l[2].len, sizeof(blob));
	assert_memory_equal(l[2].value, blob, sizeof(blob));
	store_metas_free(l, n);
	l = NULL;

	/* Replace one, remove one, in one put. */
	v[0].value = (unsigned char *)"new";
	v[0].len = 3;
	v[1].value = NULL;
	assert_int_equal(store_meta_put(f->s, v, 2), 0);
	assert_int_equal(store_meta_get(s2, "root.pem", &g), 0);
	assert_int_equal(g->len, 3);
	assert_memory_equal(g->value, "new", 3);
	store_meta_free(g);
	g = NULL;
	assert_int_equal(store_meta_get(s2, "conf", &g), AMTCA_E_NOT_FOUND);
	/* Removing what is absent is no error. */
	assert_int_equal(store_meta_put(f->s, &v[1], 1), 0);

	/* Refused, and nothing changed. */
	v[0].name = (char *)"with space";
	assert_int_equal(store_meta_put(f->s, v, 1), AMTCA_E_USAGE);
	v[0].name = (char *)"";
	assert_int_equal(store_meta_put(f->s, v, 1), AMTCA_E_USAGE);
	v[0].name = (char *)"root.pem";
	v[1].name = (char *)"root.pem";
	v[1].value = (unsigned char *)"dup";
	v[1].len = 3;
	assert_int_equal(store_meta_put(f->s, v, 2), AMTCA_E_USAGE);
	assert_non_null(big = calloc(1, AMTCA_STORE_META_VALUE_MAX + 1));
	v[0].value = big;
	v[0].len = AMTCA_STORE_META_VALUE_MAX + 1;
	assert_int_equal(store_meta_put(f->s, v, 1), AMTCA_E_USAGE);
	free(big);
	assert_int_equal(store_meta_put(f->s, v, 0), AMTCA_E_USAGE);
	assert_int_equal(store_meta_get(s2, "root.pem", &g), 0);
	assert_memory_equal(g->value, "new", 3);
	store_meta_free(g);
	assert_int_equal(store_meta_list(s2, &l, &n), 0);
	assert_int_equal(n, 2);
	store_metas_free(l, n);
	store_close(s2);
}

/* A home made by the previous release keeps working after the upgrade. */
static void
test_upgrade_from_previous(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL, *s2 = NULL;
	struct store_device *d = NULL, nd;
	struct store_cert *c = NULL;
	struct store_job j;
	struct store_cred cr;
	uint64_t head = 0, sealed = 0;
	char uri[512];

	if (be->make_previous == NULL)
		skip();
	be->uri(f->dir, "previous", uri, sizeof(uri));
	be->make_previous(uri);
	if (strcmp(be->name, "postgresql") == 0) {
		/* Shared by nodes: migrating is explicit (amtca store
		 * migrate, or init), a plain open refuses. */
		assert_int_equal(store_open(uri, 0, &s), AMTCA_E_STORE);
		assert_int_equal(store_open(uri, 1, &s), 0);
		store_close(s);
		s = NULL;
	}
	assert_int_equal(store_open(uri, 0, &s), 0);
	assert_int_equal(store_device_get(s, "old.example.com", &d), 0);
	assert_string_equal(d->state, "enrolled");
	assert_string_equal(d->cert_serial, "0B01");
	assert_int_equal(d->updated_at, 77);
	assert_int_equal(d->port, 0);
	assert_null(d->user);
	store_device_free(d);
	assert_int_equal(store_cert_get(s, "0B01", &c), 0);
	assert_string_equal(c->device, "old.example.com");
	store_cert_free(c);
	/* The new tables and columns are there. */
	memset(&nd, 0, sizeof(nd));
	nd.fqdn = (char *)"old.example.com";
	nd.state = (char *)"enrolled";
	nd.user = (char *)"admin";
	assert_int_equal(store_device_put(s, &nd), 0);
	memset(&j, 0, sizeof(j));
	j.id = (char *)"j";
	j.state = (char *)"running";
	assert_int_equal(store_job_put(s, &j), 0);
	assert_int_equal(store_lease_take(s, "device:x", "A", 1, 60, NULL, NULL,
	    NULL), 0);
	memset(&cr, 0, sizeof(cr));
	cr.name = (char *)"old";
	cr.user = (char *)"admin";
	cr.sealed = (unsigned char *)"x";
	cr.sealed_len = 1;
	cr.mechanism = (char *)"aes-256-gcm";
	assert_int_equal(store_cred_put(s, &cr), 0);
	/* The audit trail is there and chains from its genesis. */
	assert_int_equal(store_audit_append(s, "tester", "test.upgrade", "x",
	    NULL), 0);
	assert_int_equal(store_audit_status(s, &head, &sealed), 0);
	assert_int_equal(head, 1);
	store_close(s);
	/* Reopened: already upgraded, data kept. */
	assert_int_equal(store_open(uri, 0, &s2), 0);
	assert_int_equal(store_device_get(s2, "old.example.com", &d), 0);
	assert_string_equal(d->user, "admin");
	store_device_free(d);
	store_close(s2);
}

/* Admin and EST client records: unique names forever, lookup by serial,
 * removal keeps the record but disables binding. */
/*
 * Client changes append their audit entry in the record's own transaction,
 * by the named actor or the store's, and only when the record changed.
 */
static void
test_client_audit(void **state)
{
	struct fx *f = *state;
	struct store_client c;
	struct store_audit *e = NULL;
	size_t n = 0;

	assert_int_equal(store_set_actor(f->s, "op@host"), 0);
	memset(&c, 0, sizeof(c));
	c.name = (char *)"est1";
	c.roles = STORE_CLIENT_EST;
	c.allow = (char *)"example.test b.example.org";
	assert_int_equal(store_client_add(f->s, &c), 0);
	c.name = (char *)"adm";
	c.roles = STORE_CLIENT_ADMIN;
	c.allow = NULL;
	c.serial = (char *)"0abc";
	assert_int_equal(store_client_add_as(f->s, &c, "other@host"), 0);
	/* Refused changes append nothing. */
	assert_int_equal(store_client_add(f->s, &c), AMTCA_E_EXISTS);
	assert_int_equal(store_client_bind(f->s, "ghost", "01"),
	    AMTCA_E_NOT_FOUND);
	assert_int_equal(store_client_remove(f->s, "ghost", 1),
	    AMTCA_E_NOT_FOUND);
	assert_int_equal(store_client_bind_as(f->s, "est1", "0def", "est1"), 0);
	assert_int_equal(store_client_remove(f->s, "est1", 500), 0);
	/* A repeat removal changes nothing and appends nothing. */
	assert_int_equal(store_client_remove(f->s, "est1", 900), 0);

	assert_int_equal(store_audit_list(f->s, 0, &e, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(e[0].action, "client.add");
	assert_string_equal(e[0].actor, "op@host");
	assert_string_equal(e[0].subject, "est1");
	assert_string_equal(e[0].detail,
	    "role=est allow=example.test,b.example.org");
	assert_string_equal(e[1].actor, "other@host");
	assert_string_equal(e[1].detail, "role=admin serial=0ABC");
	assert_string_equal(e[2].action, "client.rebind");
	assert_string_equal(e[2].actor, "est1");
	assert_string_equal(e[2].detail, "serial=0DEF");
	assert_string_equal(e[3].action, "client.remove");
	assert_string_equal(e[3].actor, "op@host");
	assert_string_equal(e[3].detail, "role=est serial=0DEF");
	store_audits_free(e, n);
}

static void
test_clients(void **state)
{
	struct fx *f = *state;
	struct store_client c, *g = NULL, *v = NULL;
	struct store *s2 = NULL;
	size_t n = 0;

	memset(&c, 0, sizeof(c));
	c.name = (char *)"est1";
	c.roles = STORE_CLIENT_EST;
	c.allow = (char *)"example.test b.example.org";
	c.pwhash = (char *)"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
	c.created_at = 100;
	assert_int_equal(store_client_add(f->s, &c), 0);
	memset(&c, 0, sizeof(c));
	c.name = (char *)"admin1";
	c.roles = STORE_CLIENT_ADMIN;
	c.serial = (char *)"0abc";
	assert_int_equal(store_client_add(f->s, &c), 0);
	/* Same name again: refused, whatever the role. */
	c.roles = STORE_CLIENT_EST;
	c.serial = NULL;
	assert_int_equal(store_client_add(f->s, &c), AMTCA_E_EXISTS);
	/* No role or no name: refused before the backend. */
	c.name = (char *)"x";
	c.roles = 0;
	assert_int_equal(store_client_add(f->s, &c), AMTCA_E_USAGE);

	/* Seen through a second connection, by name and by serial. */
	assert_int_equal(store_open(f->uri, 0, &s2), 0);
	assert_int_equal(store_client_get(s2, "est1", &g), 0);
	assert_int_equal(g->roles, STORE_CLIENT_EST);
	assert_string_equal(g->allow, "example.test b.example.org");
	assert_non_null(g->pwhash);
	assert_null(g->serial);
	assert_int_equal(g->created_at, 100);
	assert_int_equal(g->removed_at, 0);
	store_client_free(g);
	assert_int_equal(store_client_by_serial(s2, "0ABC", &g), 0);
	assert_string_equal(g->name, "admin1");
	assert_string_equal(g->serial, "0ABC");	/* stored uppercase */
	store_client_free(g);
	assert_int_equal(store_client_by_serial(s2, "0abd", &g),
	    AMTCA_E_NOT_FOUND);
	assert_null(g);
	assert_int_equal(store_client_get(s2, "nobody", &g), AMTCA_E_NOT_FOUND);

	/* Rebinding moves the serial lookup. */
	assert_int_equal(store_client_bind(f->s, "est1", "0DEF"), 0);
	assert_int_equal(store_client_by_serial(s2, "0def", &g), 0);
	assert_string_equal(g->name, "est1");
	store_client_free(g);
	assert_int_equal(store_client_bind(f->s, "ghost", "01"),
	    AMTCA_E_NOT_FOUND);

	/* Removal: kept, disabled, first time kept, no rebinding after. */
	assert_int_equal(store_client_remove(f->s, "est1", 500), 0);
	assert_int_equal(store_client_remove(f->s, "est1", 900), 0);
	assert_int_equal(store_client_get(s2, "est1", &g), 0);
	assert_int_equal(g->removed_at, 500);
	store_client_free(g);
	assert_int_equal(store_client_bind(f->s, "est1", "0FFF"),
	    AMTCA_E_NOT_FOUND);
	assert_int_equal(store_client_remove(f->s, "ghost", 1),
	    AMTCA_E_NOT_FOUND);
	c.name = (char *)"est1";
	c.roles = STORE_CLIENT_EST;
	assert_int_equal(store_client_add(f->s, &c), AMTCA_E_EXISTS);

	assert_int_equal(store_client_list(s2, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "admin1");
	assert_string_equal(v[1].name, "est1");
	store_clients_free(v, n);
	store_close(s2);
}

/* --- the audit trail ------------------------------------------------------ */

/* The trail as stored; asserts it chains (no seals, no anchor). */
static size_t
trail(struct store *s, struct store_audit **e)
{
	size_t n = 0;

	assert_int_equal(store_audit_list(s, 0, e, &n), 0);
	assert_int_equal(audit_verify(*e, n, NULL, 0, NULL, NULL), 0);
	return n;
}

static void
test_audit_entries(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x01, 0x00 };
	struct store_cert c;
	struct store_audit *e = NULL;
	struct store_seal seal, *sl = NULL;
	unsigned char sig[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, h[32];
	uint64_t head = 9, sealed = 9, seq = 0;
	size_t n, ns = 0;

	assert_int_equal(store_audit_status(f->s, &head, &sealed), 0);
	assert_int_equal(head, 0);
	assert_int_equal(sealed, 0);
	assert_int_equal(store_set_actor(f->s, "op@host"), 0);

	/* Issuance: one entry per record, by the store's actor, else the
	 * record's own; a duplicate serial adds neither. */
	rec(&c, "0A11", "a.example.com", der, sizeof(der));
	c.device = (char *)"a.example.com";
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "0B22", "b.example.com", der, sizeof(der));
	c.actor = "est-client-1";
	assert_int_equal(store_cert_add(f->s, &c), 0);
	assert_int_equal(store_cert_add(f->s, &c), AMTCA_E_EXISTS);
	/* Revocation: an entry when the record changes, none when it does not. */
	assert_int_equal(store_cert_revoke(f->s, "0a11", 4, 1700), 0);
	assert_int_equal(store_cert_revoke(f->s, "0A11", 5, 1800), 0);
	assert_int_equal(store_cert_revoke_as(f->s, "0A11", 1, 1900, "admin-1"), 0);
	assert_int_equal(store_cert_revoke(f->s, "0C33", 1, 1900), AMTCA_E_NOT_FOUND);
	/* Generic appends. */
	assert_int_equal(store_audit_append_get(f->s, NULL, "client.add", "est-1",
	    "allow=example.com", &seq, h), 0);
	assert_int_equal(seq, 5);
	assert_int_equal(store_audit_append(f->s, "x@y", "crl.create", NULL, NULL), 0);
	assert_int_equal(store_audit_append(f->s, NULL, "", "s", "d"), AMTCA_E_USAGE);
	assert_int_equal(store_audit_append(f->s, NULL, "a", "bad\xff", ""),
	    AMTCA_E_USAGE);
	rec(&c, "0D44", "bad\xc3.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), AMTCA_E_USAGE);

	n = trail(f->s, &e);
	assert_int_equal(n, 6);
	assert_string_equal(e[0].action, "cert.issue");
	assert_string_equal(e[0].actor, "op@host");
	assert_string_equal(e[0].subject, "0A11");
	assert_string_equal(e[0].detail, "fqdn=a.example.com device=a.example.com "
	    "requester=unit");
	assert_string_equal(e[1].actor, "est-client-1");
	assert_string_equal(e[1].subject, "0B22");
	assert_string_equal(e[2].action, "cert.revoke");
	assert_string_equal(e[2].subject, "0A11");
	assert_string_equal(e[2].detail, "reason=4 fqdn=a.example.com");
	assert_string_equal(e[3].action, "cert.revoke");	/* to keyCompromise */
	assert_string_equal(e[3].actor, "admin-1");
	assert_string_equal(e[3].detail, "reason=1 fqdn=a.example.com");
	assert_string_equal(e[4].action, "client.add");
	assert_memory_equal(e[4].hash, h, 32);
	assert_string_equal(e[5].actor, "x@y");
	assert_string_equal(e[5].subject, "");
	assert_string_equal(e[5].detail, "");
	for (size_t i = 0; i < n; i++)
		assert_int_equal(e[i].seq, i + 1);

	/* Seals: only over an entry stored with that hash. */
	memset(&seal, 0, sizeof(seal));
	seal.seq = 5;
	memcpy(seal.hash, h, 32);
	seal.sig = sig;
	seal.siglen = sizeof(sig);
	seal.time = 1234;
	seal.hash[3] ^= 1;
	assert_int_equal(store_seal_add(f->s, &seal), AMTCA_E_AUDIT);
	seal.hash[3] ^= 1;
	seal.seq = 4;
	assert_int_equal(store_seal_add(f->s, &seal), AMTCA_E_AUDIT);
	seal.seq = 5;
	assert_int_equal(store_seal_add(f->s, &seal), 0);
	assert_int_equal(store_seal_list(f->s, &sl, &ns), 0);
	assert_int_equal(ns, 1);
	assert_int_equal(sl[0].seq, 5);
	assert_int_equal(sl[0].time, 1234);
	assert_int_equal(sl[0].siglen, sizeof(sig));
	assert_memory_equal(sl[0].sig, sig, sizeof(sig));
	assert_int_equal(store_audit_status(f->s, &head, &sealed), 0);
	assert_int_equal(head, 6);
	assert_int_equal(sealed, 5);
	store_seals_free(sl, ns);
	store_audits_free(e, n);

	/* After seq 4 only; kept across a reopen. */
	store_close(f->s);
	assert_int_equal(store_open(f->uri, 0, &f->s), 0);
	assert_int_equal(store_audit_list(f->s, 4, &e, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].seq, 5);
	store_audits_free(e, n);
}

/* Pipelined adds: each batch's entries are chained in its transaction. */
static void
test_audit_async_batches(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x01, 0x00 };
	struct async_ctx a = { .uri = f->uri };
	struct store_cert c[40];
	struct store_audit *e = NULL;
	char serial[40][24];
	size_t i, n, issued = 0;

	pthread_mutex_init(&a.mu, NULL);
	for (i = 0; i < 40; i++) {
		snprintf(serial[i], sizeof(serial[i]), "%04zX", i + 1);
		rec(&c[i], serial[i], "a.example.com", der, sizeof(der));
		assert_int_equal(store_cert_add_async(f->s, &c[i], async_done, &a), 0);
		if (i % 7 == 0)
			assert_int_equal(store_audit_append(f->s, "op@host",
			    "enroll.outcome", "a.example.com", "enrolled"), 0);
	}
	store_close(f->s);	/* drains */
	assert_int_equal(store_open(f->uri, 0, &f->s), 0);
	n = trail(f->s, &e);
	assert_int_equal(n, 40 + 6);
	for (i = 0; i < n; i++)
		issued += strcmp(e[i].action, "cert.issue") == 0;
	assert_int_equal(issued, 40);
	assert_int_equal(a.ok, 40);
	store_audits_free(e, n);
	pthread_mutex_destroy(&a.mu);
}

/* A store made by a newer amtca is refused, with or without create. */
static void
test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	struct store *s2 = (struct store *)&s2;

	store_close(f->s);
	f->s = NULL;
	be->make_newer(f->uri);
	assert_int_equal(store_open(f->uri, 0, &s2), AMTCA_E_STORE);
	assert_null(s2);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_STORE),
	    "newer than this amtca"));
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_STORE), "upgrade amtca"));
	assert_int_equal(store_open(f->uri, 1, &s2), AMTCA_E_STORE);
	assert_null(s2);
}

/*
 * Nodes sharing a store: each thread is a process of its own (own handle,
 * own connection).  A dead owner's lease, raced for by all with the
 * takeover compare-and-swap, goes to exactly one; the same serial from all
 * lands once.
 */
#define NODES 6

struct node {
	const char *uri;
	char owner[16];
	int took;
	int refused;
	char *holder;
	struct adder add;
	pthread_barrier_t *go;
};

static void *
node_take(void *arg)
{
	struct node *n = arg;
	struct store *s = NULL;
	int r;

	assert_int_equal(store_open(n->uri, 0, &s), 0);
	pthread_barrier_wait(n->go);
	r = store_lease_take(s, "device:x", n->owner, 1010, 60, "dead",
	    &n->holder, NULL);
	if (r == 0)
		n->took = 1;
	else if (r == AMTCA_E_EXISTS)
		n->refused = 1;
	store_close(s);
	return NULL;
}

static void *
node_add(void *arg)
{
	struct node *n = arg;
	struct store *s = NULL;

	assert_int_equal(store_open(n->uri, 0, &s), 0);
	n->add.s = s;
	pthread_barrier_wait(n->go);
	add_many(&n->add);
	store_close(s);
	return NULL;
}

/*
 * Several nodes (handles of their own) append to the audit trail at once,
 * directly and through certificate batches and revocations: one chain,
 * seq 1..N without gap or fork, and it verifies.
 */
static void *
node_audit(void *arg)
{
	struct node *n = arg;
	struct store *s = NULL;
	char subject[32];
	int i;

	assert_int_equal(store_open(n->uri, 0, &s), 0);
	n->add.s = s;
	pthread_barrier_wait(n->go);
	for (i = 0; i < PER_THREAD / 4; i++) {
		snprintf(subject, sizeof(subject), "%s-%d", n->owner, i);
		if (store_audit_append(s, n->owner, "test.node", subject,
		    NULL) != 0)
			n->add.failures++;
	}
	add_many(&n->add);
	snprintf(subject, sizeof(subject), "%02X%04X", n->add.id, 0);
	if (store_cert_revoke_as(s, subject, 4, 2000, n->owner) != 0)
		n->add.failures++;
	store_close(s);
	return NULL;
}

static void
test_audit_nodes_never_fork(void **state)
{
	struct fx *f = *state;
	struct node n[NODES];
	pthread_t th[NODES];
	pthread_barrier_t go;
	struct store_audit *e = NULL;
	size_t cnt = 0, i;
	int k;

	pthread_barrier_init(&go, NULL, NODES);
	memset(n, 0, sizeof(n));
	for (k = 0; k < NODES; k++) {
		n[k].uri = f->uri;
		n[k].go = &go;
		n[k].add = (struct adder){ .id = k };
		snprintf(n[k].owner, sizeof(n[k].owner), "node%d", k);
		assert_int_equal(pthread_create(&th[k], NULL, node_audit, &n[k]), 0);
	}
	for (k = 0; k < NODES; k++) {
		pthread_join(th[k], NULL);
		assert_int_equal(n[k].add.failures, 0);
		assert_int_equal(n[k].add.exists, 0);
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(store_audit_list(f->s, 0, &e, &cnt), 0);
	/* Per node: its appends, one cert.issue per record, one revoke. */
	assert_int_equal(cnt, NODES * (PER_THREAD / 4 + PER_THREAD + 1));
	for (i = 0; i < cnt; i++) {
		assert_int_equal(e[i].seq, i + 1);
		if (i > 0)
			assert_memory_equal(e[i].prev, e[i - 1].hash,
			    STORE_AUDIT_HASH_LEN);
	}
	assert_int_equal(audit_verify(e, cnt, NULL, 0, NULL, NULL), 0);
	store_audits_free(e, cnt);
}

static void
test_nodes_share_one_store(void **state)
{
	struct fx *f = *state;
	struct node n[NODES];
	pthread_t th[NODES];
	pthread_barrier_t go;
	struct store_cert *got = NULL;
	int i, took = 0, refused = 0, exists = 0;
	const char *winner = NULL;

	assert_int_equal(store_lease_take(f->s, "device:x", "dead", 1000, 60,
	    NULL, NULL, NULL), 0);
	pthread_barrier_init(&go, NULL, NODES);
	memset(n, 0, sizeof(n));
	for (i = 0; i < NODES; i++) {
		n[i].uri = f->uri;
		n[i].go = &go;
		snprintf(n[i].owner, sizeof(n[i].owner), "node%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, node_take, &n[i]), 0);
	}
	for (i = 0; i < NODES; i++) {
		pthread_join(th[i], NULL);
		took += n[i].took;
		refused += n[i].refused;
		if (n[i].took)
			winner = n[i].owner;
	}
	assert_int_equal(took, 1);
	assert_int_equal(refused, NODES - 1);
	for (i = 0; i < NODES; i++) {
		if (n[i].refused)
			assert_string_equal(n[i].holder, winner);
		free(n[i].holder);
	}
	/* The winner renews; the dead owner cannot. */
	assert_int_equal(store_lease_renew(f->s, "device:x", winner, 1020, 60), 0);
	assert_int_equal(store_lease_renew(f->s, "device:x", "dead", 1020, 60),
	    AMTCA_E_NOT_FOUND);

	for (i = 0; i < NODES; i++) {
		n[i].add = (struct adder){ .id = i, .fixed_serial = "5E" };
		assert_int_equal(pthread_create(&th[i], NULL, node_add, &n[i]), 0);
	}
	for (i = 0; i < NODES; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(n[i].add.failures, 0);
		exists += n[i].add.exists;
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(exists, NODES * PER_THREAD - 1);
	assert_int_equal(count(f->s), 1);
	assert_int_equal(store_cert_get(f->s, "5E", &got), 0);
	store_cert_free(got);
}

/* --- PostgreSQL only -------------------------------------------------------- */

/* Nodes initialising one new database at once: one migration, no error. */
static void *
pg_create_one(void *arg)
{
	struct node *n = arg;
	struct store *s = NULL;

	pthread_barrier_wait(n->go);
	if (store_open(n->uri, 1, &s) == 0)
		n->took = 1;
	else
		print_message("open: %s\n", amtca_errmsg(AMTCA_E_STORE));
	store_close(s);
	return NULL;
}

static void
test_pg_concurrent_create(void **state)
{
	struct fx *f = *state;
	struct node n[NODES];
	pthread_t th[NODES];
	pthread_barrier_t go;
	char uri[600];
	int i;

	be->uri(f->dir, "race", uri, sizeof(uri));
	/* A database nobody made yet, so that the nodes race to create it. */
	pg_exec_at(uri, "postgres", "DROP DATABASE IF EXISTS t_race");
	pthread_barrier_init(&go, NULL, NODES);
	memset(n, 0, sizeof(n));
	for (i = 0; i < NODES; i++) {
		n[i].uri = uri;
		n[i].go = &go;
		assert_int_equal(pthread_create(&th[i], NULL, pg_create_one,
		    &n[i]), 0);
	}
	for (i = 0; i < NODES; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(n[i].took, 1);
	}
	pthread_barrier_destroy(&go);
	/* Each migration applied once. */
	assert_true(pg_equals(uri, "SELECT count(*) = count(DISTINCT version) "
	    "AND count(*) = max(version) FROM amtca.schema_version", "t"));
}

/* A database whose commits would not wait for the flush is refused. */
static void
test_pg_sync_commit_off_refused(void **state)
{
	struct fx *f = *state;
	struct store *s2 = (struct store *)&s2;
	char db[128], sql[300];

	char msg[300];
	int r, r2;

	pg_dbname(f->uri, db, sizeof(db));
	snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" SET "
	    "synchronous_commit = off", db);
	pg_exec_at(f->uri, NULL, sql);
	r = store_open(f->uri, 0, &s2);
	snprintf(msg, sizeof(msg), "%s", amtca_errmsg(AMTCA_E_STORE));
	store_close(r == 0 ? s2 : NULL);
	snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" SET "
	    "synchronous_commit = local", db);
	pg_exec_at(f->uri, NULL, sql);
	r2 = store_open(f->uri, 0, &s2);
	store_close(r2 == 0 ? s2 : NULL);
	/* The database is shared with later tests: reset before asserting. */
	snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" RESET "
	    "synchronous_commit", db);
	pg_exec_at(f->uri, NULL, sql);
	assert_int_equal(r, AMTCA_E_STORE);
	assert_non_null(strstr(msg, "synchronous_commit off"));
	assert_int_equal(r2, 0);
}

/*
 * Opening never migrates: a schema older than the binary is refused with
 * the way out, so one node's upgrade never changes the schema under the
 * others' feet.
 */
static void
test_pg_older_schema_refused(void **state)
{
	struct fx *f = *state;
	struct store *s2 = (struct store *)&s2;

	pg_exec_at(f->uri, NULL, "DELETE FROM amtca.schema_version");
	assert_int_equal(store_open(f->uri, 0, &s2), AMTCA_E_STORE);
	assert_null(s2);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_STORE),
	    "older than this amtca"));
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_STORE), "migrate"));
	assert_true(pg_equals(f->uri, "SELECT count(*) FROM amtca.schema_version",
	    "0"));
}

/*
 * The server drops every connection (a restart, a failover, an
 * administrator): the next calls reconnect instead of failing.
 */
static void
test_pg_reconnect(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x01, 0x00 };
	struct store_cert c, *got = NULL;
	const char *kill = "SELECT count(pg_terminate_backend(pid)) FROM "
	    "pg_stat_activity WHERE datname = current_database() AND pid <> "
	    "pg_backend_pid()";
	struct async_ctx a = { .uri = f->uri };

	rec(&c, "0A11", "a.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	assert_int_equal(store_lease_take(f->s, "device:a", "A", 1000, 60, NULL,
	    NULL, NULL), 0);
	assert_true(pg_number(f->uri, kill) > 0);	/* the pool's, gone */
	/* A batch, after the pool's connections died. */
	rec(&c, "0B22", "b.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add(f->s, &c), 0);
	assert_true(pg_number(f->uri, kill) > 0);
	assert_int_equal(store_cert_get(f->s, "0B22", &got), 0);
	store_cert_free(got);
	assert_true(pg_number(f->uri, kill) > 0);
	assert_int_equal(store_lease_renew(f->s, "device:a", "A", 1010, 60), 0);
	assert_true(pg_number(f->uri, kill) > 0);
	assert_int_equal(store_cert_revoke(f->s, "0A11", 1, 1100), 0);
	assert_int_equal(count(f->s), 2);
	/* And through the committer thread. */
	pthread_mutex_init(&a.mu, NULL);
	assert_true(pg_number(f->uri, kill) > 0);
	rec(&c, "0C33", "c.example.com", der, sizeof(der));
	assert_int_equal(store_cert_add_async(f->s, &c, async_done, &a), 0);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(a.ok, 1);
	pthread_mutex_destroy(&a.mu);
}

/*
 * Credentials from a passfile named in the URI (t_store_pg.sh makes the
 * role AMTCA_TEST_PG_PWUSER, whose connections need a password).
 */
static void
test_pg_passfile(void **state)
{
	struct fx *f = *state;
	const char *user = getenv("AMTCA_TEST_PG_PWUSER");
	struct store *s2 = NULL;
	char uri[1400], pass[600], sql[300];
	FILE *fp;

	if (user == NULL || *user == '\0')
		skip();
	snprintf(sql, sizeof(sql), "ALTER ROLE \"%s\" PASSWORD 'pf-secret-7'",
	    user);
	pg_exec_at(f->uri, NULL, sql);
	snprintf(pass, sizeof(pass), "%s/pgpass", f->dir);
	assert_non_null(fp = fopen(pass, "w"));
	fprintf(fp, "*:*:*:%s:pf-secret-7\n", user);
	fclose(fp);
	assert_int_equal(chmod(pass, 0600), 0);
	/* Without it: refused by the server (no password). */
	snprintf(uri, sizeof(uri), "%s&user=%s&passfile=/nonexistent", f->uri,
	    user);
	assert_int_equal(store_open(uri, 0, &s2), AMTCA_E_STORE);
	assert_null(s2);
	/* With it: the store opens as that role (granted to it below). */
	snprintf(sql, sizeof(sql), "GRANT USAGE ON SCHEMA amtca TO \"%s\"; "
	    "GRANT SELECT ON ALL TABLES IN SCHEMA amtca TO \"%s\"", user, user);
	pg_exec_at(f->uri, NULL, sql);
	snprintf(uri, sizeof(uri), "%s&user=%s&passfile=%s", f->uri, user, pass);
	assert_int_equal(store_open(uri, 0, &s2), 0);
	assert_int_equal(count(s2), 0);
	store_close(s2);
}

/*
 * SQLite only (versions are the file's user_version): a version-2 file,
 * the release before clients, credentials' neighbours and the audit trail,
 * opens, gains them and is upgraded to the newest version (6); reopening
 * changes nothing.
 */
static void
test_sqlite_upgrade_from_v2(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	struct store_client c, *g = NULL;
	struct store_device *d = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	uint64_t head = 0, sealed = 0;
	struct store_device nd;
	char uri[512];

	be->uri(f->dir, "v2", uri, sizeof(uri));
	/* A version-2 file: today's schema less what versions 3 and 4 added. */
	assert_int_equal(store_open(uri, 1, &s), 0);
	memset(&nd, 0, sizeof(nd));
	nd.fqdn = (char *)"v2.example.com";
	nd.state = (char *)"enrolled";
	nd.updated_at = 5;
	assert_int_equal(store_device_put(s, &nd), 0);
	store_close(s);
	s = NULL;
	assert_int_equal(sqlite3_open(sqlite_path(uri), &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE clients; DROP TABLE audit;"
	    " DROP TABLE audit_seals; DROP TABLE ca_certs;"
	    " DROP INDEX certificates_revoked_issuer;"
	    " ALTER TABLE certificates DROP COLUMN issuer;"
	    " DROP INDEX job_devices_pending;"
	    " ALTER TABLE job_devices DROP COLUMN claimed_by;"
	    " ALTER TABLE job_devices DROP COLUMN claim_expires;"
	    " DROP TABLE meta;"
	    " PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	db = NULL;

	assert_int_equal(store_open(uri, 0, &s), 0);
	assert_int_equal(store_device_get(s, "v2.example.com", &d), 0);
	assert_int_equal(d->updated_at, 5);
	store_device_free(d);
	memset(&c, 0, sizeof(c));
	c.name = (char *)"ops";
	c.roles = STORE_CLIENT_ADMIN;
	assert_int_equal(store_client_add(s, &c), 0);
	assert_int_equal(store_client_get(s, "ops", &g), 0);
	store_client_free(g);
	assert_int_equal(store_audit_append(s, "tester", "test.upgrade", "", NULL),
	    0);
	/* The client's own "client.add" entry, then ours. */
	assert_int_equal(store_audit_status(s, &head, &sealed), 0);
	assert_int_equal(head, 2);
	store_close(s);
	s = NULL;
	assert_int_equal(sqlite3_open(sqlite_path(uri), &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	/* Upgraded step by step to the newest version. */
	assert_int_equal(sqlite3_column_int(st, 0), 6);
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* Reopened as version 6: the rows stay. */
	assert_int_equal(store_open(uri, 0, &s), 0);
	assert_int_equal(store_audit_status(s, &head, &sealed), 0);
	assert_int_equal(head, 2);
	store_close(s);
}

/*
 * Rotation (docs/rotation.md): each record names its issuing intermediate;
 * the per-issuer revoked listing is that intermediate's CRL, and records
 * without an issuer (made before rotation) belong to the first one only.
 */
static void
test_revoked_by_issuer(void **state)
{
	struct fx *f = *state;
	unsigned char der[] = { 0x30, 0x03, 0x01, 0x02, 0x03 };
	struct store_cert c, *got = NULL, *v = NULL;
	size_t n = 0;

	rec(&c, "0A01", "old.example.com", der, sizeof(der));	/* no issuer */
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "0A02", "g1.example.com", der, sizeof(der));
	c.issuer = (char *)"aa11";
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "0A03", "g2.example.com", der, sizeof(der));
	c.issuer = (char *)"bb22";
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "0A04", "g2b.example.com", der, sizeof(der));
	c.issuer = (char *)"bb22";
	assert_int_equal(store_cert_add(f->s, &c), 0);
	rec(&c, "0A05", "bad.example.com", der, sizeof(der));
	c.issuer = (char *)"BB22";	/* key ids are lowercase hex */
	assert_int_equal(store_cert_add(f->s, &c), AMTCA_E_USAGE);

	assert_int_equal(store_cert_get(f->s, "0A03", &got), 0);
	assert_non_null(got->issuer);
	assert_string_equal(got->issuer, "bb22");
	store_cert_free(got);
	assert_int_equal(store_cert_get(f->s, "0A01", &got), 0);
	assert_null(got->issuer);
	store_cert_free(got);

	assert_int_equal(store_cert_revoke(f->s, "0A01", 0, 1700), 0);
	assert_int_equal(store_cert_revoke(f->s, "0A02", 0, 1700), 0);
	assert_int_equal(store_cert_revoke(f->s, "0A03", 0, 1700), 0);
	/* The first intermediate's CRL: its own and the issuer-less one. */
	assert_int_equal(store_cert_list_revoked_by(f->s, "aa11", 1, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].serial, "0A01");
	assert_string_equal(v[1].serial, "0A02");
	store_certs_free(v, n);
	/* The second's: only its own revoked one, never the others'. */
	assert_int_equal(store_cert_list_revoked_by(f->s, "bb22", 0, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].serial, "0A03");
	assert_string_equal(v[0].issuer, "bb22");
	store_certs_free(v, n);
	assert_int_equal(store_cert_list_revoked_by(f->s, "cc33", 0, &v, &n), 0);
	assert_int_equal(n, 0);
	store_certs_free(v, n);
	/* What is not revoked, per issuer (ca prune). */
	assert_int_equal(store_cert_list_unrevoked_by(f->s, "bb22", 0, &v, &n),
	    0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].serial, "0A04");
	assert_null(v[0].der);
	store_certs_free(v, n);
	assert_int_equal(store_cert_list_unrevoked_by(f->s, "aa11", 1, &v, &n),
	    0);
	assert_int_equal(n, 0);
	store_certs_free(v, n);
}

/*
 * The CA's own certificates: upsert by key id with an audit entry in the
 * same transaction, listed by generation; a revoked one stays revoked
 * whatever a later put says; revoking the unknown is NOT_FOUND.
 */
static void
test_cacert_records(void **state)
{
	struct fx *f = *state;
	unsigned char d1[] = { 0x30, 0x01, 0x01 }, d2[] = { 0x30, 0x01, 0x02 };
	struct store_cacert r[2], *v = NULL;
	struct store_audit *e = NULL;
	uint64_t head0 = 0, head = 0, sealed = 0;
	size_t n = 0;

	assert_int_equal(store_cacert_list(f->s, &v, &n), 0);
	assert_int_equal(n, 0);
	store_cacerts_free(v, n);
	assert_int_equal(store_audit_status(f->s, &head0, &sealed), 0);
	memset(r, 0, sizeof(r));
	r[0].keyid = (char *)"bb22";
	r[0].role = (char *)"intermediate";
	r[0].generation = 2;
	r[0].subject = (char *)"X G2";
	r[0].serial = (char *)"0B";
	r[0].not_after = 5000;
	r[0].state = (char *)"current";
	r[0].der = d2;
	r[0].der_len = sizeof(d2);
	r[1] = r[0];
	r[1].keyid = (char *)"aa11";
	r[1].generation = 1;
	r[1].subject = (char *)"X";
	r[1].serial = (char *)"0A";
	r[1].state = (char *)"retired";
	r[1].der = d1;
	r[1].der_len = sizeof(d1);
	assert_int_equal(store_cacert_put(f->s, r, 2, "ca.rotate", "bb22",
	    "old=aa11 generation=2"), 0);
	assert_int_equal(store_audit_status(f->s, &head, &sealed), 0);
	assert_int_equal(head, head0 + 1);
	assert_int_equal(store_audit_list(f->s, head0, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].action, "ca.rotate");
	assert_string_equal(e[0].subject, "bb22");
	store_audits_free(e, n);

	assert_int_equal(store_cacert_list(f->s, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].keyid, "aa11");	/* by generation */
	assert_int_equal(v[0].generation, 1);
	assert_string_equal(v[0].state, "retired");
	assert_string_equal(v[0].serial, "0A");
	assert_int_equal(v[0].der_len, sizeof(d1));
	assert_memory_equal(v[0].der, d1, sizeof(d1));
	assert_string_equal(v[1].keyid, "bb22");
	assert_string_equal(v[1].state, "current");
	assert_int_equal(v[1].not_after, 5000);
	store_cacerts_free(v, n);

	assert_int_equal(store_cacert_revoke(f->s, "aa11", 1, 1700), 0);
	assert_int_equal(store_cacert_revoke(f->s, "aa11", 4, 1800), 0);
	assert_int_equal(store_cacert_revoke(f->s, "dd44", 1, 1700),
	    AMTCA_E_NOT_FOUND);
	assert_int_equal(store_cacert_revoke(f->s, "aa11", 7, 1700),
	    AMTCA_E_USAGE);
	/* One entry for the one change. */
	assert_int_equal(store_audit_status(f->s, &head, &sealed), 0);
	assert_int_equal(head, head0 + 2);
	/* A later put (no entry) never un-revokes. */
	r[1].state = (char *)"ended";
	assert_int_equal(store_cacert_put(f->s, &r[1], 1, NULL, NULL, NULL), 0);
	assert_int_equal(store_cacert_list(f->s, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].state, "revoked");
	assert_int_equal(v[0].revoke_reason, 1);
	assert_int_equal(v[0].revoked_at, 1700);
	store_cacerts_free(v, n);
	assert_int_equal(store_audit_status(f->s, &head, &sealed), 0);
	assert_int_equal(head, head0 + 2);
	/* Incomplete records are refused. */
	r[1].state = (char *)"gone";
	assert_int_equal(store_cacert_put(f->s, &r[1], 1, NULL, NULL, NULL),
	    AMTCA_E_USAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cert_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_serial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoke_reason_rules, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_visible_to_second_connection,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_adders_survive_reopen,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_duplicates_one_wins,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_by_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_add_calls_back_after_commit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_fleet_fields, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_claims_concurrent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_revocation_mark, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_previous, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_audit_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_async_batches, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nodes_share_one_store, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_audit_nodes_never_fork, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_revoked_by_issuer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cacert_records, setup,
		    teardown),
	};
	const struct CMUnitTest pg_only[] = {
		cmocka_unit_test_setup_teardown(test_pg_concurrent_create, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pg_sync_commit_off_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_passfile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_older_schema_refused, setup,
		    teardown),
	};
	const struct CMUnitTest sqlite_only[] = {
		cmocka_unit_test_setup_teardown(test_sqlite_upgrade_from_v2, setup,
		    teardown),
	};
	const struct CMUnitTest front[] = {
		cmocka_unit_test(test_uri_selection),
	};
	char name[64];
	size_t i;
	int failed = 0;

	pg_base = getenv("AMTCA_TEST_PG_URI");
	if (pg_base != NULL && *pg_base == '\0')
		pg_base = NULL;
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		be = &backends[i];
		if (be->uri == pg_uri && pg_base == NULL) {
			printf("store conformance: postgresql skipped "
			    "(AMTCA_TEST_PG_URI unset)\n");
			continue;
		}
		snprintf(name, sizeof(name), "store conformance: %s", be->name);
		printf("%s\n", name);
		fflush(stdout);
		failed += _cmocka_run_group_tests(name, tests,
		    sizeof(tests) / sizeof(tests[0]), NULL, NULL);
	}
	if (pg_base != NULL) {
		be = &backends[1];
		failed += cmocka_run_group_tests_name("store: postgresql only",
		    pg_only, NULL, NULL);
	}
	be = &backends[0];
	failed += cmocka_run_group_tests_name("store: sqlite only", sqlite_only,
	    NULL, NULL);
	failed += cmocka_run_group_tests_name("store URI selection", front,
	    NULL, NULL);
	return failed;
}
