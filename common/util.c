#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/limits.h"

static int
read_fd(int fd, size_t max, unsigned char **out, size_t *len)
{
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	ssize_t r;
	int ret = AMTCA_E_INTERNAL;

	for (;;) {
		if (n == cap) {
			unsigned char *nb;
			size_t ncap = cap ? cap * 2 : 4096;

			if (ncap > max + 1)
				ncap = max + 1;
			if (ncap <= cap) {
				ret = AMTCA_E_LIMIT;
				goto out;
			}
			if ((nb = malloc(ncap + 1)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			if (buf != NULL) {
				memcpy(nb, buf, n);
				OPENSSL_cleanse(buf, cap);
				free(buf);
			}
			buf = nb;
			cap = ncap;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = AMTCA_E_IO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			ret = AMTCA_E_LIMIT;
			goto out;
		}
	}
	if (buf == NULL && (buf = malloc(1)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
	ret = 0;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, cap);
		free(buf);
	}
	return ret;
}

int
amtca_file_read(const char *path, size_t max, unsigned char **out, size_t *len)
{
	int fd, r;

	*out = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return amtca_fail(errno == ENOENT ? AMTCA_E_NOT_FOUND : AMTCA_E_IO,
		    "cannot open %s: %s", path, strerror(errno));
	r = read_fd(fd, max, out, len);
	close(fd);
	if (r == AMTCA_E_LIMIT)
		return amtca_fail(r, "%s is larger than %zu bytes", path, max);
	if (r != 0)
		return amtca_fail(r, "cannot read %s", path);
	return 0;
}

int
amtca_secret_read(const char *path, char **out)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = amtca_file_read(path, AMTCA_SECRET_MAX, &buf, &len)) != 0) {
		if (r == AMTCA_E_LIMIT)
			return amtca_fail(r, "secret file %s is longer than %d bytes",
			    path, AMTCA_SECRET_MAX);
		return r;
	}
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0 || memchr(buf, '\0', len) != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
		return amtca_fail(AMTCA_E_CONFIG,
		    "secret file %s is empty or contains a NUL byte", path);
	}
	*out = (char *)buf;
	return 0;
}

void
amtca_secret_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static int
fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, ret = AMTCA_E_IO;

	if (copy == NULL)
		return AMTCA_E_NOMEM;
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		if (fsync(fd) == 0)
			ret = 0;
		close(fd);
	}
	free(copy);
	return ret;
}

/* Write all of buf to fd (restarting on EINTR and short writes). */
static int
write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	ssize_t w;

	while (len > 0) {
		if ((w = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * A fresh temp file beside `path`: "PATH.tmp.<16 random hex>", created
 * O_EXCL|O_NOFOLLOW so that nothing planted at a guessed name (a symlink, a
 * file of someone else's) is ever opened.  0600 until the caller fchmods.
 */
static int
tmp_create(const char *path, char **tmpout, int *fdout)
{
	unsigned char rnd[8];
	char *tmp = NULL;
	int fd = -1, tries, r;

	*tmpout = NULL;
	*fdout = -1;
	for (tries = 0; tries < AMTCA_TMP_TRIES; tries++) {
		if ((r = amtca_random(rnd, sizeof(rnd))) != 0)
			return r;
		if (asprintf(&tmp, "%s.tmp.%02x%02x%02x%02x%02x%02x%02x%02x", path,
		    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		    rnd[7]) == -1)
			return AMTCA_E_NOMEM;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
		if (fd != -1) {
			*tmpout = tmp;
			*fdout = fd;
			return 0;
		}
		if (errno != EEXIST) {
			r = amtca_fail(AMTCA_E_IO, "cannot create a temporary file "
			    "beside %s: %s", path, strerror(errno));
			free(tmp);
			return r;
		}
		free(tmp);
		tmp = NULL;
	}
	return amtca_fail(AMTCA_E_IO, "cannot create a temporary file beside %s: "
	    "every name tried exists", path);
}

/* Temp file, fsync, then link (exclusive) or rename into place. */
static int
write_atomic(const char *path, const void *buf, size_t len, mode_t mode,
    int exclusive)
{
	char *tmp = NULL;
	int fd = -1, r, ret = AMTCA_E_INTERNAL;

	if ((r = tmp_create(path, &tmp, &fd)) != 0) {
		ret = r;
		goto out;
	}
	if (fchmod(fd, mode) == -1 || write_all(fd, buf, len) == -1)
		goto io;
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto io;
	}
	fd = -1;
	if (exclusive) {
		/* link() fails if the target exists: no window for a race. */
		if (link(tmp, path) == -1) {
			ret = errno == EEXIST ?
			    amtca_fail(AMTCA_E_EXISTS, "%s already exists", path) :
			    amtca_fail(AMTCA_E_IO, "cannot create %s: %s", path,
			    strerror(errno));
			goto out;
		}
		unlink(tmp);
	} else if (rename(tmp, path) == -1)
		goto io;
	free(tmp);
	tmp = NULL;
	if (fsync_dir_of(path) != 0) {
		ret = amtca_fail(AMTCA_E_IO, "cannot sync directory of %s", path);
		goto out;
	}
	ret = 0;
	goto out;
io:
	ret = amtca_fail(AMTCA_E_IO, "cannot write %s: %s", path, strerror(errno));
out:
	if (fd != -1)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	return ret;
}

/*
 * Write through an existing character device or FIFO (never replace it).
 * O_NOFOLLOW: `path` was seen as no symlink, and must still be none.
 */
static int
write_through(const char *path, const void *buf, size_t len)
{
	struct stat sb;
	int fd, ret;

	if ((fd = open(path, O_WRONLY | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return amtca_fail(AMTCA_E_IO, "cannot open %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &sb) == -1 || !(S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode)))
		ret = amtca_fail(AMTCA_E_IO, "%s changed while it was opened; "
		    "not written", path);
	else if (write_all(fd, buf, len) == -1)
		ret = amtca_fail(AMTCA_E_IO, "cannot write %s: %s", path,
		    strerror(errno));
	else
		ret = 0;
	if (close(fd) == -1 && ret == 0)
		ret = amtca_fail(AMTCA_E_IO, "cannot write %s: %s", path,
		    strerror(errno));
	return ret;
}

/* fd N for "/dev/stdout", "/dev/stderr", "/dev/fd/N", "/proc/self/fd/N". */
static int
fd_name(const char *path)
{
	const char *n = NULL;
	long v;
	char *end;

	if (strcmp(path, "/dev/stdout") == 0)
		return 1;
	if (strcmp(path, "/dev/stderr") == 0)
		return 2;
	if (strncmp(path, "/dev/fd/", 8) == 0)
		n = path + 8;
	else if (strncmp(path, "/proc/self/fd/", 14) == 0)
		n = path + 14;
	if (n == NULL || *n < '0' || *n > '9')
		return -1;
	errno = 0;
	v = strtol(n, &end, 10);
	if (errno != 0 || *end != '\0' || v > 1024)
		return -1;
	return (int)v;
}

static int
write_fd(int fd, const char *name, const void *buf, size_t len)
{
	if (write_all(fd, buf, len) == -1)
		return amtca_fail(AMTCA_E_IO, "cannot write to %s: %s", name,
		    strerror(errno));
	return 0;
}

/*
 * Follow the symlink chain at `path` to the file it names: each link must
 * belong to root or to us (a link someone else planted, in /tmp say, is
 * never followed), and the end must exist.  *out malloc'd, canonical; or
 * *fd >= 0 when the chain reaches a name of one of our descriptors
 * (a link to /dev/stdout).
 */
static int
follow_links(const char *path, char **out, int *fd)
{
	char cur[PATH_MAX], target[PATH_MAX], *copy, *d, *real = NULL;
	struct stat sb;
	size_t plen = strlen(path);
	ssize_t n;
	int hops;

	*out = NULL;
	*fd = -1;
	if (plen >= sizeof(cur))
		return amtca_fail(AMTCA_E_IO, "%s: path too long", path);
	memcpy(cur, path, plen + 1);
	for (hops = 0; ; hops++) {
		if ((*fd = fd_name(cur)) != -1)
			return 0;
		if (lstat(cur, &sb) == -1)
			return amtca_fail(AMTCA_E_IO, "%s is a symlink to %s, which "
			    "does not exist; give the real path", path, cur);
		if (!S_ISLNK(sb.st_mode))
			break;
		if (hops == AMTCA_SYMLINK_HOPS)
			return amtca_fail(AMTCA_E_IO, "%s: too many levels of "
			    "symlinks", path);
		if (sb.st_uid != 0 && sb.st_uid != geteuid())
			return amtca_fail(AMTCA_E_IO, "%s is a symlink owned by uid "
			    "%u, not by you or root; refusing to follow it: remove "
			    "it or give the target path", cur, (unsigned)sb.st_uid);
		if ((n = readlink(cur, target, sizeof(target) - 1)) == -1)
			return amtca_fail(AMTCA_E_IO, "cannot read link %s: %s", cur,
			    strerror(errno));
		target[n] = '\0';
		if (target[0] == '/') {
			memcpy(cur, target, (size_t)n + 1);	/* n < sizeof(cur) */
			continue;
		}
		if ((copy = strdup(cur)) == NULL)
			return AMTCA_E_NOMEM;
		d = dirname(copy);
		if (snprintf(cur, sizeof(cur), "%s/%s", d, target) >=
		    (int)sizeof(cur)) {
			free(copy);
			return amtca_fail(AMTCA_E_IO, "%s: path too long", path);
		}
		free(copy);
	}
	if ((real = realpath(cur, NULL)) == NULL)
		return amtca_fail(AMTCA_E_IO, "cannot resolve %s: %s", path,
		    strerror(errno));
	*out = real;
	return 0;
}

int
amtca_file_write(const char *path, const void *buf, size_t len, mode_t mode,
    int exclusive)
{
	char *real = NULL;
	struct stat sb;
	int fd, r, ret = AMTCA_E_INTERNAL;

	if (exclusive) {
		ret = write_atomic(path, buf, len, mode, 1);
		goto out;
	}
	if ((fd = fd_name(path)) != -1) {
		ret = write_fd(fd, path, buf, len);
		goto out;
	}
	if (lstat(path, &sb) == -1) {
		if (errno != ENOENT) {
			ret = amtca_fail(AMTCA_E_IO, "cannot write %s: %s", path,
			    strerror(errno));
			goto out;
		}
		ret = write_atomic(path, buf, len, mode, 0);
		goto out;
	}
	if (S_ISLNK(sb.st_mode)) {
		/* Never replace the link: write what it names. */
		if ((r = follow_links(path, &real, &fd)) != 0) {
			ret = r;
			goto out;
		}
		if (fd != -1) {
			ret = write_fd(fd, path, buf, len);
			goto out;
		}
		if (lstat(real, &sb) == -1) {
			ret = amtca_fail(AMTCA_E_IO, "cannot write %s: %s", real,
			    strerror(errno));
			goto out;
		}
		path = real;
	}
	if (S_ISREG(sb.st_mode))
		ret = write_atomic(path, buf, len, mode, 0);
	else if (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode))
		ret = write_through(path, buf, len);
	else
		ret = amtca_fail(AMTCA_E_IO, "%s is a %s, not a file; give a file "
		    "name, a FIFO, a character device or '-'", path,
		    S_ISDIR(sb.st_mode) ? "directory" : "special file");
out:
	free(real);
	return ret;
}

int
amtca_out_write(const char *path, const void *buf, size_t len, mode_t mode)
{
	if (path == NULL || strcmp(path, "-") == 0)
		return write_fd(STDOUT_FILENO, "standard output", buf, len);
	return amtca_file_write(path, buf, len, mode, 0);
}

/*
 * One component of a StrictModes walk.  `leaf` is the path being vetted,
 * `p` the component (equal to leaf, or a directory above it).
 */
static int
check_one(const char *what, const char *leaf, const char *p, int above)
{
	struct stat sb;

	if (stat(p, &sb) == -1)
		return amtca_fail(errno == ENOENT ? AMTCA_E_NOT_FOUND : AMTCA_E_IO,
		    "cannot check %s %s: %s", what, p, strerror(errno));
	if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
		if (above)
			return amtca_fail(AMTCA_E_CONFIG, "directory %s above the "
			    "%s %s is owned by uid %u, not by you or root; move the "
			    "%s or fix the owner", p, what, leaf, (unsigned)sb.st_uid,
			    what);
		return amtca_fail(AMTCA_E_CONFIG, "%s %s is owned by uid %u, not by "
		    "you or root; fix it with chown or use another path", what, p,
		    (unsigned)sb.st_uid);
	}
	/* A sticky directory (like /tmp) keeps others from renaming our entries. */
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
	    !(above && S_ISDIR(sb.st_mode) && (sb.st_mode & S_ISVTX))) {
		if (above)
			return amtca_fail(AMTCA_E_CONFIG, "directory %s above the "
			    "%s %s is writable by group or others (mode %04o); "
			    "fix it with 'chmod go-w %s' or move the %s", p, what,
			    leaf, (unsigned)(sb.st_mode & 07777), p, what);
		return amtca_fail(AMTCA_E_CONFIG, "%s %s is writable by group or "
		    "others (mode %04o); fix it with 'chmod go-w %s'", what, p,
		    (unsigned)(sb.st_mode & 07777), p);
	}
	return 0;
}

int
amtca_path_check_secure(const char *path, const char *what)
{
	char *real = NULL, *p;
	struct stat sb;
	int r, ret = AMTCA_E_INTERNAL;

	if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) &&
	    sb.st_uid != 0 && sb.st_uid != geteuid()) {
		ret = amtca_fail(AMTCA_E_CONFIG, "%s %s is a symlink owned by uid "
		    "%u, not by you or root; replace it with the real path", what,
		    path, (unsigned)sb.st_uid);
		goto out;
	}
	if ((real = realpath(path, NULL)) == NULL) {
		ret = amtca_fail(errno == ENOENT ? AMTCA_E_NOT_FOUND : AMTCA_E_IO,
		    "cannot check %s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if ((r = check_one(what, real, real, 0)) != 0) {
		ret = r;
		goto out;
	}
	/* Every directory above it, up to "/". */
	for (p = strrchr(real, '/'); p != NULL; p = strrchr(real, '/')) {
		if (p == real) {
			ret = real[1] == '\0' ? 0 : check_one(what, path, "/", 1);
			goto out;
		}
		*p = '\0';
		if ((r = check_one(what, path, real, 1)) != 0) {
			ret = r;
			goto out;
		}
	}
	ret = 0;
out:
	free(real);
	return ret;
}

int
amtca_mkdirs(const char *path, mode_t mode)
{
	char *p, *copy;
	int ret = 0;

	if ((copy = strdup(path)) == NULL)
		return AMTCA_E_NOMEM;
	for (p = copy + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(copy, mode) == -1 && errno != EEXIST) {
				ret = amtca_fail(AMTCA_E_IO, "cannot create %s: %s",
				    copy, strerror(errno));
				break;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	free(copy);
	return ret;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int
amtca_file_copy(const char *src, const char *dst, mode_t mode, size_t *len)
{
	unsigned char buf[16384];
	struct stat sb;
	size_t total = 0;
	ssize_t n, w, off;
	int in = -1, out = -1, made = 0, ret = AMTCA_E_INTERNAL;

	if (len != NULL)
		*len = 0;
	if ((in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		ret = amtca_fail(errno == ENOENT ? AMTCA_E_NOT_FOUND : AMTCA_E_IO,
		    "cannot read %s: %s", src, strerror(errno));
		goto out;
	}
	if (fstat(in, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		ret = amtca_fail(AMTCA_E_IO, "%s is not a regular file", src);
		goto out;
	}
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    mode)) == -1) {
		ret = amtca_fail(errno == EEXIST ? AMTCA_E_EXISTS : AMTCA_E_IO,
		    "cannot create %s: %s", dst, strerror(errno));
		goto out;
	}
	made = 1;
	for (;;) {
		if ((n = read(in, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			ret = amtca_fail(AMTCA_E_IO, "cannot read %s: %s", src,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		for (off = 0; off < n; off += w) {
			if ((w = write(out, buf + off, (size_t)(n - off))) == -1) {
				if (errno == EINTR) {
					w = 0;
					continue;
				}
				ret = amtca_fail(AMTCA_E_IO, "cannot write %s: %s",
				    dst, strerror(errno));
				goto out;
			}
		}
		total += (size_t)n;
	}
	if (fchmod(out, mode) != 0 || fsync(out) != 0) {
		ret = amtca_fail(AMTCA_E_IO, "cannot write %s: %s", dst,
		    strerror(errno));
		goto out;
	}
	if (len != NULL)
		*len = total;
	ret = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	if (in != -1)
		close(in);
	if (out != -1 && close(out) != 0 && ret == 0)
		ret = amtca_fail(AMTCA_E_IO, "cannot write %s: %s", dst,
		    strerror(errno));
	if (ret != 0 && made)
		(void)unlink(dst);
	return ret;
}

void
amtca_rmtree(const char *dir)
{
	if (dir != NULL)
		(void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
amtca_b64_encode(const unsigned char *in, size_t len, char **out)
{
	char *s, *o;
	size_t i;

	*out = NULL;
	if (len > ((size_t)-1) / 2)
		return AMTCA_E_LIMIT;
	if ((s = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return AMTCA_E_NOMEM;
	o = s;
	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	*out = s;
	return 0;
}

static int
b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
amtca_b64_decode(const char *in, size_t inlen, size_t max, unsigned char **out,
    size_t *outlen)
{
	unsigned char *buf = NULL;
	size_t n = 0, i, pad = 0, q = 0;
	unsigned acc = 0;
	int v, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*outlen = 0;
	if ((buf = malloc(inlen / 4 * 3 + 3)) == NULL)
		return AMTCA_E_NOMEM;
	for (i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad != 0 || (v = b64_val(c)) < 0) {
			ret = amtca_fail(AMTCA_E_AMT_PARSE, "invalid base64");
			goto out;
		}
		acc = acc << 6 | (unsigned)v;
		if (++q == 4) {
			buf[n++] = (unsigned char)(acc >> 16);
			buf[n++] = (unsigned char)(acc >> 8);
			buf[n++] = (unsigned char)acc;
			acc = 0;
			q = 0;
		}
		if (n > max) {
			ret = amtca_fail(AMTCA_E_LIMIT, "base64 value too large");
			goto out;
		}
	}
	if (q == 1 || pad > 2 || (pad != 0 && (q + pad) % 4 != 0)) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "invalid base64 length");
		goto out;
	}
	if (q == 2)
		buf[n++] = (unsigned char)(acc >> 4);
	else if (q == 3) {
		buf[n++] = (unsigned char)(acc >> 10);
		buf[n++] = (unsigned char)(acc >> 2);
	}
	if (n > max) {
		ret = amtca_fail(AMTCA_E_LIMIT, "base64 value too large");
		goto out;
	}
	*out = buf;
	*outlen = n;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	return ret;
}

int
amtca_hex_encode(const unsigned char *in, size_t len, char **out)
{
	static const char hx[] = "0123456789ABCDEF";
	char *s;
	size_t i;

	*out = NULL;
	if ((s = malloc(len * 2 + 1)) == NULL)
		return AMTCA_E_NOMEM;
	for (i = 0; i < len; i++) {
		s[2 * i] = hx[in[i] >> 4];
		s[2 * i + 1] = hx[in[i] & 15];
	}
	s[2 * len] = '\0';
	*out = s;
	return 0;
}

int
amtca_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

void
amtca_fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "?");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

long long
amtca_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
amtca_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
amtca_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t r;

	while (len > 0) {
		r = getrandom(p, len, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return amtca_fail(AMTCA_E_INTERNAL, "getrandom: %s",
			    strerror(errno));
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int
amtca_nofile_ensure(unsigned long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return amtca_fail(AMTCA_E_INTERNAL, "getrlimit(RLIMIT_NOFILE): %s",
		    strerror(errno));
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)need)
		return amtca_fail(AMTCA_E_LIMIT, "%lu open files needed, but the "
		    "hard limit is %llu (raise it: ulimit -Hn, or LimitNOFILE= "
		    "in the unit)", need, (unsigned long long)rl.rlim_max);
	/* Soft to hard, or (past the kernel's nr_open cap) just to `need`. */
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		rl.rlim_cur = (rlim_t)need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return amtca_fail(AMTCA_E_LIMIT, "cannot raise the open file "
			    "limit to %lu: %s", need, strerror(errno));
	}
	return 0;
}

char *
amtca_path_join(const char *a, const char *b)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", a, b) == -1)
		return NULL;
	return p;
}
