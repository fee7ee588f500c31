/*
 * The device inventory (enroll/devices.c): records in a real store in,
 * filtered rows out, with the current certificate's notAfter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <unistd.h>

#include "ca/store.h"
#include "common/err.h"
#include "common/util.h"
#include "enroll/home.h"
#include "signer/signer.h"
#include "enroll/devices.h"

#define NOW 2000000000

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
	struct home hh;			/* the store as both records and state */
	struct sgn *sg;			/* the signer's reads over it */
};

static void
cert(struct fx *f, const char *serial, const char *fqdn, time_t not_after)
{
	static const unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	struct store_cert c;

	memset(&c, 0, sizeof(c));
	c.serial = (char *)serial;
	c.fqdn = (char *)fqdn;
	c.device = (char *)fqdn;
	c.not_before = NOW - 86400;
	c.not_after = not_after;
	c.issued_at = NOW - 86400;
	c.requester = (char *)"test";
	c.der = (unsigned char *)der;
	c.der_len = sizeof(der);
	assert_int_equal(store_cert_add(f->s, &c), 0);
}

static void
device(struct fx *f, const char *fqdn, const char *state, const char *serial)
{
	struct store_device d;

	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)fqdn;
	d.address = (char *)"127.0.0.1";
	d.state = (char *)state;
	d.cert_serial = (char *)serial;
	d.updated_at = NOW;
	assert_int_equal(store_device_put(f->s, &d), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/amtca-devices.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/amtca.db", f->dir);
	if (store_open(f->path, 1, &f->s) != 0)
		return -1;
	f->hh.store = f->hh.state = f->s;
	if (sgn_local_home(&f->hh, &f->sg) != 0)
		return -1;
	cert(f, "0A", "c.example.test", NOW + 10 * 86400);
	cert(f, "0B", "a.example.test", NOW + 100 * 86400);
	cert(f, "0C", "d.example.test", NOW - 86400);		/* expired */
	device(f, "c.example.test", "enrolled", "0A");
	device(f, "a.example.test", "enrolled", "0B");
	device(f, "d.example.test", "retired", "0C");
	device(f, "b.example.test", "failed", NULL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	sgn_close(f->sg);
	store_close(f->s);
	amtca_rmtree(f->dir);
	free(f);
	return 0;
}

static size_t
list(struct fx *f, const char *st, int days, struct device_info **v)
{
	struct device_filter flt = { st, days, NOW, NULL };
	size_t n = 99;

	assert_int_equal(devices_list(f->s, f->sg, &flt, v, &n), 0);
	return n;
}

/*
 * The issuer columns: unknown (-1, "") without a CA to compare with; with
 * one, a certificate under none of its intermediates (these test records
 * are not even certificates) is "not current" with no key id, and a device
 * without a certificate stays unknown.  t_rotate_fleet covers real leaves.
 */
static void
test_issuer_columns(void **state)
{
	struct fx *f = *state;
	struct device_info *v = NULL;
	struct device_filter flt = { NULL, -1, NOW, NULL };
	struct enroll_ctx none;
	size_t n = 0, i;

	assert_int_equal(devices_list(f->s, f->sg, &flt, &v, &n), 0);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_int_equal(v[i].issuer_current, -1);
		assert_string_equal(v[i].issuer, "");
	}
	device_infos_free(v, n);
	memset(&none, 0, sizeof(none));
	flt.ca = &none;
	assert_int_equal(devices_list(f->s, f->sg, &flt, &v, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(v[0].issuer_current, 0);	/* a: a record, not ours */
	assert_string_equal(v[0].issuer, "");
	assert_int_equal(v[1].issuer_current, -1);	/* b: no certificate */
	device_infos_free(v, n);
}

static void
test_all_sorted(void **state)
{
	struct fx *f = *state;
	struct device_info *v = NULL;
	size_t n = 0;

	assert_int_equal(devices_list(f->s, f->sg, NULL, &v, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0].d.fqdn, "a.example.test");
	assert_string_equal(v[1].d.fqdn, "b.example.test");
	assert_string_equal(v[2].d.fqdn, "c.example.test");
	assert_string_equal(v[3].d.fqdn, "d.example.test");
	assert_int_equal(v[0].not_after, NOW + 100 * 86400);
	assert_int_equal(v[1].not_after, 0);	/* no certificate */
	assert_null(v[1].d.cert_serial);
	assert_string_equal(v[1].d.state, "failed");
	device_infos_free(v, n);
}

static void
test_filters(void **state)
{
	struct fx *f = *state;
	struct device_info *v = NULL;
	size_t n;

	n = list(f, "enrolled", -1, &v);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].d.fqdn, "a.example.test");
	assert_string_equal(v[1].d.fqdn, "c.example.test");
	device_infos_free(v, n);

	n = list(f, "retired", -1, &v);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].d.fqdn, "d.example.test");
	device_infos_free(v, n);

	n = list(f, "auth_failed", -1, &v);
	assert_int_equal(n, 0);
	device_infos_free(v, n);

	/* Within 30 days: c (10 days) and d (expired); not a, not b. */
	n = list(f, NULL, 30, &v);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].d.fqdn, "c.example.test");
	assert_string_equal(v[1].d.fqdn, "d.example.test");
	device_infos_free(v, n);

	n = list(f, "enrolled", 0, &v);
	assert_int_equal(n, 0);
	device_infos_free(v, n);

	n = list(f, "enrolled", 365, &v);
	assert_int_equal(n, 2);
	device_infos_free(v, n);
}

static void
test_states(void **state)
{
	struct fx *f = *state;
	struct device_filter flt = { "gone", -1, 0, NULL };
	struct device_info *v = (struct device_info *)1;
	size_t n = 5, i;
	static const char *const want[] = { "pending", "enrolling", "enrolled",
	    "failed", "auth_failed", "compromised", "retired" };

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_string_equal(device_states[i], want[i]);
		assert_true(device_state_valid(want[i]));
		assert_true(store_device_state_valid(device_states[i]));
	}
	assert_null(device_states[i]);
	assert_false(device_state_valid("Enrolled"));
	assert_false(device_state_valid(NULL));
	assert_int_equal(devices_list(f->s, f->sg, &flt, &v, &n), AMTCA_E_USAGE);
	assert_null(v);
	assert_int_equal(n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_issuer_columns, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_all_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_states, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
