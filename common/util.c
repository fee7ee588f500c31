#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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

int
amtca_file_write(const char *path, const void *buf, size_t len, mode_t mode,
    int exclusive)
{
	char *tmp = NULL;
	const unsigned char *p = buf;
	int fd = -1, ret = AMTCA_E_INTERNAL;
	ssize_t w;

	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) == -1) {
		tmp = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) == -1) {
		ret = amtca_fail(AMTCA_E_IO, "cannot create %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) == -1)
		goto io;
	while (len > 0) {
		if ((w = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			goto io;
		}
		p += w;
		len -= (size_t)w;
	}
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
	if (fsync_dir_of(path) != 0)
		return amtca_fail(AMTCA_E_IO, "cannot sync directory of %s", path);
	return 0;
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
