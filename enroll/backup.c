/*
 * Backup and restore of a CA home (enroll/backup.h, docs/backup.md).
 *
 * The stores are copied online through store_backup() (one snapshot each;
 * writers go on), the embedded token through hsm_softhsm_copy() (under
 * the token lock) and checked by logging in to the copy; every other file
 * is a plain copy of what init wrote.  The manifest is written last and
 * covers every file in the backup, so a restore can refuse anything
 * changed, missing or added, naming it.
 */
#include "enroll/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"
#include "hsm/admin.h"
#include "hsm/hsm.h"

#define SHA256_HEX 64

/* Files under a directory, relative paths. */
struct flist {
	char **path;
	size_t n;
};

static void
flist_free(struct flist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->path[i]);
	free(l->path);
	memset(l, 0, sizeof(*l));
}

static int
flist_add(struct flist *l, const char *path)
{
	char **np;

	if (l->n == AMTCA_BACKUP_FILES_MAX)
		return amtca_fail(AMTCA_E_LIMIT, "a backup holds at most %d files",
		    AMTCA_BACKUP_FILES_MAX);
	if ((np = realloc(l->path, (l->n + 1) * sizeof(*np))) == NULL)
		return AMTCA_E_NOMEM;
	l->path = np;
	if ((l->path[l->n] = strdup(path)) == NULL)
		return AMTCA_E_NOMEM;
	l->n++;
	return 0;
}

/*
 * A relative path as a manifest may name it: no leading '/', no empty,
 * "." or ".." component, printable ASCII without '\\' (sha256sum would
 * escape it).
 */
static int
rel_path_ok(const char *p)
{
	const char *c, *seg = p;

	if (*p == '\0' || *p == '/' || strlen(p) >= PATH_MAX / 2)
		return 0;
	for (c = p;; c++) {
		if (*c == '/' || *c == '\0') {
			size_t n = (size_t)(c - seg);

			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return 0;
			if (*c == '\0')
				return 1;
			seg = c + 1;
			continue;
		}
		if (*c < 0x20 || *c > 0x7e || *c == '\\')
			return 0;
	}
}

/* Every regular file under root/rel (sorted); anything else is refused. */
static int
walk(const char *root, const char *rel, int depth, struct flist *l)
{
	struct dirent **ents = NULL;
	char *dir = NULL, *p = NULL, *r = NULL;
	struct stat sb;
	int i, n = -1, rr, ret = AMTCA_E_INTERNAL;

	if (depth > AMTCA_BACKUP_DEPTH) {
		ret = amtca_fail(AMTCA_E_BACKUP, "%s/%s is nested too deep for a "
		    "backup", root, rel);
		goto out;
	}
	if (asprintf(&dir, "%s%s%s", root, *rel ? "/" : "", rel) < 0) {
		dir = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((n = scandir(dir, &ents, NULL, alphasort)) < 0) {
		ret = amtca_fail(AMTCA_E_IO, "cannot read %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		free(p);
		free(r);
		p = r = NULL;
		if (asprintf(&p, "%s/%s", dir, name) < 0 ||
		    asprintf(&r, "%s%s%s", rel, *rel ? "/" : "", name) < 0) {
			p = r = NULL;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (!rel_path_ok(r)) {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s: a name a backup "
			    "cannot hold", p);
			goto out;
		}
		if (lstat(p, &sb) != 0) {
			ret = amtca_fail(AMTCA_E_IO, "cannot examine %s: %s", p,
			    strerror(errno));
			goto out;
		}
		if (S_ISDIR(sb.st_mode))
			rr = walk(root, r, depth + 1, l);
		else if (S_ISREG(sb.st_mode))
			rr = flist_add(l, r);
		else
			rr = amtca_fail(AMTCA_E_BACKUP, "%s is not a regular file "
			    "or directory", p);
		if (rr != 0) {
			ret = rr;
			goto out;
		}
	}
	ret = 0;
out:
	if (ents != NULL) {
		for (i = 0; i < n; i++)
			free(ents[i]);
		free(ents);
	}
	free(dir);
	free(p);
	free(r);
	return ret;
}

/* SHA-256 of a file, lowercase hex. */
static int
sha256_file(const char *path, char hex[SHA256_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char buf[16384], md[32];
	EVP_MD_CTX *ctx = NULL;
	unsigned int mdlen = 0;
	ssize_t n;
	size_t i;
	int fd = -1, ret = AMTCA_E_INTERNAL;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		ret = amtca_fail(AMTCA_E_IO, "cannot read %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			ret = amtca_fail(AMTCA_E_IO, "cannot read %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			ret = AMTCA_E_INTERNAL;
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != sizeof(md)) {
		ret = AMTCA_E_INTERNAL;
		goto out;
	}
	for (i = 0; i < sizeof(md); i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[SHA256_HEX] = '\0';
	ret = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	EVP_MD_CTX_free(ctx);
	if (fd != -1)
		close(fd);
	return ret;
}

/* "a/b" joined; NULL on allocation failure. */
static char *
join(const char *a, const char *b)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		return NULL;
	return p;
}

/* `path` inside `dir` (both absolute, canonical): its relative part. */
static const char *
inside(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	if (path == NULL || strncmp(path, dir, n) != 0 || path[n] != '/' ||
	    path[n + 1] == '\0')
		return NULL;
	return path + n + 1;
}

/* mkdir -p of the directory holding `path` (0700). */
static int
mkparent(const char *path)
{
	char *c = strdup(path);
	int r;

	if (c == NULL)
		return AMTCA_E_NOMEM;
	r = amtca_mkdirs(dirname(c), 0700);
	free(c);
	return r;
}

/* Does `dir` exist and hold anything?  1 yes, 0 no (or missing). */
static int
nonempty(const char *dir)
{
	struct dirent *e;
	DIR *d;
	int any = 0;

	if ((d = opendir(dir)) == NULL)
		return 0;
	while (!any && (e = readdir(d)) != NULL)
		any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return any;
}

/* Remove what a failed run made in `dir`; recreate it if it was there. */
static void
undo_dir(const char *dir, int existed)
{
	amtca_rmtree(dir);
	if (existed)
		(void)mkdir(dir, 0700);
}

/* Log in to the copied token and find the intermediate's key in it. */
static int
token_check(const struct home *h, const char *conf)
{
	struct hsm_open_opts ho;
	struct hsm *t = NULL;
	struct hsm_key *k = NULL;
	const char *label = h->conf.intermediate_key != NULL ?
	    h->conf.intermediate_key : KEY_LABEL_INTER;
	char prev[HOME_INTER_LABEL_MAX];
	int r, ret = AMTCA_E_INTERNAL;

	memset(&ho, 0, sizeof(ho));
	ho.module = h->conf.module;
	ho.token_uri = h->conf.token_uri;
	ho.pin_file = h->conf.pin_file;
	ho.softhsm_conf = conf;
	if ((r = hsm_open(&ho, &t)) != 0 ||
	    (r = hsm_key_find(t, label, &k)) != 0) {
		ret = amtca_fail(r, "the token copied into the backup does not "
		    "open: %s", amtca_errmsg(r));
		goto out;
	}
	/* A rotation that stopped before its switch: the previous key
	 * (docs/rotation.md). */
	if (EVP_PKEY_eq(hsm_key_public(k), X509_get0_pubkey(h->inter)) != 1 &&
	    home_inter_label_gen(label) > 1) {
		home_inter_label(home_inter_label_gen(label) - 1, prev);
		hsm_key_free(k);
		k = NULL;
		if ((r = hsm_key_find(t, prev, &k)) != 0) {
			ret = amtca_fail(r, "the token copied into the backup "
			    "lacks the issuing key: %s", amtca_errmsg(r));
			goto out;
		}
	}
	if (EVP_PKEY_eq(hsm_key_public(k), X509_get0_pubkey(h->inter)) != 1) {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "the issuing key in the copied "
		    "token does not match %s", HOME_INTER_PEM);
		goto out;
	}
	ret = 0;
out:
	hsm_key_free(k);
	hsm_free(t);
	return ret;
}

/* The manifest: one "hex  path" line per file under `dir`, but itself. */
static int
manifest_write(const char *dir, size_t *nfiles)
{
	struct flist l;
	char hex[SHA256_HEX + 1], *p = NULL, *text = NULL, *nt;
	size_t i, len = 0;
	int r, ret = AMTCA_E_INTERNAL;

	memset(&l, 0, sizeof(l));
	if ((r = walk(dir, "", 0, &l)) != 0) {
		ret = r;
		goto out;
	}
	if ((text = strdup("")) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < l.n; i++) {
		if (strcmp(l.path[i], BACKUP_MANIFEST) == 0)
			continue;
		free(p);
		if ((p = join(dir, l.path[i])) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((r = sha256_file(p, hex)) != 0) {
			ret = r;
			goto out;
		}
		if (asprintf(&nt, "%s%s  %s\n", text, hex, l.path[i]) < 0) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		free(text);
		text = nt;
		len++;
	}
	free(p);
	if ((p = join(dir, BACKUP_MANIFEST)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = amtca_file_write(p, text, strlen(text), 0600, 1)) != 0) {
		ret = r;
		goto out;
	}
	*nfiles = len;
	ret = 0;
out:
	flist_free(&l);
	free(p);
	free(text);
	return ret;
}

/* Copy the home's top-level files (configuration, certificates). */
static int
copy_top(const char *home, const char *out)
{
	struct dirent *e;
	struct stat sb;
	char *s = NULL, *d = NULL;
	DIR *dir = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if ((dir = opendir(home)) == NULL) {
		ret = amtca_fail(AMTCA_E_IO, "cannot read %s: %s", home,
		    strerror(errno));
		goto out;
	}
	while ((e = readdir(dir)) != NULL) {
		/* The old layout's store is copied online, never as a file. */
		if (e->d_name[0] == '.' ||
		    strncmp(e->d_name, HOME_DB, strlen(HOME_DB)) == 0)
			continue;
		free(s);
		free(d);
		if ((s = join(home, e->d_name)) == NULL ||
		    (d = join(out, e->d_name)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (lstat(s, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		if ((r = amtca_file_copy(s, d, sb.st_mode & 0644, NULL)) != 0) {
			ret = r;
			goto out;
		}
	}
	ret = 0;
out:
	if (dir != NULL)
		closedir(dir);
	free(s);
	free(d);
	return ret;
}

static int
info_write(const char *out, const struct home *h, int token, int pin)
{
	char *p = NULL, *text = NULL, when[64];
	time_t now = time(NULL);
	struct tm tm;
	int ret;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if ((p = join(out, BACKUP_INFO)) == NULL ||
	    asprintf(&text, "# amtca backup; see docs/backup.md\n"
	    "format = %d\nhome_id = %s\ncreated = %s\nlayout = %s\n"
	    "token = %s\npin = %s\n", BACKUP_FORMAT,
	    h->conf.home_id != NULL ? h->conf.home_id : "none", when,
	    h->split ? "keys+state" : "single",
	    token ? "embedded SoftHSM token, copied and checked" :
	    "not included (a vendor module's keys stay in that HSM)",
	    pin ? "included" : "not included") < 0) {
		free(p);
		return AMTCA_E_NOMEM;
	}
	ret = amtca_file_write(p, text, strlen(text), 0600, 1);
	free(p);
	free(text);
	return ret;
}

int
backup_make(const char *home_dir, const char *out_dir,
    const struct backup_opts *o, struct backup_result *res)
{
	struct home *h = NULL;
	struct stat sb;
	char out[PATH_MAX], *p = NULL, *q = NULL, *tokdir = NULL, *tokconf = NULL;
	const char *rel, *skip;
	int existed = 0, made = 0, r, ret = AMTCA_E_INTERNAL;

	memset(res, 0, sizeof(*res));
	if ((r = home_open(home_dir, HOME_STORE, &h)) != 0) {
		ret = r;
		goto out;
	}
	/*
	 * A shared store is the database's to back up, consistently for every
	 * node at once; a copy of one node's home beside it would restore
	 * into a second CA writing the same records.  The token of such a
	 * CA is a network HSM's, backed up by its vendor's tools.
	 */
	if (h->conf.store != NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "the CA's records are in the "
		    "shared store %s: back it up with pg_dump (docs/deployment.md), "
		    "%s; amtca backup copies homes with SQLite stores",
		    h->conf.store, h->conf.softhsm_conf != NULL ? "and the "
		    "embedded token (keys/softhsm) by copying it while amtca is "
		    "stopped" : "the token with its HSM's own tools");
		goto out;
	}
	if (h->conf.home_id != NULL)
		snprintf(res->home_id, sizeof(res->home_id), "%s", h->conf.home_id);
	res->split = h->split;
	if (lstat(out_dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode) || nonempty(out_dir)) {
			ret = amtca_fail(AMTCA_E_EXISTS, "%s already exists and is "
			    "not an empty directory; give a new one", out_dir);
			goto out;
		}
		existed = 1;
	} else if ((r = amtca_mkdirs(out_dir, 0700)) != 0) {
		ret = r;
		goto out;
	}
	made = 1;
	if (chmod(out_dir, 0700) != 0 || realpath(out_dir, out) == NULL) {
		ret = amtca_fail(AMTCA_E_IO, "cannot use %s: %s", out_dir,
		    strerror(errno));
		goto out;
	}
	if ((r = amtca_path_check_secure(out, "backup directory")) != 0) {
		ret = r;
		goto out;
	}
	if (inside(h->dir, out) != NULL || strcmp(h->dir, out) == 0) {
		ret = amtca_fail(AMTCA_E_USAGE, "the backup directory %s is inside "
		    "the CA home; put it elsewhere", out);
		goto out;
	}

	/*
	 * The embedded token first, under its lock: whatever the token holds
	 * that refers to the records (the audit trail's anchor) is then never
	 * ahead of the records' snapshot taken after it.
	 */
	skip = o->include_pin ? NULL : h->conf.pin_file;
	if (h->conf.softhsm_conf != NULL) {
		if ((tokdir = strdup(h->conf.softhsm_conf)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((rel = inside(h->dir, dirname(tokdir))) == NULL) {
			ret = amtca_fail(AMTCA_E_CONFIG, "the SoftHSM token %s is "
			    "not inside the CA home; back it up with the HSM's "
			    "own tools", h->conf.softhsm_conf);
			goto out;
		}
		free(p);
		free(q);
		if ((p = join(out, rel)) == NULL ||
		    (q = join(p, basename(h->conf.softhsm_conf))) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((r = mkparent(p)) != 0 ||
		    (r = hsm_softhsm_copy(h->conf.softhsm_conf, p, skip)) != 0) {
			ret = r;
			goto out;
		}
		res->token = 1;
		tokconf = q;
		q = NULL;
	}
	/* The records: one snapshot per store, writers going on meanwhile. */
	free(p);
	free(q);
	p = q = NULL;
	if (h->split) {
		if ((p = join(out, HOME_KEYS_DIR)) == NULL ||
		    (q = join(out, HOME_STATE_DIR)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((mkdir(p, 0700) != 0 && errno != EEXIST) ||
		    mkdir(q, 0700) != 0) {
			ret = amtca_fail(AMTCA_E_IO, "cannot create %s: %s", p,
			    strerror(errno));
			goto out;
		}
		free(p);
		free(q);
		if ((p = join(out, HOME_CA_DB)) == NULL ||
		    (q = join(out, HOME_STATE_DB)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((r = store_backup(h->store, p)) != 0 ||
		    (r = store_backup(h->state, q)) != 0) {
			ret = r;
			goto out;
		}
	} else {
		if ((p = join(out, HOME_DB)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((r = store_backup(h->state, p)) != 0) {
			ret = r;
			goto out;
		}
	}
	if ((r = copy_top(h->dir, out)) != 0) {
		ret = r;
		goto out;
	}
	/* The copy opens with the home's PIN and holds the issuing key. */
	if (res->token && (r = token_check(h, tokconf)) != 0) {
		ret = r;
		goto out;
	}

	if (o->include_pin) {
		char *src = NULL;
		const char *pin = h->conf.pin_file;

		if (pin == NULL && (r = hsm_uri_pin_path(h->conf.token_uri,
		    &src)) != 0) {
			ret = r;
			goto out;
		}
		if (pin == NULL)
			pin = src;
		free(p);
		p = NULL;
		if ((rel = inside(h->dir, pin)) == NULL)
			r = amtca_fail(AMTCA_E_CONFIG, "the PIN file %s is not "
			    "inside the CA home; keep it with the HSM's own "
			    "backup", pin != NULL ? pin : "(none)");
		else if ((p = join(out, rel)) == NULL)
			r = AMTCA_E_NOMEM;
		/* Copied with the token when it lives there. */
		else if (lstat(p, &sb) != 0) {
			if ((r = mkparent(p)) == 0)
				r = amtca_file_copy(pin, p, 0600, NULL);
		} else
			r = 0;
		free(src);
		if (r != 0) {
			ret = r;
			goto out;
		}
		res->pin = 1;
	}
	if ((r = info_write(out, h, res->token, res->pin)) != 0 ||
	    (r = manifest_write(out, &res->nfiles)) != 0) {
		ret = r;
		goto out;
	}
	made = 0;
	ret = 0;
out:
	if (made)
		undo_dir(out_dir, existed);
	home_free(h);
	free(p);
	free(q);
	free(tokdir);
	free(tokconf);
	return ret;
}

/* ---- restore ---- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct backup_entry *)a)->path,
	    ((const struct backup_entry *)b)->path);
}

void
backup_manifest_free(struct backup_manifest *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++)
		free(m->e[i].path);
	free(m->e);
	free(m);
}

int
backup_manifest_parse(const char *text, size_t len, const char *name,
    struct backup_manifest **out)
{
	struct backup_manifest *m = NULL;
	struct backup_entry *ne;
	const char *line = text, *end = text + len, *nl;
	char *path = NULL;
	size_t lineno = 0, n, i;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (; line < end; line = nl + 1) {
		lineno++;
		if ((nl = memchr(line, '\n', (size_t)(end - line))) == NULL) {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s:%zu: the last line does "
			    "not end in a newline", name, lineno);
			goto out;
		}
		n = (size_t)(nl - line);
		if (n < SHA256_HEX + 3 || line[SHA256_HEX] != ' ' ||
		    line[SHA256_HEX + 1] != ' ') {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s:%zu: not a \"SHA-256  "
			    "path\" line", name, lineno);
			goto out;
		}
		for (i = 0; i < SHA256_HEX; i++)
			if (!((line[i] >= '0' && line[i] <= '9') ||
			    (line[i] >= 'a' && line[i] <= 'f')))
				break;
		free(path);
		if ((path = strndup(line + SHA256_HEX + 2,
		    n - SHA256_HEX - 2)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (i != SHA256_HEX || strlen(path) != n - SHA256_HEX - 2 ||
		    !rel_path_ok(path)) {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s:%zu: not a \"SHA-256  "
			    "path\" line", name, lineno);
			goto out;
		}
		if (m->n == AMTCA_BACKUP_FILES_MAX) {
			ret = amtca_fail(AMTCA_E_LIMIT, "%s: more than %d files",
			    name, AMTCA_BACKUP_FILES_MAX);
			goto out;
		}
		if ((ne = realloc(m->e, (m->n + 1) * sizeof(*ne))) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		m->e = ne;
		m->e[m->n].path = path;
		path = NULL;
		memcpy(m->e[m->n].sha256, line, SHA256_HEX);
		m->e[m->n].sha256[SHA256_HEX] = '\0';
		m->n++;
	}
	if (m->n > 0)
		qsort(m->e, m->n, sizeof(*m->e), cmp_entry);
	for (i = 1; i < m->n; i++)
		if (strcmp(m->e[i - 1].path, m->e[i].path) == 0) {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s names %s twice", name,
			    m->e[i].path);
			goto out;
		}
	*out = m;
	m = NULL;
	ret = 0;
out:
	free(path);
	backup_manifest_free(m);
	return ret;
}

/* Read and parse dir/BACKUP_MANIFEST. */
static int
manifest_read(const char *dir, struct backup_manifest **out)
{
	unsigned char *buf = NULL;
	char *path = NULL;
	size_t len;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((path = join(dir, BACKUP_MANIFEST)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = amtca_file_read(path, AMTCA_BACKUP_MANIFEST_MAX, &buf,
	    &len)) != 0) {
		ret = r == AMTCA_E_NOT_FOUND ? amtca_fail(AMTCA_E_BACKUP, "%s has "
		    "no %s: not an amtca backup", dir, BACKUP_MANIFEST) : r;
		goto out;
	}
	ret = backup_manifest_parse((const char *)buf, len, path, out);
out:
	free(buf);
	free(path);
	return ret;
}

/* The value of `key = value` in a conf text, or "" (at most HOME_ID_LEN). */
static void
conf_value(const char *text, const char *key, char out[HOME_ID_LEN + 1])
{
	const char *l = text, *v;
	size_t kl = strlen(key), n;

	out[0] = '\0';
	for (; l != NULL && *l != '\0'; l = strchr(l, '\n') ? strchr(l, '\n') + 1 :
	    NULL) {
		while (*l == ' ' || *l == '\t')
			l++;
		if (strncmp(l, key, kl) != 0)
			continue;
		v = l + kl;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v++ != '=')
			continue;
		while (*v == ' ' || *v == '\t')
			v++;
		n = strcspn(v, " \t\r\n#");
		if (n == HOME_ID_LEN) {
			memcpy(out, v, n);
			out[n] = '\0';
			if (!home_id_valid(out))
				out[0] = '\0';
		}
	}
}

/* The restored conf: the backup's, with this home's identity. */
static int
conf_reidentify(const char *conf, char from[HOME_ID_LEN + 1],
    char id[HOME_ID_LEN + 1])
{
	unsigned char *buf = NULL;
	char *text = NULL, *nt, *line, *save = NULL;
	size_t len;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = amtca_file_read(conf, AMTCA_CONF_MAX, &buf, &len)) != 0) {
		ret = r;
		goto out;
	}
	conf_value((char *)buf, "home_id", from);
	if ((r = home_id_new(id)) != 0) {
		ret = r;
		goto out;
	}
	if ((text = strdup("")) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (line = strtok_r((char *)buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		const char *t = line + strspn(line, " \t");

		if (strncmp(t, "home_id", 7) == 0 ||
		    strncmp(t, "restored_from", 13) == 0)
			continue;
		if (asprintf(&nt, "%s%s\n", text, line) < 0) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		free(text);
		text = nt;
	}
	if (asprintf(&nt, "%shome_id = %s\n%s%s%s", text, id,
	    from[0] ? "restored_from = " : "", from, from[0] ? "\n" : "") < 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	free(text);
	text = nt;
	ret = amtca_file_write(conf, text, strlen(text), 0644, 0);
out:
	free(buf);
	free(text);
	return ret;
}

int
backup_restore(const char *from, const char *home_dir,
    const struct restore_opts *o, struct restore_result *res)
{
	struct backup_manifest *man = NULL;
	struct flist have;
	struct home *h = NULL;
	struct stat sb;
	char src[PATH_MAX], dst[PATH_MAX], hex[SHA256_HEX + 1];
	char *s = NULL, *d = NULL, *pin = NULL, *pintext = NULL;
	const char *want;
	size_t i, j;
	int existed, made = 0, r, ret = AMTCA_E_INTERNAL;

	memset(res, 0, sizeof(*res));
	memset(&have, 0, sizeof(have));
	home_dir = home_default_dir(home_dir);
	if (realpath(from, src) == NULL) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "no backup at %s: %s", from,
		    strerror(errno));
		goto out;
	}
	if ((r = manifest_read(src, &man)) != 0 ||
	    (r = walk(src, "", 0, &have)) != 0) {
		ret = r;
		goto out;
	}
	/* Both sorted by strcmp (a walk's order is not): every file
	 * listed, nothing unlisted. */
	if (have.n > 0)
		qsort(have.path, have.n, sizeof(*have.path), cmp_str);
	for (i = j = 0; i < man->n || j < have.n;) {
		int c;

		if (j < have.n && strcmp(have.path[j], BACKUP_MANIFEST) == 0) {
			j++;
			continue;
		}
		c = i == man->n ? 1 : j == have.n ? -1 :
		    strcmp(man->e[i].path, have.path[j]);
		if (c < 0) {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s is missing from the "
			    "backup in %s; refusing to restore", man->e[i].path, src);
			goto out;
		}
		if (c > 0) {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s in the backup %s is not "
			    "in its manifest; refusing to restore", have.path[j],
			    src);
			goto out;
		}
		i++;
		j++;
	}
	for (i = 0; i < man->n; i++) {
		free(s);
		if ((s = join(src, man->e[i].path)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((r = sha256_file(s, hex)) != 0) {
			ret = r;
			goto out;
		}
		if (strcmp(hex, man->e[i].sha256) != 0) {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s in the backup %s has "
			    "changed since the backup was made (its SHA-256 differs "
			    "from the manifest); refusing to restore", man->e[i].path,
			    src);
			goto out;
		}
	}
	for (i = 0; i < man->n && strcmp(man->e[i].path, HOME_CONF) != 0; i++)
		;
	if (i == man->n) {
		ret = amtca_fail(AMTCA_E_BACKUP, "the backup in %s has no %s",
		    src, HOME_CONF);
		goto out;
	}

	existed = lstat(home_dir, &sb) == 0;
	if ((r = home_create(home_dir)) != 0) {
		ret = r;
		goto out;
	}
	made = 1;
	if (realpath(home_dir, dst) == NULL) {
		ret = amtca_fail(AMTCA_E_IO, "cannot use %s: %s", home_dir,
		    strerror(errno));
		goto out;
	}
	/* Copy, then check each copy (ours now) against the manifest. */
	for (i = 0; i < man->n; i++) {
		if (strcmp(man->e[i].path, BACKUP_INFO) == 0)
			continue;
		free(s);
		free(d);
		if ((s = join(src, man->e[i].path)) == NULL ||
		    (d = join(dst, man->e[i].path)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (lstat(s, &sb) != 0) {
			ret = amtca_fail(AMTCA_E_IO, "cannot examine %s: %s", s,
			    strerror(errno));
			goto out;
		}
		if ((r = mkparent(d)) != 0 ||
		    (r = amtca_file_copy(s, d, sb.st_mode & 0644, NULL)) != 0 ||
		    (r = sha256_file(d, hex)) != 0) {
			ret = r;
			goto out;
		}
		if (strcmp(hex, man->e[i].sha256) != 0) {
			ret = amtca_fail(AMTCA_E_BACKUP, "%s in the backup %s changed "
			    "while it was being restored; refusing", man->e[i].path,
			    src);
			goto out;
		}
		res->nfiles++;
	}
	free(d);
	if ((d = join(dst, HOME_CONF)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = conf_reidentify(d, res->from_id, res->home_id)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = home_open(dst, 0, &h)) != 0) {
		ret = r;
		goto out;
	}
	if (h->conf.softhsm_conf != NULL &&
	    (r = hsm_softhsm_relocate(h->conf.softhsm_conf)) != 0) {
		ret = r;
		goto out;
	}
	want = h->conf.pin_file;
	if (want == NULL && (r = hsm_uri_pin_path(h->conf.token_uri, &pin)) != 0) {
		ret = r;
		goto out;
	}
	if (want == NULL)
		want = pin;
	if (want != NULL)
		snprintf(res->pin_path, sizeof(res->pin_path), "%s", want);
	if (o->pin_file != NULL) {
		size_t n;

		if (want == NULL || inside(dst, want) == NULL) {
			ret = amtca_fail(AMTCA_E_CONFIG, "the restored %s names the "
			    "PIN file %s outside the home; put the PIN there "
			    "instead of --pin-file", HOME_CONF,
			    want != NULL ? want : "(none)");
			goto out;
		}
		if ((r = amtca_secret_read(o->pin_file, &pintext)) != 0) {
			ret = r;
			goto out;
		}
		n = strlen(pintext);
		pintext[n] = '\n';	/* the secret's buffer has room for it */
		r = mkparent(want);
		if (r == 0)
			r = amtca_file_write(want, pintext, n + 1, 0600, 0);
		pintext[n] = '\0';
		if (r != 0) {
			ret = r;
			goto out;
		}
		res->pin = 2;
	} else if (want != NULL && stat(want, &sb) == 0)
		res->pin = 1;
	home_free(h);
	h = NULL;
	/*
	 * With the PIN the restored CA opens as the signer does: the token
	 * logs in and its issuing key is the intermediate's.  Either way the
	 * audit trail gets "ca.restore" naming the new identity and the old
	 * one, so a fork is visible in it (sealed now with the token, else at
	 * the first open with it).
	 */
	if ((r = home_open(dst, HOME_STORE | (res->pin != 0 ? HOME_SIGNER : 0),
	    &h)) != 0) {
		ret = r;
		goto out;
	}
	res->checked = res->pin != 0;
	{
		char detail[96];

		snprintf(detail, sizeof(detail), "restored_from=%s",
		    res->from_id[0] ? res->from_id : "none");
		if ((r = store_audit_append(h->store, NULL, "ca.restore",
		    res->home_id, detail)) != 0) {
			ret = r;
			goto out;
		}
	}
	made = 0;
	ret = 0;
out:
	if (made)
		undo_dir(home_dir, existed);
	home_free(h);
	backup_manifest_free(man);
	flist_free(&have);
	amtca_secret_free(pintext);
	free(pin);
	free(s);
	free(d);
	return ret;
}
