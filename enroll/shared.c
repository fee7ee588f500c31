/*
 * Several nodes, one CA (issue 11, docs/deployment.md): the CA's shared
 * configuration in the store (store_meta_*), the way a node's home is made
 * from it (init --join) and kept in step with it (home_open).
 *
 * What is shared: the certificate files (root.pem, intermediate.pem,
 * chain.pem and, after a rotation, intermediate-retired.pem, each an item
 * named as its file) and the shareable part of amtca.conf (item "conf"):
 * every line whose key is not node-local.  Node-local keys (how this node
 * reaches the token and the store, and who it is) never leave the node:
 * module, token_uri, pin_file, softhsm_conf, root_token_uri,
 * root_pin_file, module_env, store, home_id, restored_from.  A key added
 * later (e.g. the rotation's intermediate_key) is shared unless it is
 * listed here as local.
 *
 * Who wins when a node differs from the store: decided item by item
 * against HOME_SHARED_BASE, the hashes both last agreed on (written by
 * every publish, join and sync).  Changed only in the store: taken.
 * Changed only here: published (an edit of a shared setting on this node,
 * or a rotation here interrupted before its publish).  Changed on both
 * sides, or never agreed: the store's.  A required certificate file is
 * never removed from the store.
 */
#include "enroll/home.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "common/limits.h"
#include "common/util.h"

/* The certificate items, named as their files; the first three required. */
static const char *const shared_files[] = {
	HOME_ROOT_PEM, HOME_INTER_PEM, HOME_CHAIN_PEM, HOME_RETIRED_PEM,
};
#define NSHARED_FILES (sizeof(shared_files) / sizeof(shared_files[0]))
#define NREQUIRED_FILES 3

/* Written above the shared lines of a node's amtca.conf. */
#define SHARED_MARK "# shared by every node of the store (amtca init --join): " \
	"the lines below come from the database\n"

static const char *const local_keys[] = {
	"module", "token_uri", "pin_file", "softhsm_conf", "root_token_uri",
	"root_pin_file", "module_env", "store", "home_id", "restored_from",
	NULL,
};

int
home_conf_key_local(const char *key)
{
	size_t i;

	for (i = 0; local_keys[i] != NULL; i++)
		if (strcmp(key, local_keys[i]) == 0)
			return 1;
	return 0;
}

/* The key of one conf line ("" for a blank or comment line) into key[]. */
static void
line_key(const char *line, size_t len, char *key, size_t keysz)
{
	size_t i = 0, k = 0;

	key[0] = '\0';
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	while (i < len && line[i] != '=' && line[i] != '#' && line[i] != ' ' &&
	    line[i] != '\t' && k + 1 < keysz)
		key[k++] = line[i++];
	key[k] = '\0';
}

/* Append len bytes and a newline to a growing string. */
static int
append_line(char **buf, size_t *blen, const char *s, size_t len)
{
	char *nb;

	if ((nb = realloc(*buf, *blen + len + 2)) == NULL)
		return AMTCA_E_NOMEM;
	memcpy(nb + *blen, s, len);
	nb[*blen + len] = '\n';
	nb[*blen + len + 1] = '\0';
	*buf = nb;
	*blen += len + 1;
	return 0;
}

int
home_conf_split(const char *text, char **local, char **shared)
{
	const char *p = text, *e;
	char key[64], *l = NULL, *s = NULL;
	size_t ll = 0, sl = 0, len;
	int r;

	*local = NULL;
	*shared = NULL;
	if ((l = strdup("")) == NULL || (s = strdup("")) == NULL) {
		free(l);
		free(s);
		return AMTCA_E_NOMEM;
	}
	while (*p != '\0') {
		e = strchr(p, '\n');
		len = e != NULL ? (size_t)(e - p) : strlen(p);
		line_key(p, len, key, sizeof(key));
		/* Comments and blank lines stay with the node (the mark too). */
		if (key[0] == '\0' || home_conf_key_local(key))
			r = append_line(&l, &ll, p, len);
		else
			r = append_line(&s, &sl, p, len);
		if (r != 0) {
			free(l);
			free(s);
			return r;
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	*local = l;
	*shared = s;
	return 0;
}

/* A file of the home, or NULL (*len 0) when absent. */
static int
read_opt(const char *dir, const char *name, size_t max, unsigned char **out,
    size_t *len, time_t *mtime)
{
	char *path = NULL;
	struct stat sb;
	int r;

	*out = NULL;
	*len = 0;
	if (asprintf(&path, "%s/%s", dir, name) == -1)
		return AMTCA_E_NOMEM;
	if ((r = amtca_file_read(path, max, out, len)) == AMTCA_E_NOT_FOUND) {
		amtca_err_clear();
		r = 0;
	} else if (r == 0 && mtime != NULL && stat(path, &sb) == 0)
		*mtime = sb.st_mtime;
	free(path);
	return r;
}

static int
write_home_file(const char *dir, const char *name, const unsigned char *buf,
    size_t len)
{
	char *path = NULL;
	int r;

	if (asprintf(&path, "%s/%s", dir, name) == -1)
		return AMTCA_E_NOMEM;
	if (buf == NULL) {
		r = unlink(path) == 0 || errno == ENOENT ? 0 :
		    amtca_fail(AMTCA_E_IO, "cannot remove %s: %s", path,
		    strerror(errno));
	} else
		r = amtca_file_write(path, buf, len, 0644, 0);
	free(path);
	return r;
}

/*
 * The shared items, in a fixed order: amtca.conf's shared part, then the
 * certificate files.  A set's values: NULL for an absent item.
 */
#define NITEMS (NSHARED_FILES + 1)

static const char *
item_name(size_t i)
{
	return i == 0 ? HOME_SHARED_CONF : shared_files[i - 1];
}

/* Which of the home's files holds item i. */
static const char *
item_file(size_t i)
{
	return i == 0 ? HOME_CONF : shared_files[i - 1];
}

struct set {
	unsigned char *v[NITEMS];
	size_t len[NITEMS];
	char *local;			/* amtca.conf's node-local lines */
};

static void
set_clear(struct set *s)
{
	size_t i;

	for (i = 0; i < NITEMS; i++)
		free(s->v[i]);
	free(s->local);
	memset(s, 0, sizeof(*s));
}

/* The home's shared set: amtca.conf split, the certificate files as they are. */
static int
set_read(const char *dir, struct set *s)
{
	unsigned char *conf = NULL;
	char *shared = NULL;
	size_t i, len;
	int r;

	memset(s, 0, sizeof(*s));
	if ((r = read_opt(dir, HOME_CONF, AMTCA_CONF_MAX, &conf, &len,
	    NULL)) != 0)
		return r;
	if (conf == NULL)
		return amtca_fail(AMTCA_E_CONFIG, "no CA in %s (%s missing)", dir,
		    HOME_CONF);
	r = home_conf_split((const char *)conf, &s->local, &shared);
	free(conf);
	if (r != 0)
		return r;
	s->v[0] = (unsigned char *)shared;
	s->len[0] = strlen(shared);
	for (i = 1; i < NITEMS; i++) {
		if ((r = read_opt(dir, item_file(i), AMTCA_CERT_FILE_MAX *
		    AMTCA_RETIRED_MAX, &s->v[i], &s->len[i], NULL)) != 0) {
			set_clear(s);
			return r;
		}
	}
	return 0;
}

/* SHA-256 of an item's value, lowercase hex; "-" for an absent item. */
static void
item_hash(const unsigned char *v, size_t len, char out[65])
{
	unsigned char md[32];
	size_t i;

	if (v == NULL) {
		snprintf(out, 65, "-");
		return;
	}
	SHA256(v, len, md);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * HOME_SHARED_BASE: the hash of each item as this home and the store last
 * agreed on it ("HASH  NAME" lines, "-" for absent), so that a difference
 * can be told apart: changed here (publish it), changed in the store (take
 * it), or both (the store's wins).  base[i][0] is '\0' when unknown.
 */
static int
base_read(const char *dir, char base[NITEMS][65])
{
	unsigned char *buf = NULL;
	char *line, *save = NULL, *sp;
	size_t len, i;
	int r;

	memset(base, 0, NITEMS * 65);
	if ((r = read_opt(dir, HOME_SHARED_BASE, 4096, &buf, &len, NULL)) != 0)
		return r;
	if (buf == NULL)
		return 0;
	for (line = strtok_r((char *)buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if ((sp = strstr(line, "  ")) == NULL || sp - line > 64)
			continue;
		for (i = 0; i < NITEMS; i++)
			if (strcmp(sp + 2, item_name(i)) == 0)
				snprintf(base[i], 65, "%.*s", (int)(sp - line), line);
	}
	free(buf);
	return 0;
}

static int
base_write(const char *dir, char h[NITEMS][65])
{
	char text[NITEMS * (64 + 2 + AMTCA_STORE_META_NAME_MAX + 1) + 1];
	size_t i, off = 0;

	text[0] = '\0';
	for (i = 0; i < NITEMS; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s  %s\n",
		    h[i], item_name(i));
	return write_home_file(dir, HOME_SHARED_BASE, (unsigned char *)text, off);
}

int
home_shared_publish_dir(const char *dir, struct store *st)
{
	struct store_meta v[NITEMS];
	struct set s;
	char h[NITEMS][65];
	size_t i;
	int r;

	if ((r = set_read(dir, &s)) != 0)
		return r;
	memset(v, 0, sizeof(v));
	for (i = 0; i < NITEMS; i++) {
		if (s.v[i] == NULL && i <= NREQUIRED_FILES) {
			r = amtca_fail(AMTCA_E_CONFIG, "%s/%s is missing: the CA "
			    "has no certificates to share yet", dir, item_file(i));
			goto out;
		}
		v[i].name = (char *)item_name(i);
		v[i].value = s.v[i];	/* NULL: no longer there */
		v[i].len = s.len[i];
		item_hash(s.v[i], s.len[i], h[i]);
	}
	if ((r = store_meta_put(st, v, NITEMS)) != 0 ||
	    (r = base_write(dir, h)) != 0)
		goto out;
	r = 0;
out:
	set_clear(&s);
	return r;
}

int
home_shared_publish(struct home *h)
{
	struct store *st;

	if (h == NULL)
		return amtca_fail(AMTCA_E_USAGE, "home_shared_publish: no home");
	if (h->conf.store == NULL)
		return 0;		/* nothing shared: the home's own files */
	if ((st = h->store != NULL ? h->store : h->state) == NULL)
		return amtca_fail(AMTCA_E_USAGE, "home_shared_publish: the home "
		    "was opened without its store");
	return home_shared_publish_dir(h->dir, st);
}

static const struct store_meta *
meta_find(const struct store_meta *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

/* amtca.conf of a node: its local lines, the mark, the shared ones. */
static int
conf_compose(const char *local, const unsigned char *shared, size_t len,
    char **out)
{
	const char *mark = strstr(local, SHARED_MARK) != NULL ? "" : SHARED_MARK;

	*out = NULL;
	if (asprintf(out, "%s%s%.*s", local, mark, (int)len,
	    (const char *)shared) == -1) {
		*out = NULL;
		return AMTCA_E_NOMEM;
	}
	return 0;
}

int
home_shared_sync(const char *dir, struct store *st, int *conf_changed)
{
	struct store_meta *v = NULL, pub[NITEMS];
	const struct store_meta *m;
	struct set s;
	char base[NITEMS][65], lh[65], dh[65], agreed[NITEMS][65], *text = NULL;
	size_t n = 0, i, npub = 0;
	int r, ret = AMTCA_E_INTERNAL, take, dirty = 0;

	*conf_changed = 0;
	memset(&s, 0, sizeof(s));
	if ((r = store_meta_list(st, &v, &n)) != 0)
		return r;
	if (meta_find(v, n, HOME_INTER_PEM) == NULL) {
		/*
		 * Nothing shared yet: a store made before this table (seeded
		 * by its first node to open it), or a CA still waiting for
		 * its intermediate (published by import-intermediate).
		 */
		unsigned char *b = NULL;
		size_t len;

		if ((r = read_opt(dir, HOME_INTER_PEM, AMTCA_CERT_FILE_MAX, &b,
		    &len, NULL)) != 0) {
			ret = r;
			goto out;
		}
		free(b);
		ret = b != NULL ? home_shared_publish_dir(dir, st) : 0;
		goto out;
	}
	if ((r = set_read(dir, &s)) != 0 || (r = base_read(dir, base)) != 0) {
		ret = r;
		goto out;
	}
	memset(pub, 0, sizeof(pub));
	for (i = 0; i < NITEMS; i++) {
		m = meta_find(v, n, item_name(i));
		item_hash(s.v[i], s.len[i], lh);
		item_hash(m ? m->value : NULL, m ? m->len : 0, dh);
		snprintf(agreed[i], 65, "%s", dh);
		if (strcmp(lh, dh) == 0) {
			dirty |= strcmp(base[i], dh) != 0;
			continue;
		}
		dirty = 1;
		/*
		 * Changed here only (the store still has what both last agreed
		 * on): publish it, unless that would remove a required file.
		 * Changed in the store, or in both, or never agreed: the
		 * store's.
		 */
		take = !(base[i][0] != '\0' && strcmp(dh, base[i]) == 0 &&
		    (s.v[i] != NULL || i > NREQUIRED_FILES));
		if (!take) {
			pub[npub].name = (char *)item_name(i);
			pub[npub].value = s.v[i];
			pub[npub].len = s.len[i];
			npub++;
			snprintf(agreed[i], 65, "%s", lh);
			continue;
		}
		if (i == 0) {
			if (m == NULL) {
				/* No shared conf in the store: publish ours. */
				pub[npub].name = (char *)item_name(i);
				pub[npub].value = s.v[i];
				pub[npub].len = s.len[i];
				npub++;
				snprintf(agreed[i], 65, "%s", lh);
				continue;
			}
			if ((r = conf_compose(s.local, m->value, m->len,
			    &text)) != 0 || (r = write_home_file(dir, HOME_CONF,
			    (unsigned char *)text, strlen(text))) != 0) {
				ret = r;
				goto out;
			}
			*conf_changed = 1;
			continue;
		}
		if ((r = write_home_file(dir, item_file(i), m ? m->value : NULL,
		    m ? m->len : 0)) != 0) {
			ret = r;
			goto out;
		}
	}
	if (npub > 0 && (r = store_meta_put(st, pub, npub)) != 0) {
		ret = r;
		goto out;
	}
	ret = dirty ? base_write(dir, agreed) : 0;
out:
	store_metas_free(v, n);
	set_clear(&s);
	free(text);
	return ret;
}

int
home_module_env_collect(char *env[AMTCA_MODULE_ENV_MAX], size_t *nenv)
{
	const char *val;
	char *rv;
	size_t i;
	int r;

	*nenv = 0;
	for (i = 0; home_module_env_names[i] != NULL; i++) {
		val = getenv(home_module_env_names[i]);
		if (val == NULL || *val == '\0' || *nenv == AMTCA_MODULE_ENV_MAX)
			continue;
		if ((rv = realpath(val, NULL)) == NULL) {
			r = amtca_fail(AMTCA_E_CONFIG, "%s=%s: %s",
			    home_module_env_names[i], val, strerror(errno));
			goto fail;
		}
		r = asprintf(&env[*nenv], "%s=%s", home_module_env_names[i], rv);
		free(rv);
		if (r == -1) {
			r = AMTCA_E_NOMEM;
			goto fail;
		}
		(*nenv)++;
	}
	return 0;
fail:
	while (*nenv > 0)
		free(env[--*nenv]);
	return r;
}

/* --- init --join ------------------------------------------------------------ */

static int
pem_cert(const struct store_meta *m, X509 **out)
{
	BIO *b;

	*out = NULL;
	if ((b = BIO_new_mem_buf(m->value, (int)m->len)) == NULL)
		return AMTCA_E_NOMEM;
	*out = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (*out == NULL)
		return amtca_fail_ssl(AMTCA_E_STORE, "the store's %s is not a PEM "
		    "certificate", m->name);
	return 0;
}

/* The intermediate key's label in the shared conf (intermediate_key = ...). */
static int
inter_label(const struct store_meta *conf, char **out)
{
	const char *p = (const char *)conf->value, *end = p + conf->len, *e, *q;
	char key[64];
	size_t len;

	*out = NULL;
	while (p < end) {
		e = memchr(p, '\n', (size_t)(end - p));
		len = e != NULL ? (size_t)(e - p) : (size_t)(end - p);
		line_key(p, len, key, sizeof(key));
		if (strcmp(key, "intermediate_key") == 0 &&
		    (q = memchr(p, '=', len)) != NULL) {
			q++;
			while (q < p + len && (*q == ' ' || *q == '\t'))
				q++;
			len = (size_t)(p + len - q);
			if (memchr(q, '#', len) != NULL)
				len = (size_t)((const char *)memchr(q, '#', len) - q);
			while (len > 0 && (q[len - 1] == ' ' || q[len - 1] == '\t' ||
			    q[len - 1] == '\r'))
				len--;
			if (len > 0)
				return (*out = strndup(q, len)) == NULL ?
				    AMTCA_E_NOMEM : 0;
		}
		p = e != NULL ? e + 1 : end;
	}
	return (*out = strdup(KEY_LABEL_INTER)) == NULL ? AMTCA_E_NOMEM : 0;
}

/* Does the token hold the CA's current intermediate key and the audit key? */
static int
join_token_check(const struct home_join *j, char *const *env, size_t nenv,
    const struct store_meta *inter_pem, const struct store_meta *conf)
{
	struct hsm_open_opts ho;
	struct hsm *hsm = NULL;
	struct hsm_key *ik = NULL, *ak = NULL;
	X509 *inter = NULL;
	char *label = NULL;
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = home_token_check(j->module, j->token_uri, j->pin_file, NULL,
	    env, nenv)) != 0)
		return r;
	for (i = 0; i < nenv; i++) {
		char *name = strndup(env[i], strcspn(env[i], "="));

		if (name == NULL)
			return AMTCA_E_NOMEM;
		r = setenv(name, env[i] + strlen(name) + 1, 1);
		free(name);
		if (r != 0)
			return amtca_fail(AMTCA_E_NOMEM, "cannot set %s", env[i]);
	}
	if ((r = pem_cert(inter_pem, &inter)) != 0 ||
	    (r = inter_label(conf, &label)) != 0) {
		ret = r;
		goto out;
	}
	memset(&ho, 0, sizeof(ho));
	ho.module = j->module;
	ho.token_uri = j->token_uri;
	ho.pin_file = j->pin_file;
	if ((r = hsm_open(&ho, &hsm)) != 0) {
		ret = r;
		goto out;
	}
	if (((r = hsm_key_find(hsm, label, &ik)) != 0 ||
	    EVP_PKEY_eq(hsm_key_public(ik), X509_get0_pubkey(inter)) != 1) &&
	    home_inter_label_gen(label) > 1) {
		/* A rotation that named its key but did not get to publish
		 * its certificate: the previous generation's (home_open does
		 * the same). */
		char prev[HOME_INTER_LABEL_MAX];

		amtca_err_clear();
		hsm_key_free(ik);
		ik = NULL;
		home_inter_label(home_inter_label_gen(label) - 1, prev);
		r = hsm_key_find(hsm, prev, &ik);
	}
	if (r != 0 || ik == NULL ||
	    EVP_PKEY_eq(hsm_key_public(ik), X509_get0_pubkey(inter)) != 1) {
		amtca_err_clear();
		ret = amtca_fail(AMTCA_E_HSM_KEY, "the token %s does not hold this "
		    "CA's intermediate key ('%s' matching the store's %s): wrong "
		    "token for this CA", j->token_uri, label, HOME_INTER_PEM);
		goto out;
	}
	if ((r = hsm_key_find(hsm, KEY_LABEL_AUDIT, &ak)) != 0) {
		amtca_err_clear();
		ret = amtca_fail(AMTCA_E_HSM_KEY, "the token %s holds no audit key "
		    "('%s'): wrong token for this CA", j->token_uri,
		    KEY_LABEL_AUDIT);
		goto out;
	}
	ret = 0;
out:
	hsm_key_free(ik);
	hsm_key_free(ak);
	hsm_free(hsm);
	X509_free(inter);
	free(label);
	return ret;
}

/* This node's lines of amtca.conf. */
static int
join_local_conf(const struct home_join *j, char *const *env, size_t nenv,
    const char *home_id, char **out)
{
	char *t = NULL, *nt;
	size_t i;

	*out = NULL;
	if (asprintf(&t, "# amtca.conf: written by 'amtca init --join'; see "
	    "amtca.conf(5).\n# this node's own settings\nmodule = %s\n"
	    "token_uri = %s\n%s%s%sstore = %s\nhome_id = %s\n", j->module,
	    j->token_uri, j->pin_file ? "pin_file = " : "",
	    j->pin_file ? j->pin_file : "", j->pin_file ? "\n" : "", j->store,
	    home_id) == -1)
		return AMTCA_E_NOMEM;
	for (i = 0; i < nenv; i++) {
		if (asprintf(&nt, "%smodule_env = %s\n", t, env[i]) == -1) {
			free(t);
			return AMTCA_E_NOMEM;
		}
		free(t);
		t = nt;
	}
	*out = t;
	return 0;
}

int
home_join(const struct home_join *j, char home_id[HOME_ID_LEN + 1])
{
	struct store *st = NULL;
	struct store_meta *v = NULL;
	const struct store_meta *m, *conf;
	char real[PATH_MAX], *env[AMTCA_MODULE_ENV_MAX], *local = NULL;
	char *text = NULL, *sub = NULL, *actor = NULL, host[256], detail[300];
	struct stat sb;
	size_t n = 0, nenv = 0, i;
	int r, ret = AMTCA_E_INTERNAL, made = 0, existed;
	struct hsm_open_opts ho;
	struct hsm *hsm = NULL;
	struct hsm_key *ak = NULL;
	struct ca_signer as;
	struct audit_sealer sl;

	home_id[0] = '\0';
	real[0] = '\0';
	/* The store: it must hold a CA with its shared set. */
	if ((r = store_open(j->store, 0, &st)) != 0) {
		if (r == AMTCA_E_NOT_FOUND) {
			amtca_err_clear();
			ret = amtca_fail(AMTCA_E_NOT_FOUND, "the store at %s holds no "
			    "CA: run 'amtca init --store URI' on the first node",
			    j->store);
		} else
			ret = r;
		goto out;
	}
	if ((r = store_meta_list(st, &v, &n)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < NREQUIRED_FILES; i++)
		if (meta_find(v, n, shared_files[i]) == NULL)
			break;
	if (i < NREQUIRED_FILES || (conf = meta_find(v, n,
	    HOME_SHARED_CONF)) == NULL) {
		ret = amtca_fail(AMTCA_E_NOT_FOUND, "the store at %s holds no CA "
		    "to join (no shared certificates: run 'amtca init --store "
		    "URI' on the first node, or finish its 'ca "
		    "import-intermediate')", j->store);
		goto out;
	}
	/* The token: the same CA's keys, through this node's module. */
	if ((r = home_module_env_collect(env, &nenv)) != 0 ||
	    (r = join_token_check(j, env, nenv, meta_find(v, n, HOME_INTER_PEM),
	    conf)) != 0) {
		ret = r;
		goto out;
	}
	/* The home: new or empty, ours alone; removed again on failure. */
	existed = stat(j->dir, &sb) == 0;
	if ((r = home_create(j->dir)) != 0) {
		ret = r;
		goto out;
	}
	made = 1;
	if (realpath(j->dir, real) == NULL) {
		ret = amtca_fail(AMTCA_E_IO, "cannot resolve %s", j->dir);
		goto out;
	}
	if (existed)
		made = 2;		/* empty it, keep it */
	for (i = 0; i < 2; i++) {
		free(sub);
		if ((sub = amtca_path_join(real, i == 0 ? HOME_KEYS_DIR :
		    HOME_STATE_DIR)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if (mkdir(sub, 0700) != 0) {
			ret = amtca_fail(AMTCA_E_IO, "cannot create %s: %s", sub,
			    strerror(errno));
			goto out;
		}
	}
	for (i = 0; i < NSHARED_FILES; i++) {
		if ((m = meta_find(v, n, shared_files[i])) == NULL)
			continue;
		if ((r = write_home_file(real, shared_files[i], m->value,
		    m->len)) != 0) {
			ret = r;
			goto out;
		}
	}
	if ((r = home_id_new(home_id)) != 0 ||
	    (r = join_local_conf(j, env, nenv, home_id, &local)) != 0 ||
	    (r = conf_compose(local, conf->value, conf->len, &text)) != 0) {
		ret = r;
		goto out;
	}
	{
		char *path = NULL;

		if (asprintf(&path, "%s/%s", real, HOME_CONF) == -1) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		/* Exclusive: the conf is written last and marks a complete CA. */
		r = amtca_file_write(path, text, strlen(text), 0644, 1);
		free(path);
		if (r != 0) {
			ret = r;
			goto out;
		}
	}
	{
		char h[NITEMS][65];

		for (i = 0; i < NITEMS; i++) {
			m = meta_find(v, n, item_name(i));
			item_hash(m ? m->value : NULL, m ? m->len : 0, h[i]);
		}
		if ((r = base_write(real, h)) != 0) {
			ret = r;
			goto out;
		}
	}
	/* "ca.join" in the shared trail, sealed with the shared audit key. */
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(detail, sizeof(detail), "host=%.250s", host);
	memset(&ho, 0, sizeof(ho));
	ho.module = j->module;
	ho.token_uri = j->token_uri;
	ho.pin_file = j->pin_file;
	if ((r = home_local_actor(&actor)) != 0 ||
	    (r = store_set_actor(st, actor)) != 0 ||
	    (r = hsm_open(&ho, &hsm)) != 0 ||
	    (r = hsm_key_find(hsm, KEY_LABEL_AUDIT, &ak)) != 0) {
		ret = r;
		goto out;
	}
	hsm_key_signer(ak, &as);
	home_audit_sealer(hsm, &as, &sl);
	if ((r = store_audit_append(st, NULL, "ca.join", home_id, detail)) != 0 ||
	    (r = audit_seal(st, NULL, &sl, NULL)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	if (ret != 0 && made != 0 && real[0] != '\0') {
		if (made == 2) {
			/* Pre-made empty directory: leave it empty. */
			static const char *const names[] = { HOME_CONF,
			    HOME_ROOT_PEM, HOME_INTER_PEM, HOME_CHAIN_PEM,
			    HOME_RETIRED_PEM, HOME_SHARED_BASE, NULL };
			char *p = NULL;

			for (i = 0; names[i] != NULL; i++) {
				if (asprintf(&p, "%s/%s", real, names[i]) != -1) {
					(void)unlink(p);
					free(p);
				}
			}
			if (asprintf(&p, "%s/%s", real, HOME_KEYS_DIR) != -1) {
				amtca_rmtree(p);
				free(p);
			}
			if (asprintf(&p, "%s/%s", real, HOME_STATE_DIR) != -1) {
				amtca_rmtree(p);
				free(p);
			}
		} else
			amtca_rmtree(real);
	}
	if (ret != 0)
		home_id[0] = '\0';
	hsm_key_free(ak);
	hsm_free(hsm);
	store_metas_free(v, n);
	store_close(st);
	for (i = 0; i < nenv; i++)
		free(env[i]);
	free(local);
	free(text);
	free(sub);
	free(actor);
	return ret;
}
