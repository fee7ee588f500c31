/*
 * hsm/: the only code that touches PKCS#11.  This header is the signing
 * path (hsm.c): load a PKCS#11 module, select a token by RFC 7512 URI
 * (parsed by p11-kit), log in with a PIN read from a file (or the URI's
 * pin-source), find CA key pairs by label and sign with them from any
 * number of threads.  Provisioning and administration (creating the
 * embedded SoftHSM token, generating and removing keys, reading their
 * protection back, relocating a moved token) are in hsm/admin.h (admin.c).
 *
 * Who links what: a signer process needs only this header and hsm.o; the
 * CLI, the composition root and the tests also link admin.o.  admin.o
 * depends on hsm.o, never the other way round.
 *
 * Errors: AMTCA_E_HSM_MODULE (module not loadable), AMTCA_E_HSM_TOKEN (no
 * token matches the URI), AMTCA_E_HSM_PIN (wrong PIN: never retried, tokens
 * lock), AMTCA_E_HSM_LOCKED, AMTCA_E_HSM_KEY (key missing), AMTCA_E_HSM
 * (anything else).  Messages never contain the PIN.
 */
#ifndef AMTCA_HSM_H
#define AMTCA_HSM_H

#include <stddef.h>

#include <openssl/evp.h>

#include "common/err.h"
#include "common/signer.h"

struct hsm;
struct hsm_key;

enum hsm_keytype {
	HSM_KEY_RSA2048,
	HSM_KEY_RSA3072,
	HSM_KEY_RSA4096,
	HSM_KEY_P256,
	HSM_KEY_P384,
};

/* "rsa2048" ... "p384" <-> enum; parse returns AMTCA_E_USAGE on unknown. */
int hsm_keytype_parse(const char *name, enum hsm_keytype *out) AMTCA_WUR;
const char *hsm_keytype_name(enum hsm_keytype t);

struct hsm_open_opts {
	const char *module;		/* path of the PKCS#11 module */
	const char *token_uri;		/* RFC 7512 "pkcs11:token=..." */
	const char *pin_file;		/* NULL: use the URI's pin-source */
	const char *softhsm_conf;	/* non-NULL: SOFTHSM2_CONF for this process */
};

/*
 * Load the module, find exactly one token matching the URI, open sessions
 * and log in as the user.  *out is freed with hsm_free().
 */
int hsm_open(const struct hsm_open_opts *opts, struct hsm **out) AMTCA_WUR;

/* Log out, close sessions, unload.  Keys from this hsm must be freed first. */
void hsm_free(struct hsm *h);

/* Find the key pair labelled `label` once; AMTCA_E_HSM_KEY if missing. */
int hsm_key_find(struct hsm *h, const char *label, struct hsm_key **out) AMTCA_WUR;

/* Release the handle (the key stays in the token).  NULL is fine. */
void hsm_key_free(struct hsm_key *k);

/* Public half, borrowed, valid as long as `k`. */
EVP_PKEY *hsm_key_public(const struct hsm_key *k);
enum hsm_keytype hsm_key_type(const struct hsm_key *k);

/*
 * Sign as struct ca_signer's sign does (see common/signer.h).  Thread-safe:
 * callers from several threads sign concurrently on separate sessions.
 */
int hsm_sign(struct hsm_key *k, const EVP_MD *md, const unsigned char *tbs,
    size_t tbslen, unsigned char *sig, size_t *siglen) AMTCA_WUR;

/* Fill `out` with a signer over `k` (valid as long as `k`). */
void hsm_key_signer(struct hsm_key *k, struct ca_signer *out);

/*
 * Small private data objects (CKO_DATA, CKA_TOKEN, CKA_PRIVATE) by label:
 * the audit trail's anchor ("amtca-audit-anchor"), kept outside the
 * database.  Tokens (SoftHSM among them) keep CKA_VALUE read-only, so a
 * write creates a new object and then destroys the old ones, under the
 * embedded token's lock; a crash in between leaves both.  read calls
 * `each(arg, value, len)` for every object with the label (at most
 * HSM_DATA_MAX, each at most AMTCA_AUDIT_ANCHOR_MAX bytes), the caller
 * choosing among several; AMTCA_E_NOT_FOUND when there is none; a non-zero
 * return of `each` stops and is returned.
 */
#define HSM_DATA_MAX 8
int hsm_data_read(struct hsm *h, const char *label,
    int (*each)(void *arg, const unsigned char *v, size_t len), void *arg) AMTCA_WUR;
int hsm_data_write(struct hsm *h, const char *label, const unsigned char *buf,
    size_t len) AMTCA_WUR;

/*
 * The file named by the URI's pin-source (malloc'd), or NULL when the URI
 * has none; AMTCA_E_CONFIG for a bad URI or an unusable pin-source (only
 * files, absolute paths).  For the caller's ownership and mode checks.
 */
int hsm_uri_pin_path(const char *token_uri, char **out) AMTCA_WUR;

/*
 * Authenticated encryption under secret keys that stay in the token (AMT
 * credentials; hsm/aead.c).  Two token keys, found by label: an AES-256
 * key (HSM_AEAD_LABEL) and, for the fallback, an HMAC-SHA-256 key
 * (HSM_AEAD_MAC_LABEL); both CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
 * !CKA_EXTRACTABLE, and usable for nothing else.
 *
 * A sealed blob carries its mechanism in its header, so a blob made with
 * either opens whatever the token prefers today:
 *   HSM_AEAD_AES_GCM       CKM_AES_GCM, a random 96-bit IV, 128-bit tag;
 *   HSM_AEAD_AES_CBC_HMAC  for tokens without GCM or that refuse a
 *                          caller's GCM IV (FIPS mode): CKM_AES_CBC_PAD
 *                          with a random IV, then CKM_SHA256_HMAC over
 *                          header, IV, AAD and ciphertext (encrypt-then-
 *                          MAC), checked before anything is decrypted.
 * The associated data (the caller's, e.g. a credential's name) is bound
 * with the header: a blob opens only under the same AAD and key.
 * docs/credentials.md has the format.
 */
#define HSM_AEAD_LABEL		"amtca-credentials"
#define HSM_AEAD_MAC_LABEL	"amtca-credentials-mac"

enum hsm_aead_mech {
	HSM_AEAD_AUTO = 0,		/* seal: GCM if the token takes it */
	HSM_AEAD_AES_GCM = 1,
	HSM_AEAD_AES_CBC_HMAC = 2
};

/* "aes-256-gcm", "aes-256-cbc-hmac-sha256" ("auto" for AUTO). */
const char *hsm_aead_mech_name(enum hsm_aead_mech m);
/* The names above; AMTCA_E_CONFIG for anything else. */
int hsm_aead_mech_parse(const char *name, enum hsm_aead_mech *out) AMTCA_WUR;

struct hsm_aead;

/*
 * The token's AEAD keys.  With `create`, missing keys are generated (and
 * their protection read back: a token that does not keep them sensitive
 * and non-extractable is refused); without, AMTCA_E_HSM_KEY when the AES
 * key is missing.  Freed with hsm_aead_free() before hsm_free().
 */
int hsm_aead_key(struct hsm *h, int create, struct hsm_aead **out) AMTCA_WUR;
void hsm_aead_free(struct hsm_aead *k);

/*
 * Seal `pt` (at most AMTCA_AEAD_PLAIN_MAX bytes) bound to `aad` (at most
 * AMTCA_AEAD_AAD_MAX) with `mech` (AUTO: GCM, else the fallback when the
 * token lacks GCM or refuses the caller's IV).  *blob is malloc'd (not
 * secret); *used (if not NULL) is the mechanism taken.
 */
int hsm_aead_seal(struct hsm_aead *k, enum hsm_aead_mech mech,
    const unsigned char *aad, size_t aadlen, const unsigned char *pt,
    size_t ptlen, unsigned char **blob, size_t *bloblen,
    enum hsm_aead_mech *used) AMTCA_WUR;

/*
 * Open a blob from hsm_aead_seal() under the same `aad`.  *pt is malloc'd
 * with a NUL after its *ptlen bytes; the caller wipes it (OPENSSL_cleanse
 * over *ptlen) before free().  AMTCA_E_DENIED when the blob does not
 * authenticate (tampered, other AAD, other key), AMTCA_E_USAGE when it is
 * not a blob of ours.
 */
int hsm_aead_open(struct hsm_aead *k, const unsigned char *aad,
    size_t aadlen, const unsigned char *blob, size_t bloblen,
    unsigned char **pt, size_t *ptlen) AMTCA_WUR;

/* The mechanism a blob's header names; AMTCA_E_USAGE if not a blob. */
int hsm_aead_blob_mech(const unsigned char *blob, size_t bloblen,
    enum hsm_aead_mech *out) AMTCA_WUR;

#endif
