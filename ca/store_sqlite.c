/*
 * The store's SQLite backend: with any other backend's file, the only code
 * in amtca that speaks SQL.  Selected by "sqlite:PATH" or a plain path.
 *
 * Durability: WAL with synchronous=FULL, so COMMIT returns after the WAL is
 * fsync'ed; insert_batch returns only after its batch's COMMIT.  A batch is
 * BEGIN IMMEDIATE; INSERT...; COMMIT (one fsync).  A duplicate serial fails
 * only its own INSERT: SQLite's default ABORT resolution rolls back just
 * that statement and keeps the transaction.  The batching itself (who
 * leads, lingering, callbacks after COMMIT) is backend-neutral, in store.c.
 *
 * One connection, guarded by `dbmu` for every use (transactions must not
 * interleave).
 */
#include "ca/store_backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ca/audit.h"
#include "common/limits.h"
#include "common/util.h"

#define SCHEMA_VERSION 6

struct sq {
	sqlite3 *db;
	pthread_mutex_t dbmu;
	sqlite3_stmt *ins;		/* prepared once; used under dbmu */
	sqlite3_stmt *ains;		/* audit entry insert; under dbmu */
	char *path;
	/* Prepared statements kept for reuse (sq_prep/sq_done). */
	pthread_mutex_t cmu;
	struct sq_cached {
		char *sql;
		sqlite3_stmt *st;
		int busy;		/* handed out, not yet sq_done'd */
	} cache[AMTCA_SQLITE_STMT_CACHE];
};

/*
 * Statements are prepared once per SQL text and kept: preparing (parsing
 * and planning) was about a tenth of the signer's CPU under EST load,
 * more than many of the lookups themselves.  sq_prep() hands out the kept
 * statement for `sql` when it is idle, else prepares one (kept when a slot
 * is free); sq_done() resets a kept one (bindings cleared) and finalizes
 * any other.  A statement in use is never handed out twice, so a lookup
 * nested inside another with the same SQL gets its own.  Own lock: the
 * statements themselves are used under dbmu as before.
 */
static int
sq_prep(struct sq *s, const char *sql, sqlite3_stmt **out)
{
	struct sq_cached *e, *free_slot = NULL;
	size_t i;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&s->cmu);
	for (i = 0; i < AMTCA_SQLITE_STMT_CACHE; i++) {
		e = &s->cache[i];
		if (e->sql == NULL) {
			if (free_slot == NULL)
				free_slot = e;
		} else if (!e->busy && strcmp(e->sql, sql) == 0) {
			e->busy = 1;
			*out = e->st;
			pthread_mutex_unlock(&s->cmu);
			return SQLITE_OK;
		}
	}
	if (free_slot != NULL) {
		/* Reserved before preparing, outside the lock. */
		free_slot->busy = 1;
		free_slot->sql = (char *)"";
	}
	pthread_mutex_unlock(&s->cmu);
	rc = sqlite3_prepare_v3(s->db, sql, -1, free_slot != NULL ?
	    SQLITE_PREPARE_PERSISTENT : 0, out, NULL);
	if (free_slot == NULL)
		return rc;
	pthread_mutex_lock(&s->cmu);
	if (rc == SQLITE_OK && *out != NULL &&
	    (free_slot->sql = strdup(sql)) != NULL)
		free_slot->st = *out;
	else {
		free_slot->sql = NULL;
		free_slot->busy = 0;
	}
	pthread_mutex_unlock(&s->cmu);
	return rc;
}

static void
sq_done(struct sq *s, sqlite3_stmt *st)
{
	size_t i;

	if (st == NULL)
		return;
	pthread_mutex_lock(&s->cmu);
	for (i = 0; i < AMTCA_SQLITE_STMT_CACHE; i++)
		if (s->cache[i].st == st && s->cache[i].busy) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			s->cache[i].busy = 0;
			pthread_mutex_unlock(&s->cmu);
			return;
		}
	pthread_mutex_unlock(&s->cmu);
	sqlite3_finalize(st);
}

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

/*
 * Version 2 (fleet enrollment): the device record's descriptive fields,
 * jobs with each device's progress, and leases (the per-device lock).  A
 * new file gets version 1 and then this, so the upgrade of an existing
 * home and a fresh one run the same statements.
 */
static const char upgrade_v2_sql[] =
    "ALTER TABLE devices ADD COLUMN port INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN tls_port INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN amt_user TEXT;"
    "ALTER TABLE devices ADD COLUMN cred_ref TEXT;"
    "ALTER TABLE devices ADD COLUMN cred_stamp TEXT;"
    "ALTER TABLE devices ADD COLUMN tls_pin TEXT;"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " finished_at INTEGER NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL,"
    " hosts_digest TEXT,"
    " total INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS jobs_digest ON jobs(hosts_digest, state);"
    "CREATE TABLE IF NOT EXISTS job_devices ("
    " job_id TEXT NOT NULL,"
    " fqdn TEXT NOT NULL,"
    " result TEXT NOT NULL,"
    " serial TEXT,"
    " error TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (job_id, fqdn));"
    "CREATE TABLE IF NOT EXISTS leases ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " owner TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL);"
    /* Sealed AMT credentials (issue 9): no password, only the signer's blob. */
    "CREATE TABLE IF NOT EXISTS credentials ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " amt_user TEXT NOT NULL,"
    " sealed BLOB NOT NULL,"
    " mechanism TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "PRAGMA user_version = 2;";

/*
 * Version 3 (issue 9's service): admin and EST clients (a name is the key
 * forever: removed clients stay, disabled) and, below, the audit trail.
 * IF NOT EXISTS, because development files of version 2 may have them.
 */
static const char tables_sql[] =
    "CREATE TABLE IF NOT EXISTS clients ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " roles INTEGER NOT NULL,"
    " allow TEXT,"
    " pwhash TEXT,"
    " serial TEXT,"
    " created_at INTEGER NOT NULL,"
    " removed_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS clients_serial ON clients(serial)"
    " WHERE serial IS NOT NULL;";

/*
 * The audit trail (ca/audit.h, docs/audit.md), part of version 3: seq is
 * the rowid; prev and hash are the 32 raw bytes.
 */
static const char audit_sql[] =
    "CREATE TABLE IF NOT EXISTS audit ("
    " seq INTEGER PRIMARY KEY NOT NULL,"
    " time INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " prev BLOB NOT NULL,"
    " hash BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_seals ("
    " seq INTEGER PRIMARY KEY NOT NULL,"
    " hash BLOB NOT NULL,"
    " sig BLOB NOT NULL,"
    " time INTEGER NOT NULL);";

/*
 * Version 4 (intermediate rotation, docs/rotation.md): which intermediate
 * issued each certificate (its key id; NULL in older rows: the first
 * intermediate's), and the CA's own certificates.
 */
static const char upgrade_v4_sql[] =
    "ALTER TABLE certificates ADD COLUMN issuer TEXT;"
    "CREATE INDEX IF NOT EXISTS certificates_revoked_issuer ON"
    " certificates(issuer) WHERE status = 'revoked';"
    "CREATE TABLE IF NOT EXISTS ca_certs ("
    " keyid TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL,"
    " generation INTEGER NOT NULL,"
    " subject TEXT NOT NULL,"
    " serial TEXT NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('current','retired','ended',"
    "'revoked')),"
    " revoke_reason INTEGER,"
    " created_at INTEGER NOT NULL,"
    " revoked_at INTEGER,"
    " der BLOB NOT NULL);"
    "PRAGMA user_version = 4;";

/*
 * Version 5 (issue 11, several nodes): job claims on each device's row of
 * a job (who works on it, until when) and the indexes the claim and the
 * CRL cache's revocation mark read.  Version 4 is the intermediate
 * rotation's (above).
 */
static const char upgrade_v5_sql[] =
    "ALTER TABLE job_devices ADD COLUMN claimed_by TEXT;"
    "ALTER TABLE job_devices ADD COLUMN claim_expires INTEGER NOT NULL"
    " DEFAULT 0;"
    "CREATE INDEX IF NOT EXISTS job_devices_pending ON job_devices(job_id,"
    " fqdn) WHERE result = 'pending';"
    "CREATE INDEX IF NOT EXISTS audit_revoke ON audit(seq)"
    " WHERE action = 'cert.revoke';"
    "PRAGMA user_version = 5;";

static const char cert_cols[] =
    "serial, fqdn, not_before, not_after, issued_at, status, revoke_reason,"
    " revoked_at, requester, device, issuer";

/* The files SQLite keeps beside a database in WAL (or rollback) mode. */
static const char *const companions[] = { "-wal", "-shm", "-journal" };

static int
db_fail(struct sq *s, const char *what)
{
	return amtca_fail(AMTCA_E_STORE, "issuance database %s: %s", what,
	    sqlite3_errmsg(s->db));
}

static int
exec(struct sq *s, const char *sql, const char *what)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, what);
	return 0;
}

static int
pragma_int(struct sq *s, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int ret;

	if (sq_prep(s, sql, &st) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		ret = db_fail(s, "query");
		goto out;
	}
	*out = sqlite3_column_int(st, 0);
	ret = 0;
out:
	sq_done(s, st);
	return ret;
}

/* Version 6: the shared configuration (store_meta_*). */
static const char meta_sql[] =
    "CREATE TABLE IF NOT EXISTS meta ("
    " name TEXT PRIMARY KEY,"
    " value BLOB NOT NULL,"
    " updated_at INTEGER NOT NULL);";

static int
schema(struct sq *s, int create)
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
		v = 1;
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
	/* Older files are upgraded in the same transaction. */
	if (v == 1 && (r = exec(s, upgrade_v2_sql, "schema upgrade to "
	    "version 2")) != 0) {
		ret = r;
		goto out;
	}
	if (v <= 2 && ((r = exec(s, tables_sql, "schema upgrade to version "
	    "3")) != 0 || (r = exec(s, audit_sql, "schema upgrade to version "
	    "3")) != 0 || (r = exec(s, "PRAGMA user_version = 3",
	    "schema upgrade to version 3")) != 0)) {
		ret = r;
		goto out;
	}
	if (v <= 3 && (r = exec(s, upgrade_v4_sql, "schema upgrade to version "
	    "4")) != 0) {
		ret = r;
		goto out;
	}
	if (v <= 4 && (r = exec(s, upgrade_v5_sql, "schema upgrade to version "
	    "5")) != 0) {
		ret = r;
		goto out;
	}
	if (v <= 5 && ((r = exec(s, meta_sql, "schema upgrade to version 6")) !=
	    0 || (r = exec(s, "PRAGMA user_version = 6", "schema upgrade to "
	    "version 6")) != 0)) {
		ret = r;
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

static void
sq_close(void *be)
{
	struct sq *s = be;

	if (s == NULL)
		return;
	sq_done(s, s->ins);
	sq_done(s, s->ains);
	for (size_t i = 0; i < AMTCA_SQLITE_STMT_CACHE; i++) {
		sqlite3_finalize(s->cache[i].st);
		free(s->cache[i].sql);
	}
	if (s->db != NULL)
		sqlite3_close(s->db);
	pthread_mutex_destroy(&s->cmu);
	pthread_mutex_destroy(&s->dbmu);
	free(s->path);
	free(s);
}

static int
sq_open(const char *path, int create, void **out)
{
	struct sq *s = NULL;
	struct stat sb;
	sqlite3_stmt *st = NULL;
	int r, flags, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (!create && stat(path, &sb) == -1) {
		ret = amtca_fail(errno == ENOENT ? AMTCA_E_NOT_FOUND : AMTCA_E_STORE,
		    "issuance database %s: %s", path, strerror(errno));
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return AMTCA_E_NOMEM;
	pthread_mutex_init(&s->dbmu, NULL);
	pthread_mutex_init(&s->cmu, NULL);
	if ((s->path = strdup(path)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
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
	if (sq_prep(s, "PRAGMA journal_mode=WAL", &st) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_text(st, 0) == NULL ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		ret = amtca_fail(AMTCA_E_STORE, "issuance database %s: cannot "
		    "switch to WAL mode", path);
		goto out;
	}
	sq_done(s, st);
	st = NULL;
	if ((r = exec(s, "PRAGMA synchronous=FULL", "setup")) != 0 ||
	    (r = exec(s, "PRAGMA cache_size=-16384", "setup")) != 0 ||
	    (r = schema(s, create)) != 0) {
		ret = r;
		goto out;
	}
	if (sqlite3_prepare_v3(s->db, "INSERT INTO certificates (serial, fqdn,"
	    " not_before, not_after, issued_at, status, requester, device, der,"
	    " issuer) VALUES (?, ?, ?, ?, ?, 'valid', ?, ?, ?, ?)", -1,
	    SQLITE_PREPARE_PERSISTENT, &s->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(s->db, "INSERT INTO audit (seq, time, actor, "
	    "action, subject, detail, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	    -1, SQLITE_PREPARE_PERSISTENT, &s->ains, NULL) != SQLITE_OK) {
		ret = db_fail(s, "prepare");
		goto out;
	}
	*out = s;
	s = NULL;
	ret = 0;
out:
	sq_done(s, st);
	sq_close(s);
	return ret;
}

static int
sq_destroy(const char *path)
{
	char *p = NULL;
	size_t i;
	int ret = AMTCA_E_INTERNAL;

	if (unlink(path) == -1 && errno != ENOENT) {
		ret = amtca_fail(AMTCA_E_STORE, "cannot remove issuance database "
		    "%s: %s", path, strerror(errno));
		goto out;
	}
	for (i = 0; i < sizeof(companions) / sizeof(companions[0]); i++) {
		free(p);
		if (asprintf(&p, "%s%s", path, companions[i]) == -1) {
			p = NULL;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (unlink(p) == -1 && errno != ENOENT) {
			ret = amtca_fail(AMTCA_E_STORE, "cannot remove %s: %s", p,
			    strerror(errno));
			goto out;
		}
	}
	ret = 0;
out:
	free(p);
	return ret;
}

/*
 * sqlite3_backup over the open handle: one step of all pages (-1) reads
 * one snapshot (WAL: writers go on meanwhile), written to a new file that
 * nothing else knows yet.  Page 1 carries WAL mode with it.
 */
static int
sq_backup(void *be, const char *path)
{
	struct sq *s = be;
	sqlite3 *dst = NULL;
	sqlite3_backup *bk = NULL;
	struct stat sb;
	int rc, tries, made = 0, ret = AMTCA_E_INTERNAL;

	if (lstat(path, &sb) == 0 || errno != ENOENT) {
		ret = amtca_fail(AMTCA_E_EXISTS, "store backup: %s already "
		    "exists", path);
		goto out;
	}
	if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE, NULL) != SQLITE_OK) {
		ret = amtca_fail(AMTCA_E_STORE, "store backup: cannot create "
		    "%s: %s", path, dst != NULL ? sqlite3_errmsg(dst) :
		    "out of memory");
		goto out;
	}
	made = 1;
	sqlite3_busy_timeout(dst, AMTCA_STORE_BUSY_MS);
	pthread_mutex_lock(&s->dbmu);
	if ((bk = sqlite3_backup_init(dst, "main", s->db, "main")) == NULL) {
		ret = amtca_fail(AMTCA_E_STORE, "store backup of %s: %s",
		    s->path, sqlite3_errmsg(dst));
		pthread_mutex_unlock(&s->dbmu);
		goto out;
	}
	for (tries = 0;; tries++) {
		rc = sqlite3_backup_step(bk, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
		    tries < AMTCA_STORE_BUSY_MS / 10) {
			amtca_sleep_ms(10);
			continue;
		}
		break;
	}
	rc = sqlite3_backup_finish(bk) == SQLITE_OK && rc == SQLITE_DONE ?
	    SQLITE_OK : SQLITE_ERROR;
	bk = NULL;
	pthread_mutex_unlock(&s->dbmu);
	if (rc != SQLITE_OK) {
		ret = amtca_fail(AMTCA_E_STORE, "store backup of %s into %s: %s",
		    s->path, path, sqlite3_errmsg(dst));
		goto out;
	}
	if (sqlite3_close(dst) != SQLITE_OK) {
		ret = amtca_fail(AMTCA_E_STORE, "store backup: cannot close %s",
		    path);
		goto out;
	}
	dst = NULL;
	ret = 0;
out:
	if (dst != NULL)
		sqlite3_close(dst);
	if (ret != 0 && made)
		(void)sq_destroy(path);
	return ret;
}

/* --- the audit trail ------------------------------------------------------ */

/* The newest entry's seq and hash (0 and zeros when none); dbmu held. */
static int
audit_head(struct sq *s, uint64_t *seq, unsigned char hash[STORE_AUDIT_HASH_LEN])
{
	sqlite3_stmt *st = NULL;
	const void *b;
	int rc, ret = AMTCA_E_INTERNAL;

	*seq = 0;
	memset(hash, 0, STORE_AUDIT_HASH_LEN);
	if (sq_prep(s, "SELECT seq, hash FROM audit ORDER BY seq "
	    "DESC LIMIT 1", &st) != SQLITE_OK) {
		ret = db_fail(s, "audit query");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		b = sqlite3_column_blob(st, 1);
		if (sqlite3_column_int64(st, 0) <= 0 || b == NULL ||
		    sqlite3_column_bytes(st, 1) != STORE_AUDIT_HASH_LEN) {
			ret = amtca_fail(AMTCA_E_AUDIT, "issuance database: the "
			    "audit trail's last entry is damaged; run 'amtca "
			    "audit verify'");
			goto out;
		}
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
		memcpy(hash, b, STORE_AUDIT_HASH_LEN);
	} else if (rc != SQLITE_DONE) {
		ret = db_fail(s, "audit query");
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	return ret;
}

/*
 * Append after (*seq, hash), advancing both; inside the caller's
 * transaction, dbmu held.
 */
static int
audit_put(struct sq *s, uint64_t *seq, unsigned char hash[STORE_AUDIT_HASH_LEN],
    const char *actor, const char *action, const char *subject,
    const char *detail)
{
	unsigned char h[STORE_AUDIT_HASH_LEN];
	int64_t now = (int64_t)time(NULL);
	int r;

	if ((r = audit_entry_hash(hash, *seq + 1, now, actor, action, subject,
	    detail, h)) != 0)
		return r;
	sqlite3_reset(s->ains);
	sqlite3_clear_bindings(s->ains);
	sqlite3_bind_int64(s->ains, 1, (sqlite3_int64)(*seq + 1));
	sqlite3_bind_int64(s->ains, 2, (sqlite3_int64)now);
	sqlite3_bind_text(s->ains, 3, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->ains, 4, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->ains, 5, subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->ains, 6, detail, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s->ains, 7, hash, STORE_AUDIT_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s->ains, 8, h, STORE_AUDIT_HASH_LEN, SQLITE_STATIC);
	r = sqlite3_step(s->ains);
	sqlite3_reset(s->ains);
	sqlite3_clear_bindings(s->ains);
	if (r != SQLITE_DONE)
		return db_fail(s, "audit append");
	*seq += 1;
	memcpy(hash, h, STORE_AUDIT_HASH_LEN);
	return 0;
}

/* The detail of a cert.issue entry. */
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
set_msg(struct store_rec *p, int code, const char *fmt, const char *detail)
{
	p->result = code;
	snprintf(p->msg, sizeof(p->msg), fmt, detail);
}

/* One transaction under dbmu.  Every record gets a result. */
static void
sq_insert_batch(void *be, struct store_rec **recs, size_t n)
{
	struct sq *s = be;
	struct store_rec *p;
	const struct store_cert *c;
	size_t i;
	int rc, ar = 0, failed = 0, have_head = 0;
	uint64_t aseq = 0;
	unsigned char ahash[STORE_AUDIT_HASH_LEN];
	char detail[AMTCA_AUDIT_DETAIL_MAX + 1];

	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		for (i = 0; i < n; i++)
			set_msg(recs[i], AMTCA_E_STORE, "issuance database lock: %s",
			    sqlite3_errmsg(s->db));
		goto out;
	}
	for (i = 0; i < n; i++) {
		p = recs[i];
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
		if (c->issuer != NULL)
			sqlite3_bind_text(s->ins, 9, c->issuer, -1, SQLITE_STATIC);
		rc = sqlite3_step(s->ins);
		if (rc == SQLITE_DONE) {
			/* Its audit entry, in this transaction: the head is
			 * read once, under the write lock, then chained on. */
			issue_detail(c, detail, sizeof(detail));
			if ((!have_head && (ar = audit_head(s, &aseq,
			    ahash)) != 0) || (ar = audit_put(s, &aseq, ahash,
			    p->actor, "cert.issue", c->serial, detail)) != 0) {
				set_msg(p, AMTCA_E_STORE, "%s", amtca_errmsg(ar));
				failed = 1;
				continue;
			}
			have_head = 1;
			continue;
		}
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
		set_msg(recs[0], AMTCA_E_STORE, "issuance database commit: %s",
		    sqlite3_errmsg(s->db));
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	/* Nothing of this batch is on disk: nobody may report success. */
	for (i = 0; i < n; i++)
		if (recs[i]->result == 0) {
			recs[i]->result = AMTCA_E_STORE;
			snprintf(recs[i]->msg, sizeof(recs[i]->msg), "%s",
			    recs[0]->msg[0] ? recs[0]->msg :
			    "issuance database transaction failed");
		}
out:
	pthread_mutex_unlock(&s->dbmu);
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
	    dup_text(st, 9, &c->device) != 0 ||
	    dup_text(st, 10, &c->issuer) != 0)
		goto nomem;
	c->not_before = (time_t)sqlite3_column_int64(st, 2);
	c->not_after = (time_t)sqlite3_column_int64(st, 3);
	c->issued_at = (time_t)sqlite3_column_int64(st, 4);
	c->revoke_reason = sqlite3_column_int(st, 6);
	c->revoked_at = (time_t)sqlite3_column_int64(st, 7);
	if (with_der) {
		b = sqlite3_column_blob(st, 11);
		n = sqlite3_column_bytes(st, 11);
		if (b != NULL && n > 0) {
			if ((c->der = malloc((size_t)n)) == NULL)
				goto nomem;
			memcpy(c->der, b, (size_t)n);
			c->der_len = (size_t)n;
		}
	}
	return 0;
nomem:
	store_cert_clear(c);
	return AMTCA_E_NOMEM;
}

static int
sq_cert_get(void *be, const char *key, struct store_cert **out)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	struct store_cert *c = NULL;
	char sql[256];
	int rc, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	snprintf(sql, sizeof(sql), "SELECT %s, der FROM certificates WHERE "
	    "serial = ?", cert_cols);
	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, sql, &st) != SQLITE_OK) {
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
	if ((c = calloc(1, sizeof(*c))) == NULL || row_cert(st, 1, c) != 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	free(c);
	return ret;
}

static int
sq_cert_list(void *be, enum store_cert_filter f, const char *arg,
    struct store_cert **out, size_t *n)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	struct store_cert *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	const char *where = "";
	int with_der = 1, rc, ret = AMTCA_E_INTERNAL;
	char sql[512];

	*out = NULL;
	*n = 0;
	switch (f) {
	case STORE_CERTS_ALL:
		arg = NULL;
		break;
	case STORE_CERTS_FQDN:
		where = "WHERE fqdn = ? COLLATE NOCASE";
		break;
	case STORE_CERTS_DEVICE:
		where = "WHERE device = ? COLLATE NOCASE";
		break;
	case STORE_CERTS_REVOKED:
		where = "WHERE status = 'revoked'";
		with_der = 0;
		arg = NULL;
		break;
	case STORE_CERTS_REVOKED_BY:
		where = "WHERE status = 'revoked' AND issuer = ?";
		with_der = 0;
		break;
	case STORE_CERTS_REVOKED_BY_FIRST:
		where = "WHERE status = 'revoked' AND (issuer = ? OR issuer IS "
		    "NULL)";
		with_der = 0;
		break;
	case STORE_CERTS_VALID_BY:
		where = "WHERE status = 'valid' AND issuer = ?";
		with_der = 0;
		break;
	case STORE_CERTS_VALID_BY_FIRST:
		where = "WHERE status = 'valid' AND (issuer = ? OR issuer IS NULL)";
		with_der = 0;
		break;
	}
	snprintf(sql, sizeof(sql), "SELECT %s%s FROM certificates %s ORDER BY "
	    "issued_at, rowid", cert_cols, with_der ? ", der" : "", where);
	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, sql, &st) != SQLITE_OK) {
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
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	store_certs_free(v, cnt);
	return ret;
}

static int
sq_cert_revoke(void *be, const char *key, int reason, time_t when,
    const char *actor)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	uint64_t aseq = 0;
	unsigned char ahash[STORE_AUDIT_HASH_LEN];
	char detail[AMTCA_AUDIT_FIELD_MAX + 64];
	int rc, r, changed, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	/* The change and its audit entry commit together. */
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "lock");
		goto out;
	}
	/*
	 * The first revocation fixes reason and date.  One change is allowed
	 * later, as RFC 5280 5.3.1 practice has it: to keyCompromise, which
	 * the next CRL then shows (the date stays the first one).
	 */
	if (sq_prep(s, "UPDATE certificates SET status = "
	    "'revoked', revoke_reason = ?1, revoked_at = CASE WHEN status = "
	    "'revoked' THEN revoked_at ELSE ?2 END WHERE serial = ?3 AND "
	    "(status = 'valid' OR (?1 = 1 AND revoke_reason IS NOT 1))",
	    &st) != SQLITE_OK) {
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
	changed = sqlite3_changes(s->db);
	sq_done(s, st);
	st = NULL;
	/* Unknown, already revoked (nothing to record), or just changed. */
	if (sq_prep(s, "SELECT fqdn, revoke_reason FROM "
	    "certificates WHERE serial = ?", &st) != SQLITE_OK) {
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
	if (changed) {
		const unsigned char *fq = sqlite3_column_text(st, 0);

		snprintf(detail, sizeof(detail), "reason=%d fqdn=%s",
		    sqlite3_column_int(st, 1), fq != NULL ? (const char *)fq : "");
		if ((r = audit_head(s, &aseq, ahash)) != 0 ||
		    (r = audit_put(s, &aseq, ahash, actor, "cert.revoke", key,
		    detail)) != 0) {
			ret = r;
			goto out;
		}
	}
	sq_done(s, st);
	st = NULL;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "commit");
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

/* Bind text, "" as itself (the upsert below reads "" as "clear"). */
static void
bind_text(sqlite3_stmt *st, int i, const char *t)
{
	if (t == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
}

/*
 * The engine's fields are replaced; a descriptive field left unset (0 or
 * NULL) keeps its stored value and "" clears it (see store.h).
 */
#define KEEP(c) " " c " = CASE WHEN excluded." c " IS NULL THEN " c \
	" WHEN excluded." c " = '' THEN NULL ELSE excluded." c " END"
#define KEEP_INT(c) " " c " = CASE WHEN excluded." c " = 0 THEN " c \
	" ELSE excluded." c " END"

static int
sq_device_put(void *be, const struct store_device *d)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, "INSERT INTO devices (fqdn, address, "
	    "amt_version, cert_serial, state, last_step, error, updated_at, "
	    "port, tls_port, amt_user, cred_ref, cred_stamp, tls_pin) VALUES "
	    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(fqdn) DO UPDATE SET "
	    "address = excluded.address, amt_version = excluded.amt_version, "
	    "cert_serial = excluded.cert_serial, state = excluded.state, "
	    "last_step = excluded.last_step, error = excluded.error, "
	    "updated_at = excluded.updated_at," KEEP_INT("port") ","
	    KEEP_INT("tls_port") "," KEEP("amt_user") "," KEEP("cred_ref") ","
	    KEEP("cred_stamp") "," KEEP("tls_pin"), &st) != SQLITE_OK) {
		ret = db_fail(s, "device update");
		goto out;
	}
	bind_text(st, 1, d->fqdn);
	bind_text(st, 2, d->address);
	bind_text(st, 3, d->amt_version);
	bind_text(st, 4, d->cert_serial);
	bind_text(st, 5, d->state);
	bind_text(st, 6, d->last_step);
	bind_text(st, 7, d->error);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)d->updated_at);
	sqlite3_bind_int(st, 9, d->port);
	sqlite3_bind_int(st, 10, d->tls_port);
	bind_text(st, 11, d->user);
	bind_text(st, 12, d->cred_ref);
	bind_text(st, 13, d->cred_stamp);
	bind_text(st, 14, d->tls_pin);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "device update");
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
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
	    dup_text(st, 6, &d->error) != 0 ||
	    dup_text(st, 10, &d->user) != 0 ||
	    dup_text(st, 11, &d->cred_ref) != 0 ||
	    dup_text(st, 12, &d->cred_stamp) != 0 ||
	    dup_text(st, 13, &d->tls_pin) != 0) {
		store_device_clear(d);
		return AMTCA_E_NOMEM;
	}
	d->updated_at = (time_t)sqlite3_column_int64(st, 7);
	d->port = sqlite3_column_int(st, 8);
	d->tls_port = sqlite3_column_int(st, 9);
	return 0;
}

#define DEVICE_SELECT "SELECT fqdn, address, amt_version, cert_serial, state, " \
	"last_step, error, updated_at, port, tls_port, NULLIF(amt_user, ''), " \
	"NULLIF(cred_ref, ''), NULLIF(cred_stamp, ''), NULLIF(tls_pin, '') " \
	"FROM devices "

static int
sq_device_get(void *be, const char *fqdn, struct store_device **out)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	struct store_device *d = NULL;
	int rc, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, DEVICE_SELECT "WHERE fqdn = ?", &st) != SQLITE_OK) {
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
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	free(d);
	return ret;
}

/*
 * Rows of `sql` (with `arg` bound to ?1 when not NULL) into an array of
 * `size`-byte records filled by `row`, released with `clear` on failure.
 */
static int
list_rows(struct sq *s, const char *sql, const char *arg, size_t size,
    int (*row)(sqlite3_stmt *, void *), void (*clear)(void *),
    void **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	unsigned char *v = NULL, *nv;
	size_t cnt = 0, cap = 0, i;
	int rc, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, sql, &st) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = realloc(v, cap * size)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			v = nv;
		}
		if (row(st, v + cnt * size) != 0) {
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
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	for (i = 0; i < cnt; i++)
		clear(v + i * size);
	free(v);
	return ret;
}

static int
row_device_v(sqlite3_stmt *st, void *d)
{
	return row_device(st, d);
}

static void
clear_device_v(void *d)
{
	store_device_clear(d);
}

static int
sq_device_list(void *be, struct store_device **out, size_t *n)
{
	return list_rows(be, DEVICE_SELECT "ORDER BY fqdn", NULL,
	    sizeof(**out), row_device_v, clear_device_v, (void **)out, n);
}

/* --- jobs ----------------------------------------------------------------- */

#define JOB_SELECT "SELECT id, created_at, finished_at, state, hosts_digest, " \
	"total FROM jobs "

static int
row_job(sqlite3_stmt *st, void *p)
{
	struct store_job *j = p;

	memset(j, 0, sizeof(*j));
	if (dup_text(st, 0, &j->id) != 0 || dup_text(st, 3, &j->state) != 0 ||
	    dup_text(st, 4, &j->hosts_digest) != 0) {
		store_job_clear(j);
		return AMTCA_E_NOMEM;
	}
	j->created_at = (time_t)sqlite3_column_int64(st, 1);
	j->finished_at = (time_t)sqlite3_column_int64(st, 2);
	j->total = (unsigned)sqlite3_column_int64(st, 5);
	return 0;
}

static void
clear_job_v(void *j)
{
	store_job_clear(j);
}

static int
sq_job_put(void *be, const struct store_job *j)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, "INSERT OR REPLACE INTO jobs (id, "
	    "created_at, finished_at, state, hosts_digest, total) VALUES "
	    "(?, ?, ?, ?, ?, ?)", &st) != SQLITE_OK) {
		ret = db_fail(s, "job update");
		goto out;
	}
	bind_text(st, 1, j->id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->created_at);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)j->finished_at);
	bind_text(st, 4, j->state);
	bind_text(st, 5, j->hosts_digest);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)j->total);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "job update");
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_job_get(void *be, const char *id, struct store_job **out)
{
	struct store_job *v = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if ((r = list_rows(be, JOB_SELECT "WHERE id = ?1", id, sizeof(*v),
	    row_job, clear_job_v, (void **)&v, &n)) != 0)
		return r;
	if (n == 0) {
		free(v);
		return amtca_fail(AMTCA_E_NOT_FOUND, "no job %.64s", id);
	}
	*out = v;		/* n is 1: the id is the key */
	return 0;
}

static int
sq_job_list(void *be, struct store_job **out, size_t *n)
{
	return list_rows(be, JOB_SELECT "ORDER BY created_at DESC, rowid DESC",
	    NULL, sizeof(**out), row_job, clear_job_v, (void **)out, n);
}

static int
row_job_device(sqlite3_stmt *st, void *p)
{
	struct store_job_device *d = p;

	memset(d, 0, sizeof(*d));
	if (dup_text(st, 0, &d->job_id) != 0 || dup_text(st, 1, &d->fqdn) != 0 ||
	    dup_text(st, 2, &d->result) != 0 || dup_text(st, 3, &d->serial) != 0 ||
	    dup_text(st, 4, &d->error) != 0) {
		store_job_device_clear(d);
		return AMTCA_E_NOMEM;
	}
	d->attempts = sqlite3_column_int(st, 5);
	d->updated_at = (time_t)sqlite3_column_int64(st, 6);
	return 0;
}

static void
clear_job_device_v(void *d)
{
	store_job_device_clear(d);
}

static int
sq_job_device_put(void *be, const struct store_job_device *d)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	/* Only for a job that exists (no foreign keys: they are per connection). */
	if (sq_prep(s, "INSERT OR REPLACE INTO job_devices "
	    "(job_id, fqdn, result, serial, error, attempts, updated_at) "
	    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM "
	    "jobs WHERE id = ?1)", &st) != SQLITE_OK) {
		ret = db_fail(s, "job progress update");
		goto out;
	}
	bind_text(st, 1, d->job_id);
	bind_text(st, 2, d->fqdn);
	bind_text(st, 3, d->result);
	bind_text(st, 4, d->serial);
	bind_text(st, 5, d->error);
	sqlite3_bind_int(st, 6, d->attempts);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)d->updated_at);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "job progress update");
		goto out;
	}
	if (sqlite3_changes(s->db) == 0) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no job %.64s", d->job_id);
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_job_device_list(void *be, const char *job_id,
    struct store_job_device **out, size_t *n)
{
	return list_rows(be, "SELECT job_id, fqdn, result, serial, error, "
	    "attempts, updated_at FROM job_devices WHERE job_id = ?1 ORDER BY "
	    "fqdn", job_id, sizeof(**out), row_job_device, clear_job_device_v,
	    (void **)out, n);
}

/* --- leases --------------------------------------------------------------- */

/*
 * Read and write in one IMMEDIATE transaction: the write lock is taken
 * first, so two processes deciding about the same lease decide one after
 * the other.
 */
static int
sq_lease_take(void *be, const char *name, const char *owner, time_t now,
    int ttl_s, const char *takeover, char **holder, time_t *expires)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	const char *cur;
	time_t exp;
	int rc, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "lock");
		goto out;
	}
	if (sq_prep(s, "SELECT owner, expires_at FROM leases "
	    "WHERE name = ?", &st) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		cur = (const char *)sqlite3_column_text(st, 0);
		exp = (time_t)sqlite3_column_int64(st, 1);
		if (cur != NULL && exp > now && strcmp(cur, owner) != 0 &&
		    (takeover == NULL || strcmp(cur, takeover) != 0)) {
			if (holder != NULL && (*holder = strdup(cur)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			if (expires != NULL)
				*expires = exp;
			ret = AMTCA_E_EXISTS;
			goto out;
		}
	} else if (rc != SQLITE_DONE) {
		ret = db_fail(s, "query");
		goto out;
	}
	sq_done(s, st);
	st = NULL;
	if (sq_prep(s, "INSERT OR REPLACE INTO leases (name, "
	    "owner, expires_at) VALUES (?, ?, ?)", &st) != SQLITE_OK) {
		ret = db_fail(s, "lease");
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)(now + ttl_s));
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "lease");
		goto out;
	}
	sq_done(s, st);
	st = NULL;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "commit");
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

/* One statement: UPDATE or DELETE `name` where `owner` holds it. */
static int
lease_stmt(struct sq *s, const char *sql, const char *name, const char *owner,
    sqlite3_int64 until, int *changed)
{
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, sql, &st) != SQLITE_OK) {
		ret = db_fail(s, "lease");
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_int64(st, 3, until);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "lease");
		goto out;
	}
	*changed = sqlite3_changes(s->db);
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_lease_renew(void *be, const char *name, const char *owner, time_t now,
    int ttl_s)
{
	int r, changed = 0;

	if ((r = lease_stmt(be, "UPDATE leases SET expires_at = ?3 WHERE "
	    "name = ?1 AND owner = ?2", name, owner,
	    (sqlite3_int64)(now + ttl_s), &changed)) != 0)
		return r;
	if (changed == 0)
		return amtca_fail(AMTCA_E_NOT_FOUND, "lease %.300s is no longer "
		    "held by this process", name);
	return 0;
}

static int
sq_lease_release(void *be, const char *name, const char *owner)
{
	int changed = 0;

	return lease_stmt(be, "DELETE FROM leases WHERE name = ?1 AND "
	    "owner = ?2", name, owner, 0, &changed);
}

/* --- job claims ------------------------------------------------------------ */

#define CLAIMABLE "result = 'pending' AND (claimed_by IS NULL OR " \
	"claim_expires <= ?2)"

/* BEGIN IMMEDIATE: the pick and the claim are one decision, one writer. */
static int
sq_job_claim(void *be, const char *job_id, const char *owner, time_t now,
    int ttl_s, char **fqdn, char **prev)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	char *f = NULL, *p = NULL;
	int rc, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "lock");
		goto out;
	}
	if (sq_prep(s, "SELECT fqdn, claimed_by FROM job_devices "
	    "WHERE job_id = ?1 AND " CLAIMABLE " AND EXISTS (SELECT 1 FROM jobs "
	    "WHERE id = ?1 AND state = 'running') ORDER BY fqdn LIMIT 1",
	    &st) != SQLITE_OK) {
		ret = db_fail(s, "claim");
		goto out;
	}
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "job %.64s has no device to "
		    "claim", job_id);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = db_fail(s, "claim");
		goto out;
	}
	if (dup_text(st, 0, &f) != 0 || dup_text(st, 1, &p) != 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	sq_done(s, st);
	st = NULL;
	if (sq_prep(s, "UPDATE job_devices SET claimed_by = ?3, "
	    "claim_expires = ?4 WHERE job_id = ?1 AND fqdn = ?2",
	    &st) != SQLITE_OK) {
		ret = db_fail(s, "claim");
		goto out;
	}
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, f, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now + ttl_s);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "claim");
		goto out;
	}
	sq_done(s, st);
	st = NULL;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "commit");
		goto out;
	}
	*fqdn = f;
	f = NULL;
	if (prev != NULL) {
		*prev = p;
		p = NULL;
	}
	ret = 0;
out:
	sq_done(s, st);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&s->dbmu);
	free(f);
	free(p);
	return ret;
}

/*
 * One UPDATE with text parameters ?1-?3 and an integer ?4, each bound when
 * the statement has that many (numbered ones it does not use are fine);
 * *n rows changed.
 */
static int
sq_update(struct sq *s, const char *sql, const char *a1, const char *a2,
    const char *a3, sqlite3_int64 i4, size_t *n, const char *what)
{
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, sql, &st) != SQLITE_OK) {
		ret = db_fail(s, what);
		goto out;
	}
	bind_text(st, 1, a1);
	bind_text(st, 2, a2);
	if (sqlite3_bind_parameter_count(st) >= 3)
		bind_text(st, 3, a3);
	if (sqlite3_bind_parameter_count(st) >= 4)
		sqlite3_bind_int64(st, 4, i4);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, what);
		goto out;
	}
	if (n != NULL)
		*n = (size_t)sqlite3_changes(s->db);
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_job_claim_renew(void *be, const char *job_id, const char *owner,
    time_t now, int ttl_s, size_t *n)
{
	return sq_update(be, "UPDATE job_devices SET claim_expires = ?4 WHERE "
	    "claimed_by = ?2 AND result = 'pending' AND (?1 IS NULL OR job_id = "
	    "?1)", job_id, owner, NULL,
	    (sqlite3_int64)now + ttl_s, n, "claim renewal");
}

static int
sq_job_claim_release(void *be, const char *job_id, const char *owner,
    const char *fqdn)
{
	return sq_update(be, "UPDATE job_devices SET claimed_by = NULL, "
	    "claim_expires = 0 WHERE job_id = ?1 AND claimed_by = ?2 AND "
	    "result = 'pending' AND (?3 IS NULL OR fqdn = ?3)", job_id, owner,
	    fqdn, 0, NULL, "claim release");
}

/* The first column of every row of `sql` (text ?1, integer ?2). */
static int
sq_strings(struct sq *s, const char *sql, const char *a1, sqlite3_int64 i2,
    char ***out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	char **v = NULL, **nv;
	size_t cnt = 0, cap = 0, i;
	int rc, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, sql, &st) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	bind_text(st, 1, a1);
	sqlite3_bind_int64(st, 2, i2);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			v = nv;
		}
		if (dup_text(st, 0, &v[cnt]) != 0) {
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
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	for (i = 0; i < cnt; i++)
		free(v[i]);
	free(v);
	return ret;
}

static int
sq_job_claimable(void *be, time_t now, char ***ids, size_t *n)
{
	return sq_strings(be, "SELECT id FROM jobs j WHERE state = 'running' "
	    "AND EXISTS (SELECT 1 FROM job_devices WHERE job_id = j.id AND "
	    CLAIMABLE ") ORDER BY created_at, rowid", NULL,
	    (sqlite3_int64)now, ids, n);
}

static int
sq_job_claim_owners(void *be, const char *job_id, char ***owners, size_t *n)
{
	return sq_strings(be, "SELECT DISTINCT claimed_by FROM job_devices "
	    "WHERE job_id = ?1 AND result = 'pending' AND claimed_by IS NOT NULL "
	    "ORDER BY claimed_by", job_id, 0, owners, n);
}

static int
sq_job_finish(void *be, const char *job_id, time_t when, int *finished)
{
	size_t n = 0;
	int r;

	if ((r = sq_update(be, "UPDATE jobs SET state = 'done', finished_at = ?4 "
	    "WHERE id = ?1 AND state = 'running' AND NOT EXISTS (SELECT 1 FROM job_devices WHERE job_id = ?1 AND "
	    "result = 'pending')", job_id, NULL, NULL, (sqlite3_int64)when, &n,
	    "job update")) != 0)
		return r;
	*finished = n == 1;
	return 0;
}

static int
sq_revocation_mark(void *be, uint64_t *mark)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, "SELECT coalesce(max(seq), 0) FROM audit "
	    "WHERE action = 'cert.revoke'", &st) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		ret = db_fail(s, "query");
		goto out;
	}
	*mark = (uint64_t)sqlite3_column_int64(st, 0);
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

/* --- credentials ---------------------------------------------------------- */

#define CRED_COLS "name, amt_user, mechanism, created_at, updated_at"

static int
row_cred(sqlite3_stmt *st, int with_blob, struct store_cred *c)
{
	const void *b;
	int n;

	memset(c, 0, sizeof(*c));
	if (dup_text(st, 0, &c->name) != 0 || dup_text(st, 1, &c->user) != 0 ||
	    dup_text(st, 2, &c->mechanism) != 0)
		goto nomem;
	c->created_at = (time_t)sqlite3_column_int64(st, 3);
	c->updated_at = (time_t)sqlite3_column_int64(st, 4);
	if (with_blob) {
		b = sqlite3_column_blob(st, 5);
		n = sqlite3_column_bytes(st, 5);
		if (b != NULL && n > 0) {
			if ((c->sealed = malloc((size_t)n)) == NULL)
				goto nomem;
			memcpy(c->sealed, b, (size_t)n);
			c->sealed_len = (size_t)n;
		}
	}
	return 0;
nomem:
	store_cred_clear(c);
	return AMTCA_E_NOMEM;
}

static int
row_cred_v(sqlite3_stmt *st, void *c)
{
	return row_cred(st, 0, c);
}

static void
clear_cred_v(void *c)
{
	store_cred_clear(c);
}

static int
sq_cred_put(void *be, const struct store_cred *c)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	/* A replacement keeps the first created_at. */
	if (sq_prep(s, "INSERT INTO credentials (name, amt_user, "
	    "sealed, mechanism, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
	    "ON CONFLICT(name) DO UPDATE SET amt_user = excluded.amt_user, "
	    "sealed = excluded.sealed, mechanism = excluded.mechanism, "
	    "updated_at = excluded.updated_at", &st) != SQLITE_OK) {
		ret = db_fail(s, "credential update");
		goto out;
	}
	bind_text(st, 1, c->name);
	bind_text(st, 2, c->user);
	sqlite3_bind_blob(st, 3, c->sealed, (int)c->sealed_len, SQLITE_STATIC);
	bind_text(st, 4, c->mechanism);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)c->created_at);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)c->updated_at);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "credential update");
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_cred_get(void *be, const char *name, struct store_cred **out)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	struct store_cred *c = NULL;
	int rc, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, "SELECT " CRED_COLS ", sealed FROM "
	    "credentials WHERE name = ?", &st) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no credential %.64s", name);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = db_fail(s, "query");
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL || row_cred(st, 1, c) != 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	free(c);
	return ret;
}

static int
sq_cred_list(void *be, struct store_cred **out, size_t *n)
{
	return list_rows(be, "SELECT " CRED_COLS " FROM credentials ORDER BY "
	    "name", NULL, sizeof(**out), row_cred_v, clear_cred_v,
	    (void **)out, n);
}

static int
sq_cred_remove(void *be, const char *name)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, "DELETE FROM credentials WHERE name = ?",
	    &st) != SQLITE_OK) {
		ret = db_fail(s, "credential removal");
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "credential removal");
		goto out;
	}
	if (sqlite3_changes(s->db) == 0) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no credential %.64s", name);
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

/* --- admin and EST clients ----------------------------------------------- */

#define CLIENT_SELECT "SELECT name, roles, allow, pwhash, serial, " \
	"created_at, removed_at FROM clients "

static int
row_client(sqlite3_stmt *st, void *p)
{
	struct store_client *c = p;

	memset(c, 0, sizeof(*c));
	if (dup_text(st, 0, &c->name) != 0 || dup_text(st, 2, &c->allow) != 0 ||
	    dup_text(st, 3, &c->pwhash) != 0 || dup_text(st, 4, &c->serial) != 0) {
		store_client_clear(c);
		return AMTCA_E_NOMEM;
	}
	c->roles = (unsigned)sqlite3_column_int64(st, 1);
	c->created_at = (time_t)sqlite3_column_int64(st, 5);
	c->removed_at = (time_t)sqlite3_column_int64(st, 6);
	return 0;
}

static void
clear_client_v(void *c)
{
	store_client_clear(c);
}

/* Append one entry after the head inside the caller's transaction. */
static int
audit_note(struct sq *s, const char *actor, const char *action,
    const char *subject, const char *detail)
{
	uint64_t q = 0;
	unsigned char h[STORE_AUDIT_HASH_LEN];
	int r;

	if ((r = audit_head(s, &q, h)) != 0)
		return r;
	return audit_put(s, &q, h, actor, action, subject,
	    detail != NULL ? detail : "");
}

/* COMMIT, or ROLLBACK what is open; dbmu held.  ret passes through. */
static int
txn_end(struct sq *s, int ret)
{
	if (ret == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK)
		ret = db_fail(s, "commit");
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

static int
sq_client_add(void *be, const struct store_client *c, const char *actor,
    const char *detail)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int r, rc, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	/* The record and its "client.add" entry commit together. */
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "lock");
		goto out;
	}
	if (sq_prep(s, "INSERT INTO clients (name, roles, allow,"
	    " pwhash, serial, created_at, removed_at) VALUES (?, ?, ?, ?, ?, ?,"
	    " ?)", &st) != SQLITE_OK) {
		ret = db_fail(s, "client record");
		goto out;
	}
	bind_text(st, 1, c->name);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)c->roles);
	bind_text(st, 3, c->allow);
	bind_text(st, 4, c->pwhash);
	bind_text(st, 5, c->serial);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)c->created_at);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)c->removed_at);
	rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		ret = amtca_fail(AMTCA_E_EXISTS, "a client named %.64s is already "
		    "recorded (names are never reused, removed ones included)",
		    c->name);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(s, "client record");
		goto out;
	}
	if ((r = audit_note(s, actor, "client.add", c->name, detail)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	ret = txn_end(s, ret);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_client_get(void *be, const char *name, const char *serial,
    struct store_client **out)
{
	struct store_client *v = NULL;
	size_t n = 0, i;
	int r;

	*out = NULL;
	if (name != NULL)
		r = list_rows(be, CLIENT_SELECT "WHERE name = ?1", name,
		    sizeof(*v), row_client, clear_client_v, (void **)&v, &n);
	else
		r = list_rows(be, CLIENT_SELECT "WHERE serial = ?1 ORDER BY "
		    "removed_at != 0, created_at DESC", serial, sizeof(*v),
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
sq_client_list(void *be, struct store_client **out, size_t *n)
{
	return list_rows(be, CLIENT_SELECT "ORDER BY name", NULL,
	    sizeof(**out), row_client, clear_client_v, (void **)out, n);
}

/*
 * One UPDATE of a client row and, when it changed the row, its audit entry
 * in the same transaction; AMTCA_E_NOT_FOUND when it changed none.
 */
static int
client_update(struct sq *s, const char *sql, const char *name,
    const char *text, sqlite3_int64 num, const char *actor,
    const char *action, const char *detail)
{
	sqlite3_stmt *st = NULL;
	int r, changed, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "lock");
		goto out;
	}
	if (sq_prep(s, sql, &st) != SQLITE_OK) {
		ret = db_fail(s, "client update");
		goto out;
	}
	bind_text(st, 1, name);
	if (text != NULL)
		bind_text(st, 2, text);
	else
		sqlite3_bind_int64(st, 2, num);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "client update");
		goto out;
	}
	changed = sqlite3_changes(s->db);
	if (changed > 0 &&
	    (r = audit_note(s, actor, action, name, detail)) != 0) {
		ret = r;
		goto out;
	}
	ret = changed > 0 ? 0 : AMTCA_E_NOT_FOUND;
out:
	sq_done(s, st);
	ret = txn_end(s, ret);	/* nothing changed: rolled back */
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_client_bind(void *be, const char *name, const char *serial,
    const char *actor)
{
	char detail[AMTCA_AUDIT_FIELD_MAX + 16];
	int r;

	snprintf(detail, sizeof(detail), "serial=%s", serial);
	r = client_update(be, "UPDATE clients SET serial = ?2 WHERE name = ?1 "
	    "AND removed_at = 0", name, serial, 0, actor, "client.rebind",
	    detail);
	if (r == AMTCA_E_NOT_FOUND)
		return amtca_fail(r, "no active client %.64s", name);
	return r;
}

static int
sq_client_remove(void *be, const char *name, time_t when, const char *actor,
    const char *detail)
{
	struct store_client *c = NULL;
	int r;

	r = client_update(be, "UPDATE clients SET removed_at = ?2 WHERE "
	    "name = ?1 AND removed_at = 0", name, NULL, (sqlite3_int64)when,
	    actor, "client.remove", detail);
	if (r != AMTCA_E_NOT_FOUND)
		return r;
	/* Already removed is fine (the first time is kept); unknown is not. */
	r = sq_client_get(be, name, NULL, &c);
	store_client_free(c);
	return r;
}

static int
sq_audit_append(void *be, const char *actor, const char *action,
    const char *subject, const char *detail, uint64_t *seq,
    unsigned char hash[STORE_AUDIT_HASH_LEN])
{
	struct sq *s = be;
	uint64_t q = 0;
	unsigned char h[STORE_AUDIT_HASH_LEN];
	int r, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	/* IMMEDIATE: the head is read under the write lock it is chained in. */
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "lock");
		goto out;
	}
	if ((r = audit_head(s, &q, h)) != 0 ||
	    (r = audit_put(s, &q, h, actor, action, subject, detail)) != 0) {
		ret = r;
		goto out;
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "commit");
		goto out;
	}
	*seq = q;
	memcpy(hash, h, STORE_AUDIT_HASH_LEN);
	ret = 0;
out:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

/* A 32-byte column into out; anything else reads as zeros (verify says so). */
static void
col_hash(sqlite3_stmt *st, int col, unsigned char out[STORE_AUDIT_HASH_LEN])
{
	const void *b = sqlite3_column_blob(st, col);

	memset(out, 0, STORE_AUDIT_HASH_LEN);
	if (b != NULL && sqlite3_column_bytes(st, col) == STORE_AUDIT_HASH_LEN)
		memcpy(out, b, STORE_AUDIT_HASH_LEN);
}

static int
row_audit(sqlite3_stmt *st, void *p)
{
	struct store_audit *e = p;

	memset(e, 0, sizeof(*e));
	if (dup_text(st, 2, &e->actor) != 0 || dup_text(st, 3, &e->action) != 0 ||
	    dup_text(st, 4, &e->subject) != 0 || dup_text(st, 5, &e->detail) != 0) {
		store_audit_clear(e);
		return AMTCA_E_NOMEM;
	}
	e->seq = (uint64_t)sqlite3_column_int64(st, 0);
	e->time = (int64_t)sqlite3_column_int64(st, 1);
	col_hash(st, 6, e->prev);
	col_hash(st, 7, e->hash);
	return 0;
}

static void
clear_audit_v(void *e)
{
	store_audit_clear(e);
}

static int
sq_audit_list(void *be, uint64_t after, struct store_audit **out, size_t *n)
{
	char arg[24];

	snprintf(arg, sizeof(arg), "%llu", (unsigned long long)after);
	return list_rows(be, "SELECT seq, time, actor, action, subject, detail, "
	    "prev, hash FROM audit WHERE seq > CAST(?1 AS INTEGER) ORDER BY seq",
	    arg, sizeof(**out), row_audit, clear_audit_v, (void **)out, n);
}

static int
sq_audit_status(void *be, uint64_t *head, uint64_t *sealed)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, "SELECT (SELECT ifnull(max(seq), 0) FROM "
	    "audit), (SELECT ifnull(max(seq), 0) FROM audit_seals)",
	    &st) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		ret = db_fail(s, "audit query");
		goto out;
	}
	*head = (uint64_t)sqlite3_column_int64(st, 0);
	*sealed = (uint64_t)sqlite3_column_int64(st, 1);
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_seal_add(void *be, const struct store_seal *seal)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	/* Only over an entry stored with exactly that hash. */
	if (sq_prep(s, "INSERT OR REPLACE INTO audit_seals (seq, "
	    "hash, sig, time) SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM "
	    "audit WHERE seq = ?1 AND hash = ?2)", &st) != SQLITE_OK) {
		ret = db_fail(s, "seal");
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seal->seq);
	sqlite3_bind_blob(st, 2, seal->hash, STORE_AUDIT_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, seal->sig, (int)seal->siglen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)seal->time);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "seal");
		goto out;
	}
	if (sqlite3_changes(s->db) == 0) {
		ret = amtca_fail(AMTCA_E_AUDIT, "no audit entry %llu with the hash "
		    "to be sealed", (unsigned long long)seal->seq);
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
row_seal(sqlite3_stmt *st, void *p)
{
	struct store_seal *e = p;
	const void *b;
	int n;

	memset(e, 0, sizeof(*e));
	e->seq = (uint64_t)sqlite3_column_int64(st, 0);
	col_hash(st, 1, e->hash);
	e->time = (int64_t)sqlite3_column_int64(st, 3);
	b = sqlite3_column_blob(st, 2);
	n = sqlite3_column_bytes(st, 2);
	if (b != NULL && n > 0) {
		if ((e->sig = malloc((size_t)n)) == NULL)
			return AMTCA_E_NOMEM;
		memcpy(e->sig, b, (size_t)n);
		e->siglen = (size_t)n;
	}
	return 0;
}

static void
clear_seal_v(void *e)
{
	store_seal_clear(e);
}

static int
sq_seal_list(void *be, struct store_seal **out, size_t *n)
{
	return list_rows(be, "SELECT seq, hash, sig, time FROM audit_seals "
	    "ORDER BY seq", NULL, sizeof(**out), row_seal, clear_seal_v,
	    (void **)out, n);
}

/* --- the CA's own certificates ------------------------------------------- */

static int
sq_cacert_put(void *be, const struct store_cacert *v, size_t n,
    const char *actor, const char *action, const char *subject,
    const char *detail)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	uint64_t aseq = 0;
	unsigned char ahash[STORE_AUDIT_HASH_LEN];
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "lock");
		goto out;
	}
	/* A revoked row stays revoked: the root's CRL lists it for good. */
	if (sq_prep(s, "INSERT INTO ca_certs (keyid, role, "
	    "generation, subject, serial, not_after, state, created_at, der) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(keyid) DO "
	    "UPDATE SET role = ?2, generation = ?3, subject = ?4, serial = ?5, "
	    "not_after = ?6, der = ?9, state = CASE WHEN state = 'revoked' THEN "
	    "'revoked' ELSE ?7 END", &st) != SQLITE_OK) {
		ret = db_fail(s, "CA certificate record");
		goto out;
	}
	for (i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		sqlite3_bind_text(st, 1, v[i].keyid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, v[i].role, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, v[i].generation);
		sqlite3_bind_text(st, 4, v[i].subject, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, v[i].serial, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)v[i].not_after);
		sqlite3_bind_text(st, 7, v[i].state, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)(v[i].created_at != 0 ?
		    v[i].created_at : time(NULL)));
		sqlite3_bind_blob(st, 9, v[i].der, (int)v[i].der_len,
		    SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			ret = db_fail(s, "CA certificate record");
			goto out;
		}
	}
	if (action != NULL && ((r = audit_head(s, &aseq, ahash)) != 0 ||
	    (r = audit_put(s, &aseq, ahash, actor, action, subject,
	    detail)) != 0)) {
		ret = r;
		goto out;
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "commit");
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_cacert_list(void *be, struct store_cacert **out, size_t *n)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	struct store_cacert *v = NULL, *nv, *c;
	size_t cnt = 0, cap = 0;
	const void *b;
	int rc, len, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, "SELECT keyid, role, generation, subject, "
	    "serial, not_after, state, revoke_reason, created_at, revoked_at, "
	    "der FROM ca_certs ORDER BY generation, keyid", &st) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			v = nv;
		}
		c = &v[cnt];
		memset(c, 0, sizeof(*c));
		cnt++;
		if (dup_text(st, 0, &c->keyid) != 0 ||
		    dup_text(st, 1, &c->role) != 0 ||
		    dup_text(st, 3, &c->subject) != 0 ||
		    dup_text(st, 4, &c->serial) != 0 ||
		    dup_text(st, 6, &c->state) != 0) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		c->generation = sqlite3_column_int(st, 2);
		c->not_after = (time_t)sqlite3_column_int64(st, 5);
		c->revoke_reason = sqlite3_column_int(st, 7);
		c->created_at = (time_t)sqlite3_column_int64(st, 8);
		c->revoked_at = (time_t)sqlite3_column_int64(st, 9);
		b = sqlite3_column_blob(st, 10);
		len = sqlite3_column_bytes(st, 10);
		if (b != NULL && len > 0) {
			if ((c->der = malloc((size_t)len)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			memcpy(c->der, b, (size_t)len);
			c->der_len = (size_t)len;
		}
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
	sq_done(s, st);
	pthread_mutex_unlock(&s->dbmu);
	store_cacerts_free(v, cnt);
	return ret;
}

static int
sq_cacert_revoke(void *be, const char *keyid, int reason, time_t when,
    const char *actor)
{
	struct sq *s = be;
	sqlite3_stmt *st = NULL;
	uint64_t aseq = 0;
	unsigned char ahash[STORE_AUDIT_HASH_LEN];
	char detail[96], serial[AMTCA_AUDIT_FIELD_MAX + 1];
	const unsigned char *t;
	int rc, r, changed, ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "lock");
		goto out;
	}
	if (sq_prep(s, "UPDATE ca_certs SET state = 'revoked', "
	    "revoke_reason = ?1, revoked_at = ?2 WHERE keyid = ?3 AND state <> "
	    "'revoked'", &st) != SQLITE_OK) {
		ret = db_fail(s, "revoke");
		goto out;
	}
	sqlite3_bind_int(st, 1, reason);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)when);
	sqlite3_bind_text(st, 3, keyid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = db_fail(s, "revoke");
		goto out;
	}
	changed = sqlite3_changes(s->db);
	sq_done(s, st);
	st = NULL;
	if (sq_prep(s, "SELECT serial FROM ca_certs WHERE "
	    "keyid = ?", &st) != SQLITE_OK) {
		ret = db_fail(s, "query");
		goto out;
	}
	sqlite3_bind_text(st, 1, keyid, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no intermediate with key "
		    "identifier %s", keyid);
		goto out;
	} else if (rc != SQLITE_ROW) {
		ret = db_fail(s, "query");
		goto out;
	}
	t = sqlite3_column_text(st, 0);
	snprintf(serial, sizeof(serial), "%s", t != NULL ? (const char *)t : "");
	if (changed) {
		snprintf(detail, sizeof(detail), "reason=%d serial=%.40s", reason,
		    serial);
		if ((r = audit_head(s, &aseq, ahash)) != 0 ||
		    (r = audit_put(s, &aseq, ahash, actor,
		    "ca.revoke-intermediate", keyid, detail)) != 0) {
			ret = r;
			goto out;
		}
	}
	sq_done(s, st);
	st = NULL;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "commit");
		goto out;
	}
	ret = 0;
out:
	sq_done(s, st);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

/* --- shared configuration ------------------------------------------------- */

static int
row_meta(sqlite3_stmt *st, void *p)
{
	struct store_meta *m = p;
	const void *b;
	int n;

	memset(m, 0, sizeof(*m));
	if (dup_text(st, 0, &m->name) != 0)
		goto nomem;
	b = sqlite3_column_blob(st, 1);
	n = sqlite3_column_bytes(st, 1);
	/* An empty value is a non-NULL, zero-length buffer. */
	if ((m->value = malloc(n > 0 ? (size_t)n : 1)) == NULL)
		goto nomem;
	if (n > 0)
		memcpy(m->value, b, (size_t)n);
	m->len = (size_t)n;
	m->updated_at = (time_t)sqlite3_column_int64(st, 2);
	return 0;
nomem:
	store_meta_clear(m);
	return AMTCA_E_NOMEM;
}

static void
clear_meta_v(void *m)
{
	store_meta_clear(m);
}

static int
sq_meta_put(void *be, const struct store_meta *v, size_t n)
{
	struct sq *s = be;
	sqlite3_stmt *up = NULL, *del = NULL, *st;
	size_t i;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&s->dbmu);
	if (sq_prep(s, "INSERT INTO meta (name, value, "
	    "updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
	    "value = excluded.value, updated_at = excluded.updated_at",
	    &up) != SQLITE_OK ||
	    sq_prep(s, "DELETE FROM meta "
	    "WHERE name = ?", &del) != SQLITE_OK) {
		ret = db_fail(s, "configuration update");
		goto out;
	}
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "configuration update");
		goto out;
	}
	for (i = 0; i < n; i++) {
		st = v[i].value != NULL ? up : del;
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		bind_text(st, 1, v[i].name);
		if (v[i].value != NULL) {
			/* A zero-length blob, not NULL. */
			sqlite3_bind_blob(st, 2, v[i].len ? (const void *)v[i].value :
			    "", (int)v[i].len, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)v[i].updated_at);
		}
		if (sqlite3_step(st) != SQLITE_DONE) {
			ret = db_fail(s, "configuration update");
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = db_fail(s, "configuration update");
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	ret = 0;
out:
	sq_done(s, up);
	sq_done(s, del);
	pthread_mutex_unlock(&s->dbmu);
	return ret;
}

static int
sq_meta_list(void *be, struct store_meta **out, size_t *n)
{
	return list_rows(be, "SELECT name, value, updated_at FROM meta ORDER BY "
	    "name", NULL, sizeof(**out), row_meta, clear_meta_v, (void **)out,
	    n);
}

static int
sq_meta_get(void *be, const char *name, struct store_meta **out)
{
	struct store_meta *v = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if ((r = list_rows(be, "SELECT name, value, updated_at FROM meta WHERE "
	    "name = ?", name, sizeof(*v), row_meta, clear_meta_v, (void **)&v,
	    &n)) != 0)
		return r;
	if (n == 0) {
		free(v);
		return amtca_fail(AMTCA_E_NOT_FOUND, "no configuration item %.64s",
		    name);
	}
	/* The array's first element is the item: one allocation to free. */
	*out = v;
	return 0;
}

const struct store_ops store_sqlite_ops = {
	.scheme = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.destroy = sq_destroy,
	.backup = sq_backup,
	.insert_batch = sq_insert_batch,
	.cert_get = sq_cert_get,
	.cert_list = sq_cert_list,
	.cert_revoke = sq_cert_revoke,
	.device_put = sq_device_put,
	.device_get = sq_device_get,
	.device_list = sq_device_list,
	.job_put = sq_job_put,
	.job_get = sq_job_get,
	.job_list = sq_job_list,
	.job_device_put = sq_job_device_put,
	.job_device_list = sq_job_device_list,
	.audit_append = sq_audit_append,
	.audit_list = sq_audit_list,
	.audit_status = sq_audit_status,
	.seal_add = sq_seal_add,
	.seal_list = sq_seal_list,
	.job_claim = sq_job_claim,
	.job_claim_renew = sq_job_claim_renew,
	.job_claim_release = sq_job_claim_release,
	.job_claimable = sq_job_claimable,
	.job_claim_owners = sq_job_claim_owners,
	.job_finish = sq_job_finish,
	.revocation_mark = sq_revocation_mark,
	.lease_take = sq_lease_take,
	.lease_renew = sq_lease_renew,
	.lease_release = sq_lease_release,
	.client_add = sq_client_add,
	.client_get = sq_client_get,
	.client_list = sq_client_list,
	.client_bind = sq_client_bind,
	.client_remove = sq_client_remove,
	.cred_put = sq_cred_put,
	.cred_get = sq_cred_get,
	.cred_list = sq_cred_list,
	.cred_remove = sq_cred_remove,
	.cacert_put = sq_cacert_put,
	.cacert_list = sq_cacert_list,
	.cacert_revoke = sq_cacert_revoke,
	.meta_put = sq_meta_put,
	.meta_get = sq_meta_get,
	.meta_list = sq_meta_list,
};
