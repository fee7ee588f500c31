/*
 * DER writing and the signing step shared by every ca/ structure.
 */
#include "ca/ca_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "common/limits.h"

void
der_init(struct der *d, size_t cap)
{
	d->len = 0;
	d->err = 0;
	d->cap = cap < 64 ? 64 : cap;
	if ((d->p = malloc(d->cap)) == NULL) {
		d->cap = 0;
		d->err = 1;
	}
}

void
der_release(struct der *d)
{
	free(d->p);
	d->p = NULL;
	d->len = d->cap = 0;
}

int
der_take(struct der *d, unsigned char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (d->err) {
		der_release(d);
		return AMTCA_E_NOMEM;
	}
	*out = d->p;
	*len = d->len;
	d->p = NULL;
	d->len = d->cap = 0;
	return 0;
}

static int
der_reserve(struct der *d, size_t more)
{
	unsigned char *np;
	size_t ncap;

	if (d->err)
		return -1;
	if (more <= d->cap - d->len)
		return 0;
	ncap = d->cap;
	while (ncap - d->len < more) {
		if (ncap > ((size_t)-1) / 2)
			goto fail;
		ncap *= 2;
	}
	if ((np = realloc(d->p, ncap)) == NULL)
		goto fail;
	d->p = np;
	d->cap = ncap;
	return 0;
fail:
	d->err = 1;
	return -1;
}

void
der_raw(struct der *d, const void *buf, size_t len)
{
	if (der_reserve(d, len) != 0)
		return;
	if (len > 0)
		memcpy(d->p + d->len, buf, len);
	d->len += len;
}

static size_t
len_octets(size_t n)
{
	size_t k = 0;

	if (n < 0x80)
		return 0;
	while (n > 0) {
		k++;
		n >>= 8;
	}
	return k;
}

static void
put_len(unsigned char *p, size_t n)
{
	size_t k = len_octets(n), i;

	if (k == 0) {
		p[0] = (unsigned char)n;
		return;
	}
	p[0] = (unsigned char)(0x80 | k);
	for (i = 0; i < k; i++)
		p[k - i] = (unsigned char)(n >> (8 * i));
}

void
der_prim(struct der *d, unsigned tag, const void *buf, size_t len)
{
	size_t k = len_octets(len);

	if (der_reserve(d, 2 + k + len) != 0)
		return;
	d->p[d->len] = (unsigned char)tag;
	put_len(d->p + d->len + 1, len);
	d->len += 2 + k;
	der_raw(d, buf, len);
}

size_t
der_open(struct der *d, unsigned tag)
{
	size_t mark;

	if (der_reserve(d, 2) != 0)
		return 0;
	d->p[d->len] = (unsigned char)tag;
	mark = d->len + 1;		/* one length octet reserved */
	d->len += 2;
	return mark;
}

void
der_close(struct der *d, size_t mark)
{
	size_t n, k;

	if (d->err)
		return;
	n = d->len - mark - 1;
	k = len_octets(n);
	if (k > 0) {
		/* Long form: shift the content right to make room. */
		if (der_reserve(d, k) != 0)
			return;
		memmove(d->p + mark + 1 + k, d->p + mark + 1, n);
		d->len += k;
	}
	put_len(d->p + mark, n);
}

void
der_uint(struct der *d, const unsigned char *mag, size_t len)
{
	size_t mark;

	while (len > 1 && mag[0] == 0) {
		mag++;
		len--;
	}
	mark = der_open(d, DER_INTEGER);
	if (len == 0 || (mag[0] & 0x80))
		der_raw(d, "\0", 1);
	der_raw(d, mag, len);
	der_close(d, mark);
}

void
der_time(struct der *d, time_t t)
{
	struct tm tm;
	char s[32];
	int year, n;

	if (gmtime_r(&t, &tm) == NULL) {
		d->err = 1;
		return;
	}
	year = tm.tm_year + 1900;
	/* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime after. */
	if (year >= 1950 && year < 2050)
		n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ",
		    year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
	else
		n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ",
		    year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec);
	if (n <= 0 || (size_t)n >= sizeof(s) || year < 0 || year > 9999) {
		d->err = 1;
		return;
	}
	der_prim(d, (year >= 1950 && year < 2050) ? DER_UTCTIME : DER_GENTIME,
	    s, (size_t)n);
}

void
der_ext_open(struct der *d, const unsigned char *oid, size_t oidlen,
    int critical, size_t mark[2])
{
	static const unsigned char t[] = { 0xff };

	mark[0] = der_open(d, DER_SEQUENCE);
	der_prim(d, DER_OID, oid, oidlen);
	if (critical)
		der_prim(d, DER_BOOLEAN, t, 1);
	mark[1] = der_open(d, DER_OCTETSTRING);
}

void
der_ext_close(struct der *d, const size_t mark[2])
{
	der_close(d, mark[1]);
	der_close(d, mark[0]);
}

int
der_unwrap(const unsigned char *p, size_t len, const unsigned char **body,
    size_t *bodylen)
{
	size_t n = 0, k, i, hdr;

	if (len < 2)
		return -1;
	if (p[1] < 0x80) {
		n = p[1];
		hdr = 2;
	} else {
		k = p[1] & 0x7f;
		if (k == 0 || k > sizeof(size_t) || len < 2 + k)
			return -1;
		for (i = 0; i < k; i++)
			n = n << 8 | p[2 + i];
		hdr = 2 + k;
	}
	if (n > len - hdr)
		return -1;
	*body = p + hdr;
	*bodylen = n;
	return 0;
}

static int
ec_curve_nid(EVP_PKEY *pk)
{
	char name[80];
	size_t len = 0;
	int nid;

	if (!EVP_PKEY_get_group_name(pk, name, sizeof(name), &len))
		return NID_undef;
	if ((nid = OBJ_sn2nid(name)) == NID_undef)
		nid = EC_curve_nist2nid(name);
	return nid;
}

int
ca_key_check(EVP_PKEY *pk, int code, const char *what, int *is_rsa)
{
	int bits, nid;

	if (pk == NULL)
		return amtca_fail(code, "%s: public key cannot be decoded", what);
	if (EVP_PKEY_is_a(pk, "RSA")) {
		bits = EVP_PKEY_get_bits(pk);
		if (bits < 2048 || bits > 4096)
			return amtca_fail(code, "%s: RSA-%d key not allowed: "
			    "use 2048 to 4096 bits", what, bits);
		*is_rsa = 1;
		return 0;
	}
	if (EVP_PKEY_is_a(pk, "EC")) {
		nid = ec_curve_nid(pk);
		if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1)
			return amtca_fail(code, "%s: EC curve %s not allowed: "
			    "use P-256 or P-384", what,
			    nid == NID_undef ? "(unnamed)" : OBJ_nid2sn(nid));
		*is_rsa = 0;
		return 0;
	}
	return amtca_fail(code, "%s: key type %s not allowed: use RSA or EC "
	    "P-256/P-384", what, EVP_PKEY_get0_type_name(pk) ?
	    EVP_PKEY_get0_type_name(pk) : "unknown");
}

int
ca_sigalg_init(struct ca_sigalg *a, EVP_PKEY *pub)
{
	return ca_sigalg_init_md(a, pub, -1);
}

int
ca_sigalg_init_md(struct ca_sigalg *a, EVP_PKEY *pub, int sha384)
{
	X509_ALGOR *alg = NULL;
	unsigned char *p;
	int len, is_rsa = 0, p384 = 0, ret = AMTCA_E_INTERNAL, r;

	memset(a, 0, sizeof(*a));
	if ((r = ca_key_check(pub, AMTCA_E_CONFIG, "signing key", &is_rsa)) != 0)
		return r;
	if (sha384 >= 0)
		p384 = sha384;
	else if (!is_rsa)
		p384 = ec_curve_nid(pub) == NID_secp384r1;
	if (is_rsa)
		a->nid = p384 ? NID_sha384WithRSAEncryption :
		    NID_sha256WithRSAEncryption;
	else
		a->nid = p384 ? NID_ecdsa_with_SHA384 : NID_ecdsa_with_SHA256;
	/* Fetched once: the signer's digest init then skips the implicit fetch. */
	if ((a->md = EVP_MD_fetch(NULL, p384 ? "SHA384" : "SHA256", NULL)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot fetch the digest");
		goto out;
	}
	/* RFC 4055: NULL parameters for RSA; RFC 5758: absent for ECDSA. */
	a->ptype = is_rsa ? V_ASN1_NULL : V_ASN1_UNDEF;
	if ((alg = X509_ALGOR_new()) == NULL ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(a->nid), a->ptype, NULL)) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((len = i2d_X509_ALGOR(alg, NULL)) <= 0 ||
	    (size_t)len > sizeof(a->algid)) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot encode the algorithm");
		goto out;
	}
	p = a->algid;
	a->algid_len = (size_t)i2d_X509_ALGOR(alg, &p);
	ret = 0;
out:
	X509_ALGOR_free(alg);
	if (ret != 0)
		ca_sigalg_release(a);
	return ret;
}

void
ca_sigalg_release(struct ca_sigalg *a)
{
	EVP_MD_free(a->md);
	a->md = NULL;
}

int
ca_sign_der(const struct ca_signer *s, const struct ca_sigalg *a,
    const unsigned char *tbs, size_t tbslen, unsigned char **out,
    size_t *outlen)
{
	unsigned char sig[CA_SIG_MAX];
	size_t siglen = sizeof(sig), mark, bmark;
	struct der d;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*outlen = 0;
	der_init(&d, tbslen + a->algid_len + CA_SIG_MAX + 16);
	if ((r = s->sign(s->ctx, a->md, tbs, tbslen, sig, &siglen)) != 0) {
		ret = r;
		goto out;
	}
	if (siglen == 0 || siglen > sizeof(sig)) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "signer returned %zu bytes",
		    siglen);
		goto out;
	}
	mark = der_open(&d, DER_SEQUENCE);
	der_raw(&d, tbs, tbslen);
	der_raw(&d, a->algid, a->algid_len);
	bmark = der_open(&d, DER_BITSTRING);
	der_raw(&d, "\0", 1);			/* no unused bits */
	der_raw(&d, sig, siglen);
	der_close(&d, bmark);
	der_close(&d, mark);
	ret = der_take(&d, out, outlen);
out:
	der_release(&d);
	return ret;
}

time_t
ca_asn1_time_t(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return (time_t)-1;
	return timegm(&tm);
}
