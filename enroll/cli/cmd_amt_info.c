/*
 * amtca amt-info: what a technician wants to know about one AMT device:
 * firmware version, the FQDN AMT believes it has, TLS state of both
 * interfaces, the certificate store (and which certificate is bound to
 * TLS) and the key pairs.
 */
#include "enroll/cli/cli.h"
#include "signer/signer.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "amt/amt.h"
#include "common/util.h"
#include "enroll/enroll.h"
#include "common/json.h"

static const char syn[] =
    "--host FQDN [--address IP] [--port N] [--tls] [--tls-port N]\n"
    "           --user USER --password-file FILE [--ca-file PEM] [--tls-pin SHA256]\n"
    "           [--legacy-tls] [--json]";

static const char options[] =
    "  --host FQDN            the device's FQDN\n"
    "  --address IP           talk to IP instead of resolving FQDN\n"
    "  --port N               plain WS-MAN port (16992)\n"
    "  --tls                  use the TLS port, verified with --ca-file (always\n"
    "                         when the records say the device is enrolled)\n"
    "  --tls-port N           TLS WS-MAN port (16993)\n"
    "  --user USER            AMT user\n"
    "  --password-file FILE   AMT password (first line)\n"
    "  --ca-file PEM          chain to verify TLS with (the home's chain.pem)\n"
    "  --tls-pin SHA256       also accept this served leaf (SHA-256 of its DER,\n"
    "                         hex) for credentials over TLS\n"
    "  --legacy-tls           AMT <= 12: legacy renegotiation, SECLEVEL 0\n"
    "  --json                 one JSON document on stdout, also on failure\n"
    "  --help                 this text\n";

static int
usage_err(const char *msg)
{
	return cli_usage("amt-info", msg, syn);
}

static int
parse_port(const char *s, int *out)
{
	long n;

	if (cli_parse_long(s, 1, 65535, &n) != 0)
		return -1;
	*out = (int)n;
	return 0;
}

static void
asn1_time_str(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		snprintf(buf, len, "?");
		return;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
key_desc(EVP_PKEY *k, char *buf, size_t len)
{
	if (k == NULL)
		snprintf(buf, len, "unparsed");
	else
		snprintf(buf, len, "%s-%d", EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA ?
		    "RSA" : EVP_PKEY_get_base_id(k) == EVP_PKEY_EC ? "EC" : "other",
		    EVP_PKEY_get_bits(k));
}

/* Does certificate `c` carry the public key of `k`? */
static int
cert_has_key(const struct amt_cert *c, const struct amt_key *k)
{
	const unsigned char *p = c->der;
	X509 *x;
	int eq = 0;

	if (k->pub == NULL || (x = d2i_X509(NULL, &p, (long)c->der_len)) == NULL)
		return 0;
	eq = EVP_PKEY_eq(X509_get0_pubkey(x), k->pub) == 1;
	X509_free(x);
	return eq;
}

int
cmd_amt_info(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "tls", no_argument, NULL, 't' },
		{ "tls-port", required_argument, NULL, 'P' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'w' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "legacy-tls", no_argument, NULL, 'L' },
		{ "tls-pin", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct amt_opts o;
	const char *pwfile = NULL;
	char *password = NULL, *bound = NULL, *chain = NULL;
	struct amt *a = NULL;
	struct amt_general g;
	struct amt_cert *certs = NULL;
	struct amt_key *keys = NULL;
	struct amt_tls_setting *ts = NULL;
	size_t nc = 0, nk = 0, nt = 0, i, k;
	struct json j;
	struct home *h = NULL;
	struct sgn *sgn = NULL;
	struct cred_rule rule;
	X509 *served = NULL;
	unsigned char oppin[32], pin[32];
	const unsigned char *oppin_p = NULL;
	char *conf = NULL;
	int ch, r, json = 0, ret = EXIT_FAIL;
	char nb[32], na[32], kd[32], *serial;

	memset(&o, 0, sizeof(o));
	memset(&g, 0, sizeof(g));
	memset(&rule, 0, sizeof(rule));
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': o.host = optarg; break;
		case 'a': o.address = optarg; break;
		case 't': o.tls = 1; break;
		case 'u': o.user = optarg; break;
		case 'w': pwfile = optarg; break;
		case 'c': o.ca_file = optarg; break;
		case 'L': o.legacy_tls = 1; break;
		case 'j': json = 1; break;
		case 'T':
			if (cred_pin_parse(optarg, oppin) != 0)
				return usage_err("--tls-pin takes the SHA-256 of the "
				    "leaf's DER as 64 hex digits");
			oppin_p = oppin;
			break;
		case 'p':
			if (parse_port(optarg, &o.port) != 0)
				return usage_err("--port takes 1..65535");
			break;
		case 'P':
			if (parse_port(optarg, &o.tls_port) != 0)
				return usage_err("--tls-port takes 1..65535");
			break;
		case 'h':
			return cli_help("amt-info", syn, options, opts);
		default:
			return usage_err("bad option");
		}
	}
	if (optind != argc || o.host == NULL || o.user == NULL || pwfile == NULL)
		return usage_err("--host, --user and --password-file are required");
	/*
	 * The records decide the transport (credrule.c): an enrolled device
	 * is asked over TLS with its recorded leaf, never over plain HTTP.
	 * Without a CA home there are no records to consult.
	 */
	if (asprintf(&conf, "%s/%s", home_default_dir(homedir), HOME_CONF) == -1) {
		conf = NULL;
		ret = cli_fail(AMTCA_E_NOMEM);
		goto out;
	}
	if (access(conf, F_OK) == 0 &&
	    (r = home_open_frontend(homedir, 1, &h, &sgn)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if ((r = cred_rule_load(h ? h->state : NULL, sgn, o.host, oppin_p, 0,
	    &rule)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (rule.compromised || rule.retired) {
		ret = cli_fail(cred_rule_plain(&rule, o.host));
		goto out;
	}
	if (rule.tls_only)
		o.tls = 1;
	if (o.tls && o.ca_file == NULL) {
		/* Verify against this CA's chain when there is a CA home. */
		if (asprintf(&chain, "%s/%s", home_default_dir(homedir),
		    HOME_CHAIN_PEM) == -1) {
			chain = NULL;
			ret = cli_fail(AMTCA_E_NOMEM);
			goto out;
		}
		if (access(chain, R_OK) != 0) {
			ret = usage_err("--tls needs --ca-file (or a CA home with "
			    "chain.pem)");
			goto out;
		}
		o.ca_file = chain;
	}
	if (o.tls) {
		/*
		 * Verified leaf first; credentials only to one the rule allows,
		 * and the session is pinned to it.  As in enroll, only the
		 * recorded bound leaf's expiry is forgiven (its exact bytes).
		 */
		o.expired_ok_der = rule.bound_der;
		o.expired_ok_len = rule.bound_der_len;
		if ((r = amt_tls_fetch_leaf(&o, &served)) != 0 ||
		    (r = cred_rule_tls(&rule, o.host, served, pin)) != 0) {
			ret = cli_fail(r);
			goto out;
		}
		o.pin_sha256 = pin;
	} else if ((r = cred_rule_plain(&rule, o.host)) != 0) {
		ret = cli_fail(r);
		goto out;
	} else
		fprintf(stderr, "amtca: note: using plain HTTP to %s port %d (the "
		    "records do not say it is enrolled); --tls for TLS\n",
		    o.host, o.port ? o.port : 16992);
	/* Read only once the rule said where it may go. */
	if ((r = amtca_secret_read(pwfile, &password)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	o.password = password;
	if ((r = amt_open(&o, &a)) != 0 || (r = amt_general_get(a, &g)) != 0 ||
	    (r = amt_tls_settings_list(a, &ts, &nt)) != 0 ||
	    (r = amt_tls_context_get(a, &bound)) != 0 ||
	    (r = amt_certs_list(a, &certs, &nc)) != 0 ||
	    (r = amt_keys_list(a, &keys, &nk)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	/* Done with the device: libcurl's copies and ours are wiped now. */
	amt_free(a);
	a = NULL;
	amtca_secret_free(password);
	password = NULL;
	o.password = NULL;
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_str(&j, "host", o.host);
		json_str(&j, "amt_version", g.version);
		json_str(&j, "hostname", g.hostname);
		json_str(&j, "domainname", g.domainname);
		json_str(&j, "digest_realm", g.realm);
		json_obj_begin(&j, "tls");
		for (i = 0; i < nt; i++) {
			json_obj_begin(&j, strcmp(ts[i].instance_id, AMT_TLS_REMOTE) == 0 ?
			    "remote" : strcmp(ts[i].instance_id, AMT_TLS_LOCAL) == 0 ?
			    "local" : ts[i].instance_id);
			json_bool(&j, "enabled", ts[i].enabled);
			json_bool(&j, "accept_non_secure", ts[i].accept_non_secure);
			json_bool(&j, "mutual_auth", ts[i].mutual_auth);
			json_obj_end(&j);
		}
		json_obj_end(&j);
		json_str(&j, "bound_certificate", bound);
		json_arr_begin(&j, "certificates");
	} else {
		printf("AMT version:  %s\nFQDN (AMT):   %s%s%s\nDigest realm: %s\n",
		    g.version ? g.version : "?", g.hostname ? g.hostname : "",
		    g.domainname && *g.domainname ? "." : "",
		    g.domainname ? g.domainname : "", g.realm ? g.realm : "?");
		for (i = 0; i < nt; i++)
			printf("TLS %-6s    enabled=%s accept_non_secure=%s mutual_auth=%s\n",
			    strcmp(ts[i].instance_id, AMT_TLS_REMOTE) == 0 ? "remote" :
			    strcmp(ts[i].instance_id, AMT_TLS_LOCAL) == 0 ? "local" : "other",
			    ts[i].enabled ? "yes" : "no",
			    ts[i].accept_non_secure ? "yes" : "no",
			    ts[i].mutual_auth ? "yes" : "no");
		printf("certificates: %zu\n", nc);
	}
	for (i = 0; i < nc; i++) {
		const unsigned char *p = certs[i].der;
		X509 *x = d2i_X509(NULL, &p, (long)certs[i].der_len);
		int is_bound = bound != NULL && strcmp(bound, certs[i].instance_id) == 0;

		serial = NULL;
		nb[0] = na[0] = '\0';
		if (x != NULL) {
			if (ca_serial_hex(X509_get0_serialNumber(x), &serial) != 0)
				serial = NULL;
			asn1_time_str(X509_get0_notBefore(x), nb, sizeof(nb));
			asn1_time_str(X509_get0_notAfter(x), na, sizeof(na));
		}
		if (json) {
			json_obj_begin(&j, NULL);
			json_str(&j, "handle", certs[i].instance_id);
			json_str(&j, "subject", certs[i].subject);
			json_str(&j, "issuer", certs[i].issuer);
			json_str(&j, "serial", serial);
			json_str(&j, "not_before", x ? nb : NULL);
			json_str(&j, "not_after", x ? na : NULL);
			json_bool(&j, "trusted_root", certs[i].trusted_root);
			json_bool(&j, "read_only", certs[i].read_only);
			json_bool(&j, "bound", is_bound);
			json_obj_end(&j);
		} else {
			printf("  %s%s%s\n    subject %s\n    issuer  %s\n"
			    "    serial  %s\n    valid   %s .. %s\n",
			    certs[i].instance_id, is_bound ? "  [bound to TLS]" : "",
			    certs[i].trusted_root ? "  [trusted root]" : "",
			    certs[i].subject ? certs[i].subject : "?",
			    certs[i].issuer ? certs[i].issuer : "?",
			    serial ? serial : "?", nb, na);
		}
		free(serial);
		X509_free(x);
	}
	if (json) {
		json_arr_end(&j);
		json_arr_begin(&j, "keys");
	} else
		printf("key pairs:    %zu\n", nk);
	for (k = 0; k < nk; k++) {
		const char *paired = NULL;

		for (i = 0; i < nc && paired == NULL; i++)
			if (cert_has_key(&certs[i], &keys[k]))
				paired = certs[i].instance_id;
		key_desc(keys[k].pub, kd, sizeof(kd));
		if (json) {
			json_obj_begin(&j, NULL);
			json_str(&j, "handle", keys[k].instance_id);
			json_str(&j, "type", kd);
			json_str(&j, "certificate", paired);
			json_obj_end(&j);
		} else
			printf("  %s  %s%s%s\n", keys[k].instance_id, kd,
			    paired ? "  certificate: " : "  (no certificate)",
			    paired ? paired : "");
	}
	if (json) {
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
	}
	ret = EXIT_OK;
out:
	amt_free(a);
	amtca_secret_free(password);
	amt_general_clear(&g);
	amt_certs_free(certs, nc);
	amt_keys_free(keys, nk);
	amt_tls_settings_free(ts, nt);
	free(bound);
	free(chain);
	free(conf);
	X509_free(served);
	cred_rule_clear(&rule);
	sgn_close(sgn);
	home_free(h);
	return ret;
}
