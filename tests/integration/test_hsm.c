/*
 * hsm/ against a throwaway SoftHSM token created by hsm_softhsm_create()
 * in a mkdtemp directory (removed at the end).  Each test opens its own
 * handle: PKCS#11 login state is per process, so a handle kept open across
 * tests would let a wrong PIN "succeed" with CKR_USER_ALREADY_LOGGED_IN.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/util.h"
#include "hsm/admin.h"
#include "integration/helper_token.h"

#define TOKEN_LABEL	"amtca-test"
#define THREADS		4
#define PER_THREAD	100

struct st {
	struct test_token tok;
	char bad_pin_path[128];
};

static struct st *S;

static int
group_setup(void **state)
{
	static struct st st;

	if (test_token_create(&st.tok, "amtca-hsm", TOKEN_LABEL) != 0)
		return -1;
	snprintf(st.bad_pin_path, sizeof(st.bad_pin_path), "%s/bad.pin",
	    st.tok.dir);
	if (amtca_file_write(st.bad_pin_path, "0000\n", 5, 0600, 1) != 0)
		return -1;
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

static int
try_open(const char *module, const char *uri, const char *pin_file,
    struct hsm **h)
{
	struct hsm_open_opts o = {
		.module = module,
		.token_uri = uri,
		.pin_file = pin_file,
		.softhsm_conf = S->tok.conf,
	};

	return hsm_open(&o, h);
}

static struct hsm *
open_ok(void)
{
	struct hsm *h = NULL;
	int r;

	r = try_open(S->tok.module, S->tok.uri, S->tok.pin_path, &h);
	if (r != 0)
		fprintf(stderr, "hsm_open: %s\n", amtca_errmsg(r));
	assert_int_equal(r, 0);
	assert_non_null(h);
	return h;
}

static int
verify(EVP_PKEY *pub, const EVP_MD *md, const unsigned char *msg, size_t len,
    const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Keys made once by test_keygen_all_types and used by later tests. */
static const char *const kg_label[] = {
	"kg-rsa2048", "kg-rsa3072", "kg-rsa4096", "kg-p256", "kg-p384"
};
static const enum hsm_keytype kg_type[] = {
	HSM_KEY_RSA2048, HSM_KEY_RSA3072, HSM_KEY_RSA4096, HSM_KEY_P256,
	HSM_KEY_P384
};

static void
test_keygen_all_types_then_find_by_label(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_key *k, *f;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < 5; i++) {
		k = f = NULL;
		r = hsm_keygen(h, kg_type[i], kg_label[i], &k);
		if (r != 0)
			fprintf(stderr, "keygen %s: %s\n", kg_label[i], amtca_errmsg(r));
		assert_int_equal(r, 0);
		assert_int_equal(hsm_key_type(k), kg_type[i]);
		assert_int_equal(hsm_key_find(h, kg_label[i], &f), 0);
		assert_int_equal(hsm_key_type(f), kg_type[i]);
		assert_int_equal(EVP_PKEY_eq(hsm_key_public(k), hsm_key_public(f)), 1);
		hsm_key_free(k);
		hsm_key_free(f);
	}
	hsm_free(h);
}

static void
test_keygen_attributes_sensitive_never_extractable(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_key *k = NULL;
	struct hsm_key_protection p;
	size_t i;

	(void)state;
	for (i = 0; i < 5; i++) {
		assert_int_equal(hsm_key_find(h, kg_label[i], &k), 0);
		assert_int_equal(hsm_key_protection(k, &p), 0);
		assert_true(p.token);
		assert_true(p.is_private);
		assert_true(p.sensitive);
		assert_false(p.extractable);
		assert_true(p.always_sensitive);
		assert_true(p.never_extractable);
		hsm_key_free(k);
		k = NULL;
	}
	hsm_free(h);
}

static void
sign_verify(struct hsm *h, const char *label, const EVP_MD *md)
{
	static const unsigned char msg[] = "tbsCertificate stand-in";
	unsigned char sig[CA_SIG_MAX];
	size_t siglen = sizeof(sig);
	struct hsm_key *k = NULL;
	struct ca_signer sg;

	assert_int_equal(hsm_key_find(h, label, &k), 0);
	assert_int_equal(hsm_sign(k, md, msg, sizeof(msg), sig, &siglen), 0);
	assert_true(verify(hsm_key_public(k), md, msg, sizeof(msg), sig, siglen));
	/* The check can fail: a flipped bit or another digest must not verify. */
	assert_false(verify(hsm_key_public(k), md, msg, sizeof(msg) - 1, sig,
	    siglen));
	assert_false(verify(hsm_key_public(k), md == EVP_sha256() ? EVP_sha384() :
	    EVP_sha256(), msg, sizeof(msg), sig, siglen));
	/* And through the ca_signer boundary ca/ uses. */
	hsm_key_signer(k, &sg);
	assert_ptr_equal(sg.pub, hsm_key_public(k));
	siglen = sizeof(sig);
	assert_int_equal(sg.sign(sg.ctx, md, msg, sizeof(msg), sig, &siglen), 0);
	assert_true(verify(sg.pub, md, msg, sizeof(msg), sig, siglen));
	hsm_key_free(k);
}

static void
test_sign_verifies_with_openssl(void **state)
{
	struct hsm *h = open_ok();
	size_t i;

	(void)state;
	for (i = 0; i < 5; i++) {
		sign_verify(h, kg_label[i], EVP_sha256());
		sign_verify(h, kg_label[i], EVP_sha384());
	}
	hsm_free(h);
}

static void
test_sign_small_buffer_refused(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_key *k = NULL;
	static const unsigned char msg[] = "0123456789";
	unsigned char sig[CA_SIG_MAX];
	size_t siglen;

	(void)state;
	assert_int_equal(hsm_key_find(h, "kg-rsa2048", &k), 0);
	siglen = 255;
	assert_int_equal(hsm_sign(k, EVP_sha256(), msg, 10, sig, &siglen),
	    AMTCA_E_USAGE);
	/* The pool must still work after a refused call. */
	siglen = sizeof(sig);
	assert_int_equal(hsm_sign(k, EVP_sha256(), msg, 10, sig, &siglen), 0);
	assert_int_equal(siglen, 256);
	hsm_key_free(k);
	hsm_free(h);
}

struct worker {
	struct hsm_key *k;
	const EVP_MD *md;
	int id, good;
};

static void *
worker(void *arg)
{
	struct worker *w = arg;
	unsigned char msg[64], sig[CA_SIG_MAX];
	size_t siglen;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf((char *)msg, sizeof(msg), "thread %d message %d", w->id, i);
		siglen = sizeof(sig);
		if (hsm_sign(w->k, w->md, msg, strlen((char *)msg), sig, &siglen) != 0)
			continue;
		if (verify(hsm_key_public(w->k), w->md, msg, strlen((char *)msg),
		    sig, siglen))
			w->good++;
	}
	return NULL;
}

static void
concurrent(const char *label, const EVP_MD *md)
{
	struct hsm *h = open_ok();
	struct hsm_key *k = NULL;
	struct worker w[THREADS];
	pthread_t t[THREADS];
	int i;

	assert_int_equal(hsm_key_find(h, label, &k), 0);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ k, md, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].good, PER_THREAD);
	}
	hsm_key_free(k);
	hsm_free(h);
}

static void
test_concurrent_signing_all_verify(void **state)
{
	(void)state;
	concurrent("kg-rsa2048", EVP_sha256());
	concurrent("kg-p256", EVP_sha256());
	concurrent("kg-p384", EVP_sha384());
}

static void
test_wrong_pin_is_hsm_pin_and_does_not_lock(void **state)
{
	struct hsm *h = NULL;
	char *pin = NULL;
	const char *msg;
	int r;

	(void)state;
	/* No other handle is open here, so the PIN really is checked. */
	r = try_open(S->tok.module, S->tok.uri, S->bad_pin_path, &h);
	assert_int_equal(r, AMTCA_E_HSM_PIN);
	assert_null(h);
	msg = amtca_errmsg(r);
	assert_non_null(strstr(msg, "wrong PIN"));
	assert_null(strstr(msg, "0000"));
	assert_int_equal(amtca_secret_read(S->tok.pin_path, &pin), 0);
	assert_null(strstr(msg, pin));
	amtca_secret_free(pin);
	/* One failure must not lock the token: the right PIN still works. */
	h = open_ok();
	hsm_free(h);
}

static void
test_pin_source_in_uri(void **state)
{
	struct hsm *h = NULL;
	char uri[512];
	int r;

	(void)state;
	snprintf(uri, sizeof(uri), "%s;pin-source=file:%s", S->tok.uri, S->tok.pin_path);
	assert_int_equal(try_open(S->tok.module, uri, NULL, &h), 0);
	hsm_free(h);
	h = NULL;
	snprintf(uri, sizeof(uri), "%s?pin-source=file://%s", S->tok.uri, S->tok.pin_path);
	assert_int_equal(try_open(S->tok.module, uri, NULL, &h), 0);
	hsm_free(h);
	h = NULL;
	snprintf(uri, sizeof(uri), "%s?pin-source=%s", S->tok.uri, S->bad_pin_path);
	assert_int_equal(try_open(S->tok.module, uri, NULL, &h), AMTCA_E_HSM_PIN);
	/* A PIN inside the URI is refused before anything is tried. */
	snprintf(uri, sizeof(uri), "%s?pin-value=1234", S->tok.uri);
	r = try_open(S->tok.module, uri, NULL, &h);
	assert_int_equal(r, AMTCA_E_CONFIG);
	assert_null(strstr(amtca_errmsg(r), "1234"));
	/* No PIN at all. */
	assert_int_equal(try_open(S->tok.module, S->tok.uri, NULL, &h), AMTCA_E_CONFIG);
	assert_null(h);
}

static void
test_missing_token_is_hsm_token(void **state)
{
	struct hsm *h = NULL;

	(void)state;
	assert_int_equal(try_open(S->tok.module, "pkcs11:token=no-such-token",
	    S->tok.pin_path, &h), AMTCA_E_HSM_TOKEN);
	assert_null(h);
	/* "pkcs11:" matches our token and SoftHSM's empty slot: ambiguous. */
	assert_int_equal(try_open(S->tok.module, "pkcs11:", S->tok.pin_path, &h),
	    AMTCA_E_HSM_TOKEN);
	assert_int_equal(try_open(S->tok.module, "https://example", S->tok.pin_path, &h),
	    AMTCA_E_CONFIG);
}

static void
test_missing_module_is_hsm_module(void **state)
{
	struct hsm *h = NULL;

	(void)state;
	assert_int_equal(try_open("/nonexistent/libnothing.so", S->tok.uri,
	    S->tok.pin_path, &h), AMTCA_E_HSM_MODULE);
	assert_null(h);
	assert_int_equal(try_open(NULL, S->tok.uri, S->tok.pin_path, &h),
	    AMTCA_E_HSM_MODULE);
}

static void
test_missing_key_is_hsm_key(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_key *k = NULL;

	(void)state;
	assert_int_equal(hsm_key_find(h, "no-such-key", &k), AMTCA_E_HSM_KEY);
	assert_null(k);
	hsm_free(h);
}

static void
test_duplicate_label_is_exists(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_key *k = NULL, *f = NULL;

	(void)state;
	assert_int_equal(hsm_keygen(h, HSM_KEY_P256, "kg-rsa2048", &k),
	    AMTCA_E_EXISTS);
	assert_null(k);
	/* The original key is untouched and still the only one. */
	assert_int_equal(hsm_key_find(h, "kg-rsa2048", &f), 0);
	assert_int_equal(hsm_key_type(f), HSM_KEY_RSA2048);
	hsm_key_free(f);
	hsm_free(h);
}

static void
test_destroy_removes_both_halves(void **state)
{
	struct hsm *h = open_ok();
	struct hsm_key *k = NULL, *f = NULL;
	unsigned char sig[CA_SIG_MAX];
	size_t siglen = sizeof(sig);

	(void)state;
	assert_int_equal(hsm_keygen(h, HSM_KEY_P256, "temp", &k), 0);
	assert_int_equal(hsm_key_destroy(h, k), 0);
	assert_int_equal(hsm_sign(k, EVP_sha256(), (const unsigned char *)"x", 1,
	    sig, &siglen), AMTCA_E_HSM_KEY);
	hsm_key_free(k);
	assert_int_equal(hsm_key_find(h, "temp", &f), AMTCA_E_HSM_KEY);
	/* The label is free again: the public half is gone too. */
	k = NULL;
	assert_int_equal(hsm_keygen(h, HSM_KEY_P256, "temp", &k), 0);
	assert_int_equal(hsm_key_destroy(h, k), 0);
	hsm_key_free(k);
	hsm_free(h);
}

static void
test_softhsm_create_refuses_existing(void **state)
{
	char *m = NULL, *u = NULL, *c = NULL, pin2[160];

	(void)state;
	snprintf(pin2, sizeof(pin2), "%s/second.pin", S->tok.dir);
	assert_int_equal(hsm_softhsm_create(S->tok.dir, "again", pin2, &m, &u, &c),
	    AMTCA_E_EXISTS);
	assert_null(m);
	assert_int_equal(access(pin2, F_OK), -1);
	/* The PIN file is private to the owner. */
	{
		struct stat sb;

		assert_int_equal(stat(S->tok.pin_path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
		assert_int_equal(stat(S->tok.dir, &sb), 0);
		assert_int_equal(sb.st_mode & 0077, 0);
	}
}

/* The comma-separated words after "Access:", matched whole. */
static void
access_flags(char *line, int *sensitive, int *extractable, int *never)
{
	char *w, *save = NULL;

	*sensitive = *extractable = *never = 0;
	line = strstr(line, "Access:") + strlen("Access:");
	for (w = strtok_r(line, ",\n", &save); w != NULL;
	    w = strtok_r(NULL, ",\n", &save)) {
		w += strspn(w, " \t");
		*sensitive |= strcmp(w, "sensitive") == 0;
		*extractable |= strcmp(w, "extractable") == 0;
		*never |= strcmp(w, "never extractable") == 0;
	}
}

/*
 * An outside tool's view of the private key: pkcs11-tool prints
 * "Access: sensitive, always sensitive, never extractable, local".  The PIN
 * goes through the child's environment (--pin env:VAR), not its argv.
 */
static void
test_pkcs11_tool_sees_sensitive_never_extractable(void **state)
{
	char cmd[512], line[512], *pin = NULL;
	int in_priv = 0, seen = 0, sensitive, extractable, never;
	FILE *f;

	(void)state;
	if (access("/usr/bin/pkcs11-tool", X_OK) != 0)
		skip();
	assert_int_equal(amtca_secret_read(S->tok.pin_path, &pin), 0);
	assert_int_equal(setenv("AMTCA_TEST_PIN", pin, 1), 0);
	amtca_secret_free(pin);
	assert_int_equal(setenv("SOFTHSM2_CONF", S->tok.conf, 1), 0);
	snprintf(cmd, sizeof(cmd), "pkcs11-tool --module '%s' --token-label '%s' "
	    "--login --pin env:AMTCA_TEST_PIN --list-objects --type privkey 2>&1",
	    S->tok.module, TOKEN_LABEL);
	assert_non_null(f = popen(cmd, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Private Key Object", 18) == 0)
			in_priv = 1;
		if (in_priv && strstr(line, "label:") != NULL)
			in_priv = strstr(line, "kg-p256") != NULL ? 2 : 0;
		if (in_priv == 2 && strstr(line, "Usage:") != NULL) {
			assert_non_null(strstr(line, "sign"));
			assert_null(strstr(line, "decrypt"));
		}
		if (in_priv == 2 && strstr(line, "Access:") != NULL) {
			access_flags(line, &sensitive, &extractable, &never);
			assert_true(sensitive);
			assert_false(extractable);
			assert_true(never);
			seen = 1;
			in_priv = 0;
		}
	}
	assert_int_equal(pclose(f), 0);
	assert_int_equal(unsetenv("AMTCA_TEST_PIN"), 0);
	assert_true(seen);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keygen_all_types_then_find_by_label),
		cmocka_unit_test(test_keygen_attributes_sensitive_never_extractable),
		cmocka_unit_test(test_sign_verifies_with_openssl),
		cmocka_unit_test(test_sign_small_buffer_refused),
		cmocka_unit_test(test_concurrent_signing_all_verify),
		cmocka_unit_test(test_wrong_pin_is_hsm_pin_and_does_not_lock),
		cmocka_unit_test(test_pin_source_in_uri),
		cmocka_unit_test(test_missing_token_is_hsm_token),
		cmocka_unit_test(test_missing_module_is_hsm_module),
		cmocka_unit_test(test_missing_key_is_hsm_key),
		cmocka_unit_test(test_duplicate_label_is_exists),
		cmocka_unit_test(test_destroy_removes_both_halves),
		cmocka_unit_test(test_softhsm_create_refuses_existing),
		cmocka_unit_test(test_pkcs11_tool_sees_sensitive_never_extractable),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
