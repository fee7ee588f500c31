/*
 * hsm/ internals shared by the signing path (hsm.c) and provisioning and
 * administration (admin.c).  Only hsm/ sources include this file.  Everything
 * here is defined in hsm.c, so admin.o depends on hsm.o and never the
 * other way round: a program that links only the signing path (a signer
 * process) does not pull in admin.o.
 */
#ifndef AMTCA_HSM_INT_H
#define AMTCA_HSM_INT_H

#include <pthread.h>
#include <stddef.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include <openssl/evp.h>

#include "common/err.h"
#include "common/limits.h"
#include "hsm/hsm.h"

#define TOKEN_LABEL_LEN	32		/* CK_TOKEN_INFO.label */

struct hsm {
	CK_FUNCTION_LIST *p11;		/* managed by p11-kit */
	CK_SLOT_ID slot;
	char token[TOKEN_LABEL_LEN + 1];	/* label, for messages */
	int rsa_in_token_hash;		/* CKM_SHA*_RSA_PKCS, else CKM_RSA_PKCS */

	pthread_mutex_t admin_lock;
	CK_SESSION_HANDLE admin;
	int have_admin;

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	CK_SESSION_HANDLE idle[AMTCA_HSM_SESSIONS_MAX];
	size_t nidle;
	size_t nopen;			/* signing sessions open: idle + busy */
	size_t maxopen;
	int locks;			/* mutexes/cond initialised */
	int lockfd;			/* embedded token's amtca.lock, else -1 */
};

struct hsm_key {
	struct hsm *h;
	enum hsm_keytype type;
	CK_OBJECT_HANDLE priv, pub;
	EVP_PKEY *pkey;
	size_t nbytes;			/* RSA: modulus; EC: one of r, s */
	char *label;
};

/* The SoftHSM 2 module's usual places, most likely first. */
extern const char *const hsm_softhsm_modules[];
extern const size_t hsm_softhsm_nmodules;

/* amtca_fail() with p11-kit's text for `rv` appended. */
int hsm_p11_fail(int code, CK_RV rv, const char *fmt, ...) AMTCA_PRINTF(3, 4);

/* Load (p11-kit `flags`) and C_Initialize a module; unload undoes both. */
int hsm_module_load(const char *path, int flags, CK_FUNCTION_LIST **out) AMTCA_WUR;
void hsm_module_unload(CK_FUNCTION_LIST *p);

/* Slots with a token present; *out freed with free(). */
int hsm_slot_list(CK_FUNCTION_LIST *p, CK_SLOT_ID **out, CK_ULONG *n) AMTCA_WUR;

/* The embedded token's directory (holding softhsm2.conf), malloc'd or NULL. */
char *hsm_softhsm_home(const char *conf);

/* The embedded token's lock (see hsm.c): its file in the token's
 * directory; open it, take or drop it. */
#define SOFTHSM_LOCK_FILE "amtca.lock"

int hsm_softhsm_lock_open(const char *home, int *fdp) AMTCA_WUR;
int hsm_softhsm_lock(int fd, int lock);	/* callers may ignore an unlock failure */

/* Copy (backup) or restore (!backup) every token.object under `home`. */
int hsm_softhsm_tokens_sync(const char *home, int backup) AMTCA_WUR;

/* Objects of class `cls` by label and/or CKA_ID; admin_lock held. */
int hsm_find_objects(struct hsm *h, CK_OBJECT_CLASS cls, const char *label,
    const unsigned char *id, size_t idlen, CK_OBJECT_HANDLE *found,
    CK_ULONG max, CK_ULONG *n) AMTCA_WUR;

/* The handle for a key pair whose objects are known; admin_lock held. */
int hsm_key_build(struct hsm *h, const char *label, CK_OBJECT_HANDLE priv,
    CK_OBJECT_HANDLE pub, struct hsm_key **out) AMTCA_WUR;

/*
 * Provisioning side only (defined in admin.c, used by admin.c and aead.c;
 * hsm.o never calls it): the six protection attributes of object o, read
 * in the admin session (the caller holds admin_lock where it must).
 */
struct hsm_key_protection;
CK_RV hsm_protection_get(struct hsm *h, CK_OBJECT_HANDLE o,
    struct hsm_key_protection *out);

#endif
