/*
 * AMT credentials sealed under a token key, against a throwaway SoftHSM
 * token: hsm/aead.c (keys, GCM and the CBC + HMAC fallback, associated
 * data) and signer/cred.c (put, the pending-work rule, the rate limit) over
 * a real operational store.  Tests run in order: the first finds no key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca/store.h"
#include "common/util.h"
#include "hsm/admin.h"
#include "integration/helper_token.h"
#include "signer/core.h"

#define TOKEN_LABEL	"amtca-cred-test"
#define PASSWORD	"Pa55-w0rd-nobody-should-see"

struct st {
	struct test_token tok;
	char db[128];
};

static struct st *S;

static int
group_setup(void **state)
{
	static struct st st;

	if (test_token_create(&st.tok, "amtca-cred", TOKEN_LABEL) != 0)
		return -1;
	snprintf(st.db, sizeof(st.db), "sqlite:%s/state.db", st.tok.dir);
	S = &st;
	*state = &st;
	return 0;
}

static int
group_teardown(void **state)
{
	struct st *st = *state;

	if (st == NULL)
		return 0;
	return test_token_destroy(&st->tok);
}

static struct hsm *
open_ok(void)
{
	struct hsm_open_opts o = {
		.module = S->tok.module,
		.token_uri = S->tok.uri,
		.pin_file = S->tok.pin_path,
		.softhsm_conf = S->tok.conf,
	};
	struct hsm *h = NULL;
	int r;

	r = hsm_open(&o, &h);
	if (r != 0)
		fprintf(stderr, "hsm_open: %s\n", amtca_errmsg(r));
	assert_int_equal(r, 0);
	return h;
}

static int
contains(const unsigned char *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle)) != NULL;
}

static void
test_no_key_until_created(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_aead *k = NULL;

	(void)state;
	assert_int_equal(hsm_aead_key(h, 0, &k), AMTCA_E_HSM_KEY);
	assert_null(k);
	hsm_free(h);
}

static void
test_keys_sensitive_not_extractable(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_aead *k = NULL, *k2 = NULL;
	struct hsm_key_protection p;
	int mac;

	(void)state;
	assert_int_equal(hsm_aead_key(h, 1, &k), 0);
	for (mac = 0; mac < 2; mac++) {
		assert_int_equal(hsm_aead_protection(k, mac, &p), 0);
		assert_true(p.token);
		assert_true(p.is_private);
		assert_true(p.sensitive);
		assert_false(p.extractable);
		assert_true(p.always_sensitive);
		assert_true(p.never_extractable);
	}
	/* Created once: a second create finds the same keys, a plain open too. */
	assert_int_equal(hsm_aead_key(h, 1, &k2), 0);
	hsm_aead_free(k2);
	k2 = NULL;
	assert_int_equal(hsm_aead_key(h, 0, &k2), 0);
	hsm_aead_free(k2);
	hsm_aead_free(k);
	hsm_free(h);
}

/* Seal with `mech`, check the mechanism, round trip, AAD and tampering. */
static void
round_trip(enum hsm_aead_mech mech, enum hsm_aead_mech want)
{
	struct hsm *h = open_ok();
	struct hsm_aead *k = NULL;
	const char *secret = "admin" "\0" PASSWORD;
	size_t slen = 5 + 1 + strlen(PASSWORD), bloblen = 0, ptlen = 0;
	unsigned char *blob = NULL, *pt = NULL;
	enum hsm_aead_mech used = HSM_AEAD_AUTO, hdr = HSM_AEAD_AUTO;

	assert_int_equal(hsm_aead_key(h, 0, &k), 0);
	assert_int_equal(hsm_aead_seal(k, mech, (const unsigned char *)"lab", 3,
	    (const unsigned char *)secret, slen, &blob, &bloblen, &used), 0);
	assert_int_equal(used, want);
	assert_int_equal(hsm_aead_blob_mech(blob, bloblen, &hdr), 0);
	assert_int_equal(hdr, want);
	assert_false(contains(blob, bloblen, PASSWORD));
	assert_false(contains(blob, bloblen, "admin"));
	/* Opens under its name... */
	assert_int_equal(hsm_aead_open(k, (const unsigned char *)"lab", 3, blob,
	    bloblen, &pt, &ptlen), 0);
	assert_int_equal(ptlen, slen);
	assert_memory_equal(pt, secret, slen);
	assert_int_equal(pt[ptlen], '\0');
	free(pt);
	pt = NULL;
	/* ...not under another one, nor tampered with. */
	assert_int_equal(hsm_aead_open(k, (const unsigned char *)"lab2", 4, blob,
	    bloblen, &pt, &ptlen), AMTCA_E_DENIED);
	assert_null(pt);
	assert_int_equal(hsm_aead_open(k, NULL, 0, blob, bloblen, &pt, &ptlen),
	    AMTCA_E_DENIED);
	blob[bloblen - 20] ^= 1;
	assert_int_equal(hsm_aead_open(k, (const unsigned char *)"lab", 3, blob,
	    bloblen, &pt, &ptlen), AMTCA_E_DENIED);
	blob[bloblen - 20] ^= 1;
	blob[9] ^= 0x80;	/* the IV */
	assert_int_equal(hsm_aead_open(k, (const unsigned char *)"lab", 3, blob,
	    bloblen, &pt, &ptlen), AMTCA_E_DENIED);
	blob[9] ^= 0x80;
	/* A header naming the other mechanism does not open either. */
	blob[5] = want == HSM_AEAD_AES_GCM ? HSM_AEAD_AES_CBC_HMAC :
	    HSM_AEAD_AES_GCM;
	assert_int_not_equal(hsm_aead_open(k, (const unsigned char *)"lab", 3,
	    blob, bloblen, &pt, &ptlen), 0);
	assert_null(pt);
	free(blob);
	hsm_aead_free(k);
	hsm_free(h);
}

static void
test_gcm_round_trip(void **state)
{
	(void)state;
	/* SoftHSM 2.6.1 does GCM: AUTO takes it. */
	round_trip(HSM_AEAD_AUTO, HSM_AEAD_AES_GCM);
	round_trip(HSM_AEAD_AES_GCM, HSM_AEAD_AES_GCM);
}

static void
test_fallback_round_trip(void **state)
{
	(void)state;
	round_trip(HSM_AEAD_AES_CBC_HMAC, HSM_AEAD_AES_CBC_HMAC);
}

static void
test_limits_and_garbage(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_aead *k = NULL;
	unsigned char big[AMTCA_AEAD_PLAIN_MAX + 1], *blob = NULL, *pt = NULL;
	size_t bloblen = 0, ptlen = 0;

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(hsm_aead_key(h, 0, &k), 0);
	assert_int_equal(hsm_aead_seal(k, HSM_AEAD_AUTO, NULL, 0, big,
	    sizeof(big), &blob, &bloblen, NULL), AMTCA_E_LIMIT);
	assert_null(blob);
	assert_int_equal(hsm_aead_open(k, NULL, 0, big, 40, &pt, &ptlen),
	    AMTCA_E_USAGE);
	assert_int_equal(hsm_aead_open(k, NULL, 0, (const unsigned char *)"ACRD",
	    4, &pt, &ptlen), AMTCA_E_USAGE);
	assert_null(pt);
	hsm_aead_free(k);
	hsm_free(h);
}

/* ---- signer/cred.c over a token and an operational store ---- */

struct core_fx {
	struct home h;
	struct sgn_core c;
};

static void
core_open(struct core_fx *f, const char *mech)
{
	int r;

	memset(f, 0, sizeof(*f));
	f->h.hsm = open_ok();
	assert_int_equal(store_open(S->db, 1, &f->h.state), 0);
	f->h.store = f->h.state;
	f->h.conf.credential_mechanism = (char *)mech;
	f->c.h = &f->h;
	r = sgn_core_cred_init(&f->c);
	assert_int_equal(r, 0);
}

static void
core_close(struct core_fx *f)
{
	sgn_core_cred_free(&f->c);
	store_close(f->h.state);
	hsm_free(f->h.hsm);
}

static void
device(struct store *s, const char *fqdn, const char *state, const char *ref)
{
	struct store_device d;

	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)fqdn;
	d.state = (char *)state;
	d.cred_ref = (char *)ref;
	d.updated_at = 1000;
	assert_int_equal(store_device_put(s, &d), 0);
}

static int
get(struct core_fx *f, const char *name, const char *fqdn)
{
	char *u = NULL, *p = NULL;
	int r;

	r = sgn_core_cred_get(&f->c, name, fqdn, &u, &p);
	if (r == 0) {
		assert_string_equal(u, "admin");
		assert_string_equal(p, PASSWORD);
	} else {
		assert_null(u);
		assert_null(p);
	}
	free(u);
	amtca_secret_free(p);
	return r;
}

/* The whole file (and its WAL) holds no byte sequence `s`. */
static void
file_lacks(const char *path, const char *s)
{
	unsigned char *buf = NULL;
	size_t len = 0;

	if (amtca_file_read(path, 64 * 1024 * 1024, &buf, &len) != 0)
		return;		/* no WAL left: nothing to look at */
	assert_false(contains(buf, len, s));
	free(buf);
}

static void
test_put_stores_no_password(void **state)
{
	struct core_fx f;
	struct store_cred *rec = NULL;
	char path[160];

	(void)state;
	core_open(&f, NULL);
	assert_int_equal(sgn_core_cred_put(&f.c, "lab", "admin", PASSWORD), 0);
	/* Bad names and users are refused before anything is sealed. */
	assert_int_equal(sgn_core_cred_put(&f.c, "../x", "admin", PASSWORD),
	    AMTCA_E_USAGE);
	assert_int_equal(sgn_core_cred_put(&f.c, "x", "ad min", PASSWORD),
	    AMTCA_E_USAGE);
	assert_int_equal(sgn_core_cred_put(&f.c, "x", "admin", ""), AMTCA_E_USAGE);
	/* The signer process refuses a put from its front end. */
	f.c.frontend = 1;
	assert_int_equal(sgn_core_cred_put(&f.c, "lab", "admin", "other"),
	    AMTCA_E_DENIED);
	f.c.frontend = 0;
	assert_int_equal(store_cred_get(f.h.state, "lab", &rec), 0);
	assert_string_equal(rec->user, "admin");
	assert_string_equal(rec->mechanism, "aes-256-gcm");
	assert_false(contains(rec->sealed, rec->sealed_len, PASSWORD));
	store_cred_free(rec);
	core_close(&f);
	snprintf(path, sizeof(path), "%s", S->db + 7);
	file_lacks(path, PASSWORD);
	snprintf(path, sizeof(path), "%s-wal", S->db + 7);
	file_lacks(path, PASSWORD);
}

static void
test_get_needs_pending_work(void **state)
{
	struct core_fx f;
	struct store_job j;
	struct store_job_device jd;

	(void)state;
	core_open(&f, NULL);
	/* No device record at all. */
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	/* Pending, but using another credential, or a password file. */
	device(f.h.state, "a.example.test", "pending", "credential:other");
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	device(f.h.state, "a.example.test", "pending", "/etc/amt.pw");
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	device(f.h.state, "a.example.test", "pending", "credential:lab2");
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	/* Pending, enrolling, failed: work to do. */
	device(f.h.state, "a.example.test", "pending", "credential:lab");
	assert_int_equal(get(&f, "lab", "a.example.test"), 0);
	device(f.h.state, "a.example.test", "enrolling", NULL);
	assert_int_equal(get(&f, "lab", "a.example.test"), 0);
	device(f.h.state, "a.example.test", "failed", NULL);
	assert_int_equal(get(&f, "lab", "a.example.test"), 0);
	/* A credential that does not exist. */
	assert_int_equal(get(&f, "nosuch", "a.example.test"), AMTCA_E_NOT_FOUND);
	/* auth_failed since the credential was last replaced: not again. */
	device(f.h.state, "a.example.test", "auth_failed", NULL);
	{
		struct store_device d;

		memset(&d, 0, sizeof(d));
		d.fqdn = (char *)"a.example.test";
		d.state = (char *)"auth_failed";
		d.updated_at = time(NULL) + 60;
		assert_int_equal(store_device_put(f.h.state, &d), 0);
	}
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	/* Enrolled: nothing to do, unless a running job still has it. */
	device(f.h.state, "a.example.test", "enrolled", NULL);
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	memset(&j, 0, sizeof(j));
	j.id = (char *)"job1";
	j.state = (char *)"running";
	assert_int_equal(store_job_put(f.h.state, &j), 0);
	memset(&jd, 0, sizeof(jd));
	jd.job_id = (char *)"job1";
	jd.fqdn = (char *)"a.example.test";
	jd.result = (char *)"enrolled";
	assert_int_equal(store_job_device_put(f.h.state, &jd), 0);
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	jd.result = (char *)"pending";
	assert_int_equal(store_job_device_put(f.h.state, &jd), 0);
	assert_int_equal(get(&f, "lab", "a.example.test"), 0);
	/* Not once the job is over, and never for a retired device. */
	j.state = (char *)"done";
	assert_int_equal(store_job_put(f.h.state, &j), 0);
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	j.state = (char *)"running";
	assert_int_equal(store_job_put(f.h.state, &j), 0);
	device(f.h.state, "a.example.test", "retired", NULL);
	assert_int_equal(get(&f, "lab", "a.example.test"), AMTCA_E_DENIED);
	/* A blob moved to another name does not open. */
	{
		struct store_cred *rec = NULL;

		assert_int_equal(store_cred_get(f.h.state, "lab", &rec), 0);
		free(rec->name);
		rec->name = strdup("moved");
		assert_int_equal(store_cred_put(f.h.state, rec), 0);
		store_cred_free(rec);
	}
	device(f.h.state, "b.example.test", "pending", "credential:moved");
	assert_int_equal(get(&f, "moved", "b.example.test"), AMTCA_E_DENIED);
	core_close(&f);
}

static void
test_rate_limit_refuses_a_burst(void **state)
{
	struct core_fx f;
	int i;

	(void)state;
	core_open(&f, NULL);
	device(f.h.state, "c.example.test", "pending", "credential:lab");
	/* Three at once, then (one per 1000 s) nothing. */
	sgn_core_cred_limits(&f.c, 0.001, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(get(&f, "lab", "c.example.test"), 0);
	assert_int_equal(get(&f, "lab", "c.example.test"), AMTCA_E_RATE);
	/* Refusals count too: a flood of bad requests is limited as well. */
	assert_int_equal(get(&f, "lab", "nosuch.example.test"), AMTCA_E_RATE);
	core_close(&f);
}

static void
test_fallback_through_the_signer(void **state)
{
	struct core_fx f;
	struct store_cred *v = NULL;
	size_t n = 0, i;
	int seen = 0;

	(void)state;
	core_open(&f, "aes-256-cbc-hmac-sha256");
	assert_int_equal(sgn_core_cred_put(&f.c, "fips", "admin", PASSWORD), 0);
	device(f.h.state, "d.example.test", "pending", "credential:fips");
	assert_int_equal(get(&f, "fips", "d.example.test"), 0);
	assert_int_equal(store_cred_list(f.h.state, &v, &n), 0);
	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, "fips") == 0) {
			assert_string_equal(v[i].mechanism,
			    "aes-256-cbc-hmac-sha256");
			seen = 1;
		}
	assert_true(seen);
	store_creds_free(v, n);
	core_close(&f);
	/* Opened by a signer that prefers GCM: the header says which. */
	core_open(&f, NULL);
	assert_int_equal(get(&f, "fips", "d.example.test"), 0);
	core_close(&f);
	/* A bad mechanism name is a configuration error. */
	memset(&f, 0, sizeof(f));
	f.h.conf.credential_mechanism = (char *)"rot13";
	f.c.h = &f.h;
	assert_int_equal(sgn_core_cred_init(&f.c), AMTCA_E_CONFIG);
	assert_null(f.c.cred);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_key_until_created),
		cmocka_unit_test(test_keys_sensitive_not_extractable),
		cmocka_unit_test(test_gcm_round_trip),
		cmocka_unit_test(test_fallback_round_trip),
		cmocka_unit_test(test_limits_and_garbage),
		cmocka_unit_test(test_put_stores_no_password),
		cmocka_unit_test(test_get_needs_pending_work),
		cmocka_unit_test(test_rate_limit_refuses_a_burst),
		cmocka_unit_test(test_fallback_through_the_signer),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
