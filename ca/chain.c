/*
 * Chain export (PEM bundle, DER directory, PKCS#7 certs-only) and loading
 * a certificate file.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include "common/util.h"

/* Longest CN part of a DER file name. */
#define FILE_CN_MAX 64

int
ca_chain_format_parse(const char *s, enum ca_chain_format *out)
{
	if (s != NULL && strcasecmp(s, "pem") == 0)
		*out = CA_CHAIN_PEM;
	else if (s != NULL && strcasecmp(s, "der") == 0)
		*out = CA_CHAIN_DER;
	else if (s != NULL && (strcasecmp(s, "p7b") == 0 ||
	    strcasecmp(s, "pkcs7") == 0))
		*out = CA_CHAIN_P7B;
	else
		return amtca_fail(AMTCA_E_USAGE, "chain format \"%.32s\" unknown: "
		    "use pem, der or p7b", s ? s : "");
	return 0;
}

static int
bio_bytes(BIO *b, unsigned char **out, size_t *len)
{
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);

	*out = NULL;
	*len = 0;
	if (n < 0)
		return AMTCA_E_INTERNAL;
	if ((*out = malloc((size_t)n + 1)) == NULL)
		return AMTCA_E_NOMEM;
	if (n > 0)
		memcpy(*out, p, (size_t)n);
	*len = (size_t)n;
	return 0;
}

static int
export_pem(X509 *const *certs, size_t n, const char *path)
{
	BIO *b = NULL;
	unsigned char *buf = NULL;
	size_t len = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	if ((b = BIO_new(BIO_s_mem())) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		if (!PEM_write_bio_X509(b, certs[i])) {
			ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode certificate "
			    "%zu of the chain", i + 1);
			goto out;
		}
	if ((r = bio_bytes(b, &buf, &len)) != 0) {
		ret = r;
		goto out;
	}
	if (path == NULL) {
		if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
			ret = amtca_fail(AMTCA_E_IO, "cannot write the chain to "
			    "standard output");
			goto out;
		}
	} else if ((r = amtca_out_write(path, buf, len, 0644)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	free(buf);
	BIO_free(b);
	return ret;
}

static void
cn_for_file(X509 *x, char out[FILE_CN_MAX + 1])
{
	char cn[256];
	int n, i;

	n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    cn, sizeof(cn));
	if (n <= 0) {
		strcpy(out, "cert");
		return;
	}
	for (i = 0; i < n && i < FILE_CN_MAX; i++) {
		unsigned char c = (unsigned char)cn[i];

		out[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_') ?
		    (char)c : '_';
	}
	out[i] = '\0';
	if (out[0] == '.')		/* no hidden files, no ".." */
		out[0] = '_';
}

static int
export_der(X509 *const *certs, size_t n, const char *dir)
{
	char cn[FILE_CN_MAX + 1], *path = NULL;
	unsigned char *der = NULL;
	size_t i;
	int len, r, ret = AMTCA_E_INTERNAL;

	if (dir == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "DER chain export needs a directory");
		goto out;
	}
	if ((r = amtca_mkdirs(dir, 0755)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < n; i++) {
		cn_for_file(certs[i], cn);
		if (asprintf(&path, "%s/%02zu-%s.cer", dir, i + 1, cn) == -1) {
			path = NULL;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((len = i2d_X509(certs[i], &der)) <= 0) {
			ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode certificate "
			    "%zu of the chain", i + 1);
			goto out;
		}
		if ((r = amtca_file_write(path, der, (size_t)len, 0644, 0)) != 0) {
			ret = r;
			goto out;
		}
		OPENSSL_free(der);
		der = NULL;
		free(path);
		path = NULL;
	}
	ret = 0;
out:
	OPENSSL_free(der);
	free(path);
	return ret;
}

static int
export_p7b(X509 *const *certs, size_t n, const char *path)
{
	PKCS7 *p7 = NULL;
	unsigned char *der = NULL;
	size_t i;
	int len, r, ret = AMTCA_E_INTERNAL;

	if (path == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "P7B chain export needs a file");
		goto out;
	}
	/* Degenerate SignedData (no signers), as `openssl crl2pkcs7 -nocrl`. */
	if ((p7 = PKCS7_new()) == NULL ||
	    !PKCS7_set_type(p7, NID_pkcs7_signed) ||
	    !PKCS7_content_new(p7, NID_pkcs7_data)) {
		ret = amtca_fail_ssl(AMTCA_E_NOMEM, "cannot build PKCS#7");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (!PKCS7_add_certificate(p7, certs[i])) {
			ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot add certificate "
			    "%zu to PKCS#7", i + 1);
			goto out;
		}
	if ((len = i2d_PKCS7(p7, &der)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode PKCS#7");
		goto out;
	}
	if ((r = amtca_out_write(path, der, (size_t)len, 0644)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	OPENSSL_free(der);
	PKCS7_free(p7);
	return ret;
}

int
ca_chain_export(X509 *const *certs, size_t n, enum ca_chain_format fmt,
    const char *path)
{
	size_t i;

	if (certs == NULL || n == 0)
		return amtca_fail(AMTCA_E_USAGE, "empty chain");
	for (i = 0; i < n; i++)
		if (certs[i] == NULL)
			return amtca_fail(AMTCA_E_USAGE, "chain has a hole at %zu",
			    i + 1);
	switch (fmt) {
	case CA_CHAIN_PEM:
		return export_pem(certs, n, path);
	case CA_CHAIN_DER:
		return export_der(certs, n, path);
	case CA_CHAIN_P7B:
		return export_p7b(certs, n, path);
	}
	return amtca_fail(AMTCA_E_USAGE, "unknown chain format");
}

int
ca_cert_parse(const unsigned char *buf, size_t len, X509 **out)
{
	BIO *b = NULL;
	const unsigned char *p = buf;
	X509 *x = NULL;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (buf == NULL || len == 0 || len > AMTCA_CERT_FILE_MAX) {
		ret = amtca_fail(AMTCA_E_CERT, "certificate is empty or larger "
		    "than %d bytes", AMTCA_CERT_FILE_MAX);
		goto out;
	}
	if (memmem(buf, len, "-----BEGIN ", 11) != NULL) {
		if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	} else
		x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "not a PEM or DER certificate");
		goto out;
	}
	*out = x;
	ret = 0;
out:
	BIO_free(b);
	return ret;
}

int
ca_cert_load(const char *path, X509 **out)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((r = amtca_file_read(path, AMTCA_CERT_FILE_MAX, &buf, &len)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = ca_cert_parse(buf, len, out)) != 0) {
		char why[256];

		/* The detail lives in the buffer amtca_fail() writes: copy it. */
		snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
		ret = amtca_fail(r, "%s: %s", path, why);
		goto out;
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

int
ca_keyid_hex(X509 *x, char out[CA_KEYID_HEX_MAX + 1])
{
	static const char hx[] = "0123456789abcdef";
	const ASN1_OCTET_STRING *k = X509_get0_subject_key_id(x);
	unsigned char md[EVP_MAX_MD_SIZE];
	const unsigned char *d;
	unsigned int mdlen = 0;
	int i, n;

	out[0] = '\0';
	if (k != NULL) {
		d = ASN1_STRING_get0_data(k);
		n = ASN1_STRING_length(k);
	} else {
		ERR_clear_error();
		if (X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) != 1)
			return amtca_fail_ssl(AMTCA_E_CERT, "cannot hash a CA "
			    "certificate's key");
		d = md;
		n = (int)mdlen;
	}
	if (n <= 0 || n * 2 > CA_KEYID_HEX_MAX)
		return amtca_fail(AMTCA_E_CERT, "a CA certificate's key "
		    "identifier is empty or longer than %d bytes",
		    CA_KEYID_HEX_MAX / 2);
	for (i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = '\0';
	return 0;
}
