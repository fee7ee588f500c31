/*
 * signer/core.c: the signer's side of every request, and sgn_local().
 *
 * Whatever the transport, a request ends here: sgn_local() calls these
 * functions directly, the signer process (proc.c) calls them for each
 * decoded message.  The checks are therefore the same in both modes; what
 * differs is who SGN_WHO_LOCAL is.  In sgn_local() it is the operator's
 * own command (init, issue, revoke, admin add: the operator holds the PIN
 * anyway); in the signer process it is a front end (enroll, fleet, serve)
 * that parses outside input and is trusted with less:
 *
 *   profile ADMIN            the operator only (never a front end)
 *   profile AMT, SERVICE     LOCAL (operator or front end)
 *   profile EST              an authenticated EST client, for names its
 *                            record allows, never an AMT device's name
 *   revoke                   ADMIN clients and the operator: any reason;
 *                            a front end: superseded (4) for an AMT leaf
 *                            whose device keeps another valid leaf (so it
 *                            can never leave a device without one), and
 *                            cessationOfOperation (5) for the leaves of a
 *                            device the operational state records as
 *                            retired (docs/PROTOCOL.signer)
 */
#include <ctype.h>
#include <stdio.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/util.h"
#include "enroll/enroll.h"
#include "signer/proc.h"

#define CRL_SUPERSEDED 4
#define CRL_CESSATION 5

void
sgn_client_clear(struct sgn_client *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->name);
	free(c->serial);
	for (i = 0; i < c->nallow; i++)
		free(c->allow[i]);
	free(c->allow);
	memset(c, 0, sizeof(*c));
}

int
sgn_user_at_host(uid_t uid, char **out)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096], host[256];

	*out = NULL;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL) {
		if (asprintf(out, "%s@%s", pw.pw_name, host) == -1)
			*out = NULL;
	} else if (asprintf(out, "uid%lu@%s", (unsigned long)uid, host) == -1)
		*out = NULL;
	return *out == NULL ? AMTCA_E_NOMEM : 0;
}

int
sgn_core_open(const char *dir, int frontend, const char *local_name,
    struct sgn_core **out)
{
	struct sgn_core *c = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	c->frontend = frontend;
	if ((r = home_open(dir, HOME_STORE | HOME_SIGNER, &c->h)) != 0) {
		ret = r;
		goto out;
	}
	if (local_name != NULL)
		c->local_name = strdup(local_name);
	else if ((r = sgn_user_at_host(getuid(), &c->local_name)) != 0) {
		ret = r;
		goto out;
	}
	if (c->local_name == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = sgn_core_auth_init(c)) != 0) {
		ret = r;
		goto out;
	}
	c->auth_up = 1;
	if ((r = sgn_core_cred_init(c)) != 0) {
		ret = r;
		goto out;
	}
	c->cred_up = 1;
	if ((r = sgn_ratelimit_new(AMTCA_SGN_NOTE_BURST,
	    AMTCA_SGN_NOTE_PER_MIN, AMTCA_AUTH_BUCKETS_MAX, &c->notes)) != 0) {
		ret = r;
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	sgn_core_free(c);
	return ret;
}

void
sgn_core_free(struct sgn_core *c)
{
	if (c == NULL)
		return;
	if (c->cred_up)
		sgn_core_cred_free(c);
	if (c->auth_up)
		sgn_core_auth_free(c);
	sgn_ratelimit_free(c->notes);
	if (!c->borrowed)
		home_free(c->h);
	free(c->local_name);
	free(c);
}

/* Is `fqdn` an AMT device's name: a device record in the operational
 * state, or a recorded certificate bound to a device? */
static int
is_amt_name(struct sgn_core *c, const char *fqdn, int *yes)
{
	struct store_device *d = NULL;
	struct store_cert *sc = NULL;
	size_t n = 0, i;
	int r;

	*yes = 0;
	if ((r = store_device_get(c->h->state, fqdn, &d)) == 0) {
		store_device_free(d);
		*yes = 1;
		return 0;
	}
	if (r != AMTCA_E_NOT_FOUND)
		return r;
	amtca_err_clear();
	if ((r = store_cert_list_fqdn(c->h->store, fqdn, &sc, &n)) != 0)
		return r;
	for (i = 0; i < n; i++)
		if (sc[i].device != NULL && sc[i].device[0] != '\0')
			*yes = 1;
	store_certs_free(sc, n);
	return 0;
}

static int
cert_expired(const struct store_cert *sc, time_t now)
{
	return sc->not_after != 0 && sc->not_after < now;
}

static int
cert_valid_now(const struct store_cert *sc, time_t now)
{
	return sc->status != NULL && strcmp(sc->status, "valid") == 0 &&
	    !cert_expired(sc, now);
}

/* Reenroll: the client authenticated with its current valid certificate,
 * and asks for the same name again. */
static int
reenroll_check(struct sgn_core *c, const struct sgn_who *who,
    const struct sgn_client *cl, const char *fqdn)
{
	struct store_cert *sc = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (who->kind != SGN_WHO_CERT || cl->serial == NULL) {
		ret = amtca_fail(AMTCA_E_AUTH, "reenrollment needs the client's "
		    "current certificate (TLS client authentication)");
		goto out;
	}
	if ((r = store_cert_get(c->h->store, cl->serial, &sc)) != 0) {
		ret = amtca_fail(AMTCA_E_AUTH, "the client certificate %s is not "
		    "one of ours", cl->serial);
		goto out;
	}
	if (!cert_valid_now(sc, time(NULL))) {
		ret = amtca_fail(AMTCA_E_AUTH, "the client certificate %s is %s",
		    sc->serial, cert_expired(sc, time(NULL)) ? "expired" :
		    "revoked");
		goto out;
	}
	if (sc->fqdn == NULL || strcasecmp(sc->fqdn, fqdn) != 0) {
		ret = amtca_fail(AMTCA_E_DENIED, "reenrollment keeps the names "
		    "of certificate %s (%s), not %s", sc->serial,
		    sc->fqdn ? sc->fqdn : "none", fqdn);
		goto out;
	}
	ret = 0;
out:
	store_cert_free(sc);
	return ret;
}

int
sgn_core_issue(struct sgn_core *c, const struct sgn_who *who,
    const struct sgn_issue_req *req, unsigned char **der, size_t *derlen,
    char **serial)
{
	struct sgn_client cl;
	struct ca_csr *csr = NULL;
	struct ca_request cr;
	char fq[AMTCA_FQDN_MAX + 1];
	int r, amt, ret = AMTCA_E_INTERNAL;

	*der = NULL;
	*derlen = 0;
	if (serial != NULL)
		*serial = NULL;
	memset(&cl, 0, sizeof(cl));
	if (req == NULL || req->fqdn == NULL || req->csr == NULL ||
	    req->csrlen == 0) {
		ret = amtca_fail(AMTCA_E_USAGE, "an issuance request needs a "
		    "name and a CSR");
		goto out;
	}
	if ((r = sgn_core_auth(c, who, &cl)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = ca_fqdn_check(req->fqdn, &c->h->policy, fq)) != 0) {
		ret = r;
		goto out;
	}
	memset(&cr, 0, sizeof(cr));
	switch (req->profile) {
	case SGN_PROFILE_AMT:
		if ((cl.roles & SGN_ROLE_LOCAL) == 0) {
			ret = amtca_fail(AMTCA_E_DENIED, "only the enrollment "
			    "engine may obtain an AMT certificate");
			goto out;
		}
		if (req->device == NULL || strcasecmp(req->device, fq) != 0) {
			ret = amtca_fail(AMTCA_E_DENIED, "an AMT certificate is "
			    "bound to the device it names");
			goto out;
		}
		cr.profile = CA_PROFILE_WEBSERVER;
		cr.device = fq;
		break;
	case SGN_PROFILE_SERVICE:
		if ((cl.roles & SGN_ROLE_LOCAL) == 0) {
			ret = amtca_fail(AMTCA_E_DENIED, "only the service itself "
			    "may obtain its certificate");
			goto out;
		}
		cr.profile = CA_PROFILE_SERVICE;
		break;
	case SGN_PROFILE_ADMIN:
		if ((cl.roles & SGN_ROLE_LOCAL) == 0 || c->frontend) {
			ret = amtca_fail(AMTCA_E_DENIED, "admin certificates are "
			    "issued by the operator's 'amtca admin add' only");
			goto out;
		}
		cr.profile = CA_PROFILE_ADMIN;
		break;
	case SGN_PROFILE_EST:
		if ((cl.roles & SGN_ROLE_EST) == 0) {
			ret = amtca_fail(AMTCA_E_DENIED, "%s is not an EST client",
			    cl.name ? cl.name : "the requester");
			goto out;
		}
		if (!sgn_core_allows(&cl, fq)) {
			ret = amtca_fail(AMTCA_E_DENIED, "%s may not obtain a "
			    "certificate for %s", cl.name, fq);
			goto out;
		}
		if ((r = is_amt_name(c, fq, &amt)) != 0) {
			ret = r;
			goto out;
		}
		if (amt) {
			ret = amtca_fail(AMTCA_E_DENIED, "%s is an AMT device's "
			    "name; it is never issued over EST", fq);
			goto out;
		}
		if (req->reenroll && (r = reenroll_check(c, who, &cl, fq)) != 0) {
			ret = r;
			goto out;
		}
		cr.profile = CA_PROFILE_EST;
		break;
	default:
		ret = amtca_fail(AMTCA_E_USAGE, "unknown certificate profile %d",
		    (int)req->profile);
		goto out;
	}
	if (req->device != NULL && req->profile != SGN_PROFILE_AMT) {
		ret = amtca_fail(AMTCA_E_DENIED, "only AMT certificates are bound "
		    "to a device");
		goto out;
	}
	if ((r = ca_csr_parse(req->csr, req->csrlen, &csr)) != 0) {
		ret = r;
		goto out;
	}
	cr.fqdn = fq;
	cr.csr = csr;
	cr.ips = req->ips;
	cr.nips = req->nips;
	cr.days = req->days;
	cr.digest = (enum ca_digest)req->digest;	/* ca checks the range */
	cr.requester = cl.name;
	cr.actor = cl.name;		/* the audit entry's actor (docs/audit.md) */
	if ((r = ca_issue_der(c->h->ca, &cr, der, derlen, serial)) != 0) {
		ret = r;
		goto out;
	}
	/* The renewed certificate is the client's current one from now on
	 * (auth.c authenticates only the recorded serial). */
	if (req->profile == SGN_PROFILE_EST && req->reenroll && serial != NULL &&
	    (r = sgn_core_client_rebind(c, &cl, *serial)) != 0)
		fprintf(stderr, "event=est_rebind_failed client=%s serial=%s "
		    "error=\"%s\"\n", cl.name, *serial, amtca_errmsg(r));
	ret = 0;
out:
	ca_csr_free(csr);
	sgn_client_clear(&cl);
	return ret;
}

int
sgn_core_cert_get(struct sgn_core *c, const char *serial,
    struct store_cert **out)
{
	*out = NULL;
	if (serial == NULL || *serial == '\0')
		return amtca_fail(AMTCA_E_USAGE, "no serial given");
	return store_cert_get(c->h->store, serial, out);
}

static int
query_match(const struct sgn_cert_query *q, const struct store_cert *sc,
    time_t now)
{
	if (q->fqdn != NULL && (sc->fqdn == NULL || strcasecmp(q->fqdn,
	    sc->fqdn) != 0))
		return 0;
	if (q->device != NULL && (sc->device == NULL ||
	    strcasecmp(q->device, sc->device) != 0))
		return 0;
	if (q->status != NULL) {
		if (strcmp(q->status, "expired") == 0) {
			if (sc->status == NULL || strcmp(sc->status, "valid") != 0 ||
			    !cert_expired(sc, now))
				return 0;
		} else if (strcmp(q->status, "valid") == 0) {
			if (!cert_valid_now(sc, now))
				return 0;
		} else if (sc->status == NULL || strcmp(q->status, sc->status) != 0)
			return 0;
	}
	return 1;
}

/* Serials are uppercase hex without leading zeros beyond the encoding:
 * compare by length first, then as text, which is numeric order. */
static int
serial_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 1 && *a == '0')
		a++, la--;
	while (lb > 1 && *b == '0')
		b++, lb--;
	if (la != lb)
		return la < lb ? -1 : 1;
	return strcasecmp(a, b);
}

static int
cert_by_serial(const void *x, const void *y)
{
	return serial_cmp(((const struct store_cert *)x)->serial,
	    ((const struct store_cert *)y)->serial);
}

int
sgn_core_cert_list(struct sgn_core *c, const struct sgn_cert_query *q,
    struct store_cert **out, size_t *n)
{
	struct store_cert *all = NULL;
	size_t nall = 0, i, k = 0;
	time_t now = time(NULL);
	int r, paging, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*n = 0;
	if (q == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "no certificate query");
		goto out;
	}
	if (q->status != NULL && strcmp(q->status, "valid") != 0 &&
	    strcmp(q->status, "revoked") != 0 && strcmp(q->status, "expired") != 0) {
		ret = amtca_fail(AMTCA_E_USAGE, "status is valid, revoked or "
		    "expired, not '%s'", q->status);
		goto out;
	}
	/* The narrowest indexed list the store has. */
	if (q->device != NULL)
		r = store_cert_list_device(c->h->store, q->device, &all, &nall);
	else if (q->fqdn != NULL)
		r = store_cert_list_fqdn(c->h->store, q->fqdn, &all, &nall);
	else
		r = store_cert_list(c->h->store, &all, &nall);
	if (r != 0) {
		ret = r;
		goto out;
	}
	paging = q->after != NULL || q->limit != 0;
	if (paging && nall > 1)
		qsort(all, nall, sizeof(*all), cert_by_serial);
	for (i = 0; i < nall; i++) {
		int keep = query_match(q, &all[i], now) && (q->after == NULL ||
		    serial_cmp(all[i].serial, q->after) > 0) &&
		    (q->limit == 0 || k < q->limit);

		if (keep && !q->with_der) {
			free(all[i].der);
			all[i].der = NULL;
			all[i].der_len = 0;
		}
		if (!keep) {
			store_cert_clear(&all[i]);
			continue;
		}
		if (k != i)
			all[k] = all[i];
		k++;
	}
	if (k == 0) {
		free(all);
		all = NULL;
	}
	*out = all;
	*n = k;
	all = NULL;
	nall = 0;
	ret = 0;
out:
	store_certs_free(all, nall);
	return ret;
}

/* May a front end (LOCAL over the socket) revoke `sc` for `reason`? */
static int
frontend_may_revoke(struct sgn_core *c, const struct store_cert *sc, int reason)
{
	struct store_cert *mine = NULL;
	struct store_device *d = NULL;
	size_t n = 0, i;
	time_t now = time(NULL);
	int ok = 0;

	if (sc->device == NULL || sc->device[0] == '\0')
		goto out;
	if (reason == CRL_SUPERSEDED) {
		if (store_cert_list_device(c->h->store, sc->device, &mine, &n) != 0)
			goto out;
		for (i = 0; i < n; i++)
			if (strcasecmp(mine[i].serial, sc->serial) != 0 &&
			    cert_valid_now(&mine[i], now))
				ok = 1;
	} else if (reason == CRL_CESSATION) {
		if (store_device_get(c->h->state, sc->device, &d) != 0)
			goto out;
		ok = d->state != NULL && strcmp(d->state, "retired") == 0;
	}
out:
	amtca_err_clear();
	store_certs_free(mine, n);
	store_device_free(d);
	return ok;
}

int
sgn_core_revoke(struct sgn_core *c, const struct sgn_who *who,
    const char *serial, int reason, struct store_cert **out, int *was)
{
	struct sgn_client cl;
	struct store_cert *before = NULL, *after = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (out != NULL)
		*out = NULL;
	if (was != NULL)
		*was = 0;
	memset(&cl, 0, sizeof(cl));
	if (serial == NULL || *serial == '\0') {
		ret = amtca_fail(AMTCA_E_USAGE, "no serial given");
		goto out;
	}
	if ((r = sgn_core_auth(c, who, &cl)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = store_cert_get(c->h->store, serial, &before)) != 0) {
		ret = r == AMTCA_E_NOT_FOUND ? amtca_fail(r, "no certificate "
		    "with serial %s in this CA", serial) : r;
		goto out;
	}
	if ((cl.roles & SGN_ROLE_ADMIN) != 0 ||
	    ((cl.roles & SGN_ROLE_LOCAL) != 0 && !c->frontend))
		;
	else if ((cl.roles & SGN_ROLE_LOCAL) != 0) {
		if (!frontend_may_revoke(c, before, reason)) {
			ret = amtca_fail(AMTCA_E_DENIED, "a front end may only "
			    "mark a replaced AMT leaf superseded or a retired "
			    "device's leaf ceased; revoke %s with 'amtca revoke'",
			    before->serial);
			goto out;
		}
	} else {
		ret = amtca_fail(AMTCA_E_DENIED, "%s may not revoke certificates",
		    cl.name ? cl.name : "the requester");
		goto out;
	}
	if ((r = store_cert_revoke_as(c->h->store, serial, reason, time(NULL),
	    cl.name)) != 0 ||
	    (r = store_cert_get(c->h->store, serial, &after)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = cred_note_revocation(c->h->state, after)) != 0) {
		ret = r;
		goto out;
	}
	if (was != NULL)
		*was = before->status != NULL && strcmp(before->status, "revoked") == 0;
	if (out != NULL) {
		*out = after;
		after = NULL;
	}
	ret = 0;
out:
	store_cert_free(before);
	store_cert_free(after);
	sgn_client_clear(&cl);
	return ret;
}

int
sgn_core_crl(struct sgn_core *c, const char *issuer, unsigned char **der,
    size_t *len)
{
	struct ca *ca = NULL;
	int r;

	*der = NULL;
	*len = 0;
	/* The current intermediate, or a retired one still in its overlap:
	 * each signs its own CRL over what it issued (docs/rotation.md). */
	if ((r = home_ca_by_keyid(c->h, issuer, &ca, NULL)) != 0)
		return r;
	return ca_crl_create(ca, AMTCA_SGN_CRL_DAYS, 0, der, len);
}

/* --- the public API: local core or the process ------------------------ */

int
sgn_local(const char *home, struct sgn **out)
{
	struct sgn *s = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = sgn_core_open(home, 0, NULL, &s->core)) != 0) {
		ret = r;
		goto out;
	}
	*out = s;
	s = NULL;
	ret = 0;
out:
	sgn_close(s);
	return ret;
}

int
sgn_local_home(struct home *h, struct sgn **out)
{
	struct sgn *s = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->core = calloc(1, sizeof(*s->core))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	s->core->h = h;
	s->core->borrowed = 1;
	if ((r = sgn_user_at_host(getuid(), &s->core->local_name)) != 0 ||
	    (r = sgn_core_auth_init(s->core)) != 0) {
		ret = r;
		goto out;
	}
	s->core->auth_up = 1;
	if ((r = sgn_core_cred_init(s->core)) != 0) {
		ret = r;
		goto out;
	}
	s->core->cred_up = 1;
	*out = s;
	s = NULL;
	ret = 0;
out:
	sgn_close(s);
	return ret;
}

void
sgn_close(struct sgn *s)
{
	if (s == NULL)
		return;
	if (s->core != NULL)
		sgn_core_free(s->core);
	else if (s->conn != NULL || s->pid != 0)
		sgn_proc_close(s);
	free(s);
}

long
sgn_pid(const struct sgn *s)
{
	return s != NULL ? (long)s->pid : 0;
}

/* The reply's result, with its message as this thread's detail. */
static int
reply_result(const struct sgn_msg *rep)
{
	if (rep->result == 0)
		return 0;
	if (rep->result >= 0 || rep->result < -1000)
		return amtca_fail(AMTCA_E_IPC, "the signer sent result %d",
		    (int)rep->result);
	return amtca_fail(rep->result, "%s", rep->errmsg != NULL &&
	    *rep->errmsg != '\0' ? rep->errmsg : amtca_strerror(rep->result));
}

int
sgn_auth(struct sgn *s, const struct sgn_who *who, struct sgn_client *out)
{
	struct sgn_msg q, a;
	int r;

	memset(out, 0, sizeof(*out));
	if (s->core != NULL)
		return sgn_core_auth(s->core, who, out);
	sgn_msg_init(&q, SGN_MSG_AUTH, 0);
	sgn_msg_init(&a, 0, 0);
	q.who = *who;
	if ((r = sgn_proc_call(s, &q, &a)) == 0 && (r = reply_result(&a)) == 0) {
		*out = a.client;
		memset(&a.client, 0, sizeof(a.client));
	}
	sgn_msg_clear(&a);
	return r;
}

int
sgn_issue(struct sgn *s, const struct sgn_who *who,
    const struct sgn_issue_req *req, unsigned char **der, size_t *derlen,
    char **serial)
{
	struct sgn_msg q, a;
	int r;

	*der = NULL;
	*derlen = 0;
	if (serial != NULL)
		*serial = NULL;
	if (s->core != NULL)
		return sgn_core_issue(s->core, who, req, der, derlen, serial);
	sgn_msg_init(&q, SGN_MSG_ISSUE, 0);
	sgn_msg_init(&a, 0, 0);
	q.who = *who;
	q.issue = *req;
	if ((r = sgn_proc_call(s, &q, &a)) == 0 && (r = reply_result(&a)) == 0) {
		if ((*der = malloc(a.derlen)) == NULL ||
		    (serial != NULL && (*serial = strdup(a.serial)) == NULL)) {
			free(*der);
			*der = NULL;
			r = AMTCA_E_NOMEM;
		} else {
			memcpy(*der, a.der, a.derlen);
			*derlen = a.derlen;
		}
	}
	sgn_msg_clear(&a);
	return r;
}

int
sgn_cert_get(struct sgn *s, const char *serial, struct store_cert **out)
{
	struct sgn_msg q, a;
	int r;

	*out = NULL;
	if (s->core != NULL)
		return sgn_core_cert_get(s->core, serial, out);
	sgn_msg_init(&q, SGN_MSG_CERT_GET, 0);
	sgn_msg_init(&a, 0, 0);
	q.serial = serial;
	if ((r = sgn_proc_call(s, &q, &a)) == 0 && (r = reply_result(&a)) == 0) {
		if (a.ncerts != 1)
			r = amtca_fail(AMTCA_E_IPC, "the signer sent %zu records "
			    "for one serial", a.ncerts);
		else {
			*out = a.certs;
			a.certs = NULL;
			a.ncerts = 0;
		}
	}
	sgn_msg_clear(&a);
	return r;
}

int
sgn_cert_list(struct sgn *s, const struct sgn_cert_query *qq,
    struct store_cert **out, size_t *n)
{
	struct sgn_msg q, a;
	int r;

	*out = NULL;
	*n = 0;
	if (s->core != NULL)
		return sgn_core_cert_list(s->core, qq, out, n);
	sgn_msg_init(&q, SGN_MSG_CERT_LIST, 0);
	sgn_msg_init(&a, 0, 0);
	q.query = *qq;
	if ((r = sgn_proc_call(s, &q, &a)) == 0 && (r = reply_result(&a)) == 0) {
		*out = a.certs;
		*n = a.ncerts;
		a.certs = NULL;
		a.ncerts = 0;
	}
	sgn_msg_clear(&a);
	return r;
}

int
sgn_revoke(struct sgn *s, const struct sgn_who *who, const char *serial,
    int reason, struct store_cert **out, int *was)
{
	struct sgn_msg q, a;
	int r;

	if (out != NULL)
		*out = NULL;
	if (was != NULL)
		*was = 0;
	if (s->core != NULL)
		return sgn_core_revoke(s->core, who, serial, reason, out, was);
	sgn_msg_init(&q, SGN_MSG_REVOKE, 0);
	sgn_msg_init(&a, 0, 0);
	q.who = *who;
	q.serial = serial;
	q.reason = reason;
	if ((r = sgn_proc_call(s, &q, &a)) == 0 && (r = reply_result(&a)) == 0) {
		if (a.ncerts != 1)
			r = amtca_fail(AMTCA_E_IPC, "the signer sent no record");
		else {
			if (was != NULL)
				*was = a.was;
			if (out != NULL) {
				*out = a.certs;
				a.certs = NULL;
				a.ncerts = 0;
			}
		}
	}
	sgn_msg_clear(&a);
	return r;
}

int
sgn_crl(struct sgn *s, const char *issuer, unsigned char **der, size_t *len)
{
	struct sgn_msg q, a;
	int r;

	*der = NULL;
	*len = 0;
	if (s->core != NULL)
		return sgn_core_crl(s->core, issuer, der, len);
	sgn_msg_init(&q, SGN_MSG_CRL, 0);
	sgn_msg_init(&a, 0, 0);
	q.issuer = issuer;
	if ((r = sgn_proc_call(s, &q, &a)) == 0 && (r = reply_result(&a)) == 0) {
		if ((*der = malloc(a.derlen)) == NULL)
			r = AMTCA_E_NOMEM;
		else {
			memcpy(*der, a.der, a.derlen);
			*len = a.derlen;
		}
	}
	sgn_msg_clear(&a);
	return r;
}

int
sgn_cred_put(struct sgn *s, const char *name, const char *user,
    const char *password)
{
	struct sgn_msg q, a;
	int r;

	if (s->core != NULL)
		return sgn_core_cred_put(s->core, name, user, password);
	sgn_msg_init(&q, SGN_MSG_CRED_PUT, 0);
	sgn_msg_init(&a, 0, 0);
	q.name = name;
	q.user = user;
	q.password = password;
	if ((r = sgn_proc_call(s, &q, &a)) == 0)
		r = reply_result(&a);
	sgn_msg_clear(&a);
	return r;
}

int
sgn_cred_get(struct sgn *s, const char *name, const char *fqdn, char **user,
    char **password)
{
	struct sgn_msg q, a;
	int r;

	*user = NULL;
	*password = NULL;
	if (s->core != NULL)
		return sgn_core_cred_get(s->core, name, fqdn, user, password);
	sgn_msg_init(&q, SGN_MSG_CRED_GET, 0);
	sgn_msg_init(&a, 0, 0);
	q.name = name;
	q.fqdn = fqdn;
	if ((r = sgn_proc_call(s, &q, &a)) == 0 && (r = reply_result(&a)) == 0) {
		if ((*user = strdup(a.user)) == NULL ||
		    (*password = strdup(a.password)) == NULL) {
			free(*user);
			*user = NULL;
			r = AMTCA_E_NOMEM;
		}
	}
	sgn_msg_clear(&a);
	return r;
}

int
sgn_audit_note(struct sgn *s, const struct sgn_who *who, const char *action,
    const char *subject, const char *detail)
{
	struct sgn_msg q, a;
	int r;

	if (s->core != NULL)
		return sgn_core_audit_note(s->core, who, action, subject, detail);
	sgn_msg_init(&q, SGN_MSG_AUDIT_NOTE, 0);
	sgn_msg_init(&a, 0, 0);
	q.who = *who;
	q.action = action;
	q.subject = subject != NULL ? subject : "";
	q.detail = detail != NULL ? detail : "";
	if ((r = sgn_proc_call(s, &q, &a)) == 0)
		r = reply_result(&a);
	sgn_msg_clear(&a);
	return r;
}
