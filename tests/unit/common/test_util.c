/* Unit tests for common/: error table, base64, secrets, atomic writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/err.h"
#include "common/limits.h"
#include "common/util.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/amtca-ut-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
write_raw(const char *path, const char *s, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, n, f), n);
	fclose(f);
}

static void
test_error_codes_are_distinct_and_named(void **state)
{
	(void)state;
	assert_true(AMTCA_E_INTERNAL < 0);
	assert_int_not_equal(AMTCA_E_HSM_PIN, AMTCA_E_HSM_TOKEN);
	assert_string_equal(amtca_errname(AMTCA_E_HSM_PIN), "HSM_PIN");
	assert_string_equal(amtca_strerror(AMTCA_E_AMT_AUTH), "AMT authentication failed");
	/* Unknown codes map to "internal error", never NULL. */
	assert_string_equal(amtca_strerror(-9999), "internal error");
}

static void
test_fail_detail_belongs_to_its_code(void **state)
{
	(void)state;
	assert_int_equal(amtca_fail(AMTCA_E_CSR, "CSR %s", "bad"), AMTCA_E_CSR);
	assert_string_equal(amtca_errmsg(AMTCA_E_CSR), "CSR bad");
	/* Asking about another code gives that code's default text. */
	assert_string_equal(amtca_errmsg(AMTCA_E_FQDN), "FQDN rejected");
	amtca_err_clear();
	assert_string_equal(amtca_errmsg(AMTCA_E_CSR), "CSR rejected");
}

static void
test_b64_roundtrip_matches_openssl(void **state)
{
	unsigned char in[300], *dec = NULL, ref[512];
	char *enc = NULL;
	size_t n, declen;
	int i;

	(void)state;
	for (i = 0; i < (int)sizeof(in); i++)
		in[i] = (unsigned char)(i * 37 + 11);
	for (n = 0; n < 40; n++) {
		assert_int_equal(amtca_b64_encode(in, n, &enc), 0);
		EVP_EncodeBlock(ref, in, (int)n);
		assert_string_equal(enc, (char *)ref);
		assert_int_equal(amtca_b64_decode(enc, strlen(enc), 1000, &dec, &declen), 0);
		assert_int_equal(declen, n);
		assert_memory_equal(dec, in, n);
		free(enc);
		free(dec);
	}
}

static void
test_b64_decode_skips_whitespace_rejects_junk(void **state)
{
	unsigned char *dec = NULL;
	size_t len;

	(void)state;
	assert_int_equal(amtca_b64_decode("SGVs\r\n bG8=", 11, 100, &dec, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(dec, "Hello", 5);
	free(dec);
	assert_int_not_equal(amtca_b64_decode("SGVs*G8=", 8, 100, &dec, &len), 0);
	assert_null(dec);
	assert_int_not_equal(amtca_b64_decode("SGVsbG8=QQ==", 12, 100, &dec, &len), 0);
	assert_int_not_equal(amtca_b64_decode("S", 1, 100, &dec, &len), 0);
	/* The output cap is enforced. */
	assert_int_equal(amtca_b64_decode("SGVsbG8=", 8, 4, &dec, &len), AMTCA_E_LIMIT);
}

static void
test_secret_read_strips_one_newline(void **state)
{
	char path[128], *s = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/pin", dir);
	write_raw(path, "12 34\r\n", 7);
	assert_int_equal(amtca_secret_read(path, &s), 0);
	assert_string_equal(s, "12 34");
	amtca_secret_free(s);
}

static void
test_secret_read_rejects_empty_nul_and_oversized(void **state)
{
	char path[128], big[AMTCA_SECRET_MAX + 2], *s = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/pin", dir);
	write_raw(path, "\n", 1);
	assert_int_equal(amtca_secret_read(path, &s), AMTCA_E_CONFIG);
	assert_null(s);
	write_raw(path, "ab\0cd", 5);
	assert_int_equal(amtca_secret_read(path, &s), AMTCA_E_CONFIG);
	memset(big, 'x', sizeof(big));
	write_raw(path, big, sizeof(big));
	assert_int_equal(amtca_secret_read(path, &s), AMTCA_E_LIMIT);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(amtca_secret_read(path, &s), AMTCA_E_NOT_FOUND);
}

static void
test_file_write_exclusive_never_replaces(void **state)
{
	char path[128];
	unsigned char *buf = NULL;
	size_t len;
	struct stat sb;

	(void)state;
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(amtca_file_write(path, "one", 3, 0600, 1), 0);
	assert_int_equal(amtca_file_write(path, "two", 3, 0600, 1), AMTCA_E_EXISTS);
	assert_int_equal(amtca_file_read(path, 100, &buf, &len), 0);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* Non-exclusive replaces atomically. */
	assert_int_equal(amtca_file_write(path, "three", 5, 0644, 0), 0);
	assert_int_equal(amtca_file_read(path, 100, &buf, &len), 0);
	assert_int_equal(len, 5);
	free(buf);
	/* A size cap on read. */
	assert_int_equal(amtca_file_read(path, 4, &buf, &len), AMTCA_E_LIMIT);
	assert_null(buf);
}

/* The whole content of `path` equals `want`. */
static void
assert_file_is(const char *path, const char *want)
{
	unsigned char *buf = NULL;
	size_t len;

	assert_int_equal(amtca_file_read(path, 4096, &buf, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(buf, want, len);
	free(buf);
}

static void
test_file_write_temp_name_is_not_guessable(void **state)
{
	char path[128], victim[128], guess[160];
	int i;

	(void)state;
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	write_raw(victim, "precious", 8);
	/* What an attacker would plant: the old PATH.tmp.<pid> names. */
	for (i = 0; i < 4; i++) {
		snprintf(guess, sizeof(guess), "%s.tmp.%ld", path,
		    (long)getpid() + i);
		assert_int_equal(symlink(victim, guess), 0);
	}
	assert_int_equal(amtca_file_write(path, "cert", 4, 0644, 0), 0);
	assert_int_equal(amtca_file_write(path, "cert", 4, 0644, 1), AMTCA_E_EXISTS);
	assert_file_is(victim, "precious");
	assert_file_is(path, "cert");
	for (i = 0; i < 4; i++) {
		snprintf(guess, sizeof(guess), "%s.tmp.%ld", path,
		    (long)getpid() + i);
		unlink(guess);
	}
	unlink(path);
	unlink(victim);
}

static void
test_file_write_follows_symlink_to_regular_file(void **state)
{
	char link[128], target[128];
	struct stat sb;

	(void)state;
	snprintf(link, sizeof(link), "%s/link.pem", dir);
	snprintf(target, sizeof(target), "%s/real.pem", dir);
	write_raw(target, "old", 3);
	assert_int_equal(symlink("real.pem", link), 0);
	assert_int_equal(amtca_file_write(link, "new", 3, 0644, 0), 0);
	assert_int_equal(lstat(link, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	assert_file_is(target, "new");
	/* A dangling link is refused, and stays a link. */
	unlink(target);
	assert_int_equal(amtca_file_write(link, "new", 3, 0644, 0), AMTCA_E_IO);
	assert_int_equal(lstat(link, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	unlink(link);
}

static void
test_file_write_writes_through_fifo_and_device(void **state)
{
	char fifo[128], buf[16];
	struct stat sb;
	int rfd;

	(void)state;
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* A reader first, so that opening for writing does not block. */
	assert_true((rfd = open(fifo, O_RDONLY | O_NONBLOCK)) != -1);
	assert_int_equal(amtca_file_write(fifo, "piped", 5, 0644, 0), 0);
	assert_int_equal(read(rfd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "piped", 5);
	close(rfd);
	assert_int_equal(lstat(fifo, &sb), 0);
	assert_true(S_ISFIFO(sb.st_mode));
	unlink(fifo);
	/* A private null device: a broken build must not replace /dev/null. */
	snprintf(fifo, sizeof(fifo), "%s/null", dir);
	if (mknod(fifo, S_IFCHR | 0666, makedev(1, 3)) == 0) {
		assert_int_equal(amtca_file_write(fifo, "x", 1, 0644, 0), 0);
		assert_int_equal(lstat(fifo, &sb), 0);
		assert_true(S_ISCHR(sb.st_mode));
		unlink(fifo);
	}
	/* A directory is neither replaced nor written into. */
	assert_int_equal(amtca_file_write(dir, "x", 1, 0644, 0), AMTCA_E_IO);
}

static void
test_path_check_secure_is_strict_modes(void **state)
{
	char d[128], f[128], sub[160], sticky[128], inner[160];

	(void)state;
	snprintf(d, sizeof(d), "%s/home", dir);
	snprintf(f, sizeof(f), "%s/home/amtca.conf", dir);
	assert_int_equal(mkdir(d, 0700), 0);
	write_raw(f, "x", 1);
	assert_int_equal(chmod(f, 0644), 0);
	assert_int_equal(amtca_path_check_secure(d, "CA home"), 0);
	assert_int_equal(amtca_path_check_secure(f, "CA configuration"), 0);
	/* Writable by group or others: the file, or a directory above it. */
	assert_int_equal(chmod(f, 0664), 0);
	assert_int_equal(amtca_path_check_secure(f, "x"), AMTCA_E_CONFIG);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_CONFIG), f));
	assert_int_equal(chmod(f, 0644), 0);
	assert_int_equal(chmod(d, 0777), 0);
	assert_int_equal(amtca_path_check_secure(d, "x"), AMTCA_E_CONFIG);
	assert_int_equal(amtca_path_check_secure(f, "x"), AMTCA_E_CONFIG);
	assert_int_equal(chmod(d, 0700), 0);
	/* A sticky directory above (like /tmp) is fine; as the path, not. */
	snprintf(sticky, sizeof(sticky), "%s/sticky", dir);
	snprintf(inner, sizeof(inner), "%s/sticky/home", dir);
	assert_int_equal(mkdir(sticky, 0700), 0);
	assert_int_equal(chmod(sticky, 01777), 0);
	assert_int_equal(mkdir(inner, 0700), 0);
	assert_int_equal(amtca_path_check_secure(inner, "x"), 0);
	assert_int_equal(amtca_path_check_secure(sticky, "x"), AMTCA_E_CONFIG);
	/* Someone else's file (only root can make one to test with). */
	if (geteuid() == 0) {
		assert_int_equal(chown(f, 65534, 65534), 0);
		assert_int_equal(amtca_path_check_secure(f, "x"), AMTCA_E_CONFIG);
		assert_non_null(strstr(amtca_errmsg(AMTCA_E_CONFIG), "uid 65534"));
		assert_int_equal(chown(f, 0, 0), 0);
	}
	snprintf(sub, sizeof(sub), "%s/missing", d);
	assert_int_equal(amtca_path_check_secure(sub, "x"), AMTCA_E_NOT_FOUND);
	unlink(f);
	rmdir(d);
	rmdir(inner);
	rmdir(sticky);
}

/*
 * RLIMIT_NOFILE: raised soft -> hard when the soft limit is short, refused
 * with both numbers when even the hard limit is short.  Runs in a child,
 * since lowering the hard limit cannot be undone without privilege.
 */
static int
nofile_child(void)
{
	struct rlimit rl = { 64, 256 };

	/* valgrind keeps descriptors above the limit for itself and refuses
	 * to lower the hard limit: nothing to test there (77 = skip). */
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 77;
	/* Enough already: nothing changes. */
	if (amtca_nofile_ensure(50) != 0 ||
	    getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != 64)
		return 11;
	/* Short, but the hard limit allows it: soft goes to hard. */
	if (amtca_nofile_ensure(200) != 0 ||
	    getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != 256 ||
	    rl.rlim_max != 256)
		return 12;
	/* Beyond the hard limit: a clear refusal, limits untouched. */
	rl.rlim_cur = 64;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 13;
	if (amtca_nofile_ensure(AMTCA_NOFILE_NEED(1000)) != AMTCA_E_LIMIT)
		return 14;
	if (strstr(amtca_errmsg(AMTCA_E_LIMIT), "4064 open files needed") ==
	    NULL || strstr(amtca_errmsg(AMTCA_E_LIMIT), "hard limit is 256") ==
	    NULL)
		return 15;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != 64 ||
	    rl.rlim_max != 256)
		return 16;
	return 0;
}

static void
test_nofile_ensure_raises_soft_to_hard_or_refuses(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(AMTCA_NOFILE_NEED(1000), 4064);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(nofile_child());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(st), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_codes_are_distinct_and_named),
		cmocka_unit_test(test_fail_detail_belongs_to_its_code),
		cmocka_unit_test(test_b64_roundtrip_matches_openssl),
		cmocka_unit_test(test_b64_decode_skips_whitespace_rejects_junk),
		cmocka_unit_test(test_secret_read_strips_one_newline),
		cmocka_unit_test(test_secret_read_rejects_empty_nul_and_oversized),
		cmocka_unit_test(test_file_write_exclusive_never_replaces),
		cmocka_unit_test(test_file_write_temp_name_is_not_guessable),
		cmocka_unit_test(test_file_write_follows_symlink_to_regular_file),
		cmocka_unit_test(test_file_write_writes_through_fifo_and_device),
		cmocka_unit_test(test_path_check_secure_is_strict_modes),
		cmocka_unit_test(test_nofile_ensure_raises_soft_to_hard_or_refuses),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
