/*
 * The signing boundary between policy (ca/) and keys (hsm/).
 *
 * ca/ builds every to-be-signed structure itself and asks a signer for the
 * signature value only; it never learns where the key lives.  hsm/ provides
 * a signer backed by a PKCS#11 key; tests provide an in-memory one.  This is
 * what lets signing later move into a separate privilege-separated process
 * (as OpenSSH does with ssh-pkcs11-helper) without touching ca/.
 */
#ifndef AMTCA_COMMON_SIGNER_H
#define AMTCA_COMMON_SIGNER_H

#include <stddef.h>

#include <openssl/evp.h>

/* Largest signature value: RSA-4096 is 512 bytes; DER ECDSA P-384 < 110. */
#define CA_SIG_MAX 512

struct ca_signer {
	void *ctx;		/* the signer's own state, opaque to ca/ */
	EVP_PKEY *pub;		/* borrowed: public half of the signing key */
	/*
	 * Sign `tbs` (the DER to be signed) with digest `md` (EVP_sha256() or
	 * EVP_sha384()).  On entry *siglen is the capacity of `sig` (at least
	 * CA_SIG_MAX); on success it is the length of the X.509 signature
	 * value: PKCS#1 v1.5 for RSA, DER ECDSA-Sig-Value for EC.
	 * Must be safe to call from several threads at once.
	 * Returns 0 or a negative AMTCA_E_* code.
	 */
	int (*sign)(void *ctx, const EVP_MD *md, const unsigned char *tbs,
	    size_t tbslen, unsigned char *sig, size_t *siglen);
};

#endif
