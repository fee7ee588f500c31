/*
 * ca/ internals shared between the ca/ sources; not part of the module's interface.
 *
 * A tiny DER writer (growable buffer, constructed values closed by
 * back-patching the length) used for the leaf TBSCertificate template and
 * the TBSCertList, plus the signing step every ca/ signature goes through.
 */
#ifndef AMTCA_CA_INT_H
#define AMTCA_CA_INT_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/signer.h"

/* DER tags used here. */
#define DER_BOOLEAN	0x01
#define DER_INTEGER	0x02
#define DER_BITSTRING	0x03
#define DER_OCTETSTRING	0x04
#define DER_NULL	0x05
#define DER_OID		0x06
#define DER_ENUMERATED	0x0a
#define DER_UTF8STRING	0x0c
#define DER_UTCTIME	0x17
#define DER_GENTIME	0x18
#define DER_SEQUENCE	0x30
#define DER_SET		0x31
#define DER_CTX(n)	(0x80 | (n))		/* [n] IMPLICIT primitive */
#define DER_CTXC(n)	(0xa0 | (n))		/* [n] constructed */

struct der {
	unsigned char *p;
	size_t len;
	size_t cap;
	int err;		/* sticky: once set every call is a no-op */
};

/* `cap` is a size hint; the buffer grows as needed. */
void der_init(struct der *d, size_t cap);
void der_release(struct der *d);
/* Hand the bytes over (caller frees); 0 or AMTCA_E_NOMEM. */
int der_take(struct der *d, unsigned char **out, size_t *len) AMTCA_WUR;

void der_raw(struct der *d, const void *buf, size_t len);
void der_prim(struct der *d, unsigned tag, const void *buf, size_t len);
/* Open a constructed value; returns the mark to pass to der_close(). */
size_t der_open(struct der *d, unsigned tag);
void der_close(struct der *d, size_t mark);
/* INTEGER from an unsigned big-endian magnitude (minimal, positive). */
void der_uint(struct der *d, const unsigned char *mag, size_t len);
void der_time(struct der *d, time_t t);
/* Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue }. */
void der_ext_open(struct der *d, const unsigned char *oid, size_t oidlen,
    int critical, size_t mark[2]);
void der_ext_close(struct der *d, const size_t mark[2]);

/* Content of a DER TLV at `p` (len bytes): sets *body and *bodylen; 0 or -1. */
int der_unwrap(const unsigned char *p, size_t len, const unsigned char **body,
    size_t *bodylen);

/* Signature algorithm for a signing key: digest and AlgorithmIdentifier. */
struct ca_sigalg {
	EVP_MD *md;			/* fetched once, passed to the signer */
	unsigned char algid[32];	/* DER AlgorithmIdentifier */
	size_t algid_len;
	int nid;			/* sha256WithRSAEncryption, ... */
	int ptype;			/* V_ASN1_NULL (RSA) or V_ASN1_UNDEF */
};

/* RSA: sha256WithRSAEncryption (NULL params); EC: ecdsa-with-SHA256, or
 * SHA-384 variants when the key is P-384.  AMTCA_E_CONFIG for other keys. */
int ca_sigalg_init(struct ca_sigalg *a, EVP_PKEY *pub) AMTCA_WUR;
/* The same with the digest chosen by the caller: `sha384` 1 or 0, or -1
 * for the key's default as above. */
int ca_sigalg_init_md(struct ca_sigalg *a, EVP_PKEY *pub, int sha384) AMTCA_WUR;
void ca_sigalg_release(struct ca_sigalg *a);

/*
 * Sign `tbs` and assemble SEQUENCE { tbs, algid, BIT STRING sig } into
 * *out (malloc'd): the layout shared by Certificate and CertificateList.
 */
int ca_sign_der(const struct ca_signer *s, const struct ca_sigalg *a,
    const unsigned char *tbs, size_t tbslen, unsigned char **out,
    size_t *outlen) AMTCA_WUR;

/* One revoked certificate in a CRL: its serial (big-endian octets), when
 * it was revoked, and its RFC 5280 reason code (0: none written). */
struct ca_crl_entry {
	const unsigned char *serial;
	size_t serial_len;
	time_t when;
	int reason;
};

/*
 * A v2 CRL (RFC 5280 5.1) signed by `s` with `a`: `algid_issuer` is the
 * AlgorithmIdentifier || issuer Name (DER), `aki` the AKI extension (DER;
 * NULL: none); thisUpdate now, nextUpdate `days` later, CRLNumber the
 * creation time in Unix milliseconds; the `n` entries in order.  Parsed
 * back and verified with s->pub.  DER, or PEM (NUL-terminated) when `pem`;
 * *out malloc'd.
 */
int ca_crl_sign(const struct ca_signer *s, const struct ca_sigalg *a,
    const unsigned char *algid_issuer, size_t algid_issuer_len,
    const unsigned char *aki, size_t aki_len, const struct ca_crl_entry *e,
    size_t n, int days, int pem, unsigned char **out,
    size_t *outlen) AMTCA_WUR;

/* Key acceptable for a certificate subject: RSA 2048-4096, P-256, P-384.
 * *is_rsa tells which; AMTCA_E_CSR-free: returns a negative `code`. */
int ca_key_check(EVP_PKEY *pk, int code, const char *what, int *is_rsa) AMTCA_WUR;

/* ASN1_TIME -> time_t (UTC); -1 on error. */
time_t ca_asn1_time_t(const ASN1_TIME *t);

/* Syntax of a policy suffix (labels as in an FQDN, one label allowed). */
int ca_domain_check(const char *d) AMTCA_WUR;

/* The policy's ip_ranges parsed into out[AMTCA_IP_RANGES_MAX]; AMTCA_E_CONFIG
 * naming the bad one, or more than AMTCA_IP_RANGES_MAX. */
int ca_policy_ranges(const struct ca_policy *p, struct ca_ip_range *out,
    size_t *n) AMTCA_WUR;

struct store;

/* ub-common-name: a longer FQDN lives in the SAN only. */
#define CN_MAX 64

/* The issuing CA (ca/issue.c), read-only after ca_new(). */
struct ca {
	const struct ca_signer *signer;
	const struct ca_policy *policy;
	struct store *store;
	struct ca_sigalg alg;
	/* Leaves asking for a digest (enum ca_digest; [0] unused): the
	 * algorithm and AlgorithmIdentifier || issuer Name for each. */
	struct ca_sigalg dig_alg[CA_DIGEST_N];
	unsigned char *dig_algid_issuer[CA_DIGEST_N];
	size_t dig_algid_issuer_len[CA_DIGEST_N];
	EVP_MD *sha1;			/* SKI, fetched once */
	int days;
	int skew;
	time_t issuer_nb, issuer_na;
	/* DER pieces, in TBSCertificate order. */
	unsigned char *algid_issuer;	/* AlgorithmIdentifier || issuer Name */
	size_t algid_issuer_len;
	unsigned char *subj_prefix;	/* RDNs for C and O, or nothing */
	size_t subj_prefix_len;
	unsigned char *exts;		/* BC || EKU || AKI [|| CDP] [|| AIA] */
	size_t exts_len;
	unsigned char *exts_est;	/* the same with the EST profile's EKU */
	size_t exts_est_len;
	unsigned char *exts_admin;	/* clientAuth || the admin policy */
	size_t exts_admin_len;
	unsigned char ku_rsa[16], ku_ec[16];
	size_t ku_rsa_len, ku_ec_len;
	unsigned char aki[64];		/* the AKI extension, for CRLs */
	size_t aki_len;
	struct ca_ip_range ranges[AMTCA_IP_RANGES_MAX];	/* policy->ip_ranges */
	size_t nranges;
	char ranges_text[256];		/* "a/n, b/m, ..." for messages */
	char keyid[CA_KEYID_HEX_MAX + 1];	/* the issuer's (ca_keyid_hex):
					   recorded as each leaf's issuer */
	int first;			/* issuer-less records are ours */
};

struct ca_csr;
/* The verified request's key as the certificate carries it: the canonical
 * SubjectPublicKeyInfo intake wrote (not the request's bytes) and its
 * subjectPublicKey bits, borrowed from the CSR; and whether it is RSA. */
int ca_csr_spki(const struct ca_csr *c, const unsigned char **spki,
    size_t *spki_len, const unsigned char **bits, size_t *bits_len,
    int *is_rsa);

/* Fresh serial octets (see ca/serial.c). */
int ca_serial_draw(unsigned char b[AMTCA_SERIAL_BYTES]) AMTCA_WUR;

#endif
