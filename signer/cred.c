/*
 * signer/cred.c: AMT credentials sealed under a token key.
 *
 * `credential add` (the operator, LOCAL) seals "user NUL password" with
 * hsm_aead_seal() under the token's credential key, the credential's name
 * as associated data, and stores the blob in the operational state
 * (h->state).  Neither the store nor anything that reads it ever sees the
 * password; a blob moved to another name does not open.
 *
 * The signer opens a credential only for a device with work pending in the
 * operational state (pending_work() below, docs/credentials.md), one at a
 * time, through a token bucket.  The front end writes that state, so this
 * does not stop a compromised front end from obtaining the credentials its
 * devices reference: it bounds how fast, and it keeps an honest front end
 * from ever asking for a password outside an enrollment.
 */
#include "signer/core.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "common/limits.h"
#include "common/util.h"
#include "hsm/hsm.h"

struct sgn_cred_state {
	pthread_mutex_t one;		/* one credential opened at a time */
	pthread_mutex_t mu;		/* the bucket below */
	double tokens;
	long long last_ms;
	double per_s;
	double burst;
	enum hsm_aead_mech mech;	/* sealing: amtca.conf credential_mechanism */
	struct hsm_aead *key;		/* under `one`; found on first open */
};

int
sgn_core_cred_init(struct sgn_core *c)
{
	struct sgn_cred_state *st = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	c->cred = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	st->mech = HSM_AEAD_AUTO;
	if (c->h != NULL && c->h->conf.credential_mechanism != NULL &&
	    (r = hsm_aead_mech_parse(c->h->conf.credential_mechanism,
	    &st->mech)) != 0) {
		ret = r;
		goto out;
	}
	if (pthread_mutex_init(&st->one, NULL) != 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (pthread_mutex_init(&st->mu, NULL) != 0) {
		pthread_mutex_destroy(&st->one);
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	st->per_s = AMTCA_CRED_RATE_PER_S;
	st->burst = st->tokens = AMTCA_CRED_BURST;
	st->last_ms = amtca_now_ms();
	c->cred = st;
	st = NULL;
	ret = 0;
out:
	free(st);
	return ret;
}

void
sgn_core_cred_free(struct sgn_core *c)
{
	struct sgn_cred_state *st;

	if (c == NULL || (st = c->cred) == NULL)
		return;
	hsm_aead_free(st->key);
	pthread_mutex_destroy(&st->one);
	pthread_mutex_destroy(&st->mu);
	free(st);
	c->cred = NULL;
}

void
sgn_core_cred_limits(struct sgn_core *c, double per_s, unsigned burst)
{
	struct sgn_cred_state *st = c->cred;

	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	st->per_s = per_s > 0 ? per_s : AMTCA_CRED_RATE_PER_S;
	st->burst = st->tokens = burst > 0 ? burst : AMTCA_CRED_BURST;
	st->last_ms = amtca_now_ms();
	pthread_mutex_unlock(&st->mu);
}

/* Take one token from the bucket; AMTCA_E_RATE when empty. */
static int
rate_take(struct sgn_cred_state *st)
{
	long long now = amtca_now_ms();
	int ret;

	pthread_mutex_lock(&st->mu);
	if (now > st->last_ms) {
		st->tokens += (double)(now - st->last_ms) * st->per_s / 1000.0;
		if (st->tokens > st->burst)
			st->tokens = st->burst;
		st->last_ms = now;
	}
	if (st->tokens >= 1.0) {
		st->tokens -= 1.0;
		ret = 0;
	} else
		ret = amtca_fail(AMTCA_E_RATE, "credentials are being asked for "
		    "faster than %.0f per second; try again later", st->per_s);
	pthread_mutex_unlock(&st->mu);
	return ret;
}

/* A name: [A-Za-z0-9][A-Za-z0-9._-]*, at most AMTCA_CRED_NAME_MAX bytes. */
static int
name_ok(const char *name)
{
	size_t i, n;

	if (name == NULL || (n = strlen(name)) == 0 || n > AMTCA_CRED_NAME_MAX ||
	    !isalnum((unsigned char)name[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '.' &&
		    name[i] != '_' && name[i] != '-')
			return 0;
	return 1;
}

/* An AMT user: printable ASCII without ':' (HTTP Digest), bounded. */
static int
user_ok(const char *user)
{
	size_t i, n;

	if (user == NULL || (n = strlen(user)) == 0 || n > AMTCA_AMT_USER_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (user[i] < 0x21 || user[i] > 0x7e || user[i] == ':')
			return 0;
	return 1;
}

static int
name_check(const char *name)
{
	if (!name_ok(name))
		return amtca_fail(AMTCA_E_USAGE, "a credential name is 1 to %d "
		    "letters, digits, '.', '_' or '-', starting with a letter or "
		    "digit", AMTCA_CRED_NAME_MAX);
	return 0;
}

/*
 * Append "credential.add" (a new name) or "credential.replace" (a known
 * one) by the operator; the password never appears.  *action is the one
 * appended.
 */
static int
cred_audit(struct sgn_core *c, const char *name, const char *user,
    const char **action)
{
	struct store_cred *old = NULL;
	char detail[AMTCA_AMT_USER_MAX + 8];
	int r;

	if (c->h->store == NULL)
		return amtca_fail(AMTCA_E_INTERNAL, "credentials: the signer "
		    "has no CA store for the audit trail");
	r = store_cred_get(c->h->state, name, &old);
	store_cred_free(old);
	if (r != 0 && r != AMTCA_E_NOT_FOUND)
		return r;
	*action = r == 0 ? "credential.replace" : "credential.add";
	snprintf(detail, sizeof(detail), "user=%s", user);
	return store_audit_append(c->h->store, c->local_name, *action, name,
	    detail);
}

/* The change an entry announced did not happen: say so in the trail. */
static void
cred_audit_error(struct sgn_core *c, const char *name, const char *action,
    int err)
{
	char detail[96];

	snprintf(detail, sizeof(detail), "failed=%s error=%d", action, err);
	if (store_audit_append(c->h->store, c->local_name, "credential.error",
	    name, detail) != 0)
		fprintf(stderr, "event=audit_fail action=credential.error\n");
}

int
sgn_core_cred_put(struct sgn_core *c, const char *name, const char *user,
    const char *password)
{
	const char *action = NULL;
	struct sgn_cred_state *st = c->cred;
	struct hsm_aead *key = NULL;
	struct store_cred rec;
	enum hsm_aead_mech used = HSM_AEAD_AUTO;
	unsigned char *pt = NULL, *blob = NULL;
	size_t ulen = 0, plen = 0, ptlen = 0, bloblen = 0;
	int locked = 0, r, ret = AMTCA_E_INTERNAL;

	if (st == NULL || c->h == NULL || c->h->hsm == NULL || c->h->state == NULL) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "credentials: the signer has "
		    "no token or operational state");
		goto out;
	}
	/* The operator's command only: a front end never writes one. */
	if (c->frontend) {
		ret = amtca_fail(AMTCA_E_DENIED, "credentials are added by the "
		    "operator (amtca credential add), not by a front end");
		goto out;
	}
	if ((r = name_check(name)) != 0) {
		ret = r;
		goto out;
	}
	if (!user_ok(user)) {
		ret = amtca_fail(AMTCA_E_USAGE, "an AMT user is 1 to %d printable "
		    "characters without spaces or ':'", AMTCA_AMT_USER_MAX);
		goto out;
	}
	if (password == NULL || (plen = strlen(password)) == 0 ||
	    plen > AMTCA_SECRET_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "an AMT password is 1 to %d bytes",
		    AMTCA_SECRET_MAX);
		goto out;
	}
	ulen = strlen(user);
	ptlen = ulen + 1 + plen;
	if ((pt = malloc(ptlen)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(pt, user, ulen);
	pt[ulen] = '\0';
	memcpy(pt + ulen + 1, password, plen);
	pthread_mutex_lock(&st->one);
	locked = 1;
	/* The operator's command creates the keys on first use. */
	if ((r = hsm_aead_key(c->h->hsm, 1, &key)) != 0 ||
	    (r = hsm_aead_seal(key, st->mech, (const unsigned char *)name,
	    strlen(name), pt, ptlen, &blob, &bloblen, &used)) != 0) {
		ret = r;
		goto out;
	}
	memset(&rec, 0, sizeof(rec));
	rec.name = (char *)name;
	rec.user = (char *)user;
	rec.sealed = blob;
	rec.sealed_len = bloblen;
	rec.mechanism = (char *)hsm_aead_mech_name(used);
	/*
	 * The audit entry goes first: the credential is operational state
	 * and the trail is the CA store's, so no transaction holds both.
	 * An entry therefore means "attempted"; a write that then fails
	 * appends "credential.error" for the same name, and only a crash
	 * in between leaves an entry whose change is not in the state
	 * (docs/audit.md).  The reverse order could lose the entry of a
	 * change that happened.
	 */
	if ((r = cred_audit(c, name, user, &action)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = store_cred_put(c->h->state, &rec)) != 0) {
		ret = r;
		cred_audit_error(c, name, action, r);
		goto out;
	}
	/* Keep the fresh handle: it knows of both keys. */
	hsm_aead_free(st->key);
	st->key = key;
	key = NULL;
	ret = 0;
out:
	if (locked)
		pthread_mutex_unlock(&st->one);
	hsm_aead_free(key);
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	free(blob);
	return ret;
}

/* Is `fqdn` a device of a running job whose result is still "pending"? */
static int
in_running_job(struct store *s, const char *fqdn, int *yes)
{
	struct store_job *jobs = NULL;
	struct store_job_device *devs = NULL;
	size_t nj = 0, nd = 0, i, k;
	int r, ret = AMTCA_E_INTERNAL;

	*yes = 0;
	if ((r = store_job_list(s, &jobs, &nj)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < nj && !*yes; i++) {
		if (strcmp(jobs[i].state, "running") != 0)
			continue;
		store_job_devices_free(devs, nd);
		devs = NULL;
		nd = 0;
		if ((r = store_job_device_list(s, jobs[i].id, &devs, &nd)) != 0) {
			ret = r;
			goto out;
		}
		for (k = 0; k < nd; k++)
			if (strcasecmp(devs[k].fqdn, fqdn) == 0 &&
			    strcmp(devs[k].result, "pending") == 0) {
				*yes = 1;
				break;
			}
	}
	ret = 0;
out:
	store_job_devices_free(devs, nd);
	store_jobs_free(jobs, nj);
	return ret;
}

/*
 * The rule (docs/credentials.md): the device's record references the
 * credential (cred_ref "credential:NAME") and
 *   - its state is pending, enrolling or failed, or
 *   - it is auth_failed and the credential was replaced since, or
 *   - it is in a running job that has not finished it (result "pending"),
 *     and is neither compromised nor retired (a renewal).
 * AMTCA_E_DENIED otherwise.
 */
static int
pending_work(struct store *s, const char *name, const char *fqdn,
    time_t cred_updated)
{
	struct store_device *d = NULL;
	const char *ref;
	int job = 0, r, ret = AMTCA_E_INTERNAL;

	r = store_device_get(s, fqdn, &d);
	if (r == AMTCA_E_NOT_FOUND) {
		ret = amtca_fail(AMTCA_E_DENIED, "no device %.253s in the "
		    "operational state: no credential is opened for it", fqdn);
		goto out;
	}
	if (r != 0) {
		ret = r;
		goto out;
	}
	ref = d->cred_ref;
	if (ref == NULL || strncmp(ref, STORE_CRED_REF_PREFIX,
	    strlen(STORE_CRED_REF_PREFIX)) != 0 ||
	    strcmp(ref + strlen(STORE_CRED_REF_PREFIX), name) != 0) {
		ret = amtca_fail(AMTCA_E_DENIED, "device %.253s does not use "
		    "credential %s", fqdn, name);
		goto out;
	}
	if (strcmp(d->state, "pending") == 0 || strcmp(d->state, "enrolling") == 0 ||
	    strcmp(d->state, "failed") == 0) {
		ret = 0;
		goto out;
	}
	if (strcmp(d->state, "auth_failed") == 0 && cred_updated > d->updated_at) {
		ret = 0;
		goto out;
	}
	if (strcmp(d->state, "compromised") != 0 &&
	    strcmp(d->state, "retired") != 0) {
		if ((r = in_running_job(s, fqdn, &job)) != 0) {
			ret = r;
			goto out;
		}
		if (job) {
			ret = 0;
			goto out;
		}
	}
	ret = amtca_fail(AMTCA_E_DENIED, "device %.253s has no work pending "
	    "(state %s): its credential is not opened", fqdn, d->state);
out:
	store_device_free(d);
	return ret;
}

int
sgn_core_cred_get(struct sgn_core *c, const char *name, const char *fqdn,
    char **user, char **password)
{
	struct sgn_cred_state *st = c->cred;
	struct store_cred *rec = NULL;
	unsigned char *pt = NULL;
	size_t ptlen = 0, ulen, plen = 0;
	char *u = NULL, *p = NULL;
	int locked = 0, r, ret = AMTCA_E_INTERNAL;

	*user = NULL;
	*password = NULL;
	if (st == NULL || c->h == NULL || c->h->hsm == NULL || c->h->state == NULL) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "credentials: the signer has "
		    "no token or operational state");
		goto out;
	}
	if ((r = name_check(name)) != 0) {
		ret = r;
		goto out;
	}
	if (fqdn == NULL || *fqdn == '\0' || strlen(fqdn) > AMTCA_FQDN_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "a credential is opened for one "
		    "device FQDN");
		goto out;
	}
	/* Before any work: a flood costs a counter, not a store read. */
	if ((r = rate_take(st)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = store_cred_get(c->h->state, name, &rec)) != 0 ||
	    (r = pending_work(c->h->state, name, fqdn, rec->updated_at)) != 0) {
		ret = r;
		goto out;
	}
	pthread_mutex_lock(&st->one);
	locked = 1;
	if (st->key == NULL && (r = hsm_aead_key(c->h->hsm, 0, &st->key)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = hsm_aead_open(st->key, (const unsigned char *)name,
	    strlen(name), rec->sealed, rec->sealed_len, &pt, &ptlen)) != 0) {
		ret = r;
		goto out;
	}
	/* "user NUL password"; the sealed user is the authentic one. */
	ulen = strnlen((const char *)pt, ptlen);
	if (ulen == 0 || ulen + 1 >= ptlen) {
		ret = amtca_fail(AMTCA_E_STORE, "credential %s opens to something "
		    "that is not a user and a password; add it again", name);
		goto out;
	}
	plen = ptlen - ulen - 1;
	if (strcmp((const char *)pt, rec->user) != 0) {
		ret = amtca_fail(AMTCA_E_DENIED, "credential %s: the stored user "
		    "is not the sealed one (the record was altered)", name);
		goto out;
	}
	if ((u = strdup((const char *)pt)) == NULL ||
	    (p = malloc(plen + 1)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(p, pt + ulen + 1, plen);
	p[plen] = '\0';
	if (strlen(p) != plen) {
		ret = amtca_fail(AMTCA_E_STORE, "credential %s holds a password "
		    "with a NUL byte; add it again", name);
		goto out;
	}
	*user = u;
	*password = p;
	u = p = NULL;
	ret = 0;
out:
	if (locked)
		pthread_mutex_unlock(&st->one);
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	free(u);
	if (p != NULL) {
		OPENSSL_cleanse(p, plen + 1);
		free(p);
	}
	store_cred_free(rec);
	return ret;
}
