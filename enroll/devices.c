/*
 * The device inventory and decommissioning (enroll/devices.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "amt/amt.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/devices.h"
#include "enroll/lease.h"
#include "signer/signer.h"

#define CRL_CESSATION 5		/* CRLReason cessationOfOperation */

const char *const device_states[] = {
	"pending", "enrolling", "enrolled", "failed", "auth_failed",
	"compromised", "retired", NULL
};

int
device_state_valid(const char *s)
{
	/* The store is where the states are defined; this list mirrors it
	 * for help texts (test_devices checks both agree). */
	return s != NULL && store_device_state_valid(s);
}

void
device_info_fields(const struct device_info *v, const struct device_fields *o)
{
	o->str(o->ctx, "fqdn", v->d.fqdn);
	o->str(o->ctx, "address", v->d.address);
	o->str(o->ctx, "amt_version", v->d.amt_version);
	o->str(o->ctx, "state", v->d.state);
	o->str(o->ctx, "serial", v->d.cert_serial);
	o->time(o->ctx, "not_after", v->not_after, 1);
	o->str(o->ctx, "last_step", v->d.last_step);
	o->str(o->ctx, "error", v->d.error);
	o->time(o->ctx, "updated_at", v->d.updated_at, 0);
	o->str(o->ctx, "issuer", v->issuer[0] != '\0' ? v->issuer : NULL);
	o->flag(o->ctx, "issuer_current", v->issuer_current);
}

/* The key ids (ca_keyid_hex) of a home's intermediates: [0] current. */
struct ca_ids {
	char id[1 + AMTCA_RETIRED_MAX][CA_KEYID_HEX_MAX + 1];
	size_t n;
};

static void
ca_ids_load(const struct enroll_ctx *ca, struct ca_ids *ids)
{
	size_t i;

	memset(ids, 0, sizeof(*ids));
	if (ca->inter == NULL || ca_keyid_hex(ca->inter, ids->id[0]) != 0) {
		amtca_err_clear();
		return;
	}
	for (ids->n = 1, i = 0; i < ca->nretired && i < AMTCA_RETIRED_MAX; i++)
		if (ca_keyid_hex(ca->retired[i], ids->id[ids->n]) == 0)
			ids->n++;
	amtca_err_clear();
}

/*
 * Which intermediate issued the record `c`: its `issuer` column, or for a
 * record from before rotation (none) the leaf's authority key id, either
 * matched against the home's intermediates.  Neither a signature check nor
 * a chain: the record is the CA's own, and this is a listing.  Not one of
 * them: "" and not current.
 */
static void
issuer_of(const struct ca_ids *ids, const struct store_cert *c,
    struct device_info *v)
{
	const ASN1_OCTET_STRING *aki;
	const unsigned char *p = c->der, *d;
	char hex[CA_KEYID_HEX_MAX + 1];
	X509 *x = NULL;
	size_t i;
	int k, n;

	v->issuer_current = 0;
	hex[0] = '\0';
	if (c->issuer != NULL)
		snprintf(hex, sizeof(hex), "%s", c->issuer);
	else if (p != NULL && (x = d2i_X509(NULL, &p, (long)c->der_len)) != NULL &&
	    (aki = X509_get0_authority_key_id(x)) != NULL &&
	    (n = ASN1_STRING_length(aki)) > 0 && 2 * n < (int)sizeof(hex)) {
		d = ASN1_STRING_get0_data(aki);
		for (k = 0; k < n; k++)
			snprintf(hex + 2 * k, 3, "%02x", d[k]);
	}
	X509_free(x);
	ERR_clear_error();
	for (i = 0; hex[0] != '\0' && i < ids->n; i++)
		if (strcasecmp(hex, ids->id[i]) == 0) {
			snprintf(v->issuer, sizeof(v->issuer), "%s", ids->id[i]);
			v->issuer_current = i == 0;
			return;
		}
}

void
device_infos_free(struct device_info *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].d.fqdn);
		free(v[i].d.address);
		free(v[i].d.amt_version);
		free(v[i].d.cert_serial);
		free(v[i].d.state);
		free(v[i].d.last_step);
		free(v[i].d.error);
		free(v[i].d.user);
		free(v[i].d.cred_ref);
		free(v[i].d.cred_stamp);
		free(v[i].d.tls_pin);
	}
	free(v);
}

static int
cmp_info(const void *a, const void *b)
{
	return strcmp(((const struct device_info *)a)->d.fqdn,
	    ((const struct device_info *)b)->d.fqdn);
}

int
devices_list(struct store *s, struct sgn *sgn, const struct device_filter *f,
    struct device_info **out, size_t *n)
{
	struct store_device *d = NULL;
	struct store_cert *c = NULL;
	struct device_info *v = NULL;
	struct ca_ids ids;
	size_t nd = 0, nv = 0, i;
	time_t now, limit = 0;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*n = 0;
	if (f != NULL && f->state != NULL && !device_state_valid(f->state)) {
		ret = amtca_fail(AMTCA_E_USAGE, "unknown device state \"%s\" "
		    "(pending, enrolling, enrolled, failed, auth_failed, "
		    "compromised, retired)", f->state);
		goto out;
	}
	now = f != NULL && f->now != 0 ? f->now : time(NULL);
	if (f != NULL && f->expiring_days >= 0)
		limit = now + (time_t)f->expiring_days * 86400;
	if (f != NULL && f->ca != NULL)
		ca_ids_load(f->ca, &ids);
	if ((r = store_device_list(s, &d, &nd)) != 0) {
		ret = r;
		goto out;
	}
	if (nd > 0 && (v = calloc(nd, sizeof(*v))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < nd; i++) {
		time_t na = 0;

		if (f != NULL && f->state != NULL &&
		    (d[i].state == NULL || strcmp(d[i].state, f->state) != 0))
			continue;
		v[nv].issuer_current = -1;
		if (d[i].cert_serial != NULL && sgn != NULL) {
			if ((r = sgn_cert_get(sgn, d[i].cert_serial, &c)) == 0) {
				na = c->not_after;
				if (f != NULL && f->ca != NULL)
					issuer_of(&ids, c, &v[nv]);
			} else if (r != AMTCA_E_NOT_FOUND) {
				ret = r;
				goto out;
			}
			amtca_err_clear();
			store_cert_free(c);
			c = NULL;
		}
		if (f != NULL && f->expiring_days >= 0 && (na == 0 || na >= limit)) {
			memset(&v[nv], 0, sizeof(v[nv]));
			continue;
		}
		/* Move the record's strings over. */
		v[nv].d = d[i];
		v[nv].not_after = na;
		memset(&d[i], 0, sizeof(d[i]));
		nv++;
	}
	if (nv > 1)
		qsort(v, nv, sizeof(*v), cmp_info);
	*out = v;
	*n = nv;
	v = NULL;
	nv = 0;
	ret = 0;
out:
	device_infos_free(v, nv);
	store_devices_free(d, nd);
	return ret;
}

void
retire_result_clear(struct retire_result *r)
{
	if (r == NULL)
		return;
	free(r->fqdn);
	free(r->serial);
	memset(r, 0, sizeof(*r));
}

/* Copy of the current detail, so a wrapper can quote it. */
static const char *
errcopy(int r, char *buf, size_t len)
{
	snprintf(buf, len, "%s", amtca_errmsg(r));
	return buf;
}

/*
 * Open a WS-MAN session the credential rule allows: TLS pinned to a leaf
 * the records issued to the device when its TLS port serves one, plain
 * HTTP when nothing answers there and the records do not say it is
 * enrolled.  *tls says which.
 */
static int
open_session(const struct cred_rule *rule, struct amt_opts *ao,
    unsigned char pin[32], struct amt **a, int *tls)
{
	X509 *served = NULL;
	char why[512];
	int r, ret = AMTCA_E_INTERNAL;

	*a = NULL;
	*tls = 0;
	ao->tls = 1;
	ao->pin_sha256 = NULL;
	r = amt_tls_fetch_leaf(ao, &served);
	if (r == 0) {
		if ((r = cred_rule_tls(rule, ao->host, served, pin)) != 0) {
			ret = r;
			goto out;
		}
		ao->pin_sha256 = pin;
		*tls = 1;
	} else if (r == AMTCA_E_AMT_TRANSPORT) {
		errcopy(r, why, sizeof(why));
		if ((r = cred_rule_plain(rule, ao->host)) != 0) {
			ret = amtca_fail(r, "%s (its TLS port: %s)",
			    amtca_errmsg(r), why);
			goto out;
		}
		ao->tls = 0;
	} else {
		ret = r;
		goto out;
	}
	ret = amt_open(ao, a);
out:
	X509_free(served);
	return ret;
}

/* Turn TLS off on both interfaces, drop the credential context, commit. */
static int
tls_off(struct amt *a, int *changed)
{
	struct amt_tls_setting *ts = NULL;
	char *bound = NULL;
	size_t nt = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	*changed = 0;
	if ((r = amt_tls_settings_list(a, &ts, &nt)) != 0 ||
	    (r = amt_tls_context_get(a, &bound)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < nt; i++) {
		if (!ts[i].enabled)
			continue;
		ts[i].enabled = 0;
		ts[i].mutual_auth = 0;
		/* The LMS instance's flag is read-only; the remote one
		 * opens the plain port again. */
		if (strcmp(ts[i].instance_id, AMT_TLS_REMOTE) == 0)
			ts[i].accept_non_secure = 1;
		if ((r = amt_tls_setting_put(a, &ts[i])) != 0) {
			ret = amtca_fail(r, "turning TLS off (%s): %s",
			    ts[i].instance_id, amtca_errmsg(r));
			goto out;
		}
		*changed = 1;
	}
	if (bound != NULL) {
		if ((r = amt_tls_context_delete(a, bound)) != 0) {
			ret = r;
			goto out;
		}
		*changed = 1;
	}
	if (*changed && (r = amt_commit(a)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	free(bound);
	amt_tls_settings_free(ts, nt);
	return ret;
}

/* Is AMT's certificate `ac` one of the device's records? */
static int
ours(const struct amt_cert *ac, const struct store_cert *mine, size_t nmine)
{
	size_t i;

	for (i = 0; i < nmine; i++)
		if (mine[i].der_len == ac->der_len &&
		    CRYPTO_memcmp(mine[i].der, ac->der, ac->der_len) == 0)
			return 1;
	return 0;
}

/* Delete every leaf the records issued to the device, then its key. */
static int
remove_ours(struct amt *a, const struct store_cert *mine, size_t nmine,
    struct retire_result *res)
{
	struct amt_cert *c = NULL;
	struct amt_key *k = NULL;
	size_t nc = 0, nk = 0, i, j;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = amt_certs_list(a, &c, &nc)) != 0 ||
	    (r = amt_keys_list(a, &k, &nk)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < nc; i++) {
		const unsigned char *p = c[i].der;
		X509 *x;

		if (c[i].trusted_root || !ours(&c[i], mine, nmine))
			continue;
		if ((x = d2i_X509(NULL, &p, (long)c[i].der_len)) == NULL) {
			ret = amtca_fail_ssl(AMTCA_E_CERT, "parsing %s",
			    c[i].instance_id);
			goto out;
		}
		if ((r = amt_cert_delete(a, c[i].instance_id)) != 0) {
			X509_free(x);
			ret = r;
			goto out;
		}
		res->removed_certs++;
		for (j = 0; j < nk; j++) {
			if (k[j].pub == NULL || k[j].instance_id == NULL ||
			    EVP_PKEY_eq(X509_get0_pubkey(x), k[j].pub) != 1)
				continue;
			if ((r = amt_key_delete(a, k[j].instance_id)) != 0) {
				X509_free(x);
				ret = r;
				goto out;
			}
			res->removed_keys++;
			free(k[j].instance_id);
			k[j].instance_id = NULL;
		}
		X509_free(x);
	}
	ret = 0;
out:
	amt_certs_free(c, nc);
	amt_keys_free(k, nk);
	return ret;
}

/*
 * Record `retired`, then revoke the bound certificate
 * (cessationOfOperation) through the signer, which allows a front end
 * that reason only for a device the records say is retired.  A failure
 * in between is finished by running retire again.
 */
static int
retire_record(const struct enroll_ctx *c, struct store_device *d,
    struct retire_result *res)
{
	struct store_cert *got = NULL;
	struct sgn_who who;
	int r, ret = AMTCA_E_INTERNAL;

	if (d->state == NULL || strcmp(d->state, "retired") != 0) {
		free(d->state);
		if ((d->state = strdup("retired")) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	}
	free(d->error);
	d->error = NULL;
	d->updated_at = time(NULL);
	if ((r = store_device_put(c->store, d)) != 0) {
		ret = r;
		goto out;
	}
	if (d->cert_serial != NULL) {
		memset(&who, 0, sizeof(who));
		who.kind = SGN_WHO_LOCAL;
		if ((r = sgn_revoke(c->sgn, &who, d->cert_serial, CRL_CESSATION,
		    &got, &res->was_revoked)) != 0 && r != AMTCA_E_NOT_FOUND) {
			ret = r;
			goto out;
		}
		amtca_err_clear();
		if ((res->serial = strdup(d->cert_serial)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	}
	ret = 0;
out:
	store_cert_free(got);
	return ret;
}

int
device_retire(const struct enroll_ctx *c, const struct retire_opts *o,
    struct retire_result *res)
{
	char fq[AMTCA_FQDN_MAX + 1], why[512];
	struct store_device *d = NULL;
	struct store_cert *mine = NULL;
	struct cred_rule rule;
	struct amt_opts ao;
	struct amt *a = NULL;
	struct amt_general g;
	unsigned char pin[32];
	size_t nmine = 0;
	long long deadline;
	struct devlock *lock = NULL;
	const char *user, *pwfile, *sealed = NULL;
	char *password = NULL, *cuser = NULL;
	int r, tls = 0, changed = 0, ret = AMTCA_E_INTERNAL;

	memset(res, 0, sizeof(*res));
	memset(&rule, 0, sizeof(rule));
	memset(&ao, 0, sizeof(ao));
	if (c->store == NULL || c->sgn == NULL || c->policy == NULL ||
	    (o->remove_from_device && c->chain_path == NULL)) {
		ret = amtca_fail(AMTCA_E_USAGE, "retire: the CA home is not open");
		goto out;
	}
	if ((r = ca_fqdn_check(o->fqdn, c->policy, fq)) != 0) {
		ret = r;
		goto out;
	}
	if ((res->fqdn = strdup(fq)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = devlock_take(c->store, fq, &lock)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = store_device_get(c->store, fq, &d)) != 0) {
		ret = r == AMTCA_E_NOT_FOUND ? amtca_fail(r, "no device %s in the "
		    "records (amtca devices lists them)", fq) : r;
		goto out;
	}
	res->was_retired = d->state != NULL && strcmp(d->state, "retired") == 0;

	if (o->remove_from_device) {
		struct sgn_cert_query q;

		memset(&q, 0, sizeof(q));
		q.device = fq;
		q.with_der = 1;
		if ((r = sgn_cert_list(c->sgn, &q, &mine, &nmine)) != 0 ||
		    (r = cred_rule_load(c->store, c->sgn, fq, NULL, 0, &rule)) != 0) {
			ret = r;
			goto out;
		}
		if (rule.compromised) {
			ret = cred_rule_plain(&rule, fq);
			goto out;
		}
		/* This is the one caller that may talk to a retired device:
		 * to finish its own earlier, interrupted work.  While the
		 * record still names a bound leaf, TLS may still be on with
		 * it: then TLS only, as for an enrolled device. */
		rule.retired = 0;
		if (res->was_retired && d->cert_serial != NULL)
			rule.tls_only = 1;
		/* The operator's credential, else the one the record names. */
		user = o->user != NULL ? o->user : d->user;
		pwfile = o->password_file != NULL ? o->password_file : d->cred_ref;
		/* A record naming a sealed credential: the signer opens it
		 * (only while the device has work pending), never a file. */
		if (o->password_file == NULL && pwfile != NULL &&
		    strncmp(pwfile, STORE_CRED_REF_PREFIX,
		    strlen(STORE_CRED_REF_PREFIX)) == 0) {
			sealed = pwfile + strlen(STORE_CRED_REF_PREFIX);
			if ((r = sgn_cred_get(c->sgn, sealed, fq, &cuser,
			    &password)) != 0) {
				ret = amtca_fail(r, "retire %s: the device uses "
				    "sealed credential %s, which the signer does "
				    "not open for it now (%s); give --user and "
				    "--password-file", fq, sealed,
				    errcopy(r, why, sizeof(why)));
				goto out;
			}
			user = cuser;
		} else if (user == NULL || *user == '\0' || pwfile == NULL ||
		    *pwfile == '\0') {
			ret = amtca_fail(AMTCA_E_USAGE, "retire %s: the record names "
			    "no AMT credential; give --user and --password-file",
			    fq);
			goto out;
		}
		ao.host = fq;
		ao.address = o->address != NULL ? o->address : d->address;
		ao.port = o->port != 0 ? o->port : d->port;
		ao.tls_port = o->tls_port != 0 ? o->tls_port : d->tls_port;
		ao.ca_file = c->chain_path;
		/* Enroll's rule: the bound leaf's expiry alone is forgiven. */
		ao.expired_ok_der = rule.bound_der;
		ao.expired_ok_len = rule.bound_der_len;
		ao.user = user;
		if (sealed == NULL &&
		    (r = amtca_secret_read(pwfile, &password)) != 0) {
			ret = r;
			goto out;
		}
		ao.password = password;
		if ((r = open_session(&rule, &ao, pin, &a, &tls)) != 0) {
			ret = amtca_fail(r, "retire %s: %s", fq,
			    errcopy(r, why, sizeof(why)));
			goto out;
		}
	}

	/*
	 * Retired in the records before AMT changes: from here on a rerun
	 * may talk to the device over whatever it serves (TLS pinned to the
	 * revoked leaf, or plain once TLS is off), so an interruption at any
	 * point is finished by running retire again.  With removal, only
	 * after the session above proved (TLS pinned) or the rule allowed
	 * (plain) the device.
	 */
	if ((r = retire_record(c, d, res)) != 0) {
		ret = r;
		goto out;
	}

	if (o->remove_from_device) {
		if ((r = tls_off(a, &changed)) != 0) {
			ret = amtca_fail(r, "retire %s: %s; it is retired in the "
			    "records, rerun to finish", fq,
			    errcopy(r, why, sizeof(why)));
			goto out;
		}
		res->tls_disabled = changed;
		/* TLS is off: no leaf serves.  The record says so (no bound
		 * serial), which lets a rerun use the plain port. */
		if (d->cert_serial != NULL) {
			free(d->cert_serial);
			d->cert_serial = NULL;
			d->updated_at = time(NULL);
			if ((r = store_device_put(c->store, d)) != 0) {
				ret = r;
				goto out;
			}
		}
		if (tls && changed) {
			/*
			 * AMT serves plain HTTP again once the commit applies;
			 * the record says retired now, and nothing else is on
			 * offer.  Wait for the plain port.
			 */
			amt_free(a);
			a = NULL;
			ao.tls = 0;
			ao.pin_sha256 = NULL;
			deadline = amtca_now_ms() + (o->tls_wait_ms > 0 ?
			    o->tls_wait_ms : AMTCA_AMT_TLS_WAIT_MS);
			for (;;) {
				memset(&g, 0, sizeof(g));
				r = amt_open(&ao, &a);
				if (r == 0)
					r = amt_general_get(a, &g);
				amt_general_clear(&g);
				if (r == 0)
					break;
				amt_free(a);
				a = NULL;
				if (r != AMTCA_E_AMT_TRANSPORT ||
				    amtca_now_ms() >= deadline) {
					ret = amtca_fail(r, "retire %s: TLS is off "
					    "and the certificate revoked, but the "
					    "plain port did not answer (%s); rerun "
					    "with --remove-from-device to remove the "
					    "certificate and key", fq,
					    errcopy(r, why, sizeof(why)));
					goto out;
				}
				amtca_sleep_ms(500);
			}
		}
		if ((r = remove_ours(a, mine, nmine, res)) != 0) {
			ret = amtca_fail(r, "retire %s: removing the certificate "
			    "from AMT: %s; rerun to finish", fq,
			    errcopy(r, why, sizeof(why)));
			goto out;
		}
	}
	ret = 0;
out:
	amt_free(a);
	amtca_secret_free(password);
	free(cuser);
	devlock_release(lock);
	cred_rule_clear(&rule);
	store_certs_free(mine, nmine);
	store_device_free(d);
	OPENSSL_cleanse(pin, sizeof(pin));
	return ret;
}
