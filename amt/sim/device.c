/*
 * One simulated device: its certificate store, keys, TLS settings and
 * clock.  Return conventions: the sim_key_* / sim_cert_* / sim_csr_*
 * operations return a PT_STATUS (>= 0) that the handler reports as
 * ReturnValue, or a negative AMTCA_E_* when the simulator itself failed.
 */
#include "amt/sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "amt/amt.h"
#include "common/limits.h"
#include "common/util.h"

static void
key_clear(struct sim_key *k)
{
	EVP_PKEY_free(k->pkey);
	free(k->pub);
	memset(k, 0, sizeof(*k));
}

static void
cert_clear(struct sim_cert *c)
{
	X509_free(c->x509);
	free(c->der);
	free(c->subject);
	free(c->issuer);
	memset(c, 0, sizeof(*c));
}

static void
factory_state(struct sim_device *d)
{
	size_t i;

	for (i = 0; i < d->nkeys; i++)
		key_clear(&d->keys[i]);
	for (i = 0; i < d->ncerts; i++)
		cert_clear(&d->certs[i]);
	d->nkeys = d->ncerts = 0;
	d->key_next = d->cert_next = 0;
	d->ctx_cert = d->committed_ctx_cert = -1;
	memset(d->pending, 0, sizeof(d->pending));
	/* Factory TLS settings as in the go fixture settingdata/pull.xml. */
	d->pending[SIM_TLS_LMS].accept_non_secure = 1;
	d->pending[SIM_TLS_REMOTE].accept_non_secure =
	    d->cfg->non_secure_unsupported ? 0 : 1;
	memcpy(d->committed, d->pending, sizeof(d->committed));
	d->clock_offset_s = d->cfg->clock_skew_s;
	d->last_ta0 = 0;
	memset(d->enums, 0, sizeof(d->enums));
	d->keygen_busy_left = d->cfg->keygen_busy;
	d->dropped = 0;
	d->auth_failures = 0;
	d->locked_until_ms = 0;
	d->commit_requested = 0;
}

static int
md5(const void *p, size_t n, unsigned char out[16])
{
	unsigned int olen = 0;

	if (EVP_Digest(p, n, out, &olen, EVP_md5(), NULL) != 1 || olen != 16)
		return amtca_fail_ssl(AMTCA_E_INTERNAL, "MD5 failed");
	return 0;
}

int
sim_device_new(const struct sim_config *cfg, unsigned index, const char *fqdn,
    const char *password, struct sim_device **out)
{
	struct sim_device *d = NULL;
	unsigned char h[32];
	unsigned int hlen = 0;
	char *hex = NULL, *a1 = NULL, *dot;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (strlen(fqdn) > AMTCA_FQDN_MAX || fqdn[0] == '\0')
		return amtca_fail(AMTCA_E_USAGE, "bad FQDN '%s'", fqdn);
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return AMTCA_E_NOMEM;
	if (pthread_mutex_init(&d->lock, NULL) != 0) {
		free(d);
		return AMTCA_E_INTERNAL;
	}
	d->cfg = cfg;
	d->index = index;
	if ((d->fqdn = strdup(fqdn)) == NULL ||
	    (d->hostname = strdup(fqdn)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((dot = strchr(d->hostname, '.')) != NULL) {
		*dot = '\0';
		d->domain = strdup(dot + 1);
	} else
		d->domain = strdup("");
	if (d->domain == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	/*
	 * The realm is per device and stable across restarts: derived from
	 * the FQDN, so a state file is not needed to keep it.
	 */
	if (EVP_Digest(fqdn, strlen(fqdn), h, &hlen, EVP_sha256(), NULL) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "SHA-256 failed");
		goto out;
	}
	if ((r = amtca_hex_encode(h, 16, &hex)) != 0) {
		ret = r;
		goto out;
	}
	snprintf(d->realm, sizeof(d->realm), "Digest:%s", hex);
	if (asprintf(&a1, "%s:%s:%s", cfg->user, d->realm, password) < 0) {
		a1 = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = md5(a1, strlen(a1), d->ha1)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = amtca_random(d->nonce_key, sizeof(d->nonce_key))) != 0) {
		ret = r;
		goto out;
	}
	if ((d->keys = calloc(cfg->store_max ? cfg->store_max : 1,
	    sizeof(*d->keys))) == NULL ||
	    (d->certs = calloc(cfg->store_max ? cfg->store_max : 1,
	    sizeof(*d->certs))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	factory_state(d);
	d->msg_seq = 0x2800 + (unsigned long long)index * 0x10000;
	*out = d;
	d = NULL;
	ret = 0;
out:
	if (a1 != NULL) {
		OPENSSL_cleanse(a1, strlen(a1));
		free(a1);
	}
	free(hex);
	sim_device_free(d);
	return ret;
}

void
sim_device_free(struct sim_device *d)
{
	if (d == NULL)
		return;
	if (d->keys != NULL && d->certs != NULL)
		factory_state(d);
	free(d->keys);
	free(d->certs);
	free(d->fqdn);
	free(d->hostname);
	free(d->domain);
	OPENSSL_cleanse(d->ha1, sizeof(d->ha1));
	OPENSSL_cleanse(d->nonce_key, sizeof(d->nonce_key));
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void
sim_device_reset(struct sim_device *d)
{
	factory_state(d);
}

time_t
sim_world_clock(const struct sim_config *cfg)
{
	long long off = cfg->clock_offset_s != NULL ?
	    atomic_load(cfg->clock_offset_s) : 0;

	return (time_t)((long long)time(NULL) + off);
}

time_t
sim_device_clock(const struct sim_device *d)
{
	return (time_t)((long long)sim_world_clock(d->cfg) + d->clock_offset_s);
}

void
sim_device_changed(struct sim_device *d)
{
	if (d->on_change != NULL)
		d->on_change(d->on_change_arg);
}

struct sim_key *
sim_key_by_handle(struct sim_device *d, int handle)
{
	size_t i;

	for (i = 0; i < d->nkeys; i++)
		if (d->keys[i].handle == handle)
			return &d->keys[i];
	return NULL;
}

struct sim_cert *
sim_cert_by_handle(struct sim_device *d, int handle)
{
	size_t i;

	for (i = 0; i < d->ncerts; i++)
		if (d->certs[i].handle == handle)
			return &d->certs[i];
	return NULL;
}

struct sim_key *
sim_cert_key(struct sim_device *d, const struct sim_cert *c)
{
	EVP_PKEY *pub = X509_get0_pubkey(c->x509);
	size_t i;

	if (pub == NULL)
		return NULL;
	for (i = 0; i < d->nkeys; i++)
		if (EVP_PKEY_eq(pub, d->keys[i].pkey) == 1)
			return &d->keys[i];
	return NULL;
}

int
sim_parse_handle(const char *id, const char *prefix)
{
	size_t pl = strlen(prefix);
	long v = 0;
	const char *p;

	if (id == NULL || strncmp(id, prefix, pl) != 0)
		return -1;
	p = id + pl;
	if (*p == '\0' || strlen(p) > 6)
		return -1;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return (int)v;
}

/* DER of `pkey` with an OSSL encoder structure ("type-specific" = PKCS#1). */
static int
encode_der(const EVP_PKEY *pkey, int selection, unsigned char **out,
    size_t *len)
{
	OSSL_ENCODER_CTX *ctx = NULL;
	unsigned char *buf = NULL;
	size_t blen = 0;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	ctx = OSSL_ENCODER_CTX_new_for_pkey(pkey, selection, "DER",
	    "type-specific", NULL);
	if (ctx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ctx) == 0 ||
	    OSSL_ENCODER_to_data(ctx, &buf, &blen) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot encode key");
		goto out;
	}
	*out = buf;
	*len = blen;
	buf = NULL;
	ret = 0;
out:
	OPENSSL_free(buf);
	OSSL_ENCODER_CTX_free(ctx);
	return ret;
}

/* SubjectPublicKeyInfo DER of `pkey` (OpenSSL-allocated). */
static int
encode_spki(const EVP_PKEY *pkey, unsigned char **out, size_t *len)
{
	unsigned char *buf = NULL;
	int n;

	*out = NULL;
	if ((n = i2d_PUBKEY(pkey, &buf)) <= 0)
		return amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot encode key");
	*out = buf;
	*len = (size_t)n;
	return 0;
}

/* Copy an OpenSSL-allocated buffer into malloc'd memory. */
static int
ossl_to_malloc(unsigned char *p, size_t n, unsigned char **out)
{
	if ((*out = malloc(n ? n : 1)) == NULL) {
		OPENSSL_clear_free(p, n);
		return AMTCA_E_NOMEM;
	}
	memcpy(*out, p, n);
	OPENSSL_clear_free(p, n);
	return 0;
}

int
sim_key_private_der(const struct sim_key *k, unsigned char **out, size_t *len)
{
	unsigned char *p = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if ((r = encode_der(k->pkey, EVP_PKEY_KEYPAIR, &p, &n)) != 0)
		return r;
	*len = n;
	return ossl_to_malloc(p, n, out);
}

/* Take ownership of pkey into a new store slot. */
static int
key_insert(struct sim_device *d, EVP_PKEY *pkey, int handle)
{
	struct sim_key *k;
	unsigned char *p = NULL;
	size_t n = 0;
	int r;

	/* DERKey: PKCS#1 for RSA as AMT sends it; an EC key has no such
	 * form, so SubjectPublicKeyInfo (seen on some firmware, §7). */
	if ((r = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA ?
	    encode_der(pkey, EVP_PKEY_PUBLIC_KEY, &p, &n) :
	    encode_spki(pkey, &p, &n)) != 0) {
		EVP_PKEY_free(pkey);
		return r;
	}
	k = &d->keys[d->nkeys];
	memset(k, 0, sizeof(*k));
	if ((r = ossl_to_malloc(p, n, &k->pub)) != 0) {
		EVP_PKEY_free(pkey);
		return r;
	}
	k->pub_len = n;
	k->pkey = pkey;
	k->handle = handle;
	d->nkeys++;
	return 0;
}

/*
 * What GenerateKeyPair can make, and the fact that says whether this
 * firmware does (KeyAlgorithm 0 = RSA, 1 = ECC per the SDK's ValueMap).
 */
static const struct {
	int alg, bits;
	enum sim_quirk q;
} keygen_rules[] = {
	{ 0, 2048, SIM_Q_KEYGEN_RSA2048 },
	{ 0, 3072, SIM_Q_KEYGEN_RSA3072 },
	{ 1, 384, SIM_Q_KEYGEN_ECC384 },
};
#define NKEYGEN (sizeof(keygen_rules) / sizeof(keygen_rules[0]))

int
sim_key_generate(struct sim_device *d, int alg, int bits, int *handle)
{
	EVP_PKEY *pkey = NULL;
	size_t i;
	int r;

	*handle = -1;
	for (i = 0; i < NKEYGEN; i++)
		if (keygen_rules[i].alg == alg && keygen_rules[i].bits == bits)
			break;
	/* Unknown, or known and off for this firmware: the same 2066. */
	if (i == NKEYGEN || !sim_quirk(d->cfg, keygen_rules[i].q))
		return AMT_PT_UNSUPPORTED;
	if (d->keygen_busy_left > 0) {
		d->keygen_busy_left--;
		return AMT_PT_PKI_GENERATING_KEYS;
	}
	if (d->nkeys >= d->cfg->store_max)
		return AMT_PT_MAX_LIMIT_REACHED;
	if (alg == 0 && bits == 2048 && d->cfg->key_pool != NULL) {
		/* Pre-generated: no host CPU, as on real firmware. */
		if ((r = sim_keypool_take(d->cfg->key_pool, &pkey)) != 0)
			return r;
	} else if (alg == 0) {
		if ((pkey = EVP_RSA_gen((unsigned)bits)) == NULL)
			return amtca_fail_ssl(AMTCA_E_INTERNAL, "RSA key generation");
	} else if ((pkey = EVP_EC_gen("P-384")) == NULL)
		return amtca_fail_ssl(AMTCA_E_INTERNAL, "EC key generation");
	if ((r = key_insert(d, pkey, d->key_next)) != 0)
		return r;
	*handle = d->key_next++;
	return AMT_PT_SUCCESS;
}

/*
 * Parse strictly PKCS#1 RSAPrivateKey: decode, then re-encode and demand
 * the same bytes, so PKCS#8 (which AMT rejects) and trailing junk fail.
 */
static EVP_PKEY *
parse_pkcs1(const unsigned char *der, size_t len)
{
	OSSL_DECODER_CTX *dctx = NULL;
	EVP_PKEY *pkey = NULL;
	const unsigned char *p = der;
	size_t left = len;
	unsigned char *re = NULL;
	size_t relen = 0;

	dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", "type-specific",
	    "RSA", EVP_PKEY_KEYPAIR, NULL, NULL);
	if (dctx == NULL)
		goto fail;
	if (OSSL_DECODER_from_data(dctx, &p, &left) != 1 || left != 0 ||
	    pkey == NULL)
		goto fail;
	if (encode_der(pkey, EVP_PKEY_KEYPAIR, &re, &relen) != 0 ||
	    relen != len || CRYPTO_memcmp(re, der, len) != 0)
		goto fail;
	OPENSSL_clear_free(re, relen);
	OSSL_DECODER_CTX_free(dctx);
	return pkey;
fail:
	OPENSSL_clear_free(re, relen);
	EVP_PKEY_free(pkey);
	OSSL_DECODER_CTX_free(dctx);
	ERR_clear_error();
	return NULL;
}

/* An EC key pair as SEC1 ECPrivateKey (the state file's form for ECC). */
static EVP_PKEY *
parse_sec1(const unsigned char *der, size_t len)
{
	OSSL_DECODER_CTX *dctx = NULL;
	EVP_PKEY *pkey = NULL;
	const unsigned char *p = der;
	size_t left = len;

	dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", "type-specific",
	    "EC", EVP_PKEY_KEYPAIR, NULL, NULL);
	if (dctx == NULL || OSSL_DECODER_from_data(dctx, &p, &left) != 1 ||
	    left != 0 || pkey == NULL) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
		ERR_clear_error();
	}
	OSSL_DECODER_CTX_free(dctx);
	return pkey;
}

static int
key_add_parsed(struct sim_device *d, EVP_PKEY *pkey, int handle, int *out)
{
	int r;

	if ((r = key_insert(d, pkey, handle)) != 0)
		return r;
	if (out != NULL)
		*out = handle;
	return 0;
}

int
sim_key_add(struct sim_device *d, const unsigned char *der, size_t len,
    int *handle)
{
	EVP_PKEY *pkey;
	size_t i;
	int r;

	*handle = -1;
	if ((pkey = parse_pkcs1(der, len)) == NULL)
		return AMT_PT_INVALID_KEY;
	if (EVP_PKEY_get_bits(pkey) != 2048) {
		EVP_PKEY_free(pkey);
		return AMT_PT_INVALID_KEY;
	}
	for (i = 0; i < d->nkeys; i++) {
		if (EVP_PKEY_eq(pkey, d->keys[i].pkey) == 1) {
			EVP_PKEY_free(pkey);
			return AMT_PT_DUPLICATE;
		}
	}
	if (d->nkeys >= d->cfg->store_max) {
		EVP_PKEY_free(pkey);
		return AMT_PT_MAX_LIMIT_REACHED;
	}
	if ((r = key_add_parsed(d, pkey, d->key_next, handle)) != 0)
		return r;
	d->key_next++;
	return AMT_PT_SUCCESS;
}

int
sim_key_restore(struct sim_device *d, int handle, const unsigned char *der,
    size_t len)
{
	EVP_PKEY *pkey;

	if (d->nkeys >= d->cfg->store_max)
		return amtca_fail(AMTCA_E_LIMIT, "state: more keys than --store-max");
	if ((pkey = parse_pkcs1(der, len)) == NULL &&
	    (pkey = parse_sec1(der, len)) == NULL)
		return amtca_fail(AMTCA_E_CONFIG, "state: bad key %d", handle);
	return key_add_parsed(d, pkey, handle, NULL);
}

/* RFC 2253 style as AMT prints it: last RDN first, ',' between, UTF-8 raw. */
static int
name_string(const X509_NAME *n, char **out)
{
	BIO *b = NULL;
	BUF_MEM *bm = NULL;
	int ret = AMTCA_E_NOMEM;

	*out = NULL;
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	if (X509_NAME_print_ex(b, n, 0,
	    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot print name");
		goto out;
	}
	BIO_get_mem_ptr(b, &bm);
	if ((*out = strndup(bm->data, bm->length)) == NULL)
		goto out;
	ret = 0;
out:
	BIO_free(b);
	return ret;
}

static int
cert_insert(struct sim_device *d, const unsigned char *der, size_t len,
    X509 *x, int trusted, int handle)
{
	struct sim_cert *c = &d->certs[d->ncerts];
	int r;

	memset(c, 0, sizeof(*c));
	if ((c->der = malloc(len)) == NULL) {
		X509_free(x);
		return AMTCA_E_NOMEM;
	}
	memcpy(c->der, der, len);
	c->der_len = len;
	c->x509 = x;
	c->trusted_root = trusted;
	c->handle = handle;
	if ((r = name_string(X509_get_subject_name(x), &c->subject)) != 0 ||
	    (r = name_string(X509_get_issuer_name(x), &c->issuer)) != 0) {
		cert_clear(c);
		return r;
	}
	d->ncerts++;
	return 0;
}

static X509 *
parse_cert(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x;

	if (len == 0 || len > AMTCA_AMT_CERT_DER_MAX)
		return NULL;
	x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL || p != der + len || X509_get0_pubkey(x) == NULL) {
		X509_free(x);
		ERR_clear_error();
		return NULL;
	}
	return x;
}

/* A digest shorter than SHA-384 (or one we cannot tell) signed `x`. */
static int
sig_weak(X509 *x)
{
	const EVP_MD *md;
	int mdnid = NID_undef;

	if (X509_get_signature_info(x, &mdnid, NULL, NULL, NULL) != 1 ||
	    (md = EVP_get_digestbynid(mdnid)) == NULL) {
		ERR_clear_error();
		return 1;
	}
	return EVP_MD_get_size(md) < 48;
}

/* RSA under 3072 bits, EC under 384 (AMT 22: "RSA-2K or ECC-256"). */
static int
key_weak(X509 *x)
{
	EVP_PKEY *k = X509_get0_pubkey(x);

	if (k == NULL)
		return 1;
	if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA)
		return EVP_PKEY_get_bits(k) < 3072;
	return EVP_PKEY_get_bits(k) < 384;
}

int
sim_cert_refused(const struct sim_config *cfg, X509 *x)
{
	if (X509_check_ca(x) != 0)
		return sim_quirk(cfg, SIM_Q_REFUSE_SHA256_CHAIN) && sig_weak(x) ?
		    AMT_PT_INVALID_CERT : 0;
	/* A leaf: 2062 ("InvalidKeyLength" in go-wsman-messages) for its
	 * key, 2063 (INVALID_CERT) for its signature; which codes AMT 22
	 * really returns is unknown. */
	if (sim_quirk(cfg, SIM_Q_REFUSE_WEAK_LEAF) && key_weak(x))
		return AMT_PT_INVALID_KEY;
	if (sim_quirk(cfg, SIM_Q_REFUSE_SHA256_LEAF) && sig_weak(x))
		return AMT_PT_INVALID_CERT;
	return 0;
}

int
sim_cert_add(struct sim_device *d, const unsigned char *der, size_t len,
    int trusted_root, int *handle)
{
	X509 *x;
	size_t i;
	int r;

	*handle = -1;
	if ((x = parse_cert(der, len)) == NULL)
		return AMT_PT_INVALID_CERT;
	if ((r = sim_cert_refused(d->cfg, x)) != 0) {
		X509_free(x);
		return r;
	}
	for (i = 0; i < d->ncerts; i++) {
		if (d->certs[i].der_len == len &&
		    memcmp(d->certs[i].der, der, len) == 0) {
			X509_free(x);
			return AMT_PT_DUPLICATE;
		}
	}
	if (d->ncerts >= d->cfg->store_max) {
		X509_free(x);
		return AMT_PT_MAX_LIMIT_REACHED;
	}
	if ((r = cert_insert(d, der, len, x, trusted_root, d->cert_next)) != 0)
		return r;
	*handle = d->cert_next++;
	return AMT_PT_SUCCESS;
}

int
sim_cert_restore(struct sim_device *d, int handle, int trusted,
    const unsigned char *der, size_t len)
{
	X509 *x;

	if (d->ncerts >= d->cfg->store_max)
		return amtca_fail(AMTCA_E_LIMIT, "state: more certificates than --store-max");
	if ((x = parse_cert(der, len)) == NULL)
		return amtca_fail(AMTCA_E_CONFIG, "state: bad certificate %d", handle);
	return cert_insert(d, der, len, x, trusted, handle);
}

void
sim_key_remove(struct sim_device *d, struct sim_key *k)
{
	size_t i = (size_t)(k - d->keys);

	key_clear(k);
	memmove(&d->keys[i], &d->keys[i + 1], (d->nkeys - i - 1) * sizeof(*k));
	d->nkeys--;
}

void
sim_cert_remove(struct sim_device *d, struct sim_cert *c)
{
	size_t i = (size_t)(c - d->certs);

	cert_clear(c);
	memmove(&d->certs[i], &d->certs[i + 1], (d->ncerts - i - 1) * sizeof(*c));
	d->ncerts--;
}

/*
 * GeneratePKCS10RequestEx SigningAlgorithm: 0 SHA1-RSA, 1 SHA256-RSA
 * (go-wsman-messages), 2 SHA-384 (proposed).  The digest applies to the
 * key's own scheme: ECDSA for an ECC-384 key [UNVERIFIED].
 */
static const struct {
	int sigalg;
	const EVP_MD *(*md)(void);
	enum sim_quirk q;
} csr_algs[] = {
	{ 0, EVP_sha1, SIM_Q_CSR_SHA1 },
	{ 1, EVP_sha256, SIM_Q_CSR_SHA256 },
	{ 2, EVP_sha384, SIM_Q_CSR_SHA384 },
};
#define NCSRALG (sizeof(csr_algs) / sizeof(csr_algs[0]))

int
sim_csr_sign(struct sim_device *d, int key_handle, int sigalg,
    const unsigned char *csr, size_t len, unsigned char **out, size_t *out_len)
{
	size_t i;
	struct sim_key *k;
	X509_REQ *req = NULL;
	EVP_PKEY *pub;
	const EVP_MD *md;
	const unsigned char *p = csr;
	unsigned char *der = NULL;
	int n, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((k = sim_key_by_handle(d, key_handle)) == NULL)
		return AMT_PT_INVALID_HANDLE;
	for (i = 0; i < NCSRALG; i++)
		if (csr_algs[i].sigalg == sigalg)
			break;
	if (i == NCSRALG)
		return AMT_PT_INVALID_PARAMETER;
	/* Known but not on this firmware (SHA-1 from CSME 18, SHA-256 on
	 * AMT 22): 2066 UNSUPPORTED, the closest documented status. */
	if (!sim_quirk(d->cfg, csr_algs[i].q))
		return AMT_PT_UNSUPPORTED;
	md = csr_algs[i].md();
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req == NULL || p != csr + len) {
		ERR_clear_error();
		ret = AMT_PT_INVALID_PARAMETER;
		goto out;
	}
	/* "The Public Key specified in the request must match the KeyPair." */
	if ((pub = X509_REQ_get0_pubkey(req)) == NULL ||
	    EVP_PKEY_eq(pub, k->pkey) != 1) {
		ERR_clear_error();
		ret = AMT_PT_INVALID_KEY;
		goto out;
	}
	if (X509_REQ_sign(req, k->pkey, md) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "CSR signing failed");
		goto out;
	}
	if ((n = i2d_X509_REQ(req, &der)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "CSR encoding failed");
		goto out;
	}
	if ((*out = malloc((size_t)n)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(*out, der, (size_t)n);
	*out_len = (size_t)n;
	ret = AMT_PT_SUCCESS;
out:
	OPENSSL_free(der);
	X509_REQ_free(req);
	return ret;
}

int
sim_device_wants_http(const struct sim_device *d)
{
	const struct sim_tls *t = &d->committed[SIM_TLS_REMOTE];

	return !(t->enabled && !t->accept_non_secure);
}

int
sim_device_wants_tls(const struct sim_device *d)
{
	return d->committed[SIM_TLS_REMOTE].enabled;
}

static int
pem_of_cert(X509 *x, char **out)
{
	BIO *b = NULL;
	BUF_MEM *bm = NULL;
	int ret = AMTCA_E_NOMEM;

	*out = NULL;
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	if (PEM_write_bio_X509(b, x) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot write PEM");
		goto out;
	}
	BIO_get_mem_ptr(b, &bm);
	if ((*out = strndup(bm->data, bm->length)) == NULL)
		goto out;
	ret = 0;
out:
	BIO_free(b);
	return ret;
}

static int
pem_of_key(EVP_PKEY *k, char **out)
{
	BIO *b = NULL;
	BUF_MEM *bm = NULL;
	int ret = AMTCA_E_NOMEM;

	*out = NULL;
	if ((b = BIO_new(BIO_s_secmem())) == NULL)
		goto out;
	if (PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot write key PEM");
		goto out;
	}
	BIO_get_mem_ptr(b, &bm);
	if ((*out = strndup(bm->data, bm->length)) == NULL)
		goto out;
	ret = 0;
out:
	BIO_free(b);
	return ret;
}

int
sim_device_tls_material(struct sim_device *d, char **cert_pem, char **key_pem)
{
	struct sim_cert *c;
	struct sim_key *k;
	time_t now;
	int r;

	*cert_pem = *key_pem = NULL;
	if (!sim_device_wants_tls(d))
		return 0;
	if (d->cfg->serve_cert_pem != NULL && d->cfg->serve_key_pem != NULL) {
		if ((*cert_pem = strdup(d->cfg->serve_cert_pem)) == NULL ||
		    (*key_pem = strdup(d->cfg->serve_key_pem)) == NULL) {
			free(*cert_pem);
			*cert_pem = NULL;
			return AMTCA_E_NOMEM;
		}
		return 0;
	}
	if ((c = sim_cert_by_handle(d, d->committed_ctx_cert)) == NULL ||
	    (k = sim_cert_key(d, c)) == NULL)
		return 0;
	/* AMT 22: such a leaf is "refused in the TLS handshake" (one bound
	 * before an upgrade, or restored from --state). */
	if (sim_cert_refused(d->cfg, c->x509) != 0)
		return 0;
	/*
	 * TLS "silently refuses to come up" with a cert not valid yet (§9).
	 * An expired one is still served (issue 10 §5: a device offline
	 * past its leaf's notAfter is reached over TLS and renewed).
	 */
	now = sim_device_clock(d);
	if (X509_cmp_time(X509_get0_notBefore(c->x509), &now) > 0)
		return 0;
	if ((r = pem_of_cert(c->x509, cert_pem)) != 0)
		return r;
	if ((r = pem_of_key(k->pkey, key_pem)) != 0) {
		free(*cert_pem);
		*cert_pem = NULL;
		return r;
	}
	return 0;
}
