/*
 * The fleet's hosts file: RFC 4180 CSV, checked whole before anything runs.
 * The format and its choices are in hosts.h.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/enroll.h"
#include "enroll/hosts.h"

enum col { COL_FQDN, COL_ADDRESS, COL_USER, COL_PWFILE, COL_PORT,
    COL_TLS_PORT, COL_PIN, COL__N };

static const struct {
	const char *name;
	int required;
} cols[COL__N] = {
	[COL_FQDN] = { "fqdn", 1 },
	[COL_ADDRESS] = { "address", 1 },
	[COL_USER] = { "user", 1 },
	[COL_PWFILE] = { "password_file", 1 },
	[COL_PORT] = { "port", 0 },
	[COL_TLS_PORT] = { "tls_port", 0 },
	[COL_PIN] = { "tls_pin_sha256", 0 },
};

/* One CSV record: fields point into `buf`, NUL-separated. */
struct rec {
	char buf[AMTCA_CSV_LINE_MAX + 1];
	char *f[AMTCA_CSV_FIELDS_MAX];
	size_t nf;
	unsigned line;		/* where it starts */
};

struct cur {
	const char *p;
	size_t len, pos;
	unsigned line;		/* 1-based line of p[pos] */
};

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* At the end of a line (or of the input)?  Consumes "\n" or "\r\n". */
static int
eol(struct cur *c, int *err)
{
	*err = 0;
	if (c->pos >= c->len)
		return 1;
	if (c->p[c->pos] == '\n') {
		c->pos++;
		c->line++;
		return 1;
	}
	if (c->p[c->pos] == '\r') {
		if (c->pos + 1 < c->len && c->p[c->pos + 1] == '\n') {
			c->pos += 2;
			c->line++;
			return 1;
		}
		*err = amtca_fail(AMTCA_E_USAGE, "hosts file line %u: a carriage "
		    "return not followed by a line feed", c->line);
		return 1;
	}
	return 0;
}

/*
 * The next record into r.  1: a record; 0: end of input; <0: an error.
 * Empty lines and lines starting with '#' are skipped.
 */
static int
next_rec(struct cur *c, struct rec *r)
{
	size_t o = 0, start_pos;
	int e;

	for (;;) {
		if (c->pos >= c->len)
			return 0;
		if (c->p[c->pos] == '#') {
			while (c->pos < c->len && c->p[c->pos] != '\n')
				c->pos++;
			if (c->pos < c->len) {
				c->pos++;
				c->line++;
			}
			continue;
		}
		if (eol(c, &e)) {
			if (e != 0)
				return e;
			continue;
		}
		break;
	}
	r->line = c->line;
	r->nf = 0;
	start_pos = c->pos;
	for (;;) {
		char *field = r->buf + o;
		if (r->nf == AMTCA_CSV_FIELDS_MAX)
			return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: more "
			    "than %d fields", r->line, AMTCA_CSV_FIELDS_MAX);
		while (c->pos < c->len && is_blank(c->p[c->pos]))
			c->pos++;
		if (c->pos < c->len && c->p[c->pos] == '"') {
			c->pos++;
			for (;;) {
				char ch;

				if (c->pos >= c->len)
					return amtca_fail(AMTCA_E_USAGE, "hosts file "
					    "line %u: a quoted field is not closed",
					    r->line);
				ch = c->p[c->pos++];
				if (ch == '"') {
					if (c->pos < c->len && c->p[c->pos] == '"')
						c->pos++;	/* "" is one quote */
					else
						break;
				} else if (ch == '\n' || ch == '\r')
					return amtca_fail(AMTCA_E_USAGE, "hosts file "
					    "line %u: a line break inside a quoted field "
					    "(no column may hold one)", r->line);
				else if (ch == '\0')
					return amtca_fail(AMTCA_E_USAGE, "hosts file "
					    "line %u: a NUL byte", r->line);
				if (o >= AMTCA_CSV_LINE_MAX)
					goto toolong;
				r->buf[o++] = ch;
			}
			while (c->pos < c->len && is_blank(c->p[c->pos]))
				c->pos++;
			if (c->pos < c->len && c->p[c->pos] != ',' &&
			    c->p[c->pos] != '\n' && c->p[c->pos] != '\r')
				return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: "
				    "text after a closing quote", r->line);
		} else {
			while (c->pos < c->len && c->p[c->pos] != ',' &&
			    c->p[c->pos] != '\n' && c->p[c->pos] != '\r') {
				char ch = c->p[c->pos++];

				if (ch == '"')
					return amtca_fail(AMTCA_E_USAGE, "hosts file "
					    "line %u: a quote inside an unquoted field "
					    "(quote the whole field and double the quote)",
					    r->line);
				if (ch == '\0')
					return amtca_fail(AMTCA_E_USAGE, "hosts file "
					    "line %u: a NUL byte", r->line);
				if (o >= AMTCA_CSV_LINE_MAX)
					goto toolong;
				r->buf[o++] = ch;
			}
			/* Trailing blanks of an unquoted field are not data. */
			while (r->buf + o > field && is_blank(r->buf[o - 1]))
				o--;
		}
		if (o >= AMTCA_CSV_LINE_MAX)
			goto toolong;
		r->buf[o++] = '\0';
		r->f[r->nf++] = field;
		if (c->pos - start_pos > AMTCA_CSV_LINE_MAX)
			goto toolong;
		if (c->pos < c->len && c->p[c->pos] == ',') {
			c->pos++;
			continue;
		}
		(void)eol(c, &e);
		return e != 0 ? e : 1;
	}
toolong:
	return amtca_fail(AMTCA_E_LIMIT, "hosts file line %u: longer than %d "
	    "bytes", r->line, AMTCA_CSV_LINE_MAX);
}

/* Prefix the detail of a callee's failure `r` with the line. */
static int
fail_line(int r, unsigned line, const char *what)
{
	char detail[512];

	snprintf(detail, sizeof(detail), "%s", amtca_errmsg(r));
	return amtca_fail(r, "hosts file line %u: %s%s%s", line, what,
	    *what != '\0' ? ": " : "", detail);
}

static int
user_ok(const char *u)
{
	size_t i, n = strlen(u);

	if (n == 0 || n > AMTCA_AMT_USER_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)u[i];

		/* It goes into a Digest header between quotes. */
		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
			return 0;
	}
	return 1;
}

/* An absolute path for `p`, relative ones taken from `base` (or the cwd). */
static int
abs_path(const char *p, const char *base, char **out)
{
	char cwd[PATH_MAX];
	int n;

	*out = NULL;
	if (p[0] == '/') {
		if (strlen(p) >= PATH_MAX)
			return AMTCA_E_LIMIT;
		return (*out = strdup(p)) == NULL ? AMTCA_E_NOMEM : 0;
	}
	if (base == NULL) {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return amtca_fail(AMTCA_E_IO, "cannot get the current "
			    "directory: %s", strerror(errno));
		base = cwd;
	}
	if ((n = asprintf(out, "%s/%s", base, p)) < 0) {
		*out = NULL;
		return AMTCA_E_NOMEM;
	}
	if (n >= PATH_MAX) {
		free(*out);
		*out = NULL;
		return AMTCA_E_LIMIT;
	}
	return 0;
}

/*
 * A password file must be ours (StrictModes, as a PIN file), a regular
 * file, not accessible to others, and readable now.  It is not read here.
 */
static int
check_pwfile(const char *path)
{
	struct stat sb;
	int fd, r;

	if ((r = amtca_path_check_secure(path, "password file")) != 0)
		return r;
	if (stat(path, &sb) == -1)
		return amtca_fail(AMTCA_E_IO, "cannot check password file %s: %s",
		    path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return amtca_fail(AMTCA_E_CONFIG, "password file %s is not a "
		    "regular file", path);
	if ((sb.st_mode & S_IRWXO) != 0)
		return amtca_fail(AMTCA_E_CONFIG, "password file %s is accessible "
		    "to others (mode %04o); fix it with 'chmod o-rwx %s'", path,
		    (unsigned)(sb.st_mode & 07777), path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return amtca_fail(AMTCA_E_IO, "cannot read password file %s: %s",
		    path, strerror(errno));
	close(fd);
	return 0;
}

void
hosts_free(struct fleet_host *h, size_t n)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(h[i].fqdn);
		free(h[i].address);
		free(h[i].user);
		free(h[i].password_file);
		free(h[i].credential);
	}
	free(h);
}

static int
port_field(const char *v, unsigned line, const char *name, int *out)
{
	long n;

	*out = 0;
	if (*v == '\0')
		return 0;
	if (amtca_parse_long(v, 1, 65535, &n) != 0)
		return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: %s \"%.32s\" "
		    "is not a port (1..65535)", line, name, v);
	*out = (int)n;
	return 0;
}

/* One row into h (which owns what it holds, even on error). */
static int
parse_row(const struct rec *r, const int *at, const struct hosts_defaults *d,
    const struct ca_policy *pol, const char *base, struct fleet_host *h)
{
	char fq[AMTCA_FQDN_MAX + 1], nodot[AMTCA_FQDN_MAX + 1];
	const char *v;
	size_t len;
	int r2;

	h->line = r->line;
	v = r->f[at[COL_FQDN]];
	if (*v == '\0')
		return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: fqdn is empty",
		    r->line);
	if (strchr(v, '*') != NULL)
		return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: fqdn \"%.64s\" "
		    "is a wildcard, not a device", r->line, v);
	/* The root dot ("host.example.") names the same device. */
	len = strlen(v);
	if (len > 1 && len <= AMTCA_FQDN_MAX + 1 && v[len - 1] == '.' &&
	    v[len - 2] != '.') {
		memcpy(nodot, v, len - 1);
		nodot[len - 1] = '\0';
		v = nodot;
	}
	if ((r2 = ca_fqdn_check(v, pol, fq)) != 0)
		return fail_line(r2, r->line, "fqdn");
	if ((h->fqdn = strdup(fq)) == NULL)
		return AMTCA_E_NOMEM;

	v = r->f[at[COL_ADDRESS]];
	if (*v != '\0') {
		if (!net_is_ip(v))
			return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: address "
			    "\"%.64s\" is not an IP address (leave it empty to use "
			    "DNS)", r->line, v);
		if ((h->address = strdup(v)) == NULL)
			return AMTCA_E_NOMEM;
	}

	v = r->f[at[COL_USER]];
	if (*v == '\0')
		v = d->user;
	if (v == NULL || *v == '\0')
		return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: no user (fill "
		    "the user column or give --user)", r->line);
	if (!user_ok(v))
		return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: user is longer "
		    "than %d bytes or holds a control character, quote or "
		    "backslash", r->line, AMTCA_AMT_USER_MAX);
	if ((h->user = strdup(v)) == NULL)
		return AMTCA_E_NOMEM;

	v = r->f[at[COL_PWFILE]];
	if (strncmp(v, STORE_CRED_REF_PREFIX, strlen(STORE_CRED_REF_PREFIX)) == 0)
		return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: %.80s is a "
		    "sealed credential, which only amtca serve's jobs use; amtca "
		    "fleet needs a password file", r->line, v);
	if (*v != '\0') {
		r2 = abs_path(v, base, &h->password_file);
		h->password_file_named = 1;
	} else if (d->password_file != NULL && *d->password_file != '\0')
		r2 = abs_path(d->password_file, NULL, &h->password_file);
	else
		return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: no password "
		    "file (fill the password_file column or give --password-file)",
		    r->line);
	if (r2 == AMTCA_E_LIMIT)
		return amtca_fail(r2, "hosts file line %u: password_file path is "
		    "too long", r->line);
	if (r2 != 0)
		return r2;

	if ((r2 = port_field(at[COL_PORT] >= 0 ? r->f[at[COL_PORT]] : "",
	    r->line, "port", &h->port)) != 0 ||
	    (r2 = port_field(at[COL_TLS_PORT] >= 0 ? r->f[at[COL_TLS_PORT]] : "",
	    r->line, "tls_port", &h->tls_port)) != 0)
		return r2;

	v = at[COL_PIN] >= 0 ? r->f[at[COL_PIN]] : "";
	if (*v != '\0') {
		if (cred_pin_parse(v, h->tls_pin) != 0)
			return amtca_fail(AMTCA_E_USAGE, "hosts file line %u: "
			    "tls_pin_sha256 is not a SHA-256 (64 hex digits)",
			    r->line);
		h->has_pin = 1;
	}
	return 0;
}

static int
cmp_fqdn(const void *a, const void *b)
{
	const struct fleet_host *x = *(struct fleet_host *const *)a;
	const struct fleet_host *y = *(struct fleet_host *const *)b;
	int c = strcmp(x->fqdn, y->fqdn);

	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int
parse_at(const char *buf, size_t len, const struct hosts_defaults *d,
    const char *base, struct fleet_host **out, size_t *n)
{
	struct cur c = { buf, len, 0, 1 };
	struct rec *r = NULL;
	struct fleet_host *h = NULL, **idx = NULL;
	struct ca_policy anyp;
	const struct ca_policy *pol = d->policy;
	const char *last_pw = NULL;
	size_t nh = 0, cap = 0, i, j, ncols;
	int at[COL__N], rr, ret = AMTCA_E_INTERNAL;
	unsigned hdr_line;

	*out = NULL;
	*n = 0;
	if (pol == NULL) {
		ca_policy_init(&anyp);
		pol = &anyp;
	}
	if (len > AMTCA_HOSTS_FILE_MAX) {
		ret = amtca_fail(AMTCA_E_LIMIT, "hosts file is larger than %d bytes",
		    AMTCA_HOSTS_FILE_MAX);
		goto out;
	}
	/* A UTF-8 byte order mark, as spreadsheets write it, is not a column. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		c.pos = 3;
	if ((r = malloc(sizeof(*r))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}

	if ((rr = next_rec(&c, r)) <= 0) {
		ret = rr < 0 ? rr : amtca_fail(AMTCA_E_USAGE, "hosts file is empty: "
		    "it needs a header line (fqdn,address,user,password_file)");
		goto out;
	}
	hdr_line = r->line;
	for (i = 0; i < COL__N; i++)
		at[i] = -1;
	for (i = 0; i < r->nf; i++) {
		for (j = 0; j < COL__N; j++)
			if (strcasecmp(r->f[i], cols[j].name) == 0)
				break;
		if (j == COL__N) {
			ret = amtca_fail(AMTCA_E_USAGE, "hosts file line %u: unknown "
			    "column \"%.64s\" (known: fqdn, address, user, "
			    "password_file, port, tls_port, tls_pin_sha256)",
			    hdr_line, r->f[i]);
			goto out;
		}
		if (at[j] >= 0) {
			ret = amtca_fail(AMTCA_E_USAGE, "hosts file line %u: column "
			    "\"%s\" appears twice", hdr_line, cols[j].name);
			goto out;
		}
		at[j] = (int)i;
	}
	for (j = 0; j < COL__N; j++) {
		if (cols[j].required && at[j] < 0) {
			ret = amtca_fail(AMTCA_E_USAGE, "hosts file line %u: the "
			    "header has no \"%s\" column (required: fqdn, address, "
			    "user, password_file)", hdr_line, cols[j].name);
			goto out;
		}
	}
	ncols = r->nf;

	while ((rr = next_rec(&c, r)) > 0) {
		if (r->nf != ncols) {
			ret = amtca_fail(AMTCA_E_USAGE, "hosts file line %u: %zu "
			    "field%s, the header has %zu", r->line, r->nf,
			    r->nf == 1 ? "" : "s", ncols);
			goto out;
		}
		if (nh == AMTCA_FLEET_HOSTS_MAX) {
			ret = amtca_fail(AMTCA_E_LIMIT, "hosts file line %u: more "
			    "than %d devices", r->line, AMTCA_FLEET_HOSTS_MAX);
			goto out;
		}
		if (nh == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			struct fleet_host *t;

			if (ncap > AMTCA_FLEET_HOSTS_MAX)
				ncap = AMTCA_FLEET_HOSTS_MAX;
			if ((t = realloc(h, ncap * sizeof(*h))) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			h = t;
			cap = ncap;
		}
		memset(&h[nh], 0, sizeof(h[nh]));
		nh++;
		if ((rr = parse_row(r, at, d, pol, base, &h[nh - 1])) != 0) {
			ret = rr;
			goto out;
		}
		if (d->check_files && (last_pw == NULL ||
		    strcmp(last_pw, h[nh - 1].password_file) != 0)) {
			if ((rr = check_pwfile(h[nh - 1].password_file)) != 0) {
				ret = fail_line(rr, r->line, "");
				goto out;
			}
			last_pw = h[nh - 1].password_file;
		}
	}
	if (rr < 0) {
		ret = rr;
		goto out;
	}
	if (nh == 0) {
		ret = amtca_fail(AMTCA_E_USAGE, "hosts file lists no devices "
		    "(only a header)");
		goto out;
	}

	/* Duplicates, case-insensitively (fqdn is lower case by now). */
	if ((idx = calloc(nh, sizeof(*idx))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < nh; i++)
		idx[i] = &h[i];
	qsort(idx, nh, sizeof(*idx), cmp_fqdn);
	for (i = 1; i < nh; i++) {
		if (strcmp(idx[i - 1]->fqdn, idx[i]->fqdn) == 0) {
			ret = amtca_fail(AMTCA_E_USAGE, "hosts file line %u: device "
			    "%s is already on line %u", idx[i]->line, idx[i]->fqdn,
			    idx[i - 1]->line);
			goto out;
		}
	}

	*out = h;
	*n = nh;
	h = NULL;
	nh = 0;
	ret = 0;
out:
	hosts_free(h, nh);
	free(idx);
	free(r);
	return ret;
}

int
hosts_parse(const char *buf, size_t len, const struct hosts_defaults *d,
    struct fleet_host **out, size_t *n)
{
	return parse_at(buf, len, d, NULL, out, n);
}

int
hosts_load(const char *path, const struct hosts_defaults *d,
    struct fleet_host **out, size_t *n)
{
	struct hosts_defaults dd = *d;
	unsigned char *buf = NULL;
	char *real = NULL, *slash;
	size_t len = 0;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*n = 0;
	if ((r = amtca_file_read(path, AMTCA_HOSTS_FILE_MAX, &buf, &len)) != 0) {
		if (r == AMTCA_E_LIMIT)
			ret = amtca_fail(r, "hosts file %s is larger than %d bytes",
			    path, AMTCA_HOSTS_FILE_MAX);
		else
			ret = r;	/* its detail names the file */
		goto out;
	}
	if ((real = realpath(path, NULL)) == NULL) {
		ret = amtca_fail(AMTCA_E_IO, "cannot resolve hosts file %s: %s",
		    path, strerror(errno));
		goto out;
	}
	if ((slash = strrchr(real, '/')) != NULL)
		*(slash == real ? slash + 1 : slash) = '\0';
	dd.check_files = 1;
	ret = parse_at((const char *)buf, len, &dd, real, out, n);
out:
	free(real);
	free(buf);
	return ret;
}
