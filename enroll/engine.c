/*
 * The enrollment engine: one AMT device from plain HTTP to TLS with a
 * per-FQDN certificate from this CA, proven on the TLS port.
 *
 * Every step reconciles: it reads what AMT holds and does only what is
 * missing, so a rerun after a failure at any point finishes the job.  The
 * crash-point argument is in docs/enroll.md; the comments here say which
 * part of it each branch implements.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "amt/amt.h"
#include "ca/ca.h"
#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/enroll.h"
#include "enroll/lease.h"
#include "signer/signer.h"

#define PROBE_MS        2000	/* TCP reachability probe */
#define POLL_MS         250	/* between TLS-port polls */
#define MISMATCH_GRACE_MS 5000	/* a wrong certificate may be the old one
				   still being served while AMT restarts */

void
enroll_result_clear(struct enroll_result *r)
{
	if (r == NULL)
		return;
	free(r->host);
	free(r->address);
	free(r->amt_version);
	free(r->serial);
	free(r->warning);
	memset(r, 0, sizeof(*r));
	r->failed_step = -1;
}

struct enroll_pass {
	const struct enroll_ctx *c;	/* what the engine works with */
	const struct enroll_opts *o;
	struct enroll_result *res;
	char fqdn[AMTCA_FQDN_MAX + 1];
	int port, tls_port;
	long tls_wait_ms;
	int resolved;			/* the address came from DNS */
	char resolved_list[256];
	int plain_open, tls_open;
	int use_tls;
	int want_non_secure;		/* effective AcceptNonSecureConnections */
	struct amt *amt;
	X509 *served;			/* verified leaf served at pre-flight */
	X509 *replaced;			/* ours, bound before this run (or NULL) */
	X509 *leaf;			/* the leaf to bind */
	char *leaf_handle;
	unsigned char *root_der, *inter_der;
	int root_len, inter_len;
	char *prev_serial;		/* from the device record */
	int rec_enrolled;
	struct cred_rule rule;		/* where credentials may go */
	unsigned char pin[32];		/* SHA-256 of the leaf TLS may serve */
	int have_pin;
	int foreign_pin;		/* the pin is the operator's, for a leaf
					   outside our chain: TLS is held to it
					   alone until our leaf is bound */
	int compromised;		/* record the device as compromised */
	int retired;			/* ... or keep it retired */
	char bound_serial[80];		/* ours, bound on AMT, for the record */
	int cur;			/* step being run */
	int already;			/* pre-flight proved the device enrolled */
	int commit_lost;		/* bind: the commit's reply was lost */
	struct devlock *lock;		/* the device's lease in the store */
	const struct amt_profile *prof;	/* by AMT version (amt/profile.c) */
	char *chain_added[2];		/* CA certificates this pass added */
};

/* --- small helpers ------------------------------------------------------ */

static void
progress(struct enroll_pass *e, enum enroll_step s, enum enroll_event ev,
    const char *fmt, ...) AMTCA_PRINTF(4, 5);

static void
progress(struct enroll_pass *e, enum enroll_step s, enum enroll_event ev,
    const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	/* Every step event shows we are alive: keep the device's lease. */
	devlock_renew(e->lock);
	if (e->o->progress == NULL)
		return;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
	}
	e->o->progress(e->o->progress_ctx, s, ev, fmt ? buf : NULL);
}

static void
warn(struct enroll_pass *e, const char *fmt, ...) AMTCA_PRINTF(2, 3);

static void
warn(struct enroll_pass *e, const char *fmt, ...)
{
	char buf[512], *n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (e->res->warning == NULL)
		n = strdup(buf);
	else if (asprintf(&n, "%s; %s", e->res->warning, buf) == -1)
		n = NULL;
	if (n != NULL) {
		free(e->res->warning);
		e->res->warning = n;
	}
}

/*
 * A copy of the detail recorded for `code`, for use as an argument of a new
 * amtca_fail() (which overwrites the buffer amtca_errmsg() points into).
 */
static const char *
errcopy(int code)
{
	static _Thread_local char b[4][512];
	static _Thread_local unsigned i;

	i = (i + 1) % 4;
	snprintf(b[i], sizeof(b[i]), "%s", amtca_errmsg(code));
	return b[i];
}

static int
set_str(char **dst, const char *src)
{
	char *n = NULL;

	if (src != NULL && (n = strdup(src)) == NULL)
		return AMTCA_E_NOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static X509 *
der_x509(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;

	return d2i_X509(NULL, &p, (long)len);
}

static int
x509_der_eq(X509 *x, const unsigned char *der, size_t len)
{
	unsigned char *mine = NULL;
	int n, eq;

	if (x == NULL || (n = i2d_X509(x, &mine)) <= 0)
		return 0;
	eq = (size_t)n == len && memcmp(mine, der, len) == 0;
	OPENSSL_free(mine);
	return eq;
}

static int
x509_eq(X509 *a, X509 *b)
{
	return a != NULL && b != NULL && X509_cmp(a, b) == 0;
}

static void
serial_of(X509 *x, char *buf, size_t len)
{
	char *s = NULL;

	if (x != NULL && ca_serial_hex(X509_get0_serialNumber(x), &s) == 0)
		snprintf(buf, len, "%s", s);
	else
		snprintf(buf, len, "?");
	free(s);
}

/* e->leaf is the result: its serial (also into buf, when given) and notAfter. */
static int
result_leaf(struct enroll_pass *e, char *buf, size_t len)
{
	char serial[80];

	serial_of(e->leaf, serial, sizeof(serial));
	if (buf != NULL)
		snprintf(buf, len, "%s", serial);
	e->res->not_after = asn1_time(X509_get0_notAfter(e->leaf));
	return set_str(&e->res->serial, serial);
}

/*
 * Does `x` verify under our chain, for our FQDN, as a TLS server, now?
 * With `window`, it must also be outside the renewal window.  *why gets a
 * static reason when it does not.
 */
static int
leaf_good(struct enroll_pass *e, X509 *x, int window, const char **why)
{
	X509_STORE *st = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *untrusted = NULL;
	X509_VERIFY_PARAM *vp;
	time_t na;
	int ok = 0;

	*why = "cannot set up verification";
	if (x == NULL || e->c->root == NULL) {
		*why = "no certificate";
		return 0;
	}
	if ((st = X509_STORE_new()) == NULL || X509_STORE_add_cert(st, e->c->root) != 1 ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    (untrusted = sk_X509_new_null()) == NULL)
		goto out;
	if (e->c->inter != NULL && sk_X509_push(untrusted, e->c->inter) <= 0)
		goto out;
	if (X509_STORE_CTX_init(ctx, st, x, untrusted) != 1)
		goto out;
	vp = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (X509_VERIFY_PARAM_set1_host(vp, e->fqdn, 0) != 1)
		goto out;
	if (X509_verify_cert(ctx) != 1) {
		*why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
		goto out;
	}
	if (window) {
		na = asn1_time(X509_get0_notAfter(x));
		if (na - time(NULL) <= (time_t)e->o->renew_days * 86400) {
			*why = "inside the renewal window";
			goto out;
		}
	}
	*why = NULL;
	ok = 1;
out:
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	ERR_clear_error();
	return ok;
}

/* The certificates recorded for this device, with DER, oldest first. */
static int
device_certs(struct enroll_pass *e, struct store_cert **out, size_t *n)
{
	struct sgn_cert_query q;

	memset(&q, 0, sizeof(q));
	q.device = e->fqdn;
	q.with_der = 1;
	return sgn_cert_list(e->c->sgn, &q, out, n);
}

/* Does our store say `x` is revoked?  (Unknown serials are not.) */
static int
revoked_in_store(struct enroll_pass *e, X509 *x)
{
	struct store_cert *sc = NULL;
	char serial[80];
	int revoked;

	serial_of(x, serial, sizeof(serial));
	if (sgn_cert_get(e->c->sgn, serial, &sc) != 0) {
		amtca_err_clear();
		return 0;
	}
	revoked = sc->status != NULL && strcmp(sc->status, "revoked") == 0;
	store_cert_free(sc);
	return revoked;
}

/* Is `x` a non-CA certificate signed by our intermediate? */
static int
issued_by_us(struct enroll_pass *e, X509 *x)
{
	EVP_PKEY *ipub;

	if (x == NULL || e->c->inter == NULL || X509_check_ca(x) != 0)
		return 0;
	if (X509_check_issued(e->c->inter, x) != X509_V_OK)
		return 0;
	ipub = X509_get0_pubkey(e->c->inter);
	return ipub != NULL && X509_verify(x, ipub) == 1;
}

static const struct amt_key *
key_for_pub(const struct amt_key *k, size_t nk, EVP_PKEY *pub)
{
	size_t i;

	for (i = 0; pub != NULL && i < nk; i++)
		if (k[i].pub != NULL && EVP_PKEY_eq(k[i].pub, pub) == 1)
			return &k[i];
	return NULL;
}

static const struct amt_cert *
cert_by_handle(const struct amt_cert *c, size_t nc, const char *handle)
{
	size_t i;

	for (i = 0; handle != NULL && i < nc; i++)
		if (c[i].instance_id != NULL && strcmp(c[i].instance_id, handle) == 0)
			return &c[i];
	return NULL;
}

static const struct amt_cert *
cert_by_der(const struct amt_cert *c, size_t nc, const unsigned char *der,
    size_t len)
{
	size_t i;

	for (i = 0; i < nc; i++)
		if (c[i].der_len == len && memcmp(c[i].der, der, len) == 0)
			return &c[i];
	return NULL;
}

/* Does some certificate in AMT's store carry this key? */
static int
key_has_cert(const struct amt_cert *c, size_t nc, const struct amt_key *k)
{
	size_t i;
	X509 *x;
	int has = 0;

	for (i = 0; i < nc && !has; i++) {
		if ((x = der_x509(c[i].der, c[i].der_len)) == NULL)
			continue;
		has = k->pub != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), k->pub) == 1;
		X509_free(x);
	}
	return has;
}

/* One line about an AMT call failure, with what AMT said. */
static int
amt_err(struct enroll_pass *e, int code, const char *what)
{
	const struct amt_error *ae = e->amt ? amt_last_error(e->amt) : NULL;
	char detail[512];

	snprintf(detail, sizeof(detail), "%s", amtca_errmsg(code));
	if (code == AMTCA_E_AMT_STATUS && ae != NULL && ae->return_value >= 0)
		return amtca_fail(code, "%s: AMT returned %d %s (%s)", what,
		    ae->return_value, amt_status_name(ae->return_value), detail);
	if (code == AMTCA_E_AMT_FAULT && ae != NULL && ae->fault_subcode[0])
		return amtca_fail(code, "%s: SOAP fault %s: %s", what,
		    ae->fault_subcode, ae->fault_reason);
	if (code == AMTCA_E_AMT_AUTH)
		return amtca_fail(code, "%s: AMT rejected user '%s' (one attempt "
		    "made, never retried, so the account does not lock): check "
		    "--user and --password-file", what, e->o->user);
	return amtca_fail(code, "%s: %s", what, detail);
}

static int
is_status(struct enroll_pass *e, int code, int pt)
{
	const struct amt_error *ae;

	if (code != AMTCA_E_AMT_STATUS || e->amt == NULL)
		return 0;
	ae = amt_last_error(e->amt);
	return ae != NULL && ae->return_value == pt;
}

static int
is_fault(struct enroll_pass *e, int code, const char *sub)
{
	const struct amt_error *ae;

	if (code != AMTCA_E_AMT_FAULT || e->amt == NULL)
		return 0;
	ae = amt_last_error(e->amt);
	return ae != NULL && strcmp(ae->fault_subcode, sub) == 0;
}

/* A TLS failure below certificate verification (protocol, renegotiation)? */
static int
tls_handshake_failure(int code, const char *msg)
{
	return code == AMTCA_E_AMT_TLS && msg != NULL &&
	    strstr(msg, "TLS handshake with") != NULL;
}

static void
amt_opts_fill(struct enroll_pass *e, struct amt_opts *ao, int tls)
{
	memset(ao, 0, sizeof(*ao));
	ao->host = e->fqdn;
	ao->address = e->res->address;
	ao->port = e->port;
	ao->tls_port = e->tls_port;
	ao->tls = tls;
	ao->ca_file = e->c->chain_path;
	ao->legacy_tls = e->o->legacy_tls;
	ao->user = e->o->user;
	ao->password = e->o->password;
	ao->abort_at_ms = e->o->abort_at_ms;
	/* The bound leaf's exact bytes: its expiry alone is forgiven. */
	ao->expired_ok_der = e->rule.bound_der;
	ao->expired_ok_len = e->rule.bound_der_len;
}

/* (Re)connect: TLS verified by our chain, or plain HTTP. */
static int
connect_amt(struct enroll_pass *e, int tls)
{
	struct amt_opts ao;
	int r;

	amt_free(e->amt);
	e->amt = NULL;
	amt_opts_fill(e, &ao, tls);
	if (tls && e->have_pin) {
		ao.pin_sha256 = e->pin;
		if (e->foreign_pin)
			ao.ca_file = NULL;	/* the exact leaf, not a chain */
	}
	if ((r = amt_open(&ao, &e->amt)) != 0)
		return r;
	e->use_tls = tls;
	return 0;
}

/* The device row, written after every step. */
static void
record(struct enroll_pass *e, const char *state, const char *error)
{
	struct store_device d;
	int i, r;

	memset(&d, 0, sizeof(d));
	d.fqdn = e->fqdn;
	d.address = e->res->address;
	d.amt_version = e->res->amt_version;
	d.cert_serial = e->bound_serial[0] ? e->bound_serial : e->prev_serial;
	/*
	 * A device we enrolled stays "enrolled" while a renewal runs: its
	 * old leaf still serves, and the state is what refuses a downgrade
	 * to plain HTTP on the next run (choose_transport).
	 */
	if (e->rec_enrolled && strcmp(state, "enrolling") == 0)
		state = "enrolled";
	d.state = (char *)state;
	for (i = ENROLL_NSTEPS - 1; i >= 0; i--)	/* last completed step */
		if (e->res->steps_done & (1u << i)) {
			d.last_step = (char *)enroll_step_name((enum enroll_step)i);
			break;
		}
	d.error = (char *)error;
	d.updated_at = time(NULL);
	if ((r = store_device_put(e->c->store, &d)) != 0)
		warn(e, "could not record the device in the store: %s",
		    amtca_errmsg(r));
}

static void
step_done(struct enroll_pass *e, enum enroll_step s, int skipped, const char *detail)
{
	e->res->steps_done |= 1u << s;
	if (s == ENROLL_BIND || s == ENROLL_VERIFY)
		serial_of(e->leaf, e->bound_serial, sizeof(e->bound_serial));
	record(e, (e->res->steps_done & (1u << ENROLL_VERIFY)) ? "enrolled" :
	    "enrolling", NULL);
	progress(e, s, skipped ? ENROLL_EV_SKIP : ENROLL_EV_OK, "%s",
	    detail ? detail : "");
}

/* --- step 1: pre-flight ------------------------------------------------- */

/* Pick the address to talk to: --address, else each resolved address. */
static int
choose_address(struct enroll_pass *e)
{
	struct net_addrs na = { NULL, 0 };
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	if (e->o->address != NULL) {
		if (!net_is_ip(e->o->address)) {
			ret = amtca_fail(AMTCA_E_USAGE, "--address %s is not an IP "
			    "address", e->o->address);
			goto out;
		}
		ret = set_str(&e->res->address, e->o->address);
		goto out;
	}
	if ((r = net_resolve(e->fqdn, &na)) != 0) {
		ret = amtca_fail(AMTCA_E_DNS, "%s; fix the DNS record (AMT TLS needs "
		    "the FQDN to resolve to the device) or pass --address IP",
		    errcopy(r));
		goto out;
	}
	e->resolved = 1;
	net_addrs_join(&na, e->resolved_list, sizeof(e->resolved_list));
	for (i = 0; i < na.n; i++) {
		if (net_tcp_probe(na.addr[i], e->port, PROBE_MS) == 0 ||
		    net_tcp_probe(na.addr[i], e->tls_port, PROBE_MS) == 0) {
			if (na.n > 1)
				warn(e, "%s resolves to %s; using %s, the first that "
				    "answers", e->fqdn, e->resolved_list, na.addr[i]);
			ret = set_str(&e->res->address, na.addr[i]);
			goto out;
		}
	}
	ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "%s resolves to %s, but nothing "
	    "answers on port %d or %d there: the DNS record points at the wrong "
	    "machine, or the device is off/unplugged; fix DNS or pass "
	    "--address IP", e->fqdn, e->resolved_list, e->port, e->tls_port);
out:
	net_addrs_clear(&na);
	return ret;
}

/* Compare the FQDN AMT reports with --host. */
static int
check_identity(struct enroll_pass *e, const struct amt_general *g)
{
	char amtfqdn[AMTCA_FQDN_MAX * 2 + 2];
	int ret = 0;

	snprintf(amtfqdn, sizeof(amtfqdn), "%s%s%s",
	    g->hostname ? g->hostname : "",
	    g->domainname && *g->domainname ? "." : "",
	    g->domainname ? g->domainname : "");
	if (strcasecmp(amtfqdn, e->fqdn) == 0)
		return 0;
	if (e->o->allow_fqdn_mismatch) {
		warn(e, "AMT reports FQDN '%s', not %s (allowed by "
		    "--allow-fqdn-mismatch)", amtfqdn, e->fqdn);
		return 0;
	}
	if (e->resolved)
		ret = amtca_fail(AMTCA_E_AMT_MISMATCH, "%s resolves to %s, but the "
		    "AMT answering at %s says its FQDN is '%s': DNS points at the "
		    "wrong machine or AMT's hostname/domain is wrong; fix one of "
		    "them (or pass --allow-fqdn-mismatch)", e->fqdn,
		    e->resolved_list, e->res->address, amtfqdn);
	else
		ret = amtca_fail(AMTCA_E_AMT_MISMATCH, "the AMT at %s says its FQDN "
		    "is '%s', not %s: wrong --address, or AMT's hostname/domain "
		    "is wrong; fix one of them (or pass --allow-fqdn-mismatch)",
		    e->res->address, amtfqdn, e->fqdn);
	return ret;
}

/*
 * "(issuer CN=..., SHA-256 ...) " of whatever leaf the TLS port serves,
 * fetched without verification, for a fail-closed message: what the
 * operator must check before pinning it.  Empty when none is seen.
 */
static void
served_describe(struct enroll_pass *e, char *buf, size_t len)
{
	struct amt_opts ao;
	X509 *x = NULL;
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	char hex[65], issuer[160];
	int n, i;

	buf[0] = '\0';
	amt_opts_fill(e, &ao, 1);
	ao.ca_file = NULL;
	if (amt_tls_fetch_leaf(&ao, &x) != 0 || (n = i2d_X509(x, &der)) <= 0 ||
	    EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		goto out;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof(issuer));
	snprintf(buf, len, "(issuer %s, SHA-256 %s) ", issuer, hex);
out:
	amtca_err_clear();
	OPENSSL_free(der);
	X509_free(x);
}

/*
 * Decide the transport, by the credential rule (credrule.c): TLS when it
 * verifies under our chain and the served leaf is one the records issued to
 * this device (then pinned for the session); never plain HTTP for a device
 * the records say is enrolled, whatever answers there, and never plain
 * HTTP when 16992 is closed.  Either would hand the Digest exchange to
 * whoever serves the wrong certificate, who can relay it.
 */
static int
choose_transport(struct enroll_pass *e)
{
	struct amt_opts ao;
	X509 *x = NULL;
	char why[400];
	int r, ret = AMTCA_E_INTERNAL;

	e->plain_open = net_tcp_probe(e->res->address, e->port, PROBE_MS) == 0;
	e->tls_open = net_tcp_probe(e->res->address, e->tls_port, PROBE_MS) == 0;
	amtca_err_clear();
	why[0] = '\0';
	if (e->tls_open) {
		amt_opts_fill(e, &ao, 1);
		r = amt_tls_fetch_leaf(&ao, &x);
		if (r == 0 && (r = cred_rule_tls(&e->rule, e->fqdn, x,
		    e->pin)) == 0) {
			time_t na = asn1_time(X509_get0_notAfter(x));

			if (na <= time(NULL)) {
				char when[64];

				amtca_fmt_time(na, when, sizeof(when));
				warn(e, "the certificate port %d serves expired "
				    "at %s; it is, byte for byte, the one the "
				    "records bound on %s, so it is renewed over "
				    "TLS that ignores only its validity period",
				    e->tls_port, when, e->fqdn);
			}
			e->served = x;
			x = NULL;
			e->have_pin = 1;
			ret = connect_amt(e, 1);
			goto out;
		}
		snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
		/*
		 * Outside our chain (a factory self-signed certificate, another
		 * CA's): only the operator's pin, checked against the exact
		 * leaf, lets credentials go there.
		 */
		if (x == NULL && r == AMTCA_E_AMT_TLS && e->o->tls_pin != NULL &&
		    !tls_handshake_failure(r, why)) {
			ao.ca_file = NULL;
			ao.pin_sha256 = e->o->tls_pin;
			if (amt_tls_fetch_leaf(&ao, &x) == 0 &&
			    (r = cred_rule_tls(&e->rule, e->fqdn, x, e->pin)) == 0) {
				warn(e, "port %d serves a certificate outside this "
				    "CA's chain that matches --tls-pin; replacing "
				    "it over TLS pinned to it", e->tls_port);
				e->served = x;
				x = NULL;
				e->have_pin = e->foreign_pin = 1;
				ret = connect_amt(e, 1);
				goto out;
			}
			X509_free(x);
			x = NULL;
			amtca_err_clear();
		}
		if (x != NULL) {
			/* Verified, but not a leaf the records gave this device. */
			if (!e->plain_open || e->rule.tls_only) {
				ret = amtca_fail(AMTCA_E_AMT_TLS, "%s", why);
				goto out;
			}
			warn(e, "port %d serves a certificate of this CA that the "
			    "records did not issue to %s; enrolling over port %d "
			    "replaces it", e->tls_port, e->fqdn, e->port);
		} else if (tls_handshake_failure(r, why) && !e->o->legacy_tls &&
		    (!e->plain_open || e->rule.tls_only)) {
			ret = amtca_fail(AMTCA_E_AMT_TLS, "%s:%d: %s; AMT 12 and "
			    "older need --legacy-tls", e->res->address, e->tls_port,
			    why);
			goto out;
		} else if (r != AMTCA_E_AMT_TLS)
			e->tls_open = 0;	/* answers TCP but no TLS */
		else if (!e->plain_open || e->rule.tls_only) {
			char seen[300];

			served_describe(e, seen, sizeof(seen));
			ret = amtca_fail(AMTCA_E_AMT_TLS, "%s:%d serves a certificate "
			    "%sthat does not verify under this CA's chain for %s: "
			    "no credentials sent (fail closed). Check --address/DNS and that "
			    "certificate; if it is the device's, pass --tls-pin "
			    "with its SHA-256; if AMT was reset, --device-reset",
			    e->res->address, e->tls_port, seen, e->fqdn);
			goto out;
		} else
			warn(e, "port %d serves a certificate not from this CA (%s); "
			    "enrolling over port %d replaces it", e->tls_port, why,
			    e->port);
	}
	if (!e->plain_open) {
		ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "nothing answers at %s on "
		    "port %d or %d%s: check that the device is powered and AMT "
		    "is provisioned%s", e->res->address, e->port, e->tls_port,
		    why[0] ? " with TLS" : "", e->resolved ? ", and the DNS record" :
		    ", and --address");
		goto out;
	}
	if (cred_rule_plain(&e->rule, e->fqdn) != 0) {
		ret = amtca_fail(AMTCA_E_AMT_TLS, "%s was enrolled (TLS on port %d), "
		    "but TLS does not answer there now while plain port %d does%s%s;"
		    " not downgrading to plain HTTP (credentials never go to an "
		    "enrolled device in clear). If AMT was unprovisioned or reset, "
		    "rerun with --device-reset", e->fqdn, e->tls_port, e->port,
		    why[0] ? ": " : "", why);
		goto out;
	}
	ret = connect_amt(e, 0);
out:
	X509_free(x);
	return ret;
}

/* TLS settings and binding as we want them?  (already-enrolled test) */
static int
settings_ok(struct enroll_pass *e, int *ok)
{
	struct amt_tls_setting *ts = NULL;
	size_t nt = 0, i;
	int r, ret = AMTCA_E_INTERNAL, found = 0;

	*ok = 0;
	if ((r = amt_tls_settings_list(e->amt, &ts, &nt)) != 0) {
		ret = amt_err(e, r, "reading TLS settings");
		goto out;
	}
	for (i = 0; i < nt; i++) {
		if (strcmp(ts[i].instance_id, AMT_TLS_REMOTE) != 0)
			continue;
		found = 1;
		e->want_non_secure = e->o->accept_non_secure &&
		    ts[i].non_secure_supported != 0;
		if (ts[i].enabled && !ts[i].mutual_auth &&
		    !ts[i].accept_non_secure == !e->want_non_secure)
			*ok = 1;
	}
	if (found && !e->want_non_secure && e->plain_open)
		*ok = 0;	/* set but not in effect: commit again */
	ret = 0;
out:
	amt_tls_settings_free(ts, nt);
	return ret;
}

/*
 * Already enrolled: TLS verified under our chain for this FQDN, the served
 * leaf is the bound one and outside the renewal window, settings as wanted.
 */
static int
check_enrolled(struct enroll_pass *e, int *already)
{
	struct amt_cert *c = NULL;
	size_t nc = 0;
	const struct amt_cert *b;
	char *bound = NULL;
	const char *why;
	int r, ok, bound_is_served, ret = AMTCA_E_INTERNAL;

	*already = 0;
	if (!e->use_tls || e->served == NULL) {
		ret = 0;
		goto out;
	}
	if ((r = amt_tls_context_get(e->amt, &bound)) != 0) {
		ret = amt_err(e, r, "reading the TLS credential context");
		goto out;
	}
	if ((r = amt_certs_list(e->amt, &c, &nc)) != 0) {
		ret = amt_err(e, r, "listing AMT's certificates");
		goto out;
	}
	/* What this run replaces, if it renews: the leaf TLS serves now. */
	if (issued_by_us(e, e->served)) {
		if ((e->replaced = X509_dup(e->served)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		serial_of(e->served, e->bound_serial, sizeof(e->bound_serial));
	}
	b = cert_by_handle(c, nc, bound);
	bound_is_served = b != NULL && x509_der_eq(e->served, b->der, b->der_len);
	if ((r = settings_ok(e, &ok)) != 0) {
		ret = r;
		goto out;
	}
	/* A revoked leaf is not enrolled: it is replaced (over TLS pinned to
	 * it; a key-compromise revocation never gets this far). */
	if (e->replaced != NULL && revoked_in_store(e, e->served)) {
		warn(e, "the served certificate %s is revoked; replacing it",
		    e->bound_serial);
		ok = 0;
	}
	*already = e->replaced != NULL && bound_is_served && ok &&
	    !e->o->force && leaf_good(e, e->served, 1, &why);
	ret = 0;
out:
	amt_certs_free(c, nc);
	free(bound);
	return ret;
}

/* "RSA-2048", "P-256" for messages. */
static void
key_desc(EVP_PKEY *pk, char *buf, size_t len)
{
	if (pk != NULL && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA)
		snprintf(buf, len, "RSA-%d", EVP_PKEY_get_bits(pk));
	else if (pk != NULL && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC)
		snprintf(buf, len, "P-%d", EVP_PKEY_get_bits(pk));
	else
		snprintf(buf, len, "an unusual key");
}

/* Signed with a digest shorter than SHA-384? */
static int
sig_below_sha384(X509 *x)
{
	const EVP_MD *md;
	int mdnid = NID_undef;

	if (X509_get_signature_info(x, &mdnid, NULL, NULL, NULL) != 1 ||
	    (md = EVP_get_digestbynid(mdnid)) == NULL) {
		ERR_clear_error();
		return 1;
	}
	return EVP_MD_get_size(md) < 48;
}

/*
 * Pre-flight: a CA chain weaker than the leaves this firmware takes (AMT
 * 22: RSA-3072 or P-384) protects them only as much as its weakest key,
 * and AMT 22 may refuse SHA-256-signed chain certificates.  Warnings, not
 * failures: what AMT 22 enforces is not confirmed.
 */
static void
chain_warnings(struct enroll_pass *e, const char *version)
{
	const struct amt_profile *p = e->prof;
	X509 *ca[2] = { e->c->inter, e->c->root };
	static const char *const what[2] = { "intermediate", "root" };
	char weak[96] = "", sha[64] = "", kd[32];
	size_t i, wl = 0, sl = 0;

	for (i = 0; i < 2; i++) {
		if (ca[i] == NULL)
			continue;
		if (amt_profile_key_weak(p, X509_get0_pubkey(ca[i])) &&
		    wl < sizeof(weak)) {
			key_desc(X509_get0_pubkey(ca[i]), kd, sizeof(kd));
			wl += (size_t)snprintf(weak + wl, sizeof(weak) - wl,
			    "%s%s %s", wl ? ", " : "", what[i], kd);
		}
		if (p->chain_sha384 && sig_below_sha384(ca[i]) &&
		    sl < sizeof(sha))
			sl += (size_t)snprintf(sha + sl, sizeof(sha) - sl,
			    "%s%s", sl ? " and " : "", what[i]);
	}
	/* Rotation replaces the intermediate; a weak root needs a new CA. */
	if (weak[0] != '\0')
		warn(e, "AMT %s takes leaf keys of RSA-%d or P-%d and stronger, "
		    "but this CA's chain is weaker than the leaf (%s): %s",
		    version ? version : "?", p->min_rsa_bits, p->min_ec_bits,
		    weak, strstr(weak, "root") != NULL ? "the root's key stays "
		    "with the CA: make a new CA with 'amtca init --key-type "
		    "rsa3072|p384' (and rotate the intermediate with 'amtca ca "
		    "rotate --key-type rsa3072|p384')" : "rotate with 'amtca ca "
		    "rotate --key-type rsa3072|p384'");
	if (sha[0] != '\0')
		warn(e, "AMT %s may refuse chain certificates signed with "
		    "SHA-256, and this CA's %s %s: rotate with 'amtca ca rotate "
		    "--key-type rsa3072|p384' (the new intermediate is signed "
		    "with SHA-384; a root signs itself with SHA-384 only when it "
		    "is P-384: 'amtca init --key-type p384')",
		    version ? version : "?", sha, strchr(sha, ' ') ? "are" : "is");
}

static int
step_preflight(struct enroll_pass *e)
{
	struct amt_general g;
	struct store_device *dev = NULL;
	char detail[256];
	long long deadline;
	int r, ret = AMTCA_E_INTERNAL;

	memset(&g, 0, sizeof(g));
	if ((r = store_device_get(e->c->store, e->fqdn, &dev)) == 0) {
		e->rec_enrolled = !e->o->device_reset && dev->state != NULL &&
		    strcmp(dev->state, "enrolled") == 0;
		if (dev->cert_serial != NULL &&
		    (e->prev_serial = strdup(dev->cert_serial)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	} else if (r != AMTCA_E_NOT_FOUND) {
		ret = amtca_fail(r, "reading the device record: %s", errcopy(r));
		goto out;
	}
	amtca_err_clear();
	cred_rule_clear(&e->rule);
	if ((r = cred_rule_load(e->c->store, e->c->sgn, e->fqdn, e->o->tls_pin,
	    e->o->device_reset, &e->rule)) != 0) {
		ret = amtca_fail(r, "reading the records for %s: %s", e->fqdn,
		    errcopy(r));
		goto out;
	}
	if (e->rule.compromised || e->rule.retired) {
		/* Never re-enrolled automatically: nothing is sent.  The
		 * record keeps its address (and its state). */
		e->compromised = e->rule.compromised;
		e->retired = e->rule.retired;
		if (dev != NULL && (r = set_str(&e->res->address,
		    dev->address)) != 0) {
			ret = r;
			goto out;
		}
		ret = cred_rule_plain(&e->rule, e->fqdn);
		goto out;
	}
	if ((r = choose_address(e)) != 0) {
		ret = r;
		goto out;
	}
	/*
	 * A device that dropped the connection while answering may be
	 * restarting its network after a commit (an interrupted earlier run):
	 * 16992 closes, 16993 opens.  Choose the transport again until it
	 * settles; never on an authentication failure.
	 */
	deadline = amtca_now_ms() + e->tls_wait_ms;
	for (;;) {
		X509_free(e->served);
		e->served = NULL;
		if ((r = choose_transport(e)) != 0) {
			ret = r;
			goto out;
		}
		if ((r = amt_general_get(e->amt, &g)) == 0)
			break;
		if (r != AMTCA_E_AMT_TRANSPORT || amtca_now_ms() >= deadline ||
		    amt_aborted(e->o->abort_at_ms)) {
			ret = amt_err(e, r, "reading AMT_GeneralSettings");
			goto out;
		}
		amt_general_clear(&g);
		amtca_sleep_ms(1000);
	}
	if (!e->use_tls && !e->o->legacy_tls && g.version != NULL &&
	    atoi(g.version) > 0 && atoi(g.version) <= 12) {
		/* Its TLS lacks RFC 5746: we could turn TLS on, then not
		 * talk to it.  Refuse before changing anything. */
		ret = amtca_fail(AMTCA_E_USAGE, "AMT %s at %s: firmware 12 and "
		    "older needs legacy TLS renegotiation (and SECLEVEL 0) for "
		    "OpenSSL 3 to talk to it once TLS is on; rerun with "
		    "--legacy-tls", g.version, e->res->address);
		goto out;
	}
	e->prof = amt_profile_for(g.version);
	chain_warnings(e, g.version);
	if ((r = set_str(&e->res->amt_version, g.version)) != 0 ||
	    (r = check_identity(e, &g)) != 0 ||
	    (r = check_enrolled(e, &e->already)) != 0) {
		ret = r;
		goto out;
	}
	snprintf(detail, sizeof(detail), "AMT %s at %s over %s%s",
	    g.version ? g.version : "?", e->res->address,
	    e->use_tls ? "TLS" : "HTTP", e->already ? ", already enrolled" : "");
	step_done(e, ENROLL_PREFLIGHT, 0, detail);
	if (e->already) {
		/* Verified here: TLS under our chain, bound leaf, WS-MAN over
		 * TLS.  That leaf is the result. */
		if ((e->leaf = X509_dup(e->served)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		if ((r = result_leaf(e, NULL, 0)) != 0) {
			ret = r;
			goto out;
		}
		e->res->non_secure_open = e->plain_open;
		e->res->status = "already enrolled";
	}
	ret = 0;
out:
	amt_general_clear(&g);
	store_device_free(dev);
	return ret;
}

/* --- step 2: clock ------------------------------------------------------ */

static int
step_time(struct enroll_pass *e)
{
	uint32_t ta0 = 0, now;
	char detail[96];
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = amt_time_get(e->amt, &ta0)) != 0) {
		ret = amt_err(e, r, "GetLowAccuracyTimeSynch");
		goto out;
	}
	now = (uint32_t)time(NULL);
	if ((r = amt_time_set(e->amt, ta0, now, now)) != 0) {
		ret = amt_err(e, r, "SetHighAccuracyTimeSynch");
		goto out;
	}
	snprintf(detail, sizeof(detail), "AMT was %+lld s off",
	    (long long)ta0 - (long long)now);
	step_done(e, ENROLL_TIME, 0, detail);
	ret = 0;
out:
	return ret;
}

/* --- step 3: root and intermediate -------------------------------------- */

static int
add_ca_cert(struct enroll_pass *e, const unsigned char *der, int len, int root,
    const struct amt_cert *c, size_t nc, int *added)
{
	char **keep = &e->chain_added[root ? 0 : 1];
	char *handle = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (cert_by_der(c, nc, der, (size_t)len) != NULL) {
		ret = 0;
		goto out;
	}
	r = root ? amt_add_trusted_root(e->amt, der, (size_t)len, &handle) :
	    amt_add_cert(e->amt, der, (size_t)len, &handle);
	if (r != 0 && e->prof->chain_sha384 &&
	    is_status(e, r, AMT_PT_INVALID_CERT)) {
		r = amt_err(e, r, root ? "AddTrustedRootCertificate" :
		    "AddCertificate (intermediate)");
		ret = amtca_fail(r, "%s; this firmware may refuse SHA-256-signed "
		    "chain certificates: %s", errcopy(r), root ? "the root "
		    "signs itself with SHA-384 only as P-384: make a new CA "
		    "with 'amtca init --key-type p384'" : "rotate with 'amtca "
		    "ca rotate --key-type p384'");
		goto out;
	}
	if (r != 0 && !is_status(e, r, AMT_PT_DUPLICATE)) {
		ret = amt_err(e, r, root ? "AddTrustedRootCertificate" :
		    "AddCertificate (intermediate)");
		goto out;
	}
	if (r == 0) {
		(*added)++;
		/* Taken back if no device key can be had (new_leaf). */
		free(*keep);
		*keep = handle;
		handle = NULL;
	}
	ret = 0;
out:
	free(handle);
	return ret;
}

static int
step_chain(struct enroll_pass *e)
{
	struct amt_cert *c = NULL;
	size_t nc = 0;
	int r, added = 0, ret = AMTCA_E_INTERNAL;

	if ((r = amt_certs_list(e->amt, &c, &nc)) != 0) {
		ret = amt_err(e, r, "listing AMT's certificates");
		goto out;
	}
	if ((r = add_ca_cert(e, e->root_der, e->root_len, 1, c, nc, &added)) != 0 ||
	    (e->inter_der != NULL &&
	    (r = add_ca_cert(e, e->inter_der, e->inter_len, 0, c, nc, &added)) != 0)) {
		ret = r;
		goto out;
	}
	step_done(e, ENROLL_CHAIN, added == 0, added ? "added" : "already present");
	ret = 0;
out:
	amt_certs_free(c, nc);
	return ret;
}

/* --- step 4: the leaf --------------------------------------------------- */

/* DER of a PKCS#10 request for CN=fqdn over `pub`, "signed" with zeros. */
static int
null_csr(struct enroll_pass *e, EVP_PKEY *pub, int sigalg, unsigned char **out,
    size_t *outlen)
{
	int rsa = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA;
	int nid = sigalg == 2 ? (rsa ? NID_sha384WithRSAEncryption :
	    NID_ecdsa_with_SHA384) : (rsa ? NID_sha256WithRSAEncryption :
	    NID_ecdsa_with_SHA256);
	X509_REQ *req = NULL;
	X509_NAME *nm = NULL;
	X509_ALGOR *alg = NULL;
	ASN1_BIT_STRING *sig = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	unsigned char *zeros = NULL, *der = NULL;
	char san[AMTCA_FQDN_MAX + 8];
	int n, ksize, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((req = X509_REQ_new()) == NULL || (nm = X509_NAME_new()) == NULL ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL)
		goto nomem;
	if (X509_REQ_set_version(req, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8,
	    (const unsigned char *)e->fqdn, -1, -1, 0) != 1 ||
	    X509_REQ_set_subject_name(req, nm) != 1 ||
	    X509_REQ_set_pubkey(req, pub) != 1)
		goto ssl;
	snprintf(san, sizeof(san), "DNS:%s", e->fqdn);
	if ((ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san)) == NULL ||
	    sk_X509_EXTENSION_push(exts, ext) <= 0)
		goto ssl;
	ext = NULL;
	if ((ext = X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage,
	    "serverAuth")) == NULL || sk_X509_EXTENSION_push(exts, ext) <= 0)
		goto ssl;
	ext = NULL;
	if (X509_REQ_add_extensions(req, exts) != 1)
		goto ssl;
	/* The placeholder signature AMT replaces: algorithm + key-size zeros. */
	if ((alg = X509_ALGOR_new()) == NULL ||
	    X509_ALGOR_set0(alg, OBJ_nid2obj(nid), rsa ? V_ASN1_NULL :
	    V_ASN1_UNDEF, NULL) != 1 || X509_REQ_set1_signature_algo(req, alg) != 1)
		goto ssl;
	if ((ksize = EVP_PKEY_get_size(pub)) <= 0 ||
	    (zeros = calloc(1, (size_t)ksize)) == NULL ||
	    (sig = ASN1_BIT_STRING_new()) == NULL ||
	    ASN1_BIT_STRING_set(sig, zeros, ksize) != 1)
		goto nomem;
	sig->flags &= ~0x07L;
	sig->flags |= ASN1_STRING_FLAG_BITS_LEFT;	/* 0 unused bits */
	X509_REQ_set0_signature(req, sig);
	sig = NULL;
	if ((n = i2d_X509_REQ(req, &der)) <= 0)
		goto ssl;
	*out = der;
	*outlen = (size_t)n;
	ret = 0;
	goto out;
ssl:
	ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "building the null-signed CSR");
	goto out;
nomem:
	ret = AMTCA_E_NOMEM;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ASN1_BIT_STRING_free(sig);
	X509_ALGOR_free(alg);
	X509_NAME_free(nm);
	X509_REQ_free(req);
	free(zeros);
	return ret;
}

/* The handle of a certificate AMT called a duplicate. */
static int
handle_by_der(struct enroll_pass *e, const unsigned char *der, size_t len, char **handle)
{
	struct amt_cert *c = NULL;
	size_t nc = 0;
	const struct amt_cert *f;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = amt_certs_list(e->amt, &c, &nc)) != 0) {
		ret = amt_err(e, r, "listing AMT's certificates");
		goto out;
	}
	if ((f = cert_by_der(c, nc, der, len)) == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_MISMATCH, "AMT says the leaf is a "
		    "duplicate but does not list it");
		goto out;
	}
	ret = set_str(handle, f->instance_id);
out:
	amt_certs_free(c, nc);
	return ret;
}

/* Newer than the certificate --force replaces? (see docs/enroll.md) */
static int
newer_than_replaced(struct enroll_pass *e, X509 *x)
{
	if (e->replaced == NULL)
		return 1;
	if (x509_eq(x, e->replaced))
		return 0;
	return ASN1_TIME_compare(X509_get0_notBefore(x),
	    X509_get0_notBefore(e->replaced)) > 0;
}

/*
 * Would the firmware's profile take `x` as its leaf?  A leaf of an older
 * profile (RSA-2048, SHA-256) left on a device updated to AMT 22 is not
 * reused: AMT 22 refuses it in the handshake.
 */
static int
leaf_fits_profile(struct enroll_pass *e, X509 *x)
{
	return !amt_profile_key_weak(e->prof, X509_get0_pubkey(x)) &&
	    (!e->prof->leaf_sha384 || !sig_below_sha384(x));
}

/*
 * Reuse instead of generating (crash points after AddCertificate and after
 * ca_issue): an AMT certificate of ours for this FQDN with its key in AMT,
 * or a certificate we issued to this device whose key is in AMT, either
 * fitting the firmware's profile.
 */
static int
find_reusable(struct enroll_pass *e, const struct amt_cert *c, size_t nc,
    const struct amt_key *k, size_t nk, const char *bound)
{
	struct store_cert *sc = NULL;
	size_t nsc = 0, i;
	X509 *x, *best = NULL;
	const char *best_handle = NULL, *why;
	char *handle = NULL;
	int r, is_bound, best_bound, ret = AMTCA_E_INTERNAL;

	for (i = 0; i < nc; i++) {
		if (c[i].trusted_root || c[i].read_only ||
		    (x = der_x509(c[i].der, c[i].der_len)) == NULL)
			continue;
		if (!issued_by_us(e, x) || !leaf_good(e, x, 1, &why) ||
		    !leaf_fits_profile(e, x) || revoked_in_store(e, x) ||
		    key_for_pub(k, nk, X509_get0_pubkey(x)) == NULL ||
		    (e->o->force && !newer_than_replaced(e, x))) {
			X509_free(x);
			continue;
		}
		/* Prefer the bound one, else the newest. */
		is_bound = bound != NULL && strcmp(c[i].instance_id, bound) == 0;
		best_bound = best_handle != NULL && bound != NULL &&
		    strcmp(best_handle, bound) == 0;
		if (best == NULL || is_bound || (!best_bound &&
		    ASN1_TIME_compare(X509_get0_notBefore(x),
		    X509_get0_notBefore(best)) > 0)) {
			X509_free(best);
			best = x;
			best_handle = c[i].instance_id;
		} else
			X509_free(x);
	}
	if (best != NULL) {
		if ((ret = set_str(&e->leaf_handle, best_handle)) != 0)
			goto out;
		e->leaf = best;
		best = NULL;
		e->res->reused = 1;
		ret = 0;
		goto out;
	}
	/*
	 * Issued and durably recorded, but AddCertificate never happened:
	 * only possible when AMT holds a key without a certificate, so the
	 * store is asked only then (for this device's records).
	 */
	for (i = 0; i < nk && key_has_cert(c, nc, &k[i]); i++)
		;
	if (i == nk) {
		ret = 0;
		goto out;
	}
	if ((r = device_certs(e, &sc, &nsc)) != 0) {
		ret = amtca_fail(r, "listing issued certificates: %s", errcopy(r));
		goto out;
	}
	/* Every record bound to the device is an AMT leaf the engine asked
	 * for (the signer binds only those, and `amtca issue` never does). */
	for (i = nsc; i-- > 0;) {
		if (sc[i].status == NULL || strcmp(sc[i].status, "valid") != 0 ||
		    (x = der_x509(sc[i].der, sc[i].der_len)) == NULL)
			continue;
		if (!leaf_good(e, x, 1, &why) || !leaf_fits_profile(e, x) ||
		    key_for_pub(k, nk, X509_get0_pubkey(x)) == NULL ||
		    (e->o->force && !newer_than_replaced(e, x))) {
			X509_free(x);
			continue;
		}
		r = amt_add_cert(e->amt, sc[i].der, sc[i].der_len, &handle);
		if (r != 0 && !is_status(e, r, AMT_PT_DUPLICATE)) {
			X509_free(x);
			ret = amt_err(e, r, "AddCertificate (leaf issued earlier)");
			goto out;
		}
		if (r != 0 && (r = handle_by_der(e, sc[i].der, sc[i].der_len,
		    &handle)) != 0) {
			X509_free(x);
			ret = r;
			goto out;
		}
		e->leaf = x;
		e->leaf_handle = handle;
		handle = NULL;
		e->res->reused = 1;
		break;
	}
	ret = 0;
out:
	X509_free(best);
	free(handle);
	store_certs_free(sc, nsc);
	return ret;
}

/*
 * GenerateKeyPair of one key type, retrying while AMT says it is busy
 * generating keys.  A refusal of the type itself sets *refused to AMT's
 * status and returns AMTCA_E_AMT_STATUS without a message.
 */
static int
generate_key_one(struct enroll_pass *e, const struct amt_keyspec *ks,
    char **handle, int *refused)
{
	const struct amt_error *ae;
	long backoff = AMTCA_AMT_KEYGEN_BACKOFF_MS;
	int r, tries, ret = AMTCA_E_INTERNAL;

	*refused = 0;
	for (tries = 1;; tries++) {
		r = amt_generate_key_pair(e->amt, ks->alg, ks->bits, handle);
		if (r == 0)
			break;
		ae = r == AMTCA_E_AMT_STATUS ? amt_last_error(e->amt) : NULL;
		if (ae != NULL && amt_profile_keygen_refusal(ae->return_value)) {
			*refused = ae->return_value;
			ret = r;
			goto out;
		}
		if (!is_status(e, r, AMT_PT_PKI_GENERATING_KEYS) ||
		    tries >= AMTCA_AMT_KEYGEN_TRIES ||
		    amt_aborted(e->o->abort_at_ms)) {
			ret = amt_err(e, r, tries > 1 ? "GenerateKeyPair (after "
			    "retries while AMT was busy)" : "GenerateKeyPair");
			goto out;
		}
		amtca_sleep_ms(backoff);
		if (backoff < 8 * AMTCA_AMT_KEYGEN_BACKOFF_MS)
			backoff *= 2;
	}
	if (tries > 1)
		progress(e, ENROLL_LEAF, ENROLL_EV_BEGIN, "AMT was busy; key "
		    "generated after %d tries", tries);
	ret = 0;
out:
	return ret;
}

/*
 * A device key of the first type in the profile that AMT accepts: AMT
 * tells what it offers only by refusing, and a refused GenerateKeyPair
 * creates nothing, so trying in turn stays reconcilable.  When every type
 * is refused, the CA certificates this pass added are removed again, so
 * that the device is left as it was found.
 */
static int
generate_key(struct enroll_pass *e, char **handle,
    const struct amt_keyspec **spec)
{
	const struct amt_profile *p = e->prof;
	char tried[160] = "";
	size_t i, tl = 0;
	int r, refused, undone = 0, ret = AMTCA_E_INTERNAL;

	*spec = NULL;
	for (i = 0; i < p->nkeys; i++) {
		r = generate_key_one(e, &p->keys[i], handle, &refused);
		if (r == 0) {
			if (i > 0)
				progress(e, ENROLL_LEAF, ENROLL_EV_BEGIN, "AMT "
				    "refused %s; generated %s", tried,
				    p->keys[i].name);
			*spec = &p->keys[i];
			ret = 0;
			goto out;
		}
		if (refused == 0) {
			ret = r;
			goto out;
		}
		if (tl < sizeof(tried))
			tl += (size_t)snprintf(tried + tl, sizeof(tried) - tl,
			    "%s%s: %d %s", tl ? ", " : "", p->keys[i].name,
			    refused, amt_status_name(refused));
	}
	for (i = 0; i < 2; i++) {
		if (e->chain_added[i] == NULL)
			continue;
		if ((r = amt_cert_delete(e->amt, e->chain_added[i])) != 0) {
			ret = amt_err(e, r, "removing a CA certificate added by "
			    "this run");
			goto out;
		}
		free(e->chain_added[i]);
		e->chain_added[i] = NULL;
		undone++;
	}
	ret = amtca_fail(AMTCA_E_AMT_STATUS, "GenerateKeyPair: AMT %s refused "
	    "every device key type of its profile (%s: %s)%s",
	    e->res->amt_version ? e->res->amt_version : "?", p->name, tried,
	    undone ? "; the CA certificates this run added were removed" : "");
out:
	return ret;
}

/* Delete keys with no certificate in AMT (crash after GenerateKeyPair). */
static int
delete_orphan_keys(struct enroll_pass *e, const struct amt_cert *c, size_t nc,
    const struct amt_key *k, size_t nk)
{
	size_t i;
	int r;

	for (i = 0; i < nk; i++) {
		if (key_has_cert(c, nc, &k[i]))
			continue;
		if ((r = amt_key_delete(e->amt, k[i].instance_id)) != 0)
			return amt_err(e, r, "deleting an orphan key pair before "
			    "generating a new one");
		e->res->removed_keys++;
	}
	return 0;
}

static int
new_leaf(struct enroll_pass *e, const struct amt_cert *c, size_t nc,
    const struct amt_key *k, size_t nk)
{
	struct amt_key *k2 = NULL;
	size_t nk2 = 0, i;
	char *khandle = NULL, *chandle = NULL;
	unsigned char *ncsr = NULL, *scsr = NULL, *leafder = NULL;
	size_t ncsr_len = 0, scsr_len = 0;
	EVP_PKEY *pub = NULL;
	struct ca_csr *csr = NULL;
	X509 *leaf = NULL;
	struct sgn_issue_req req;
	struct sgn_who who;
	const unsigned char *dp;
	size_t derlen = 0;
	char *iserial = NULL;
	const struct amt_keyspec *ks = NULL;
	int r, n, ret = AMTCA_E_INTERNAL;

	if ((r = delete_orphan_keys(e, c, nc, k, nk)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = generate_key(e, &khandle, &ks)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = amt_keys_list(e->amt, &k2, &nk2)) != 0) {
		ret = amt_err(e, r, "reading the new key pair");
		goto out;
	}
	for (i = 0; i < nk2; i++)
		if (strcmp(k2[i].instance_id, khandle) == 0)
			pub = k2[i].pub;
	if (pub == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "AMT does not list the key pair "
		    "it just generated (%s) with a usable public key", khandle);
		goto out;
	}
	if (EVP_PKEY_get_base_id(pub) != (ks->alg == AMT_KEYALG_RSA ?
	    EVP_PKEY_RSA : EVP_PKEY_EC) || EVP_PKEY_get_bits(pub) != ks->bits) {
		char kd[32];

		key_desc(pub, kd, sizeof(kd));
		ret = amtca_fail(AMTCA_E_AMT_MISMATCH, "AMT generated %s for %s "
		    "when asked for %s", kd, khandle, ks->name);
		goto out;
	}
	if ((r = null_csr(e, pub, e->prof->csr_sigalg, &ncsr, &ncsr_len)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = amt_pkcs10_request(e->amt, khandle, e->prof->csr_sigalg,
	    ncsr, ncsr_len, &scsr, &scsr_len)) != 0) {
		ret = amt_err(e, r, "GeneratePKCS10RequestEx");
		goto out;
	}
	/* AMT's CSR must verify and carry exactly the key we asked about. */
	if ((r = ca_csr_parse(scsr, scsr_len, &csr)) != 0) {
		ret = amtca_fail(r, "the CSR AMT signed is not acceptable: %s",
		    errcopy(r));
		goto out;
	}
	if (EVP_PKEY_eq(ca_csr_pubkey(csr), pub) != 1) {
		ret = amtca_fail(AMTCA_E_AMT_MISMATCH, "the CSR AMT signed carries "
		    "a different public key than key pair %s", khandle);
		goto out;
	}
	/* The signer parses AMT's CSR again itself, checks the profile and
	 * the name, issues and records; we get the certificate. */
	memset(&req, 0, sizeof(req));
	memset(&who, 0, sizeof(who));
	who.kind = SGN_WHO_LOCAL;
	req.profile = SGN_PROFILE_AMT;
	req.fqdn = e->fqdn;
	req.device = e->fqdn;
	req.csr = scsr;
	req.csrlen = scsr_len;
	/* The profile's digest travels with the request (AMT 22: SHA-384). */
	req.digest = e->prof->leaf_sha384 ? CA_DIGEST_SHA384 : CA_DIGEST_DEFAULT;
	if ((r = sgn_issue(e->c->sgn, &who, &req, &leafder, &derlen,
	    &iserial)) != 0) {
		ret = amtca_fail(r, "issuing the certificate: %s", errcopy(r));
		goto out;
	}
	progress(e, ENROLL_LEAF, ENROLL_EV_BEGIN, "issued serial %s", iserial);
	dp = leafder;
	if (derlen > INT_MAX || (leaf = d2i_X509(NULL, &dp, (long)derlen)) == NULL ||
	    dp != leafder + derlen) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "the signer's certificate "
		    "does not parse");
		goto out;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), pub) != 1) {
		ret = amtca_fail(AMTCA_E_CERT, "the signer's certificate carries "
		    "another key than AMT's CSR");
		goto out;
	}
	n = (int)derlen;
	if (n > AMTCA_AMT_CERT_DER_MAX) {
		ret = amtca_fail(AMTCA_E_LIMIT, "the leaf is %d bytes, more than "
		    "AMT's %d", n, AMTCA_AMT_CERT_DER_MAX);
		goto out;
	}
	r = amt_add_cert(e->amt, leafder, (size_t)n, &chandle);
	if (r != 0 && is_status(e, r, AMT_PT_DUPLICATE)) {
		/* A transport-level resend of an AddCertificate that had
		 * succeeded: the leaf is there, find its handle. */
		if ((r = handle_by_der(e, leafder, (size_t)n, &chandle)) != 0) {
			ret = r;
			goto out;
		}
	} else if (r != 0) {
		ret = amt_err(e, r, "AddCertificate (leaf)");
		goto out;
	}
	e->leaf = leaf;
	leaf = NULL;
	e->leaf_handle = chandle;
	chandle = NULL;
	ret = 0;
out:
	amt_keys_free(k2, nk2);
	free(khandle);
	free(chandle);
	free(ncsr);
	free(scsr);
	free(leafder);
	free(iserial);
	ca_csr_free(csr);
	X509_free(leaf);
	return ret;
}

static int
step_leaf(struct enroll_pass *e)
{
	struct amt_cert *c = NULL;
	struct amt_key *k = NULL;
	size_t nc = 0, nk = 0;
	char *bound = NULL, serial[80], detail[160];
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = amt_certs_list(e->amt, &c, &nc)) != 0 ||
	    (r = amt_keys_list(e->amt, &k, &nk)) != 0 ||
	    (r = amt_tls_context_get(e->amt, &bound)) != 0) {
		ret = amt_err(e, r, "reading AMT's certificate store");
		goto out;
	}
	if (e->replaced == NULL) {
		/* --force without TLS up: the bound leaf of ours is what we replace. */
		const struct amt_cert *b = cert_by_handle(c, nc, bound);
		X509 *x = b ? der_x509(b->der, b->der_len) : NULL;

		if (x != NULL && issued_by_us(e, x))
			e->replaced = x;
		else
			X509_free(x);
	}
	if ((r = find_reusable(e, c, nc, k, nk, bound)) != 0) {
		ret = r;
		goto out;
	}
	if (e->leaf == NULL && (r = new_leaf(e, c, nc, k, nk)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = result_leaf(e, serial, sizeof(serial))) != 0) {
		ret = r;
		goto out;
	}
	snprintf(detail, sizeof(detail), "%s serial %s as %s",
	    e->res->reused ? "reusing" : "new", serial, e->leaf_handle);
	step_done(e, ENROLL_LEAF, e->res->reused, detail);
	ret = 0;
out:
	amt_certs_free(c, nc);
	amt_keys_free(k, nk);
	free(bound);
	return ret;
}

/* --- step 5: bind, settings, commit -------------------------------------- */

static int
step_bind(struct enroll_pass *e)
{
	struct amt_tls_setting *ts = NULL;
	size_t nt = 0, i;
	char *bound = NULL;
	int r, remote = 0, ret = AMTCA_E_INTERNAL;

	e->commit_lost = 0;
	if ((r = amt_tls_context_get(e->amt, &bound)) != 0) {
		ret = amt_err(e, r, "reading the TLS credential context");
		goto out;
	}
	if (bound != NULL && strcmp(bound, e->leaf_handle) == 0) {
		/* already points at our leaf */
	} else if (bound != NULL) {
		if ((r = amt_tls_context_put(e->amt, e->leaf_handle)) != 0) {
			ret = amt_err(e, r, "Put AMT_TLSCredentialContext");
			goto out;
		}
	} else if ((r = amt_tls_context_create(e->amt, e->leaf_handle)) != 0) {
		if (!is_fault(e, r, "AlreadyExists")) {
			ret = amt_err(e, r, "Create AMT_TLSCredentialContext");
			goto out;
		}
		/* Someone bound meanwhile, or the listing lied: re-read, Put. */
		free(bound);
		bound = NULL;
		if ((r = amt_tls_context_get(e->amt, &bound)) != 0) {
			ret = amt_err(e, r, "re-reading the TLS credential context");
			goto out;
		}
		if ((bound == NULL || strcmp(bound, e->leaf_handle) != 0) &&
		    (r = amt_tls_context_put(e->amt, e->leaf_handle)) != 0) {
			ret = amt_err(e, r, "Put AMT_TLSCredentialContext");
			goto out;
		}
	}
	if ((r = amt_tls_settings_list(e->amt, &ts, &nt)) != 0) {
		ret = amt_err(e, r, "reading TLS settings");
		goto out;
	}
	/* Remote first, then local (§6.1 steps 11-12). */
	for (i = 0; i < nt; i++) {
		if (strcmp(ts[i].instance_id, AMT_TLS_REMOTE) != 0)
			continue;
		remote = 1;
		e->want_non_secure = e->o->accept_non_secure &&
		    ts[i].non_secure_supported != 0;
		if (e->o->accept_non_secure && !e->want_non_secure)
			warn(e, "this firmware does not support non-secure "
			    "connections with TLS on: port %d closes", e->port);
		ts[i].enabled = 1;
		ts[i].mutual_auth = 0;
		ts[i].accept_non_secure = e->want_non_secure;
		if ((r = amt_tls_setting_put(e->amt, &ts[i])) != 0) {
			ret = amt_err(e, r, "Put remote AMT_TLSSettingData");
			goto out;
		}
	}
	if (!remote) {
		ret = amtca_fail(AMTCA_E_AMT_MISMATCH, "AMT has no '%s' instance",
		    AMT_TLS_REMOTE);
		goto out;
	}
	for (i = 0; i < nt; i++) {
		if (strcmp(ts[i].instance_id, AMT_TLS_LOCAL) != 0)
			continue;
		ts[i].enabled = 1;
		ts[i].mutual_auth = 0;	/* accept_non_secure echoed as read */
		if ((r = amt_tls_setting_put(e->amt, &ts[i])) != 0) {
			ret = amt_err(e, r, "Put local AMT_TLSSettingData");
			goto out;
		}
	}
	/*
	 * Commit last: everything before it is pending, so a crash before
	 * here leaves AMT running its old configuration (never half-on).
	 */
	if ((r = amt_commit(e->amt)) != 0) {
		if (r != AMTCA_E_AMT_TRANSPORT) {
			ret = amt_err(e, r, "CommitChanges");
			goto out;
		}
		/* AMT restarts its network stack: the reply may be lost. */
		e->commit_lost = 1;
	}
	step_done(e, ENROLL_BIND, 0, e->commit_lost ? "committed (reply lost "
	    "while AMT restarted its network; verifying)" : "committed");
	ret = 0;
out:
	amt_tls_settings_free(ts, nt);
	free(bound);
	return ret;
}

/* --- step 6: prove it ----------------------------------------------------- */

static int
step_verify(struct enroll_pass *e)
{
	struct amt_opts ao;
	struct amt_general g;
	X509 *x = NULL;
	unsigned char pin[SHA256_DIGEST_LENGTH], *der = NULL;
	long long deadline, mismatch_since = 0, now;
	char why[400], got[80], want[80], detail[200];
	int r, n, ret = AMTCA_E_INTERNAL, last = 0;

	memset(&g, 0, sizeof(g));
	why[0] = '\0';
	deadline = amtca_now_ms() + e->tls_wait_ms;
	amt_opts_fill(e, &ao, 1);
	for (;;) {
		X509_free(x);
		x = NULL;
		r = amt_tls_fetch_leaf(&ao, &x);
		now = amtca_now_ms();
		if (r == 0 && x509_eq(x, e->leaf))
			break;
		if (r == 0 && x509_eq(x, e->replaced)) {
			/* the old certificate until AMT restarts its listener */
			mismatch_since = 0;
			last = 1;
			serial_of(x, got, sizeof(got));
			serial_of(e->leaf, want, sizeof(want));
			snprintf(why, sizeof(why), "it still serves the previous "
			    "certificate, serial %s, not the installed %s", got,
			    want);
		} else if (r == AMTCA_E_AMT_TLS &&
		    tls_handshake_failure(r, amtca_errmsg(r))) {
			/* no certificate seen: keep trying until the deadline */
			mismatch_since = 0;
			last = 0;
			snprintf(why, sizeof(why), "%s%s", amtca_errmsg(r),
			    e->o->legacy_tls ? "" : "; AMT 12 and older need "
			    "--legacy-tls");
		} else if (r == 0 || r == AMTCA_E_AMT_TLS) {
			if (mismatch_since == 0)
				mismatch_since = now;
			last = r;
			if (r == 0) {
				serial_of(x, got, sizeof(got));
				serial_of(e->leaf, want, sizeof(want));
				snprintf(why, sizeof(why), "it serves serial %s, "
				    "not the installed %s", got, want);
			} else
				snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
			if (now - mismatch_since >= MISMATCH_GRACE_MS) {
				ret = amtca_fail(AMTCA_E_AMT_TLS, "%s:%d does not serve "
				    "the certificate just installed (%s): failing "
				    "closed. The device or something in front of it "
				    "answers with another certificate; check "
				    "--address/DNS and the device", e->res->address,
				    e->tls_port, why);
				goto out;
			}
		} else {
			mismatch_since = 0;
			snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
		}
		if (amt_aborted(e->o->abort_at_ms)) {
			ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "waiting for "
			    "TLS on %s:%d: aborted, the run is stopping (%s); "
			    "the next run reconciles", e->res->address,
			    e->tls_port, why);
			goto out;
		}
		if (now >= deadline && last) {
			ret = amtca_fail(AMTCA_E_AMT_TLS, "%s:%d does not serve "
			    "the certificate just installed %ld ms after the "
			    "commit (%s): failing closed; check what answers on "
			    "that address", e->res->address, e->tls_port,
			    e->tls_wait_ms, why);
			goto out;
		}
		if (now >= deadline) {
			ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "TLS did not come "
			    "up on %s:%d within %ld ms (%s)%s; rerun to resume",
			    e->res->address, e->tls_port, e->tls_wait_ms, why,
			    e->commit_lost ? "; the commit reply was lost, the "
			    "commit may not have happened" : "");
			goto out;
		}
		amtca_sleep_ms(POLL_MS);
	}
	/* Byte-identical to what we issued (X509_cmp above compares the DER
	 * hash; check the bytes too), then pin it for the WS-MAN Get. */
	if ((n = i2d_X509(e->leaf, &der)) <= 0 || !x509_der_eq(x, der, (size_t)n)) {
		ret = amtca_fail(AMTCA_E_AMT_TLS, "the served certificate differs "
		    "from the issued one");
		goto out;
	}
	SHA256(der, (size_t)n, pin);
	ao.pin_sha256 = pin;
	amt_free(e->amt);
	e->amt = NULL;
	if ((r = amt_open(&ao, &e->amt)) != 0 ||
	    (r = amt_general_get(e->amt, &g)) != 0) {
		ret = amt_err(e, r, "authenticated WS-MAN Get over TLS");
		goto out;
	}
	e->use_tls = 1;
	if (!e->want_non_secure) {
		/* 16992 must stop answering. */
		while (net_tcp_probe(e->res->address, e->port, PROBE_MS) == 0) {
			if (amtca_now_ms() >= deadline ||
			    amt_aborted(e->o->abort_at_ms)) {
				ret = amtca_fail(AMTCA_E_AMT_MISMATCH, "port %d still "
				    "answers after the commit although "
				    "AcceptNonSecureConnections=false; rerun to "
				    "commit again", e->port);
				goto out;
			}
			amtca_sleep_ms(POLL_MS);
		}
		amtca_err_clear();
	}
	e->res->non_secure_open = e->want_non_secure;
	snprintf(detail, sizeof(detail), "leaf verified, byte-identical, "
	    "WS-MAN over TLS ok, port %d %s", e->port,
	    e->want_non_secure ? "left open" : "closed");
	step_done(e, ENROLL_VERIFY, 0, detail);
	ret = 0;
out:
	amt_general_clear(&g);
	OPENSSL_free(der);
	X509_free(x);
	return ret;
}

/*
 * The proven leaf is the device's one valid certificate: every other one
 * the records issued to the device (the replaced leaf of a renewal or
 * --force, a leaf of an interrupted run) is revoked as superseded, so the
 * CRL and `list` never show several valid serials for one device.  Only
 * after proof: until then the old leaf is what serves.
 */
static void
supersede_others(struct enroll_pass *e)
{
	struct store_cert *sc = NULL;
	size_t nsc = 0, i;
	char serial[80];
	struct sgn_who who;
	int r;

	memset(&who, 0, sizeof(who));
	who.kind = SGN_WHO_LOCAL;
	serial_of(e->leaf, serial, sizeof(serial));
	if ((r = device_certs(e, &sc, &nsc)) != 0) {
		warn(e, "could not list this device's certificates to mark the "
		    "replaced ones superseded: %s", amtca_errmsg(r));
		return;
	}
	for (i = 0; i < nsc; i++) {
		if (sc[i].status == NULL || strcmp(sc[i].status, "valid") != 0 ||
		    strcasecmp(sc[i].serial, serial) == 0)
			continue;
		if ((r = sgn_revoke(e->c->sgn, &who, sc[i].serial, 4, NULL,
		    NULL)) != 0)
			warn(e, "could not mark %s superseded: %s; run amtca "
			    "revoke %s --reason superseded", sc[i].serial,
			    amtca_errmsg(r), sc[i].serial);
		else
			e->res->superseded++;
	}
	store_certs_free(sc, nsc);
}

/* --- step 7: cleanup ----------------------------------------------------- */

static int
step_cleanup(struct enroll_pass *e)
{
	struct amt_cert *c = NULL;
	struct amt_key *k = NULL;
	size_t nc = 0, nk = 0, i;
	char *bound = NULL, detail[120];
	const struct amt_cert *b;
	X509 *bx = NULL, *x;
	unsigned dc = 0, dk = 0;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = amt_tls_context_get(e->amt, &bound)) != 0 ||
	    (r = amt_certs_list(e->amt, &c, &nc)) != 0) {
		ret = amt_err(e, r, "reading AMT's certificate store");
		goto out;
	}
	if ((b = cert_by_handle(c, nc, bound)) == NULL ||
	    (bx = der_x509(b->der, b->der_len)) == NULL || !x509_eq(bx, e->leaf)) {
		ret = amtca_fail(AMTCA_E_AMT_MISMATCH, "the TLS binding does not "
		    "point at the verified certificate; not cleaning up");
		goto out;
	}
	/* Certificates first: our unbound leaves (never CA certs, roots,
	 * read-only ones, or anything not issued by our intermediate, except
	 * the pinned leaf we replaced). */
	for (i = 0; i < nc; i++) {
		if (&c[i] == b || c[i].trusted_root || c[i].read_only ||
		    cert_by_der(&c[i], 1, e->root_der, (size_t)e->root_len) ||
		    (e->inter_der && cert_by_der(&c[i], 1, e->inter_der,
		    (size_t)e->inter_len)))
			continue;
		if ((x = der_x509(c[i].der, c[i].der_len)) == NULL)
			continue;
		/* ... and the foreign leaf the operator's pin let us replace. */
		r = (issued_by_us(e, x) || (e->foreign_pin && e->served != NULL &&
		    x509_eq(x, e->served))) && !x509_eq(x, e->leaf);
		X509_free(x);
		if (!r)
			continue;
		if ((r = amt_cert_delete(e->amt, c[i].instance_id)) != 0) {
			if (r == AMTCA_E_AMT_FAULT || r == AMTCA_E_AMT_STATUS) {
				warn(e, "AMT refused to delete %s: %s",
				    c[i].instance_id, amtca_errmsg(r));
				continue;
			}
			ret = amt_err(e, r, "deleting an old certificate");
			goto out;
		}
		dc++;
	}
	/* Then keys that no longer have a certificate (never the bound one). */
	amt_certs_free(c, nc);
	c = NULL;
	nc = 0;
	if ((r = amt_certs_list(e->amt, &c, &nc)) != 0 ||
	    (r = amt_keys_list(e->amt, &k, &nk)) != 0) {
		ret = amt_err(e, r, "re-reading AMT's certificate store");
		goto out;
	}
	for (i = 0; i < nk; i++) {
		if (k[i].pub == NULL || key_has_cert(c, nc, &k[i]) ||
		    EVP_PKEY_eq(k[i].pub, X509_get0_pubkey(e->leaf)) == 1)
			continue;
		if ((r = amt_key_delete(e->amt, k[i].instance_id)) != 0) {
			if (r == AMTCA_E_AMT_FAULT || r == AMTCA_E_AMT_STATUS) {
				warn(e, "AMT refused to delete %s: %s",
				    k[i].instance_id, amtca_errmsg(r));
				continue;
			}
			ret = amt_err(e, r, "deleting an old key pair");
			goto out;
		}
		dk++;
	}
	e->res->removed_certs += dc;
	e->res->removed_keys += dk;
	if (e->res->removed_certs + e->res->removed_keys == 0)
		snprintf(detail, sizeof(detail), "nothing to remove");
	else
		snprintf(detail, sizeof(detail), "removed %u certificate(s), "
		    "%u key pair(s)", e->res->removed_certs, e->res->removed_keys);
	step_done(e, ENROLL_CLEANUP, 0, detail);
	ret = 0;
out:
	X509_free(bx);
	amt_certs_free(c, nc);
	amt_keys_free(k, nk);
	free(bound);
	return ret;
}

/* --- the run ------------------------------------------------------------- */

/* Forget what one pass learnt, for a fresh pass (see enroll_run). */
static void
reset_pass(struct enroll_pass *e)
{
	amt_free(e->amt);
	e->amt = NULL;
	X509_free(e->served);
	X509_free(e->replaced);
	X509_free(e->leaf);
	e->served = e->replaced = e->leaf = NULL;
	free(e->leaf_handle);
	e->leaf_handle = NULL;
	free(e->prev_serial);
	e->prev_serial = NULL;
	e->bound_serial[0] = '\0';
	e->use_tls = e->rec_enrolled = e->resolved = e->have_pin = 0;
	e->foreign_pin = 0;
	free(e->chain_added[0]);
	free(e->chain_added[1]);
	e->chain_added[0] = e->chain_added[1] = NULL;
	cred_rule_clear(&e->rule);
	free(e->res->serial);
	e->res->serial = NULL;
	e->res->steps_done = 0;
	e->res->reused = 0;
	e->res->not_after = 0;
	e->res->status = NULL;
}

/* --- the step table ------------------------------------------------------ */

/* Step 6 as a step: it decides "enrolled" or "renewed", proves, supersedes. */
static int
verify_run(struct enroll_pass *e)
{
	int r;

	e->res->status = e->replaced != NULL && !x509_eq(e->replaced, e->leaf) ?
	    "renewed" : "enrolled";
	if ((r = step_verify(e)) != 0)
		return r;
	supersede_others(e);
	return 0;
}

/* Step 6 when pre-flight already proved TLS, the bound leaf and WS-MAN. */
static int
verify_enrolled(struct enroll_pass *e)
{
	e->res->steps_done |= 1u << ENROLL_VERIFY;
	progress(e, ENROLL_VERIFY, ENROLL_EV_OK, "served leaf verified under our "
	    "chain, bound, outside the renewal window; WS-MAN over TLS ok");
	record(e, "enrolled", NULL);
	supersede_others(e);
	return 0;
}

/*
 * The one description of an enrollment: the engine walks it, reports name
 * steps from it, records store its names.  Order is execution order and
 * enum enroll_step indexes it.
 */
const struct enroll_step_def enroll_steps[ENROLL_NSTEPS] = {
	{ ENROLL_PREFLIGHT, "preflight",
	  "pre-flight: authenticate, FQDN, DNS, transport",
	  step_preflight, NULL },
	{ ENROLL_TIME, "time", "setting AMT's clock", step_time, NULL },
	{ ENROLL_CHAIN, "chain", "installing root and intermediate",
	  step_chain, NULL },
	{ ENROLL_LEAF, "leaf", "key pair in AMT, CSR, certificate",
	  step_leaf, NULL },
	{ ENROLL_BIND, "bind", "binding the certificate, TLS on, commit",
	  step_bind, NULL },
	{ ENROLL_VERIFY, "verify", "proving TLS on the TLS port",
	  verify_run, verify_enrolled },
	/* An earlier run may not have finished its cleanup. */
	{ ENROLL_CLEANUP, "cleanup", "removing old certificates and keys",
	  step_cleanup, step_cleanup },
};

const char *
enroll_step_name(enum enroll_step s)
{
	return (unsigned)s < ENROLL_NSTEPS ? enroll_steps[s].name : "none";
}

const char *
enroll_step_title(enum enroll_step s)
{
	return (unsigned)s < ENROLL_NSTEPS ? enroll_steps[s].title : "?";
}

int
enroll_step_parse(const char *name)
{
	int i;

	for (i = 0; name != NULL && i < ENROLL_NSTEPS; i++)
		if (strcmp(name, enroll_steps[i].name) == 0)
			return i;
	return -1;
}

/* One pass over the table; e->cur says where it stopped. */
static int
run_steps(struct enroll_pass *e)
{
	const struct enroll_step_def *st;
	int (*fn)(struct enroll_pass *);
	int i, r;

	e->already = e->commit_lost = 0;
	for (i = 0; i < ENROLL_NSTEPS; i++) {
		st = &enroll_steps[i];
		e->cur = st->id;
		if (devlock_lost(e->lock))
			return amtca_fail(AMTCA_E_EXISTS, "the lock on %s was "
			    "taken over by another amtca (this run could not "
			    "renew it in time); rerun when that one is done",
			    e->fqdn);
		fn = e->already ? st->run_enrolled : st->run;
		if (fn == NULL) {
			progress(e, st->id, ENROLL_EV_SKIP, "not needed");
			continue;
		}
		progress(e, st->id, ENROLL_EV_BEGIN, NULL);
		if ((r = fn(e)) != 0)
			return r;
	}
	return 0;
}

/*
 * Report this run's outcome to the signer, which appends an
 * "enroll.outcome" entry naming us (docs/audit.md): once per run of a
 * device whose name passed the policy.  A failed report never changes the
 * run's result; it becomes the result's warning, and `ret`'s message is
 * kept.
 */
static void
report_outcome(const struct enroll_ctx *c, struct enroll_result *res, int ret)
{
	struct sgn_who who;
	char detail[AMTCA_SGN_NOTE_DETAIL_MAX + 1], keep[512], *p;
	const char *st = res->status;
	int r, n;

	if (c->sgn == NULL || res->host == NULL)
		return;
	if (st == NULL || ret != 0)
		st = "failed";
	else if (strcmp(st, "already enrolled") == 0)
		st = "unchanged";
	n = snprintf(detail, sizeof(detail), "result=%s", st);
	if (n > 0 && (size_t)n < sizeof(detail) && res->serial != NULL)
		n += snprintf(detail + n, sizeof(detail) - (size_t)n,
		    " serial=%s", res->serial);
	if (n > 0 && (size_t)n < sizeof(detail) && ret != 0)
		(void)snprintf(detail + n, sizeof(detail) - (size_t)n,
		    " error=%s", amtca_errmsg(ret));
	/* One line of text: the protocol carries no control characters. */
	for (p = detail; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	snprintf(keep, sizeof(keep), "%s", ret != 0 ? amtca_errmsg(ret) : "");
	memset(&who, 0, sizeof(who));
	who.kind = SGN_WHO_LOCAL;
	if ((r = sgn_audit_note(c->sgn, &who, "enroll.outcome", res->host,
	    detail)) != 0) {
		if (res->warning == NULL &&
		    (res->warning = malloc(600)) != NULL)
			snprintf(res->warning, 600, "the audit trail lacks this "
			    "outcome: %s", amtca_errmsg(r));
		if (ret != 0)
			(void)amtca_fail(ret, "%s", keep);
	}
}

int
enroll_run(const struct enroll_ctx *c, const struct enroll_opts *o,
    struct enroll_result *res)
{
	struct enroll_pass e;
	char line[1024];
	int r, pass, ret = AMTCA_E_INTERNAL;

	memset(&e, 0, sizeof(e));
	e.rule.bound_reason = -1;
	memset(res, 0, sizeof(*res));
	res->failed_step = -1;
	e.c = c;
	e.o = o;
	e.res = res;
	e.port = o->port ? o->port : 16992;
	e.tls_port = o->tls_port ? o->tls_port : 16993;
	e.tls_wait_ms = o->tls_wait_ms > 0 ? o->tls_wait_ms : AMTCA_AMT_TLS_WAIT_MS;
	e.cur = ENROLL_PREFLIGHT;
	e.prof = amt_profile_for(NULL);
	if (c->store == NULL || c->sgn == NULL || c->root == NULL ||
	    c->chain_path == NULL || c->policy == NULL) {
		ret = amtca_fail(AMTCA_E_CONFIG, "the CA home is not fully open");
		goto fail_early;
	}
	if ((r = ca_fqdn_check(o->host, c->policy, e.fqdn)) != 0) {
		ret = r;
		goto fail_early;
	}
	if ((res->host = strdup(e.fqdn)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto fail_early;
	}
	if ((r = devlock_take_ttl(c->store, e.fqdn, c->lease_ttl_s,
	    &e.lock)) != 0) {
		ret = r;
		goto fail_early;
	}
	if ((e.root_len = i2d_X509(c->root, &e.root_der)) <= 0 ||
	    (c->inter != NULL && (e.inter_len = i2d_X509(c->inter, &e.inter_der)) <= 0)) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "encoding the CA certificates");
		goto fail_early;
	}

	for (pass = 0;; pass++) {
		if ((r = run_steps(&e)) == 0)
			break;
		/*
		 * The plain port died under us and TLS answers now: AMT is
		 * applying a commit from an interrupted earlier run.  The
		 * steps reconcile, so one fresh pass over TLS is safe.
		 */
		if (pass == 0 && r == AMTCA_E_AMT_TRANSPORT && !e.use_tls &&
		    e.cur > ENROLL_PREFLIGHT && e.cur < ENROLL_VERIFY &&
		    net_tcp_probe(res->address, e.tls_port, PROBE_MS) == 0) {
			progress(&e, (enum enroll_step)e.cur, ENROLL_EV_RESTART,
			    "AMT switched to TLS meanwhile; starting over");
			reset_pass(&e);
			continue;
		}
		goto fail;
	}
	ret = 0;
	goto out;
fail:
	/* Keep the detail, record it, report it with the step it broke. */
	snprintf(line, sizeof(line), "%s", amtca_errmsg(r));
	res->failed_step = e.cur;
	res->status = "failed";
	/* Nothing committed yet on a device we had enrolled: it still is. */
	record(&e, e.compromised ? "compromised" : e.retired ? "retired" :
	    (res->steps_done & (1u << ENROLL_VERIFY)) ||
	    (e.rec_enrolled && e.cur < ENROLL_BIND) ? "enrolled" : "failed", line);
	progress(&e, (enum enroll_step)e.cur, ENROLL_EV_FAIL, "%s", line);
	ret = amtca_fail(r, "enroll %s: step %d/%d (%s) failed: %s", e.fqdn,
	    e.cur + 1, ENROLL_NSTEPS, enroll_step_name((enum enroll_step)e.cur),
	    line);
	goto out;
fail_early:
	res->failed_step = ENROLL_PREFLIGHT;
	res->status = "failed";
	progress(&e, ENROLL_PREFLIGHT, ENROLL_EV_FAIL, "%s", amtca_errmsg(ret));
out:
	devlock_release(e.lock);
	report_outcome(c, res, ret);
	amt_free(e.amt);
	X509_free(e.served);
	X509_free(e.replaced);
	X509_free(e.leaf);
	free(e.leaf_handle);
	OPENSSL_free(e.root_der);
	OPENSSL_free(e.inter_der);
	free(e.prev_serial);
	free(e.chain_added[0]);
	free(e.chain_added[1]);
	cred_rule_clear(&e.rule);
	OPENSSL_cleanse(e.pin, sizeof(e.pin));
	return ret;
}
