/*
 * CRL: a v2 TBSCertList written as DER (OpenSSL 3.0 offers no way to set
 * the inner signature AlgorithmIdentifier of an X509_CRL without the
 * private key), signed through the signer, parsed back as a check.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"
#include "ca/store.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

static const unsigned char oid_crl_number[] = { 0x55, 0x1d, 0x14 };
static const unsigned char oid_reason[] = { 0x55, 0x1d, 0x15 };

/* Largest serial accepted from the store (RFC 5280: 20 octets). */
#define SERIAL_MAX_OCTETS 20

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Uppercase hex (odd length allowed) into big-endian octets. */
static int
serial_octets(const char *hex, unsigned char out[SERIAL_MAX_OCTETS],
    size_t *len)
{
	size_t n = strlen(hex), i, o = 0;
	int hi, lo;

	if (n == 0 || n > 2 * SERIAL_MAX_OCTETS)
		return -1;
	i = 0;
	if (n % 2 == 1) {
		if ((lo = hexval(hex[0])) < 0)
			return -1;
		out[o++] = (unsigned char)lo;
		i = 1;
	}
	for (; i < n; i += 2) {
		if ((hi = hexval(hex[i])) < 0 || (lo = hexval(hex[i + 1])) < 0)
			return -1;
		out[o++] = (unsigned char)(hi << 4 | lo);
	}
	*len = o;
	return 0;
}

static void
put_entries(struct der *d, const struct store_cert *c, size_t n)
{
	unsigned char ser[SERIAL_MAX_OCTETS], reason;
	size_t i, len, s1, s2, m[2];

	for (i = 0; i < n; i++) {
		if (serial_octets(c[i].serial, ser, &len) != 0)
			continue;	/* not ours to name; store_cert_add vets serials */
		s1 = der_open(d, DER_SEQUENCE);
		der_uint(d, ser, len);
		der_time(d, c[i].revoked_at);
		/* RFC 5280 5.3.1: omit the extension rather than say unspecified. */
		if (c[i].revoke_reason > 0 && c[i].revoke_reason <= 10 &&
		    c[i].revoke_reason != 7) {
			reason = (unsigned char)c[i].revoke_reason;
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
ca_crl_create(struct ca *ca, int days, int pem, unsigned char **out,
    size_t *outlen)
{
	static const unsigned char v2[] = { 0x02, 0x01, 0x01 };
	struct store_cert *revoked = NULL;
	size_t nrevoked = 0, top, s1, s2, m[2], derlen = 0, tbslen = 0, i;
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
	if (ca == NULL || ca->store == NULL) {
		ret = amtca_fail(AMTCA_E_STORE, "no issuance database to list "
		    "revocations from");
		goto out;
	}
	if (days < 1 || days > AMTCA_DAYS_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "CRL validity of %d days is out "
		    "of range (1-%d)", days, AMTCA_DAYS_MAX);
		goto out;
	}
	if ((r = store_cert_list_revoked_by(ca->store, ca->keyid, ca->first,
	    &revoked, &nrevoked)) != 0) {
		ret = r;
		goto out;
	}
	gettimeofday(&tv, NULL);
	now = tv.tv_sec;
	ms = (unsigned long long)tv.tv_sec * 1000 + (unsigned long long)tv.tv_usec / 1000;
	for (i = 0; i < sizeof(num); i++)
		num[i] = (unsigned char)(ms >> (8 * (sizeof(num) - 1 - i)));

	top = der_open(&d, DER_SEQUENCE);
	der_raw(&d, v2, sizeof(v2));
	der_raw(&d, ca->algid_issuer, ca->algid_issuer_len);
	der_time(&d, now);				/* thisUpdate */
	der_time(&d, now + (time_t)days * 86400);	/* nextUpdate */
	if (nrevoked > 0) {
		s1 = der_open(&d, DER_SEQUENCE);
		put_entries(&d, revoked, nrevoked);
		der_close(&d, s1);
	}
	s1 = der_open(&d, DER_CTXC(0));
	s2 = der_open(&d, DER_SEQUENCE);
	der_raw(&d, ca->aki, ca->aki_len);
	der_ext_open(&d, oid_crl_number, sizeof(oid_crl_number), 0, m);
	der_uint(&d, num, sizeof(num));
	der_ext_close(&d, m);
	der_close(&d, s2);
	der_close(&d, s1);
	der_close(&d, top);
	if ((r = der_take(&d, &tbs, &tbslen)) != 0 ||
	    (r = ca_sign_der(ca->signer, &ca->alg, tbs, tbslen, &der,
	    &derlen)) != 0) {
		ret = r;
		goto out;
	}
	p = der;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)derlen)) == NULL ||
	    p != der + derlen) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "signed CRL does not parse");
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
	store_certs_free(revoked, nrevoked);
	free(tbs);
	free(der);
	X509_CRL_free(crl);
	BIO_free(b);
	return ret;
}
