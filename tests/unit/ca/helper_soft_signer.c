#include "soft_signer.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

static int
soft_sign(void *ctx, const EVP_MD *md, const unsigned char *tbs, size_t tbslen,
    unsigned char *sig, size_t *siglen)
{
	struct soft_signer *ss = ctx;
	EVP_MD_CTX *mctx;
	int ret = AMTCA_E_HSM;

	if ((mctx = EVP_MD_CTX_new()) == NULL)
		return AMTCA_E_NOMEM;
	if (EVP_DigestSignInit(mctx, NULL, md, NULL, ss->key) == 1 &&
	    EVP_DigestSign(mctx, sig, siglen, tbs, tbslen) == 1)
		ret = 0;
	EVP_MD_CTX_free(mctx);
	return ret;
}

static EVP_PKEY *
gen(const char *kind_tag)
{
	char kind[16];

	/* "p256#2": a second cached key of the same kind. */
	snprintf(kind, sizeof(kind), "%.*s", (int)strcspn(kind_tag, "#"), kind_tag);
	if (strncmp(kind, "rsa", 3) == 0)
		return EVP_RSA_gen((unsigned)atoi(kind + 3));
	if (strcmp(kind, "p256") == 0)
		return EVP_EC_gen("P-256");
	if (strcmp(kind, "p384") == 0)
		return EVP_EC_gen("P-384");
	if (strcmp(kind, "p521") == 0)
		return EVP_EC_gen("P-521");
	if (strcmp(kind, "secp256k1") == 0)
		return EVP_EC_gen("secp256k1");
	return NULL;
}

static struct {
	char kind[16];
	EVP_PKEY *key;
} cache[16];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static void
cache_free(void)
{
	size_t i;

	for (i = 0; i < sizeof(cache) / sizeof(cache[0]); i++)
		EVP_PKEY_free(cache[i].key);
}

EVP_PKEY *
soft_key(const char *kind, int fresh)
{
	static int registered;
	EVP_PKEY *k = NULL;
	size_t i;

	if (fresh) {
		k = gen(kind);
		assert_non_null(k);
		return k;
	}
	pthread_mutex_lock(&cache_mu);
	if (!registered) {
		atexit(cache_free);
		registered = 1;
	}
	for (i = 0; i < sizeof(cache) / sizeof(cache[0]); i++) {
		if (cache[i].key != NULL && strcmp(cache[i].kind, kind) == 0)
			break;
		if (cache[i].key == NULL) {
			snprintf(cache[i].kind, sizeof(cache[i].kind), "%s", kind);
			cache[i].key = gen(kind);
			break;
		}
	}
	if (i < sizeof(cache) / sizeof(cache[0]) && cache[i].key != NULL &&
	    EVP_PKEY_up_ref(cache[i].key))
		k = cache[i].key;
	pthread_mutex_unlock(&cache_mu);
	assert_non_null(k);
	return k;
}

EVP_PKEY *
soft_pub(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub;
	int len;

	len = i2d_PUBKEY(key, &der);
	assert_true(len > 0);
	p = der;
	pub = d2i_PUBKEY(NULL, &p, len);
	OPENSSL_free(der);
	assert_non_null(pub);
	return pub;
}

struct soft_signer *
soft_signer_new(EVP_PKEY *key)
{
	struct soft_signer *ss = calloc(1, sizeof(*ss));

	assert_non_null(ss);
	assert_true(EVP_PKEY_up_ref(key));
	ss->key = key;
	ss->s.ctx = ss;
	ss->s.pub = soft_pub(key);
	ss->s.sign = soft_sign;
	return ss;
}

void
soft_signer_free(struct soft_signer *ss)
{
	if (ss == NULL)
		return;
	EVP_PKEY_free(ss->s.pub);
	EVP_PKEY_free(ss->key);
	free(ss);
}

X509_REQ *
soft_csr(EVP_PKEY *key, int ca_true)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *e;

	assert_non_null(req);
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"ignored.invalid", -1, -1, 0));
	assert_true(X509_REQ_set_subject_name(req, n));
	assert_true(X509_REQ_set_pubkey(req, key));
	e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    "DNS:evil.example.org");
	assert_non_null(e);
	sk_X509_EXTENSION_push(exts, e);
	if (ca_true) {
		e = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
		    "critical,CA:TRUE");
		assert_non_null(e);
		sk_X509_EXTENSION_push(exts, e);
	}
	assert_true(X509_REQ_add_extensions(req, exts));
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return req;
}

size_t
soft_csr_der(EVP_PKEY *key, int ca_true, unsigned char **der)
{
	X509_REQ *req = soft_csr(key, ca_true);
	int len;

	*der = NULL;
	len = i2d_X509_REQ(req, der);
	assert_true(len > 0);
	X509_REQ_free(req);
	return (size_t)len;
}

size_t
soft_spki_canonical(EVP_PKEY *key, unsigned char **der)
{
	int len;

	*der = NULL;
	len = i2d_PUBKEY(key, der);
	assert_true(len > 0);
	return (size_t)len;
}

size_t
soft_csr_der_spki(EVP_PKEY *key, const char *form, unsigned char **der)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	X509_PUBKEY *xpk;
	EVP_PKEY *dup = NULL;
	unsigned char *pt = NULL, *enc = NULL;
	const unsigned char *bits;
	size_t ptlen = 0, flen;
	int bitslen, len;

	*der = NULL;
	assert_non_null(req);
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"ignored.invalid", -1, -1, 0));
	assert_true(X509_REQ_set_subject_name(req, n));
	X509_NAME_free(n);
	if (strcmp(form, "explicit") == 0) {
		/* The library writes the curve out in full when told to. */
		assert_non_null(dup = EVP_PKEY_dup(key));
		assert_true(EVP_PKEY_set_utf8_string_param(dup,
		    OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PKEY_EC_ENCODING_EXPLICIT));
		assert_true(X509_REQ_set_pubkey(req, dup));
		EVP_PKEY_free(dup);
	} else {
		assert_true(X509_REQ_set_pubkey(req, key));
		xpk = X509_REQ_get_X509_PUBKEY(req);
		assert_non_null(xpk);
		if (strcmp(form, "rsa-noparams") == 0) {
			assert_true(X509_PUBKEY_get0_param(NULL, &bits, &bitslen,
			    NULL, xpk));
			assert_non_null(enc = OPENSSL_memdup(bits, (size_t)bitslen));
			assert_true(X509_PUBKEY_set0_param(xpk,
			    OBJ_nid2obj(NID_rsaEncryption), V_ASN1_UNDEF, NULL, enc,
			    bitslen));
		} else {
			/* 04 || X || Y from the key, then rewritten. */
			assert_true(EVP_PKEY_get_octet_string_param(key,
			    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0, &ptlen));
			assert_non_null(pt = OPENSSL_malloc(ptlen));
			assert_true(EVP_PKEY_get_octet_string_param(key,
			    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, ptlen, &ptlen));
			assert_int_equal(pt[0], 0x04);
			flen = (ptlen - 1) / 2;
			if (strcmp(form, "compressed") == 0) {
				pt[0] = (unsigned char)(0x02 | (pt[ptlen - 1] & 1));
				ptlen = 1 + flen;
			} else if (strcmp(form, "hybrid") == 0)
				pt[0] = (unsigned char)(0x06 | (pt[ptlen - 1] & 1));
			else if (strcmp(form, "hybrid-badparity") == 0)
				pt[0] = (unsigned char)(0x07 ^ (pt[ptlen - 1] & 1));
			else if (strcmp(form, "tag05") == 0)
				pt[0] = 0x05;
			else
				fail_msg("unknown SPKI form %s", form);
			assert_true(X509_PUBKEY_set0_param(xpk,
			    OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
			    OBJ_nid2obj(EVP_PKEY_bits(key) > 256 ?
			    NID_secp384r1 : NID_X9_62_prime256v1), pt, (int)ptlen));
		}
	}
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	len = i2d_X509_REQ(req, der);
	assert_true(len > 0);
	X509_REQ_free(req);
	return (size_t)len;
}

size_t
soft_csr_pem(EVP_PKEY *key, int ca_true, char **pem)
{
	X509_REQ *req = soft_csr(key, ca_true);
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;

	assert_true(PEM_write_bio_X509_REQ(b, req));
	n = BIO_get_mem_data(b, &p);
	assert_true(n > 0);
	*pem = malloc((size_t)n + 1);
	assert_non_null(*pem);
	memcpy(*pem, p, (size_t)n);
	(*pem)[n] = '\0';
	BIO_free(b);
	X509_REQ_free(req);
	return (size_t)n;
}

const char *const test_domains[] = { "example.com", "corp.local" };
const size_t test_ndomains = 2;
const char *const test_ip_ranges[] = { "192.0.2.0/24", "2001:db8::/32" };
const size_t test_nip_ranges = 2;

void
test_pki_init(struct test_pki *t, const char *root, const char *inter,
    int root_days, int inter_days, struct store *store)
{
	EVP_PKEY *rk, *ik, *ipub;
	int r;
	char itag[32];

	memset(t, 0, sizeof(*t));
	/* Distinct cache slots, so root and intermediate never share a key. */
	snprintf(itag, sizeof(itag), "%s#inter", inter);
	rk = soft_key(root, 0);
	ik = soft_key(itag, 0);
	t->root = soft_signer_new(rk);
	t->inter = soft_signer_new(ik);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
	ca_policy_init(&t->pol);
	t->pol.domains = test_domains;
	t->pol.ndomains = test_ndomains;
	t->pol.ip_ranges = test_ip_ranges;
	t->pol.nip_ranges = test_nip_ranges;
	t->pol.org = "Acme";
	t->pol.country = "de";
	t->pol.client_auth = 1;
	t->pol.crl_url = "http://ca.example.com/amt.crl";
	t->pol.aia_url = "http://ca.example.com/amt.cer";
	r = ca_root_create(&t->root->s, "Acme AMT Root", "Acme", root_days,
	    &t->root_cert);
	if (r != 0)
		fail_msg("root: %s", amtca_errmsg(r));
	ipub = soft_pub(t->inter->key);
	r = ca_intermediate_create(&t->root->s, t->root_cert, ipub,
	    "Acme AMT/Issuing CA", "Acme", &t->pol, inter_days, &t->inter_cert);
	EVP_PKEY_free(ipub);
	if (r != 0)
		fail_msg("intermediate: %s", amtca_errmsg(r));
	r = ca_new(&t->inter->s, t->inter_cert, &t->pol, store, &t->ca);
	if (r != 0)
		fail_msg("ca_new: %s", amtca_errmsg(r));
}

void
test_pki_free(struct test_pki *t)
{
	ca_free(t->ca);
	X509_free(t->root_cert);
	X509_free(t->inter_cert);
	soft_signer_free(t->root);
	soft_signer_free(t->inter);
	memset(t, 0, sizeof(*t));
}

char *
test_tmpdir(void)
{
	char *d = strdup("/tmp/amtca-ca-test.XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
test_rmrf(const char *dir)
{
	if (dir != NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
test_top(void)
{
	const char *t = getenv("AMTCA_TOP");

	return t != NULL && t[0] != '\0' ? t : ".";
}

struct ca_csr *
soft_ca_csr(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	size_t len = soft_csr_der(key, 0, &der);
	struct ca_csr *c = NULL;

	if (ca_csr_parse(der, len, &c) != 0)
		c = NULL;
	free(der);
	return c;
}
