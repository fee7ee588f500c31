/*
 * Which of this CA's intermediates issued a certificate (enroll/enroll.h).
 *
 * After `amtca ca rotate` a home has a current intermediate and, during
 * the overlap, retired ones (struct enroll_ctx: inter, retired[]).  A leaf
 * under a retired intermediate is still ours: it verifies under chain.pem
 * and the records hold it.  The engine decides per use whether "ours" must
 * also mean "current" (docs/enroll.md, "After a rotation").
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "enroll/enroll.h"

/* Is `x` a non-CA certificate whose signature verifies under `ca`? */
static int
signed_by(X509 *ca, X509 *x)
{
	EVP_PKEY *pub;
	int ok;

	if (ca == NULL || X509_check_issued(ca, x) != X509_V_OK)
		return 0;
	pub = X509_get0_pubkey(ca);
	ok = pub != NULL && X509_verify(x, pub) == 1;
	ERR_clear_error();
	return ok;
}

int
enroll_issuer(const struct enroll_ctx *c, X509 *x)
{
	size_t i;

	if (c == NULL || x == NULL || X509_check_ca(x) != 0)
		return ENROLL_ISSUER_NONE;
	if (signed_by(c->inter, x))
		return ENROLL_ISSUER_CURRENT;
	for (i = 0; i < c->nretired; i++)
		if (signed_by(c->retired[i], x))
			return (int)i + 1;
	return ENROLL_ISSUER_NONE;
}

int
enroll_retired_match(const struct enroll_ctx *c, const unsigned char *der,
    size_t len)
{
	unsigned char *mine;
	size_t i;
	int n, eq;

	for (i = 0; c != NULL && der != NULL && i < c->nretired; i++) {
		mine = NULL;
		if ((n = i2d_X509(c->retired[i], &mine)) <= 0)
			continue;
		eq = (size_t)n == len && memcmp(mine, der, len) == 0;
		OPENSSL_free(mine);
		if (eq)
			return (int)i;
	}
	return -1;
}
