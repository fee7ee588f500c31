/*
 * enroll/hosts.c: the fleet's hosts file (amtca fleet --hosts FILE).
 *
 * CSV with a header line naming the columns, in any order:
 *   required: fqdn, address, user, password_file
 *   optional: port, tls_port, tls_pin_sha256
 * `address` may be empty (DNS is used); `user` and `password_file` may be
 * empty (the command line's defaults are used).  A row that ends up with no
 * user or no password file, an FQDN outside the CA's policy, a duplicate
 * FQDN, a bad port, a pin that is not 64 hex digits, or a password file
 * that cannot be read is an error naming the line; nothing runs until the
 * whole file is valid.
 *
 * The CSV is RFC 4180's, with these choices:
 *  - lines end in LF or CRLF (a lone CR is an error); a UTF-8 byte order
 *    mark at the start is skipped;
 *  - empty lines, and lines whose first byte is '#', are skipped (also
 *    before the header);
 *  - column names are matched case-insensitively; an unknown or repeated
 *    column is an error; every row has as many fields as the header;
 *  - a field may be quoted ("a,b"; a quote inside is doubled); blanks
 *    around a field are not data; a quote inside an unquoted field, text
 *    after a closing quote, or a line break inside quotes (no column can
 *    hold one) is an error;
 *  - a header with no rows is an error (nothing to do is a mistake);
 *  - bounds: AMTCA_HOSTS_FILE_MAX bytes, AMTCA_CSV_LINE_MAX per line,
 *    AMTCA_FLEET_HOSTS_MAX rows, AMTCA_AMT_USER_MAX for a user name.
 * Password files (with check_files) are held to the PIN file's rule
 * (amtca_path_check_secure: ours, not writable by group or others, nor the
 * directories above) and must also give others no access at all (mode
 * o-rwx) and be readable by us now; they are not read here.  A wildcard
 * FQDN is refused.  A duplicate is reported on its later line.
 *
 * Outside input: hosts_parse() is fuzzed (tests/fuzz/fuzz_hosts.c); sizes
 * are bounded by common/limits.h.
 */
#ifndef AMTCA_ENROLL_HOSTS_H
#define AMTCA_ENROLL_HOSTS_H

#include <stddef.h>

#include "ca/ca.h"
#include "common/err.h"

struct fleet_host {
	char *fqdn;			/* normalised: lower case, no root dot */
	char *address;			/* IP pin, or NULL: DNS */
	char *user;			/* the row's, else the default */
	char *password_file;		/* absolute path; the row's, else the
					   default; read only at the device's
					   turn (never here) */
	int password_file_named;	/* the row's own password_file
					   column (not the default): only
					   that replaces a sealed credential
					   a device's record names (fleet.c,
					   record_host) */
	char *credential;		/* a sealed credential's name (jobs
					   from the service's API), or NULL:
					   user and password then come from
					   fleet_opts.cred_get at the device's
					   turn, and password_file is unused */
	int port;			/* 0: 16992 */
	int tls_port;			/* 0: 16993 */
	int has_pin;
	unsigned char tls_pin[32];	/* tls_pin_sha256, when has_pin */
	unsigned line;			/* 1-based line in the file */
};

struct hosts_defaults {
	const char *user;		/* --user, or NULL */
	const char *password_file;	/* --password-file, or NULL */
	const struct ca_policy *policy;	/* FQDNs must be issuable; NULL: only
					   syntax is checked */
	int check_files;		/* password files must exist and be
					   readable (hosts_load sets it) */
};

/*
 * Parse `len` bytes of CSV.  On error returns AMTCA_E_USAGE (or
 * AMTCA_E_NOMEM) with an amtca_fail() detail "hosts file line N: ...".
 * *out is an array of *n hosts, released with hosts_free().
 */
int hosts_parse(const char *buf, size_t len, const struct hosts_defaults *d,
    struct fleet_host **out, size_t *n) AMTCA_WUR;

/* Read `path` (bounded by AMTCA_HOSTS_FILE_MAX) and hosts_parse() it with
 * check_files on.  Relative password_file paths are relative to the hosts
 * file's directory. */
int hosts_load(const char *path, const struct hosts_defaults *d,
    struct fleet_host **out, size_t *n) AMTCA_WUR;

void hosts_free(struct fleet_host *h, size_t n);

#endif
