/*
 * amtca doctor: the checks a technician does by hand when AMT TLS is
 * broken, as one command.  Each check prints
 *     OK   <check>: <what was seen>
 *     FAIL <check>: <what> — fix: <one line>
 *     SKIP <check>: <why>            (needs --user/--password-file, or --skip)
 * and the exit status is 0 only when nothing failed.  Each check has a
 * stable id for --json and --skip (see check_ids).
 */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "amt/amt.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/cli.h"
#include "enroll/enroll.h"
#include "enroll/json.h"

#define DOCTOR_PROBE_MS 2000
#define CHAIN_MAX 8

static const char syn[] =
    "--host FQDN [--address IP] [--port N] [--tls-port N]\n"
    "                    [--user USER --password-file FILE] [--tls-pin SHA256]\n"
    "                    [--redir-port N]\n"
    "                    [--legacy-tls] [--skip ID]... [--json]";

static const char options[] =
    "  --host FQDN            the device's FQDN\n"
    "  --address IP           check IP instead of what FQDN resolves to\n"
    "  --port N               plain WS-MAN port (16992)\n"
    "  --tls-port N           TLS WS-MAN port (16993)\n"
    "  --user USER            AMT user, for the login, identity and AMT-clock checks\n"
    "  --password-file FILE   AMT password (first line)\n"
    "  --tls-pin SHA256       also accept this served leaf (SHA-256 of its DER,\n"
    "                         hex) for credentials over TLS\n"
    "  --redir-port N         redirection TLS port (16995)\n"
    "  --legacy-tls           AMT <= 12: legacy renegotiation, SECLEVEL 0\n"
    "  --skip ID              do not run check ID (repeatable, or ID,ID): dns,\n"
    "                         port_tls, tls_handshake, port_plain, validity_local,\n"
    "                         chain_file, login, identity, validity_amt, redirection\n"
    "  --json                 one JSON document; each check has its id\n"
    "  --help                 this text\n";

/*
 * Stable ids of the checks (what --json prints and --skip takes), by the
 * name the text output shows.  Scripts rely on the ids; the names may change.
 */
enum check_id {
	C_DNS, C_PORT_TLS, C_TLS, C_PORT_PLAIN, C_VALIDITY_LOCAL, C_CHAIN,
	C_LOGIN, C_IDENTITY, C_VALIDITY_AMT, C_REDIR, C_HOME, C__COUNT
};

static const struct {
	const char *id;
	const char *name;
} check_ids[C__COUNT] = {
	[C_DNS] = { "dns", "DNS" },
	[C_PORT_TLS] = { "port_tls", "port 16993" },
	[C_TLS] = { "tls_handshake", "TLS handshake" },
	[C_PORT_PLAIN] = { "port_plain", "port 16992" },
	[C_VALIDITY_LOCAL] = { "validity_local", "certificate validity (our clock)" },
	[C_CHAIN] = { "chain_file", "chain.pem" },
	[C_LOGIN] = { "login", "WS-MAN login" },
	[C_IDENTITY] = { "identity", "AMT identity" },
	[C_VALIDITY_AMT] = { "validity_amt", "certificate validity (AMT clock)" },
	[C_REDIR] = { "redirection", "redirection TLS" },
	[C_HOME] = { "home", "CA home" },	/* reported only; not skippable */
};

static int
usage_err(const char *msg)
{
	return cli_usage("doctor", msg, syn);
}

enum verdict { V_OK, V_FAIL, V_SKIP };

struct check {
	const char *id;
	char name[48];
	enum verdict v;
	char what[512];
	char fix[256];
};

struct doc {
	struct check c[24];
	size_t n;
	int json;
	unsigned skip;			/* 1u << enum check_id */
};

static int
skipped(const struct doc *d, enum check_id id)
{
	return (d->skip & (1u << id)) != 0;
}

/* --skip ID[,ID...] */
static int
parse_skip(struct doc *d, const char *arg)
{
	char buf[256], *tok, *save = NULL;
	size_t i;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return -1;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < C_HOME; i++)
			if (strcmp(tok, check_ids[i].id) == 0)
				break;
		if (i == C_HOME)
			return -1;
		d->skip |= 1u << i;
	}
	return 0;
}

static void
add(struct doc *d, enum verdict v, const char *name, const char *fix,
    const char *fmt, ...) AMTCA_PRINTF(5, 6);

static void
add(struct doc *d, enum verdict v, const char *name, const char *fix,
    const char *fmt, ...)
{
	struct check *c;
	va_list ap;
	size_t i;

	if (d->n >= sizeof(d->c) / sizeof(d->c[0]))
		return;
	c = &d->c[d->n++];
	c->v = v;
	for (i = 0; i < C__COUNT; i++)
		if (strcmp(name, check_ids[i].name) == 0)
			break;
	c->id = i < C__COUNT ? check_ids[i].id : NULL;
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->fix, sizeof(c->fix), "%s", fix ? fix : "");
	va_start(ap, fmt);
	vsnprintf(c->what, sizeof(c->what), fmt, ap);
	va_end(ap);
	/* A check skipped on purpose is SKIP whatever it would have said. */
	if (i < C__COUNT && skipped(d, (enum check_id)i)) {
		c->v = v = V_SKIP;
		snprintf(c->what, sizeof(c->what), "skipped (--skip %s)", c->id);
		c->fix[0] = '\0';
	}
	if (!d->json) {
		if (v == V_FAIL)
			printf("FAIL %s: %s \xe2\x80\x94 fix: %s\n", c->name, c->what,
			    c->fix);
		else
			printf("%s %s: %s\n", v == V_OK ? "OK  " : "SKIP", c->name,
			    c->what);
		fflush(stdout);
	}
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
validity_check(struct doc *d, const char *name, X509 *leaf, time_t now,
    const char *clock)
{
	time_t nb = asn1_time(X509_get0_notBefore(leaf));
	time_t na = asn1_time(X509_get0_notAfter(leaf));
	char snb[32], sna[32], snow[32];

	cli_fmt_time(nb, snb, sizeof(snb));
	cli_fmt_time(na, sna, sizeof(sna));
	cli_fmt_time(now, snow, sizeof(snow));
	if (now < nb)
		add(d, V_FAIL, name, strcmp(clock, "AMT") == 0 ?
		    "set AMT's clock (amtca enroll does it), or check the CA "
		    "host's clock" : "fix this host's clock (NTP)",
		    "not yet valid by %s's clock %s (valid from %s)", clock, snow, snb);
	else if (now > na)
		add(d, V_FAIL, name, "renew: amtca enroll --force",
		    "expired by %s's clock %s (valid until %s)", clock, snow, sna);
	else
		add(d, V_OK, name, NULL, "valid by %s's clock (%s .. %s, %lld "
		    "days left)", clock, snb, sna, (long long)(na - now) / 86400);
}

/* chain.pem: complete, bottom to top, ends in our self-signed root. */
static void
chain_check(struct doc *d, struct home *h, const char *chain_path, X509 *leaf)
{
	STACK_OF(X509_INFO) *inf = NULL;
	X509 *c[CHAIN_MAX];
	BIO *b = NULL;
	char subj[256];
	size_t n = 0, i;
	int k;

	if (chain_path == NULL) {
		add(d, V_FAIL, "chain.pem", "run amtca init, or pass --home",
		    "no CA home");
		return;
	}
	if ((b = BIO_new_file(chain_path, "r")) == NULL ||
	    (inf = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL)) == NULL) {
		add(d, V_FAIL, "chain.pem", "export it: amtca chain --out CHAIN.pem",
		    "%s cannot be read", chain_path);
		goto out;
	}
	for (k = 0; k < sk_X509_INFO_num(inf) && n < CHAIN_MAX; k++) {
		X509_INFO *xi = sk_X509_INFO_value(inf, k);

		if (xi->x509 != NULL)
			c[n++] = xi->x509;
	}
	if (n == 0) {
		add(d, V_FAIL, "chain.pem", "amtca chain --out CHAIN.pem",
		    "%s holds no certificate", chain_path);
		goto out;
	}
	for (i = 0; i + 1 < n; i++) {
		if (X509_check_issued(c[i + 1], c[i]) != X509_V_OK ||
		    X509_verify(c[i], X509_get0_pubkey(c[i + 1])) != 1) {
			name_oneline(X509_get_subject_name(c[i]), subj, sizeof(subj));
			add(d, V_FAIL, "chain.pem", "re-export bottom to top "
			    "(intermediate first, root last): amtca chain --out "
			    "FILE", "certificate %zu (%s) is not issued by the one "
			    "after it: wrong order or a missing link", i + 1, subj);
			goto out;
		}
	}
	if (X509_check_issued(c[n - 1], c[n - 1]) != X509_V_OK ||
	    X509_verify(c[n - 1], X509_get0_pubkey(c[n - 1])) != 1) {
		add(d, V_FAIL, "chain.pem", "re-export it: amtca chain --out FILE",
		    "the last certificate is not a self-signed root: incomplete");
		goto out;
	}
	if (h != NULL && h->root != NULL && X509_cmp(c[n - 1], h->root) != 0) {
		add(d, V_FAIL, "chain.pem", "re-export it: amtca chain --out FILE",
		    "ends in a root that is not this CA's root");
		goto out;
	}
	if (leaf != NULL && (X509_check_issued(c[0], leaf) != X509_V_OK ||
	    X509_verify(leaf, X509_get0_pubkey(c[0])) != 1)) {
		add(d, V_FAIL, "chain.pem", "enroll the device with this CA: "
		    "amtca enroll --force", "does not start with the issuer of the "
		    "certificate the device serves");
		goto out;
	}
	add(d, V_OK, "chain.pem", NULL, "%s: %zu certificate(s), bottom to top, "
	    "ends in this CA's self-signed root%s", chain_path, n,
	    leaf ? ", first one issued the served leaf" : "");
out:
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
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
print_json(const struct doc *d, const char *host, const char *addr)
{
	struct json j;
	size_t i;
	int ok = 1;

	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_str(&j, "host", host);
	json_str(&j, "address", addr);
	json_arr_begin(&j, "checks");
	for (i = 0; i < d->n; i++) {
		json_obj_begin(&j, NULL);
		json_str(&j, "id", d->c[i].id);
		json_str(&j, "check", d->c[i].name);
		json_str(&j, "result", d->c[i].v == V_OK ? "ok" :
		    d->c[i].v == V_FAIL ? "fail" : "skip");
		json_str(&j, "detail", d->c[i].what);
		json_str(&j, "fix", d->c[i].v == V_FAIL ? d->c[i].fix : NULL);
		json_obj_end(&j);
		if (d->c[i].v == V_FAIL)
			ok = 0;
	}
	json_arr_end(&j);
	json_bool(&j, "ok", ok);
	json_obj_end(&j);
	json_finish(&j);
}

int
cmd_doctor(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "tls-port", required_argument, NULL, 'P' },
		{ "redir-port", required_argument, NULL, 'R' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'w' },
		{ "legacy-tls", no_argument, NULL, 'L' },
		{ "tls-pin", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "skip", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct doc d;
	struct net_addrs na = { NULL, 0 };
	struct amt_opts ao;
	struct amt *a = NULL;
	struct amt_general g;
	struct home *h = NULL;
	const char *host = NULL, *address = NULL, *pwfile = NULL, *user = NULL;
	const char *chain = NULL;
	char *password = NULL, list[256], addrbuf[64], subj[256], iss[256];
	char amtfqdn[2 * AMTCA_FQDN_MAX + 2];
	X509 *leaf = NULL, *raw = NULL;
	struct cred_rule rule;
	unsigned char oppin[32], pin[32];
	const unsigned char *oppin_p = NULL;
	int ch, r, port = 16992, tls_port = 16993, redir_port = 16995, legacy = 0;
	int plain_open, tls_open, tls_ok = 0, resolved = 0, ret = EXIT_FAIL;
	size_t i;
	long n;

	memset(&d, 0, sizeof(d));
	memset(&g, 0, sizeof(g));
	memset(&rule, 0, sizeof(rule));
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': host = optarg; break;
		case 'a': address = optarg; break;
		case 'u': user = optarg; break;
		case 'w': pwfile = optarg; break;
		case 'L': legacy = 1; break;
		case 'j': d.json = 1; break;
		case 'T':
			if (cred_pin_parse(optarg, oppin) != 0)
				return usage_err("--tls-pin takes the SHA-256 of the "
				    "leaf's DER as 64 hex digits");
			oppin_p = oppin;
			break;
		case 'S':
			if (parse_skip(&d, optarg) != 0)
				return usage_err("--skip takes check ids: dns, port_tls, "
				    "tls_handshake, port_plain, validity_local, "
				    "chain_file, login, identity, validity_amt, "
				    "redirection");
			break;
		case 'p': case 'P': case 'R':
			if (cli_parse_long(optarg, 1, 65535, &n) != 0)
				return usage_err("ports take 1..65535");
			if (ch == 'p')
				port = (int)n;
			else if (ch == 'P')
				tls_port = (int)n;
			else
				redir_port = (int)n;
			break;
		case 'h':
			cli_help("doctor", syn, options, opts);
			printf("\nChecks DNS, ports %d/%d, "
			    "the TLS handshake with this CA's chain and hostname\n"
			    "verification, certificate validity by our and AMT's "
			    "clock, chain.pem order, and\nthe redirection TLS port.  "
			    "Exit 0 only when no check fails.\n", 16992, 16993);
			return EXIT_OK;
		default:
			return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument");
	if (host == NULL)
		return usage_err("--host is required");
	if ((user == NULL) != (pwfile == NULL))
		return usage_err("--user and --password-file go together");
	if (address != NULL && !net_is_ip(address))
		return usage_err("--address takes an IP address");
	if (address == NULL && skipped(&d, C_DNS))
		return usage_err("--skip dns needs --address");
	signal(SIGPIPE, SIG_IGN);

	if ((r = home_open(homedir, HOME_STORE, &h)) != 0) {
		add(&d, V_FAIL, check_ids[C_HOME].name, "run amtca init, or pass --home DIR",
		    "%s", amtca_errmsg(r));
		h = NULL;
	} else
		chain = h->chain_path;
	if (pwfile != NULL && (r = amtca_secret_read(pwfile, &password)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	/* Where credentials may go: the same rule as enroll (credrule.c). */
	if ((r = cred_rule_load(h ? h->store : NULL, host, oppin_p, 0,
	    &rule)) != 0) {
		ret = cli_fail(r);
		goto out;
	}

	/* 1. DNS, and which address we look at. */
	if (skipped(&d, C_DNS))
		add(&d, V_SKIP, "DNS", NULL, "skipped");
	else if ((r = net_resolve(host, &na)) != 0) {
		add(&d, V_FAIL, "DNS", address ? "add a DNS record for the FQDN "
		    "pointing at the device (consoles and TLS hostname checks "
		    "connect by name)" : "add/fix the DNS record, or pass "
		    "--address IP to check the device anyway", "%s",
		    amtca_errmsg(r));
	} else {
		resolved = 1;
		net_addrs_join(&na, list, sizeof(list));
		if (address != NULL) {
			int found = 0;

			for (i = 0; i < na.n; i++)
				if (strcmp(na.addr[i], address) == 0)
					found = 1;
			if (found)
				add(&d, V_OK, "DNS", NULL, "%s resolves to %s, "
				    "including %s", host, list, address);
			else
				add(&d, V_FAIL, "DNS", "point the FQDN's DNS record "
				    "at the device's address (or fix --address)",
				    "%s resolves to %s, not to %s", host, list,
				    address);
		} else
			add(&d, V_OK, "DNS", NULL, "%s resolves to %s", host, list);
	}
	if (address == NULL && resolved) {
		address = na.addr[0];
		for (i = 0; i < na.n; i++)
			if (net_tcp_probe(na.addr[i], port, DOCTOR_PROBE_MS) == 0 ||
			    net_tcp_probe(na.addr[i], tls_port, DOCTOR_PROBE_MS) == 0) {
				address = na.addr[i];
				break;
			}
	}
	if (address == NULL) {
		if (d.json)
			print_json(&d, host, NULL);
		fprintf(stderr, "amtca: doctor: %s does not resolve and no "
		    "--address was given: nothing else can be checked\n", host);
		ret = EXIT_FAIL;
		goto out;
	}
	snprintf(addrbuf, sizeof(addrbuf), "%s", address);

	/* 2. Ports. */
	if (skipped(&d, C_PORT_TLS)) {
		tls_open = 1;	/* the handshake finds out */
		add(&d, V_SKIP, "port 16993", NULL, "skipped");
	} else if ((tls_open = net_tcp_probe(addrbuf, tls_port,
	    DOCTOR_PROBE_MS) == 0))
		add(&d, V_OK, "port 16993", NULL, "%s:%d accepts connections",
		    addrbuf, tls_port);
	else
		add(&d, V_FAIL, "port 16993", "TLS is not on (or not committed): "
		    "run amtca enroll; else check firewalls between here and AMT",
		    "%s", amtca_errmsg(AMTCA_E_AMT_TRANSPORT));
	/* Never probed when skipped, so never used for a login either. */
	plain_open = !skipped(&d, C_PORT_PLAIN) &&
	    net_tcp_probe(addrbuf, port, DOCTOR_PROBE_MS) == 0;

	/* 3. TLS handshake with our chain and the hostname. */
	memset(&ao, 0, sizeof(ao));
	ao.host = host;
	ao.address = addrbuf;
	ao.port = port;
	ao.tls_port = tls_port;
	ao.legacy_tls = legacy;
	ao.user = user;
	ao.password = password;
	if (skipped(&d, C_TLS))
		add(&d, V_SKIP, "TLS handshake", NULL, "skipped");
	else if (tls_open) {
		ao.ca_file = chain;
		r = chain ? amt_tls_fetch_leaf(&ao, &leaf) : AMTCA_E_CONFIG;
		if (r == 0) {
			struct store_cert *sc = NULL;
			char ser[80], when[32];

			tls_ok = 1;
			name_oneline(X509_get_issuer_name(leaf), iss, sizeof(iss));
			leaf_serial(leaf, ser, sizeof(ser));
			if (h != NULL && store_cert_get(h->store, ser, &sc) == 0 &&
			    strcmp(sc->status, "revoked") == 0) {
				/* A revoked leaf is not enrolled, whatever verifies. */
				cli_fmt_time(sc->revoked_at, when, sizeof(when));
				add(&d, V_FAIL, "TLS handshake",
				    cred_reason_compromise(sc->revoke_reason) ?
				    "its TLS key may be in other hands: reset AMT "
				    "on the device itself, change the AMT admin "
				    "password, then amtca enroll --device-reset" :
				    "replace it: amtca enroll --host FQDN (talks "
				    "over TLS pinned to this leaf)", "%s:%d serves "
				    "serial %s, revoked (%s) on %s", addrbuf,
				    tls_port, ser, cred_reason_name(
				    sc->revoke_reason), when);
			} else
				add(&d, V_OK, "TLS handshake", NULL, "%s:%d chain "
				    "verifies under %s, hostname %s matches (issuer "
				    "%s)", addrbuf, tls_port, chain, host, iss);
			store_cert_free(sc);
			amtca_err_clear();
		} else {
			char why[300];

			snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
			ao.ca_file = NULL;	/* what is served, unverified */
			if (amt_tls_fetch_leaf(&ao, &raw) == 0) {
				name_oneline(X509_get_subject_name(raw), subj, sizeof(subj));
				name_oneline(X509_get_issuer_name(raw), iss, sizeof(iss));
				add(&d, V_FAIL, "TLS handshake", "the device serves "
				    "a certificate this CA did not issue for this "
				    "name: amtca enroll --force (check --address/DNS "
				    "first)", "%s (served: subject %s, issuer %s)",
				    why, subj, iss);
			} else
				add(&d, V_FAIL, "TLS handshake", r == AMTCA_E_AMT_TLS &&
				    !legacy ? "old AMT (<= 12)? retry with "
				    "--legacy-tls" : "check that AMT's TLS is "
				    "committed and the port is not intercepted",
				    "%s", why);
		}
	} else
		add(&d, V_FAIL, "TLS handshake", "enable TLS: amtca enroll",
		    "nothing listens on %s:%d", addrbuf, tls_port);

	/* 4. Port 16992: open is fine; closed is fine when TLS works. */
	if (skipped(&d, C_PORT_PLAIN))
		add(&d, V_SKIP, "port 16992", NULL, "skipped");
	else if (plain_open)
		add(&d, V_OK, "port 16992", NULL, "%s:%d accepts connections%s",
		    addrbuf, port, tls_ok ? " (non-secure connections allowed)" : "");
	else if (tls_ok)
		add(&d, V_OK, "port 16992", NULL, "closed: TLS only, as enrolled");
	else
		add(&d, V_FAIL, "port 16992", "check the device is powered, AMT "
		    "provisioned, and the address right", "%s:%d does not answer "
		    "and TLS does not work either", addrbuf, port);

	/* 5. Certificate validity by our clock. */
	if (skipped(&d, C_VALIDITY_LOCAL))
		add(&d, V_SKIP, "certificate validity (our clock)", NULL, "skipped");
	else if (leaf != NULL || raw != NULL)
		validity_check(&d, "certificate validity (our clock)",
		    leaf ? leaf : raw, time(NULL), "this host");

	/* 6. chain.pem. */
	if (skipped(&d, C_CHAIN))
		add(&d, V_SKIP, "chain.pem", NULL, "skipped");
	else
		chain_check(&d, h, chain, leaf);

	/* 7. With credentials: login, identity, AMT's clock. */
	if (password == NULL) {
		add(&d, V_SKIP, "WS-MAN login", NULL, "no --user/--password-file");
		add(&d, V_SKIP, "AMT identity", NULL, "no --user/--password-file");
		add(&d, V_SKIP, "certificate validity (AMT clock)", NULL,
		    "no --user/--password-file");
	} else if (skipped(&d, C_LOGIN) || skipped(&d, C_TLS)) {
		/* No login at all: a skipped handshake proves nothing. */
		const char *why = skipped(&d, C_LOGIN) ? "skipped (--skip login)" :
		    "not logging in: tls_handshake was skipped";

		add(&d, V_SKIP, "WS-MAN login", NULL, "%s", why);
		add(&d, V_SKIP, "AMT identity", NULL, "%s", why);
		add(&d, V_SKIP, "certificate validity (AMT clock)", NULL, "%s", why);
	} else if (rule.compromised) {
		r = cred_rule_plain(&rule, host);
		add(&d, V_FAIL, "WS-MAN login", "see the revocation above: reset "
		    "AMT on the device, then amtca enroll --device-reset",
		    "credentials not sent: %s", amtca_errmsg(r));
	} else if (tls_ok && (r = cred_rule_tls(&rule, host, leaf, pin)) != 0) {
		add(&d, V_FAIL, "WS-MAN login", "check --address/DNS: something "
		    "other than the enrolled device may answer; if you know the "
		    "device serves that certificate, pass --tls-pin",
		    "credentials not sent: %s", amtca_errmsg(r));
	} else if (!tls_ok && plain_open && cred_rule_plain(&rule, host) != 0) {
		add(&d, V_FAIL, "WS-MAN login", "fix the TLS failure above "
		    "first (credentials go to an enrolled device only over TLS "
		    "with its recorded certificate)", "credentials not sent over "
		    "plain HTTP: %s is enrolled (TLS only) and TLS on %d does not "
		    "verify", host, tls_port);
	} else if (!tls_ok && !plain_open && tls_open) {
		add(&d, V_FAIL, "WS-MAN login", "fix the TLS failure above first",
		    "16992 is closed and TLS on %d does not verify for %s: "
		    "credentials are not sent to an unverified peer", tls_port, host);
	} else if (!tls_ok && !plain_open) {
		add(&d, V_FAIL, "WS-MAN login", "make port 16992 or 16993 reachable",
		    "no usable WS-MAN port");
	} else {
		uint32_t ta0 = 0;

		ao.tls = tls_ok;
		ao.ca_file = tls_ok ? chain : NULL;
		ao.pin_sha256 = tls_ok ? pin : NULL;	/* the leaf just seen */
		if ((r = amt_open(&ao, &a)) != 0 || (r = amt_general_get(a, &g)) != 0)
			add(&d, V_FAIL, "WS-MAN login", r == AMTCA_E_AMT_AUTH ?
			    "check --user and --password-file (tried once: "
			    "repeated failures lock the account)" :
			    "check the device and the port", "%s", amtca_errmsg(r));
		else {
			add(&d, V_OK, "WS-MAN login", NULL, "authenticated over %s; "
			    "AMT %s", tls_ok ? "TLS" : "plain HTTP",
			    g.version ? g.version : "?");
			snprintf(amtfqdn, sizeof(amtfqdn), "%s%s%s",
			    g.hostname ? g.hostname : "",
			    g.domainname && *g.domainname ? "." : "",
			    g.domainname ? g.domainname : "");
			if (strcasecmp(amtfqdn, host) == 0)
				add(&d, V_OK, "AMT identity", NULL, "the AMT at %s "
				    "says it is %s", addrbuf, amtfqdn);
			else
				add(&d, V_FAIL, "AMT identity", resolved ?
				    "fix the DNS record or AMT's hostname/domain "
				    "so they agree" : "fix --address, or AMT's "
				    "hostname/domain", "the AMT at %s%s%s says "
				    "its FQDN is '%s', not %s", addrbuf,
				    resolved ? " (where DNS sends " : "",
				    resolved ? "clients)" : "", amtfqdn, host);
			if (leaf != NULL || raw != NULL) {
				if ((r = amt_time_get(a, &ta0)) != 0)
					add(&d, V_FAIL, "certificate validity (AMT "
					    "clock)", "check the firmware",
					    "cannot read AMT's clock: %s",
					    amtca_errmsg(r));
				else
					validity_check(&d, "certificate validity "
					    "(AMT clock)", leaf ? leaf : raw,
					    (time_t)ta0, "AMT");
			}
		}
	}

	/* The checks below need no credentials: wipe libcurl's and ours. */
	amt_free(a);
	a = NULL;
	amtca_secret_free(password);
	password = NULL;
	ao.password = NULL;

	/* 8. Redirection over TLS (SOL/IDE-R/KVM consoles). */
	{
		X509 *rl = NULL;
		struct amt_opts ro = ao;

		ro.tls_port = redir_port;
		ro.ca_file = chain;
		ro.pin_sha256 = NULL;
		if (skipped(&d, C_REDIR))
			add(&d, V_SKIP, "redirection TLS", NULL, "skipped");
		else if (net_tcp_probe(addrbuf, redir_port, DOCTOR_PROBE_MS) != 0)
			add(&d, V_FAIL, "redirection TLS", "enable redirection "
			    "(AMT_RedirectionService) and TLS on the device, or "
			    "open the port in firewalls", "nothing listens on "
			    "%s:%d", addrbuf, redir_port);
		else if ((r = chain ? amt_tls_fetch_leaf(&ro, &rl) :
		    AMTCA_E_CONFIG) != 0)
			add(&d, V_FAIL, "redirection TLS", "enroll the device so "
			    "redirection serves this CA's certificate",
			    "%s:%d: %s", addrbuf, redir_port, amtca_errmsg(r));
		else
			add(&d, V_OK, "redirection TLS", NULL, "%s:%d verifies "
			    "under %s", addrbuf, redir_port, chain);
		X509_free(rl);
	}

	if (d.json)
		print_json(&d, host, addrbuf);
	{
		size_t nfail = 0;

		for (i = 0; i < d.n; i++)
			if (d.c[i].v == V_FAIL)
				nfail++;
		ret = nfail ? EXIT_FAIL : EXIT_OK;
		if (nfail)
			fprintf(stderr, "amtca: doctor: %zu of %zu checks failed for "
			    "%s (see the FAIL lines and their fixes)\n", nfail,
			    d.n, host);
	}
out:
	amt_general_clear(&g);
	amt_free(a);
	amtca_secret_free(password);
	X509_free(leaf);
	X509_free(raw);
	net_addrs_clear(&na);
	cred_rule_clear(&rule);
	home_free(h);
	return ret;
}
