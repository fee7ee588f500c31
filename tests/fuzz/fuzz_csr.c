/*
 * libFuzzer target for CSR intake: ca_csr_parse() over arbitrary bytes
 * (PEM or DER, any size: the size cap is part of what is exercised).
 */
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "ca/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509_REQ *req = NULL;

	if (ca_csr_parse(data, size, &req) == 0) {
		/* What issuance reads from an accepted request must be there. */
		if (req == NULL || X509_REQ_get0_pubkey(req) == NULL)
			__builtin_trap();
	} else if (req != NULL)
		__builtin_trap();
	X509_REQ_free(req);
	amtca_err_clear();
	return 0;
}
