/*
 * hsm/ provisioning and administration: the embedded SoftHSM token's
 * creation and relocation, key generation and removal, and reading a key's
 * protection back.  The signing path (open, find, sign, public key) is
 * hsm.c; this file uses its internals through hsm_int.h and is never
 * needed by it.
 *
 * Key generation and destruction use the handle's admin session under
 * admin_lock, and, on the embedded token, the token lock (see hsm.c).
 */
#include "hsm/admin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include <openssl/crypto.h>

#include "common/limits.h"
#include "common/util.h"
#include "hsm/hsm_int.h"

#define KEY_ID_LEN	16
#define PIN_HEX_LEN	32

/* DER namedCurve OIDs, the CKA_EC_PARAMS of our two curves. */
static const unsigned char oid_p256[] = {
	0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07
};
static const unsigned char oid_p384[] = {
	0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22
};

int
hsm_keygen(struct hsm *h, enum hsm_keytype type, const char *label,
    struct hsm_key **out)
{
	CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	CK_OBJECT_HANDLE found[1], pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	CK_ULONG n = 0, bits = 0, npubt = 0;
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	unsigned char id[KEY_ID_LEN], exp[] = { 0x01, 0x00, 0x01 };
	struct hsm_key_protection prot;
	int locked = 0, tlocked = 0, r, ret = AMTCA_E_INTERNAL;
	CK_RV rv;
	CK_ATTRIBUTE pubt[10], privt[] = {
		{ CKA_TOKEN, &t, sizeof(t) },
		{ CKA_PRIVATE, &t, sizeof(t) },
		{ CKA_SENSITIVE, &t, sizeof(t) },
		{ CKA_EXTRACTABLE, &f, sizeof(f) },
		{ CKA_SIGN, &t, sizeof(t) },
		/* A CA key signs and does nothing else. */
		{ CKA_DECRYPT, &f, sizeof(f) },
		{ CKA_UNWRAP, &f, sizeof(f) },
		{ CKA_DERIVE, &f, sizeof(f) },
		{ CKA_LABEL, (void *)label, label != NULL ? strlen(label) : 0 },
		{ CKA_ID, id, sizeof(id) },
	};

	*out = NULL;
	if (h == NULL || label == NULL || *label == '\0') {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_keygen: no key label");
		goto out;
	}
	pubt[npubt++] = (CK_ATTRIBUTE){ CKA_TOKEN, &t, sizeof(t) };
	pubt[npubt++] = (CK_ATTRIBUTE){ CKA_PRIVATE, &f, sizeof(f) };
	pubt[npubt++] = (CK_ATTRIBUTE){ CKA_VERIFY, &t, sizeof(t) };
	pubt[npubt++] = (CK_ATTRIBUTE){ CKA_ENCRYPT, &f, sizeof(f) };
	pubt[npubt++] = (CK_ATTRIBUTE){ CKA_WRAP, &f, sizeof(f) };
	pubt[npubt++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
	pubt[npubt++] = (CK_ATTRIBUTE){ CKA_ID, id, sizeof(id) };
	switch (type) {
	case HSM_KEY_RSA2048:
	case HSM_KEY_RSA3072:
	case HSM_KEY_RSA4096:
		bits = type == HSM_KEY_RSA2048 ? 2048 :
		    type == HSM_KEY_RSA3072 ? 3072 : 4096;
		pubt[npubt++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &bits, sizeof(bits) };
		pubt[npubt++] = (CK_ATTRIBUTE){ CKA_PUBLIC_EXPONENT, exp, sizeof(exp) };
		break;
	case HSM_KEY_P256:
	case HSM_KEY_P384:
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		pubt[npubt++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS,
		    (void *)(type == HSM_KEY_P256 ? oid_p256 : oid_p384),
		    type == HSM_KEY_P256 ? sizeof(oid_p256) : sizeof(oid_p384) };
		break;
	default:
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_keygen: unknown key type");
		goto out;
	}
	if ((r = amtca_random(id, sizeof(id))) != 0) {
		ret = r;
		goto out;
	}

	pthread_mutex_lock(&h->admin_lock);
	locked = 1;
	/* Object creation writes the token store: under the token lock. */
	if ((r = hsm_softhsm_lock(h->lockfd, 1)) != 0) {
		ret = r;
		goto out;
	}
	tlocked = 1;
	if ((r = hsm_find_objects(h, CKO_PRIVATE_KEY, label, NULL, 0, found, 1, &n)) != 0 ||
	    (n == 0 && (r = hsm_find_objects(h, CKO_PUBLIC_KEY, label, NULL, 0,
	    found, 1, &n)) != 0)) {
		ret = r;
		goto out;
	}
	if (n > 0) {
		ret = amtca_fail(AMTCA_E_EXISTS, "a key labelled %s already exists "
		    "in token %s; choose another label or use that key", label,
		    h->token);
		goto out;
	}
	rv = h->p11->C_GenerateKeyPair(h->admin, &mech, pubt, npubt, privt,
	    sizeof(privt) / sizeof(privt[0]), &pub, &priv);
	if (rv != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "token %s cannot generate a %s key",
		    h->token, hsm_keytype_name(type));
		pub = priv = CK_INVALID_HANDLE;
		goto out;
	}
	if ((r = hsm_key_build(h, label, priv, pub, out)) != 0) {
		ret = r;
		goto out;
	}
	tlocked = 0;
	if ((r = hsm_softhsm_lock(h->lockfd, 0)) != 0) {
		ret = r;
		goto out;
	}
	pthread_mutex_unlock(&h->admin_lock);
	locked = 0;
	/* Trust, but verify: a token that ignores CKA_SENSITIVE is no HSM. */
	if ((r = hsm_key_protection(*out, &prot)) != 0) {
		ret = r;
		goto out;
	}
	if (!prot.sensitive || prot.extractable || !prot.is_private || !prot.token) {
		ret = amtca_fail(AMTCA_E_HSM, "token %s did not keep the new key "
		    "sensitive and non-extractable; use another token", h->token);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0 && *out != NULL) {
		hsm_key_free(*out);
		*out = NULL;
	}
	/* Never leave a half-made key behind: it would block the label. */
	if (ret != 0 && h != NULL && (pub != CK_INVALID_HANDLE ||
	    priv != CK_INVALID_HANDLE)) {
		if (!locked)
			pthread_mutex_lock(&h->admin_lock);
		locked = 1;
		if (!tlocked && hsm_softhsm_lock(h->lockfd, 1) == 0)
			tlocked = 1;
		if (pub != CK_INVALID_HANDLE)
			(void)h->p11->C_DestroyObject(h->admin, pub);
		if (priv != CK_INVALID_HANDLE)
			(void)h->p11->C_DestroyObject(h->admin, priv);
	}
	if (tlocked)
		(void)hsm_softhsm_lock(h->lockfd, 0);
	if (locked)
		pthread_mutex_unlock(&h->admin_lock);
	return ret;
}

int
hsm_key_destroy(struct hsm *h, struct hsm_key *k)
{
	CK_RV rv1 = CKR_OK, rv2 = CKR_OK;
	int ret = AMTCA_E_INTERNAL;

	if (h == NULL || k == NULL || k->h != h) {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_key_destroy: key is not from "
		    "this token");
		goto out;
	}
	pthread_mutex_lock(&h->admin_lock);
	if ((ret = hsm_softhsm_lock(h->lockfd, 1)) != 0) {
		pthread_mutex_unlock(&h->admin_lock);
		goto out;
	}
	if (k->priv != CK_INVALID_HANDLE)
		rv1 = h->p11->C_DestroyObject(h->admin, k->priv);
	if (k->pub != CK_INVALID_HANDLE)
		rv2 = h->p11->C_DestroyObject(h->admin, k->pub);
	(void)hsm_softhsm_lock(h->lockfd, 0);
	pthread_mutex_unlock(&h->admin_lock);
	ret = AMTCA_E_INTERNAL;
	if (rv1 == CKR_OK || rv1 == CKR_OBJECT_HANDLE_INVALID)
		k->priv = CK_INVALID_HANDLE;
	if (rv2 == CKR_OK || rv2 == CKR_OBJECT_HANDLE_INVALID)
		k->pub = CK_INVALID_HANDLE;
	if (rv1 != CKR_OK || rv2 != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv1 != CKR_OK ? rv1 : rv2, "cannot "
		    "remove key %s from token %s", k->label, h->token);
		goto out;
	}
	ret = 0;
out:
	return ret;
}

CK_RV
hsm_protection_get(struct hsm *h, CK_OBJECT_HANDLE o,
    struct hsm_key_protection *out)
{
	CK_BBOOL v[6] = { 0 };
	CK_ATTRIBUTE a[] = {
		{ CKA_TOKEN, &v[0], sizeof(v[0]) },
		{ CKA_PRIVATE, &v[1], sizeof(v[1]) },
		{ CKA_SENSITIVE, &v[2], sizeof(v[2]) },
		{ CKA_EXTRACTABLE, &v[3], sizeof(v[3]) },
		{ CKA_ALWAYS_SENSITIVE, &v[4], sizeof(v[4]) },
		{ CKA_NEVER_EXTRACTABLE, &v[5], sizeof(v[5]) },
	};
	CK_RV rv;

	memset(out, 0, sizeof(*out));
	rv = h->p11->C_GetAttributeValue(h->admin, o, a, sizeof(a) / sizeof(a[0]));
	if (rv != CKR_OK)
		return rv;
	out->token = v[0] == CK_TRUE;
	out->is_private = v[1] == CK_TRUE;
	out->sensitive = v[2] == CK_TRUE;
	out->extractable = v[3] == CK_TRUE;
	out->always_sensitive = v[4] == CK_TRUE;
	out->never_extractable = v[5] == CK_TRUE;
	return CKR_OK;
}

int
hsm_key_protection(struct hsm_key *k, struct hsm_key_protection *out)
{
	struct hsm *h;
	CK_RV rv;

	memset(out, 0, sizeof(*out));
	if (k == NULL || k->priv == CK_INVALID_HANDLE)
		return amtca_fail(AMTCA_E_HSM_KEY, "key was removed from the token");
	h = k->h;
	pthread_mutex_lock(&h->admin_lock);
	rv = hsm_protection_get(h, k->priv, out);
	pthread_mutex_unlock(&h->admin_lock);
	if (rv != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "cannot read the attributes of "
		    "key %s in token %s", k->label, h->token);
	return 0;
}

/* ---- the embedded SoftHSM default ---- */

static const char *
softhsm_module(void)
{
	size_t i;

	for (i = 0; i < hsm_softhsm_nmodules; i++)
		if (access(hsm_softhsm_modules[i], R_OK) == 0)
			return hsm_softhsm_modules[i];
	return NULL;
}

static int
random_pin(char pin[PIN_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[PIN_HEX_LEN / 2];
	size_t i;
	int r;

	if ((r = amtca_random(b, sizeof(b))) != 0)
		return r;
	for (i = 0; i < sizeof(b); i++) {
		pin[2 * i] = hex[b[i] >> 4];
		pin[2 * i + 1] = hex[b[i] & 15];
	}
	pin[PIN_HEX_LEN] = '\0';
	OPENSSL_cleanse(b, sizeof(b));
	return 0;
}

/* The slot holding the initialised token labelled `padded`. */
static int
slot_by_label(CK_FUNCTION_LIST *p, const unsigned char *padded,
    CK_SLOT_ID *slot)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	CK_TOKEN_INFO ti;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = hsm_slot_list(p, &slots, &n)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (p->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    (ti.flags & CKF_TOKEN_INITIALIZED) &&
		    memcmp(ti.label, padded, TOKEN_LABEL_LEN) == 0) {
			*slot = slots[i];
			ret = 0;
			goto out;
		}
	}
	ret = amtca_fail(AMTCA_E_HSM_TOKEN, "the new SoftHSM token vanished "
	    "after initialisation");
out:
	free(slots);
	return ret;
}

static int
softhsm_init_token(CK_FUNCTION_LIST *p, const char *label, const char *pin)
{
	unsigned char padded[TOKEN_LABEL_LEN];
	char so[PIN_HEX_LEN + 1] = "";
	CK_SLOT_ID *slots = NULL, slot = 0;
	CK_ULONG n = 0, i;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	int have_slot = 0, logged_in = 0, r, ret = AMTCA_E_INTERNAL;
	CK_RV rv;

	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, strlen(label));
	if ((r = hsm_slot_list(p, &slots, &n)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (p->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if ((ti.flags & CKF_TOKEN_INITIALIZED) &&
		    memcmp(ti.label, padded, sizeof(padded)) == 0) {
			ret = amtca_fail(AMTCA_E_EXISTS, "a SoftHSM token labelled "
			    "%s already exists", label);
			goto out;
		}
		if (!have_slot && !(ti.flags & CKF_TOKEN_INITIALIZED)) {
			slot = slots[i];
			have_slot = 1;
		}
	}
	if (!have_slot) {
		ret = amtca_fail(AMTCA_E_HSM_TOKEN, "SoftHSM offers no free slot");
		goto out;
	}
	/* The SO PIN is used once and forgotten: the CA is not reset. */
	if ((r = random_pin(so)) != 0) {
		ret = r;
		goto out;
	}
	if ((rv = p->C_InitToken(slot, (CK_UTF8CHAR *)so, strlen(so),
	    padded)) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot initialise SoftHSM token %s",
		    label);
		goto out;
	}
	/* SoftHSM renumbers its slots after C_InitToken. */
	if ((r = slot_by_label(p, padded, &slot)) != 0) {
		ret = r;
		goto out;
	}
	if ((rv = p->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
	    NULL, NULL, &s)) != CKR_OK) {
		s = CK_INVALID_HANDLE;
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot open a session on the new "
		    "token %s", label);
		goto out;
	}
	if ((rv = p->C_Login(s, CKU_SO, (CK_UTF8CHAR *)so, strlen(so))) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot log in as SO on the new "
		    "token %s", label);
		goto out;
	}
	logged_in = 1;
	if ((rv = p->C_InitPIN(s, (CK_UTF8CHAR *)pin, strlen(pin))) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot set the user PIN of the new "
		    "token %s", label);
		goto out;
	}
	ret = 0;
out:
	if (logged_in)
		(void)p->C_Logout(s);
	if (s != CK_INVALID_HANDLE)
		(void)p->C_CloseSession(s);
	OPENSSL_cleanse(so, sizeof(so));
	free(slots);
	return ret;
}

int
hsm_softhsm_create(const char *dir, const char *label, const char *pin_path,
    char **module_out, char **uri_out, char **conf_out)
{
	char *absdir = NULL, *tokens = NULL, *conf = NULL, *text = NULL;
	char *module = NULL, *uristr = NULL;
	char pin[PIN_HEX_LEN + 1] = "";
	const char *mpath;
	CK_FUNCTION_LIST *p = NULL;
	P11KitUri *uri = NULL;
	CK_TOKEN_INFO *uti;
	int pin_written = 0, lockfd = -1, tlen, r, ret = AMTCA_E_INTERNAL;
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	*module_out = *uri_out = *conf_out = NULL;
	if (dir == NULL || label == NULL || pin_path == NULL || *label == '\0' ||
	    strlen(label) > TOKEN_LABEL_LEN) {
		ret = amtca_fail(AMTCA_E_USAGE, "SoftHSM token label must be 1 to "
		    "%d bytes", TOKEN_LABEL_LEN);
		goto out;
	}
	if ((mpath = softhsm_module()) == NULL) {
		ret = amtca_fail(AMTCA_E_HSM_MODULE, "SoftHSM is not installed "
		    "(no %s); install softhsm2 or configure another PKCS#11 "
		    "module", hsm_softhsm_modules[0]);
		goto out;
	}
	if ((r = amtca_mkdirs(dir, 0700)) != 0) {
		ret = r;
		goto out;
	}
	if ((absdir = realpath(dir, NULL)) == NULL) {
		ret = amtca_fail(AMTCA_E_IO, "cannot resolve %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	/* Held until the backup of the new token.object is taken. */
	if ((r = hsm_softhsm_lock_open(absdir, &lockfd)) != 0 ||
	    (r = hsm_softhsm_lock(lockfd, 1)) != 0) {
		ret = r;
		goto out;
	}
	if (asprintf(&tokens, "%s/tokens", absdir) < 0) {
		tokens = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (asprintf(&conf, "%s/softhsm2.conf", absdir) < 0) {
		conf = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((tlen = asprintf(&text, "# written by amtca: SoftHSM token store\n"
	    "directories.tokendir = %s\nobjectstore.backend = file\n"
	    "log.level = ERROR\nslots.removable = false\n", tokens)) < 0) {
		text = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (mkdir(tokens, 0700) != 0) {
		ret = amtca_fail(errno == EEXIST ? AMTCA_E_EXISTS : AMTCA_E_IO,
		    "cannot create %s: %s; use an empty directory", tokens,
		    strerror(errno));
		goto out;
	}
	if ((r = amtca_file_write(conf, text, (size_t)tlen, 0600, 1)) != 0) {
		ret = r;
		goto out;
	}
	/* Written first and exclusively: never leave a token nobody can open. */
	if ((r = random_pin(pin)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = amtca_file_write(pin_path, pin, strlen(pin), 0600, 1)) != 0) {
		ret = r;
		goto out;
	}
	pin_written = 1;
	if (setenv("SOFTHSM2_CONF", conf, 1) != 0) {
		ret = amtca_fail(AMTCA_E_NOMEM, "cannot set SOFTHSM2_CONF");
		goto out;
	}
	/*
	 * Unmanaged and initialised by us, so that a SoftHSM already running
	 * in this process on another configuration is detected (it would
	 * ignore SOFTHSM2_CONF) instead of silently getting the new token.
	 */
	if ((p = p11_kit_module_load(mpath, P11_KIT_MODULE_UNMANAGED)) == NULL) {
		ret = amtca_fail(AMTCA_E_HSM_MODULE, "cannot load %s: %s", mpath,
		    p11_kit_message() != NULL ? p11_kit_message() : "unknown error");
		goto out;
	}
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	if ((rv = p->C_Initialize(&args)) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM_MODULE, rv, rv ==
		    CKR_CRYPTOKI_ALREADY_INITIALIZED ? "SoftHSM is already in use "
		    "in this process; create the token before opening one" :
		    "SoftHSM failed to initialise with %s", conf);
		p11_kit_module_release(p);
		p = NULL;
		goto out;
	}
	if ((r = softhsm_init_token(p, label, pin)) != 0) {
		ret = r;
		goto out;
	}
	if ((uri = p11_kit_uri_new()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	uti = p11_kit_uri_get_token_info(uri);
	memset(uti->label, ' ', sizeof(uti->label));
	memcpy(uti->label, label, strlen(label));
	if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_TOKEN, &uristr) !=
	    P11_KIT_URI_OK || (module = strdup(mpath)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*module_out = module;
	*uri_out = uristr;
	*conf_out = conf;
	module = uristr = conf = NULL;
	ret = 0;
out:
	if (p != NULL) {
		(void)p->C_Finalize(NULL);
		p11_kit_module_release(p);
	}
	/* After C_Finalize: SoftHSM has written the token for good. */
	if (ret == 0 && (r = hsm_softhsm_tokens_sync(absdir, 1)) != 0) {
		ret = r;
		free(*module_out);
		free(*uri_out);
		free(*conf_out);
		*module_out = *uri_out = *conf_out = NULL;
	}
	if (lockfd != -1)
		close(lockfd);
	if (ret != 0 && pin_written)
		(void)unlink(pin_path);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (uri != NULL)
		p11_kit_uri_free(uri);
	free(uristr);
	free(module);
	free(absdir);
	free(tokens);
	free(conf);
	free(text);
	return ret;
}

#define TOKENDIR_KEY "directories.tokendir"

/*
 * Read a softhsm2.conf; *tokendir (malloc'd) is the value of
 * directories.tokendir, NULL when absent.  *text (malloc'd) is the file.
 */
static int
softhsm_conf_read(const char *conf, char **text, char **tokendir)
{
	unsigned char *buf = NULL;
	size_t len;
	char *line, *v, *e;
	int r;

	*text = *tokendir = NULL;
	if ((r = amtca_file_read(conf, AMTCA_SOFTHSM_CONF_MAX, &buf, &len)) != 0)
		return r;
	for (line = (char *)buf; line != NULL && *line != '\0';
	    line = (e = strchr(line, '\n')) != NULL ? e + 1 : NULL) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, TOKENDIR_KEY, strlen(TOKENDIR_KEY)) != 0)
			continue;
		v = line + strlen(TOKENDIR_KEY);
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v++ != '=')
			continue;
		while (*v == ' ' || *v == '\t')
			v++;
		e = v + strcspn(v, "\r\n");
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		free(*tokendir);
		if ((*tokendir = strndup(v, (size_t)(e - v))) == NULL) {
			free(buf);
			return AMTCA_E_NOMEM;
		}
	}
	*text = (char *)buf;
	return 0;
}

int
hsm_softhsm_tokendir(const char *conf, char **out)
{
	char *text = NULL;
	int r;

	*out = NULL;
	if ((r = softhsm_conf_read(conf, &text, out)) != 0)
		return r;
	free(text);
	if (*out == NULL)
		return amtca_fail(AMTCA_E_CONFIG, "%s names no %s", conf,
		    TOKENDIR_KEY);
	return 0;
}

int
hsm_softhsm_relocate(const char *conf)
{
	char *text = NULL, *tokendir = NULL, *home = NULL, *want = NULL;
	char *head = NULL, *nt = NULL, *at;
	struct stat sb;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = softhsm_conf_read(conf, &text, &tokendir)) != 0) {
		ret = r;
		goto out;
	}
	if ((home = hsm_softhsm_home(conf)) == NULL ||
	    asprintf(&want, "%s/tokens", home) < 0) {
		want = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (tokendir != NULL && strcmp(tokendir, want) == 0) {
		ret = 0;
		goto out;
	}
	/*
	 * The home was moved or copied (cp -a): the conf still names the
	 * original's token store.  Use the one that came along, never the
	 * original's.
	 */
	if (stat(want, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		ret = amtca_fail(AMTCA_E_HSM_TOKEN, "%s names the token store %s, "
		    "but this CA home's own store %s is missing; copy the whole "
		    "home (softhsm/tokens included)", conf,
		    tokendir != NULL ? tokendir : "(none)", want);
		goto out;
	}
	if (tokendir == NULL) {
		ret = amtca_fail(AMTCA_E_CONFIG, "%s names no %s", conf, TOKENDIR_KEY);
		goto out;
	}
	/* Replace the value of the (last) tokendir line, keep the rest. */
	at = strstr(text, tokendir);
	while (at != NULL && strstr(at + 1, tokendir) != NULL)
		at = strstr(at + 1, tokendir);
	if (at == NULL || (head = strndup(text, (size_t)(at - text))) == NULL ||
	    asprintf(&nt, "%s%s%s", head, want, at + strlen(tokendir)) < 0) {
		nt = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = amtca_file_write(conf, nt, strlen(nt), 0600, 0)) != 0) {
		ret = amtca_fail(r, "this CA home was moved or copied and %s must "
		    "now name %s, but it cannot be rewritten", conf, want);
		goto out;
	}
	ret = 0;
out:
	free(text);
	free(tokendir);
	free(home);
	free(want);
	free(head);
	free(nt);
	return ret;
}

/* ---- backup copy of the embedded token ---- */

#define SOFTHSM_COPY_DEPTH 4		/* tokens/<uuid>/<object>: 2 */

/* Copy directory `src` into the new directory `dst`, recursively. */
static int
softhsm_copy_dir(const char *src, const char *dst, const char *skip,
    int depth)
{
	char *s = NULL, *d = NULL;
	struct dirent *e;
	struct stat sb;
	DIR *dir = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (depth > SOFTHSM_COPY_DEPTH) {
		ret = amtca_fail(AMTCA_E_HSM_TOKEN, "%s: token store nested "
		    "deeper than SoftHSM makes it", src);
		goto out;
	}
	if (mkdir(dst, 0700) != 0) {
		ret = amtca_fail(errno == EEXIST ? AMTCA_E_EXISTS : AMTCA_E_IO,
		    "cannot create %s: %s", dst, strerror(errno));
		goto out;
	}
	if ((dir = opendir(src)) == NULL) {
		ret = amtca_fail(AMTCA_E_IO, "cannot read %s: %s", src,
		    strerror(errno));
		goto out;
	}
	while ((e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		free(s);
		free(d);
		s = d = NULL;
		if (asprintf(&s, "%s/%s", src, e->d_name) < 0 ||
		    asprintf(&d, "%s/%s", dst, e->d_name) < 0) {
			s = d = NULL;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (lstat(s, &sb) != 0) {
			ret = amtca_fail(AMTCA_E_IO, "cannot examine %s: %s", s,
			    strerror(errno));
			goto out;
		}
		if (depth == 0 && strcmp(e->d_name, SOFTHSM_LOCK_FILE) == 0)
			continue;
		if (skip != NULL && strcmp(s, skip) == 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			r = softhsm_copy_dir(s, d, skip, depth + 1);
		else if (S_ISREG(sb.st_mode))
			r = amtca_file_copy(s, d, 0600, NULL);
		else
			r = amtca_fail(AMTCA_E_HSM_TOKEN, "%s in the token store "
			    "is neither a file nor a directory; not copying it",
			    s);
		if (r != 0) {
			ret = r;
			goto out;
		}
	}
	ret = 0;
out:
	if (dir != NULL)
		closedir(dir);
	free(s);
	free(d);
	return ret;
}

int
hsm_softhsm_copy(const char *conf, const char *dest, const char *skip)
{
	char *home = NULL, *dconf = NULL;
	int fd = -1, locked = 0, made = 0, r, ret = AMTCA_E_INTERNAL;
	struct stat sb;

	if (conf == NULL || dest == NULL || conf[0] != '/' || dest[0] != '/') {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_softhsm_copy: absolute "
		    "paths needed");
		goto out;
	}
	if (lstat(dest, &sb) == 0 || errno != ENOENT) {
		ret = amtca_fail(AMTCA_E_EXISTS, "%s already exists", dest);
		goto out;
	}
	if ((home = hsm_softhsm_home(conf)) == NULL ||
	    asprintf(&dconf, "%s/%s", dest, conf + strlen(home) + 1) < 0) {
		dconf = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	/*
	 * The same flock every amtca token write holds (hsm.c): a login,
	 * key generation or restore check elsewhere waits for the copy, and
	 * the copy never sees a token.object in the middle of being written.
	 */
	if ((r = hsm_softhsm_lock_open(home, &fd)) != 0 ||
	    (r = hsm_softhsm_lock(fd, 1)) != 0) {
		ret = r;
		goto out;
	}
	locked = 1;
	made = 1;
	if ((r = softhsm_copy_dir(home, dest, skip, 0)) != 0) {
		ret = r;
		goto out;
	}
	(void)hsm_softhsm_lock(fd, 0);
	locked = 0;
	if ((r = hsm_softhsm_relocate(dconf)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	if (locked)
		(void)hsm_softhsm_lock(fd, 0);
	if (fd != -1)
		close(fd);
	if (ret != 0 && made)
		amtca_rmtree(dest);
	free(home);
	free(dconf);
	return ret;
}
