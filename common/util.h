/*
 * Small helpers every module needs: secret files, whole-file I/O, atomic
 * writes, base64 and hex.  All return 0 or a negative AMTCA_E_* code.
 */
#ifndef AMTCA_COMMON_UTIL_H
#define AMTCA_COMMON_UTIL_H

#include <stddef.h>
#include <time.h>
#include <sys/types.h>

#include "common/err.h"

/*
 * Read a secret (PIN, password) from `path`: at most AMTCA_SECRET_MAX bytes,
 * one trailing "\n" or "\r\n" stripped, must be non-empty and contain no NUL.
 * *out is NUL-terminated, allocated with amtca_secret_alloc semantics: the
 * caller releases it with amtca_secret_free(), which wipes it.
 */
int amtca_secret_read(const char *path, char **out) AMTCA_WUR;

/* Wipe and free a secret from amtca_secret_read(); NULL is fine. */
void amtca_secret_free(char *s);

/*
 * Read a whole file of at most `max` bytes.  *out is NUL-terminated (not
 * counted in *len) and freed with free().  AMTCA_E_LIMIT when larger.
 */
int amtca_file_read(const char *path, size_t max, unsigned char **out,
    size_t *len) AMTCA_WUR;

/*
 * Write `len` bytes to `path`.  A regular file (or a missing one) is
 * replaced atomically and durably: a temp file created O_EXCL|O_NOFOLLOW
 * under an unpredictable name in the same directory, fsync, rename, fsync
 * the directory.  With `exclusive`, fails with AMTCA_E_EXISTS instead of
 * replacing anything that exists (even a dangling symlink).  Otherwise:
 *  - a character device or FIFO is written through, never replaced;
 *  - "/dev/stdout", "/dev/stderr", "/dev/fd/N", "/proc/self/fd/N" write to
 *    that descriptor of ours;
 *  - a symlink is never replaced: it is followed to the regular file, device
 *    or FIFO it names, provided every link on the way belongs to root or to
 *    us; a link planted by another user, or a dangling one, is refused;
 *  - a directory or other special file is refused.
 */
int amtca_file_write(const char *path, const void *buf, size_t len,
    mode_t mode, int exclusive) AMTCA_WUR;

/*
 * A user-named output (--out FILE): "-" or NULL is standard output,
 * anything else as amtca_file_write(path, ..., mode, 0).
 */
int amtca_out_write(const char *path, const void *buf, size_t len,
    mode_t mode) AMTCA_WUR;

/*
 * OpenSSH's StrictModes: `path` (after symlinks) must be owned by root or
 * the effective user and not be writable by group or others, and so must
 * every directory above it, except that a sticky directory (like /tmp) is
 * accepted above it.  A symlink at `path` owned by someone else is refused.
 * `what` names the path in the one-line error ("CA home", "PIN file").
 * AMTCA_E_CONFIG when loose, AMTCA_E_NOT_FOUND / AMTCA_E_IO when it cannot
 * be examined.
 */
int amtca_path_check_secure(const char *path, const char *what) AMTCA_WUR;

/*
 * mkdir -p with `mode` for created components.  Existing directories are
 * accepted as they are: vet them with amtca_path_check_secure().
 */
int amtca_mkdirs(const char *path, mode_t mode) AMTCA_WUR;

/*
 * Copy the regular file `src` (never through a symlink) to the new file
 * `dst` (created O_EXCL with `mode`; AMTCA_E_EXISTS if anything is there),
 * streamed and fsync'd; the copy buffer is wiped (token files, PINs).  A
 * failed copy leaves no `dst`.  *len (if not NULL) gets the bytes copied.
 */
int amtca_file_copy(const char *src, const char *dst, mode_t mode,
    size_t *len) AMTCA_WUR;

/* rm -r of `dir` (not following symlinks); errors are ignored.  NULL ok. */
void amtca_rmtree(const char *dir);

/* Base64 (standard alphabet, no line breaks).  *out NUL-terminated, free(). */
int amtca_b64_encode(const unsigned char *in, size_t len, char **out) AMTCA_WUR;

/*
 * Decode base64, ignoring ASCII whitespace; rejects anything else that is
 * not in the alphabet.  At most `max` output bytes.  *out freed with free().
 */
int amtca_b64_decode(const char *in, size_t inlen, size_t max,
    unsigned char **out, size_t *outlen) AMTCA_WUR;

/* Uppercase hex, no separators, into a malloc'd NUL-terminated string. */
int amtca_hex_encode(const unsigned char *in, size_t len, char **out) AMTCA_WUR;

/* A decimal integer in [lo, hi], nothing else; 0 or -1. */
int amtca_parse_long(const char *s, long lo, long hi, long *out);

/* RFC 3339 UTC ("2026-11-27T12:00:00Z") into buf; "?" for 0. */
void amtca_fmt_time(time_t t, char *buf, size_t len);

/* Monotonic milliseconds. */
long long amtca_now_ms(void);

/* Sleep for `ms` milliseconds (restarts on EINTR). */
void amtca_sleep_ms(long ms);

/* Fill buf from the OS CSPRNG (getrandom). */
int amtca_random(void *buf, size_t len) AMTCA_WUR;

/*
 * Make sure this process may hold `need` open descriptors: when the soft
 * RLIMIT_NOFILE is lower, raise it to the hard limit (as far as the kernel
 * allows).  AMTCA_E_LIMIT, with a one-line detail naming both numbers and
 * the way out (ulimit -Hn, LimitNOFILE=), when the hard limit is below
 * `need`; the limits are then left as they were.  For N devices in flight,
 * need is AMTCA_NOFILE_NEED(N) (common/limits.h).
 */
int amtca_nofile_ensure(unsigned long need) AMTCA_WUR;

/* "a/b" (malloc'd); NULL on allocation failure. */
char *amtca_path_join(const char *a, const char *b);

#endif
