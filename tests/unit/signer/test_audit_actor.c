/*
 * The signer's audit entries name the requester it authenticated, not the
 * process's own actor (docs/audit.md): issuance and revocation through
 * sgn_issue/sgn_revoke append cert.issue and cert.revoke by the client.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "ca/audit.h"
#include "ca/store.h"
#include "enroll/home.h"
#include "signer/proc.h"
#include "signer/signer.h"
#include "unit/ca/soft_signer.h"

static void
test_signer_names_the_requester(void **state)
{
	char *dir = test_tmpdir(), path[512], *serial = NULL, *me = NULL;
	struct store *st = NULL;
	struct test_pki pki;
	struct home h;
	struct sgn *s = NULL;
	struct sgn_who who;
	struct sgn_issue_req req;
	struct store_audit *e = NULL;
	unsigned char *csr = NULL, *der = NULL;
	size_t csrlen, len = 0, n = 0, i, issued = 0, revoked = 0;
	EVP_PKEY *key;

	(void)state;
	snprintf(path, sizeof(path), "%s/ca.db", dir);
	assert_int_equal(store_open(path, 1, &st), 0);
	/* The process's own actor: what an entry must NOT name here. */
	assert_int_equal(store_set_actor(st, "process@elsewhere"), 0);
	test_pki_init(&pki, "p256", "p256", 0, 0, st);
	memset(&h, 0, sizeof(h));
	h.store = h.state = st;
	h.ca = pki.ca;
	h.root = pki.root_cert;
	h.inter = pki.inter_cert;
	h.policy = pki.pol;
	assert_int_equal(sgn_local_home(&h, &s), 0);
	key = soft_key("p256", 0);
	csrlen = soft_csr_der(key, 0, &csr);

	memset(&who, 0, sizeof(who));
	who.kind = SGN_WHO_LOCAL;
	memset(&req, 0, sizeof(req));
	req.profile = SGN_PROFILE_AMT;
	req.fqdn = "amt-1.example.com";
	req.device = "amt-1.example.com";
	req.csr = csr;
	req.csrlen = csrlen;
	assert_int_equal(sgn_issue(s, &who, &req, &der, &len, &serial), 0);
	assert_int_equal(sgn_revoke(s, &who, serial, 1, NULL, NULL), 0);

	assert_int_equal(home_local_actor(&me), 0);
	assert_int_equal(store_audit_list(st, 0, &e, &n), 0);
	assert_int_equal(audit_verify(e, n, NULL, 0, NULL, NULL), 0);
	for (i = 0; i < n; i++) {
		if (strcmp(e[i].subject, serial) != 0)
			continue;
		/* LOCAL is named user@host by the signer, as home_local_actor. */
		assert_string_equal(e[i].actor, me);
		issued += strcmp(e[i].action, "cert.issue") == 0;
		revoked += strcmp(e[i].action, "cert.revoke") == 0;
	}
	assert_int_equal(issued, 1);
	assert_int_equal(revoked, 1);

	store_audits_free(e, n);
	free(me);
	free(der);
	free(serial);
	OPENSSL_free(csr);
	EVP_PKEY_free(key);
	sgn_close(s);
	test_pki_free(&pki);
	store_close(st);
	test_rmrf(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signer_names_the_requester),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
