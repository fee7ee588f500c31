/*
 * The signer's core (signer/core.c) over an in-memory PKI and a real
 * store: who may obtain which profile, what a front end may revoke, CRLs
 * by issuer key id, certificate queries with paging.  Every refusal
 * records nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/store.h"
#include "common/err.h"
#include "common/util.h"
#include "enroll/home.h"
#include "signer/proc.h"
#include "unit/ca/soft_signer.h"

struct fx {
	char *dir;
	struct store *st;
	struct test_pki pki;
	struct home h;
	struct sgn *s;
	EVP_PKEY *key;
	unsigned char *csr;
	size_t csrlen;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[512];

	assert_non_null(f);
	f->dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/ca.db", f->dir);
	assert_int_equal(store_open(path, 1, &f->st), 0);
	test_pki_init(&f->pki, "p256", "p256", 0, 0, f->st);
	f->h.store = f->h.state = f->st;
	f->h.ca = f->pki.ca;
	f->h.root = f->pki.root_cert;
	f->h.inter = f->pki.inter_cert;
	f->h.policy = f->pki.pol;
	assert_int_equal(sgn_local_home(&f->h, &f->s), 0);
	f->key = soft_key("p256", 0);
	f->csrlen = soft_csr_der(f->key, 0, &f->csr);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	sgn_close(f->s);
	test_pki_free(&f->pki);
	store_close(f->st);
	OPENSSL_free(f->csr);
	EVP_PKEY_free(f->key);
	test_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static size_t
ncerts(struct fx *f)
{
	struct store_cert *c = NULL;
	size_t n = 0;

	assert_int_equal(store_cert_list(f->st, &c, &n), 0);
	store_certs_free(c, n);
	return n;
}

static int
issue(struct fx *f, enum sgn_who_kind kind, enum sgn_profile p,
    const char *fqdn, const char *device, char **serial)
{
	struct sgn_who who;
	struct sgn_issue_req req;
	unsigned char *der = NULL;
	size_t len = 0;
	int r;

	memset(&who, 0, sizeof(who));
	memset(&req, 0, sizeof(req));
	who.kind = kind;
	if (kind == SGN_WHO_BASIC) {
		who.user = "admin";
		who.password = "guess";
	} else if (kind == SGN_WHO_CERT) {
		/* A "chain" the signer never issued, claiming anything. */
		who.cert[0] = f->csr;
		who.certlen[0] = f->csrlen;
		who.ncert = 1;
	}
	req.profile = p;
	req.fqdn = fqdn;
	req.device = device;
	req.csr = f->csr;
	req.csrlen = f->csrlen;
	r = sgn_issue(f->s, &who, &req, &der, &len, serial);
	if (r == 0) {
		assert_non_null(der);
		assert_true(len > 0);
	} else {
		assert_null(der);
		assert_int_equal(len, 0);
	}
	free(der);
	return r;
}

static int
revoke(struct fx *f, const char *serial, int reason)
{
	struct sgn_who who;

	memset(&who, 0, sizeof(who));
	who.kind = SGN_WHO_LOCAL;
	return sgn_revoke(f->s, &who, serial, reason, NULL, NULL);
}

static void
test_amt_issue(void **state)
{
	struct fx *f = *state;
	struct store_cert *c = NULL;
	char *serial = NULL;

	f->s->core->frontend = 1;
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_AMT,
	    "AMT-1.example.com", "amt-1.example.com", &serial), 0);
	assert_int_equal(sgn_cert_get(f->s, serial, &c), 0);
	assert_string_equal(c->device, "amt-1.example.com");
	assert_string_equal(c->fqdn, "amt-1.example.com");
	/* The requester is who the signer says, user@host. */
	assert_non_null(strchr(c->requester, '@'));
	store_cert_free(c);
	free(serial);
	assert_int_equal(ncerts(f), 1);
	/* An AMT leaf is bound to the device it names. */
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_AMT,
	    "amt-1.example.com", "amt-2.example.com", NULL), AMTCA_E_DENIED);
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_AMT,
	    "amt-1.example.com", NULL, NULL), AMTCA_E_DENIED);
	/* Only AMT leaves are bound. */
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_SERVICE,
	    "ca.example.com", "amt-1.example.com", NULL), AMTCA_E_DENIED);
	/* The policy still applies. */
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_AMT,
	    "amt-1.example.org", "amt-1.example.org", NULL), AMTCA_E_POLICY);
	assert_int_equal(ncerts(f), 1);
}

static void
test_forged_requesters(void **state)
{
	struct fx *f = *state;

	f->s->core->frontend = 1;
	/* An EST-profile issue from the front end itself. */
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_EST,
	    "web.example.com", NULL, NULL), AMTCA_E_DENIED);
	/* A certificate chain that is not ours, a guessed password. */
	assert_int_equal(issue(f, SGN_WHO_CERT, SGN_PROFILE_EST,
	    "web.example.com", NULL, NULL), AMTCA_E_AUTH);
	assert_int_equal(issue(f, SGN_WHO_BASIC, SGN_PROFILE_EST,
	    "web.example.com", NULL, NULL), AMTCA_E_AUTH);
	assert_int_equal(issue(f, SGN_WHO_CERT, SGN_PROFILE_AMT,
	    "amt-1.example.com", "amt-1.example.com", NULL), AMTCA_E_AUTH);
	/* Admin certificates come from the operator, never a front end. */
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_ADMIN,
	    "ops.example.com", NULL, NULL), AMTCA_E_DENIED);
	assert_int_equal(ncerts(f), 0);
	f->s->core->frontend = 0;
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_ADMIN,
	    "ops.example.com", NULL, NULL), 0);
	assert_int_equal(ncerts(f), 1);
}

static void
test_frontend_revoke(void **state)
{
	struct fx *f = *state;
	struct store_device d;
	struct store_cert *c = NULL;
	char *s1 = NULL, *s2 = NULL, *svc = NULL;
	int was = -1;

	f->s->core->frontend = 1;
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_AMT,
	    "amt-1.example.com", "amt-1.example.com", &s1), 0);
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_AMT,
	    "amt-1.example.com", "amt-1.example.com", &s2), 0);
	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_SERVICE,
	    "ca.example.com", NULL, &svc), 0);
	/* Not a reason a front end may give. */
	assert_int_equal(revoke(f, s1, 1), AMTCA_E_DENIED);
	assert_int_equal(revoke(f, s1, 0), AMTCA_E_DENIED);
	/* Not a device's leaf. */
	assert_int_equal(revoke(f, svc, 4), AMTCA_E_DENIED);
	/* Superseded while the device keeps another valid leaf. */
	assert_int_equal(revoke(f, s1, 4), 0);
	/* ... but never its last valid one. */
	assert_int_equal(revoke(f, s2, 4), AMTCA_E_DENIED);
	/* Ceased only once the state says the device is retired. */
	assert_int_equal(revoke(f, s2, 5), AMTCA_E_DENIED);
	assert_int_equal(sgn_cert_get(f->s, s2, &c), 0);
	assert_string_equal(c->status, "valid");
	store_cert_free(c);
	memset(&d, 0, sizeof(d));
	d.fqdn = (char *)"amt-1.example.com";
	d.state = (char *)"retired";
	d.cert_serial = s2;
	d.updated_at = 1;
	assert_int_equal(store_device_put(f->st, &d), 0);
	assert_int_equal(revoke(f, s2, 5), 0);
	/* The operator may revoke anything, for any reason. */
	f->s->core->frontend = 0;
	assert_int_equal(sgn_revoke(f->s, &(struct sgn_who){ .kind =
	    SGN_WHO_LOCAL }, svc, 1, &c, &was), 0);
	assert_int_equal(was, 0);
	assert_string_equal(c->status, "revoked");
	assert_int_equal(c->revoke_reason, 1);
	store_cert_free(c);
	assert_int_equal(revoke(f, "FFFF", 1), AMTCA_E_NOT_FOUND);
	free(s1);
	free(s2);
	free(svc);
}

static void
test_crl_by_issuer(void **state)
{
	struct fx *f = *state;
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	const unsigned char *p;
	unsigned int mdlen = 0;
	char *hex = NULL, *s1 = NULL;
	size_t len = 0;
	X509_CRL *crl;

	assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_AMT,
	    "amt-1.example.com", "amt-1.example.com", &s1), 0);
	assert_int_equal(revoke(f, s1, 1), 0);
	assert_int_equal(X509_pubkey_digest(f->pki.inter_cert, EVP_sha1(), md,
	    &mdlen), 1);
	assert_int_equal(amtca_hex_encode(md, mdlen, &hex), 0);
	assert_int_equal(sgn_crl(f->s, hex, &der, &len), 0);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(crl);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1);
	X509_CRL_free(crl);
	free(der);
	assert_int_equal(sgn_crl(f->s, NULL, &der, &len), 0);
	free(der);
	assert_int_equal(sgn_crl(f->s, "00112233445566778899aabbccddeeff00112233",
	    &der, &len), AMTCA_E_NOT_FOUND);
	assert_null(der);
	free(hex);
	free(s1);
}

static void
test_cert_query(void **state)
{
	struct fx *f = *state;
	struct sgn_cert_query q;
	struct store_cert *c = NULL, *all = NULL;
	size_t n = 0, nall = 0, got = 0, i;
	char *ser[5], last[80] = "";
	int k;

	for (k = 0; k < 5; k++) {
		char name[64];

		snprintf(name, sizeof(name), "amt-%d.example.com", k % 2);
		assert_int_equal(issue(f, SGN_WHO_LOCAL, SGN_PROFILE_AMT, name,
		    name, &ser[k]), 0);
	}
	assert_int_equal(revoke(f, ser[0], 1), 0);
	memset(&q, 0, sizeof(q));
	q.device = "AMT-0.example.com";
	assert_int_equal(sgn_cert_list(f->s, &q, &c, &n), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++)
		assert_null(c[i].der);
	store_certs_free(c, n);
	q.with_der = 1;
	q.status = "revoked";
	assert_int_equal(sgn_cert_list(f->s, &q, &c, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].serial, ser[0]);
	assert_non_null(c[0].der);
	store_certs_free(c, n);
	q.status = "nonsense";
	assert_int_equal(sgn_cert_list(f->s, &q, &c, &n), AMTCA_E_USAGE);
	/* Paging by serial: pages of 2 cover everything once, in order. */
	memset(&q, 0, sizeof(q));
	assert_int_equal(sgn_cert_list(f->s, &q, &all, &nall), 0);
	assert_int_equal(nall, 5);
	q.limit = 2;
	for (;;) {
		q.after = last[0] ? last : NULL;
		assert_int_equal(sgn_cert_list(f->s, &q, &c, &n), 0);
		if (n == 0)
			break;
		assert_true(n <= 2);
		for (i = 0; i < n; i++) {
			if (last[0] != '\0')
				assert_true(strlen(c[i].serial) > strlen(last) ||
				    (strlen(c[i].serial) == strlen(last) &&
				    strcasecmp(c[i].serial, last) > 0));
			snprintf(last, sizeof(last), "%s", c[i].serial);
			got++;
		}
		store_certs_free(c, n);
		c = NULL;
	}
	assert_int_equal(got, 5);
	store_certs_free(all, nall);
	for (k = 0; k < 5; k++)
		free(ser[k]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_amt_issue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_requesters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_frontend_revoke, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crl_by_issuer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cert_query, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
