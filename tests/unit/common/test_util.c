/* Unit tests for common/: error table, base64, secrets, atomic writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
