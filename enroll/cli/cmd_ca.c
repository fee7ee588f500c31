/*
 * The CA commands: init, issue, chain, list, show, revoke, crl.
 */
#include "enroll/cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/limits.h"
#include "common/util.h"
#include "hsm/admin.h"
#include "enroll/enroll.h"
#include "common/json.h"

#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static int
usage_error(const char *cmd, const char *msg, const char *synopsis)
{
	return cli_usage(cmd, msg, synopsis);
}

static int
parse_days(const char *s, int *out)
{
	long n;

	if (cli_parse_long(s, 1, AMTCA_DAYS_MAX, &n) != 0)
		return -1;
	*out = (int)n;
	return 0;
}

static char *
join(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) == -1)
		return NULL;
	return p;
}

static int
pem_of(X509 *x, unsigned char **out, size_t *len)
{
	unsigned char *der = NULL;
	int n, ret;

	*out = NULL;
	if ((n = i2d_X509(x, &der)) <= 0)
		return amtca_fail_ssl(AMTCA_E_CERT, "cannot encode a certificate");
	ret = cli_der_to_pem(der, (size_t)n, out, len);
	OPENSSL_free(der);
	return ret;
}

static int
write_pem(const char *path, X509 *const *certs, size_t n, int exclusive)
{
	unsigned char *all = NULL, *one = NULL, *nb;
	size_t len = 0, olen;
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	for (i = 0; i < n; i++) {
		if ((r = pem_of(certs[i], &one, &olen)) != 0) {
			ret = r;
			goto out;
		}
		if ((nb = realloc(all, len + olen)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		all = nb;
		memcpy(all + len, one, olen);
		len += olen;
		free(one);
		one = NULL;
	}
	ret = amtca_file_write(path, all, len, 0644, exclusive);
out:
	free(one);
	free(all);
	return ret;
}

/* ------------------------------------------------------------------ init */

static const char init_synopsis[] =
    "[--softhsm | --module PATH --token-uri URI --pin-file FILE]\n"
    "           [--key-type rsa2048|rsa3072|rsa4096|p256|p384]\n"
    "           (--domain SUFFIX... | --any-domain) [--ip-range CIDR]...\n"
    "           [--root-cn CN] [--inter-cn CN] [--org NAME] [--country CC] [--days N]\n"
    "           [--root-token-uri URI] [--root-pin-file FILE]\n"
    "           [--external-root --csr-out FILE]\n"
    "           [--store sqlite|postgresql://...]";

static const char init_options[] =
    "  --softhsm              a SoftHSM token inside the home (embedded default)\n"
    "  --module PATH          a PKCS#11 module, with --token-uri (and --pin-file)\n"
    "  --token-uri URI        RFC 7512 URI of the token; may carry\n"
    "                         pin-source=file:/absolute/path instead of --pin-file\n"
    "  --pin-file FILE        the token's user PIN (first line)\n"
    "  --key-type TYPE        rsa2048 (default), rsa3072, rsa4096, p256, p384\n"
    "  --domain SUFFIX        allowed FQDN suffix (repeatable); name constraints;\n"
    "                         required unless --any-domain\n"
    "  --any-domain           a CA for any DNS name (warns; recorded in amtca.conf)\n"
    "  --ip-range CIDR        network for IP SANs (repeatable); none: no IP SANs\n"
    "  --root-cn CN           root CA common name\n"
    "  --inter-cn CN          issuing CA common name\n"
    "  --org NAME             organisation in the CA names\n"
    "  --country CC           two-letter country in the CA names\n"
    "  --days N               default leaf validity in days (397)\n"
    "  --root-token-uri URI   the root key in its own token of --module, kept\n"
    "                         offline (needed for init, rotation, the root's CRL)\n"
    "  --root-pin-file FILE   that token's PIN (else the URI's pin-source)\n"
    "  --external-root        no root here: make the intermediate key and its\n"
    "                         request for an external root (docs/external-root.md);\n"
    "                         then 'amtca ca import-intermediate'\n"
    "  --csr-out FILE         with --external-root: where the request goes (PEM)\n"
    "  --store URI            where the records live: sqlite (the home's files,\n"
    "                         default) or postgresql://... (a shared database;\n"
    "                         password only from a passfile)\n"
    "  --join                 another node of the CA in a shared store\n"
    "                         (amtca init --join --help)\n"
    "  --help                 this text\n";

static int
write_conf(const char *dir, const char *module, const char *uri,
    const char *pin_file, const char *softhsm_conf, char *const *env,
    size_t nenv, const char *key_type, char *const *domains, size_t nd,
    int any_domain, char *const *ranges, size_t nr, const char *org,
    const char *country, int days, const char *home_id, const char *root_uri,
    const char *root_pin, const char *store)
{
	char *path = NULL, *text = NULL, *nt;
	size_t i;
	int ret;

	if (asprintf(&text,
	    "# amtca.conf: written by 'amtca init'; see amtca.conf(5).\n"
	    "module = %s\ntoken_uri = %s\n%s%s%s%s%s%s"
	    "key_type = %s\ndays = %d\nskew = %d\nwildcard = no\nclient_auth = no\n",
	    module, uri,
	    pin_file ? "pin_file = " : "", pin_file ? pin_file : "", pin_file ? "\n" : "",
	    softhsm_conf ? "softhsm_conf = " : "", softhsm_conf ? softhsm_conf : "",
	    softhsm_conf ? "\n" : "", key_type, days, AMTCA_SKEW_DEFAULT_S) == -1)
		return AMTCA_E_NOMEM;
	if (store != NULL) {
		if (asprintf(&nt, "%sstore = %s\n", text, store) == -1) {
			free(text);
			return AMTCA_E_NOMEM;
		}
		free(text);
		text = nt;
	}
	for (i = 0; i < nenv; i++) {
		if (asprintf(&nt, "%smodule_env = %s\n", text, env[i]) == -1) {
			free(text);
			return AMTCA_E_NOMEM;
		}
		free(text);
		text = nt;
	}
	for (i = 0; i < nd; i++) {
		if (asprintf(&nt, "%sdomain = %s\n", text, domains[i]) == -1) {
			free(text);
			return AMTCA_E_NOMEM;
		}
		free(text);
		text = nt;
	}
	if (any_domain) {
		if (asprintf(&nt, "%s# chosen with --any-domain: no DNS name "
		    "constraint\nany_domain = yes\n", text) == -1) {
			free(text);
			return AMTCA_E_NOMEM;
		}
		free(text);
		text = nt;
	}
	for (i = 0; i < nr; i++) {
		if (asprintf(&nt, "%sip_range = %s\n", text, ranges[i]) == -1) {
			free(text);
			return AMTCA_E_NOMEM;
		}
		free(text);
		text = nt;
	}
	if (org != NULL || country != NULL) {
		if (asprintf(&nt, "%s%s%s%s%s%s%s", text, org ? "org = " : "",
		    org ? org : "", org ? "\n" : "", country ? "country = " : "",
		    country ? country : "", country ? "\n" : "") == -1) {
			free(text);
			return AMTCA_E_NOMEM;
		}
		free(text);
		text = nt;
	}
	/* The home's identity (also in the ca.init entry): a restored copy
	 * gets another. */
	if (asprintf(&nt, "%shome_id = %s\n", text, home_id) == -1) {
		free(text);
		return AMTCA_E_NOMEM;
	}
	free(text);
	text = nt;
	if (root_uri != NULL) {
		if (asprintf(&nt, "%s# the root key's own token, needed only for "
		    "init, rotation and the root's CRL\nroot_token_uri = %s\n"
		    "%s%s%s", text, root_uri, root_pin ? "root_pin_file = " : "",
		    root_pin ? root_pin : "", root_pin ? "\n" : "") == -1) {
			free(text);
			return AMTCA_E_NOMEM;
		}
		free(text);
		text = nt;
	}
	if ((path = join(dir, HOME_CONF)) == NULL) {
		free(text);
		return AMTCA_E_NOMEM;
	}
	/* Exclusive: the conf is written last and marks a complete CA. */
	ret = amtca_file_write(path, text, strlen(text), 0644, 1);
	free(path);
	free(text);
	return ret;
}

static int
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == '\n' || *s == '#' ||
		    *s == '/' || *s == ',' || *s == '+' || *s == '=')
			return 0;
	return 1;
}

/* SHA-256 fingerprint of a certificate, lowercase hex, into out[65]. */
static void
cert_fp(X509 *x, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	size_t i;

	out[0] = '\0';
	if (X509_digest(x, EVP_sha256(), md, &n) != 1 || n != 32)
		return;
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * The new CA's first audit entry, "ca.init" by the operator, and its
 * first seal (anchored in the token), so that the trail is pinned from
 * its first entry on.  The detail names both certificates and the home's
 * identity (home_id in amtca.conf), which tells a restored copy's fork
 * apart.
 */
static int
init_audit(struct hsm *hsm, struct hsm_key *ak, struct store *st, X509 *root,
    X509 *inter, const char *inter_cn, enum hsm_keytype kt, const char *id)
{
	char rfp[65], ifp[65], detail[320], cn[256], *actor = NULL;
	struct ca_signer as;
	struct audit_sealer sl;
	int r, ret = AMTCA_E_INTERNAL;

	/* External root: nothing certified yet ("ca.import" follows). */
	if (root != NULL) {
		cert_fp(root, rfp);
		cert_fp(inter, ifp);
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(inter),
		    NID_commonName, cn, sizeof(cn)) < 0)
			cn[0] = '\0';
	} else {
		snprintf(rfp, sizeof(rfp), "external");
		snprintf(ifp, sizeof(ifp), "pending");
		snprintf(cn, sizeof(cn), "%s", inter_cn);
	}
	if ((r = home_local_actor(&actor)) != 0 ||
	    (r = store_set_actor(st, actor)) != 0) {
		ret = r;
		goto out;
	}
	snprintf(detail, sizeof(detail), "root=%s intermediate=%s key=%s home=%s",
	    rfp, ifp, hsm_keytype_name(kt), id);
	hsm_key_signer(ak, &as);
	home_audit_sealer(hsm, &as, &sl);
	if ((r = store_audit_append(st, NULL, "ca.init", cn,
	    detail)) != 0 || (r = audit_seal(st, NULL, &sl, NULL)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	free(actor);
	return ret;
}

/*
 * --store: "sqlite" (or "sqlite:") is the home's own files, the default
 * (*uri becomes NULL); a postgresql:// or postgres:// URI must name a
 * database holding no amtca store yet (init --join is for another node),
 * must fit on one amtca.conf line and carries no password (the backend
 * refuses one: a passfile= path is the way).  Nothing is made here.
 */
static int
init_store_check(const char **uri)
{
	struct store *st = NULL;
	const char *u = *uri, *c;
	int r;

	if (strcmp(u, "sqlite") == 0 || strcmp(u, "sqlite:") == 0) {
		*uri = NULL;
		return 0;
	}
	if (strncmp(u, "postgresql://", 13) != 0 &&
	    strncmp(u, "postgres://", 11) != 0)
		return usage_error("init", "--store takes sqlite (the home's own "
		    "files, the default) or a postgresql:// URI", init_synopsis);
	for (c = u; *c != '\0'; c++)
		if ((unsigned char)*c < 0x21 || *c == '#' || *c == 0x7f)
			return usage_error("init", "--store: the URI may not hold "
			    "spaces, control characters or '#'", init_synopsis);
	r = store_open(u, 0, &st);
	store_close(st);
	if (r == 0)
		return cli_fail(amtca_fail(AMTCA_E_EXISTS, "the store at %s "
		    "already holds a CA; refusing to overwrite it", u));
	if (r != AMTCA_E_NOT_FOUND)
		return cli_fail(r);
	amtca_err_clear();
	return 0;
}

/* ------------------------------------------------------------ init --join */

static const char join_synopsis[] =
    "--join --store postgresql://... --module PATH --token-uri URI\n"
    "           [--pin-file FILE]";

static const char join_options[] =
    "  --join                 another node of the CA in --store: its chain and\n"
    "                         configuration come from the database, its keys\n"
    "                         from the same token through this node's module\n"
    "  --store URI            the CA's shared store (postgresql://...; password\n"
    "                         only from a passfile)\n"
    "  --module PATH          this node's PKCS#11 module for the CA's token\n"
    "  --token-uri URI        RFC 7512 URI of the token (may carry pin-source)\n"
    "  --pin-file FILE        the token's user PIN (first line)\n"
    "  --help                 this text\n";

static int
cmd_init_join(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "join", no_argument, NULL, 'J' },
		{ "store", required_argument, NULL, 'S' },
		{ "module", required_argument, NULL, 'm' },
		{ "token-uri", required_argument, NULL, 'u' },
		{ "pin-file", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *store = NULL, *module = NULL, *uri = NULL, *pin = NULL, *c;
	char *abs_module = NULL, *abs_pin = NULL, home_id[HOME_ID_LEN + 1];
	struct home_join j;
	int ch, r, ret = EXIT_FAIL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'J': break;
		case 'S': store = optarg; break;
		case 'm': module = optarg; break;
		case 'u': uri = optarg; break;
		case 'p': pin = optarg; break;
		case 'h':
			return cli_help("init", join_synopsis, join_options, opts);
		default:
			return usage_error("init", "--join takes only --store, "
			    "--module, --token-uri and --pin-file", join_synopsis);
		}
	}
	if (optind != argc)
		return usage_error("init", "unexpected argument", join_synopsis);
	if (store == NULL || module == NULL || uri == NULL)
		return usage_error("init", "--join needs --store, --module and "
		    "--token-uri (with --pin-file or a pin-source in the URI)",
		    join_synopsis);
	if (strncmp(store, "postgresql://", 13) != 0 &&
	    strncmp(store, "postgres://", 11) != 0)
		return usage_error("init", "--join: --store takes the CA's shared "
		    "postgresql:// URI", join_synopsis);
	for (c = store; *c != '\0'; c++)
		if ((unsigned char)*c < 0x21 || *c == '#' || *c == 0x7f)
			return usage_error("init", "--store: the URI may not hold "
			    "spaces, control characters or '#'", join_synopsis);
	/* amtca.conf is read from anywhere later: absolute paths. */
	if (strchr(module, '/') != NULL) {
		if ((abs_module = realpath(module, NULL)) == NULL) {
			r = amtca_fail(AMTCA_E_HSM_MODULE, "--module %s: %s", module,
			    strerror(errno));
			goto fail;
		}
		module = abs_module;
	}
	if (pin != NULL) {
		if ((abs_pin = realpath(pin, NULL)) == NULL) {
			r = amtca_fail(AMTCA_E_CONFIG, "--pin-file %s: %s", pin,
			    strerror(errno));
			goto fail;
		}
		pin = abs_pin;
	}
	memset(&j, 0, sizeof(j));
	j.dir = home_default_dir(homedir);
	j.store = store;
	j.module = module;
	j.token_uri = uri;
	j.pin_file = pin;
	if ((r = home_join(&j, home_id)) != 0)
		goto fail;
	printf("node joined the CA in %s\n  home: %s\n  home_id: %s\n"
	    "  keys: in %s\n", store, j.dir, home_id, uri);
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	free(abs_module);
	free(abs_pin);
	return ret;
}

int
cmd_init(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "softhsm", no_argument, NULL, 's' },
		{ "module", required_argument, NULL, 'm' },
		{ "token-uri", required_argument, NULL, 'u' },
		{ "pin-file", required_argument, NULL, 'p' },
		{ "key-type", required_argument, NULL, 'k' },
		{ "domain", required_argument, NULL, 'd' },
		{ "any-domain", no_argument, NULL, 'A' },
		{ "ip-range", required_argument, NULL, 'R' },
		{ "root-cn", required_argument, NULL, 'r' },
		{ "inter-cn", required_argument, NULL, 'i' },
		{ "org", required_argument, NULL, 'o' },
		{ "country", required_argument, NULL, 'c' },
		{ "days", required_argument, NULL, 'D' },
		{ "external-root", no_argument, NULL, 'E' },
		{ "root-token-uri", required_argument, NULL, 'T' },
		{ "root-pin-file", required_argument, NULL, 'P' },
		{ "csr-out", required_argument, NULL, 'O' },
		{ "store", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *module = NULL, *uri = NULL, *pin_file = NULL;
	const char *csr_out = NULL, *root_uri = NULL, *root_pin = NULL;
	char *abs_root_pin = NULL;
	struct hsm *rhsm = NULL;
	int external = 0, wrote_csr = 0;
	X509_REQ *req = NULL;
	char *f_pend = NULL;
	const char *store_uri = NULL;
	const char *key_type = "rsa2048", *root_cn = "amtca Root CA";
	const char *inter_cn = "amtca Issuing CA", *org = NULL, *country = NULL;
	char *domains[AMTCA_DOMAINS_MAX], real[PATH_MAX];
	char *ranges[AMTCA_IP_RANGES_MAX], fq[AMTCA_FQDN_MAX + 1];
	char rtext[CA_IP_RANGE_STRLEN], home_id[HOME_ID_LEN + 1];
	struct ca_ip_range rg;
	size_t nd = 0, nr = 0, i;
	int softhsm = 0, any_domain = 0, days = AMTCA_DAYS_DEFAULT, ch, r;
	int ret = EXIT_FAIL;
	enum hsm_keytype kt;
	struct hsm *hsm = NULL;
	struct hsm_key *rk = NULL, *ik = NULL, *ak = NULL;
	struct hsm_open_opts ho;
	struct ca_signer rs;
	struct ca_policy pol;
	struct store *st = NULL;
	X509 *root = NULL, *inter = NULL, *chain[2];
	char *mod_out = NULL, *uri_out = NULL, *conf_out = NULL;
	char *hsmdir = NULL, *pinpath = NULL, *f_root = NULL, *f_inter = NULL;
	char *f_chain = NULL, *f_db = NULL, *f_conf = NULL, *f_state = NULL;
	char *d_keys = NULL, *d_state = NULL;
	int made_dirs = 0;
	char *abs_module = NULL, *abs_pin = NULL;
	char *env[AMTCA_MODULE_ENV_MAX];
	size_t nenv = 0;
	int wrote_files = 0, wrote_conf = 0;
	struct stat sb;

	for (i = 1; i < (size_t)argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--join") == 0)
			return cmd_init_join(homedir, argc, argv);
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's': softhsm = 1; break;
		case 'm': module = optarg; break;
		case 'u': uri = optarg; break;
		case 'p': pin_file = optarg; break;
		case 'k': key_type = optarg; break;
		case 'r': root_cn = optarg; break;
		case 'i': inter_cn = optarg; break;
		case 'o': org = optarg; break;
		case 'c': country = optarg; break;
		case 'D':
			if (parse_days(optarg, &days) != 0)
				return usage_error("init", "--days takes 1..825", init_synopsis);
			break;
		case 'd':
			if (nd == AMTCA_DOMAINS_MAX)
				return usage_error("init", "too many --domain", init_synopsis);
			domains[nd++] = optarg;
			break;
		case 'A': any_domain = 1; break;
		case 'E': external = 1; break;
		case 'O': csr_out = optarg; break;
		case 'T': root_uri = optarg; break;
		case 'P': root_pin = optarg; break;
		case 'S': store_uri = optarg; break;
		case 'R':
			if (nr == AMTCA_IP_RANGES_MAX)
				return usage_error("init", "too many --ip-range",
				    init_synopsis);
			ranges[nr++] = optarg;
			break;
		case 'h':
			return cli_help("init", init_synopsis, init_options, opts);
		default:
			return usage_error("init", "bad option", init_synopsis);
		}
	}
	if (optind != argc)
		return usage_error("init", "unexpected argument", init_synopsis);
	/* Without --pin-file the URI's pin-source names the PIN file. */
	if (softhsm == (module != NULL || uri != NULL || pin_file != NULL) ||
	    (!softhsm && (module == NULL || uri == NULL)))
		return usage_error("init", "give either --softhsm or --module and "
		    "--token-uri (with --pin-file or a pin-source in the URI)",
		    init_synopsis);
	if (hsm_keytype_parse(key_type, &kt) != 0)
		return usage_error("init", "unknown --key-type", init_synopsis);
	if (root_pin != NULL && root_uri == NULL)
		return usage_error("init", "--root-pin-file goes with "
		    "--root-token-uri", init_synopsis);
	if (root_uri != NULL && (softhsm || external))
		return usage_error("init", "--root-token-uri takes a token of "
		    "--module (not --softhsm, and no root with --external-root)",
		    init_synopsis);
	if (external != (csr_out != NULL))
		return usage_error("init", "--external-root and --csr-out FILE go "
		    "together", init_synopsis);
	if (store_uri != NULL && (r = init_store_check(&store_uri)) != 0)
		return r;
	/* A CA that may vouch for any name is a choice, never a default. */
	if (nd == 0 && !any_domain)
		return usage_error("init", "--domain SUFFIX is required (or "
		    "--any-domain for a CA that may vouch for any DNS name)",
		    init_synopsis);
	if (nd > 0 && any_domain)
		return usage_error("init", "--domain and --any-domain exclude "
		    "each other", init_synopsis);
	if (!valid_name(root_cn) || !valid_name(inter_cn) ||
	    (org != NULL && !valid_name(org)))
		return usage_error("init", "names must be 1-64 printable characters "
		    "without / , + = #", init_synopsis);
	if (country != NULL && (strlen(country) != 2 ||
	    !(country[0] >= 'A' && country[0] <= 'Z') ||
	    !(country[1] >= 'A' && country[1] <= 'Z')))
		return usage_error("init", "--country takes two capital letters",
		    init_synopsis);
	/* Ranges are checked strictly and stored in canonical form. */
	for (i = 0; i < nr; i++) {
		if ((r = ca_ip_range_parse(ranges[i], &rg)) != 0)
			fprintf(stderr, "amtca: --ip-range: %s\n", amtca_errmsg(r));
		else {
			ca_ip_range_format(&rg, rtext, sizeof(rtext));
			if ((ranges[i] = strdup(rtext)) == NULL)
				r = AMTCA_E_NOMEM;
		}
		if (r != 0) {
			while (i-- > 0)
				free(ranges[i]);
			return r == AMTCA_E_NOMEM ? cli_fail(r) : EXIT_USAGE;
		}
	}
	/* Domains go through the FQDN rules (as suffixes) and are stored lowercased. */
	ca_policy_init(&pol);
	for (i = 0; i < nd; i++) {
		if ((r = ca_fqdn_check(domains[i], &pol, fq)) != 0) {
			fprintf(stderr, "amtca: --domain %s: %s\n", domains[i],
			    amtca_errmsg(r));
			ret = EXIT_USAGE;
		} else if ((domains[i] = strdup(fq)) == NULL)
			ret = cli_fail(AMTCA_E_NOMEM);
		if (r != 0 || domains[i] == NULL) {
			while (i-- > 0)
				free(domains[i]);
			for (i = 0; i < nr; i++)
				free(ranges[i]);
			return ret;
		}
	}
	if (any_domain)
		fprintf(stderr, "amtca: warning: --any-domain: this CA may vouch "
		    "for any DNS name, www.example.com as much as your AMT "
		    "hosts; recorded in amtca.conf\n");
	pol.domains = (const char *const *)domains;
	pol.ndomains = nd;
	pol.ip_ranges = (const char *const *)ranges;
	pol.nip_ranges = nr;
	pol.org = org;
	pol.country = country;

	homedir = home_default_dir(homedir);
	if ((r = home_create(homedir)) != 0)
		goto fail;
	if (realpath(homedir, real) == NULL) {
		r = amtca_fail(AMTCA_E_IO, "cannot resolve %s", homedir);
		goto fail;
	}
	if ((f_conf = join(real, HOME_CONF)) == NULL ||
	    (f_root = join(real, HOME_ROOT_PEM)) == NULL ||
	    (f_inter = join(real, HOME_INTER_PEM)) == NULL ||
	    (f_chain = join(real, HOME_CHAIN_PEM)) == NULL ||
	    (f_db = store_uri != NULL ? strdup(store_uri) :
	    join(real, HOME_CA_DB)) == NULL ||
	    (store_uri == NULL && (f_state = join(real, HOME_STATE_DB)) == NULL) ||
	    (d_keys = join(real, HOME_KEYS_DIR)) == NULL ||
	    (d_state = join(real, HOME_STATE_DIR)) == NULL ||
	    (hsmdir = join(real, HOME_HSM_DIR)) == NULL ||
	    (pinpath = join(real, HOME_PIN_FILE)) == NULL ||
	    (f_pend = join(real, HOME_PENDING_CSR)) == NULL) {
		r = AMTCA_E_NOMEM;
		goto fail;
	}
	if (stat(f_conf, &sb) == 0 || stat(f_root, &sb) == 0 ||
	    stat(d_keys, &sb) == 0 || stat(d_state, &sb) == 0) {
		r = amtca_fail(AMTCA_E_EXISTS, "a CA already exists in %s; "
		    "refusing to overwrite it", real);
		goto fail;
	}
	/* keys/: what only the signer reads; state/: the service's. */
	if (mkdir(d_keys, 0700) != 0 || mkdir(d_state, 0700) != 0) {
		r = amtca_fail(AMTCA_E_IO, "cannot create %s and %s: %s", d_keys,
		    d_state, strerror(errno));
		made_dirs = 1;
		goto fail;
	}
	made_dirs = 1;
	if (softhsm) {
		if ((r = hsm_softhsm_create(hsmdir, "amtca", pinpath, &mod_out,
		    &uri_out, &conf_out)) != 0)
			goto fail;
		module = mod_out;
		uri = uri_out;
		pin_file = pinpath;
	} else {
		/*
		 * amtca.conf reads relative paths relative to the home, and
		 * later commands run from anywhere: store what the user meant.
		 */
		if (strchr(module, '/') != NULL) {
			if ((abs_module = realpath(module, NULL)) == NULL) {
				r = amtca_fail(AMTCA_E_HSM_MODULE, "--module %s: %s",
				    module, strerror(errno));
				goto fail;
			}
			module = abs_module;
		}
		if (pin_file != NULL) {
			if ((abs_pin = realpath(pin_file, NULL)) == NULL) {
				r = amtca_fail(AMTCA_E_CONFIG, "--pin-file %s: %s",
				    pin_file, strerror(errno));
				goto fail;
			}
			pin_file = abs_pin;
		}
		/* The module's own configuration, as this shell has it. */
		for (i = 0; home_module_env_names[i] != NULL; i++) {
			const char *v = getenv(home_module_env_names[i]);
			char *rv = NULL;

			if (v == NULL || *v == '\0' || nenv == AMTCA_MODULE_ENV_MAX)
				continue;
			if ((rv = realpath(v, NULL)) == NULL) {
				r = amtca_fail(AMTCA_E_CONFIG, "%s=%s: %s",
				    home_module_env_names[i], v, strerror(errno));
				goto fail;
			}
			r = asprintf(&env[nenv], "%s=%s", home_module_env_names[i], rv);
			free(rv);
			if (r == -1) {
				r = AMTCA_E_NOMEM;
				goto fail;
			}
			nenv++;
		}
		if ((r = home_token_check(module, uri, pin_file, NULL, env,
		    nenv)) != 0)
			goto fail;
		if (root_uri != NULL) {
			if (strcmp(root_uri, uri) == 0) {
				r = amtca_fail(AMTCA_E_USAGE, "--root-token-uri "
				    "names the CA's own token; give the root's "
				    "separate token");
				goto fail;
			}
			if (root_pin != NULL && (abs_root_pin = realpath(root_pin,
			    NULL)) == NULL) {
				r = amtca_fail(AMTCA_E_CONFIG, "--root-pin-file "
				    "%s: %s", root_pin, strerror(errno));
				goto fail;
			}
			if ((r = home_token_check(module, root_uri, abs_root_pin,
			    NULL, env, nenv)) != 0)
				goto fail;
		}
	}
	memset(&ho, 0, sizeof(ho));
	ho.module = module;
	ho.token_uri = uri;
	ho.pin_file = pin_file;
	ho.softhsm_conf = conf_out;
	if ((r = hsm_open(&ho, &hsm)) != 0)
		goto fail;
	/* A key handle is non-NULL only when this run generated it. */
	if (external) {
		struct ca_signer is;
		unsigned char *pem = NULL;
		long plen;
		char *pp;
		BIO *b = NULL;

		if ((r = hsm_keygen(hsm, kt, KEY_LABEL_INTER, &ik)) != 0 ||
		    (r = hsm_keygen(hsm, kt, KEY_LABEL_AUDIT, &ak)) != 0)
			goto fail;
		hsm_key_signer(ik, &is);
		if ((r = ca_intermediate_csr(&is, inter_cn, org, &pol, &req)) != 0)
			goto fail;
		if ((b = BIO_new(BIO_s_mem())) == NULL ||
		    PEM_write_bio_X509_REQ(b, req) != 1 ||
		    (plen = BIO_get_mem_data(b, &pp)) <= 0 ||
		    (pem = malloc((size_t)plen)) == NULL) {
			BIO_free(b);
			r = AMTCA_E_NOMEM;
			goto fail;
		}
		memcpy(pem, pp, (size_t)plen);
		BIO_free(b);
		wrote_files = 1;
		r = amtca_file_write(f_pend, pem, (size_t)plen, 0644, 1);
		if (r == 0) {
			wrote_csr = 1;
			r = amtca_file_write(csr_out, pem, (size_t)plen, 0644, 0);
		}
		free(pem);
		if (r != 0 || (r = store_open(f_db, 1, &st)) != 0 ||
		    (r = home_id_new(home_id)) != 0 ||
		    (r = init_audit(hsm, ak, st, NULL, NULL, inter_cn, kt,
		    home_id)) != 0)
			goto fail;
		goto stores_done;
	}
	/* The offline root: its key in its own token, opened only now. */
	if (root_uri != NULL) {
		struct hsm_open_opts rho;

		memset(&rho, 0, sizeof(rho));
		rho.module = module;
		rho.token_uri = root_uri;
		rho.pin_file = abs_root_pin;
		if ((r = hsm_open(&rho, &rhsm)) != 0)
			goto fail;
	}
	if ((r = hsm_keygen(rhsm != NULL ? rhsm : hsm, kt, KEY_LABEL_ROOT,
	    &rk)) != 0 ||
	    (r = hsm_keygen(hsm, kt, KEY_LABEL_INTER, &ik)) != 0 ||
	    (r = hsm_keygen(hsm, kt, KEY_LABEL_AUDIT, &ak)) != 0)
		goto fail;
	hsm_key_signer(rk, &rs);
	if ((r = ca_root_create(&rs, root_cn, org, AMTCA_CA_DAYS_ROOT, &root)) != 0 ||
	    (r = ca_intermediate_create(&rs, root, hsm_key_public(ik), inter_cn,
	    org, &pol, AMTCA_CA_DAYS_INTER, &inter)) != 0)
		goto fail;
	chain[0] = inter;
	chain[1] = root;
	wrote_files = 1;
	if ((r = write_pem(f_root, &root, 1, 1)) != 0 ||
	    (r = write_pem(f_inter, &inter, 1, 1)) != 0 ||
	    (r = write_pem(f_chain, chain, 2, 1)) != 0 ||
	    (r = store_open(f_db, 1, &st)) != 0 ||
	    (r = home_id_new(home_id)) != 0 ||
	    (r = init_audit(hsm, ak, st, root, inter, inter_cn, kt,
	    home_id)) != 0)
		goto fail;
stores_done:
	store_close(st);
	st = NULL;
	/* A shared store holds the state too (home_open). */
	if (f_state != NULL && (r = store_open(f_state, 1, &st)) != 0)
		goto fail;
	store_close(st);
	st = NULL;
	{
		/* Paths inside the home are stored relative so the home can move. */
		const char *pf = pin_file, *sc = conf_out;
		size_t rl = strlen(real);

		if (softhsm) {
			pf = HOME_PIN_FILE;
			sc = conf_out + rl + 1;
		}
		if ((r = write_conf(real, module, uri, pf, sc, env, nenv, key_type,
		    domains, nd, any_domain, ranges, nr, org, country, days,
		    home_id, root_uri, abs_root_pin, store_uri)) != 0)
			goto fail;
		wrote_conf = 1;
	}
	/* A shared store: what init --join on other nodes builds from. */
	if (store_uri != NULL && !external && ((r = store_open(f_db, 0,
	    &st)) != 0 || (r = home_shared_publish_dir(real, st)) != 0))
		goto fail;
	store_close(st);
	st = NULL;
	if (external)
		printf("CA key made in %s (%s in %s); request for the external "
		    "root: %s\nnext: have the root sign it with the name "
		    "constraints (docs/external-root.md), then run\n  amtca ca "
		    "import-intermediate --cert FILE --root FILE\n", real,
		    hsm_keytype_name(kt), uri, csr_out);
	else
		printf("CA created in %s\n  root:         %s\n  intermediate: %s\n"
		    "  chain (PEM, bottom to top, for consoles): %s\n  keys: %s in %s\n",
		    real, f_root, f_inter, f_chain, hsm_keytype_name(kt), uri);
	if (root_uri != NULL)
		printf("  root key: in %s; keep that token offline: it is needed "
		    "only for ca rotate and crl --root\n", root_uri);
	if (store_uri != NULL)
		printf("  store: %s\n", store_uri);
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
	/* Leave nothing half-made behind: keys we generated and files we wrote. */
	if (ak != NULL && hsm_key_destroy(hsm, ak) != 0)
		fprintf(stderr, "amtca: could not remove key '%s' from the token\n",
		    KEY_LABEL_AUDIT);
	if (ik != NULL && hsm_key_destroy(hsm, ik) != 0)
		fprintf(stderr, "amtca: could not remove key '%s' from the token\n",
		    KEY_LABEL_INTER);
	if (rk != NULL && hsm_key_destroy(rhsm != NULL ? rhsm : hsm, rk) != 0)
		fprintf(stderr, "amtca: could not remove key '%s' from the token\n",
		    KEY_LABEL_ROOT);
	if (wrote_csr)
		unlink(f_pend);
	if (wrote_conf)
		unlink(f_conf);
	if (wrote_files) {
		unlink(f_root);
		unlink(f_inter);
		unlink(f_chain);
		if (f_db != NULL && (r = store_destroy(f_db)) != 0)
			fprintf(stderr, "amtca: %s\n", amtca_errmsg(r));
		if (f_state != NULL && (r = store_destroy(f_state)) != 0)
			fprintf(stderr, "amtca: %s\n", amtca_errmsg(r));
	}
out:
	store_close(st);
	hsm_key_free(rk);
	hsm_key_free(ik);
	hsm_key_free(ak);
	hsm_free(rhsm);
	hsm_free(hsm);
	free(abs_root_pin);
	/* A token we made for a CA that failed to come up is removed whole. */
	if (ret != EXIT_OK && softhsm && mod_out != NULL)
		amtca_rmtree(hsmdir);
	if (ret != EXIT_OK && made_dirs) {
		(void)rmdir(d_keys);
		(void)rmdir(d_state);
	}
	X509_free(root);
	X509_free(inter);
	for (i = 0; i < nd; i++)
		free(domains[i]);
	for (i = 0; i < nr; i++)
		free(ranges[i]);
	for (i = 0; i < nenv; i++)
		free(env[i]);
	free(abs_module);
	free(abs_pin);
	free(mod_out);
	free(uri_out);
	free(conf_out);
	free(hsmdir);
	free(pinpath);
	free(f_root);
	free(f_inter);
	free(f_chain);
	free(f_db);
	free(f_state);
	free(d_keys);
	free(d_state);
	free(f_conf);
	free(f_pend);
	X509_REQ_free(req);
	return ret;
}

/* ----------------------------------------------------------------- issue */

static const char issue_synopsis[] =
    "--fqdn FQDN --csr FILE [--ip ADDR]... [--days N] [--out FILE] [--json]";
static const char issue_options[] =
    "  --fqdn FQDN            the name to certify (never taken from the CSR)\n"
    "  --csr FILE             PEM or DER PKCS#10 request\n"
    "  --ip ADDR              an IP address SAN (repeatable)\n"
    "  --days N               validity in days (the CA's default otherwise)\n"
    "  --out FILE             write the PEM certificate here, not to stdout\n"
    "  --json                 one JSON document: serial, fqdn, validity, pem\n"
    "  --help                 this text\n";

/* Seconds since the epoch of an ASN1_TIME; 0 when it does not parse. */
static long long
asn1_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (long long)timegm(&tm);
}

static void
issue_json(const unsigned char *der, size_t derlen, const char *serial,
    const char *outpath, unsigned char *pem, size_t pemlen)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)derlen);
	char cn[AMTCA_FQDN_MAX + 1] = "";
	struct json j;

	if (x != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		    NID_commonName, cn, sizeof(cn));
	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_str(&j, "serial", serial);
	json_str(&j, "fqdn", cn);
	json_time(&j, "not_before", x ? asn1_epoch(X509_get0_notBefore(x)) : 0);
	json_time(&j, "not_after", x ? asn1_epoch(X509_get0_notAfter(x)) : 0);
	json_str(&j, "out", outpath);
	pem[pemlen - 1] = '\0';		/* the final newline */
	json_str(&j, "pem", (char *)pem);
	pem[pemlen - 1] = '\n';
	json_obj_end(&j);
	json_finish(&j);
	X509_free(x);
}

int
cmd_issue(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "fqdn", required_argument, NULL, 'f' },
		{ "csr", required_argument, NULL, 'c' },
		{ "ip", required_argument, NULL, 'i' },
		{ "days", required_argument, NULL, 'd' },
		{ "out", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fqdn = NULL, *csrpath = NULL, *outpath = NULL;
	const char *ips[AMTCA_IPS_MAX];
	size_t nips = 0, len;
	int days = 0, ch, r, json = 0, ret = EXIT_FAIL;
	unsigned char *buf = NULL, *pem = NULL;
	struct home *h = NULL;
	struct ca_request req;
	struct ca_csr *csr = NULL;
	unsigned char *der = NULL;
	size_t derlen = 0;
	char *user, *serial = NULL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': fqdn = optarg; break;
		case 'c': csrpath = optarg; break;
		case 'o':	/* "-" is standard output, as no --out is */
			outpath = strcmp(optarg, "-") == 0 ? NULL : optarg;
			break;
		case 'j': json = 1; break;
		case 'i':
			if (nips == AMTCA_IPS_MAX)
				return usage_error("issue", "too many --ip", issue_synopsis);
			ips[nips++] = optarg;
			break;
		case 'd':
			if (parse_days(optarg, &days) != 0)
				return usage_error("issue", "--days takes 1..825",
				    issue_synopsis);
			break;
		case 'h':
			return cli_help("issue", issue_synopsis, issue_options, opts);
		default:
			return usage_error("issue", "bad option", issue_synopsis);
		}
	}
	if (optind != argc || fqdn == NULL || csrpath == NULL)
		return usage_error("issue", "--fqdn and --csr are required",
		    issue_synopsis);
	if ((r = amtca_file_read(csrpath, AMTCA_CSR_MAX, &buf, &len)) != 0) {
		if (r == AMTCA_E_LIMIT)
			amtca_fail(AMTCA_E_CSR, "CSR file %s is larger than %d bytes",
			    csrpath, AMTCA_CSR_MAX);
		ret = cli_fail(r == AMTCA_E_LIMIT ? AMTCA_E_CSR : r);
		goto out;
	}
	if ((r = ca_csr_parse(buf, len, &csr)) != 0 ||
	    (r = home_open(homedir, HOME_SIGNER, &h)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.fqdn = fqdn;
	req.csr = csr;
	req.ips = ips;
	req.nips = nips;
	req.days = days;
	user = getenv("USER");
	req.requester = user != NULL ? user : "cli";
	if ((r = ca_issue_der(h->ca, &req, &der, &derlen, &serial)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	/*
	 * From here the certificate is issued and its record durable: a
	 * failure to hand it out must say so, with the serial and the way to
	 * get it again, or the user would retry and get a second certificate.
	 */
	if ((r = cli_der_to_pem(der, derlen, &pem, &len)) != 0)
		goto handout_failed;
	if (outpath != NULL)
		r = amtca_out_write(outpath, pem, len, 0644);
	else if (!json && (fwrite(pem, 1, len, stdout) != len ||
	    fflush(stdout) != 0))
		r = amtca_fail(AMTCA_E_IO, "cannot write to standard output");
	if (r != 0)
		goto handout_failed;
	if (json)
		issue_json(der, derlen, serial, outpath, pem, len);
	ret = EXIT_OK;
	goto out;
handout_failed:
	{
		char why[300];

		snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
		ret = cli_fail(amtca_fail(r, "certificate %s for %s is issued and "
		    "recorded, but writing %s failed: %s; get it with: amtca%s%s "
		    "show %s --pem", serial, fqdn, outpath ? outpath :
		    "to standard output", why, homedir ? " --home " : "",
		    homedir ? homedir : "", serial));
	}
out:
	ca_csr_free(csr);
	home_free(h);
	free(buf);
	free(der);
	free(pem);
	free(serial);
	return ret;
}

/* ----------------------------------------------------------------- chain */

/*
 * What an --out name says about the chain format, so that `--out x.p7b`
 * never silently gets PEM.  By extension (case-insensitive): .pem .crt
 * PEM; .p7b .p7c PKCS#7; an existing directory or a name ending in '/'
 * DER (one .cer per certificate); no extension (also "-" and device
 * paths) PEM, the default.  .der and .cer name a single file, which a
 * two-certificate DER chain cannot be: they need --format.  Any other
 * extension needs --format too.  Returns 0 and sets *f when the name
 * decides; 1 when it leaves the choice open (explicit --format only);
 * -1 (with *why) when the name rules out `f` or cannot be told.
 */
enum { EXT_NONE, EXT_PEM, EXT_P7B, EXT_DER, EXT_DIR, EXT_OTHER };

static int
chain_out_kind(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;
	struct stat sb;
	size_t n = strlen(path);

	if ((n > 0 && path[n - 1] == '/') ||
	    (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)))
		return EXT_DIR;
	base = base != NULL ? base + 1 : path;
	if ((dot = strrchr(base, '.')) == NULL || dot == base)
		return EXT_NONE;
	dot++;
	if (strcasecmp(dot, "pem") == 0 || strcasecmp(dot, "crt") == 0)
		return EXT_PEM;
	if (strcasecmp(dot, "p7b") == 0 || strcasecmp(dot, "p7c") == 0)
		return EXT_P7B;
	if (strcasecmp(dot, "der") == 0 || strcasecmp(dot, "cer") == 0)
		return EXT_DER;
	return EXT_OTHER;
}

static int
chain_format_for(const char *path, int explicit, enum ca_chain_format *f,
    const char **why)
{
	int k = chain_out_kind(path);

	*why = NULL;
	if (!explicit) {
		switch (k) {
		case EXT_NONE:
		case EXT_PEM: *f = CA_CHAIN_PEM; return 0;
		case EXT_P7B: *f = CA_CHAIN_P7B; return 0;
		case EXT_DIR: *f = CA_CHAIN_DER; return 0;
		case EXT_DER:
			*why = "a DER chain is one .cer per certificate in a "
			    "directory: give --out DIR, or --out FILE.p7b for one "
			    "PKCS#7 file, or --format";
			return -1;
		default:
			*why = "cannot tell the format from the --out extension: "
			    "give --format pem|der|p7b";
			return -1;
		}
	}
	if ((*f == CA_CHAIN_PEM && (k == EXT_P7B || k == EXT_DER || k == EXT_DIR)) ||
	    (*f == CA_CHAIN_P7B && (k == EXT_PEM || k == EXT_DIR)) ||
	    (*f == CA_CHAIN_DER && (k == EXT_PEM || k == EXT_P7B))) {
		*why = "--format contradicts the --out name (.pem/.crt is PEM, "
		    ".p7b/.p7c PKCS#7, a directory DER)";
		return -1;
	}
	return 1;
}

int
cmd_chain(const char *homedir, int argc, char **argv)
{
	static const char syn[] = "[--format pem|der|p7b] [--out FILE|DIR]";
	static const char options[] =
	    "  --format pem|der|p7b   PEM (bottom to top), DER (a directory of\n"
	    "                         .cer files) or PKCS#7 (one DER file);\n"
	    "                         default: from the --out name, else PEM\n"
	    "  --out FILE|DIR         write there, not to stdout\n"
	    "  --help                 this text\n";
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *outpath = NULL, *why;
	enum ca_chain_format f = CA_CHAIN_PEM;
	struct home *h = NULL;
	X509 *chain[AMTCA_RETIRED_MAX + 2];
	size_t nchain = 0;
	int ch, r, ret = EXIT_FAIL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': fmt = optarg; break;
		case 'o': outpath = optarg; break;
		case 'h':
			return cli_help("chain", syn, options, opts);
		default:
			return usage_error("chain", "bad option", syn);
		}
	}
	if (optind != argc)
		return usage_error("chain", "unexpected argument", syn);
	if (fmt != NULL && ca_chain_format_parse(fmt, &f) != 0)
		return usage_error("chain", "--format is pem, der or p7b", syn);
	if (outpath != NULL &&
	    chain_format_for(outpath, fmt != NULL, &f, &why) < 0)
		return usage_error("chain", why, syn);
	if (f != CA_CHAIN_PEM && outpath == NULL)
		return usage_error("chain", "der and p7b need --out", syn);
	if ((r = home_open(homedir, 0, &h)) != 0)
		return cli_fail(r);
	/* A node of a shared store: in step with it first (a rotation
	 * elsewhere), which opening its store does. */
	if (h->conf.store != NULL) {
		home_free(h);
		if ((r = home_open(homedir, HOME_STATE, &h)) != 0)
			return cli_fail(r);
	}
	/* Current, retired in their overlap (newest first), root. */
	chain[nchain++] = h->inter;
	for (size_t i = 0; i < h->nretired; i++)
		chain[nchain++] = h->retired[i];
	chain[nchain++] = h->root;
	if ((r = ca_chain_export(chain, nchain, f, outpath)) != 0)
		ret = cli_fail(r);
	else
		ret = EXIT_OK;
	home_free(h);
	return ret;
}

/* ------------------------------------------------------------ list, show */

static const char *
cert_status(const struct store_cert *c, time_t now)
{
	if (strcmp(c->status, "revoked") == 0)
		return "revoked";
	if (c->not_after < now)
		return "expired";
	return "valid";
}

int
cmd_list(const char *homedir, int argc, char **argv)
{
	static const char syn[] = "[--json]";
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct home *h = NULL;
	struct store_cert *c = NULL;
	struct json j;
	size_t n = 0, i;
	int ch, r, json = 0;
	time_t now = time(NULL);
	char na[32];

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = 1; break;
		case 'h':
			return cli_help("list", syn, "  --json                 "
			    "one JSON document {\"certificates\":[...]}\n"
			    "  --help                 this text\n", opts);
		default:
			return usage_error("list", "bad option", syn);
		}
	}
	if (optind != argc)
		return usage_error("list", "unexpected argument", syn);
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0 ||
	    (r = store_cert_list(h->store, &c, &n)) != 0) {
		home_free(h);
		return cli_fail(r);
	}
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_arr_begin(&j, "certificates");
		for (i = 0; i < n; i++) {
			json_obj_begin(&j, NULL);
			json_str(&j, "serial", c[i].serial);
			json_str(&j, "fqdn", c[i].fqdn);
			json_time(&j, "not_before", c[i].not_before);
			json_time(&j, "not_after", c[i].not_after);
			json_str(&j, "status", cert_status(&c[i], now));
			json_str(&j, "reason", strcmp(c[i].status, "revoked") == 0 ?
			    cred_reason_name(c[i].revoke_reason) : NULL);
			json_time(&j, "issued_at", c[i].issued_at);
			json_str(&j, "requester", c[i].requester);
			json_str(&j, "device", c[i].device);
			json_str(&j, "issuer", c[i].issuer);
			json_obj_end(&j);
		}
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%-32s  %-8s  %-20s  %s\n", "SERIAL", "STATUS", "NOT AFTER",
		    "FQDN");
		for (i = 0; i < n; i++) {
			cli_fmt_time(c[i].not_after, na, sizeof(na));
			printf("%-32s  %-8s  %-20s  %s\n", c[i].serial,
			    cert_status(&c[i], now), na, c[i].fqdn);
		}
	}
	store_certs_free(c, n);
	home_free(h);
	return EXIT_OK;
}

/* Serial as typed by a user: hex, optional "0x"/colons, any case. */
static int
normalize_serial(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	if (strncmp(in, "0x", 2) == 0 || strncmp(in, "0X", 2) == 0)
		in += 2;
	for (; *in != '\0'; in++) {
		if (*in == ':')
			continue;
		if (!((*in >= '0' && *in <= '9') || (*in >= 'a' && *in <= 'f') ||
		    (*in >= 'A' && *in <= 'F')) || n + 1 >= outlen)
			return -1;
		out[n++] = (char)(*in >= 'a' ? *in - 32 : *in);
	}
	out[n] = '\0';
	return n == 0 ? -1 : 0;
}

int
cmd_show(const char *homedir, int argc, char **argv)
{
	static const char syn[] = "SERIAL [--json | --pem]";
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pem", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct home *h = NULL;
	struct store_cert *c = NULL;
	struct json j;
	char serial[64], nb[32], na[32], ia[32];
	int ch, r, json = 0, pemonly = 0, ret = EXIT_FAIL;
	X509 *x = NULL;
	const unsigned char *p;
	unsigned char *pem = NULL;
	size_t plen = 0;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = 1; break;
		case 'p': pemonly = 1; break;
		case 'h':
			return cli_help("show", syn, "  --json                 "
			    "one JSON document, the PEM included\n"
			    "  --pem                  only the certificate, PEM\n"
			    "  --help                 this text\n", opts);
		default:
			return usage_error("show", "bad option", syn);
		}
	}
	if (optind + 1 != argc)
		return usage_error("show", "one SERIAL is required", syn);
	if (normalize_serial(argv[optind], serial, sizeof(serial)) != 0)
		return usage_error("show", "SERIAL is hex as 'openssl x509 -serial' "
		    "prints it", syn);
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0 ||
	    (r = store_cert_get(h->store, serial, &c)) != 0) {
		if (r == AMTCA_E_NOT_FOUND)
			amtca_fail(r, "no certificate with serial %s", serial);
		ret = cli_fail(r);
		goto out;
	}
	p = c->der;
	if ((x = d2i_X509(NULL, &p, (long)c->der_len)) == NULL ||
	    pem_of(x, &pem, &plen) != 0) {
		ret = cli_fail(amtca_fail_ssl(AMTCA_E_STORE,
		    "stored certificate %s does not parse", serial));
		goto out;
	}
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_str(&j, "serial", c->serial);
		json_str(&j, "fqdn", c->fqdn);
		json_time(&j, "not_before", c->not_before);
		json_time(&j, "not_after", c->not_after);
		json_str(&j, "status", cert_status(c, time(NULL)));
		json_str(&j, "reason", strcmp(c->status, "revoked") == 0 ?
		    cred_reason_name(c->revoke_reason) : NULL);
		json_time(&j, "issued_at", c->issued_at);
		json_str(&j, "requester", c->requester);
		json_str(&j, "device", c->device);
		json_str(&j, "issuer", c->issuer);
		if (strcmp(c->status, "revoked") == 0) {
			json_time(&j, "revoked_at", c->revoked_at);
			json_int(&j, "revoke_reason", c->revoke_reason);
		} else
			json_str(&j, "revoked_at", NULL);
		pem[plen - 1] = '\0';
		json_str(&j, "pem", (char *)pem);
		json_obj_end(&j);
		json_finish(&j);
	} else if (pemonly) {
		fwrite(pem, 1, plen, stdout);
	} else {
		cli_fmt_time(c->not_before, nb, sizeof(nb));
		cli_fmt_time(c->not_after, na, sizeof(na));
		cli_fmt_time(c->issued_at, ia, sizeof(ia));
		printf("serial:     %s\nfqdn:       %s\nstatus:     %s\n"
		    "not before: %s\nnot after:  %s\nissued at:  %s\n"
		    "requester:  %s\ndevice:     %s\n", c->serial, c->fqdn,
		    cert_status(c, time(NULL)), nb, na, ia,
		    c->requester ? c->requester : "-", c->device ? c->device : "-");
		if (strcmp(c->status, "revoked") == 0) {
			cli_fmt_time(c->revoked_at, ia, sizeof(ia));
			printf("revoked:    %s (%s)\n", ia,
			    cred_reason_name(c->revoke_reason));
		}
		fwrite(pem, 1, plen, stdout);
	}
	ret = EXIT_OK;
out:
	X509_free(x);
	free(pem);
	store_cert_free(c);
	home_free(h);
	return ret;
}

/* ------------------------------------------------------------ revoke, crl */

int
cmd_revoke(const char *homedir, int argc, char **argv)
{
	static const char syn[] = "(SERIAL | --fqdn FQDN) [--reason unspecified|"
	    "keyCompromise|affiliationChanged|superseded|cessationOfOperation|"
	    "...] [--json]";
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "fqdn", required_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct home *h = NULL;
	struct store_cert *c = NULL, **got = NULL;
	struct json j;
	const char *fqdn = NULL;
	char serial[64], when[32];
	size_t n = 0, i, ngot = 0;
	time_t now = time(NULL);
	int *was = NULL;
	int ch, r = 0, json = 0, reason = 0, ret = EXIT_FAIL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if ((reason = cred_reason_parse(optarg)) < 0)
				return usage_error("revoke", "unknown --reason", syn);
			break;
		case 'F': fqdn = optarg; break;
		case 'j': json = 1; break;
		case 'h':
			return cli_help("revoke", syn,
			    "  --fqdn FQDN            every valid certificate of FQDN\n"
			    "  --reason REASON        CRLReason name (unspecified)\n"
			    "  --json                 {\"revoked\":[...]} as stored\n"
			    "  --help                 this text\n", opts);
		default:
			return usage_error("revoke", "bad option", syn);
		}
	}
	if (fqdn != NULL ? optind != argc : optind + 1 != argc)
		return usage_error("revoke", "one SERIAL or --fqdn FQDN is "
		    "required", syn);
	if (fqdn == NULL &&
	    normalize_serial(argv[optind], serial, sizeof(serial)) != 0)
		return usage_error("revoke", "SERIAL must be hex", syn);
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0)
		goto fail;
	if (fqdn != NULL) {
		if ((r = store_cert_list_fqdn(h->store, fqdn, &c, &n)) != 0)
			goto fail;
		if (n == 0) {
			r = amtca_fail(AMTCA_E_NOT_FOUND, "no certificate was "
			    "issued for %s", fqdn);
			goto fail;
		}
	}
	if ((got = calloc(n ? n : 1, sizeof(*got))) == NULL ||
	    (was = calloc(n ? n : 1, sizeof(*was))) == NULL) {
		r = AMTCA_E_NOMEM;
		goto fail;
	}
	if (fqdn == NULL) {
		if ((r = cred_revoke(h->store, h->state, serial, reason, now, &got[0],
		    &was[0])) != 0)
			goto fail;
		ngot = 1;
	} else
		for (i = 0; i < n; i++) {
			/* Every valid one (not revoked, not expired). */
			if (strcmp(cert_status(&c[i], now), "valid") != 0)
				continue;
			if ((r = cred_revoke(h->store, h->state, c[i].serial, reason, now,
			    &got[ngot], &was[ngot])) != 0)
				goto fail;
			ngot++;
		}
	/* Print what is stored, not what was asked for. */
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_arr_begin(&j, "revoked");
	}
	for (i = 0; i < ngot; i++) {
		cli_fmt_time(got[i]->revoked_at, when, sizeof(when));
		if (json) {
			json_obj_begin(&j, NULL);
			json_str(&j, "serial", got[i]->serial);
			json_str(&j, "fqdn", got[i]->fqdn);
			json_str(&j, "reason",
			    cred_reason_name(got[i]->revoke_reason));
			json_time(&j, "revoked_at", got[i]->revoked_at);
			json_bool(&j, "already_revoked", was[i]);
			json_obj_end(&j);
		} else
			printf("revoked %s (%s, %s, %s)\n", got[i]->serial,
			    got[i]->fqdn, cred_reason_name(got[i]->revoke_reason),
			    when);
		if (was[i] && got[i]->revoke_reason != reason)
			fprintf(stderr, "amtca: note: %s was already revoked (%s) "
			    "on %s; the first reason stands (only a change to "
			    "keyCompromise is recorded)\n", got[i]->serial,
			    cred_reason_name(got[i]->revoke_reason), when);
	}
	if (json) {
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
	} else if (fqdn != NULL && ngot == 0)
		printf("no valid certificate of %s to revoke (%zu issued, all "
		    "revoked or expired)\n", fqdn, n);
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	for (i = 0; got != NULL && i < ngot; i++)
		store_cert_free(got[i]);
	free(got);
	free(was);
	store_certs_free(c, n);
	home_free(h);
	return ret;
}

/* The --json document of `crl`: what the CRL says, and the PEM itself. */
static int
crl_json(unsigned char *crl, size_t len, int pem, const char *outpath)
{
	const unsigned char *p = crl;
	X509_CRL *x = NULL;
	ASN1_INTEGER *num = NULL;
	BIGNUM *bn = NULL;
	char *dec = NULL;
	BIO *b = NULL;
	struct json j;
	int ret = AMTCA_E_INTERNAL;

	if (pem) {
		if ((b = BIO_new_mem_buf(crl, (int)len)) != NULL)
			x = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	} else
		x = d2i_X509_CRL(NULL, &p, (long)len);
	if (x == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "the new CRL does not parse");
		goto out;
	}
	if ((num = X509_CRL_get_ext_d2i(x, NID_crl_number, NULL, NULL)) != NULL &&
	    (bn = ASN1_INTEGER_to_BN(num, NULL)) != NULL)
		dec = BN_bn2dec(bn);
	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_str(&j, "format", pem ? "pem" : "der");
	json_str(&j, "out", outpath);
	json_str(&j, "crl_number", dec);
	json_time(&j, "this_update", asn1_epoch(X509_CRL_get0_lastUpdate(x)));
	json_time(&j, "next_update", asn1_epoch(X509_CRL_get0_nextUpdate(x)));
	json_int(&j, "revoked", sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)) > 0 ?
	    sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)) : 0);
	if (pem && len > 0) {
		crl[len - 1] = '\0';	/* the final newline */
		json_str(&j, "pem", (char *)crl);
		crl[len - 1] = '\n';
	} else
		json_str(&j, "pem", NULL);
	json_obj_end(&j);
	json_finish(&j);
	ret = 0;
out:
	OPENSSL_free(dec);
	BN_free(bn);
	ASN1_INTEGER_free(num);
	X509_CRL_free(x);
	BIO_free(b);
	return ret;
}

/* 1 PEM, 0 DER, -1 the name says nothing (by extension, any case). */
static int
crl_format_of(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot == NULL || strchr(dot, '/') != NULL)
		return -1;
	if (strcasecmp(dot, ".pem") == 0)
		return 1;
	if (strcasecmp(dot, ".crl") == 0 || strcasecmp(dot, ".der") == 0)
		return 0;
	return -1;
}

/*
 * The operator made a CRL: "crl.create", subject its CRL number, detail
 * how many serials it lists and for how long.  (The service's CRLs, built
 * per request from the records, change nothing and are not entries.)
 */
static int
crl_audit(struct store *st, const unsigned char *crl, size_t len, int pem,
    int days)
{
	const unsigned char *p = crl;
	X509_CRL *x = NULL;
	ASN1_INTEGER *num = NULL;
	BIO *b = NULL;
	char *dec = NULL, detail[96];
	BIGNUM *bn = NULL;
	int nrev, ret = AMTCA_E_INTERNAL;

	if (pem) {
		if ((b = BIO_new_mem_buf(crl, (int)len)) != NULL)
			x = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	} else
		x = d2i_X509_CRL(NULL, &p, (long)len);
	if (x == NULL ||
	    (num = X509_CRL_get_ext_d2i(x, NID_crl_number, NULL, NULL)) == NULL ||
	    (bn = ASN1_INTEGER_to_BN(num, NULL)) == NULL ||
	    (dec = BN_bn2dec(bn)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot read back the CRL "
		    "just made");
		goto out;
	}
	nrev = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x));
	snprintf(detail, sizeof(detail), "revoked=%d days=%d", nrev < 0 ? 0 :
	    nrev, days);
	ret = store_audit_append(st, NULL, "crl.create", dec, detail);
out:
	OPENSSL_free(dec);
	BN_free(bn);
	ASN1_INTEGER_free(num);
	X509_CRL_free(x);
	BIO_free(b);
	return ret;
}

int
cmd_crl(const char *homedir, int argc, char **argv)
{
	static const char syn[] =
	    "[--format pem|der] [--out FILE] [--days N] [--json] [--root | "
	    "--issuer KEYID]";
	static const char options[] =
	    "  --format pem|der       encoding; default from the --out name\n"
	    "                         (.crl/.der DER, else PEM); der needs --out\n"
	    "  --out FILE             write there, not to stdout\n"
	    "  --days N               nextUpdate in days (7)\n"
	    "  --json                 one JSON document: numbers, dates, pem\n"
	    "  --root                 the root's CRL over intermediates (needs the\n"
	    "                         root key: the offline root token if any)\n"
	    "  --issuer KEYID         the CRL of that intermediate (a retired one\n"
	    "                         still in its overlap); default: the current\n"
	    "  --help                 this text\n";
	static const struct option opts[] = {
		{ "root", no_argument, NULL, 'R' },
		{ "issuer", required_argument, NULL, 'I' },
		{ "format", required_argument, NULL, 'f' },
		{ "out", required_argument, NULL, 'o' },
		{ "days", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *outpath = NULL;
	struct home *h = NULL;
	unsigned char *crl = NULL;
	size_t len = 0;
	int ch, r, pem = 1, days = 7, json = 0, fmt_given = 0, ret = EXIT_FAIL;
	int rootcrl = 0;
	const char *issuer = NULL;
	struct hsm *rhsm = NULL;
	struct hsm_key *rk = NULL;
	struct ca_signer rs;
	struct ca *ica = NULL;
	struct store_cacert *cv = NULL;
	size_t ncv = 0, nrev = 0, i;
	X509 *rev[64];
	char rdetail[64];

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (strcmp(optarg, "pem") == 0)
				pem = 1;
			else if (strcmp(optarg, "der") == 0)
				pem = 0;
			else
				return usage_error("crl", "--format is pem or der", syn);
			fmt_given = 1;
			break;
		case 'o': outpath = optarg; break;
		case 'j': json = 1; break;
		case 'R': rootcrl = 1; break;
		case 'I': issuer = optarg; break;
		case 'd':
			if (parse_days(optarg, &days) != 0)
				return usage_error("crl", "--days takes 1..825", syn);
			break;
		case 'h':
			return cli_help("crl", syn, options, opts);
		default:
			return usage_error("crl", "bad option", syn);
		}
	}
	if (optind != argc)
		return usage_error("crl", "unexpected argument", syn);
	if (rootcrl && issuer != NULL)
		return usage_error("crl", "--root and --issuer exclude each other",
		    syn);
	/* The --out name says the encoding, as for chain: never a PEM file
	 * named .crl/.der that a Windows CDP client cannot read. */
	if (outpath != NULL && (r = crl_format_of(outpath)) >= 0) {
		if (fmt_given && r != pem)
			return usage_error("crl", "--format contradicts the --out "
			    "name (.pem is PEM; .crl and .der are DER)", syn);
		pem = r;
	}
	/* With --json, stdout carries the JSON document (the CRL is in it). */
	if (json && outpath != NULL && strcmp(outpath, "-") == 0)
		outpath = NULL;
	if (!pem && outpath == NULL)
		return usage_error("crl", "--format der needs --out", syn);
	if (rootcrl) {
		/* The revoked intermediates, from the records. */
		if ((r = home_open(homedir, HOME_SIGNER, &h)) != 0 ||
		    (r = home_root_key(h, "crl --root", &rhsm, &rk)) != 0 ||
		    (r = store_cacert_list(h->store, &cv, &ncv)) != 0) {
			ret = cli_fail(r);
			goto out;
		}
		for (i = 0; i < ncv; i++) {
			const unsigned char *dp = cv[i].der;

			if (strcmp(cv[i].state, "revoked") != 0)
				continue;
			if (nrev == sizeof(rev) / sizeof(rev[0]) ||
			    (rev[nrev] = d2i_X509(NULL, &dp,
			    (long)cv[i].der_len)) == NULL) {
				r = amtca_fail(AMTCA_E_CERT, "the record of "
				    "intermediate %s does not parse", cv[i].keyid);
				ret = cli_fail(r);
				goto out;
			}
			nrev++;
		}
		snprintf(rdetail, sizeof(rdetail), "revoked=%zu", nrev);
		hsm_key_signer(rk, &rs);
		if ((r = ca_root_crl_create(&rs, h->root, rev, nrev, days, pem,
		    &crl, &len)) != 0 ||
		    (r = store_audit_append(h->store, NULL, "ca.crl-root", "",
		    rdetail)) != 0) {
			ret = cli_fail(r);
			goto out;
		}
	} else if ((r = home_open(homedir, HOME_SIGNER, &h)) != 0 ||
	    (r = home_ca_by_keyid(h, issuer, &ica, NULL)) != 0 ||
	    (r = ca_crl_create(ica, days, pem, &crl, &len)) != 0 ||
	    (r = crl_audit(h->store, crl, len, pem, days)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (outpath != NULL)
		r = amtca_out_write(outpath, crl, len, 0644);
	else if (!json && fwrite(crl, 1, len, stdout) != len)
		r = amtca_fail(AMTCA_E_IO, "cannot write to stdout");
	if (r == 0 && json)
		r = crl_json(crl, len, pem, outpath);
	ret = r == 0 ? EXIT_OK : cli_fail(r);
out:
	for (i = 0; i < nrev; i++)
		X509_free(rev[i]);
	store_cacerts_free(cv, ncv);
	free(crl);
	hsm_key_free(rk);
	hsm_free(rhsm);
	home_free(h);
	return ret;
}

/* ------------------------------------------- ca import-intermediate */

static const char import_synopsis[] =
    "import-intermediate --cert FILE --root FILE [--any-domain]";
static const char import_options[] =
    "  --cert FILE            the intermediate certificate the external root\n"
    "                         issued for 'amtca init --external-root's request\n"
    "                         (or 'amtca ca rotate --csr-out's: a rotation)\n"
    "  --root FILE            the external root certificate (the trust anchor)\n"
    "  --any-domain           accept an intermediate without the name\n"
    "                         constraints asked for (warns)\n"
    "  --help                 this text\n";

static int
ca_import(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "root", required_argument, NULL, 'r' },
		{ "any-domain", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *certf = NULL, *rootf = NULL;
	int any = 0, ch, r, ret = EXIT_FAIL, wrote = 0;
	struct home *h = NULL;
	struct hsm *hsm = NULL;
	struct hsm_key *ik = NULL, *ak = NULL;
	struct hsm_open_opts ho;
	struct ca_signer as;
	struct audit_sealer sl;
	X509 *cert = NULL, *root = NULL, *chain[2];
	char *f_root = NULL, *f_inter = NULL, *f_chain = NULL, *f_pend = NULL;
	char rfp[65], ifp[65], cn[256], detail[200];

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': certf = optarg; break;
		case 'r': rootf = optarg; break;
		case 'A': any = 1; break;
		case 'h':
			return cli_help("ca", import_synopsis, import_options, opts);
		default:
			return usage_error("ca", "bad option", import_synopsis);
		}
	}
	if (optind != argc || certf == NULL || rootf == NULL)
		return usage_error("ca", "import-intermediate takes --cert FILE "
		    "and --root FILE", import_synopsis);
	/* A rotation under the external root (ca rotate --csr-out). */
	{
		char *next = join(home_default_dir(homedir), HOME_NEXT_CSR);
		char *pend = join(home_default_dir(homedir), HOME_PENDING_CSR);
		struct stat nsb;
		int rot;

		if (next == NULL || pend == NULL) {
			free(next);
			free(pend);
			return cli_fail(AMTCA_E_NOMEM);
		}
		rot = lstat(next, &nsb) == 0 && lstat(pend, &nsb) != 0;
		free(next);
		free(pend);
		if (rot) {
			if ((r = ca_cert_load(certf, &cert)) != 0 ||
			    (r = ca_cert_load(rootf, &root)) != 0 ||
			    (r = cmd_ca_rotate_import(homedir, cert, root,
			    any)) != 0)
				ret = cli_fail(r);
			else
				ret = EXIT_OK;
			X509_free(cert);
			X509_free(root);
			return ret;
		}
	}
	if ((r = home_open(homedir, HOME_PENDING | HOME_STORE, &h)) != 0 ||
	    (r = ca_cert_load(certf, &cert)) != 0 ||
	    (r = ca_cert_load(rootf, &root)) != 0 ||
	    (r = home_token_prepare(&h->conf)) != 0)
		goto fail;
	memset(&ho, 0, sizeof(ho));
	ho.module = h->conf.module;
	ho.token_uri = h->conf.token_uri;
	ho.pin_file = h->conf.pin_file;
	ho.softhsm_conf = h->conf.softhsm_conf;
	if ((r = hsm_open(&ho, &hsm)) != 0 ||
	    (r = hsm_key_find(hsm, KEY_LABEL_INTER, &ik)) != 0 ||
	    (r = hsm_key_find(hsm, KEY_LABEL_AUDIT, &ak)) != 0)
		goto fail;
	if ((r = ca_intermediate_check(cert, root, hsm_key_public(ik),
	    &h->policy, any || h->conf.any_domain)) != 0)
		goto fail;
	if (any && !h->conf.any_domain)
		fprintf(stderr, "amtca: warning: --any-domain: the intermediate's "
		    "name constraints were not checked against --domain and "
		    "--ip-range\n");
	if ((f_root = join(h->dir, HOME_ROOT_PEM)) == NULL ||
	    (f_inter = join(h->dir, HOME_INTER_PEM)) == NULL ||
	    (f_chain = join(h->dir, HOME_CHAIN_PEM)) == NULL ||
	    (f_pend = join(h->dir, HOME_PENDING_CSR)) == NULL) {
		r = AMTCA_E_NOMEM;
		goto fail;
	}
	chain[0] = cert;
	chain[1] = root;
	wrote = 1;
	if ((r = write_pem(f_root, &root, 1, 1)) != 0 ||
	    (r = write_pem(f_inter, &cert, 1, 1)) != 0 ||
	    (r = write_pem(f_chain, chain, 2, 1)) != 0)
		goto fail;
	cert_fp(root, rfp);
	cert_fp(cert, ifp);
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
	    NID_commonName, cn, sizeof(cn)) < 0)
		cn[0] = '\0';
	snprintf(detail, sizeof(detail), "root=%s intermediate=%s%s", rfp, ifp,
	    any ? " any-domain" : "");
	hsm_key_signer(ak, &as);
	home_audit_sealer(hsm, &as, &sl);
	if ((r = store_audit_append(h->store, NULL, "ca.import", cn,
	    detail)) != 0 || (r = audit_seal(h->store, NULL, &sl, NULL)) != 0)
		goto fail;
	/* Nodes of a shared store take the certificates from it. */
	if ((r = home_shared_publish(h)) != 0)
		goto fail;
	/* Last: the home stops being "pending" only when all is in place. */
	if (unlink(f_pend) != 0) {
		r = amtca_fail(AMTCA_E_IO, "cannot remove %s: %s", f_pend,
		    strerror(errno));
		goto fail;
	}
	wrote = 0;
	printf("intermediate imported into %s\n  root:         %s\n"
	    "  intermediate: %s\n  chain (PEM, bottom to top, for consoles): %s\n",
	    h->dir, f_root, f_inter, f_chain);
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
	if (wrote) {
		unlink(f_root);
		unlink(f_inter);
		unlink(f_chain);
	}
out:
	hsm_key_free(ik);
	hsm_key_free(ak);
	hsm_free(hsm);
	home_free(h);
	X509_free(cert);
	X509_free(root);
	free(f_root);
	free(f_inter);
	free(f_chain);
	free(f_pend);
	return ret;
}

static const char ca_synopsis[] =
    "import-intermediate --cert FILE --root FILE [--any-domain]\n"
    "       amtca ca rotate [--key-type rsa2048|rsa3072|rsa4096|p256|p384] [--days N]\n"
    "                       [--csr-out FILE]\n"
    "       amtca ca revoke-intermediate KEYID [--reason REASON]\n"
    "       amtca ca prune [--dry-run]\n"
    "       amtca ca list [--json]";

int
cmd_ca(const char *homedir, int argc, char **argv)
{
	int r;

	if (argc >= 2 && strcmp(argv[1], "import-intermediate") == 0) {
		optind = 1;
		return ca_import(homedir, argc - 1, argv + 1);
	}
	if (argc >= 2 && (r = cmd_ca_rotation(homedir, argc, argv)) != -1)
		return r;
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		printf("usage: amtca ca %s\n%s", ca_synopsis, import_options);
		return EXIT_OK;
	}
	return usage_error("ca", "unknown or missing subcommand", ca_synopsis);
}
