/*
 * The credential rule (enroll/credrule.c) as a table: records in a real
 * store in, decisions out.  The rule is in the core (enroll/, linked from
 * libamtca.a); it uses only the store and OpenSSL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/store.h"
#include "common/err.h"
#include "common/util.h"
#include "enroll/home.h"
#include "signer/signer.h"
#include "enroll/enroll.h"

#define FQDN "amt-1.example.test"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
	struct home hh;			/* the store as both records and state */
	struct sgn *sg;			/* the signer's reads over it */
	X509 *a, *b, *hand, *old;	/* bound, other valid, by hand, superseded */
};

static X509 *
mk_cert(long serial)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();

	assert_non_null(k);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
	    (const unsigned char *)FQDN, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	EVP_PKEY_free(k);
	return x;
}

static void
add(struct fx *f, X509 *x, const char *serial, const char *device)
{
	struct store_cert c;
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	memset(&c, 0, sizeof(c));
	c.serial = (char *)serial;
	c.fqdn = (char *)FQDN;
	c.not_before = 1000;
	c.not_after = 2000000000;
	c.issued_at = 1500;
	c.requester = (char *)(device ? "enroll" : "issue");
	c.device = (char *)device;
	c.der = der;
	c.der_len = (size_t)n;
	assert_int_equal(store_cert_add(f->s, &c), 0);
	OPENSSL_free(der);
}

static void
device(struct fx *f, const char *state, const char *serial)
{
	struct store_device d;

	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)FQDN;
	d.address = (char *)"127.0.0.1";
	d.state = (char *)state;
	d.cert_serial = (char *)serial;
	d.updated_at = 1;
	assert_int_equal(store_device_put(f->s, &d), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/amtca-credrule.XXXXXX");
	if (f == NULL || mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/amtca.db", f->dir);
	if (store_open(f->path, 1, &f->s) != 0)
		return -1;
	f->hh.store = f->hh.state = f->s;
	if (sgn_local_home(&f->hh, &f->sg) != 0)
		return -1;
	f->a = mk_cert(0x0A);
	f->b = mk_cert(0x0B);
	f->hand = mk_cert(0x0C);
	f->old = mk_cert(0x0D);
	add(f, f->old, "0D", FQDN);
	add(f, f->a, "0A", FQDN);
	add(f, f->b, "0B", FQDN);
	add(f, f->hand, "0C", NULL);
	assert_int_equal(store_cert_revoke(f->s, "0D", 4, 1600), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	sgn_close(f->sg);
	store_close(f->s);
	X509_free(f->a);
	X509_free(f->b);
	X509_free(f->hand);
	X509_free(f->old);
	amtca_rmtree(f->dir);
	free(f);
	return 0;
}

static void
sha256(X509 *x, unsigned char md[32])
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	assert_int_equal(EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(),
	    NULL), 1);
	OPENSSL_free(der);
}

/* Enrolled: never plain; TLS only to the device's valid leaves. */
static void
test_enrolled(void **state)
{
	struct fx *f = *state;
	struct cred_rule r;
	unsigned char pin[32], want[32];

	device(f, "enrolled", "0A");
	/* The records are keyed by the normalised name. */
	assert_int_equal(cred_rule_load(f->s, f->sg, "AMT-1.Example.Test.", NULL, 0, &r), 0);
	assert_true(r.tls_only);
	assert_false(r.compromised);
	assert_int_equal(cred_rule_plain(&r, FQDN), AMTCA_E_AMT_TLS);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->a, pin), 0);
	sha256(f->a, want);
	assert_memory_equal(pin, want, 32);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->b, pin), 0);
	/* Same name, same CA, but not the device's: by hand, or superseded. */
	assert_int_equal(cred_rule_tls(&r, FQDN, f->hand, pin), AMTCA_E_AMT_TLS);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_AMT_TLS), "--tls-pin"));
	assert_int_equal(cred_rule_tls(&r, FQDN, f->old, pin), AMTCA_E_AMT_TLS);
	cred_rule_clear(&r);

	/* The operator's pin adds exactly that leaf. */
	sha256(f->hand, want);
	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, want, 0, &r), 0);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->hand, pin), 0);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->old, pin), AMTCA_E_AMT_TLS);
	assert_int_equal(cred_rule_plain(&r, FQDN), AMTCA_E_AMT_TLS);
	cred_rule_clear(&r);

	/* --device-reset: plain allowed again; the TLS pins do not widen. */
	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, NULL, 1, &r), 0);
	assert_int_equal(cred_rule_plain(&r, FQDN), 0);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->hand, pin), AMTCA_E_AMT_TLS);
	cred_rule_clear(&r);
}

/* Retired: nothing is sent, over any transport, until --device-reset. */
static void
test_retired(void **state)
{
	struct fx *f = *state;
	struct cred_rule r;
	unsigned char pin[32];

	device(f, "retired", "0A");
	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, NULL, 0, &r), 0);
	assert_true(r.retired);
	assert_int_equal(cred_rule_plain(&r, FQDN), AMTCA_E_AMT_TLS);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_AMT_TLS), "--device-reset"));
	/* Not even to its own recorded leaf. */
	assert_int_equal(cred_rule_tls(&r, FQDN, f->a, pin), AMTCA_E_AMT_TLS);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_AMT_TLS), "retired"));
	cred_rule_clear(&r);

	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, NULL, 1, &r), 0);
	assert_false(r.retired);
	assert_int_equal(cred_rule_plain(&r, FQDN), 0);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->a, pin), 0);
	cred_rule_clear(&r);
}

/* Not enrolled (no record, or failed): plain allowed; TLS still pinned. */
static void
test_not_enrolled(void **state)
{
	struct fx *f = *state;
	struct cred_rule r;
	unsigned char pin[32];

	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, NULL, 0, &r), 0);
	assert_false(r.tls_only);
	assert_int_equal(cred_rule_plain(&r, FQDN), 0);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->hand, pin), AMTCA_E_AMT_TLS);
	cred_rule_clear(&r);
	device(f, "failed", "0A");
	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, NULL, 0, &r), 0);
	assert_int_equal(cred_rule_plain(&r, FQDN), 0);
	cred_rule_clear(&r);
	/* No CA home: nothing to pin; the operator's bundle decides. */
	assert_int_equal(cred_rule_load(NULL, NULL, FQDN, NULL, 0, &r), 0);
	assert_true(r.no_records);
	assert_int_equal(cred_rule_plain(&r, FQDN), 0);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->hand, pin), 0);
	cred_rule_clear(&r);
}

/* A revoked bound leaf: superseded keeps it pinnable; keyCompromise stops
 * everything, also the operator's pin, and marks the device. */
static void
test_revoked_bound(void **state)
{
	struct fx *f = *state;
	struct cred_rule r;
	struct store_cert *c = NULL;
	struct store_device *d = NULL;
	unsigned char pin[32], want[32];

	device(f, "enrolled", "0A");
	assert_int_equal(store_cert_revoke(f->s, "0A", 4, 1700), 0);
	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, NULL, 0, &r), 0);
	assert_true(r.bound_revoked);
	assert_int_equal(r.bound_reason, 4);
	assert_false(r.compromised);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->a, pin), 0);
	cred_rule_clear(&r);
	assert_int_equal(store_cert_get(f->s, "0A", &c), 0);
	assert_int_equal(cred_note_revocation(f->s, c), 0);	/* superseded */
	store_cert_free(c);
	assert_int_equal(store_device_get(f->s, FQDN, &d), 0);
	assert_string_equal(d->state, "enrolled");
	store_device_free(d);

	assert_int_equal(store_cert_revoke(f->s, "0A", 1, 1800), 0);
	assert_int_equal(store_cert_get(f->s, "0A", &c), 0);
	assert_int_equal(cred_note_revocation(f->s, c), 0);
	store_cert_free(c);
	assert_int_equal(store_device_get(f->s, FQDN, &d), 0);
	assert_string_equal(d->state, "compromised");
	store_device_free(d);
	sha256(f->a, want);
	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, want, 0, &r), 0);
	assert_true(r.compromised);
	assert_int_equal(cred_rule_plain(&r, FQDN), AMTCA_E_AMT_TLS);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_AMT_TLS), "--device-reset"));
	assert_int_equal(cred_rule_tls(&r, FQDN, f->a, pin), AMTCA_E_AMT_TLS);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->b, pin), AMTCA_E_AMT_TLS);
	cred_rule_clear(&r);
	/* After a reset: plain again, the compromised leaf never. */
	assert_int_equal(cred_rule_load(f->s, f->sg, FQDN, NULL, 1, &r), 0);
	assert_false(r.compromised);
	assert_int_equal(cred_rule_plain(&r, FQDN), 0);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->a, pin), AMTCA_E_AMT_TLS);
	assert_int_equal(cred_rule_tls(&r, FQDN, f->b, pin), 0);
	cred_rule_clear(&r);
}

static void
test_pin_parse(void **state)
{
	unsigned char pin[32];
	char hex[80];
	int i;

	(void)state;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02X", i);
	assert_int_equal(cred_pin_parse(hex, pin), 0);
	assert_int_equal(pin[0], 0);
	assert_int_equal(pin[31], 31);
	assert_int_equal(cred_pin_parse("sha256:00:01:02:03:04:05:06:07:08:09:0a:0b:"
	    "0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f", pin), 0);
	assert_int_equal(pin[26], 26);
	hex[63] = '\0';
	assert_int_equal(cred_pin_parse(hex, pin), -1);		/* odd */
	hex[62] = '\0';
	assert_int_equal(cred_pin_parse(hex, pin), -1);		/* short */
	assert_int_equal(cred_pin_parse("zz", pin), -1);
	assert_int_equal(cred_reason_parse("keyCompromise"), 1);
	assert_int_equal(cred_reason_parse("removeFromCRL"), 8);
	assert_int_equal(cred_reason_parse("bogus"), -1);
	assert_string_equal(cred_reason_name(4), "superseded");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_enrolled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_enrolled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_bound, setup, teardown),
		cmocka_unit_test(test_pin_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
