/*
 * signer/devshim.c: TEMPORARY, branch h-serve only.  A minimal in-process
 * stand-in for the signer engineer's sgn_* (core.c/proc.c) so that
 * `amtca serve` links and runs before h-signer lands.  sgn_spawn() here
 * does NOT start a process.  It compiles to nothing as soon as the signer's
 * own files (signer/core.c or signer/proc.c) are in the tree, so merging
 * h-serve never shadows the real signer; delete it at the final merge.
 */
#if !__has_include("signer/core.c") && !__has_include("signer/proc.c")
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/util.h"
#include "enroll/home.h"
#include "signer/signer.h"

struct sgn {
	struct home *h;
	pthread_mutex_t mu;
};

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
sgn_local(const char *home, struct sgn **out)
{
	struct sgn *s;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return AMTCA_E_NOMEM;
	if ((r = home_open(home, HOME_STORE | HOME_SIGNER, &s->h)) != 0) {
		free(s);
		return r;
	}
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;
}

int
sgn_spawn(const char *home, unsigned nconn, struct sgn **out)
{
	(void)nconn;
	return sgn_local(home, out);
}

void
sgn_close(struct sgn *s)
{
	if (s == NULL)
		return;
	home_free(s->h);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

long
sgn_pid(const struct sgn *s)
{
	(void)s;
	return 0;
}

int
sgn_auth(struct sgn *s, const struct sgn_who *who, struct sgn_client *out)
{
	(void)s;
	(void)who;
	memset(out, 0, sizeof(*out));
	return amtca_fail(AMTCA_E_AUTH, "client authentication is not "
	    "available yet");
}

int
sgn_issue(struct sgn *s, const struct sgn_who *who,
    const struct sgn_issue_req *req, unsigned char **der, size_t *derlen,
    char **serial)
{
	struct ca_csr *csr = NULL;
	struct ca_request cr;
	int r;

	*der = NULL;
	*derlen = 0;
	if (serial != NULL)
		*serial = NULL;
	if (who == NULL || who->kind != SGN_WHO_LOCAL ||
	    (req->profile != SGN_PROFILE_SERVICE &&
	    req->profile != SGN_PROFILE_AMT))
		return amtca_fail(AMTCA_E_DENIED, "not in the dev shim");
	if ((r = ca_csr_parse(req->csr, req->csrlen, &csr)) != 0)
		return r;
	memset(&cr, 0, sizeof(cr));
	cr.profile = req->profile == SGN_PROFILE_SERVICE ?
	    CA_PROFILE_SERVICE : CA_PROFILE_WEBSERVER;
	cr.fqdn = req->fqdn;
	cr.csr = csr;
	cr.ips = req->ips;
	cr.nips = req->nips;
	cr.days = req->days;
	cr.requester = "serve";
	cr.device = req->device;
	r = ca_issue_der(s->h->ca, &cr, der, derlen, serial);
	ca_csr_free(csr);
	return r;
}

int
sgn_cert_get(struct sgn *s, const char *serial, struct store_cert **out)
{
	return store_cert_get(s->h->store, serial, out);
}

int
sgn_cert_list(struct sgn *s, const struct sgn_cert_query *q,
    struct store_cert **out, size_t *n)
{
	struct store_cert *all = NULL, *v = NULL;
	size_t na = 0, i, k = 0;
	time_t now = time(NULL);
	int r;

	*out = NULL;
	*n = 0;
	if ((r = store_cert_list(s->h->store, &all, &na)) != 0)
		return r;
	if (na > 0 && (v = calloc(na, sizeof(*v))) == NULL) {
		store_certs_free(all, na);
		return AMTCA_E_NOMEM;
	}
	for (i = 0; i < na; i++) {
		const char *st = strcmp(all[i].status, "valid") == 0 &&
		    all[i].not_after < now ? "expired" : all[i].status;

		if ((q->fqdn != NULL && (all[i].fqdn == NULL ||
		    strcasecmp(q->fqdn, all[i].fqdn) != 0)) ||
		    (q->status != NULL && strcmp(q->status, st) != 0) ||
		    (q->device != NULL && (all[i].device == NULL ||
		    strcasecmp(q->device, all[i].device) != 0)) ||
		    (q->limit != 0 && k >= q->limit)) {
			store_cert_free(&all[i]);
			continue;
		}
		v[k++] = all[i];
	}
	free(all);
	*out = v;
	*n = k;
	return 0;
}

int
sgn_revoke(struct sgn *s, const struct sgn_who *who, const char *serial,
    int reason, struct store_cert **out, int *was)
{
	(void)who;
	if (out != NULL)
		*out = NULL;
	if (was != NULL)
		*was = 0;
	return store_cert_revoke(s->h->store, serial, reason, time(NULL));
}

int
sgn_crl(struct sgn *s, const char *issuer, unsigned char **der, size_t *len)
{
	*der = NULL;
	*len = 0;
	if (issuer != NULL) {
		const ASN1_OCTET_STRING *k = X509_get0_subject_key_id(s->h->inter);
		char *hex = NULL;
		int r, same;

		if (k == NULL)
			return amtca_fail(AMTCA_E_NOT_FOUND, "no such issuer");
		if ((r = amtca_hex_encode(ASN1_STRING_get0_data(k),
		    (size_t)ASN1_STRING_length(k), &hex)) != 0)
			return r;
		same = strcasecmp(hex, issuer) == 0;
		free(hex);
		if (!same)
			return amtca_fail(AMTCA_E_NOT_FOUND, "no CRL for issuer "
			    "%s in the dev shim", issuer);
	}
	return ca_crl_create(s->h->ca, 7, 0, der, len);
}

int
sgn_cred_put(struct sgn *s, const char *name, const char *user,
    const char *password)
{
	(void)s; (void)name; (void)user; (void)password;
	return amtca_fail(AMTCA_E_DENIED, "not in the dev shim");
}

int
sgn_cred_get(struct sgn *s, const char *name, const char *fqdn,
    char **user, char **password)
{
	(void)s; (void)name; (void)fqdn;
	*user = NULL;
	*password = NULL;
	return amtca_fail(AMTCA_E_DENIED, "not in the dev shim");
}

#else
/* ISO C forbids an empty translation unit. */
typedef int amtca_devshim_unused;
#endif
