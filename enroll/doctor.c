/*
 * The doctor's checks (see doctor.h).  They run in table order and share
 * what earlier ones found (the address, the served leaf, which ports
 * answer); each adds its own result, or none when an earlier FAIL already
 * says why it cannot run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "amt/amt.h"
#include "ca/ca.h"
#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/doctor.h"
#include "enroll/enroll.h"
#include "signer/signer.h"

#define DOCTOR_PROBE_MS 2000
#define CHAIN_MAX 8

struct doctor_state {
	struct home *h;			/* or NULL */
	struct sgn *sgn;		/* or NULL */
	const struct doctor_opts *o;
	struct doctor_report *rep;
	const char *host;
	const char *chain;		/* chain.pem, NULL without a home */
	const char *address;		/* --address, else picked after DNS */
	char *password;
	int port, tls_port, redir_port;
	struct net_addrs na;
	struct amt_opts ao;
	struct amt *a;
	struct amt_general g;
	struct cred_rule rule;
	unsigned char pin[32];		/* the served leaf, for the login */
	X509 *leaf;			/* served, verified under our chain */
	X509 *raw;			/* served, unverified (when leaf is not) */
	int resolved, tls_open, plain_open, tls_ok, logged_in;
	const char *cred_skip;		/* why login and what needs it SKIP */
	int stop;			/* nothing left to look at */
};

static int
skipped(const struct doctor_state *st, enum doctor_check id)
{
	return (st->o->skip & (1u << id)) != 0;
}

static void
add(struct doctor_state *st, enum doctor_verdict v, enum doctor_check id,
    const char *fix, const char *fmt, ...) AMTCA_PRINTF(5, 6);

static void
add(struct doctor_state *st, enum doctor_verdict v, enum doctor_check id,
    const char *fix, const char *fmt, ...)
{
	struct doctor_report *rep = st->rep;
	struct doctor_result *c;
	va_list ap;

	if (rep->n >= DOCTOR_RESULTS_MAX)
		return;
	c = &rep->r[rep->n++];
	c->id = id;
	c->verdict = v;
	c->key = doctor_checks[id].key;
	c->name = doctor_checks[id].name;
	snprintf(c->fix, sizeof(c->fix), "%s", fix ? fix : "");
	va_start(ap, fmt);
	vsnprintf(c->what, sizeof(c->what), fmt, ap);
	va_end(ap);
	/* A check skipped on purpose is SKIP whatever it would have said. */
	if (skipped(st, id)) {
		c->verdict = DOCTOR_SKIP;
		snprintf(c->what, sizeof(c->what), "skipped (--skip %s)", c->key);
		c->fix[0] = '\0';
	}
	if (c->verdict == DOCTOR_FAIL)
		rep->nfail++;
	if (st->o->on_result != NULL)
		st->o->on_result(st->o->on_result_ctx, c);
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static void
name_oneline(const X509_NAME *n, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int r = 0;

	buf[0] = '\0';
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0)
		r = BIO_read(b, buf, (int)len - 1);
	buf[r > 0 ? r : 0] = '\0';
	BIO_free(b);
}

static void
leaf_serial(X509 *x, char *buf, size_t len)
{
	char *s = NULL;

	if (ca_serial_hex(X509_get0_serialNumber(x), &s) == 0)
		snprintf(buf, len, "%s", s);
	else
		snprintf(buf, len, "?");
	free(s);
}

static void
validity(struct doctor_state *st, enum doctor_check id, X509 *leaf, time_t now,
    const char *clock)
{
	time_t nb = asn1_time(X509_get0_notBefore(leaf));
	time_t na = asn1_time(X509_get0_notAfter(leaf));
	char snb[32], sna[32], snow[32];

	amtca_fmt_time(nb, snb, sizeof(snb));
	amtca_fmt_time(na, sna, sizeof(sna));
	amtca_fmt_time(now, snow, sizeof(snow));
	if (now < nb)
		add(st, DOCTOR_FAIL, id, strcmp(clock, "AMT") == 0 ?
		    "set AMT's clock (amtca enroll does it), or check the CA "
		    "host's clock" : "fix this host's clock (NTP)",
		    "not yet valid by %s's clock %s (valid from %s)", clock, snow, snb);
	else if (now > na)
		add(st, DOCTOR_FAIL, id, "renew: amtca enroll --force",
		    "expired by %s's clock %s (valid until %s)", clock, snow, sna);
	else
		add(st, DOCTOR_OK, id, NULL, "valid by %s's clock (%s .. %s, %lld "
		    "days left)", clock, snb, sna, (long long)(na - now) / 86400);
}

/* --- the checks ------------------------------------------------------------ */

/* DNS, and which address the other checks look at. */
static void
check_dns(struct doctor_state *st)
{
	const char *host = st->host, *address = st->address;
	char list[256];
	size_t i;
	int r;

	if (skipped(st, DOCTOR_DNS))
		add(st, DOCTOR_SKIP, DOCTOR_DNS, NULL, "skipped");
	else if ((r = net_resolve(host, &st->na)) != 0) {
		add(st, DOCTOR_FAIL, DOCTOR_DNS, address ? "add a DNS record for "
		    "the FQDN pointing at the device (consoles and TLS hostname "
		    "checks connect by name)" : "add/fix the DNS record, or pass "
		    "--address IP to check the device anyway", "%s",
		    amtca_errmsg(r));
	} else {
		st->resolved = 1;
		net_addrs_join(&st->na, list, sizeof(list));
		if (address != NULL) {
			int found = 0;

			for (i = 0; i < st->na.n; i++)
				if (strcmp(st->na.addr[i], address) == 0)
					found = 1;
			if (found)
				add(st, DOCTOR_OK, DOCTOR_DNS, NULL, "%s resolves to "
				    "%s, including %s", host, list, address);
			else
				add(st, DOCTOR_FAIL, DOCTOR_DNS, "point the FQDN's "
				    "DNS record at the device's address (or fix "
				    "--address)", "%s resolves to %s, not to %s",
				    host, list, address);
		} else
			add(st, DOCTOR_OK, DOCTOR_DNS, NULL, "%s resolves to %s",
			    host, list);
	}
	if (address == NULL && st->resolved) {
		address = st->na.addr[0];
		for (i = 0; i < st->na.n; i++)
			if (net_tcp_probe(st->na.addr[i], st->port,
			    DOCTOR_PROBE_MS) == 0 || net_tcp_probe(st->na.addr[i],
			    st->tls_port, DOCTOR_PROBE_MS) == 0) {
				address = st->na.addr[i];
				break;
			}
	}
	if (address == NULL) {
		st->stop = 1;
		return;
	}
	snprintf(st->rep->address, sizeof(st->rep->address), "%s", address);
	st->address = st->rep->address;
	st->ao.address = st->address;
}

/* Port 16993; also whether 16992 answers (used by later checks). */
static void
check_port_tls(struct doctor_state *st)
{
	const char *addr = st->address;

	if (skipped(st, DOCTOR_PORT_TLS)) {
		st->tls_open = 1;	/* the handshake finds out */
		add(st, DOCTOR_SKIP, DOCTOR_PORT_TLS, NULL, "skipped");
	} else if ((st->tls_open = net_tcp_probe(addr, st->tls_port,
	    DOCTOR_PROBE_MS) == 0))
		add(st, DOCTOR_OK, DOCTOR_PORT_TLS, NULL, "%s:%d accepts "
		    "connections", addr, st->tls_port);
	else
		add(st, DOCTOR_FAIL, DOCTOR_PORT_TLS, "TLS is not on (or not "
		    "committed): run amtca enroll; else check firewalls between "
		    "here and AMT", "%s", amtca_errmsg(AMTCA_E_AMT_TRANSPORT));
	/* Never probed when skipped, so never used for a login either. */
	st->plain_open = !skipped(st, DOCTOR_PORT_PLAIN) &&
	    net_tcp_probe(addr, st->port, DOCTOR_PROBE_MS) == 0;
}

/* The TLS handshake with our chain and the hostname. */
static void
check_tls_handshake(struct doctor_state *st)
{
	struct amt_opts *ao = &st->ao;
	const char *addr = st->address, *host = st->host;
	char subj[256], iss[256];
	int r;

	if (skipped(st, DOCTOR_TLS_HANDSHAKE)) {
		add(st, DOCTOR_SKIP, DOCTOR_TLS_HANDSHAKE, NULL, "skipped");
		return;
	}
	if (!st->tls_open) {
		add(st, DOCTOR_FAIL, DOCTOR_TLS_HANDSHAKE, "enable TLS: amtca "
		    "enroll", "nothing listens on %s:%d", addr, st->tls_port);
		return;
	}
	ao->ca_file = st->chain;
	r = st->chain ? amt_tls_fetch_leaf(ao, &st->leaf) : AMTCA_E_CONFIG;
	if (r == 0) {
		struct store_cert *sc = NULL;
		char ser[80], when[32];

		st->tls_ok = 1;
		name_oneline(X509_get_issuer_name(st->leaf), iss, sizeof(iss));
		leaf_serial(st->leaf, ser, sizeof(ser));
		if (st->sgn != NULL && sgn_cert_get(st->sgn, ser, &sc) == 0 &&
		    strcmp(sc->status, "revoked") == 0) {
			/* A revoked leaf is not enrolled, whatever verifies. */
			amtca_fmt_time(sc->revoked_at, when, sizeof(when));
			add(st, DOCTOR_FAIL, DOCTOR_TLS_HANDSHAKE,
			    cred_reason_compromise(sc->revoke_reason) ?
			    "its TLS key may be in other hands: reset AMT "
			    "on the device itself, change the AMT admin "
			    "password, then amtca enroll --device-reset" :
			    "replace it: amtca enroll --host FQDN (talks "
			    "over TLS pinned to this leaf)", "%s:%d serves "
			    "serial %s, revoked (%s) on %s", addr,
			    st->tls_port, ser, cred_reason_name(
			    sc->revoke_reason), when);
		} else
			add(st, DOCTOR_OK, DOCTOR_TLS_HANDSHAKE, NULL, "%s:%d chain "
			    "verifies under %s, hostname %s matches (issuer "
			    "%s)", addr, st->tls_port, st->chain, host, iss);
		store_cert_free(sc);
		amtca_err_clear();
	} else {
		char why[300];

		snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
		ao->ca_file = NULL;	/* what is served, unverified */
		if (amt_tls_fetch_leaf(ao, &st->raw) == 0) {
			name_oneline(X509_get_subject_name(st->raw), subj,
			    sizeof(subj));
			name_oneline(X509_get_issuer_name(st->raw), iss, sizeof(iss));
			add(st, DOCTOR_FAIL, DOCTOR_TLS_HANDSHAKE, "the device "
			    "serves a certificate this CA did not issue for this "
			    "name: amtca enroll --force (check --address/DNS "
			    "first)", "%s (served: subject %s, issuer %s)",
			    why, subj, iss);
		} else
			add(st, DOCTOR_FAIL, DOCTOR_TLS_HANDSHAKE,
			    r == AMTCA_E_AMT_TLS && !st->o->legacy_tls ?
			    "old AMT (<= 12)? retry with --legacy-tls" :
			    "check that AMT's TLS is committed and the port is "
			    "not intercepted", "%s", why);
	}
}

/* Port 16992: open is fine; closed is fine when TLS works. */
static void
check_port_plain(struct doctor_state *st)
{
	if (skipped(st, DOCTOR_PORT_PLAIN))
		add(st, DOCTOR_SKIP, DOCTOR_PORT_PLAIN, NULL, "skipped");
	else if (st->plain_open)
		add(st, DOCTOR_OK, DOCTOR_PORT_PLAIN, NULL, "%s:%d accepts "
		    "connections%s", st->address, st->port, st->tls_ok ?
		    " (non-secure connections allowed)" : "");
	else if (st->tls_ok)
		add(st, DOCTOR_OK, DOCTOR_PORT_PLAIN, NULL, "closed: TLS only, as "
		    "enrolled");
	else
		add(st, DOCTOR_FAIL, DOCTOR_PORT_PLAIN, "check the device is "
		    "powered, AMT provisioned, and the address right", "%s:%d "
		    "does not answer and TLS does not work either", st->address,
		    st->port);
}

/* The served leaf by our clock (no result when nothing was served). */
static void
check_validity_local(struct doctor_state *st)
{
	if (skipped(st, DOCTOR_VALIDITY_LOCAL))
		add(st, DOCTOR_SKIP, DOCTOR_VALIDITY_LOCAL, NULL, "skipped");
	else if (st->leaf != NULL || st->raw != NULL)
		validity(st, DOCTOR_VALIDITY_LOCAL, st->leaf ? st->leaf : st->raw,
		    time(NULL), "this host");
}

/* chain.pem: complete, bottom to top, ends in our self-signed root. */
static void
check_chain_file(struct doctor_state *st)
{
	const enum doctor_check id = DOCTOR_CHAIN_FILE;
	const char *path = st->chain;
	STACK_OF(X509_INFO) *inf = NULL;
	X509 *c[CHAIN_MAX], *leaf = st->leaf;
	BIO *b = NULL;
	char subj[256];
	size_t n = 0, i;
	int k;

	if (skipped(st, id)) {
		add(st, DOCTOR_SKIP, id, NULL, "skipped");
		return;
	}
	if (path == NULL) {
		add(st, DOCTOR_FAIL, id, "run amtca init, or pass --home",
		    "no CA home");
		return;
	}
	if ((b = BIO_new_file(path, "r")) == NULL ||
	    (inf = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL)) == NULL) {
		add(st, DOCTOR_FAIL, id, "export it: amtca chain --out CHAIN.pem",
		    "%s cannot be read", path);
		goto out;
	}
	for (k = 0; k < sk_X509_INFO_num(inf) && n < CHAIN_MAX; k++) {
		X509_INFO *xi = sk_X509_INFO_value(inf, k);

		if (xi->x509 != NULL)
			c[n++] = xi->x509;
	}
	if (n == 0) {
		add(st, DOCTOR_FAIL, id, "amtca chain --out CHAIN.pem",
		    "%s holds no certificate", path);
		goto out;
	}
	/*
	 * Each certificate is issued by a later one: the next, or (after
	 * `ca rotate`: current, retired ..., root) the root further down.
	 */
	for (i = 0; i + 1 < n; i++) {
		size_t j;

		for (j = i + 1; j < n; j++)
			if (X509_check_issued(c[j], c[i]) == X509_V_OK &&
			    X509_verify(c[i], X509_get0_pubkey(c[j])) == 1)
				break;
		ERR_clear_error();
		if (j == n) {
			name_oneline(X509_get_subject_name(c[i]), subj, sizeof(subj));
			add(st, DOCTOR_FAIL, id, "re-export bottom to top "
			    "(intermediate first, root last): amtca chain --out "
			    "FILE", "certificate %zu (%s) is not issued by the one "
			    "after it: wrong order or a missing link", i + 1, subj);
			goto out;
		}
	}
	if (X509_check_issued(c[n - 1], c[n - 1]) != X509_V_OK ||
	    X509_verify(c[n - 1], X509_get0_pubkey(c[n - 1])) != 1) {
		add(st, DOCTOR_FAIL, id, "re-export it: amtca chain --out FILE",
		    "the last certificate is not a self-signed root: incomplete");
		goto out;
	}
	if (st->h != NULL && st->h->root != NULL &&
	    X509_cmp(c[n - 1], st->h->root) != 0) {
		add(st, DOCTOR_FAIL, id, "re-export it: amtca chain --out FILE",
		    "ends in a root that is not this CA's root");
		goto out;
	}
	/* The served leaf: the current intermediate's, or a retired one's
	 * in its overlap (listed after the current one). */
	for (i = 0; leaf != NULL && i + 1 < n; i++)
		if (X509_check_issued(c[i], leaf) == X509_V_OK &&
		    X509_verify(leaf, X509_get0_pubkey(c[i])) == 1)
			break;
	ERR_clear_error();
	if (leaf != NULL && i + 1 >= n) {
		add(st, DOCTOR_FAIL, id, "enroll the device with this CA: "
		    "amtca enroll --force", "holds no issuer of the certificate "
		    "the device serves");
		goto out;
	}
	add(st, DOCTOR_OK, id, NULL, "%s: %zu certificate(s), bottom to top, "
	    "ends in this CA's self-signed root%s", path, n,
	    leaf == NULL ? "" : i == 0 ? ", first one issued the served leaf" :
	    ", a retired intermediate in it issued the served leaf");
out:
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	BIO_free(b);
}

/*
 * A WS-MAN login, only where the credential rule (credrule.c, the same as
 * enroll's) lets the password go.  Identity and AMT's clock use the session.
 */
static void
check_login(struct doctor_state *st)
{
	const enum doctor_check id = DOCTOR_LOGIN;
	const char *host = st->host;
	struct amt_opts *ao = &st->ao;
	int r;

	if (st->password == NULL)
		st->cred_skip = "no --user/--password-file";
	else if (skipped(st, DOCTOR_LOGIN) || skipped(st, DOCTOR_TLS_HANDSHAKE))
		/* No login at all: a skipped handshake proves nothing. */
		st->cred_skip = skipped(st, DOCTOR_LOGIN) ?
		    "skipped (--skip login)" :
		    "not logging in: tls_handshake was skipped";
	if (st->cred_skip != NULL)
		add(st, DOCTOR_SKIP, id, NULL, "%s", st->cred_skip);
	else if (st->rule.compromised) {
		r = cred_rule_plain(&st->rule, host);
		add(st, DOCTOR_FAIL, id, "see the revocation above: reset AMT on "
		    "the device, then amtca enroll --device-reset",
		    "credentials not sent: %s", amtca_errmsg(r));
	} else if (st->rule.retired) {
		r = cred_rule_plain(&st->rule, host);
		add(st, DOCTOR_FAIL, id, "to manage it again, run amtca enroll "
		    "--device-reset", "credentials not sent: %s", amtca_errmsg(r));
	} else if (st->tls_ok &&
	    (r = cred_rule_tls(&st->rule, host, st->leaf, st->pin)) != 0) {
		add(st, DOCTOR_FAIL, id, "check --address/DNS: something other "
		    "than the enrolled device may answer; if you know the device "
		    "serves that certificate, pass --tls-pin",
		    "credentials not sent: %s", amtca_errmsg(r));
	} else if (!st->tls_ok && st->plain_open &&
	    cred_rule_plain(&st->rule, host) != 0) {
		add(st, DOCTOR_FAIL, id, "fix the TLS failure above first "
		    "(credentials go to an enrolled device only over TLS with its "
		    "recorded certificate)", "credentials not sent over plain "
		    "HTTP: %s is enrolled (TLS only) and TLS on %d does not "
		    "verify", host, st->tls_port);
	} else if (!st->tls_ok && !st->plain_open && st->tls_open) {
		add(st, DOCTOR_FAIL, id, "fix the TLS failure above first",
		    "16992 is closed and TLS on %d does not verify for %s: "
		    "credentials are not sent to an unverified peer",
		    st->tls_port, host);
	} else if (!st->tls_ok && !st->plain_open) {
		add(st, DOCTOR_FAIL, id, "make port 16992 or 16993 reachable",
		    "no usable WS-MAN port");
	} else {
		ao->tls = st->tls_ok;
		ao->ca_file = st->tls_ok ? st->chain : NULL;
		ao->pin_sha256 = st->tls_ok ? st->pin : NULL;	/* the leaf just seen */
		if ((r = amt_open(ao, &st->a)) != 0 ||
		    (r = amt_general_get(st->a, &st->g)) != 0)
			add(st, DOCTOR_FAIL, id, r == AMTCA_E_AMT_AUTH ?
			    "check --user and --password-file (tried once: "
			    "repeated failures lock the account)" :
			    "check the device and the port", "%s", amtca_errmsg(r));
		else {
			st->logged_in = 1;
			add(st, DOCTOR_OK, id, NULL, "authenticated over %s; AMT %s",
			    st->tls_ok ? "TLS" : "plain HTTP",
			    st->g.version ? st->g.version : "?");
		}
	}
}

/* AMT's own hostname.domain is the FQDN asked about. */
static void
check_identity(struct doctor_state *st)
{
	const struct amt_general *g = &st->g;
	char amtfqdn[2 * AMTCA_FQDN_MAX + 2];

	if (st->cred_skip != NULL) {
		add(st, DOCTOR_SKIP, DOCTOR_IDENTITY, NULL, "%s", st->cred_skip);
		return;
	}
	if (!st->logged_in)
		return;		/* the login's FAIL says why */
	snprintf(amtfqdn, sizeof(amtfqdn), "%s%s%s",
	    g->hostname ? g->hostname : "",
	    g->domainname && *g->domainname ? "." : "",
	    g->domainname ? g->domainname : "");
	if (strcasecmp(amtfqdn, st->host) == 0)
		add(st, DOCTOR_OK, DOCTOR_IDENTITY, NULL, "the AMT at %s says it "
		    "is %s", st->address, amtfqdn);
	else
		add(st, DOCTOR_FAIL, DOCTOR_IDENTITY, st->resolved ?
		    "fix the DNS record or AMT's hostname/domain so they agree" :
		    "fix --address, or AMT's hostname/domain", "the AMT at %s%s%s "
		    "says its FQDN is '%s', not %s", st->address,
		    st->resolved ? " (where DNS sends " : "",
		    st->resolved ? "clients)" : "", amtfqdn, st->host);
}

/* The served leaf by AMT's clock. */
static void
check_validity_amt(struct doctor_state *st)
{
	uint32_t ta0 = 0;
	int r;

	if (st->cred_skip != NULL) {
		add(st, DOCTOR_SKIP, DOCTOR_VALIDITY_AMT, NULL, "%s",
		    st->cred_skip);
		return;
	}
	if (!st->logged_in || (st->leaf == NULL && st->raw == NULL))
		return;
	if ((r = amt_time_get(st->a, &ta0)) != 0)
		add(st, DOCTOR_FAIL, DOCTOR_VALIDITY_AMT, "check the firmware",
		    "cannot read AMT's clock: %s", amtca_errmsg(r));
	else
		validity(st, DOCTOR_VALIDITY_AMT, st->leaf ? st->leaf : st->raw,
		    (time_t)ta0, "AMT");
}

/* The checks after the login need no credentials: wipe libcurl's and ours. */
static void
drop_credentials(struct doctor_state *st)
{
	amt_free(st->a);
	st->a = NULL;
	amtca_secret_free(st->password);
	st->password = NULL;
	st->ao.password = NULL;
}

/* Redirection over TLS (SOL/IDE-R/KVM consoles). */
static void
check_redirection(struct doctor_state *st)
{
	const enum doctor_check id = DOCTOR_REDIRECTION;
	struct amt_opts ro = st->ao;
	X509 *rl = NULL;
	int r;

	drop_credentials(st);
	ro.password = NULL;
	ro.tls_port = st->redir_port;
	ro.ca_file = st->chain;
	ro.pin_sha256 = NULL;
	if (skipped(st, id))
		add(st, DOCTOR_SKIP, id, NULL, "skipped");
	else if (net_tcp_probe(st->address, st->redir_port, DOCTOR_PROBE_MS) != 0)
		add(st, DOCTOR_FAIL, id, "enable redirection "
		    "(AMT_RedirectionService) and TLS on the device, or open the "
		    "port in firewalls", "nothing listens on %s:%d", st->address,
		    st->redir_port);
	else if ((r = st->chain ? amt_tls_fetch_leaf(&ro, &rl) :
	    AMTCA_E_CONFIG) != 0)
		add(st, DOCTOR_FAIL, id, "enroll the device so redirection serves "
		    "this CA's certificate", "%s:%d: %s", st->address,
		    st->redir_port, amtca_errmsg(r));
	else
		add(st, DOCTOR_OK, id, NULL, "%s:%d verifies under %s",
		    st->address, st->redir_port, st->chain);
	X509_free(rl);
}

/*
 * Stable keys (what --json prints and --skip takes) and the names the text
 * output shows.  Scripts rely on the keys; the names may change.
 */
const struct doctor_check_def doctor_checks[DOCTOR_NCHECKS] = {
	{ DOCTOR_DNS, "dns", "DNS", check_dns },
	{ DOCTOR_PORT_TLS, "port_tls", "port 16993", check_port_tls },
	{ DOCTOR_TLS_HANDSHAKE, "tls_handshake", "TLS handshake",
	  check_tls_handshake },
	{ DOCTOR_PORT_PLAIN, "port_plain", "port 16992", check_port_plain },
	{ DOCTOR_VALIDITY_LOCAL, "validity_local",
	  "certificate validity (our clock)", check_validity_local },
	{ DOCTOR_CHAIN_FILE, "chain_file", "chain.pem", check_chain_file },
	{ DOCTOR_LOGIN, "login", "WS-MAN login", check_login },
	{ DOCTOR_IDENTITY, "identity", "AMT identity", check_identity },
	{ DOCTOR_VALIDITY_AMT, "validity_amt",
	  "certificate validity (AMT clock)", check_validity_amt },
	{ DOCTOR_REDIRECTION, "redirection", "redirection TLS",
	  check_redirection },
	{ DOCTOR_HOME, "home", "CA home", NULL },	/* reported only */
};

int
doctor_check_parse(const char *key)
{
	int i;

	for (i = 0; key != NULL && i < DOCTOR_NCHECKS; i++)
		if (doctor_checks[i].run != NULL &&
		    strcmp(key, doctor_checks[i].key) == 0)
			return i;
	return -1;
}

int
doctor_run(struct home *h, const struct doctor_opts *o,
    struct doctor_report *rep)
{
	struct doctor_state st;
	int i, r, ret = AMTCA_E_INTERNAL;

	memset(rep, 0, sizeof(*rep));
	memset(&st, 0, sizeof(st));
	st.rule.bound_reason = -1;
	st.h = h;
	st.o = o;
	st.rep = rep;
	st.host = o->host;
	st.address = o->address;
	st.port = o->port ? o->port : 16992;
	st.tls_port = o->tls_port ? o->tls_port : 16993;
	st.redir_port = o->redir_port ? o->redir_port : 16995;
	if (o->host == NULL) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "doctor: no host");
		goto out;
	}
	if (h == NULL)
		add(&st, DOCTOR_FAIL, DOCTOR_HOME, "run amtca init, or pass --home "
		    "DIR", "%s", amtca_errmsg(o->home_error));
	else
		st.chain = h->chain_path;
	if (o->password_file != NULL &&
	    (r = amtca_secret_read(o->password_file, &st.password)) != 0) {
		ret = r;
		goto out;
	}
	/* Where credentials may go: the same rule as enroll (credrule.c). */
	st.sgn = h != NULL ? o->sgn : NULL;
	if ((r = cred_rule_load(h ? h->state : NULL, st.sgn, o->host, o->tls_pin, 0,
	    &st.rule)) != 0) {
		ret = r;
		goto out;
	}
	st.ao.host = o->host;
	st.ao.port = st.port;
	st.ao.tls_port = st.tls_port;
	st.ao.legacy_tls = o->legacy_tls;
	st.ao.user = o->user;
	st.ao.password = st.password;
	for (i = 0; i < DOCTOR_NCHECKS && !st.stop; i++)
		if (doctor_checks[i].run != NULL)
			doctor_checks[i].run(&st);
	ret = 0;
out:
	amt_general_clear(&st.g);
	amt_free(st.a);
	amtca_secret_free(st.password);
	X509_free(st.leaf);
	X509_free(st.raw);
	net_addrs_clear(&st.na);
	cred_rule_clear(&st.rule);
	OPENSSL_cleanse(st.pin, sizeof(st.pin));
	return ret;
}
