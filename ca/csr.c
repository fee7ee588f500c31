/*
 * CSR intake: the only place a requester's bytes enter the CA.
 *
 * The request is walked as DER here instead of through d2i_X509_REQ():
 * OpenSSL 3.0 decodes the public key through its provider decoder chain,
 * which costs ~90 us per CSR and was the largest part of issuing a leaf.
 * We only need the TBS bytes, the SubjectPublicKeyInfo, the key numbers,
 * whether an extension request asks for CA:TRUE, and the signature; the
 * key is then built with EVP_PKEY_fromdata() (~3 us) and the signature
 * checked with EVP_DigestVerify().  Strict DER: definite, minimal lengths,
 * nothing trailing.  tests/fuzz/fuzz_csr.c compares this parser with
 * OpenSSL's on every input.
 *
 * The SubjectPublicKeyInfo a certificate will carry is written afresh in
 * its one canonical form (canonical_spki()), never copied: equivalent
 * encodings of one key (RSA without NULL parameters, EC points compressed
 * or hybrid) must not reach relying parties that may parse them
 * differently.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

struct ca_csr {
	unsigned char *der;		/* the whole request (DER) */
	size_t der_len;
	unsigned char *spki;		/* canonical SubjectPublicKeyInfo (DER) */
	size_t spki_len;
	const unsigned char *pkbits;	/* its subjectPublicKey bits, in spki */
	size_t pkbits_len;
	EVP_PKEY *pub;
	int is_rsa;
};

/* A cursor over DER bytes. */
struct rd {
	const unsigned char *p;
	size_t n;
};

/* Read one TLV with the single-byte `tag`; body into *b, whole TLV into tlv. */
static int
rd_tlv(struct rd *r, unsigned tag, struct rd *b, const unsigned char **tlv,
    size_t *tlvlen)
{
	size_t len, hdr, k, i;

	if (r->n < 2 || r->p[0] != tag)
		return -1;
	if (r->p[1] < 0x80) {
		len = r->p[1];
		hdr = 2;
	} else {
		k = r->p[1] & 0x7f;
		if (k == 0 || k > 3 || r->n < 2 + k || r->p[2] == 0)
			return -1;	/* indefinite, huge or non-minimal */
		for (len = 0, i = 0; i < k; i++)
			len = len << 8 | r->p[2 + i];
		if (len < 0x80)
			return -1;
		hdr = 2 + k;
	}
	if (len > r->n - hdr)
		return -1;
	if (b != NULL) {
		b->p = r->p + hdr;
		b->n = len;
	}
	if (tlv != NULL) {
		*tlv = r->p;
		*tlvlen = hdr + len;
	}
	r->p += hdr + len;
	r->n -= hdr + len;
	return 0;
}

static int
rd_is(const struct rd *r, const unsigned char *v, size_t n)
{
	return r->n == n && memcmp(r->p, v, n) == 0;
}

/* An unsigned INTEGER body without its sign byte; minimal and positive. */
static int
rd_uint(struct rd *r, const unsigned char **mag, size_t *len)
{
	struct rd b;

	if (rd_tlv(r, DER_INTEGER, &b, NULL, NULL) != 0 || b.n == 0 ||
	    (b.p[0] & 0x80) != 0 || (b.n > 1 && b.p[0] == 0 && !(b.p[1] & 0x80)))
		return -1;
	if (b.p[0] == 0 && b.n > 1) {
		b.p++;
		b.n--;
	}
	*mag = b.p;
	*len = b.n;
	return 0;
}

#define OID(name, ...) static const unsigned char name[] = { __VA_ARGS__ }

OID(oid_rsa, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01);
OID(oid_ecpk, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01);
OID(oid_p256, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07);
OID(oid_p384, 0x2b, 0x81, 0x04, 0x00, 0x22);
OID(oid_extreq, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e);
OID(oid_ms_extreq, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0e);
OID(oid_bc, 0x55, 0x1d, 0x13);

/* Signature algorithms accepted on a CSR, with their digests. */
static const struct sigalg {
	unsigned char oid[9];
	size_t oidlen;
	int rsa;
	const char *md;
} sigalgs[] = {
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b }, 9, 1, "SHA256" },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c }, 9, 1, "SHA384" },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d }, 9, 1, "SHA512" },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 }, 8, 0, "SHA256" },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 }, 8, 0, "SHA384" },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04 }, 8, 0, "SHA512" },
};
#define NSIGALGS (sizeof(sigalgs) / sizeof(sigalgs[0]))

/* Digests fetched once per process: a fetch per CSR is measurable. */
static EVP_MD *sig_md[NSIGALGS];
static pthread_once_t sig_once = PTHREAD_ONCE_INIT;

static void
sig_md_init(void)
{
	size_t i;

	for (i = 0; i < NSIGALGS; i++)
		sig_md[i] = EVP_MD_fetch(NULL, sigalgs[i].md, NULL);
}

/* Name of an OID given as a DER body, for messages. */
static void
oid_name(const struct rd *oid, char *buf, size_t len)
{
	unsigned char tlv[64];
	const unsigned char *p = tlv;
	ASN1_OBJECT *o;

	snprintf(buf, len, "(unknown)");
	if (oid->n + 2 > sizeof(tlv) || oid->n > 127)
		return;
	tlv[0] = DER_OID;
	tlv[1] = (unsigned char)oid->n;
	memcpy(tlv + 2, oid->p, oid->n);
	if ((o = d2i_ASN1_OBJECT(NULL, &p, (long)oid->n + 2)) == NULL) {
		ERR_clear_error();
		return;
	}
	if (OBJ_obj2nid(o) != NID_undef)
		snprintf(buf, len, "%s", OBJ_nid2sn(OBJ_obj2nid(o)));
	else
		OBJ_obj2txt(buf, (int)len, o, 1);
	ASN1_OBJECT_free(o);
}

static int
malformed(const char *what)
{
	return amtca_fail(AMTCA_E_CSR, "CSR is not a well-formed DER PKCS#10 "
	    "request (%s)", what);
}

static int
pkey_fromdata(const char *type, OSSL_PARAM *params, EVP_PKEY **out)
{
	EVP_PKEY_CTX *ctx;
	int ok;

	*out = NULL;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL)
		return AMTCA_E_NOMEM;
	ok = EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : amtca_fail_ssl(AMTCA_E_CSR, "CSR public key is invalid");
}

static int
rsa_key(struct ca_csr *c, struct rd bits)
{
	struct rd seq;
	const unsigned char *n, *e;
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM params[3];
	unsigned char nle[512], ele[8];
	int nbits, ret = AMTCA_E_CSR;

	if (rd_tlv(&bits, DER_SEQUENCE, &seq, NULL, NULL) != 0 || bits.n != 0 ||
	    rd_uint(&seq, &n, &nlen) != 0 || rd_uint(&seq, &e, &elen) != 0 ||
	    seq.n != 0)
		return malformed("RSA public key");
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL)
		return AMTCA_E_NOMEM;
	nbits = BN_num_bits(bn);
	if (nbits < 2048 || nbits > 4096) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR: RSA-%d key not allowed: use "
		    "2048 to 4096 bits", nbits);
		goto out;
	}
	if (elen > sizeof(ele) || elen == 0 || (e[elen - 1] & 1) == 0 ||
	    (elen == 1 && e[0] < 3)) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR: RSA public exponent is invalid");
		goto out;
	}
	if ((be = BN_bin2bn(e, (int)elen, NULL)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	/* OSSL_PARAM BIGNUMs are native-endian buffers. */
	if (BN_bn2nativepad(bn, nle, (int)nlen) < 0 ||
	    BN_bn2nativepad(be, ele, (int)elen) < 0) {
		ret = AMTCA_E_INTERNAL;
		goto out;
	}
	params[0] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_N, nle, nlen);
	params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_E, ele, elen);
	params[2] = OSSL_PARAM_construct_end();
	ret = pkey_fromdata("RSA", params, &c->pub);
	c->is_rsa = 1;
out:
	BN_free(bn);
	BN_free(be);
	return ret;
}

static int
ec_key(struct ca_csr *c, const struct rd *curve, struct rd bits)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL;
	const char *group;
	char name[80];
	int ret;

	if (rd_is(curve, oid_p256, sizeof(oid_p256)))
		group = "P-256";
	else if (rd_is(curve, oid_p384, sizeof(oid_p384)))
		group = "P-384";
	else {
		oid_name(curve, name, sizeof(name));
		return amtca_fail(AMTCA_E_CSR, "CSR: EC curve %s not allowed: use "
		    "P-256 or P-384", name);
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	    (char *)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)bits.p, bits.n);
	params[2] = OSSL_PARAM_construct_end();
	if ((ret = pkey_fromdata("EC", params, &c->pub)) != 0)
		return ret;
	/* The point must be on the curve before anything is verified with it. */
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, c->pub, NULL)) == NULL ||
	    EVP_PKEY_public_check(ctx) != 1)
		ret = amtca_fail_ssl(AMTCA_E_CSR, "CSR: EC public key is not a "
		    "point on %s", group);
	EVP_PKEY_CTX_free(ctx);
	c->is_rsa = 0;
	return ret;
}

/*
 * The certificate's SubjectPublicKeyInfo, written afresh rather than copied
 * from the request: SEQUENCE { SEQUENCE { alg, params }, BIT STRING
 * { 0 unused bits, key } }, params NULL for RSA or the curve OID for EC.
 * `key` is the RSAPublicKey (already strict DER) or the uncompressed point.
 */
static int
canonical_spki(struct ca_csr *c, const unsigned char *alg, size_t alglen,
    const unsigned char *curve, size_t curvelen, const unsigned char *key,
    size_t keylen)
{
	static const unsigned char zero = 0;
	struct der d;
	size_t top, a, b;
	int r;

	der_init(&d, keylen + 64);
	top = der_open(&d, DER_SEQUENCE);
	a = der_open(&d, DER_SEQUENCE);
	der_prim(&d, DER_OID, alg, alglen);
	if (curve != NULL)
		der_prim(&d, DER_OID, curve, curvelen);
	else
		der_prim(&d, DER_NULL, NULL, 0);
	der_close(&d, a);
	b = der_open(&d, DER_BITSTRING);
	der_raw(&d, &zero, 1);
	der_raw(&d, key, keylen);
	der_close(&d, b);
	der_close(&d, top);
	if ((r = der_take(&d, &c->spki, &c->spki_len)) != 0)
		return r;
	/* The key bits end the encoding. */
	c->pkbits = c->spki + c->spki_len - keylen;
	c->pkbits_len = keylen;
	return 0;
}

/*
 * EC point as SEC 1 2.3.3 writes it uncompressed: 04 || X || Y.  The point
 * came in uncompressed (04), compressed (02/03) or hybrid (06/07); the
 * library decoded it (and checked a hybrid point's y parity), and it was
 * shown to lie on the curve, so X and Y are read back from the key.
 */
static int
ec_uncompressed(struct ca_csr *c, const struct rd *pt, size_t flen,
    unsigned char *out)
{
	BIGNUM *x = NULL, *y = NULL;
	int ret = AMTCA_E_CSR;

	if (pt->p[0] == 0x04) {
		memcpy(out, pt->p, pt->n);
		return 0;
	}
	if (EVP_PKEY_get_bn_param(c->pub, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(c->pub, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot read the EC point");
		goto out;
	}
	/* Belt and braces: a hybrid point states y's parity in its tag. */
	if ((pt->p[0] == 0x06 || pt->p[0] == 0x07) &&
	    BN_is_odd(y) != (pt->p[0] & 1)) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR: hybrid EC point has the wrong "
		    "y parity");
		goto out;
	}
	out[0] = 0x04;
	if (BN_bn2binpad(x, out + 1, (int)flen) < 0 ||
	    BN_bn2binpad(y, out + 1 + flen, (int)flen) < 0) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "EC point does not fit the curve");
		goto out;
	}
	ret = 0;
out:
	BN_free(x);
	BN_free(y);
	return ret;
}

/* SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }. */
static int
spki(struct ca_csr *c, struct rd body)
{
	struct rd alg, oid, params = { NULL, 0 }, bits;
	unsigned char point[1 + 2 * 48];
	char name[80];
	size_t flen;
	int r, known, form_ok;

	if (rd_tlv(&body, DER_SEQUENCE, &alg, NULL, NULL) != 0 ||
	    rd_tlv(&alg, DER_OID, &oid, NULL, NULL) != 0 ||
	    rd_tlv(&body, DER_BITSTRING, &bits, NULL, NULL) != 0 || body.n != 0 ||
	    bits.n < 2 || bits.p[0] != 0)
		return malformed("subject public key info");
	bits.p++;
	bits.n--;
	if (rd_is(&oid, oid_rsa, sizeof(oid_rsa))) {
		/* Parameters NULL, or absent (some encoders); always written NULL. */
		if (alg.n != 0 && (rd_tlv(&alg, DER_NULL, &params, NULL, NULL) != 0 ||
		    params.n != 0 || alg.n != 0))
			return malformed("RSA key parameters");
		if ((r = rsa_key(c, bits)) != 0)
			return r;
		return canonical_spki(c, oid_rsa, sizeof(oid_rsa), NULL, 0,
		    bits.p, bits.n);
	}
	if (rd_is(&oid, oid_ecpk, sizeof(oid_ecpk))) {
		if (rd_tlv(&alg, DER_OID, &params, NULL, NULL) != 0 || alg.n != 0)
			return amtca_fail(AMTCA_E_CSR, "CSR: EC key without a named "
			    "curve (explicit parameters) not allowed: use P-256 or "
			    "P-384 by name");
		known = rd_is(&params, oid_p256, sizeof(oid_p256)) ||
		    rd_is(&params, oid_p384, sizeof(oid_p384));
		flen = rd_is(&params, oid_p384, sizeof(oid_p384)) ? 48 : 32;
		/* The SEC 1 forms, each at its exact length for the curve
		 * (ec_key() refuses other curves with their name). */
		form_ok = ((bits.p[0] == 0x02 || bits.p[0] == 0x03) &&
		    bits.n == 1 + flen) ||
		    ((bits.p[0] == 0x04 || bits.p[0] == 0x06 || bits.p[0] == 0x07) &&
		    bits.n == 1 + 2 * flen);
		if (known && !form_ok)
			return amtca_fail(AMTCA_E_CSR, "CSR: EC public key is not an "
			    "uncompressed, compressed or hybrid point of its curve");
		if ((r = ec_key(c, &params, bits)) != 0 ||
		    (r = ec_uncompressed(c, &bits, flen, point)) != 0)
			return r;
		return canonical_spki(c, oid_ecpk, sizeof(oid_ecpk), params.p,
		    params.n, point, 1 + 2 * flen);
	}
	oid_name(&oid, name, sizeof(name));
	return amtca_fail(AMTCA_E_CSR, "CSR: key type %s not allowed: use RSA or "
	    "EC P-256/P-384", name);
}

/* Extensions ::= SEQUENCE OF Extension: refuse basicConstraints cA TRUE. */
static int
extensions(struct rd exts)
{
	struct rd ext, oid, val, bc, v;

	while (exts.n > 0) {
		if (rd_tlv(&exts, DER_SEQUENCE, &ext, NULL, NULL) != 0 ||
		    rd_tlv(&ext, DER_OID, &oid, NULL, NULL) != 0)
			return malformed("extension request");
		if (ext.n > 0 && ext.p[0] == DER_BOOLEAN &&
		    (rd_tlv(&ext, DER_BOOLEAN, &v, NULL, NULL) != 0 || v.n != 1))
			return malformed("extension criticality");
		if (rd_tlv(&ext, DER_OCTETSTRING, &val, NULL, NULL) != 0 || ext.n != 0)
			return malformed("extension value");
		if (!rd_is(&oid, oid_bc, sizeof(oid_bc)))
			continue;
		if (rd_tlv(&val, DER_SEQUENCE, &bc, NULL, NULL) != 0 || val.n != 0)
			return malformed("basicConstraints request");
		if (bc.n > 0 && bc.p[0] == DER_BOOLEAN) {
			if (rd_tlv(&bc, DER_BOOLEAN, &v, NULL, NULL) != 0 || v.n != 1)
				return malformed("basicConstraints request");
			if (v.p[0] != 0)
				return amtca_fail(AMTCA_E_CSR, "CSR requests a CA "
				    "certificate (basicConstraints CA:TRUE): only "
				    "server certificates are issued");
		}
	}
	return 0;
}

/* attributes [0] IMPLICIT SET OF Attribute. */
static int
attributes(struct rd attrs)
{
	struct rd attr, oid, vals, exts;
	int r;

	while (attrs.n > 0) {
		if (rd_tlv(&attrs, DER_SEQUENCE, &attr, NULL, NULL) != 0 ||
		    rd_tlv(&attr, DER_OID, &oid, NULL, NULL) != 0 ||
		    rd_tlv(&attr, DER_SET, &vals, NULL, NULL) != 0 || attr.n != 0)
			return malformed("attributes");
		if (!rd_is(&oid, oid_extreq, sizeof(oid_extreq)) &&
		    !rd_is(&oid, oid_ms_extreq, sizeof(oid_ms_extreq)))
			continue;
		while (vals.n > 0) {
			if (rd_tlv(&vals, DER_SEQUENCE, &exts, NULL, NULL) != 0)
				return malformed("extension request");
			if ((r = extensions(exts)) != 0)
				return r;
		}
	}
	return 0;
}

/* PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST") to DER. */
static int
pem_to_der(const unsigned char *buf, size_t len, unsigned char **der,
    size_t *derlen)
{
	BIO *bio;
	unsigned char *data = NULL;
	long n = 0;
	int ok;

	*der = NULL;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return AMTCA_E_NOMEM;
	ok = PEM_bytes_read_bio(&data, &n, NULL, PEM_STRING_X509_REQ, bio, NULL,
	    NULL) == 1;
	BIO_free(bio);
	if (!ok || n <= 0) {
		OPENSSL_free(data);
		return amtca_fail_ssl(AMTCA_E_CSR, "CSR is not a PEM or DER PKCS#10 "
		    "request");
	}
	if ((*der = malloc((size_t)n)) != NULL)
		memcpy(*der, data, (size_t)n);
	OPENSSL_free(data);
	if (*der == NULL)
		return AMTCA_E_NOMEM;
	*derlen = (size_t)n;
	return 0;
}

static int
looks_pem(const unsigned char *buf, size_t len)
{
	static const char tag[] = "-----BEGIN ";

	return memmem(buf, len, tag, sizeof(tag) - 1) != NULL;
}

int
ca_csr_parse(const unsigned char *buf, size_t len, struct ca_csr **out)
{
	struct ca_csr *c = NULL;
	struct rd all, req, cri, sigalg, sig, oid, params, tmp, attrs = { NULL, 0 };
	const unsigned char *tbs;
	size_t tbslen, i;
	EVP_MD_CTX *mctx = NULL;
	char name[80];
	int r, ret = AMTCA_E_CSR;

	*out = NULL;
	if (buf == NULL || len == 0)
		return amtca_fail(AMTCA_E_CSR, "CSR is empty");
	if (len > AMTCA_CSR_MAX)
		return amtca_fail(AMTCA_E_CSR, "CSR is larger than %d bytes",
		    AMTCA_CSR_MAX);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return AMTCA_E_NOMEM;
	if (looks_pem(buf, len)) {
		if ((r = pem_to_der(buf, len, &c->der, &c->der_len)) != 0) {
			ret = r;
			goto out;
		}
	} else {
		if ((c->der = malloc(len)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		memcpy(c->der, buf, len);
		c->der_len = len;
	}
	all.p = c->der;
	all.n = c->der_len;
	if (rd_tlv(&all, DER_SEQUENCE, &req, NULL, NULL) != 0) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR is not a PEM or DER PKCS#10 "
		    "request");
		goto out;
	}
	if (all.n != 0) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR has %zu trailing bytes after "
		    "the DER request", all.n);
		goto out;
	}
	if (rd_tlv(&req, DER_SEQUENCE, &cri, &tbs, &tbslen) != 0 ||
	    rd_tlv(&req, DER_SEQUENCE, &sigalg, NULL, NULL) != 0 ||
	    rd_tlv(&req, DER_BITSTRING, &sig, NULL, NULL) != 0 || req.n != 0 ||
	    sig.n < 2 || sig.p[0] != 0) {
		ret = malformed("request structure");
		goto out;
	}
	/* CertificationRequestInfo: version 0, subject, SPKI, [0] attributes. */
	if (rd_tlv(&cri, DER_INTEGER, &tmp, NULL, NULL) != 0 || tmp.n != 1) {
		ret = malformed("version");
		goto out;
	}
	if (tmp.p[0] != 0) {
		ret = amtca_fail(AMTCA_E_CSR, "CSR has unknown version %u",
		    tmp.p[0]);
		goto out;
	}
	if (rd_tlv(&cri, DER_SEQUENCE, NULL, NULL, NULL) != 0 ||
	    rd_tlv(&cri, DER_SEQUENCE, &tmp, NULL, NULL) != 0) {
		ret = malformed("subject");
		goto out;
	}
	if ((r = spki(c, tmp)) != 0) {
		ret = r;
		goto out;
	}
	if (cri.n > 0 && (rd_tlv(&cri, DER_CTXC(0), &attrs, NULL, NULL) != 0 ||
	    cri.n != 0)) {
		ret = malformed("attributes");
		goto out;
	}
	/* The signature algorithm must fit the key; parameters as in RFC 4055/5758. */
	if (rd_tlv(&sigalg, DER_OID, &oid, NULL, NULL) != 0) {
		ret = malformed("signature algorithm");
		goto out;
	}
	for (i = 0; i < NSIGALGS; i++)
		if (rd_is(&oid, sigalgs[i].oid, sigalgs[i].oidlen))
			break;
	if (i == NSIGALGS || sigalgs[i].rsa != c->is_rsa) {
		oid_name(&oid, name, sizeof(name));
		ret = amtca_fail(AMTCA_E_CSR, "CSR signature algorithm %s is not "
		    "supported for this key: use SHA-256/384/512 with RSA or ECDSA",
		    name);
		goto out;
	}
	if (sigalgs[i].rsa && sigalg.n != 0 && (rd_tlv(&sigalg, DER_NULL, &params,
	    NULL, NULL) != 0 || params.n != 0)) {
		ret = malformed("signature algorithm parameters");
		goto out;
	}
	if (sigalg.n != 0) {
		ret = malformed("signature algorithm parameters");
		goto out;
	}
	/* Only now the (rarer) attribute walk: CA:TRUE is refused. */
	if ((r = attributes(attrs)) != 0) {
		ret = r;
		goto out;
	}
	pthread_once(&sig_once, sig_md_init);
	if (sig_md[i] == NULL || (mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(mctx, NULL, sig_md[i], NULL, c->pub) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot set up CSR "
		    "signature verification");
		goto out;
	}
	if (EVP_DigestVerify(mctx, sig.p + 1, sig.n - 1, tbs, tbslen) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CSR, "CSR signature does not verify "
		    "(no proof of possession of the key)");
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	EVP_MD_CTX_free(mctx);
	ca_csr_free(c);
	return ret;
}

void
ca_csr_free(struct ca_csr *c)
{
	if (c == NULL)
		return;
	EVP_PKEY_free(c->pub);
	free(c->spki);
	free(c->der);
	free(c);
}

EVP_PKEY *
ca_csr_pubkey(const struct ca_csr *c)
{
	return c->pub;
}

int
ca_csr_spki(const struct ca_csr *c, const unsigned char **spki, size_t *spki_len,
    const unsigned char **bits, size_t *bits_len, int *is_rsa)
{
	*spki = c->spki;
	*spki_len = c->spki_len;
	*bits = c->pkbits;
	*bits_len = c->pkbits_len;
	*is_rsa = c->is_rsa;
	return 0;
}
