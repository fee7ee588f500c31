/*
 * hsm/ AEAD: sealing small secrets (AMT credentials) under secret keys
 * generated in the token and never extractable (see hsm/hsm.h).
 *
 * Every call runs on the handle's admin session under admin_lock: sealing
 * and opening are rare (one credential per device enrollment, and the
 * signer opens one at a time anyway), so they need no session of their
 * own.  Key generation writes the token store, so on the embedded token it
 * also takes the token lock (hsm.c), in the same order as hsm_keygen().
 *
 * Blob (all lengths in bytes):
 *   0  4  magic "ACRD"
 *   4  1  version, 1
 *   5  1  mechanism (enum hsm_aead_mech)
 *   6  1  IV length (GCM 12, CBC 16)
 *   7  1  tag length (GCM 16, HMAC 32)
 *   8  .. IV, then ciphertext, then the tag (GCM's, or the HMAC)
 * GCM's additional data is header || AAD; the HMAC covers header || IV ||
 * AAD length (4, big-endian) || AAD || ciphertext.
 */
#include "hsm/hsm.h"
#include "hsm/admin.h"
#include "hsm/hsm_int.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#include <openssl/crypto.h>

#include "common/limits.h"
#include "common/util.h"

#define BLOB_MAGIC	"ACRD"
#define BLOB_VERSION	1
#define BLOB_HDR	8
#define GCM_IV		12
#define GCM_TAG		16
#define CBC_IV		16
#define AES_BLOCK	16
#define HMAC_LEN	32
#define KEY_BYTES	32
#define KEY_ID_BYTES	16

struct hsm_aead {
	struct hsm *h;
	CK_OBJECT_HANDLE enc;		/* AES-256 */
	CK_OBJECT_HANDLE mac;		/* HMAC-SHA-256, or CK_INVALID_HANDLE */
	int gcm;			/* 1 usable, 0 unknown, -1 refused */
};

static const struct {
	const char *name;
	enum hsm_aead_mech m;
} mechs[] = {
	{ "auto", HSM_AEAD_AUTO },
	{ "aes-256-gcm", HSM_AEAD_AES_GCM },
	{ "aes-256-cbc-hmac-sha256", HSM_AEAD_AES_CBC_HMAC },
};

const char *
hsm_aead_mech_name(enum hsm_aead_mech m)
{
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (mechs[i].m == m)
			return mechs[i].name;
	return "unknown";
}

int
hsm_aead_mech_parse(const char *name, enum hsm_aead_mech *out)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (strcmp(name, mechs[i].name) == 0) {
			*out = mechs[i].m;
			return 0;
		}
	return amtca_fail(AMTCA_E_CONFIG, "unknown credential mechanism \"%s\": "
	    "use auto, aes-256-gcm or aes-256-cbc-hmac-sha256",
	    name != NULL ? name : "");
}

/* ---- keys ---- */

/* The one secret key labelled `label`, or CK_INVALID_HANDLE; admin_lock held. */
static int
find_secret(struct hsm *h, const char *label, CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	int r;

	*out = CK_INVALID_HANDLE;
	if ((r = hsm_find_objects(h, CKO_SECRET_KEY, label, NULL, 0, found, 2,
	    &n)) != 0)
		return r;
	if (n > 1)
		return amtca_fail(AMTCA_E_HSM_KEY, "several secret keys labelled "
		    "%s in token %s; remove the extra ones", label, h->token);
	if (n == 1)
		*out = found[0];
	return 0;
}

/*
 * Generate the AES (!mac) or HMAC (mac) key; admin_lock and the token lock
 * held.  It does one thing: AES encrypts and decrypts, HMAC signs and
 * verifies; neither wraps, derives or leaves the token.
 */
static int
gen_secret(struct hsm *h, int mac, CK_OBJECT_HANDLE *out)
{
	CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	CK_ULONG len = KEY_BYTES;
	CK_KEY_TYPE kt = mac ? CKK_GENERIC_SECRET : CKK_AES;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_MECHANISM mech = { mac ? CKM_GENERIC_SECRET_KEY_GEN : CKM_AES_KEY_GEN,
	    NULL, 0 };
	const char *label = mac ? HSM_AEAD_MAC_LABEL : HSM_AEAD_LABEL;
	unsigned char id[KEY_ID_BYTES];
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_TOKEN, &t, sizeof(t) },
		{ CKA_PRIVATE, &t, sizeof(t) },
		{ CKA_SENSITIVE, &t, sizeof(t) },
		{ CKA_EXTRACTABLE, &f, sizeof(f) },
		{ CKA_ENCRYPT, mac ? &f : &t, sizeof(t) },
		{ CKA_DECRYPT, mac ? &f : &t, sizeof(t) },
		{ CKA_SIGN, mac ? &t : &f, sizeof(t) },
		{ CKA_VERIFY, mac ? &t : &f, sizeof(t) },
		{ CKA_WRAP, &f, sizeof(f) },
		{ CKA_UNWRAP, &f, sizeof(f) },
		{ CKA_DERIVE, &f, sizeof(f) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, id, sizeof(id) },
	};
	CK_RV rv;
	int r;

	*out = CK_INVALID_HANDLE;
	if ((r = amtca_random(id, sizeof(id))) != 0)
		return r;
	rv = h->p11->C_GenerateKey(h->admin, &mech, tmpl,
	    sizeof(tmpl) / sizeof(tmpl[0]), out);
	if (rv != CKR_OK) {
		*out = CK_INVALID_HANDLE;
		return hsm_p11_fail(AMTCA_E_HSM, rv, "token %s cannot generate the "
		    "%s key %s", h->token, mac ? "HMAC-SHA-256" : "AES-256", label);
	}
	return 0;
}

static int
protection(struct hsm *h, CK_OBJECT_HANDLE o, struct hsm_key_protection *out)
{
	CK_RV rv;

	if ((rv = hsm_protection_get(h, o, out)) != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "cannot read the attributes "
		    "of the credential key in token %s", h->token);
	return 0;
}

/* A key the token does not keep secret is refused (as hsm_keygen does). */
static int
check_protection(struct hsm *h, CK_OBJECT_HANDLE o, const char *label)
{
	struct hsm_key_protection p;
	int r;

	if ((r = protection(h, o, &p)) != 0)
		return r;
	if (!p.token || !p.sensitive || p.extractable)
		return amtca_fail(AMTCA_E_HSM_KEY, "key %s in token %s is not a "
		    "sensitive, non-extractable token object; remove it and let "
		    "amtca generate it", label, h->token);
	return 0;
}

int
hsm_aead_key(struct hsm *h, int create, struct hsm_aead **out)
{
	struct hsm_aead *k = NULL;
	CK_OBJECT_HANDLE made[2] = { CK_INVALID_HANDLE, CK_INVALID_HANDLE };
	int locked = 0, tlocked = 0, i, r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (h == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_aead_key: no token");
		goto out;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	k->h = h;
	k->enc = k->mac = CK_INVALID_HANDLE;
	pthread_mutex_lock(&h->admin_lock);
	locked = 1;
	if (create) {
		/* Looked up under the lock: two creators make one key. */
		if ((r = hsm_softhsm_lock(h->lockfd, 1)) != 0) {
			ret = r;
			goto out;
		}
		tlocked = 1;
	}
	if ((r = find_secret(h, HSM_AEAD_LABEL, &k->enc)) != 0 ||
	    (r = find_secret(h, HSM_AEAD_MAC_LABEL, &k->mac)) != 0) {
		ret = r;
		goto out;
	}
	if (create && k->enc == CK_INVALID_HANDLE) {
		if ((r = gen_secret(h, 0, &made[0])) != 0) {
			ret = r;
			goto out;
		}
		k->enc = made[0];
	}
	if (create && k->mac == CK_INVALID_HANDLE) {
		if ((r = gen_secret(h, 1, &made[1])) != 0) {
			ret = r;
			goto out;
		}
		k->mac = made[1];
	}
	if (k->enc == CK_INVALID_HANDLE) {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "no credential key (%s) in token "
		    "%s; amtca credential add creates it", HSM_AEAD_LABEL,
		    h->token);
		goto out;
	}
	if ((r = check_protection(h, k->enc, HSM_AEAD_LABEL)) != 0 ||
	    (k->mac != CK_INVALID_HANDLE &&
	    (r = check_protection(h, k->mac, HSM_AEAD_MAC_LABEL)) != 0)) {
		ret = r;
		goto out;
	}
	*out = k;
	k = NULL;
	ret = 0;
out:
	/* Never leave a half-made pair: the next call would find one key. */
	if (ret != 0 && locked) {
		if (!tlocked && hsm_softhsm_lock(h->lockfd, 1) == 0)
			tlocked = 1;
		for (i = 0; i < 2; i++)
			if (made[i] != CK_INVALID_HANDLE)
				(void)h->p11->C_DestroyObject(h->admin, made[i]);
	}
	if (tlocked)
		(void)hsm_softhsm_lock(h->lockfd, 0);
	if (locked)
		pthread_mutex_unlock(&h->admin_lock);
	free(k);
	return ret;
}

void
hsm_aead_free(struct hsm_aead *k)
{
	free(k);
}

int
hsm_aead_protection(struct hsm_aead *k, int mac, struct hsm_key_protection *out)
{
	CK_OBJECT_HANDLE o;
	int ret;

	memset(out, 0, sizeof(*out));
	if (k == NULL)
		return amtca_fail(AMTCA_E_USAGE, "hsm_aead_protection: no key");
	o = mac ? k->mac : k->enc;
	if (o == CK_INVALID_HANDLE)
		return amtca_fail(AMTCA_E_HSM_KEY, "no %s key in token %s",
		    mac ? HSM_AEAD_MAC_LABEL : HSM_AEAD_LABEL, k->h->token);
	pthread_mutex_lock(&k->h->admin_lock);
	ret = protection(k->h, o, out);
	pthread_mutex_unlock(&k->h->admin_lock);
	return ret;
}

/* ---- blobs ---- */

int
hsm_aead_blob_mech(const unsigned char *blob, size_t bloblen,
    enum hsm_aead_mech *out)
{
	size_t ivlen, taglen;

	if (blob == NULL || bloblen < BLOB_HDR || bloblen > AMTCA_AEAD_SEALED_MAX ||
	    memcmp(blob, BLOB_MAGIC, 4) != 0 || blob[4] != BLOB_VERSION)
		return amtca_fail(AMTCA_E_USAGE, "not a sealed credential of this "
		    "amtca");
	ivlen = blob[6];
	taglen = blob[7];
	if (blob[5] == HSM_AEAD_AES_GCM && ivlen == GCM_IV && taglen == GCM_TAG &&
	    bloblen >= BLOB_HDR + ivlen + taglen) {
		*out = HSM_AEAD_AES_GCM;
		return 0;
	}
	if (blob[5] == HSM_AEAD_AES_CBC_HMAC && ivlen == CBC_IV &&
	    taglen == HMAC_LEN && bloblen >= BLOB_HDR + ivlen + AES_BLOCK +
	    taglen && (bloblen - BLOB_HDR - ivlen - taglen) % AES_BLOCK == 0) {
		*out = HSM_AEAD_AES_CBC_HMAC;
		return 0;
	}
	return amtca_fail(AMTCA_E_USAGE, "sealed credential with an unknown or "
	    "malformed mechanism header");
}

static void
put_header(unsigned char *b, enum hsm_aead_mech m)
{
	memcpy(b, BLOB_MAGIC, 4);
	b[4] = BLOB_VERSION;
	b[5] = (unsigned char)m;
	b[6] = m == HSM_AEAD_AES_GCM ? GCM_IV : CBC_IV;
	b[7] = m == HSM_AEAD_AES_GCM ? GCM_TAG : HMAC_LEN;
}

/* GCM's additional data: header || aad, in `buf`. */
static size_t
gcm_aad(unsigned char *buf, const unsigned char *hdr, const unsigned char *aad,
    size_t aadlen)
{
	memcpy(buf, hdr, BLOB_HDR);
	if (aadlen > 0)
		memcpy(buf + BLOB_HDR, aad, aadlen);
	return BLOB_HDR + aadlen;
}

/* Tokens say "no caller IV" or "no GCM" in these ways. */
static int
gcm_refused(CK_RV rv)
{
	return rv == CKR_MECHANISM_INVALID || rv == CKR_MECHANISM_PARAM_INVALID ||
	    rv == CKR_ARGUMENTS_BAD || rv == CKR_FUNCTION_NOT_SUPPORTED ||
	    rv == CKR_KEY_FUNCTION_NOT_PERMITTED || rv == CKR_TEMPLATE_INCONSISTENT;
}

/* HMAC over header || IV || be32(aadlen) || aad || ct; admin_lock held. */
static int
hmac(struct hsm_aead *k, const unsigned char *hdr_iv, const unsigned char *aad,
    size_t aadlen, const unsigned char *ct, size_t ctlen,
    unsigned char mac[HMAC_LEN])
{
	struct hsm *h = k->h;
	CK_MECHANISM mech = { CKM_SHA256_HMAC, NULL, 0 };
	unsigned char be[4];
	CK_ULONG n = HMAC_LEN;
	CK_RV rv;

	be[0] = (unsigned char)(aadlen >> 24);
	be[1] = (unsigned char)(aadlen >> 16);
	be[2] = (unsigned char)(aadlen >> 8);
	be[3] = (unsigned char)aadlen;
	if ((rv = h->p11->C_SignInit(h->admin, &mech, k->mac)) != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "token %s cannot start an "
		    "HMAC with %s", h->token, HSM_AEAD_MAC_LABEL);
	if ((rv = h->p11->C_SignUpdate(h->admin, (CK_BYTE *)hdr_iv,
	    BLOB_HDR + CBC_IV)) == CKR_OK &&
	    (rv = h->p11->C_SignUpdate(h->admin, be, sizeof(be))) == CKR_OK &&
	    (aadlen == 0 || (rv = h->p11->C_SignUpdate(h->admin,
	    (CK_BYTE *)aad, aadlen)) == CKR_OK) &&
	    (rv = h->p11->C_SignUpdate(h->admin, (CK_BYTE *)ct, ctlen)) == CKR_OK)
		rv = h->p11->C_SignFinal(h->admin, mac, &n);
	if (rv != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "token %s failed to compute "
		    "an HMAC", h->token);
	if (n != HMAC_LEN)
		return amtca_fail(AMTCA_E_HSM, "token %s returned a %lu-byte "
		    "HMAC-SHA-256", h->token, (unsigned long)n);
	return 0;
}

/* GCM seal into b (room for the whole blob); admin_lock held. */
static int
seal_gcm(struct hsm_aead *k, const unsigned char *aad, size_t aadlen,
    const unsigned char *pt, size_t ptlen, unsigned char *b, size_t *blen,
    CK_RV *rvout)
{
	struct hsm *h = k->h;
	unsigned char abuf[BLOB_HDR + AMTCA_AEAD_AAD_MAX];
	CK_GCM_PARAMS gp;
	CK_MECHANISM mech = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_ULONG n;
	CK_RV rv;
	int r;

	*rvout = CKR_OK;
	put_header(b, HSM_AEAD_AES_GCM);
	if ((r = amtca_random(b + BLOB_HDR, GCM_IV)) != 0)
		return r;
	memset(&gp, 0, sizeof(gp));
	gp.pIv = b + BLOB_HDR;
	gp.ulIvLen = GCM_IV;
	gp.ulIvBits = GCM_IV * 8;
	gp.pAAD = abuf;
	gp.ulAADLen = gcm_aad(abuf, b, aad, aadlen);
	gp.ulTagBits = GCM_TAG * 8;
	n = ptlen + GCM_TAG + AES_BLOCK;	/* room; GCM adds only the tag */
	if ((rv = h->p11->C_EncryptInit(h->admin, &mech, k->enc)) == CKR_OK)
		rv = h->p11->C_Encrypt(h->admin, (CK_BYTE *)pt, ptlen,
		    b + BLOB_HDR + GCM_IV, &n);
	*rvout = rv;
	if (rv != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "token %s failed to seal with "
		    "AES-GCM", h->token);
	if (n != ptlen + GCM_TAG)
		return amtca_fail(AMTCA_E_HSM, "token %s returned %lu bytes of "
		    "AES-GCM output for %zu bytes", h->token, (unsigned long)n,
		    ptlen);
	*blen = BLOB_HDR + GCM_IV + n;
	return 0;
}

/* CBC-PAD then HMAC into b; admin_lock held. */
static int
seal_cbc_hmac(struct hsm_aead *k, const unsigned char *aad, size_t aadlen,
    const unsigned char *pt, size_t ptlen, unsigned char *b, size_t *blen)
{
	struct hsm *h = k->h;
	CK_MECHANISM mech = { CKM_AES_CBC_PAD, NULL, CBC_IV };
	unsigned char *ct = b + BLOB_HDR + CBC_IV;
	CK_ULONG n;
	CK_RV rv;
	int r;

	if (k->mac == CK_INVALID_HANDLE)
		return amtca_fail(AMTCA_E_HSM_KEY, "no %s key in token %s for the "
		    "AES-CBC + HMAC mechanism", HSM_AEAD_MAC_LABEL, h->token);
	put_header(b, HSM_AEAD_AES_CBC_HMAC);
	if ((r = amtca_random(b + BLOB_HDR, CBC_IV)) != 0)
		return r;
	mech.pParameter = b + BLOB_HDR;
	n = ptlen + AES_BLOCK;
	if ((rv = h->p11->C_EncryptInit(h->admin, &mech, k->enc)) == CKR_OK)
		rv = h->p11->C_Encrypt(h->admin, (CK_BYTE *)pt, ptlen, ct, &n);
	if (rv != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "token %s failed to seal with "
		    "AES-CBC", h->token);
	if (n == 0 || n % AES_BLOCK != 0 || n > ptlen + AES_BLOCK)
		return amtca_fail(AMTCA_E_HSM, "token %s returned %lu bytes of "
		    "AES-CBC output for %zu bytes", h->token, (unsigned long)n,
		    ptlen);
	if ((r = hmac(k, b, aad, aadlen, ct, n, ct + n)) != 0)
		return r;
	*blen = BLOB_HDR + CBC_IV + n + HMAC_LEN;
	return 0;
}

int
hsm_aead_seal(struct hsm_aead *k, enum hsm_aead_mech mech,
    const unsigned char *aad, size_t aadlen, const unsigned char *pt,
    size_t ptlen, unsigned char **blob, size_t *bloblen,
    enum hsm_aead_mech *used)
{
	unsigned char *b = NULL;
	size_t blen = 0, cap;
	CK_MECHANISM_INFO mi;
	CK_RV rv = CKR_OK;
	int locked = 0, r, ret = AMTCA_E_INTERNAL;

	*blob = NULL;
	*bloblen = 0;
	if (used != NULL)
		*used = HSM_AEAD_AUTO;
	if (k == NULL || (pt == NULL && ptlen > 0) || (aad == NULL && aadlen > 0) ||
	    (mech != HSM_AEAD_AUTO && mech != HSM_AEAD_AES_GCM &&
	    mech != HSM_AEAD_AES_CBC_HMAC)) {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_aead_seal: bad arguments");
		goto out;
	}
	if (ptlen > AMTCA_AEAD_PLAIN_MAX || aadlen > AMTCA_AEAD_AAD_MAX) {
		ret = amtca_fail(AMTCA_E_LIMIT, "secret of %zu bytes or associated "
		    "data of %zu bytes is over the limit (%d, %d)", ptlen, aadlen,
		    AMTCA_AEAD_PLAIN_MAX, AMTCA_AEAD_AAD_MAX);
		goto out;
	}
	cap = BLOB_HDR + CBC_IV + ptlen + AES_BLOCK + HMAC_LEN;
	if ((b = calloc(1, cap)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	pthread_mutex_lock(&k->h->admin_lock);
	locked = 1;
	if (mech == HSM_AEAD_AUTO && k->gcm == 0) {
		/* A token that does not list GCM for both directions lacks it. */
		if (k->h->p11->C_GetMechanismInfo(k->h->slot, CKM_AES_GCM,
		    &mi) != CKR_OK || !(mi.flags & CKF_ENCRYPT) ||
		    !(mi.flags & CKF_DECRYPT))
			k->gcm = -1;
	}
	if (mech == HSM_AEAD_AES_GCM || (mech == HSM_AEAD_AUTO && k->gcm >= 0)) {
		r = seal_gcm(k, aad, aadlen, pt, ptlen, b, &blen, &rv);
		if (r == 0) {
			k->gcm = 1;
			mech = HSM_AEAD_AES_GCM;
		} else if (mech == HSM_AEAD_AUTO && gcm_refused(rv)) {
			/* FIPS mode refusing our IV, or no GCM after all. */
			k->gcm = -1;
			amtca_err_clear();
		} else {
			ret = r;
			goto out;
		}
	}
	if (mech != HSM_AEAD_AES_GCM) {
		if ((r = seal_cbc_hmac(k, aad, aadlen, pt, ptlen, b, &blen)) != 0) {
			ret = r;
			goto out;
		}
		mech = HSM_AEAD_AES_CBC_HMAC;
	}
	*blob = b;
	*bloblen = blen;
	if (used != NULL)
		*used = mech;
	b = NULL;
	ret = 0;
out:
	if (locked)
		pthread_mutex_unlock(&k->h->admin_lock);
	free(b);
	return ret;
}

int
hsm_aead_open(struct hsm_aead *k, const unsigned char *aad, size_t aadlen,
    const unsigned char *blob, size_t bloblen, unsigned char **pt,
    size_t *ptlen)
{
	struct hsm *h;
	enum hsm_aead_mech m;
	unsigned char abuf[BLOB_HDR + AMTCA_AEAD_AAD_MAX], want[HMAC_LEN];
	unsigned char *out = NULL;
	const unsigned char *body;
	size_t bodylen, cap = 0;
	CK_GCM_PARAMS gp;
	CK_MECHANISM mech;
	CK_ULONG n;
	CK_RV rv;
	int locked = 0, r, ret = AMTCA_E_INTERNAL;

	*pt = NULL;
	*ptlen = 0;
	if (k == NULL || (aad == NULL && aadlen > 0)) {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_aead_open: bad arguments");
		goto out;
	}
	if (aadlen > AMTCA_AEAD_AAD_MAX) {
		ret = amtca_fail(AMTCA_E_LIMIT, "associated data of %zu bytes is "
		    "over the limit (%d)", aadlen, AMTCA_AEAD_AAD_MAX);
		goto out;
	}
	if ((r = hsm_aead_blob_mech(blob, bloblen, &m)) != 0) {
		ret = r;
		goto out;
	}
	h = k->h;
	body = blob + BLOB_HDR + blob[6];
	bodylen = bloblen - BLOB_HDR - blob[6];
	cap = bodylen + 1;
	if ((out = calloc(1, cap)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	pthread_mutex_lock(&h->admin_lock);
	locked = 1;
	if (m == HSM_AEAD_AES_GCM) {
		memset(&gp, 0, sizeof(gp));
		gp.pIv = (CK_BYTE *)blob + BLOB_HDR;
		gp.ulIvLen = GCM_IV;
		gp.ulIvBits = GCM_IV * 8;
		gp.pAAD = abuf;
		gp.ulAADLen = gcm_aad(abuf, blob, aad, aadlen);
		gp.ulTagBits = GCM_TAG * 8;
		mech.mechanism = CKM_AES_GCM;
		mech.pParameter = &gp;
		mech.ulParameterLen = sizeof(gp);
	} else {
		if (k->mac == CK_INVALID_HANDLE) {
			ret = amtca_fail(AMTCA_E_HSM_KEY, "no %s key in token %s: "
			    "this credential was sealed with it", HSM_AEAD_MAC_LABEL,
			    h->token);
			goto out;
		}
		/* Encrypt-then-MAC: nothing is decrypted before this holds. */
		bodylen -= HMAC_LEN;
		if ((r = hmac(k, blob, aad, aadlen, body, bodylen, want)) != 0) {
			ret = r;
			goto out;
		}
		if (CRYPTO_memcmp(want, body + bodylen, HMAC_LEN) != 0) {
			ret = amtca_fail(AMTCA_E_DENIED, "sealed credential does not "
			    "authenticate (tampered, or sealed under another name "
			    "or key)");
			goto out;
		}
		mech.mechanism = CKM_AES_CBC_PAD;
		mech.pParameter = (CK_BYTE *)blob + BLOB_HDR;
		mech.ulParameterLen = CBC_IV;
	}
	n = bodylen;
	if ((rv = h->p11->C_DecryptInit(h->admin, &mech, k->enc)) == CKR_OK)
		rv = h->p11->C_Decrypt(h->admin, (CK_BYTE *)body, bodylen, out, &n);
	if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
	    (m == HSM_AEAD_AES_GCM && rv == CKR_GENERAL_ERROR)) {
		ret = amtca_fail(AMTCA_E_DENIED, "sealed credential does not "
		    "authenticate (tampered, or sealed under another name or key)");
		goto out;
	}
	if (rv != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "token %s failed to open a "
		    "sealed credential", h->token);
		goto out;
	}
	if (n >= cap) {
		ret = amtca_fail(AMTCA_E_HSM, "token %s returned too much plaintext",
		    h->token);
		goto out;
	}
	out[n] = '\0';
	*pt = out;
	*ptlen = n;
	out = NULL;
	ret = 0;
out:
	if (locked)
		pthread_mutex_unlock(&k->h->admin_lock);
	if (out != NULL) {
		OPENSSL_cleanse(out, cap);
		free(out);
	}
	OPENSSL_cleanse(want, sizeof(want));
	return ret;
}
