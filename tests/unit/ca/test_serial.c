/* Serial numbers: ca_serial_random() and ca_serial_hex(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/x509.h>

#include "ca/ca.h"

#define DRAWS 2000

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What `openssl x509 -serial` prints after "serial=". */
static char *
openssl_style(const ASN1_INTEGER *ai)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL, *s;
	long n;

	assert_true(i2a_ASN1_INTEGER(b, ai) > 0);
	n = BIO_get_mem_data(b, &p);
	s = strndup(p, (size_t)n);
	BIO_free(b);
	return s;
}

static void
test_random_serials(void **state)
{
	char *hex[DRAWS];
	int seen_first[128] = { 0 }, distinct = 0;
	unsigned char *der;
	const unsigned char *d;
	size_t i;
	int len;

	(void)state;
	for (i = 0; i < DRAWS; i++) {
		ASN1_INTEGER *ai = (ASN1_INTEGER *)&ai;
		BIGNUM *bn;

		assert_int_equal(ca_serial_random(&ai), 0);
		/* Positive, exactly 16 content octets, first one 0x01-0x7f. */
		assert_int_equal(ASN1_STRING_type(ai), V_ASN1_INTEGER);
		assert_int_equal(ASN1_STRING_length(ai), AMTCA_SERIAL_BYTES);
		d = ASN1_STRING_get0_data(ai);
		assert_true(d[0] >= 0x01 && d[0] <= 0x7f);
		seen_first[d[0]]++;
		/* So the DER is always 02 10 + 16 octets (no sign padding). */
		der = NULL;
		len = i2d_ASN1_INTEGER(ai, &der);
		assert_int_equal(len, 2 + AMTCA_SERIAL_BYTES);
		assert_int_equal(der[1], AMTCA_SERIAL_BYTES);
		OPENSSL_free(der);
		/* At least 64 bits of magnitude: more than 2^119. */
		bn = ASN1_INTEGER_to_BN(ai, NULL);
		assert_true(BN_num_bits(bn) > 120 && !BN_is_negative(bn));
		BN_free(bn);
		assert_int_equal(ca_serial_hex(ai, &hex[i]), 0);
		assert_int_equal(strlen(hex[i]), 2 * AMTCA_SERIAL_BYTES);
		{
			char *o = openssl_style(ai);

			assert_string_equal(hex[i], o);
			free(o);
		}
		ASN1_INTEGER_free(ai);
	}
	qsort(hex, DRAWS, sizeof(hex[0]), cmp_str);
	for (i = 1; i < DRAWS; i++)
		if (strcmp(hex[i - 1], hex[i]) == 0)
			fail_msg("serial %s drawn twice", hex[i]);
	for (i = 0; i < DRAWS; i++)
		free(hex[i]);
	/* 2000 draws over 127 values: all but a handful must show up. */
	for (i = 1; i < 128; i++)
		distinct += seen_first[i] > 0;
	assert_true(distinct > 110);
}

static void
test_hex_matches_openssl(void **state)
{
	static const long vals[] = { 0, 1, 127, 128, 255, 256, 0x7fffffff, -1, -129 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		ASN1_INTEGER *ai = ASN1_INTEGER_new();
		char *mine = NULL, *theirs;

		assert_true(ASN1_INTEGER_set(ai, vals[i]));
		assert_int_equal(ca_serial_hex(ai, &mine), 0);
		theirs = openssl_style(ai);
		if (strcmp(mine, theirs) != 0)
			fail_msg("%ld: mine %s, openssl %s", vals[i], mine, theirs);
		free(mine);
		free(theirs);
		ASN1_INTEGER_free(ai);
	}
}

static void
test_hex_uppercase(void **state)
{
	ASN1_INTEGER *ai = ASN1_INTEGER_new();
	char *s = NULL;

	(void)state;
	assert_true(ASN1_INTEGER_set(ai, 0xabcdef));
	assert_int_equal(ca_serial_hex(ai, &s), 0);
	assert_string_equal(s, "ABCDEF");
	free(s);
	ASN1_INTEGER_free(ai);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_serials),
		cmocka_unit_test(test_hex_matches_openssl),
		cmocka_unit_test(test_hex_uppercase),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
