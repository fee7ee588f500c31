/*
 * hsm/: PKCS#11 through the module's CK_FUNCTION_LIST, loaded and
 * reference-counted by p11-kit (see docs/hsm.md for why not libp11).
 * This file is the signing path (open, find, sign, public key) and the
 * internals admin.c shares (hsm_int.h); provisioning and administration
 * (token creation, key generation and removal) are in admin.c.
 *
 * Concurrency: one "admin" session (read-write, the one we logged in on)
 * serves key generation, lookup, destruction and attribute reads under
 * admin_lock; signing takes a session from a small pool (grown on demand up
 * to AMTCA_HSM_SESSIONS_MAX) so no PKCS#11 session is ever used by two
 * threads at once.  The login state belongs to the application, so sessions
 * opened after C_Login are logged in too; the admin session stays open for
 * the life of the handle so the login never lapses.
 */
#include "hsm/hsm.h"
#include "hsm/hsm_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>

#include "common/limits.h"
#include "common/util.h"

/* Largest public-key attribute we accept from a token (RSA-16384 modulus). */
#define ATTR_MAX	2048
/* The SoftHSM 2 module's usual places, most likely first. */
const char *const hsm_softhsm_modules[] = {
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
};
const size_t hsm_softhsm_nmodules =
    sizeof(hsm_softhsm_modules) / sizeof(hsm_softhsm_modules[0]);

static const struct {
	const char *name;
	enum hsm_keytype type;
} keytypes[] = {
	{ "rsa2048", HSM_KEY_RSA2048 },
	{ "rsa3072", HSM_KEY_RSA3072 },
	{ "rsa4096", HSM_KEY_RSA4096 },
	{ "p256", HSM_KEY_P256 },
	{ "p384", HSM_KEY_P384 },
};

/* DigestInfo prefixes (RFC 8017 9.2 note 1) for hashing in software. */
static const unsigned char di_sha256[] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
	0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20
};
static const unsigned char di_sha384[] = {
	0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
	0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30
};
static const unsigned char di_sha512[] = {
	0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
	0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40
};

int
hsm_keytype_parse(const char *name, enum hsm_keytype *out)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(keytypes) / sizeof(keytypes[0]); i++) {
		if (strcmp(name, keytypes[i].name) == 0) {
			*out = keytypes[i].type;
			return 0;
		}
	}
	return amtca_fail(AMTCA_E_USAGE, "unknown key type \"%s\": use rsa2048, "
	    "rsa3072, rsa4096, p256 or p384", name != NULL ? name : "");
}

const char *
hsm_keytype_name(enum hsm_keytype t)
{
	size_t i;

	for (i = 0; i < sizeof(keytypes) / sizeof(keytypes[0]); i++)
		if (keytypes[i].type == t)
			return keytypes[i].name;
	return "unknown";
}

/* amtca_fail() with p11-kit's text for `rv` appended. */
AMTCA_PRINTF(3, 4)
int
hsm_p11_fail(int code, CK_RV rv, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return amtca_fail(code, "%s: %s (CKR 0x%lx)", buf, p11_kit_strerror(rv),
	    (unsigned long)rv);
}

/* Space-padded PKCS#11 string to a C string without the padding. */
static void
unpad(char *dst, const unsigned char *src, size_t n)
{
	memcpy(dst, src, n);
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

int
hsm_module_load(const char *path, int flags, CK_FUNCTION_LIST **out)
{
	CK_FUNCTION_LIST *p = NULL;
	const char *why;
	CK_RV rv;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (path == NULL || *path == '\0') {
		ret = amtca_fail(AMTCA_E_HSM_MODULE, "no PKCS#11 module configured: "
		    "set the module path (e.g. %s)", hsm_softhsm_modules[0]);
		goto out;
	}
	if ((p = p11_kit_module_load(path, flags)) == NULL) {
		why = p11_kit_message();
		ret = amtca_fail(AMTCA_E_HSM_MODULE, "cannot load PKCS#11 module "
		    "%s: %s; check the module path", path,
		    why != NULL ? why : "unknown error");
		goto out;
	}
	if ((rv = p11_kit_module_initialize(p)) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM_MODULE, rv, "PKCS#11 module %s failed "
		    "to initialise (for SoftHSM check SOFTHSM2_CONF)", path);
		goto out;
	}
	*out = p;
	p = NULL;
	ret = 0;
out:
	if (p != NULL)
		p11_kit_module_release(p);
	return ret;
}

void
hsm_module_unload(CK_FUNCTION_LIST *p)
{
	if (p == NULL)
		return;
	(void)p11_kit_module_finalize(p);
	p11_kit_module_release(p);
}

/* Slots with a token present; *out freed with free(). */
int
hsm_slot_list(CK_FUNCTION_LIST *p, CK_SLOT_ID **out, CK_ULONG *n)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG cnt = 0;
	CK_RV rv;
	int tries, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*n = 0;
	for (tries = 0; tries < 4; tries++) {
		if ((rv = p->C_GetSlotList(CK_TRUE, NULL, &cnt)) != CKR_OK) {
			ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot list PKCS#11 slots");
			goto out;
		}
		free(slots);
		if ((slots = calloc(cnt + 1, sizeof(*slots))) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		rv = p->C_GetSlotList(CK_TRUE, slots, &cnt);
		if (rv == CKR_BUFFER_TOO_SMALL)
			continue;	/* a token appeared in between */
		if (rv != CKR_OK) {
			ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot list PKCS#11 slots");
			goto out;
		}
		*out = slots;
		*n = cnt;
		slots = NULL;
		ret = 0;
		goto out;
	}
	ret = amtca_fail(AMTCA_E_HSM, "PKCS#11 slot list keeps changing");
out:
	free(slots);
	return ret;
}

/*
 * Exactly one token must match the URI, compared by p11-kit against the
 * module, slot and token info (RFC 7512 semantics, padding included).
 */
static int
token_select(CK_FUNCTION_LIST *p, P11KitUri *uri, const char *uristr,
    CK_SLOT_ID *slot, CK_TOKEN_INFO *tinfo)
{
	CK_SLOT_ID *slots = NULL, want_id;
	CK_ULONG n = 0, i, matches = 0;
	CK_INFO minfo;
	CK_SLOT_INFO sinfo;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	int r, ret = AMTCA_E_INTERNAL;

	if ((rv = p->C_GetInfo(&minfo)) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot read PKCS#11 module info");
		goto out;
	}
	if (!p11_kit_uri_match_module_info(uri, &minfo)) {
		ret = amtca_fail(AMTCA_E_HSM_TOKEN, "the module does not match the "
		    "library attributes of token URI %s; fix the URI or the module", uristr);
		goto out;
	}
	if ((r = hsm_slot_list(p, &slots, &n)) != 0) {
		ret = r;
		goto out;
	}
	want_id = p11_kit_uri_get_slot_id(uri);
	for (i = 0; i < n; i++) {
		if (want_id != (CK_SLOT_ID)-1 && slots[i] != want_id)
			continue;
		if (p->C_GetSlotInfo(slots[i], &sinfo) != CKR_OK ||
		    !p11_kit_uri_match_slot_info(uri, &sinfo))
			continue;
		if (p->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
		    !p11_kit_uri_match_token_info(uri, &ti))
			continue;
		if (matches++ == 0) {
			*slot = slots[i];
			*tinfo = ti;
		}
	}
	if (matches == 0) {
		ret = amtca_fail(AMTCA_E_HSM_TOKEN, "no PKCS#11 token matches %s "
		    "(%lu token(s) present); list them with p11tool --list-tokens "
		    "or pkcs11-tool -L and fix the token URI", uristr, n);
		goto out;
	}
	if (matches > 1) {
		ret = amtca_fail(AMTCA_E_HSM_TOKEN, "%lu PKCS#11 tokens match %s; "
		    "add serial= or model= to the token URI", matches, uristr);
		goto out;
	}
	ret = 0;
out:
	free(slots);
	return ret;
}

/* "file:/p", "file:///p", "file://localhost/p" or a plain path. */
static int
pin_source_path(const char *src, const char **path)
{
	*path = NULL;
	if (strncmp(src, "file://", 7) == 0) {
		src += 7;
		if (strncmp(src, "localhost/", 10) == 0)
			src += 9;
		if (*src != '/')
			return amtca_fail(AMTCA_E_CONFIG, "pin-source file URI must "
			    "name an absolute path (file:///path)");
	} else if (strncmp(src, "file:", 5) == 0) {
		src += 5;
	} else if (*src == '|' || strstr(src, "://") != NULL) {
		return amtca_fail(AMTCA_E_CONFIG, "unsupported pin-source (only "
		    "files): use pin-source=file:/path/to/pin");
	}
	if (*src == '\0')
		return amtca_fail(AMTCA_E_CONFIG, "empty pin-source in the token URI");
	/* Relative would mean relative to wherever amtca happens to run. */
	if (*src != '/')
		return amtca_fail(AMTCA_E_CONFIG, "pin-source %s is a relative "
		    "path; use pin-source=file:/absolute/path", src);
	*path = src;
	return 0;
}

static int
login(struct hsm *h, const char *pin_path)
{
	CK_TOKEN_INFO ti;
	char *pin = NULL;
	CK_RV rv;
	int r, ret = AMTCA_E_INTERNAL;

	if ((rv = h->p11->C_GetTokenInfo(h->slot, &ti)) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot read info of token %s", h->token);
		goto out;
	}
	if (!(ti.flags & CKF_LOGIN_REQUIRED)) {
		ret = 0;
		goto out;
	}
	if (ti.flags & CKF_USER_PIN_LOCKED) {
		ret = amtca_fail(AMTCA_E_HSM_LOCKED, "the user PIN of token %s is "
		    "locked; unlock it with the SO PIN (pkcs11-tool --unlock-pin) "
		    "or re-create the token", h->token);
		goto out;
	}
	if (!(ti.flags & CKF_USER_PIN_INITIALIZED)) {
		ret = amtca_fail(AMTCA_E_HSM_TOKEN, "token %s has no user PIN; "
		    "initialise it first", h->token);
		goto out;
	}
	if ((r = amtca_secret_read(pin_path, &pin)) != 0) {
		ret = r;
		goto out;
	}
	/* Never retried: each failure counts towards locking the token. */
	rv = h->p11->C_Login(h->admin, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
	amtca_secret_free(pin);
	pin = NULL;
	switch (rv) {
	case CKR_OK:
	case CKR_USER_ALREADY_LOGGED_IN:	/* another handle in this process */
		ret = 0;
		break;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		if (h->p11->C_GetTokenInfo(h->slot, &ti) == CKR_OK &&
		    (ti.flags & CKF_USER_PIN_FINAL_TRY))
			ret = amtca_fail(AMTCA_E_HSM_PIN, "wrong PIN for token %s "
			    "in %s; fix that file: ONE more failure locks the token",
			    h->token, pin_path);
		else
			ret = amtca_fail(AMTCA_E_HSM_PIN, "wrong PIN for token %s "
			    "in %s; fix that file (not retried: repeated failures "
			    "lock the token)", h->token, pin_path);
		break;
	case CKR_PIN_LOCKED:
		ret = amtca_fail(AMTCA_E_HSM_LOCKED, "the user PIN of token %s is "
		    "locked; unlock it with the SO PIN (pkcs11-tool --unlock-pin) "
		    "or re-create the token", h->token);
		break;
	default:
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "login to token %s failed", h->token);
		break;
	}
out:
	amtca_secret_free(pin);
	return ret;
}

static int
mech_can_sign(struct hsm *h, CK_MECHANISM_TYPE m)
{
	CK_MECHANISM_INFO mi;

	return h->p11->C_GetMechanismInfo(h->slot, m, &mi) == CKR_OK &&
	    (mi.flags & CKF_SIGN);
}

/*
 * SoftHSM 2.6's file store rewrites tokens/<uuid>/token.object in place on
 * every C_Login (ftruncate to 0, then write, no fsync).  A process killed
 * between the two, or a power loss, leaves it empty, and with it the
 * token's label and PIN-wrapped token key: the embedded CA would be lost.
 * (Measured: SIGKILLing amtca issue at random moments emptied it within
 * about 20 runs.)  For the embedded token hsm/ keeps a durable copy of
 * each token.object taken when the token is created (amtca never changes
 * the PINs or label, so it stays valid) and puts it back when it finds
 * token.object empty or missing, before SoftHSM reads the store.
 */
#define SOFTHSM_BACKUP_DIR "token-backup"

/* The directory holding softhsm2.conf, tokens/ and token-backup/. */
char *
hsm_softhsm_home(const char *conf)
{
	char *copy = strdup(conf), *d, *out = NULL;

	if (copy == NULL)
		return NULL;
	d = dirname(copy);
	out = strdup(d);
	free(copy);
	return out;
}

/*
 * One lock for the embedded token, shared by every amtca process on the
 * home.  SoftHSM's own fcntl locks do not protect token.object: the writer
 * opens it with O_TRUNC before it locks, and 2.6.1 flushes its stdio buffer
 * only after unlocking, so a process starting up next to a login read an
 * empty or half-written file ("no PKCS#11 token matches", CKR 0x5) and the
 * restore below "repaired" files that were merely being written.  Every
 * SoftHSM call that writes or re-reads the token store from amtca
 * (C_Initialize, token lookup, C_Login, C_InitToken/C_InitPIN, object
 * creation and destruction) runs with this flock held, and so does the
 * restore check.  C_Logout, C_CloseSession, C_Finalize and signing write
 * nothing there.  A vendor module needs none of this: lockfd stays -1.
 */

/* Open (creating it 0600) the lock file of the token store at `home`. */
int
hsm_softhsm_lock_open(const char *home, int *fdp)
{
	char *path = NULL;
	int fd, ret = AMTCA_E_INTERNAL;

	*fdp = -1;
	if (asprintf(&path, "%s/" SOFTHSM_LOCK_FILE, home) < 0) {
		path = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1 && (errno == EACCES || errno == EROFS))
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1) {
		ret = amtca_fail(AMTCA_E_IO, "cannot open the token lock %s: %s",
		    path, strerror(errno));
		goto out;
	}
	*fdp = fd;
	ret = 0;
out:
	free(path);
	return ret;
}

/* Take (lock) or drop (!lock) the token lock; no-op without one. */
int
hsm_softhsm_lock(int fd, int lock)
{
	if (fd == -1)
		return 0;
	while (flock(fd, lock ? LOCK_EX : LOCK_UN) != 0) {
		if (errno != EINTR)
			return amtca_fail(AMTCA_E_IO, "cannot %s the SoftHSM "
			    "token lock: %s", lock ? "take" : "release",
			    strerror(errno));
	}
	return 0;
}

/*
 * Does another process have `path` open for writing?  A read lease is
 * granted only when no other open file description has the file open for
 * writing (fcntl(2), F_SETLEASE); it is dropped at once.  1 yes, 0 no,
 * -1 cannot tell (not the file's owner, or a file system without leases).
 */
static int
open_for_writing_elsewhere(const char *path)
{
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) == -1)
		return errno == ENOENT ? 0 : (errno == EWOULDBLOCK ? 1 : -1);
	/*
	 * Should a writer open the file while we hold the lease, the kernel
	 * signals the holder: SIGURG, ignored by default, not SIGIO, whose
	 * default would end this process.
	 */
	if (fcntl(fd, F_SETSIG, SIGURG) == 0 &&
	    fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
		(void)fcntl(fd, F_SETLEASE, F_UNLCK);
		r = 0;
	} else
		r = errno == EAGAIN ? 1 : -1;
	close(fd);
	return r;
}

/* Copy (backup) or restore (!backup) every token.object; 0 or an error. */
int
hsm_softhsm_tokens_sync(const char *home, int backup)
{
	char *tokens = NULL, *bdir = NULL, *obj = NULL, *bak = NULL;
	unsigned char *buf = NULL;
	size_t len;
	struct stat sb;
	struct dirent *e;
	DIR *dir = NULL;
	int r, ret = 0;

	if (asprintf(&tokens, "%s/tokens", home) < 0 ||
	    asprintf(&bdir, "%s/" SOFTHSM_BACKUP_DIR, home) < 0) {
		tokens = bdir = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (backup && mkdir(bdir, 0700) != 0 && errno != EEXIST) {
		ret = amtca_fail(AMTCA_E_IO, "cannot create %s: %s", bdir,
		    strerror(errno));
		goto out;
	}
	if (!backup && stat(bdir, &sb) != 0)
		goto out;		/* a token made before backups existed */
	if ((dir = opendir(tokens)) == NULL)
		goto out;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		free(obj);
		free(bak);
		obj = bak = NULL;
		if (asprintf(&obj, "%s/%s/token.object", tokens, e->d_name) < 0 ||
		    asprintf(&bak, "%s/%s.object", bdir, e->d_name) < 0) {
			obj = bak = NULL;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (backup) {
			if ((r = amtca_file_read(obj, AMTCA_HSM_TOKEN_OBJECT_MAX,
			    &buf, &len)) != 0 || len == 0 ||
			    (r = amtca_file_write(bak, buf, len, 0600, 0)) != 0) {
				ret = r != 0 ? r : amtca_fail(AMTCA_E_HSM,
				    "%s is empty right after token creation", obj);
				goto out;
			}
		} else {
			/*
			 * Called with the token lock held: no amtca login is
			 * writing.  An empty file that some other process still
			 * holds open for writing is being written, not
			 * interrupted; never put the backup over it.
			 */
			if (stat(obj, &sb) == 0 && sb.st_size > 0)
				continue;
			if (stat(bak, &sb) != 0)
				continue;
			if (open_for_writing_elsewhere(obj) == 1) {
				ret = amtca_fail(AMTCA_E_HSM_TOKEN, "%s is empty "
				    "and open in another process that is writing "
				    "it; not restoring it from the backup: retry "
				    "when that process has finished", obj);
				goto out;
			}
			if ((r = amtca_file_read(bak, AMTCA_HSM_TOKEN_OBJECT_MAX,
			    &buf, &len)) != 0 ||
			    (r = amtca_file_write(obj, buf, len, 0600, 0)) != 0) {
				ret = r;
				goto out;
			}
			fprintf(stderr, "amtca: restored %s from %s (it was left "
			    "empty by an interrupted SoftHSM login)\n", obj, bak);
		}
		OPENSSL_cleanse(buf, len);
		free(buf);
		buf = NULL;
	}
out:
	if (dir != NULL)
		closedir(dir);
	free(buf);
	free(obj);
	free(bak);
	free(tokens);
	free(bdir);
	return ret;
}

int
hsm_open(const struct hsm_open_opts *opts, struct hsm **out)
{
	struct hsm *h = NULL;
	P11KitUri *uri = NULL;
	CK_TOKEN_INFO ti;
	const char *pin_path = NULL, *src;
	CK_RV rv;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	memset(&ti, 0, sizeof(ti));
	if (opts == NULL || opts->token_uri == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_open: no token URI");
		goto out;
	}
	if ((uri = p11_kit_uri_new()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = p11_kit_uri_parse(opts->token_uri, P11_KIT_URI_FOR_ANY, uri)) !=
	    P11_KIT_URI_OK) {
		ret = amtca_fail(AMTCA_E_CONFIG, "bad PKCS#11 token URI %s: %s; "
		    "expected pkcs11:token=<label>", opts->token_uri,
		    p11_kit_uri_message(r));
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(uri)) {
		ret = amtca_fail(AMTCA_E_CONFIG, "token URI %s has attributes "
		    "p11-kit does not understand; remove them", opts->token_uri);
		goto out;
	}
	/* A URI travels on command lines and in logs: no PIN inside. */
	if (p11_kit_uri_get_pin_value(uri) != NULL) {
		ret = amtca_fail(AMTCA_E_CONFIG, "the token URI carries pin-value; "
		    "put the PIN in a file and use pin-source=file:/path or a PIN file");
		goto out;
	}
	pin_path = opts->pin_file;
	if (pin_path == NULL && (src = p11_kit_uri_get_pin_source(uri)) != NULL) {
		if ((r = pin_source_path(src, &pin_path)) != 0) {
			ret = r;
			goto out;
		}
	}
	if (pin_path == NULL) {
		ret = amtca_fail(AMTCA_E_CONFIG, "no PIN for the token: set a PIN "
		    "file or pin-source=file:/path in the token URI");
		goto out;
	}

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	h->lockfd = -1;
	if (pthread_mutex_init(&h->admin_lock, NULL) != 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (pthread_mutex_init(&h->pool_lock, NULL) != 0) {
		pthread_mutex_destroy(&h->admin_lock);
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (pthread_cond_init(&h->pool_cond, NULL) != 0) {
		pthread_mutex_destroy(&h->admin_lock);
		pthread_mutex_destroy(&h->pool_lock);
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	h->locks = 1;

	if (opts->softhsm_conf != NULL) {
		char *home = hsm_softhsm_home(opts->softhsm_conf);

		/* Held from the restore check until C_Login has written. */
		if (home == NULL)
			r = AMTCA_E_NOMEM;
		else if ((r = hsm_softhsm_lock_open(home, &h->lockfd)) == 0 &&
		    (r = hsm_softhsm_lock(h->lockfd, 1)) == 0)
			r = hsm_softhsm_tokens_sync(home, 0);
		free(home);
		if (r != 0) {
			ret = r;
			goto out;
		}
		if (setenv("SOFTHSM2_CONF", opts->softhsm_conf, 1) != 0) {
			ret = amtca_fail(AMTCA_E_NOMEM, "cannot set SOFTHSM2_CONF");
			goto out;
		}
	}
	if ((r = hsm_module_load(opts->module, 0, &h->p11)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = token_select(h->p11, uri, opts->token_uri, &h->slot, &ti)) != 0) {
		ret = r;
		goto out;
	}
	unpad(h->token, ti.label, sizeof(ti.label));
	/* Read-write: key generation and destruction happen here too. */
	if ((rv = h->p11->C_OpenSession(h->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
	    NULL, NULL, &h->admin)) != CKR_OK) {
		ret = hsm_p11_fail(rv == CKR_TOKEN_WRITE_PROTECTED ? AMTCA_E_HSM_TOKEN :
		    AMTCA_E_HSM, rv, "cannot open a session on token %s", h->token);
		goto out;
	}
	h->have_admin = 1;
	if ((r = login(h, pin_path)) != 0 ||
	    (r = hsm_softhsm_lock(h->lockfd, 0)) != 0) {
		ret = r;
		goto out;
	}

	h->maxopen = AMTCA_HSM_SESSIONS_MAX;
	if (ti.ulMaxSessionCount != CK_UNAVAILABLE_INFORMATION &&
	    ti.ulMaxSessionCount != CK_EFFECTIVELY_INFINITE &&
	    ti.ulMaxSessionCount - 1 < h->maxopen)
		h->maxopen = ti.ulMaxSessionCount > 1 ? ti.ulMaxSessionCount - 1 : 1;
	/*
	 * Software hashing + CKM_RSA_PKCS sends 51 bytes instead of the whole
	 * TBSCertificate to the token and measured as fast or faster on
	 * SoftHSM; tokens whose policy forbids raw CKM_RSA_PKCS get the
	 * hash-and-sign mechanisms instead.
	 */
	h->rsa_in_token_hash = !mech_can_sign(h, CKM_RSA_PKCS) &&
	    mech_can_sign(h, CKM_SHA256_RSA_PKCS);
	*out = h;
	h = NULL;
	ret = 0;
out:
	hsm_free(h);
	if (uri != NULL)
		p11_kit_uri_free(uri);
	return ret;
}

void
hsm_free(struct hsm *h)
{
	if (h == NULL)
		return;
	if (h->p11 != NULL) {
		while (h->nidle > 0)
			(void)h->p11->C_CloseSession(h->idle[--h->nidle]);
		/*
		 * No C_Logout: the login belongs to the whole process, and
		 * another handle on the same token may still use it.  Closing
		 * our last session (or the final C_Finalize) ends it.
		 */
		if (h->have_admin)
			(void)h->p11->C_CloseSession(h->admin);
		hsm_module_unload(h->p11);
	}
	if (h->lockfd != -1)
		close(h->lockfd);	/* drops the flock if still held */
	if (h->locks) {
		pthread_mutex_destroy(&h->admin_lock);
		pthread_mutex_destroy(&h->pool_lock);
		pthread_cond_destroy(&h->pool_cond);
	}
	free(h);
}

/* ---- signing session pool ---- */

static int
session_get(struct hsm *h, CK_SESSION_HANDLE *out)
{
	CK_SESSION_HANDLE s;
	CK_RV rv;
	int ret = AMTCA_E_INTERNAL;

	pthread_mutex_lock(&h->pool_lock);
	for (;;) {
		if (h->nidle > 0) {
			*out = h->idle[--h->nidle];
			ret = 0;
			break;
		}
		if (h->nopen < h->maxopen) {
			h->nopen++;
			pthread_mutex_unlock(&h->pool_lock);
			rv = h->p11->C_OpenSession(h->slot, CKF_SERIAL_SESSION,
			    NULL, NULL, &s);
			pthread_mutex_lock(&h->pool_lock);
			if (rv == CKR_OK) {
				*out = s;
				ret = 0;
				break;
			}
			h->nopen--;
			if (rv == CKR_SESSION_COUNT && h->nopen > 0) {
				h->maxopen = h->nopen;	/* the token's real limit */
				continue;
			}
			ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot open a signing "
			    "session on token %s", h->token);
			break;
		}
		pthread_cond_wait(&h->pool_cond, &h->pool_lock);
	}
	pthread_mutex_unlock(&h->pool_lock);
	return ret;
}

/* Return a session; after any failure it is closed rather than reused. */
static void
session_put(struct hsm *h, CK_SESSION_HANDLE s, int failed)
{
	if (failed)
		(void)h->p11->C_CloseSession(s);
	pthread_mutex_lock(&h->pool_lock);
	if (failed)
		h->nopen--;
	else
		h->idle[h->nidle++] = s;
	pthread_cond_signal(&h->pool_cond);
	pthread_mutex_unlock(&h->pool_lock);
}

/* ---- objects (admin session, admin_lock held) ---- */

int
hsm_find_objects(struct hsm *h, CK_OBJECT_CLASS cls, const char *label,
    const unsigned char *id, size_t idlen, CK_OBJECT_HANDLE *found,
    CK_ULONG max, CK_ULONG *n)
{
	CK_ATTRIBUTE t[3];
	CK_ULONG nt = 0;
	CK_RV rv;

	*n = 0;
	t[nt].type = CKA_CLASS;
	t[nt].pValue = &cls;
	t[nt++].ulValueLen = sizeof(cls);
	if (label != NULL) {
		t[nt].type = CKA_LABEL;
		t[nt].pValue = (void *)label;
		t[nt++].ulValueLen = strlen(label);
	}
	if (id != NULL) {
		t[nt].type = CKA_ID;
		t[nt].pValue = (void *)id;
		t[nt++].ulValueLen = idlen;
	}
	if ((rv = h->p11->C_FindObjectsInit(h->admin, t, nt)) != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "cannot search token %s", h->token);
	rv = h->p11->C_FindObjects(h->admin, found, max, n);
	(void)h->p11->C_FindObjectsFinal(h->admin);
	if (rv != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "cannot search token %s", h->token);
	return 0;
}

/* Variable-length attribute; *out freed with free(). */
static int
get_attr(struct hsm *h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    unsigned char **out, size_t *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	unsigned char *buf = NULL;
	CK_RV rv;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*len = 0;
	if ((rv = h->p11->C_GetAttributeValue(h->admin, o, &a, 1)) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot read attribute 0x%lx of a "
		    "key in token %s", (unsigned long)type, h->token);
		goto out;
	}
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > ATTR_MAX) {
		ret = amtca_fail(AMTCA_E_HSM, "attribute 0x%lx of a key in token "
		    "%s is unavailable or too large", (unsigned long)type, h->token);
		goto out;
	}
	if ((buf = malloc(a.ulValueLen + 1)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	a.pValue = buf;
	if ((rv = h->p11->C_GetAttributeValue(h->admin, o, &a, 1)) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "cannot read attribute 0x%lx of a "
		    "key in token %s", (unsigned long)type, h->token);
		goto out;
	}
	*out = buf;
	*len = a.ulValueLen;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	return ret;
}

static int
get_ulong(struct hsm *h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    CK_ULONG *v)
{
	CK_ATTRIBUTE a = { type, v, sizeof(*v) };
	CK_RV rv;

	if ((rv = h->p11->C_GetAttributeValue(h->admin, o, &a, 1)) != CKR_OK)
		return hsm_p11_fail(AMTCA_E_HSM, rv, "cannot read attribute 0x%lx of "
		    "a key in token %s", (unsigned long)type, h->token);
	return 0;
}

static int
pub_rsa(struct hsm *h, CK_OBJECT_HANDLE o, EVP_PKEY **out)
{
	unsigned char *n = NULL, *e = NULL;
	size_t nlen = 0, elen = 0;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((r = get_attr(h, o, CKA_MODULUS, &n, &nlen)) != 0 ||
	    (r = get_attr(h, o, CKA_PUBLIC_EXPONENT, &e, &elen)) != 0) {
		ret = r;
		goto out;
	}
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_HSM, "cannot use the RSA public key "
		    "from token %s", h->token);
		goto out;
	}
	ret = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return ret;
}

static int
pub_ec(struct hsm *h, CK_OBJECT_HANDLE o, EVP_PKEY **out)
{
	unsigned char *par = NULL, *pt = NULL;
	size_t parlen = 0, ptlen = 0;
	const unsigned char *p, *point;
	size_t pointlen;
	ASN1_OBJECT *oid = NULL;
	ASN1_OCTET_STRING *os = NULL;
	const char *group;
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL;
	int nid, r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((r = get_attr(h, o, CKA_EC_PARAMS, &par, &parlen)) != 0 ||
	    (r = get_attr(h, o, CKA_EC_POINT, &pt, &ptlen)) != 0) {
		ret = r;
		goto out;
	}
	p = par;
	if ((oid = d2i_ASN1_OBJECT(NULL, &p, (long)parlen)) == NULL ||
	    p != par + parlen || (nid = OBJ_obj2nid(oid)) == NID_undef ||
	    (group = OBJ_nid2sn(nid)) == NULL) {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "EC key in token %s is not on "
		    "a named curve; use p256 or p384", h->token);
		goto out;
	}
	/* PKCS#11 says DER OCTET STRING; some tokens return the raw point. */
	p = pt;
	if ((os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)ptlen)) != NULL &&
	    p == pt + ptlen) {
		point = ASN1_STRING_get0_data(os);
		pointlen = (size_t)ASN1_STRING_length(os);
	} else {
		point = pt;
		pointlen = ptlen;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	    (char *)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)point, pointlen);
	params[2] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_HSM, "cannot use the EC public key "
		    "from token %s", h->token);
		goto out;
	}
	ret = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(oid);
	free(par);
	free(pt);
	return ret;
}

/* Build the handle for a key pair whose objects are known. */
int
hsm_key_build(struct hsm *h, const char *label, CK_OBJECT_HANDLE priv,
    CK_OBJECT_HANDLE pub, struct hsm_key **out)
{
	struct hsm_key *k = NULL;
	CK_ULONG kt = 0;
	char gname[64];
	int bits, r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->label = strdup(label)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	k->h = h;
	k->priv = priv;
	k->pub = pub;
	if ((r = get_ulong(h, priv, CKA_KEY_TYPE, &kt)) != 0) {
		ret = r;
		goto out;
	}
	if (kt == CKK_RSA) {
		if ((r = pub_rsa(h, pub, &k->pkey)) != 0) {
			ret = r;
			goto out;
		}
		bits = EVP_PKEY_get_bits(k->pkey);
		if (bits == 2048)
			k->type = HSM_KEY_RSA2048;
		else if (bits == 3072)
			k->type = HSM_KEY_RSA3072;
		else if (bits == 4096)
			k->type = HSM_KEY_RSA4096;
		else {
			ret = amtca_fail(AMTCA_E_HSM_KEY, "key %s in token %s is "
			    "RSA-%d; use rsa2048, rsa3072 or rsa4096", label,
			    h->token, bits);
			goto out;
		}
	} else if (kt == CKK_EC) {
		if ((r = pub_ec(h, pub, &k->pkey)) != 0) {
			ret = r;
			goto out;
		}
		if (!EVP_PKEY_get_utf8_string_param(k->pkey,
		    OSSL_PKEY_PARAM_GROUP_NAME, gname, sizeof(gname), NULL))
			gname[0] = '\0';
		if (strcmp(gname, "prime256v1") == 0 || strcmp(gname, "P-256") == 0)
			k->type = HSM_KEY_P256;
		else if (strcmp(gname, "secp384r1") == 0 || strcmp(gname, "P-384") == 0)
			k->type = HSM_KEY_P384;
		else {
			ret = amtca_fail(AMTCA_E_HSM_KEY, "key %s in token %s is on "
			    "curve %s; use p256 or p384", label, h->token, gname);
			goto out;
		}
	} else {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "key %s in token %s is neither "
		    "RSA nor EC", label, h->token);
		goto out;
	}
	k->nbytes = k->type == HSM_KEY_P256 ? 32 : k->type == HSM_KEY_P384 ? 48 :
	    (size_t)EVP_PKEY_get_size(k->pkey);
	*out = k;
	k = NULL;
	ret = 0;
out:
	hsm_key_free(k);
	return ret;
}

static int
key_find_locked(struct hsm *h, const char *label, struct hsm_key **out)
{
	CK_OBJECT_HANDLE priv[2], pub[2];
	CK_ULONG npriv = 0, npub = 0;
	unsigned char *id = NULL;
	size_t idlen = 0;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = hsm_find_objects(h, CKO_PRIVATE_KEY, label, NULL, 0, priv, 2,
	    &npriv)) != 0) {
		ret = r;
		goto out;
	}
	if (npriv == 0) {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "no private key labelled %s in "
		    "token %s; check the label or generate the key", label, h->token);
		goto out;
	}
	if (npriv > 1) {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "several private keys labelled "
		    "%s in token %s; relabel or remove the extra ones", label,
		    h->token);
		goto out;
	}
	/* The public half is matched by CKA_ID (the PKCS#11 convention). */
	if ((r = get_attr(h, priv[0], CKA_ID, &id, &idlen)) != 0) {
		ret = r;
		goto out;
	}
	if (idlen > 0 && (r = hsm_find_objects(h, CKO_PUBLIC_KEY, NULL, id, idlen,
	    pub, 2, &npub)) != 0) {
		ret = r;
		goto out;
	}
	if (npub != 1 && (r = hsm_find_objects(h, CKO_PUBLIC_KEY, label, NULL, 0,
	    pub, 2, &npub)) != 0) {
		ret = r;
		goto out;
	}
	if (npub != 1) {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "the public key of %s in token "
		    "%s is %s; re-create the key pair", label, h->token,
		    npub == 0 ? "missing" : "ambiguous");
		goto out;
	}
	ret = hsm_key_build(h, label, priv[0], pub[0], out);
out:
	free(id);
	return ret;
}

int
hsm_key_find(struct hsm *h, const char *label, struct hsm_key **out)
{
	int ret;

	*out = NULL;
	if (h == NULL || label == NULL || *label == '\0')
		return amtca_fail(AMTCA_E_USAGE, "hsm_key_find: no key label");
	pthread_mutex_lock(&h->admin_lock);
	ret = key_find_locked(h, label, out);
	pthread_mutex_unlock(&h->admin_lock);
	return ret;
}

void
hsm_key_free(struct hsm_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k->label);
	free(k);
}

EVP_PKEY *
hsm_key_public(const struct hsm_key *k)
{
	return k->pkey;
}

enum hsm_keytype
hsm_key_type(const struct hsm_key *k)
{
	return k->type;
}

/* ---- signing ---- */

/* Raw r||s (each n bytes) to a DER ECDSA-Sig-Value. */
static int
ecdsa_der(const unsigned char *raw, size_t n, unsigned char *sig,
    size_t *siglen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *p = sig;
	int len, ret = AMTCA_E_INTERNAL;

	if ((es = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(raw, (int)n, NULL)) == NULL ||
	    (s = BN_bin2bn(raw + n, (int)n, NULL)) == NULL ||
	    !ECDSA_SIG_set0(es, r, s)) {
		ret = amtca_fail_ssl(AMTCA_E_NOMEM, "cannot encode ECDSA signature");
		goto out;
	}
	r = s = NULL;
	if ((len = i2d_ECDSA_SIG(es, NULL)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot encode ECDSA signature");
		goto out;
	}
	if ((size_t)len > *siglen) {
		ret = amtca_fail(AMTCA_E_USAGE, "signature buffer too small");
		goto out;
	}
	if (i2d_ECDSA_SIG(es, &p) != len) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot encode ECDSA signature");
		goto out;
	}
	*siglen = (size_t)len;
	ret = 0;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return ret;
}

int
hsm_sign(struct hsm_key *k, const EVP_MD *md, const unsigned char *tbs,
    size_t tbslen, unsigned char *sig, size_t *siglen)
{
	unsigned char in[32 + EVP_MAX_MD_SIZE], raw[2 * 66];
	const unsigned char *di = NULL, *data = in;
	size_t dilen = 0;
	unsigned int dlen = 0;
	CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
	CK_ULONG inlen = 0, outlen;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	unsigned char *outp;
	struct hsm *h;
	int nid, ec, r, ret = AMTCA_E_INTERNAL;
	CK_RV rv;

	if (k == NULL || md == NULL || (tbs == NULL && tbslen > 0) ||
	    sig == NULL || siglen == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_sign: bad arguments");
		goto out;
	}
	h = k->h;
	if (k->priv == CK_INVALID_HANDLE) {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "key %s was removed from token "
		    "%s", k->label, h->token);
		goto out;
	}
	ec = k->type == HSM_KEY_P256 || k->type == HSM_KEY_P384;
	nid = EVP_MD_get_type(md);
	if (nid == NID_sha256) {
		di = di_sha256;
		dilen = sizeof(di_sha256);
		mech.mechanism = CKM_SHA256_RSA_PKCS;
	} else if (nid == NID_sha384) {
		di = di_sha384;
		dilen = sizeof(di_sha384);
		mech.mechanism = CKM_SHA384_RSA_PKCS;
	} else if (nid == NID_sha512) {
		di = di_sha512;
		dilen = sizeof(di_sha512);
		mech.mechanism = CKM_SHA512_RSA_PKCS;
	} else {
		ret = amtca_fail(AMTCA_E_USAGE, "hsm_sign: digest %s not supported "
		    "(use SHA-256 or SHA-384)", EVP_MD_get0_name(md));
		goto out;
	}
	if (!ec && *siglen < k->nbytes) {
		ret = amtca_fail(AMTCA_E_USAGE, "signature buffer too small");
		goto out;
	}
	if (ec) {
		mech.mechanism = CKM_ECDSA;
		outp = raw;
		outlen = 2 * k->nbytes;
	} else {
		outp = sig;
		outlen = *siglen;
	}
	if (!ec && h->rsa_in_token_hash) {
		data = tbs;
		inlen = tbslen;
	} else {
		if (!ec) {
			memcpy(in, di, dilen);
			mech.mechanism = CKM_RSA_PKCS;
		} else
			dilen = 0;
		if (!EVP_Digest(tbs, tbslen, in + dilen, &dlen, md, NULL)) {
			ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot hash the data "
			    "to be signed");
			goto out;
		}
		inlen = dilen + dlen;
	}

	if ((r = session_get(h, &s)) != 0) {
		ret = r;
		goto out;
	}
	if ((rv = h->p11->C_SignInit(s, &mech, k->priv)) == CKR_OK)
		rv = h->p11->C_Sign(s, (CK_BYTE *)data, inlen, outp, &outlen);
	session_put(h, s, rv != CKR_OK);
	if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) {
		ret = hsm_p11_fail(AMTCA_E_HSM_KEY, rv, "key %s is no longer in token "
		    "%s; find or generate it again", k->label, h->token);
		goto out;
	}
	if (rv != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "token %s failed to sign with %s",
		    h->token, k->label);
		goto out;
	}
	if (ec) {
		if (outlen != 2 * k->nbytes) {
			ret = amtca_fail(AMTCA_E_HSM, "token %s returned a %lu-byte "
			    "ECDSA signature", h->token, (unsigned long)outlen);
			goto out;
		}
		if ((r = ecdsa_der(raw, k->nbytes, sig, siglen)) != 0) {
			ret = r;
			goto out;
		}
	} else
		*siglen = outlen;
	ret = 0;
out:
	return ret;
}

static int
signer_sign(void *ctx, const EVP_MD *md, const unsigned char *tbs,
    size_t tbslen, unsigned char *sig, size_t *siglen)
{
	return hsm_sign(ctx, md, tbs, tbslen, sig, siglen);
}

void
hsm_key_signer(struct hsm_key *k, struct ca_signer *out)
{
	out->ctx = k;
	out->pub = k->pkey;
	out->sign = signer_sign;
}

/* ---- data objects ---- */

int
hsm_data_read(struct hsm *h, const char *label,
    int (*each)(void *arg, const unsigned char *v, size_t len), void *arg)
{
	CK_OBJECT_HANDLE found[HSM_DATA_MAX];
	CK_ULONG n = 0, i;
	unsigned char *v[HSM_DATA_MAX];
	size_t vlen[HSM_DATA_MAX];
	int r, ret = AMTCA_E_INTERNAL;

	memset(v, 0, sizeof(v));
	if (h == NULL || label == NULL || each == NULL)
		return amtca_fail(AMTCA_E_USAGE, "hsm_data_read: bad arguments");
	/* Read under the lock, call back without it (the callback may sign). */
	pthread_mutex_lock(&h->admin_lock);
	r = hsm_find_objects(h, CKO_DATA, label, NULL, 0, found, HSM_DATA_MAX, &n);
	for (i = 0; r == 0 && i < n; i++)
		if ((r = get_attr(h, found[i], CKA_VALUE, &v[i], &vlen[i])) == 0 &&
		    vlen[i] > AMTCA_AUDIT_ANCHOR_MAX)
			r = amtca_fail(AMTCA_E_LIMIT, "object %s in token %s is too "
			    "large", label, h->token);
	pthread_mutex_unlock(&h->admin_lock);
	if (r != 0) {
		ret = r;
		goto out;
	}
	if (n == 0) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "token %s has no object %s",
		    h->token, label);
		goto out;
	}
	for (i = 0; i < n; i++)
		if ((r = each(arg, v[i], vlen[i])) != 0) {
			ret = r;
			goto out;
		}
	ret = 0;
out:
	for (i = 0; i < HSM_DATA_MAX; i++)
		free(v[i]);
	return ret;
}

int
hsm_data_write(struct hsm *h, const char *label, const unsigned char *buf,
    size_t len)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL t = CK_TRUE;
	CK_OBJECT_HANDLE found[HSM_DATA_MAX], o = CK_INVALID_HANDLE;
	CK_ULONG n = 0, i;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &t, sizeof(t) },
		{ CKA_PRIVATE, &t, sizeof(t) },
		{ CKA_LABEL, (void *)label, label != NULL ? strlen(label) : 0 },
		{ CKA_VALUE, (void *)buf, len },
	};
	int r, tlocked = 0, ret = AMTCA_E_INTERNAL;
	CK_RV rv;

	if (h == NULL || label == NULL || buf == NULL || len == 0 ||
	    len > AMTCA_AUDIT_ANCHOR_MAX)
		return amtca_fail(AMTCA_E_USAGE, "hsm_data_write: bad arguments");
	pthread_mutex_lock(&h->admin_lock);
	/* Writes the token store: under the token lock (see above). */
	if ((r = hsm_softhsm_lock(h->lockfd, 1)) != 0) {
		ret = r;
		goto out;
	}
	tlocked = 1;
	if ((r = hsm_find_objects(h, CKO_DATA, label, NULL, 0, found,
	    HSM_DATA_MAX, &n)) != 0) {
		ret = r;
		goto out;
	}
	/* The new value first: at every moment the token holds one. */
	if ((rv = h->p11->C_CreateObject(h->admin, tmpl,
	    sizeof(tmpl) / sizeof(tmpl[0]), &o)) != CKR_OK) {
		ret = hsm_p11_fail(AMTCA_E_HSM, rv, "token %s cannot write object "
		    "%s", h->token, label);
		goto out;
	}
	for (i = 0; i < n; i++)
		if ((rv = h->p11->C_DestroyObject(h->admin, found[i])) != CKR_OK) {
			ret = hsm_p11_fail(AMTCA_E_HSM, rv, "token %s cannot remove "
			    "the previous object %s", h->token, label);
			goto out;
		}
	ret = 0;
out:
	if (tlocked)
		(void)hsm_softhsm_lock(h->lockfd, 0);
	pthread_mutex_unlock(&h->admin_lock);
	return ret;
}

/* ---- paths behind a configuration, for the caller's checks ---- */

int
hsm_uri_pin_path(const char *token_uri, char **out)
{
	P11KitUri *uri = NULL;
	const char *src, *path = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((uri = p11_kit_uri_new()) == NULL)
		return AMTCA_E_NOMEM;
	if ((r = p11_kit_uri_parse(token_uri, P11_KIT_URI_FOR_ANY, uri)) !=
	    P11_KIT_URI_OK) {
		ret = amtca_fail(AMTCA_E_CONFIG, "bad PKCS#11 token URI %s: %s; "
		    "expected pkcs11:token=<label>", token_uri,
		    p11_kit_uri_message(r));
		goto out;
	}
	if ((src = p11_kit_uri_get_pin_source(uri)) != NULL &&
	    (r = pin_source_path(src, &path)) != 0) {
		ret = r;
		goto out;
	}
	if (path != NULL && (*out = strdup(path)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	ret = 0;
out:
	p11_kit_uri_free(uri);
	return ret;
}
