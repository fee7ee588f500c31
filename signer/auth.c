/*
 * signer/auth.c: who is asking.  The front end only forwards what a client
 * presented (its TLS chain, or its Basic name and password); this file
 * decides, against the CA's own client records (store_client_*):
 *
 *   LOCAL  the process that started the signer (c->local_name).
 *   BASIC  an EST client by name and password.  Token buckets per peer
 *          address and per name are taken BEFORE the password KDF runs, so
 *          a flood costs the service a table lookup, not Argon2id's memory
 *          and time; at most AMTCA_ARGON2_INFLIGHT KDFs run at once.  An
 *          unknown or disabled name is checked against a dummy hash, so
 *          the answer takes as long as for a wrong password.
 *   CERT   an admin or EST client by its certificate: the chain must verify
 *          under this CA (root and intermediate from the home; purpose TLS
 *          client), the leaf's serial must be a client's current serial in
 *          the records, the client active, and the certificate record valid
 *          (not revoked) and byte-equal to what was presented.
 *
 * Failures are counted in memory per client name per minute and logged
 * aggregated on stderr ("event=auth_fail client=NAME count=N") when the
 * minute turns over: never a write per request, never a password.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "ca/store.h"
#include "common/util.h"
#include "signer/clients.h"
#include "signer/core.h"

/* --- token buckets -------------------------------------------------------- */

#define RL_KEY_MAX 80

struct bucket {
	char key[RL_KEY_MAX];
	double tokens;
	unsigned long long last_ms;
};

struct sgn_ratelimit {
	pthread_mutex_t mu;
	unsigned burst;
	double per_ms;
	size_t max, n;
	struct bucket *b;
};

int
sgn_ratelimit_new(unsigned burst, unsigned per_min, size_t max,
    struct sgn_ratelimit **out)
{
	struct sgn_ratelimit *rl;

	*out = NULL;
	if (burst == 0 || per_min == 0 || max == 0)
		return amtca_fail(AMTCA_E_USAGE, "rate limit needs a burst, a "
		    "rate and room");
	if ((rl = calloc(1, sizeof(*rl))) == NULL ||
	    (rl->b = calloc(max, sizeof(*rl->b))) == NULL) {
		free(rl);
		return AMTCA_E_NOMEM;
	}
	pthread_mutex_init(&rl->mu, NULL);
	rl->burst = burst;
	rl->per_ms = (double)per_min / 60000.0;
	rl->max = max;
	*out = rl;
	return 0;
}

void
sgn_ratelimit_free(struct sgn_ratelimit *rl)
{
	if (rl == NULL)
		return;
	pthread_mutex_destroy(&rl->mu);
	free(rl->b);
	free(rl);
}

size_t
sgn_ratelimit_size(struct sgn_ratelimit *rl)
{
	size_t n;

	pthread_mutex_lock(&rl->mu);
	n = rl->n;
	pthread_mutex_unlock(&rl->mu);
	return n;
}

static void
refill(const struct sgn_ratelimit *rl, struct bucket *b,
    unsigned long long now)
{
	if (now > b->last_ms) {
		b->tokens += (double)(now - b->last_ms) * rl->per_ms;
		if (b->tokens > (double)rl->burst)
			b->tokens = (double)rl->burst;
	}
	b->last_ms = now > b->last_ms ? now : b->last_ms;
}

/* Room for one more bucket: forget full ones, else the longest idle. */
static void
make_room(struct sgn_ratelimit *rl, unsigned long long now)
{
	size_t i, oldest = 0;

	for (i = 0; i < rl->n;) {
		refill(rl, &rl->b[i], now);
		if (rl->b[i].tokens >= (double)rl->burst)
			rl->b[i] = rl->b[--rl->n];
		else
			i++;
	}
	if (rl->n < rl->max)
		return;
	for (i = 1; i < rl->n; i++)
		if (rl->b[i].last_ms < rl->b[oldest].last_ms)
			oldest = i;
	rl->b[oldest] = rl->b[--rl->n];
}

int
sgn_ratelimit_take(struct sgn_ratelimit *rl, const char *key,
    unsigned long long now_ms)
{
	struct bucket *b = NULL;
	size_t i;
	int ret;

	pthread_mutex_lock(&rl->mu);
	for (i = 0; i < rl->n; i++)
		if (strncmp(rl->b[i].key, key, RL_KEY_MAX - 1) == 0) {
			b = &rl->b[i];
			break;
		}
	if (b == NULL) {
		if (rl->n == rl->max)
			make_room(rl, now_ms);
		b = &rl->b[rl->n++];
		snprintf(b->key, sizeof(b->key), "%s", key);
		b->tokens = (double)rl->burst;
		b->last_ms = now_ms;
	} else
		refill(rl, b, now_ms);
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		ret = 0;
	} else
		ret = AMTCA_E_RATE;
	pthread_mutex_unlock(&rl->mu);
	return ret;
}

/* --- the state ------------------------------------------------------------ */

struct failslot {
	char name[AMTCA_CLIENT_NAME_MAX + 1];
	unsigned count;
};

/*
 * Leaves whose chain verified: the SHA-256 of the exact DER, its serial
 * and notAfter.  A kept-alive client presents the same certificate on
 * every request; verifying it again (parse, chain, signatures) cost more
 * than the issuance it asks for.  Only the chain's verdict is cached: the
 * record checks (current serial, active client, not revoked) run on every
 * request.
 */
#define VERIFIED_MAX 64

struct verified {
	unsigned char sha[32];
	char serial[2 * AMTCA_SERIAL_BYTES + 3];
	time_t not_after;
	int used;
};

struct sgn_auth_state {
	struct sgn_ratelimit *by_name, *by_peer;
	struct verified seen[VERIFIED_MAX];	/* under mu */
	size_t seen_next;
	X509_STORE *xs;			/* root trusted */
	STACK_OF(X509) *inter;		/* the home's intermediate(s) */
	pthread_mutex_t mu;		/* kdf_busy, dummy, fail* */
	pthread_cond_t kdf_cv;
	unsigned kdf_busy;
	char *dummy;			/* PHC of a random password */
	long fail_minute;
	struct failslot fail[AMTCA_AUTH_FAIL_SLOTS];
	size_t nfail;
	unsigned fail_other;		/* names beyond the slots */
};

/*
 * Authentication failures are counted per claimed name per minute and
 * written when the minute is over (the first authentication after it, or
 * shutdown): one log line and one "auth.fail" audit entry per name, so at
 * most AMTCA_AUTH_FAIL_SLOTS + 1 entries a minute however many requests
 * fail.  A request never writes or seals anything of its own.
 */
struct failbatch {
	long minute;
	size_t n;
	struct failslot v[AMTCA_AUTH_FAIL_SLOTS + 1];
};

/* Move the ended minute's counts into a new batch (NULL when none, or out
 * of memory: then the log lines are all there is).  mu held. */
static struct failbatch *
fail_take(struct sgn_auth_state *st)
{
	struct failbatch *b;
	size_t i;

	if (st->nfail == 0 && st->fail_other == 0)
		return NULL;
	for (i = 0; i < st->nfail; i++)
		fprintf(stderr, "event=auth_fail client=%s count=%u "
		    "minute=%ld\n", st->fail[i].name, st->fail[i].count,
		    st->fail_minute);
	if (st->fail_other > 0)
		fprintf(stderr, "event=auth_fail client=* count=%u minute=%ld\n",
		    st->fail_other, st->fail_minute);
	if ((b = calloc(1, sizeof(*b))) != NULL) {
		b->minute = st->fail_minute;
		memcpy(b->v, st->fail, st->nfail * sizeof(st->fail[0]));
		b->n = st->nfail;
		if (st->fail_other > 0) {
			snprintf(b->v[b->n].name, sizeof(b->v[b->n].name), "*");
			b->v[b->n++].count = st->fail_other;
		}
	}
	st->nfail = 0;
	st->fail_other = 0;
	return b;
}

/* Append the batch's entries, outside mu; frees it.  The actor is the
 * signer itself (nobody authenticated); the subject is the claimed name,
 * "-" for one that is no client name, "*" for names beyond the slots. */
static void
fail_write(struct sgn_core *c, struct failbatch *b)
{
	char detail[96];
	size_t i;
	int r;

	if (b == NULL)
		return;
	for (i = 0; c != NULL && c->h != NULL && c->h->store != NULL &&
	    i < b->n; i++) {
		snprintf(detail, sizeof(detail), "count=%u minute=%ld",
		    b->v[i].count, b->minute);
		if ((r = store_audit_append(c->h->store, "signer", "auth.fail",
		    strcmp(b->v[i].name, "?") == 0 ? "-" : b->v[i].name,
		    detail)) != 0) {
			fprintf(stderr, "event=audit_fail action=auth.fail "
			    "error=%d\n", r);
			break;
		}
	}
	free(b);
}

/* A new minute: take the old one's counts.  mu held. */
static struct failbatch *
fail_tick(struct sgn_auth_state *st, long minute)
{
	struct failbatch *b = NULL;

	if (minute != st->fail_minute) {
		b = fail_take(st);
		st->fail_minute = minute;
	}
	return b;
}

/* Count one failure for `name` (anything not a client name is "?"). */
static void
fail_note(struct sgn_core *c, struct sgn_auth_state *st, const char *name)
{
	struct failbatch *b;
	const char *n = name;
	size_t i, len;

	if (st == NULL)
		return;
	if (n == NULL || (len = strlen(n)) == 0 || len > AMTCA_CLIENT_NAME_MAX ||
	    strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") != len)
		n = "?";
	pthread_mutex_lock(&st->mu);
	b = fail_tick(st, (long)(time(NULL) / 60));
	for (i = 0; i < st->nfail; i++)
		if (strcmp(st->fail[i].name, n) == 0)
			break;
	if (i < st->nfail)
		st->fail[i].count++;
	else if (st->nfail < AMTCA_AUTH_FAIL_SLOTS) {
		snprintf(st->fail[i].name, sizeof(st->fail[i].name), "%s", n);
		st->fail[i].count = 1;
		st->nfail++;
	} else
		st->fail_other++;
	pthread_mutex_unlock(&st->mu);
	fail_write(c, b);
}


/* Push `x` (a reference taken) onto the untrusted intermediates. */
static int
push_inter(STACK_OF(X509) *sk, X509 *x)
{
	if (!X509_up_ref(x))
		return AMTCA_E_INTERNAL;
	if (!sk_X509_push(sk, x)) {
		X509_free(x);
		return AMTCA_E_NOMEM;
	}
	return 0;
}

/* 1 when the records mark the intermediate `x` revoked, 0 when not (or no
 * records), or a negative AMTCA_E_*. */
static int
inter_revoked(struct store *s, X509 *x)
{
	struct store_cacert *v = NULL;
	char id[CA_KEYID_HEX_MAX + 1];
	size_t n = 0, i;
	int r, ret = 0;

	if (s == NULL)
		return 0;
	if ((r = ca_keyid_hex(x, id)) != 0 ||
	    (r = store_cacert_list(s, &v, &n)) != 0)
		return r;
	for (i = 0; i < n; i++)
		if (strcmp(v[i].keyid, id) == 0 &&
		    strcmp(v[i].state, "revoked") == 0)
			ret = 1;
	store_cacerts_free(v, n);
	return ret;
}

int
sgn_core_auth_init(struct sgn_core *c)
{
	struct sgn_auth_state *st = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	c->auth = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return AMTCA_E_NOMEM;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->kdf_cv, NULL);
	st->fail_minute = (long)(time(NULL) / 60);
	if ((r = sgn_ratelimit_new(AMTCA_AUTH_NAME_BURST,
	    AMTCA_AUTH_NAME_PER_MIN, AMTCA_AUTH_BUCKETS_MAX, &st->by_name)) != 0 ||
	    (r = sgn_ratelimit_new(AMTCA_AUTH_PEER_BURST,
	    AMTCA_AUTH_PEER_PER_MIN, AMTCA_AUTH_BUCKETS_MAX, &st->by_peer)) != 0) {
		ret = r;
		goto out;
	}
	if ((st->inter = sk_X509_new_null()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	/* Without a chain (unit tests of Basic) CERT simply never succeeds. */
	if (c->h != NULL && c->h->root != NULL) {
		if ((st->xs = X509_STORE_new()) == NULL ||
		    !X509_STORE_add_cert(st->xs, c->h->root)) {
			ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot load the "
			    "root for client authentication");
			goto out;
		}
		if (c->h->inter != NULL && (r = push_inter(st->inter,
		    c->h->inter)) != 0) {
			ret = r;
			goto out;
		}
		/*
		 * Clients enrolled before a `ca rotate` keep authenticating
		 * during the overlap, under the intermediate that issued them,
		 * unless it was revoked (ca revoke-intermediate).
		 */
		for (size_t i = 0; i < c->h->nretired; i++) {
			if ((r = inter_revoked(c->h->store, c->h->retired[i])) < 0) {
				ret = r;
				goto out;
			}
			if (r == 0 && (r = push_inter(st->inter,
			    c->h->retired[i])) != 0) {
				ret = r;
				goto out;
			}
		}
	}
	c->auth = st;
	st = NULL;
	ret = 0;
out:
	if (st != NULL) {
		c->auth = st;
		sgn_core_auth_free(c);
	}
	return ret;
}

int
sgn_core_auth_limits(struct sgn_core *c, unsigned name_burst,
    unsigned name_per_min, unsigned peer_burst, unsigned peer_per_min)
{
	struct sgn_ratelimit *n = NULL, *p = NULL;
	int r;

	if (c->auth == NULL)
		return amtca_fail(AMTCA_E_USAGE, "authentication is not set up");
	if ((r = sgn_ratelimit_new(name_burst, name_per_min,
	    AMTCA_AUTH_BUCKETS_MAX, &n)) != 0 ||
	    (r = sgn_ratelimit_new(peer_burst, peer_per_min,
	    AMTCA_AUTH_BUCKETS_MAX, &p)) != 0) {
		sgn_ratelimit_free(n);
		return r;
	}
	sgn_ratelimit_free(c->auth->by_name);
	sgn_ratelimit_free(c->auth->by_peer);
	c->auth->by_name = n;
	c->auth->by_peer = p;
	return 0;
}

void
sgn_core_auth_free(struct sgn_core *c)
{
	struct sgn_auth_state *st = c->auth;

	if (st == NULL)
		return;
	struct failbatch *b;

	pthread_mutex_lock(&st->mu);
	b = fail_take(st);
	pthread_mutex_unlock(&st->mu);
	fail_write(c, b);
	sgn_ratelimit_free(st->by_name);
	sgn_ratelimit_free(st->by_peer);
	X509_STORE_free(st->xs);
	sk_X509_pop_free(st->inter, X509_free);
	free(st->dummy);
	pthread_cond_destroy(&st->kdf_cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
	c->auth = NULL;
}

/* --- passwords ------------------------------------------------------------ */

int
sgn_password_hash(const char *password, char **phc)
{
	unsigned char salt[AMTCA_ARGON2_SALT];
	char *enc = NULL;
	size_t len, pwlen;
	int rc, ret = AMTCA_E_INTERNAL;

	*phc = NULL;
	if (password == NULL || (pwlen = strlen(password)) == 0 ||
	    pwlen > AMTCA_SECRET_MAX)
		return amtca_fail(AMTCA_E_USAGE, "a password has 1 to %d bytes",
		    AMTCA_SECRET_MAX);
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return amtca_fail_ssl(AMTCA_E_INTERNAL, "CSPRNG failure");
	len = argon2_encodedlen(AMTCA_ARGON2_T, AMTCA_ARGON2_M_KIB,
	    AMTCA_ARGON2_P, sizeof(salt), AMTCA_ARGON2_HASH, Argon2_id);
	if (len > AMTCA_ARGON2_PHC_MAX) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "Argon2id hash of %zu bytes",
		    len);
		goto out;
	}
	if ((enc = malloc(len)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((rc = argon2id_hash_encoded(AMTCA_ARGON2_T, AMTCA_ARGON2_M_KIB,
	    AMTCA_ARGON2_P, password, pwlen, salt, sizeof(salt),
	    AMTCA_ARGON2_HASH, enc, len)) != ARGON2_OK) {
		ret = amtca_fail(rc == ARGON2_MEMORY_ALLOCATION_ERROR ?
		    AMTCA_E_NOMEM : AMTCA_E_INTERNAL, "Argon2id: %s",
		    argon2_error_message(rc));
		goto out;
	}
	*phc = enc;
	enc = NULL;
	ret = 0;
out:
	free(enc);
	OPENSSL_cleanse(salt, sizeof(salt));
	return ret;
}

/* argon2id_verify() under the KDF cap: 1 match, 0 no match or error. */
static int
kdf_verify(struct sgn_auth_state *st, const char *phc, const char *pw)
{
	int ok;

	pthread_mutex_lock(&st->mu);
	while (st->kdf_busy >= AMTCA_ARGON2_INFLIGHT)
		pthread_cond_wait(&st->kdf_cv, &st->mu);
	st->kdf_busy++;
	pthread_mutex_unlock(&st->mu);
	/* libargon2 compares the tags in constant time. */
	ok = argon2id_verify(phc, pw, strlen(pw)) == ARGON2_OK;
	pthread_mutex_lock(&st->mu);
	st->kdf_busy--;
	pthread_cond_signal(&st->kdf_cv);
	pthread_mutex_unlock(&st->mu);
	return ok;
}

/* A hash nobody's password matches, made once. */
static const char *
dummy_hash(struct sgn_auth_state *st)
{
	unsigned char rnd[24];
	char pw[2 * sizeof(rnd) + 1], *h = NULL;
	const char *ret;
	size_t i;

	pthread_mutex_lock(&st->mu);
	ret = st->dummy;
	pthread_mutex_unlock(&st->mu);
	if (ret != NULL)
		return ret;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return NULL;
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
	if (sgn_password_hash(pw, &h) != 0)
		h = NULL;
	OPENSSL_cleanse(pw, sizeof(pw));
	pthread_mutex_lock(&st->mu);
	if (st->dummy == NULL)
		st->dummy = h;
	else
		free(h);
	ret = st->dummy;
	pthread_mutex_unlock(&st->mu);
	return ret;
}

/* --- allow lists ---------------------------------------------------------- */

int
sgn_allow_check(const char *entry, const struct ca_policy *p,
    char out[AMTCA_FQDN_MAX + 1])
{
	char why[256];
	int r;

	if (entry != NULL && entry[0] == '*')
		return amtca_fail(AMTCA_E_FQDN, "allow entry \"%.64s\": give the "
		    "suffix itself (\"example.test\" covers every name below "
		    "it), not a wildcard", entry);
	if ((r = ca_fqdn_check(entry, p, out)) != 0) {
		/* The detail lives in the buffer amtca_fail() writes. */
		snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
		return amtca_fail(r, "allow entry: %s", why);
	}
	return 0;
}

int
sgn_allow_match(const char *entry, const char *fqdn)
{
	size_t el, fl;

	if (entry == NULL || fqdn == NULL || (el = strlen(entry)) == 0)
		return 0;
	fl = strlen(fqdn);
	if (fl == el)
		return strcasecmp(fqdn, entry) == 0;
	/* Whole labels: the character before the suffix is a dot. */
	return fl > el + 1 && fqdn[fl - el - 1] == '.' &&
	    strcasecmp(fqdn + fl - el, entry) == 0;
}

int
sgn_core_allows(const struct sgn_client *cl, const char *fqdn)
{
	size_t i;

	if (cl == NULL || fqdn == NULL || fqdn[0] == '\0')
		return 0;
	for (i = 0; i < cl->nallow; i++)
		if (sgn_allow_match(cl->allow[i], fqdn))
			return 1;
	return 0;
}

/* --- authentication ------------------------------------------------------- */

/* As sgn_client_clear() (core.c), which this file does not depend on. */
static void
client_clear(struct sgn_client *cl)
{
	size_t i;

	free(cl->name);
	free(cl->serial);
	for (i = 0; i < cl->nallow; i++)
		free(cl->allow[i]);
	free(cl->allow);
	memset(cl, 0, sizeof(*cl));
}

/* The record's allow text ("a b c") into out->allow. */
static int
allow_split(const char *text, struct sgn_client *out)
{
	const char *p = text, *e;
	size_t n = 0, len;

	if (text == NULL)
		return 0;
	if ((out->allow = calloc(AMTCA_CLIENT_ALLOW_MAX, sizeof(char *))) == NULL)
		return AMTCA_E_NOMEM;
	while (*p != '\0' && n < AMTCA_CLIENT_ALLOW_MAX) {
		p += strspn(p, " ");
		if (*p == '\0')
			break;
		len = strcspn(p, " ");
		e = p + len;
		if ((out->allow[n] = strndup(p, len)) == NULL)
			return AMTCA_E_NOMEM;
		out->nallow = ++n;
		p = e;
	}
	return 0;
}

static int
client_fill(const struct store_client *rec, const char *serial,
    struct sgn_client *out)
{
	if ((out->name = strdup(rec->name)) == NULL ||
	    (serial != NULL && (out->serial = strdup(serial)) == NULL))
		return AMTCA_E_NOMEM;
	out->roles = rec->roles & (SGN_ROLE_ADMIN | SGN_ROLE_EST);
	return (rec->roles & STORE_CLIENT_EST) ? allow_split(rec->allow, out) : 0;
}

static int
basic_auth(struct sgn_core *c, const struct sgn_who *who,
    struct sgn_client *out)
{
	struct sgn_auth_state *st = c->auth;
	struct store_client *rec = NULL;
	unsigned long long now = (unsigned long long)amtca_now_ms();
	const char *phc;
	char key[RL_KEY_MAX];
	int r, ok, usable, ret = AMTCA_E_AUTH;

	if (who->user == NULL || who->password == NULL ||
	    who->user[0] == '\0' || strlen(who->user) > AMTCA_CLIENT_NAME_MAX ||
	    strlen(who->password) > AMTCA_SECRET_MAX) {
		ret = amtca_fail(AMTCA_E_AUTH, "no usable credentials");
		goto fail;
	}
	/* Before anything costs: the peer first (one address trying many
	 * names), then the name (many addresses trying one name). */
	if (who->peer != NULL) {
		snprintf(key, sizeof(key), "p:%s", who->peer);
		if (sgn_ratelimit_take(st->by_peer, key, now) != 0) {
			ret = amtca_fail(AMTCA_E_RATE, "too many attempts from "
			    "this address; try again later");
			goto fail;
		}
	}
	snprintf(key, sizeof(key), "n:%s", who->user);
	if (sgn_ratelimit_take(st->by_name, key, now) != 0) {
		ret = amtca_fail(AMTCA_E_RATE, "too many attempts for this "
		    "client; try again later");
		goto fail;
	}
	r = store_client_get(c->h->store, who->user, &rec);
	if (r != 0 && r != AMTCA_E_NOT_FOUND) {
		ret = r;
		goto out;
	}
	usable = rec != NULL && rec->removed_at == 0 &&
	    (rec->roles & STORE_CLIENT_EST) && rec->pwhash != NULL;
	phc = usable ? rec->pwhash : dummy_hash(st);
	/* The KDF runs either way: unknown names take as long as known. */
	ok = phc != NULL && kdf_verify(st, phc, who->password);
	if (!usable || !ok) {
		ret = amtca_fail(AMTCA_E_AUTH, "wrong client name or password");
		goto fail;
	}
	if ((r = client_fill(rec, NULL, out)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
	goto out;
fail:
	fail_note(c, st, who->user);
out:
	store_client_free(rec);
	return ret;
}

/* A leaf verified before and not expired: its serial into out. */
static int
verified_get(struct sgn_auth_state *st, const unsigned char sha[32],
    char *serial, size_t len)
{
	time_t now = time(NULL);
	size_t i;
	int hit = 0;

	pthread_mutex_lock(&st->mu);
	for (i = 0; i < VERIFIED_MAX && !hit; i++)
		if (st->seen[i].used && st->seen[i].not_after > now &&
		    memcmp(st->seen[i].sha, sha, 32) == 0) {
			snprintf(serial, len, "%s", st->seen[i].serial);
			hit = 1;
		}
	pthread_mutex_unlock(&st->mu);
	return hit;
}

static void
verified_put(struct sgn_auth_state *st, const unsigned char sha[32],
    const char *serial, X509 *leaf)
{
	struct verified *v;
	struct tm tm;
	time_t na;

	if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1)
		return;
	na = timegm(&tm);
	if (na <= 0 || strlen(serial) >= sizeof(v->serial))
		return;
	pthread_mutex_lock(&st->mu);
	v = &st->seen[st->seen_next++ % VERIFIED_MAX];
	memcpy(v->sha, sha, 32);
	snprintf(v->serial, sizeof(v->serial), "%s", serial);
	v->not_after = na;
	v->used = 1;
	pthread_mutex_unlock(&st->mu);
}

static int
cert_auth(struct sgn_core *c, const struct sgn_who *who,
    struct sgn_client *out)
{
	struct sgn_auth_state *st = c->auth;
	struct store_client *rec = NULL;
	struct store_cert *sc = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *leaf = NULL;
	const unsigned char *p;
	const char *who_name = NULL;
	unsigned char sha[32];
	char *serial = NULL, cached[2 * AMTCA_SERIAL_BYTES + 3];
	int r, ret = AMTCA_E_AUTH;

	if (who->ncert < 1 || who->ncert > SGN_CHAIN_MAX ||
	    who->cert[0] == NULL || who->certlen[0] == 0 ||
	    who->certlen[0] > AMTCA_CERT_FILE_MAX) {
		ret = amtca_fail(AMTCA_E_AUTH, "no client certificate");
		goto fail;
	}
	if (!EVP_Digest(who->cert[0], who->certlen[0], sha, NULL, EVP_sha256(),
	    NULL)) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot hash");
		goto out;
	}
	if (verified_get(st, sha, cached, sizeof(cached))) {
		if ((serial = strdup(cached)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		goto records;
	}
	p = who->cert[0];
	if ((leaf = d2i_X509(NULL, &p, (long)who->certlen[0])) == NULL ||
	    p != who->cert[0] + who->certlen[0]) {
		ERR_clear_error();
		ret = amtca_fail(AMTCA_E_AUTH, "the client certificate does not "
		    "parse");
		goto fail;
	}
	/* Only our own chain: whatever else the client sent is ignored. */
	if (st->xs == NULL || (ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, st->xs, leaf, st->inter) ||
	    !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) ||
	    X509_verify_cert(ctx) != 1) {
		ret = amtca_fail(AMTCA_E_AUTH, "the client certificate does not "
		    "verify under this CA: %s", ctx != NULL ?
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)) :
		    "no chain");
		ERR_clear_error();
		goto fail;
	}
	if ((r = ca_serial_hex(X509_get0_serialNumber(leaf), &serial)) != 0) {
		ret = r;
		goto out;
	}
	verified_put(st, sha, serial, leaf);
records:
	r = store_client_by_serial(c->h->store, serial, &rec);
	if (r == AMTCA_E_NOT_FOUND || (r == 0 && rec->removed_at != 0)) {
		if (rec != NULL)
			who_name = rec->name;
		ret = amtca_fail(AMTCA_E_AUTH, "certificate %s is not an active "
		    "client's current certificate", serial);
		goto fail;
	}
	if (r != 0) {
		ret = r;
		goto out;
	}
	who_name = rec->name;
	r = store_cert_get(c->h->store, serial, &sc);
	if (r != 0 && r != AMTCA_E_NOT_FOUND) {
		ret = r;
		goto out;
	}
	if (r != 0 || sc->status == NULL || strcmp(sc->status, "valid") != 0 ||
	    sc->der_len != who->certlen[0] ||
	    CRYPTO_memcmp(sc->der, who->cert[0], sc->der_len) != 0) {
		ret = amtca_fail(AMTCA_E_AUTH, "certificate %s is revoked or not "
		    "the one recorded", serial);
		goto fail;
	}
	if ((r = client_fill(rec, serial, out)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
	goto out;
fail:
	fail_note(c, st, who_name != NULL ? who_name : "?");
out:
	X509_STORE_CTX_free(ctx);
	X509_free(leaf);
	free(serial);
	store_client_free(rec);
	store_cert_free(sc);
	return ret;
}

int
sgn_core_auth(struct sgn_core *c, const struct sgn_who *who,
    struct sgn_client *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	if (who == NULL)
		return amtca_fail(AMTCA_E_AUTH, "no requester");
	if (c->auth != NULL) {
		struct failbatch *b;

		pthread_mutex_lock(&c->auth->mu);
		b = fail_tick(c->auth, (long)(time(NULL) / 60));
		pthread_mutex_unlock(&c->auth->mu);
		fail_write(c, b);
	}
	switch (who->kind) {
	case SGN_WHO_LOCAL:
		if ((out->name = strdup(c->local_name != NULL ?
		    c->local_name : "local")) == NULL)
			return AMTCA_E_NOMEM;
		out->roles = SGN_ROLE_LOCAL;
		return 0;
	case SGN_WHO_BASIC:
	case SGN_WHO_CERT:
		if (c->auth == NULL || c->h == NULL || c->h->store == NULL)
			return amtca_fail(AMTCA_E_AUTH, "client authentication "
			    "is not set up");
		r = who->kind == SGN_WHO_BASIC ? basic_auth(c, who, out) :
		    cert_auth(c, who, out);
		if (r != 0)
			client_clear(out);
		return r;
	default:
		return amtca_fail(AMTCA_E_AUTH, "unknown kind of requester");
	}
}

int
sgn_core_client_rebind(struct sgn_core *c, const struct sgn_client *cl,
    const char *serial)
{
	if (cl == NULL || cl->name == NULL || cl->serial == NULL ||
	    (cl->roles & SGN_ROLE_EST) == 0)
		return amtca_fail(AMTCA_E_USAGE, "only a certificate-"
		    "authenticated EST client is rebound");
	/* The "client.rebind" entry names the client itself. */
	return store_client_bind_as(c->h->store, cl->name, serial, cl->name);
}
