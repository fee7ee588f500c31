/*
 * CSR intake: the only place a requester's bytes enter the CA.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static int
looks_pem(const unsigned char *buf, size_t len)
{
	static const char tag[] = "-----BEGIN ";

	return len >= sizeof(tag) - 1 &&
	    memmem(buf, len, tag, sizeof(tag) - 1) != NULL;
}

/* Reject a CSR asking for CA:TRUE; anything else it asks for is ignored. */
static int
check_requested_ca(X509_REQ *req)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	BASIC_CONSTRAINTS *bc = NULL;
	int i, ret = AMTCA_E_CSR;

	exts = X509_REQ_get_extensions(req);
	if (exts == NULL) {
		/* Either no extensionRequest at all, or one that is malformed. */
		if (X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) >= 0 ||
		    X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1) >= 0) {
			ret = amtca_fail_ssl(AMTCA_E_CSR, "CSR extension request "
			    "is malformed");
			goto out;
		}
		ERR_clear_error();
		ret = 0;
		goto out;
	}
	i = X509v3_get_ext_by_NID(exts, NID_basic_constraints, -1);
	if (i >= 0) {
		bc = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, i));
		if (bc == NULL) {
			ret = amtca_fail_ssl(AMTCA_E_CSR, "CSR basicConstraints "
			    "request is malformed");
			goto out;
		}
		if (bc->ca) {
			ret = amtca_fail(AMTCA_E_CSR, "CSR requests a CA "
			    "certificate (basicConstraints CA:TRUE): only "
			    "server certificates are issued");
			goto out;
		}
	}
	ret = 0;
out:
	BASIC_CONSTRAINTS_free(bc);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return ret;
}

int
ca_csr_parse(const unsigned char *buf, size_t len, X509_REQ **out)
{
	X509_REQ *req = NULL;
	BIO *bio = NULL;
	const unsigned char *p;
	EVP_PKEY *pk;
	int r, is_rsa = 0, ret = AMTCA_E_CSR;

	*out = NULL;
	if (buf == NULL || len == 0) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR is empty");
		goto out;
	}
	if (len > AMTCA_CSR_MAX) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR is larger than %d bytes",
		    AMTCA_CSR_MAX);
		goto out;
	}
	if (looks_pem(buf, len)) {
		if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	} else {
		p = buf;
		req = d2i_X509_REQ(NULL, &p, (long)len);
		if (req != NULL && p != buf + len) {
			ret = amtca_fail(AMTCA_E_CSR, "CSR has %zu trailing bytes "
			    "after the DER request", (size_t)(buf + len - p));
			goto out;
		}
	}
	if (req == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_CSR, "CSR is not a PEM or DER "
		    "PKCS#10 request");
		goto out;
	}
	if (X509_REQ_get_version(req) != X509_REQ_VERSION_1) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR has unknown version %ld",
		    X509_REQ_get_version(req));
		goto out;
	}
	pk = X509_REQ_get0_pubkey(req);
	if ((r = ca_key_check(pk, AMTCA_E_CSR, "CSR", &is_rsa)) != 0) {
		ERR_clear_error();
		ret = r;
		goto out;
	}
	if (X509_REQ_verify(req, pk) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CSR, "CSR signature does not verify "
		    "(no proof of possession of the key)");
		goto out;
	}
	if ((r = check_requested_ca(req)) != 0) {
		ret = r;
		goto out;
	}
	*out = req;
	req = NULL;
	ret = 0;
out:
	X509_REQ_free(req);
	BIO_free(bio);
	return ret;
}
