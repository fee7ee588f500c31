/*
 * Every CRL (the intermediate's, ca/crl.c; the root's over intermediates,
 * ca/hier.c): a v2 TBSCertList written as DER (OpenSSL 3.0 offers no way
 * to set the inner signature AlgorithmIdentifier of an X509_CRL without
 * the private key), signed through the signer, parsed back and verified
 * as a check.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

static const unsigned char oid_crl_number[] = { 0x55, 0x1d, 0x14 };
static const unsigned char oid_reason[] = { 0x55, 0x1d, 0x15 };

static void
put_entries(struct der *d, const struct ca_crl_entry *e, size_t n)
{
	unsigned char reason;
	size_t i, s1, s2, m[2];

	for (i = 0; i < n; i++) {
		s1 = der_open(d, DER_SEQUENCE);
		der_uint(d, e[i].serial, e[i].serial_len);
		der_time(d, e[i].when);
		/* RFC 5280 5.3.1: omit the extension rather than say unspecified. */
		if (e[i].reason > 0 && e[i].reason <= 10 && e[i].reason != 7) {
			reason = (unsigned char)e[i].reason;
			s2 = der_open(d, DER_SEQUENCE);
			der_ext_open(d, oid_reason, sizeof(oid_reason), 0, m);
			der_prim(d, DER_ENUMERATED, &reason, 1);
			der_ext_close(d, m);
			der_close(d, s2);
		}
		der_close(d, s1);
	}
}

int
ca_crl_sign(const struct ca_signer *s, const struct ca_sigalg *a,
    const unsigned char *algid_issuer, size_t algid_issuer_len,
    const unsigned char *aki, size_t aki_len, const struct ca_crl_entry *e,
    size_t n, int days, int pem, unsigned char **out, size_t *outlen)
{
	static const unsigned char v2[] = { 0x02, 0x01, 0x01 };
	size_t top, s1, s2, m[2], derlen = 0, tbslen = 0, i;
	unsigned char *tbs = NULL, *der = NULL, num[8];
	const unsigned char *p;
	struct timeval tv;
	unsigned long long ms;
	X509_CRL *crl = NULL;
	BIO *b = NULL;
	struct der d;
	time_t now;
	char *pp = NULL;
	long pl;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*outlen = 0;
	der_init(&d, 1024);
	if (days < 1 || days > AMTCA_DAYS_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "CRL validity of %d days is out "
		    "of range (1-%d)", days, AMTCA_DAYS_MAX);
		goto out;
	}
	gettimeofday(&tv, NULL);
	now = tv.tv_sec;
	ms = (unsigned long long)tv.tv_sec * 1000 + (unsigned long long)tv.tv_usec / 1000;
	for (i = 0; i < sizeof(num); i++)
		num[i] = (unsigned char)(ms >> (8 * (sizeof(num) - 1 - i)));

	top = der_open(&d, DER_SEQUENCE);
	der_raw(&d, v2, sizeof(v2));
	der_raw(&d, algid_issuer, algid_issuer_len);
	der_time(&d, now);				/* thisUpdate */
	der_time(&d, now + (time_t)days * 86400);	/* nextUpdate */
	if (n > 0) {
		s1 = der_open(&d, DER_SEQUENCE);
		put_entries(&d, e, n);
		der_close(&d, s1);
	}
	s1 = der_open(&d, DER_CTXC(0));
	s2 = der_open(&d, DER_SEQUENCE);
	if (aki != NULL)
		der_raw(&d, aki, aki_len);
	der_ext_open(&d, oid_crl_number, sizeof(oid_crl_number), 0, m);
	der_uint(&d, num, sizeof(num));
	der_ext_close(&d, m);
	der_close(&d, s2);
	der_close(&d, s1);
	der_close(&d, top);
	if ((r = der_take(&d, &tbs, &tbslen)) != 0 ||
	    (r = ca_sign_der(s, a, tbs, tbslen, &der, &derlen)) != 0) {
		ret = r;
		goto out;
	}
	p = der;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)derlen)) == NULL ||
	    p != der + derlen) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "signed CRL does not parse");
		goto out;
	}
	if (X509_CRL_verify(crl, s->pub) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "the signed CRL does not "
		    "verify with the signer's key");
		goto out;
	}
	if (!pem) {
		*out = der;
		*outlen = derlen;
		der = NULL;
		ret = 0;
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_X509_CRL(b, crl) ||
	    (pl = BIO_get_mem_data(b, &pp)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode the CRL as PEM");
		goto out;
	}
	if ((*out = malloc((size_t)pl + 1)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(*out, pp, (size_t)pl);
	(*out)[pl] = '\0';
	*outlen = (size_t)pl;
	ret = 0;
out:
	der_release(&d);
	free(tbs);
	free(der);
	X509_CRL_free(crl);
	BIO_free(b);
	return ret;
}
