/*
 * The CA home: amtca.conf, the CA certificates, the database and the
 * token.  amtca.conf is "key = value" lines; '#' starts a comment; relative
 * paths are relative to the home.  See amtca.conf(5).
 *
 * Nothing in a home is used unless it is ours (OpenSSH's StrictModes): the
 * home, amtca.conf and, before the token is opened, the module, the PIN
 * file and the SoftHSM configuration and token store must belong to root
 * or to us and be writable by nobody else.
 */
#include "enroll/home.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/limits.h"
#include "common/util.h"
#include "hsm/admin.h"
#include "signer/signer.h"

void
home_inter_label(unsigned gen, char buf[HOME_INTER_LABEL_MAX])
{
	if (gen <= 1)
		snprintf(buf, HOME_INTER_LABEL_MAX, "%s", KEY_LABEL_INTER);
	else
		snprintf(buf, HOME_INTER_LABEL_MAX, "%s-g%u", KEY_LABEL_INTER, gen);
}

unsigned
home_inter_label_gen(const char *label)
{
	size_t n = strlen(KEY_LABEL_INTER);
	long g;

	if (label == NULL || strncmp(label, KEY_LABEL_INTER, n) != 0)
		return 0;
	if (label[n] == '\0')
		return 1;
	if (label[n] != '-' || label[n + 1] != 'g' || label[n + 2] == '0' ||
	    strspn(label + n + 2, "0123456789") != strlen(label + n + 2) ||
	    amtca_parse_long(label + n + 2, 2, HOME_INTER_GEN_MAX, &g) != 0)
		return 0;
	return (unsigned)g;
}

const char *
home_default_dir(const char *dir)
{
	const char *env;

	if (dir != NULL)
		return dir;
	if ((env = getenv("AMTCA_HOME")) != NULL && *env != '\0')
		return env;
	return "./amtca-home";
}

const char *const home_module_env_names[] = {
	"SOFTHSM2_CONF",		/* SoftHSM 2 */
	"OPENSC_CONF",			/* OpenSC */
	"YUBIHSM_PKCS11_CONF",		/* YubiHSM 2 */
	NULL,
};

/* Is "NAME=value" one of home_module_env_names with a non-empty value? */
static int
module_env_ok(const char *kv)
{
	size_t i, n;

	for (i = 0; home_module_env_names[i] != NULL; i++) {
		n = strlen(home_module_env_names[i]);
		if (strncmp(kv, home_module_env_names[i], n) == 0 && kv[n] == '=' &&
		    kv[n + 1] != '\0')
			return 1;
	}
	return 0;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
parse_bool(const char *v, int *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int
parse_int(const char *v, int lo, int hi, int *out)
{
	long n;

	if (amtca_parse_long(v, lo, hi, &n) != 0)
		return -1;
	*out = (int)n;
	return 0;
}

static void
conf_clear(struct home_conf *c)
{
	size_t i;

	free(c->module);
	free(c->token_uri);
	free(c->pin_file);
	free(c->root_token_uri);
	free(c->root_pin_file);
	free(c->softhsm_conf);
	for (i = 0; i < c->nmodule_env; i++)
		free(c->module_env[i]);
	free(c->key_type);
	for (i = 0; i < c->ndomains; i++)
		free(c->domains[i]);
	for (i = 0; i < c->nip_ranges; i++)
		free(c->ip_ranges[i]);
	free(c->org);
	free(c->country);
	free(c->crl_url);
	free(c->aia_url);
	free(c->home_id);
	free(c->restored_from);
	free(c->credential_mechanism);
	free(c->store);
	free(c->intermediate_key);
	memset(c, 0, sizeof(*c));
}

int
home_id_new(char out[HOME_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[HOME_ID_LEN / 2];
	size_t i;
	int r;

	if ((r = amtca_random(raw, sizeof(raw))) != 0)
		return r;
	for (i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[HOME_ID_LEN] = '\0';
	return 0;
}

int
home_id_valid(const char *s)
{
	size_t i;

	for (i = 0; i < HOME_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[HOME_ID_LEN] == '\0';
}

/* A path from the conf: absolute as is, else relative to the home. */
static char *
home_path(const char *dir, const char *v)
{
	char *p = NULL;

	if (v[0] == '/')
		return strdup(v);
	if (asprintf(&p, "%s/%s", dir, v) == -1)
		return NULL;
	return p;
}

static int
conf_parse(const char *dir, const char *path, struct home_conf *c)
{
	unsigned char *buf = NULL;
	char *line, *save = NULL, *k, *v, *eq, **slot;
	size_t len, lineno = 0;
	int r, ret = AMTCA_E_INTERNAL;

	memset(c, 0, sizeof(*c));
	c->days = AMTCA_DAYS_DEFAULT;
	c->skew_s = AMTCA_SKEW_DEFAULT_S;
	if ((r = amtca_file_read(path, AMTCA_CONF_MAX, &buf, &len)) != 0) {
		if (r == AMTCA_E_NOT_FOUND)
			ret = amtca_fail(AMTCA_E_CONFIG,
			    "no CA in %s (%s missing): run 'amtca init' first",
			    dir, HOME_CONF);
		else
			ret = r;
		goto out;
	}
	for (line = strtok_r((char *)buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if ((k = strchr(line, '#')) != NULL)
			*k = '\0';
		k = trim(line);
		if (*k == '\0')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			ret = amtca_fail(AMTCA_E_CONFIG, "%s:%zu: expected key = value",
			    path, lineno);
			goto out;
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		slot = NULL;
		if (strcmp(k, "module") == 0)
			slot = &c->module;
		else if (strcmp(k, "token_uri") == 0)
			slot = &c->token_uri;
		else if (strcmp(k, "root_token_uri") == 0)
			slot = &c->root_token_uri;
		else if (strcmp(k, "key_type") == 0)
			slot = &c->key_type;
		else if (strcmp(k, "org") == 0)
			slot = &c->org;
		else if (strcmp(k, "country") == 0)
			slot = &c->country;
		else if (strcmp(k, "crl_url") == 0)
			slot = &c->crl_url;
		else if (strcmp(k, "aia_url") == 0)
			slot = &c->aia_url;
		else if (strcmp(k, "store") == 0)
			slot = &c->store;
		else if (strcmp(k, "intermediate_key") == 0) {
			if (home_inter_label_gen(v) == 0) {
				ret = amtca_fail(AMTCA_E_CONFIG, "%s:%zu: "
				    "intermediate_key takes %s or %s-gN (N 2-%d)",
				    path, lineno, KEY_LABEL_INTER,
				    KEY_LABEL_INTER, HOME_INTER_GEN_MAX);
				goto out;
			}
			slot = &c->intermediate_key;
		}
		else if (strcmp(k, "home_id") == 0 ||
		    strcmp(k, "restored_from") == 0) {
			if (!home_id_valid(v)) {
				ret = amtca_fail(AMTCA_E_CONFIG, "%s:%zu: %s must be "
				    "%d lowercase hex digits", path, lineno, k,
				    HOME_ID_LEN);
				goto out;
			}
			slot = k[0] == 'h' ? &c->home_id : &c->restored_from;
		} else if (strcmp(k, "credential_mechanism") == 0) {
			enum hsm_aead_mech m;

			if (hsm_aead_mech_parse(v, &m) != 0) {
				ret = amtca_fail(AMTCA_E_CONFIG, "%s:%zu: "
				    "credential_mechanism takes auto, aes-256-gcm "
				    "or aes-256-cbc-hmac-sha256", path, lineno);
				goto out;
			}
			slot = &c->credential_mechanism;
		}
		else if (strcmp(k, "pin_file") == 0 || strcmp(k, "softhsm_conf") == 0 ||
		    strcmp(k, "root_pin_file") == 0) {
			char **p = k[0] == 'p' ? &c->pin_file : k[0] == 'r' ?
			    &c->root_pin_file : &c->softhsm_conf;

			free(*p);
			if ((*p = home_path(dir, v)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			continue;
		} else if (strcmp(k, "module_env") == 0) {
			if (!module_env_ok(v)) {
				ret = amtca_fail(AMTCA_E_CONFIG, "%s:%zu: module_env "
				    "takes NAME=value for SOFTHSM2_CONF, OPENSC_CONF "
				    "or YUBIHSM_PKCS11_CONF", path, lineno);
				goto out;
			}
			if (c->nmodule_env == AMTCA_MODULE_ENV_MAX) {
				ret = amtca_fail(AMTCA_E_CONFIG, "%s: more than %d "
				    "module_env lines", path, AMTCA_MODULE_ENV_MAX);
				goto out;
			}
			if ((c->module_env[c->nmodule_env] = strdup(v)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			c->nmodule_env++;
			continue;
		} else if (strcmp(k, "domain") == 0) {
			if (c->ndomains == AMTCA_DOMAINS_MAX) {
				ret = amtca_fail(AMTCA_E_CONFIG, "%s: more than %d domains",
				    path, AMTCA_DOMAINS_MAX);
				goto out;
			}
			if ((c->domains[c->ndomains] = strdup(v)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			c->ndomains++;
			continue;
		} else if (strcmp(k, "ip_range") == 0) {
			struct ca_ip_range rg;
			char txt[CA_IP_RANGE_STRLEN], why[256];

			if (c->nip_ranges == AMTCA_IP_RANGES_MAX) {
				ret = amtca_fail(AMTCA_E_CONFIG, "%s: more than %d "
				    "ip_range lines", path, AMTCA_IP_RANGES_MAX);
				goto out;
			}
			if ((r = ca_ip_range_parse(v, &rg)) != 0) {
				/* The detail lives in amtca_fail()'s buffer. */
				snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
				ret = amtca_fail(AMTCA_E_CONFIG, "%s:%zu: %s", path,
				    lineno, why);
				goto out;
			}
			ca_ip_range_format(&rg, txt, sizeof(txt));
			if ((c->ip_ranges[c->nip_ranges] = strdup(txt)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			c->nip_ranges++;
			continue;
		} else if (strcmp(k, "days") == 0 || strcmp(k, "skew") == 0) {
			int *ip = k[0] == 'd' ? &c->days : &c->skew_s;

			if (parse_int(v, k[0] == 'd' ? 1 : 0,
			    k[0] == 'd' ? AMTCA_DAYS_MAX : 86400, ip) != 0) {
				ret = amtca_fail(AMTCA_E_CONFIG, "%s:%zu: bad %s '%s'",
				    path, lineno, k, v);
				goto out;
			}
			continue;
		} else if (strcmp(k, "wildcard") == 0 || strcmp(k, "client_auth") == 0 ||
		    strcmp(k, "any_domain") == 0) {
			if (parse_bool(v, k[0] == 'w' ? &c->allow_wildcard :
			    k[0] == 'c' ? &c->client_auth : &c->any_domain) != 0) {
				ret = amtca_fail(AMTCA_E_CONFIG,
				    "%s:%zu: %s must be yes or no", path, lineno, k);
				goto out;
			}
			continue;
		} else {
			ret = amtca_fail(AMTCA_E_CONFIG, "%s:%zu: unknown key '%s'",
			    path, lineno, k);
			goto out;
		}
		free(*slot);
		if ((*slot = *v != '\0' ? strdup(v) : NULL) == NULL && *v != '\0') {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	}
	if (c->module == NULL || c->token_uri == NULL) {
		ret = amtca_fail(AMTCA_E_CONFIG, "%s: module and token_uri are required",
		    path);
		goto out;
	}
	/* A CA for any name must say so: silence is not a policy. */
	if (c->ndomains == 0 && !c->any_domain) {
		ret = amtca_fail(AMTCA_E_CONFIG, "%s: no 'domain' line, so this CA "
		    "would vouch for any name: add 'domain = SUFFIX', or "
		    "'any_domain = yes' if that is intended", path);
		goto out;
	}
	if (c->ndomains > 0 && c->any_domain) {
		ret = amtca_fail(AMTCA_E_CONFIG, "%s: 'any_domain = yes' contradicts "
		    "the 'domain' lines: remove one", path);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		conf_clear(c);
	free(buf);
	return ret;
}

static int
load_cert(const char *dir, const char *name, X509 **out)
{
	char *path = NULL;
	unsigned char *buf = NULL;
	size_t len;
	BIO *bio = NULL;
	int ret;

	*out = NULL;
	if ((path = home_path(dir, name)) == NULL)
		return AMTCA_E_NOMEM;
	if ((ret = amtca_file_read(path, AMTCA_CERT_FILE_MAX, &buf, &len)) != 0)
		goto out;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (*out = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL)
		ret = amtca_fail_ssl(AMTCA_E_CONFIG, "%s is not a PEM certificate",
		    path);
out:
	BIO_free(bio);
	free(buf);
	free(path);
	return ret;
}

/*
 * The retired intermediates (HOME_RETIRED_PEM, a PEM bundle, newest first):
 * none when the file is absent; every certificate must parse, at most
 * AMTCA_RETIRED_MAX.
 */
static int
load_retired(const char *dir, X509 ***out, size_t *n)
{
	char *path = NULL;
	unsigned char *buf = NULL;
	size_t len, i;
	BIO *bio = NULL;
	X509 **v = NULL, *x;
	int ret;

	*out = NULL;
	*n = 0;
	if ((path = home_path(dir, HOME_RETIRED_PEM)) == NULL)
		return AMTCA_E_NOMEM;
	if ((ret = amtca_file_read(path, AMTCA_CERT_FILE_MAX *
	    AMTCA_RETIRED_MAX, &buf, &len)) == AMTCA_E_NOT_FOUND) {
		amtca_err_clear();
		ret = 0;
		goto out;
	} else if (ret != 0)
		goto out;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (v = calloc(AMTCA_RETIRED_MAX, sizeof(*v))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL; i++) {
		if (i == AMTCA_RETIRED_MAX) {
			X509_free(x);
			ret = amtca_fail(AMTCA_E_CONFIG, "%s holds more than %d "
			    "certificates", path, AMTCA_RETIRED_MAX);
			goto out;
		}
		v[i] = x;
	}
	ERR_clear_error();
	if (i == 0) {
		ret = amtca_fail(AMTCA_E_CONFIG, "%s holds no PEM certificate",
		    path);
		goto out;
	}
	*out = v;
	*n = i;
	v = NULL;
	ret = 0;
out:
	if (v != NULL)
		for (i = 0; i < AMTCA_RETIRED_MAX; i++)
			X509_free(v[i]);
	free(v);
	BIO_free(bio);
	free(buf);
	free(path);
	return ret;
}

int
home_create(const char *dir)
{
	struct stat sb;
	struct dirent *e;
	DIR *d = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (stat(dir, &sb) == -1) {
		if (errno != ENOENT) {
			ret = amtca_fail(AMTCA_E_IO, "cannot use %s: %s", dir,
			    strerror(errno));
			goto out;
		}
		if ((r = amtca_mkdirs(dir, 0700)) != 0) {
			ret = r;
			goto out;
		}
	} else {
		if (!S_ISDIR(sb.st_mode)) {
			ret = amtca_fail(AMTCA_E_EXISTS, "%s exists and is not a "
			    "directory; give a new or empty directory", dir);
			goto out;
		}
		if ((d = opendir(dir)) == NULL) {
			ret = amtca_fail(AMTCA_E_IO, "cannot read %s: %s", dir,
			    strerror(errno));
			goto out;
		}
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			ret = strcmp(e->d_name, HOME_CONF) == 0 ?
			    amtca_fail(AMTCA_E_EXISTS, "a CA already exists in %s; "
			    "refusing to overwrite it", dir) :
			    amtca_fail(AMTCA_E_EXISTS, "%s already exists and is not "
			    "empty (it holds %s); give a new or empty directory",
			    dir, e->d_name);
			goto out;
		}
	}
	/* Made by us or pre-made by anyone: it must be ours alone from now on. */
	if ((r = amtca_path_check_secure(dir, "CA home")) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	if (d != NULL)
		closedir(d);
	return ret;
}

/* The SoftHSM config a module environment names, or NULL. */
static const char *
env_softhsm_conf(char *const *env, size_t nenv)
{
	size_t i;

	for (i = 0; i < nenv; i++)
		if (strncmp(env[i], "SOFTHSM2_CONF=", 14) == 0)
			return env[i] + 14;
	return NULL;
}

static int
check_softhsm(const char *conf)
{
	char *tokdir = NULL;
	int r;

	if ((r = amtca_path_check_secure(conf, "SoftHSM config")) != 0 ||
	    (r = hsm_softhsm_tokendir(conf, &tokdir)) != 0)
		return r;
	r = amtca_path_check_secure(tokdir, "token directory");
	free(tokdir);
	return r;
}

int
home_token_check(const char *module, const char *token_uri,
    const char *pin_file, const char *softhsm_conf, char *const *env,
    size_t nenv)
{
	char *src_pin = NULL;
	const char *env_conf;
	int r, ret = AMTCA_E_INTERNAL;

	/* A bare module name is looked up by p11-kit in its own module path. */
	if (module != NULL && strchr(module, '/') != NULL &&
	    (r = amtca_path_check_secure(module, "PKCS#11 module")) != 0) {
		ret = r;
		goto out;
	}
	if (pin_file == NULL && token_uri != NULL) {
		if ((r = hsm_uri_pin_path(token_uri, &src_pin)) != 0) {
			ret = r;
			goto out;
		}
		pin_file = src_pin;
	}
	if (pin_file != NULL &&
	    (r = amtca_path_check_secure(pin_file, "PIN file")) != 0) {
		ret = r;
		goto out;
	}
	if (softhsm_conf != NULL) {
		if ((r = amtca_path_check_secure(softhsm_conf, "SoftHSM config")) != 0 ||
		    (r = hsm_softhsm_relocate(softhsm_conf)) != 0 ||
		    (r = check_softhsm(softhsm_conf)) != 0) {
			ret = r;
			goto out;
		}
	}
	if ((env_conf = env_softhsm_conf(env, nenv)) != NULL &&
	    (r = check_softhsm(env_conf)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	free(src_pin);
	return ret;
}

int
home_token_prepare(const struct home_conf *c)
{
	size_t i;
	int r;

	if ((r = home_token_check(c->module, c->token_uri, c->pin_file,
	    c->softhsm_conf, c->module_env, c->nmodule_env)) != 0)
		return r;
	/* What init saw, so that the module finds the same token. */
	for (i = 0; i < c->nmodule_env; i++) {
		const char *kv = c->module_env[i], *eq = strchr(kv, '=');
		char *name = strndup(kv, (size_t)(eq - kv));

		if (name == NULL)
			return AMTCA_E_NOMEM;
		r = setenv(name, eq + 1, 1);
		free(name);
		if (r != 0)
			return amtca_fail(AMTCA_E_NOMEM, "cannot set %s", kv);
	}
	return 0;
}

/* --- the audit trail's token side ----------------------------------------- */

int
home_local_actor(char **out)
{
	char host[256], ubuf[32];
	struct passwd *pw;
	const char *user;

	*out = NULL;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if ((pw = getpwuid(geteuid())) != NULL && pw->pw_name != NULL)
		user = pw->pw_name;
	else {
		snprintf(ubuf, sizeof(ubuf), "uid%lu", (unsigned long)geteuid());
		user = ubuf;
	}
	if (asprintf(out, "%s@%s", user, host) == -1) {
		*out = NULL;
		return AMTCA_E_NOMEM;
	}
	return 0;
}

int
home_audit_key(struct hsm *hsm, const char *key_type, struct hsm_key **out)
{
	enum hsm_keytype kt = HSM_KEY_RSA2048;
	int r;

	*out = NULL;
	if ((r = hsm_key_find(hsm, KEY_LABEL_AUDIT, out)) != AMTCA_E_HSM_KEY)
		return r;
	/* A home made before the audit trail: its first seal makes the key. */
	if (key_type != NULL && hsm_keytype_parse(key_type, &kt) != 0)
		kt = HSM_KEY_RSA2048;
	amtca_err_clear();
	if ((r = hsm_keygen(hsm, kt, KEY_LABEL_AUDIT, out)) == AMTCA_E_EXISTS)
		r = hsm_key_find(hsm, KEY_LABEL_AUDIT, out);	/* a racing process */
	return r;
}

static int
anchor_write(void *ctx, uint64_t seq, const unsigned char hash[AUDIT_HASH_LEN])
{
	struct audit_anchor a;
	char buf[AMTCA_AUDIT_ANCHOR_MAX];
	int r;

	a.seq = seq;
	memcpy(a.hash, hash, AUDIT_HASH_LEN);
	if ((r = audit_anchor_format(&a, buf, sizeof(buf))) != 0)
		return r;
	return hsm_data_write(ctx, HOME_AUDIT_ANCHOR, (const unsigned char *)buf,
	    strlen(buf));
}

static int
anchor_get(void *ctx, struct audit_anchor *out)
{
	return home_audit_anchor(ctx, out);
}

void
home_audit_sealer(struct hsm *hsm, const struct ca_signer *key,
    struct audit_sealer *out)
{
	out->key = key;
	out->anchor = anchor_write;
	out->anchor_get = anchor_get;
	out->ctx = hsm;
}

/* Of several anchors (a crash between writing one and removing the old),
 * the newest: the highest seq. */
static int
anchor_pick(void *arg, const unsigned char *v, size_t len)
{
	struct audit_anchor *best = arg, a;
	int r;

	if ((r = audit_anchor_parse(v, len, &a)) != 0)
		return r;
	if (a.seq > best->seq)
		*best = a;
	return 0;
}

int
home_audit_anchor(struct hsm *hsm, struct audit_anchor *out)
{
	memset(out, 0, sizeof(*out));
	return hsm_data_read(hsm, HOME_AUDIT_ANCHOR, anchor_pick, out);
}

int
home_audit_seal(struct home *h, uint64_t *seq)
{
	struct audit_sealer sl;

	if (h == NULL || h->audit_key == NULL || h->store == NULL)
		return amtca_fail(AMTCA_E_USAGE, "home_audit_seal: the home was "
		    "not opened with its token");
	home_audit_sealer(h->hsm, &h->audit_signer, &sl);
	return audit_seal(h->store, NULL, &sl, seq);
}

/* The store's sealing hook: runs after commits, in this process. */
static void
seal_hook(void *arg, struct store *s)
{
	struct home *h = arg;
	struct audit_sealer sl;

	home_audit_sealer(h->hsm, &h->audit_signer, &sl);
	/* Not sealed now, sealed by the next append or `amtca audit seal`. */
	if (audit_seal(s, NULL, &sl, NULL) != 0)
		amtca_err_clear();
}

/* Open "sqlite:DIR/NAME" (the home's own file) into *out. */
static int
open_db(const char *dir, const char *name, struct store **out)
{
	char *db = home_path(dir, name);
	int r;

	*out = NULL;
	if (db == NULL)
		return AMTCA_E_NOMEM;
	r = store_open(db, 0, out);
	free(db);
	return r;
}

/*
 * The stores the flags ask for.  A home with state/ has the split layout:
 * the CA's records in keys/ca.db, opened only for the signer and the
 * operator (HOME_STORE, HOME_SIGNER), and state/state.db; HOME_STATE never
 * touches keys/, so a front end that cannot read it opens the home.  An
 * old home keeps amtca.db for both.
 */
static int
open_stores(struct home *h, int flags)
{
	char *sd = NULL;
	struct stat sb;
	int r, ret = AMTCA_E_INTERNAL;

	if ((flags & (HOME_STORE | HOME_SIGNER | HOME_STATE)) == 0)
		return 0;
	/*
	 * "store = URI" (init --store): one shared database holds the CA's
	 * records and the state alike (docs/deployment.md), so one handle
	 * serves both roles.  A schema newer than this amtca, or older (not
	 * migrated yet), is refused here with the backend's one-line error.
	 */
	if (h->conf.store != NULL) {
		h->split = 1;
		if ((r = store_open(h->conf.store, 0, &h->state)) != 0)
			return r == AMTCA_E_NOT_FOUND ? amtca_fail(AMTCA_E_STORE,
			    "the store of the CA home %s is gone: %s", h->dir,
			    amtca_errmsg(r)) : r;
		if ((flags & (HOME_STORE | HOME_SIGNER)) != 0)
			h->store = h->state;
		return 0;
	}
	if ((sd = home_path(h->dir, HOME_STATE_DIR)) == NULL)
		return AMTCA_E_NOMEM;
	h->split = lstat(sd, &sb) == 0 && S_ISDIR(sb.st_mode);
	if (!h->split) {
		if ((r = open_db(h->dir, HOME_DB, &h->state)) != 0) {
			ret = r;
			goto out;
		}
		if ((flags & (HOME_STORE | HOME_SIGNER)) != 0)
			h->store = h->state;
		ret = 0;
		goto out;
	}
	if ((flags & (HOME_STORE | HOME_SIGNER)) != 0) {
		char *kd = home_path(h->dir, HOME_KEYS_DIR);

		if (kd == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		r = amtca_path_check_secure(kd, "keys directory");
		free(kd);
		if (r != 0 || (r = open_db(h->dir, HOME_CA_DB, &h->store)) != 0) {
			ret = r;
			goto out;
		}
	}
	/*
	 * The state is the front end's: it may belong to the service user,
	 * which the signer (root, or the keys' owner) then reads without
	 * the ownership rule; it trusts nothing there beyond what
	 * docs/PROTOCOL.signer says a front end may obtain anyway.
	 */
	if (((flags & HOME_SIGNER) == 0 &&
	    (r = amtca_path_check_secure(sd, "state directory")) != 0) ||
	    (r = open_db(h->dir, HOME_STATE_DB, &h->state)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	free(sd);
	return ret;
}

/* Does the token's key `label` exist and match `cert`?  *out when it does. */
static int
key_matching(struct hsm *hsm, const char *label, X509 *cert,
    struct hsm_key **out)
{
	struct hsm_key *k = NULL;
	int r;

	*out = NULL;
	if ((r = hsm_key_find(hsm, label, &k)) != 0)
		return r;
	if (EVP_PKEY_eq(hsm_key_public(k), X509_get0_pubkey(cert)) != 1) {
		ERR_clear_error();
		hsm_key_free(k);
		return AMTCA_E_HSM_KEY;
	}
	*out = k;
	return 0;
}

/*
 * The current intermediate's key: conf intermediate_key (KEY_LABEL_INTER
 * when absent).  A `ca rotate` writes that line before it replaces
 * intermediate.pem (docs/rotation.md): when the conf names generation N
 * and intermediate.pem is still N-1's, the rotation did not happen and
 * N-1's key is the current one.
 */
static int
inter_key_find(struct home *h)
{
	const char *label = h->conf.intermediate_key != NULL ?
	    h->conf.intermediate_key : KEY_LABEL_INTER;
	unsigned gen = home_inter_label_gen(label);
	int r;

	if ((r = key_matching(h->hsm, label, h->inter, &h->inter_key)) == 0) {
		snprintf(h->inter_label, sizeof(h->inter_label), "%s", label);
		h->inter_gen = gen;
		return 0;
	}
	if ((r == AMTCA_E_HSM_KEY) && gen > 1) {
		home_inter_label(gen - 1, h->inter_label);
		amtca_err_clear();
		if (key_matching(h->hsm, h->inter_label, h->inter,
		    &h->inter_key) == 0) {
			h->inter_gen = gen - 1;
			return 0;
		}
	}
	if (r != AMTCA_E_HSM_KEY)
		return r;
	amtca_err_clear();
	return amtca_fail(AMTCA_E_HSM_KEY, "the token's key '%s' does not "
	    "match %s/%s: wrong token for this CA home", label, h->dir,
	    HOME_INTER_PEM);
}

/*
 * Each retired intermediate's key, by the generations below the current
 * one (newest first, as the file lists them): NULL when the token no
 * longer has it, which only its CRL needs.
 */
static int
retired_keys_find(struct home *h)
{
	char label[HOME_INTER_LABEL_MAX];
	size_t i;
	unsigned g, next;

	if (h->nretired == 0)
		return 0;
	if ((h->retired_keys = calloc(h->nretired, sizeof(*h->retired_keys))) ==
	    NULL || (h->retired_gen = calloc(h->nretired,
	    sizeof(*h->retired_gen))) == NULL || (h->retired_signers =
	    calloc(h->nretired, sizeof(*h->retired_signers))) == NULL ||
	    (h->retired_ca = calloc(h->nretired, sizeof(*h->retired_ca))) ==
	    NULL)
		return AMTCA_E_NOMEM;
	next = h->inter_gen;
	for (i = 0; i < h->nretired; i++) {
		for (g = next > 1 ? next - 1 : 0; g >= 1; g--) {
			home_inter_label(g, label);
			if (key_matching(h->hsm, label, h->retired[i],
			    &h->retired_keys[i]) == 0) {
				h->retired_gen[i] = g;
				next = g;
				break;
			}
		}
		amtca_err_clear();
	}
	return 0;
}

int
home_ca_by_keyid(struct home *h, const char *keyid, struct ca **ca,
    X509 **cert)
{
	char k[CA_KEYID_HEX_MAX + 1];
	size_t i;
	int r;

	*ca = NULL;
	if (cert != NULL)
		*cert = NULL;
	if (h->ca == NULL)
		return amtca_fail(AMTCA_E_USAGE, "home_ca_by_keyid: the home "
		    "was not opened with its token");
	if (keyid == NULL || keyid[0] == '\0' ||
	    strcasecmp(keyid, ca_keyid(h->ca)) == 0) {
		*ca = h->ca;
		if (cert != NULL)
			*cert = h->inter;
		return 0;
	}
	for (i = 0; i < h->nretired; i++) {
		if ((r = ca_keyid_hex(h->retired[i], k)) != 0)
			return r;
		if (strcasecmp(k, keyid) != 0)
			continue;
		if (h->retired_ca[i] == NULL)
			return amtca_fail(AMTCA_E_HSM_KEY, "the retired "
			    "intermediate %s has no key in the token any more: "
			    "its CRL cannot be signed", keyid);
		*ca = h->retired_ca[i];
		if (cert != NULL)
			*cert = h->retired[i];
		return 0;
	}
	return amtca_fail(AMTCA_E_NOT_FOUND, "no issuing CA with key "
	    "identifier %s", keyid);
}

int
home_open(const char *dir, int flags, struct home **out)
{
	struct home *h = NULL;
	char *conf = NULL, real[PATH_MAX];
	struct hsm_open_opts ho;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	dir = home_default_dir(dir);
	if (realpath(dir, real) == NULL) {
		ret = amtca_fail(AMTCA_E_CONFIG,
		    "no CA home at %s: run 'amtca init' or pass --home", dir);
		goto out;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL || (h->dir = strdup(real)) == NULL ||
	    (conf = home_path(real, HOME_CONF)) == NULL ||
	    (h->chain_path = home_path(real, HOME_CHAIN_PEM)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = amtca_path_check_secure(real, "CA home")) != 0 ||
	    (r = conf_parse(real, conf, &h->conf)) != 0 ||
	    (r = amtca_path_check_secure(conf, "CA configuration")) != 0) {
		ret = r;
		goto out;
	}
	{
		/* init --external-root made a CA that cannot sign yet. */
		char *pend = home_path(real, HOME_PENDING_CSR);
		struct stat psb;
		int pending;

		if (pend == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		pending = lstat(pend, &psb) == 0;
		free(pend);
		if ((flags & HOME_PENDING) != 0) {
			if (!pending) {
				ret = amtca_fail(AMTCA_E_CONFIG, "the CA in %s is "
				    "not waiting for an intermediate certificate",
				    real);
				goto out;
			}
			if ((flags & HOME_SIGNER) != 0) {
				ret = AMTCA_E_INTERNAL;
				goto out;
			}
		} else if (pending) {
			ret = amtca_fail(AMTCA_E_CONFIG, "the CA in %s waits for "
			    "its intermediate certificate from the external root: "
			    "run 'amtca ca import-intermediate --cert FILE --root "
			    "FILE'", real);
			goto out;
		}
		/*
		 * A shared store: the stores first, to bring the home in step
		 * with what the other nodes published (a rotation there) before
		 * anything is read.  Only by a process that may write the home;
		 * others read the files as they are.
		 */
		if (!pending && h->conf.store != NULL && (flags & (HOME_STORE |
		    HOME_SIGNER | HOME_STATE)) != 0) {
			int changed = 0;

			if ((r = open_stores(h, flags)) != 0 ||
			    (access(real, W_OK) == 0 &&
			    (r = home_shared_sync(real, h->store != NULL ?
			    h->store : h->state, &changed)) != 0)) {
				ret = r;
				goto out;
			}
			/* The store URI is node-local: the same after this. */
			if (changed) {
				conf_clear(&h->conf);
				if ((r = conf_parse(real, conf, &h->conf)) != 0) {
					ret = r;
					goto out;
				}
			}
		}
		if (!pending && ((r = load_cert(real, HOME_ROOT_PEM,
		    &h->root)) != 0 || (r = load_cert(real, HOME_INTER_PEM,
		    &h->inter)) != 0 || (r = load_retired(real, &h->retired,
		    &h->nretired)) != 0)) {
			ret = r;
			goto out;
		}
		/* A rotation that stopped before intermediate.pem was
		 * replaced may have listed the current one as retired
		 * already (docs/rotation.md): it is not. */
		for (size_t i = 0; i < h->nretired;) {
			if (X509_cmp(h->retired[i], h->inter) == 0) {
				X509_free(h->retired[i]);
				memmove(&h->retired[i], &h->retired[i + 1],
				    (h->nretired - i - 1) * sizeof(X509 *));
				h->nretired--;
			} else
				i++;
		}
	}
	ca_policy_init(&h->policy);
	h->policy.domains = (const char *const *)h->conf.domains;
	h->policy.ndomains = h->conf.ndomains;
	h->policy.ip_ranges = (const char *const *)h->conf.ip_ranges;
	h->policy.nip_ranges = h->conf.nip_ranges;
	h->policy.allow_wildcard = h->conf.allow_wildcard;
	h->policy.org = h->conf.org;
	h->policy.country = h->conf.country;
	h->policy.days = h->conf.days;
	h->policy.skew_s = h->conf.skew_s;
	h->policy.client_auth = h->conf.client_auth;
	h->policy.crl_url = h->conf.crl_url;
	h->policy.aia_url = h->conf.aia_url;
	if (h->state == NULL && (r = open_stores(h, flags)) != 0) {
		ret = r;
		goto out;
	}
	/* Entries this process appends name its user@host (docs/audit.md). */
	{
		char *actor = NULL;

		if ((r = home_local_actor(&actor)) != 0 ||
		    (h->store != NULL && (r = store_set_actor(h->store, actor)) != 0) ||
		    (h->state != NULL && h->state != h->store &&
		    (r = store_set_actor(h->state, actor)) != 0)) {
			free(actor);
			ret = r;
			goto out;
		}
		free(actor);
	}
	if ((flags & HOME_SIGNER) != 0) {
		if ((r = home_token_prepare(&h->conf)) != 0) {
			ret = r;
			goto out;
		}
		memset(&ho, 0, sizeof(ho));
		ho.module = h->conf.module;
		ho.token_uri = h->conf.token_uri;
		ho.pin_file = h->conf.pin_file;
		ho.softhsm_conf = h->conf.softhsm_conf;
		if ((r = hsm_open(&ho, &h->hsm)) != 0 ||
		    (r = inter_key_find(h)) != 0 ||
		    (r = retired_keys_find(h)) != 0) {
			ret = r;
			goto out;
		}
		hsm_key_signer(h->inter_key, &h->signer);
		/* A reader (HOME_NO_SEAL) never makes the key: NULL if none. */
		if ((flags & HOME_NO_SEAL) != 0) {
			if ((r = hsm_key_find(h->hsm, KEY_LABEL_AUDIT,
			    &h->audit_key)) == AMTCA_E_HSM_KEY)
				amtca_err_clear();
			else if (r != 0) {
				ret = r;
				goto out;
			}
		} else if ((r = home_audit_key(h->hsm, h->conf.key_type,
		    &h->audit_key)) != 0) {
			ret = r;
			goto out;
		}
		if (h->audit_key != NULL)
			hsm_key_signer(h->audit_key, &h->audit_signer);
		if ((flags & HOME_NO_SEAL) == 0) {
			store_set_sealer(h->store, seal_hook, h);
			/* Entries appended without the token (revoke) are
			 * sealed now. */
			store_seal_due(h->store);
		}
		if ((r = ca_new(&h->signer, h->inter, &h->policy, h->store,
		    &h->ca)) != 0) {
			ret = r;
			goto out;
		}
		ca_set_first(h->ca, h->inter_gen == 1);
		for (size_t i = 0; i < h->nretired; i++) {
			if (h->retired_keys[i] == NULL)
				continue;
			hsm_key_signer(h->retired_keys[i], &h->retired_signers[i]);
			if ((r = ca_new(&h->retired_signers[i], h->retired[i],
			    &h->policy, h->store, &h->retired_ca[i])) != 0) {
				ret = r;
				goto out;
			}
			ca_set_first(h->retired_ca[i], h->retired_gen[i] == 1);
		}
	}
	/* The engine's view; the front end adds its signer (engine.sgn). */
	h->engine.store = h->state;
	h->engine.policy = &h->policy;
	h->engine.root = h->root;
	h->engine.inter = h->inter;
	h->engine.retired = h->retired;
	h->engine.nretired = h->nretired;
	h->engine.chain_path = h->chain_path;
	*out = h;
	h = NULL;
	ret = 0;
out:
	free(conf);
	home_free(h);
	return ret;
}

int
home_open_frontend(const char *dir, unsigned nconn, struct home **h,
    struct sgn **s)
{
	int r;

	*h = NULL;
	*s = NULL;
	if ((r = home_open(dir, HOME_STATE, h)) != 0)
		return r;
	if ((r = sgn_spawn((*h)->dir, nconn, s)) != 0) {
		home_free(*h);
		*h = NULL;
		return r;
	}
	(*h)->engine.sgn = *s;
	return 0;
}

void
home_free(struct home *h)
{
	if (h == NULL)
		return;
	/* The key goes before the store: no hook may run past this point. */
	if (h->store != NULL)
		store_set_sealer(h->store, NULL, NULL);
	ca_free(h->ca);
	for (size_t i = 0; h->retired_keys != NULL && i < h->nretired; i++) {
		ca_free(h->retired_ca[i]);
		hsm_key_free(h->retired_keys[i]);
	}
	free(h->retired_ca);
	free(h->retired_keys);
	free(h->retired_signers);
	free(h->retired_gen);
	hsm_key_free(h->audit_key);
	hsm_key_free(h->inter_key);
	hsm_free(h->hsm);
	if (h->state != h->store)
		store_close(h->state);
	store_close(h->store);
	X509_free(h->root);
	X509_free(h->inter);
	for (size_t i = 0; i < h->nretired; i++)
		X509_free(h->retired[i]);
	free(h->retired);
	conf_clear(&h->conf);
	free(h->chain_path);
	free(h->dir);
	free(h);
}

int
home_root_key(struct home *h, const char *what, struct hsm **own,
    struct hsm_key **out)
{
	struct hsm_open_opts ho;
	int r;

	*own = NULL;
	*out = NULL;
	if (h->conf.root_token_uri != NULL) {
		memset(&ho, 0, sizeof(ho));
		ho.module = h->conf.module;
		ho.token_uri = h->conf.root_token_uri;
		ho.pin_file = h->conf.root_pin_file;
		ho.softhsm_conf = h->conf.softhsm_conf;
		if ((r = hsm_open(&ho, own)) != 0) {
			amtca_err_clear();
			return amtca_fail(r == AMTCA_E_HSM_TOKEN ? r : AMTCA_E_HSM_TOKEN,
			    "%s needs the offline root token (%s), which is not "
			    "present or cannot be opened: insert it and run again",
			    what, h->conf.root_token_uri);
		}
		if ((r = hsm_key_find(*own, KEY_LABEL_ROOT, out)) != 0) {
			hsm_free(*own);
			*own = NULL;
			return amtca_fail(AMTCA_E_HSM_KEY, "%s: the root token (%s) "
			    "holds no key '%s'", what, h->conf.root_token_uri,
			    KEY_LABEL_ROOT);
		}
	} else if (hsm_key_find(h->hsm, KEY_LABEL_ROOT, out) != 0) {
		amtca_err_clear();
		return amtca_fail(AMTCA_E_HSM_KEY, "%s needs the root key, and this "
		    "CA's root is external (not in any token of this home): that "
		    "root's own CA does this%s", what, h->conf.store != NULL ?
		    " (or, on a node of a shared store whose root key is in an "
		    "offline token, name that token in this node's amtca.conf: "
		    "root_token_uri, root_pin_file)" : "");
	}
	if (EVP_PKEY_eq(hsm_key_public(*out), X509_get0_pubkey(h->root)) != 1) {
		hsm_key_free(*out);
		*out = NULL;
		hsm_free(*own);
		*own = NULL;
		return amtca_fail(AMTCA_E_HSM_KEY, "%s: the token's key '%s' does "
		    "not match %s/%s", what, KEY_LABEL_ROOT, h->dir, HOME_ROOT_PEM);
	}
	return 0;
}
