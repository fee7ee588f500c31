/*
 * libFuzzer target for CSR intake: ca_csr_parse() over arbitrary bytes
 * (PEM or DER, any size: the size cap is part of what is exercised).
 *
 * Differential: ca_csr_parse() walks the DER itself (for speed), so every
 * request it accepts must also be accepted by OpenSSL's own parser, verify
 * under OpenSSL's X509_REQ_verify(), and carry the same public key.  (The
 * converse need not hold: our intake is stricter.)
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static X509_REQ *
openssl_parse(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	BIO *b;
	X509_REQ *r;

	if (memmem(data, size, "-----BEGIN ", 11) == NULL)
		return d2i_X509_REQ(NULL, &p, (long)size);
	if ((b = BIO_new_mem_buf(data, (int)size)) == NULL)
		return NULL;
	r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_csr *csr = NULL;
	X509_REQ *ref;

	if (ca_csr_parse(data, size, &csr) == 0) {
		if (csr == NULL || ca_csr_pubkey(csr) == NULL)
			__builtin_trap();
		ref = openssl_parse(data, size);
		if (ref == NULL || X509_REQ_verify(ref, X509_REQ_get0_pubkey(ref)) != 1 ||
		    EVP_PKEY_eq(X509_REQ_get0_pubkey(ref), ca_csr_pubkey(csr)) != 1)
			__builtin_trap();
		X509_REQ_free(ref);
	} else if (csr != NULL)
		__builtin_trap();
	ca_csr_free(csr);
	amtca_err_clear();
	return 0;
}
