/*
 * enroll/backup.h: backup and restore of a CA home (docs/backup.md).
 *
 * A backup is a directory: the home's public files and configuration, an
 * online copy of each store (store_backup: one consistent snapshot, taken
 * while serve, fleet or enroll write), the embedded SoftHSM token's files
 * copied under the token lock and checked by a test login on the copy, a
 * BACKUP_INFO file, and BACKUP_MANIFEST, one "SHA-256  path" line per
 * file (sha256sum -c reads it).  It never holds a vendor HSM's keys, and
 * holds the PIN only when asked.
 *
 * A restore makes a new home from a backup after checking every file
 * against the manifest, gives it a new identity (home_id, with the
 * backup's as restored_from) and, given the PIN, logs in to the restored
 * token and checks the issuing key matches the intermediate.
 *
 * Nothing here prints; failures carry an amtca_fail() detail.
 */
#ifndef AMTCA_ENROLL_BACKUP_H
#define AMTCA_ENROLL_BACKUP_H

#include <stddef.h>

#include "common/err.h"
#include "enroll/home.h"

#define BACKUP_MANIFEST "BACKUP_MANIFEST"
#define BACKUP_INFO     "BACKUP_INFO"
#define BACKUP_FORMAT   1

struct backup_opts {
	int include_pin;		/* copy the token's PIN file too */
};

struct backup_result {
	char home_id[HOME_ID_LEN + 1];	/* "" for a home without one */
	size_t nfiles;			/* files in the manifest */
	int token;			/* the embedded token was copied and a
					   test login on the copy succeeded */
	int pin;			/* the PIN file is in the backup */
	int split;			/* keys/ + state/ (else amtca.db) */
};

/*
 * Back the home `home_dir` (NULL: the default) up into `out_dir`, which
 * must be missing or empty (AMTCA_E_EXISTS otherwise) and is made 0700.
 * On failure what was written there is removed.
 */
int backup_make(const char *home_dir, const char *out_dir,
    const struct backup_opts *o, struct backup_result *res) AMTCA_WUR;

struct restore_opts {
	const char *pin_file;		/* the token's user PIN; NULL: the
					   backup's, if it has one */
};

struct restore_result {
	char home_id[HOME_ID_LEN + 1];	/* the new home's identity */
	char from_id[HOME_ID_LEN + 1];	/* the backed-up home's ("" if none) */
	size_t nfiles;
	int pin;			/* 0: no PIN anywhere (the token was not
					   checked); 1: the backup's; 2: pin_file */
	int checked;			/* logged in to the restored token and
					   found the issuing key of the
					   intermediate */
	char pin_path[PATH_MAX];	/* where the home's conf wants the PIN */
};

/*
 * Verify the backup in `from` against its manifest (a changed, missing or
 * unlisted file is refused, named: AMTCA_E_VERIFY) and restore it as the
 * new home `home_dir` (home_create(): AMTCA_E_EXISTS when it holds
 * anything).  On failure nothing of the new home is left.
 */
int backup_restore(const char *from, const char *home_dir,
    const struct restore_opts *o, struct restore_result *res) AMTCA_WUR;

/*
 * A parsed BACKUP_MANIFEST: entries sorted by path, no path twice.  Each
 * line is 64 lowercase hex digits, two spaces, a relative path (no empty,
 * "." or ".." component, printable ASCII without '\\'), '\n'.
 * AMTCA_E_BACKUP naming `name` and the line for anything else; at most
 * AMTCA_BACKUP_FILES_MAX entries.  Outside input: fuzzed
 * (tests/fuzz/fuzz_backup_manifest.c).
 */
struct backup_entry {
	char *path;
	char sha256[65];
};
struct backup_manifest {
	struct backup_entry *e;
	size_t n;
};
int backup_manifest_parse(const char *text, size_t len, const char *name,
    struct backup_manifest **out) AMTCA_WUR;
void backup_manifest_free(struct backup_manifest *m);

#endif
