/*
 * hsm/: the only code that touches PKCS#11.
 *
 * Loads a PKCS#11 module, selects a token by RFC 7512 URI (parsed by
 * p11-kit), logs in with a PIN read from a file (or the URI's pin-source),
 * generates CA key pairs inside the token (CKA_SENSITIVE, never
 * CKA_EXTRACTABLE) and signs with them from any number of threads.
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

/*
 * The embedded default: create `dir` (0700) with a softhsm2.conf and a
 * token directory, initialise a fresh token labelled `label` with random SO
 * and user PINs, and write the user PIN to `pin_path` (0600).  The SO PIN is
 * discarded (the token is re-creatable, the CA is not meant to be reset).
 * Returns the module path, the token URI and the conf path (malloc'd).
 */
int hsm_softhsm_create(const char *dir, const char *label,
    const char *pin_path, char **module_out, char **uri_out,
    char **conf_out) AMTCA_WUR;

/*
 * Generate a key pair of `type` inside the token: private key CKA_TOKEN,
 * CKA_PRIVATE, CKA_SENSITIVE, !CKA_EXTRACTABLE, CKA_SIGN; public key
 * CKA_TOKEN, CKA_VERIFY; both labelled `label` with one fresh random
 * CKA_ID.  AMTCA_E_EXISTS if a key with that label exists.
 */
int hsm_keygen(struct hsm *h, enum hsm_keytype type, const char *label,
    struct hsm_key **out) AMTCA_WUR;

/* Find the key pair labelled `label` once; AMTCA_E_HSM_KEY if missing. */
int hsm_key_find(struct hsm *h, const char *label, struct hsm_key **out) AMTCA_WUR;

/*
 * Remove both halves of the key pair from the token (benchmark keys).  No
 * hsm_sign() on `k` may be running; afterwards it fails with HSM_KEY.  `k`
 * is still released with hsm_key_free().
 */
int hsm_key_destroy(struct hsm *h, struct hsm_key *k) AMTCA_WUR;

/*
 * Protection attributes of the private half as the token reports them
 * (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE,
 * CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE), for tests and status output.
 */
struct hsm_key_protection {
	int token, is_private, sensitive, extractable;
	int always_sensitive, never_extractable;
};
int hsm_key_protection(struct hsm_key *k, struct hsm_key_protection *out) AMTCA_WUR;

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
 * The file named by the URI's pin-source (malloc'd), or NULL when the URI
 * has none; AMTCA_E_CONFIG for a bad URI or an unusable pin-source (only
 * files, absolute paths).  For the caller's ownership and mode checks.
 */
int hsm_uri_pin_path(const char *token_uri, char **out) AMTCA_WUR;

/* The token directory a softhsm2.conf names (malloc'd); AMTCA_E_CONFIG if none. */
int hsm_softhsm_tokendir(const char *conf, char **out) AMTCA_WUR;

/*
 * For the embedded token (hsm_softhsm_create's layout) after its directory
 * was moved or copied: make `conf` name the tokens/ directory beside it,
 * rewriting it atomically when it names another.  AMTCA_E_HSM_TOKEN when
 * there is no tokens/ beside it.  Never leaves a copy using the original.
 */
int hsm_softhsm_relocate(const char *conf) AMTCA_WUR;

#endif
