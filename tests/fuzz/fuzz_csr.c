/*
 * libFuzzer target for CSR intake: ca_csr_parse() over arbitrary bytes
 * (PEM or DER, any size: the size cap is part of what is exercised).
 *
 * Differential: ca_csr_parse() walks the DER itself (for speed), so every
 * request it accepts must also be accepted by OpenSSL's own parser, verify
 * under OpenSSL's X509_REQ_verify(), and carry the same public key.  (The
 * converse need not hold: our intake is stricter.)  The SubjectPublicKeyInfo
 * intake writes for the certificate must be the canonical one: exactly what
 * i2d_PUBKEY() writes for that key, whatever encoding the request used.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "ca/ca_int.h"

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

/* Our SPKI is i2d_PUBKEY's encoding of the key the reference parsed. */
static int
spki_canonical(const struct ca_csr *csr, EVP_PKEY *refkey)
{
	const unsigned char *spki, *bits;
	unsigned char *want = NULL;
	size_t spki_len, bits_len;
	EVP_PKEY *pk;
	int is_rsa, wlen, ok;

	if (ca_csr_spki(csr, &spki, &spki_len, &bits, &bits_len, &is_rsa) != 0 ||
	    bits + bits_len != spki + spki_len)
		return 0;
	/* A fresh key, not the reference, whose encoding keeps the CSR's form. */
	if ((pk = EVP_PKEY_dup(refkey)) == NULL)
		return 0;
	if (!is_rsa)
		EVP_PKEY_set_utf8_string_param(pk,
		    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
		    OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED);
	wlen = i2d_PUBKEY(pk, &want);
	ok = wlen > 0 && (size_t)wlen == spki_len &&
	    memcmp(want, spki, spki_len) == 0;
	OPENSSL_free(want);
	EVP_PKEY_free(pk);
	return ok;
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
		    EVP_PKEY_eq(X509_REQ_get0_pubkey(ref), ca_csr_pubkey(csr)) != 1 ||
		    !spki_canonical(csr, X509_REQ_get0_pubkey(ref)))
			__builtin_trap();
		X509_REQ_free(ref);
	} else if (csr != NULL)
		__builtin_trap();
	ca_csr_free(csr);
	amtca_err_clear();
	return 0;
}
