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


#endif
