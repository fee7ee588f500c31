/*
 * hsm/ provisioning and administration (admin.c): what sets a token up and
 * changes what is in it, as opposed to the signing path (hsm/hsm.h), which
 * only opens, finds keys and signs.  The CLI (ca init, bench, the home's
 * checks) and the tests link this; a signer process does not.  Errors as
 * in hsm/hsm.h.
 */
#ifndef AMTCA_HSM_ADMIN_H
#define AMTCA_HSM_ADMIN_H

#include "hsm/hsm.h"

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

/* The token directory a softhsm2.conf names (malloc'd); AMTCA_E_CONFIG if none. */
int hsm_softhsm_tokendir(const char *conf, char **out) AMTCA_WUR;

/*
 * For the embedded token (hsm_softhsm_create's layout) after its directory
 * was moved or copied: make `conf` name the tokens/ directory beside it,
 * rewriting it atomically when it names another.  AMTCA_E_HSM_TOKEN when
 * there is no tokens/ beside it.  Never leaves a copy using the original.
 */
int hsm_softhsm_relocate(const char *conf) AMTCA_WUR;

/*
 * Backup of the embedded token (hsm_softhsm_create's layout: the directory
 * holding `conf`): copy its files into the new directory `dest` (made
 * 0700; it must not exist) with the token lock held, so no amtca login,
 * key generation or token write is half-done in the copy, then make the
 * copy's config name its own tokens/ (hsm_softhsm_relocate).  The lock
 * file is not copied, nor `skip` (the PIN file's path, or NULL) when it is
 * in there.  The copy is not opened: log in to it with hsm_open() on
 * dest/softhsm2.conf to check it.  On failure `dest` is removed.
 */
int hsm_softhsm_copy(const char *conf, const char *dest, const char *skip)
    AMTCA_WUR;

/*
 * The protection of the AEAD's AES key (!mac) or HMAC key (mac), as
 * hsm_key_protection() reports it; AMTCA_E_HSM_KEY when that key is absent.
 */
struct hsm_aead;
int hsm_aead_protection(struct hsm_aead *k, int mac,
    struct hsm_key_protection *out) AMTCA_WUR;

#endif
