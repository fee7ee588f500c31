/*
 * Small helpers every module needs: secret files, whole-file I/O, atomic
 * writes, base64 and hex.  All return 0 or a negative AMTCA_E_* code.
 */
#ifndef AMTCA_COMMON_UTIL_H
#define AMTCA_COMMON_UTIL_H

#include <stddef.h>
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
 * Write `len` bytes to `path` atomically and durably: temp file in the same
 * directory, fsync, rename, fsync the directory.  With `exclusive`, fails
 * with AMTCA_E_EXISTS instead of replacing an existing file.
 */
int amtca_file_write(const char *path, const void *buf, size_t len,
    mode_t mode, int exclusive) AMTCA_WUR;

/* mkdir -p with `mode` for created components. */
int amtca_mkdirs(const char *path, mode_t mode) AMTCA_WUR;

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

/* Monotonic milliseconds. */
long long amtca_now_ms(void);

/* Sleep for `ms` milliseconds (restarts on EINTR). */
void amtca_sleep_ms(long ms);

/* Fill buf from the OS CSPRNG (getrandom). */
int amtca_random(void *buf, size_t len) AMTCA_WUR;

#endif
