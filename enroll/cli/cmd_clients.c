/*
 * `amtca est-client add|remove|list` and `amtca admin add|revoke|list`: the
 * operator's commands for the requesters the service authenticates (see
 * docs/est.md).  They run in-process on the home, as the operator, like
 * `issue` and `revoke`: the records are the CA's (store_client_*), the
 * certificates are issued with the EST and ADMIN profiles.
 *
 * A certificate is issued before its record is written: if the record then
 * cannot be written, the certificate is revoked at once, so that no
 * certificate of either profile exists without its client.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "ca/ca.h"
#include "ca/store.h"
#include "common/json.h"
#include "common/util.h"
#include "enroll/cli/cli.h"
#include "enroll/enroll.h"
#include "signer/clients.h"

#define CRL_UNSPECIFIED 0
#define CRL_CESSATION 5

static const char est_synopsis[] =
    "add NAME --allow NAME-OR-SUFFIX... (--password-file FILE | --csr FILE "
    "--out FILE) [--json]\n"
    "       amtca est-client remove NAME [--json]\n"
    "       amtca est-client list [--json]";
static const char est_options[] =
    "  --allow NAME-OR-SUFFIX names the client may obtain over EST; a suffix\n"
    "                         covers every name below it (repeatable)\n"
    "  --password-file FILE   HTTP Basic: the password, hashed (Argon2id)\n"
    "  --csr FILE             client certificate: issue the client's own\n"
    "                         EST certificate for NAME (an allowed FQDN)\n"
    "  --out FILE             where that certificate goes (PEM)\n"
    "  --json                 one JSON document\n"
    "  --help                 this text\n";
static const char admin_synopsis[] =
    "add NAME --csr FILE --out FILE [--json]\n"
    "       amtca admin revoke NAME [--reason REASON] [--json]\n"
    "       amtca admin list [--json]";
static const char admin_options[] =
    "  --csr FILE             the admin's key (PKCS#10, PEM or DER)\n"
    "  --out FILE             where the admin certificate goes (PEM)\n"
    "  --reason REASON        CRLReason for revoke (unspecified)\n"
    "  --json                 one JSON document\n"
    "  --help                 this text\n";

/* Who the operator is, for the certificate records: user@host. */
static void
operator_name(char *buf, size_t len)
{
	const char *u = getenv("USER");
	char host[64];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, len, "%s@%s", u != NULL && *u != '\0' ? u : "cli", host);
}

/* Is `fqdn` an AMT device's name (in the inventory, or bound)? */
static int
is_device_name(struct home *h, const char *fqdn, int *yes)
{
	struct store_device *d = NULL;
	struct store_cert *c = NULL;
	size_t n = 0, i;
	int r;

	*yes = 0;
	if ((r = store_device_get(h->state, fqdn, &d)) == 0) {
		store_device_free(d);
		*yes = 1;
		return 0;
	}
	if (r != AMTCA_E_NOT_FOUND)
		return r;
	if ((r = store_cert_list_fqdn(h->store, fqdn, &c, &n)) != 0)
		return r;
	for (i = 0; i < n; i++)
		if (c[i].device != NULL && c[i].device[0] != '\0')
			*yes = 1;
	store_certs_free(c, n);
	return 0;
}

/*
 * Issue `profile` for `name` from the CSR at `csrpath` and write the PEM
 * to `outpath`; on success *serial (malloc'd).
 */
static int
issue_client_cert(struct home *h, enum ca_profile profile, const char *name,
    const char *csrpath, const char *outpath, char **serial)
{
	unsigned char *buf = NULL, *der = NULL, *pem = NULL;
	size_t len = 0, derlen = 0, pemlen = 0;
	struct ca_request req;
	struct ca_csr *csr = NULL;
	char who[160];
	int r, ret = AMTCA_E_INTERNAL;

	*serial = NULL;
	if ((r = amtca_file_read(csrpath, AMTCA_CSR_MAX, &buf, &len)) != 0) {
		ret = r == AMTCA_E_LIMIT ? amtca_fail(AMTCA_E_CSR, "CSR file %s "
		    "is larger than %d bytes", csrpath, AMTCA_CSR_MAX) : r;
		goto out;
	}
	if ((r = ca_csr_parse(buf, len, &csr)) != 0) {
		ret = r;
		goto out;
	}
	operator_name(who, sizeof(who));
	memset(&req, 0, sizeof(req));
	req.profile = profile;
	req.fqdn = name;
	req.csr = csr;
	req.requester = who;
	if ((r = ca_issue_der(h->ca, &req, &der, &derlen, serial)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = cli_der_to_pem(der, derlen, &pem, &pemlen)) != 0 ||
	    (r = amtca_out_write(outpath, pem, pemlen, 0644)) != 0) {
		char why[240];

		snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
		ret = amtca_fail(r, "certificate %s is issued but writing %s "
		    "failed (%s): it is revoked again; run the command once "
		    "more", *serial, outpath, why);
		if (cred_revoke(h->store, h->state, *serial, CRL_CESSATION, time(NULL),
		    NULL, NULL) != 0)
			fprintf(stderr, "amtca: could not revoke %s: revoke it "
			    "with 'amtca revoke %s'\n", *serial, *serial);
		free(*serial);
		*serial = NULL;
		goto out;
	}
	ret = 0;
out:
	ca_csr_free(csr);
	free(buf);
	free(der);
	free(pem);
	return ret;
}

/* Record `c`; if that fails, revoke the certificate just issued for it. */
static int
record_client(struct home *h, const struct store_client *c)
{
	int r;

	if ((r = store_client_add(h->store, c)) == 0 || c->serial == NULL)
		return r;
	{
		char why[240];

		snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
		if (cred_revoke(h->store, h->state, c->serial, CRL_CESSATION, time(NULL),
		    NULL, NULL) != 0)
			fprintf(stderr, "amtca: could not revoke %s: revoke it "
			    "with 'amtca revoke %s'\n", c->serial, c->serial);
		return amtca_fail(r, "%s; certificate %s was revoked again",
		    why, c->serial);
	}
}

static int
client_exists(struct home *h, const char *name)
{
	struct store_client *c = NULL;
	int r;

	if ((r = store_client_get(h->store, name, &c)) == 0) {
		r = amtca_fail(AMTCA_E_EXISTS, "a client named %s is already "
		    "recorded%s; names are never reused", name,
		    c->removed_at != 0 ? " (removed)" : "");
		store_client_free(c);
		return r;
	}
	if (r == AMTCA_E_NOT_FOUND) {
		amtca_err_clear();
		return 0;
	}
	return r;
}

static void
added_json(const char *name, const char *role, const char *allow,
    const char *serial, const char *out)
{
	struct json j;

	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_str(&j, "name", name);
	json_str(&j, "role", role);
	if (allow != NULL)
		json_str(&j, "allow", allow);
	json_str(&j, "serial", serial);
	json_str(&j, "out", out);
	json_obj_end(&j);
	json_finish(&j);
}

static int
est_add(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "allow", required_argument, NULL, 'a' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "csr", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *allow_in[AMTCA_CLIENT_ALLOW_MAX];
	const char *pwfile = NULL, *csrpath = NULL, *outpath = NULL, *name;
	char entry[AMTCA_FQDN_MAX + 1];
	char *allow = NULL, *pw = NULL, *phc = NULL, *serial = NULL;
	struct store_client rec;
	struct home *h = NULL;
	size_t nallow = 0, i, alen = 0;
	int ch, r, json = 0, covered = 0, dev = 0, ret = EXIT_FAIL;

	optind = 1;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			if (nallow == AMTCA_CLIENT_ALLOW_MAX)
				return cli_usage("est-client", "too many --allow",
				    est_synopsis);
			allow_in[nallow++] = optarg;
			break;
		case 'p': pwfile = optarg; break;
		case 'c': csrpath = optarg; break;
		case 'o': outpath = optarg; break;
		case 'j': json = 1; break;
		case 'h':
			return cli_help("est-client", est_synopsis, est_options,
			    opts);
		default:
			return cli_usage("est-client", "bad option", est_synopsis);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("est-client", "add takes one NAME", est_synopsis);
	name = argv[optind];
	if (nallow == 0)
		return cli_usage("est-client", "at least one --allow is required",
		    est_synopsis);
	if ((pwfile != NULL) == (csrpath != NULL) ||
	    (csrpath != NULL) != (outpath != NULL))
		return cli_usage("est-client", "give either --password-file or "
		    "--csr with --out", est_synopsis);
	if ((r = home_open(homedir, csrpath != NULL ? HOME_STORE | HOME_SIGNER :
	    HOME_STORE, &h)) != 0)
		goto fail;
	if ((r = ca_client_name_check(name, &h->policy)) != 0)
		goto fail;
	if ((allow = calloc(nallow, AMTCA_FQDN_MAX + 2)) == NULL) {
		r = AMTCA_E_NOMEM;
		goto fail;
	}
	for (i = 0; i < nallow; i++) {
		if ((r = sgn_allow_check(allow_in[i], &h->policy, entry)) != 0)
			goto fail;
		alen += (size_t)snprintf(allow + alen, AMTCA_FQDN_MAX + 2, "%s%s",
		    i > 0 ? " " : "", entry);
		if (sgn_allow_match(entry, name))
			covered = 1;
	}
	if ((r = client_exists(h, name)) != 0)
		goto fail;
	memset(&rec, 0, sizeof(rec));
	rec.name = (char *)name;
	rec.roles = STORE_CLIENT_EST;
	rec.allow = allow;
	if (pwfile != NULL) {
		if ((r = amtca_secret_read(pwfile, &pw)) != 0 ||
		    (r = sgn_password_hash(pw, &phc)) != 0)
			goto fail;
		rec.pwhash = phc;
	} else {
		/* Its own certificate names it, so reenrollment (which keeps
		 * the names) stays inside its allow list. */
		if (strchr(name, '.') == NULL || !covered) {
			r = amtca_fail(AMTCA_E_USAGE, "a client with a "
			    "certificate is named by an FQDN its --allow covers "
			    "(its certificate carries that name)");
			goto fail;
		}
		if ((r = is_device_name(h, name, &dev)) != 0)
			goto fail;
		if (dev) {
			r = amtca_fail(AMTCA_E_DENIED, "%s is an AMT device's "
			    "name; it is never issued over EST", name);
			goto fail;
		}
		if ((r = issue_client_cert(h, CA_PROFILE_EST, name, csrpath,
		    outpath, &serial)) != 0)
			goto fail;
		rec.serial = serial;
	}
	if ((r = record_client(h, &rec)) != 0)
		goto fail;
	if (json)
		added_json(name, "est", allow, serial, outpath);
	else if (serial != NULL)
		printf("est-client %s added: certificate %s in %s\n", name,
		    serial, outpath);
	else
		printf("est-client %s added (password)\n", name);
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	amtca_secret_free(pw);
	free(phc);
	free(allow);
	free(serial);
	home_free(h);
	return ret;
}

/*
 * Disable `name` (which must hold `role`) and revoke its current
 * certificate, if any, with `reason`.
 */
static int
disable(const char *homedir, const char *cmd, unsigned role, int reason,
    int json, int argc, char **argv, const char *synopsis)
{
	struct store_client *c = NULL;
	struct store_cert *got = NULL;
	struct home *h = NULL;
	struct json j;
	int r, was = 0, ret = EXIT_FAIL;

	if (optind + 1 != argc)
		return cli_usage(cmd, "one NAME is required", synopsis);
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0 ||
	    (r = store_client_get(h->store, argv[optind], &c)) != 0)
		goto fail;
	if ((c->roles & role) == 0) {
		r = amtca_fail(AMTCA_E_NOT_FOUND, "%s is not %s", c->name,
		    role == STORE_CLIENT_ADMIN ? "an admin" : "an EST client");
		goto fail;
	}
	/* The certificate first: a failure leaves the client usable and
	 * the command can be run again. */
	if (c->serial != NULL && (r = cred_revoke(h->store, h->state, c->serial, reason,
	    time(NULL), &got, &was)) != 0)
		goto fail;
	if ((r = store_client_remove(h->store, c->name, time(NULL))) != 0)
		goto fail;
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_str(&j, "name", c->name);
		json_str(&j, "revoked", got != NULL ? got->serial : NULL);
		json_bool(&j, "removed", 1);
		json_obj_end(&j);
		json_finish(&j);
	} else if (got != NULL)
		printf("%s removed; certificate %s revoked (%s)\n", c->name,
		    got->serial, cred_reason_name(got->revoke_reason));
	else
		printf("%s removed\n", c->name);
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	store_cert_free(got);
	store_client_free(c);
	home_free(h);
	return ret;
}

static int
list(const char *homedir, const char *cmd, unsigned role, int argc,
    char **argv, const char *synopsis)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_client *c = NULL;
	struct home *h = NULL;
	struct json j;
	size_t n = 0, i;
	char when[32];
	int ch, r, json = 0;

	optind = 1;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = 1; break;
		case 'h':
			return cli_help(cmd, synopsis, "  --json                 "
			    "one JSON document {\"clients\":[...]}\n"
			    "  --help                 this text\n", opts);
		default:
			return cli_usage(cmd, "bad option", synopsis);
		}
	}
	if (optind != argc)
		return cli_usage(cmd, "list takes no argument", synopsis);
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0 ||
	    (r = store_client_list(h->store, &c, &n)) != 0) {
		home_free(h);
		return cli_fail(r);
	}
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_arr_begin(&j, "clients");
	} else
		printf("%-24s  %-8s  %-32s  %s\n", "NAME", "STATE", "SERIAL",
		    role == STORE_CLIENT_EST ? "ALLOW" : "CREATED");
	for (i = 0; i < n; i++) {
		if ((c[i].roles & role) == 0)
			continue;
		if (json) {
			json_obj_begin(&j, NULL);
			json_str(&j, "name", c[i].name);
			json_str(&j, "state", c[i].removed_at ? "removed" :
			    "active");
			json_str(&j, "auth", c[i].pwhash != NULL ? "password" :
			    "certificate");
			json_str(&j, "serial", c[i].serial);
			if (role == STORE_CLIENT_EST)
				json_str(&j, "allow", c[i].allow);
			json_time(&j, "created_at", c[i].created_at);
			json_time(&j, "removed_at", c[i].removed_at);
			json_obj_end(&j);
		} else {
			cli_fmt_time(c[i].created_at, when, sizeof(when));
			printf("%-24s  %-8s  %-32s  %s\n", c[i].name,
			    c[i].removed_at ? "removed" : "active",
			    c[i].serial != NULL ? c[i].serial : "-",
			    role == STORE_CLIENT_EST ? c[i].allow : when);
		}
	}
	if (json) {
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
	}
	store_clients_free(c, n);
	home_free(h);
	return EXIT_OK;
}

/* remove/revoke: [--reason R] [--json] NAME */
static int
disable_cmd(const char *homedir, const char *cmd, unsigned role, int argc,
    char **argv, const char *synopsis, const char *options, int with_reason)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, json = 0, reason = with_reason ? CRL_UNSPECIFIED : CRL_CESSATION;

	optind = 1;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (!with_reason || (reason = cred_reason_parse(optarg)) < 0)
				return cli_usage(cmd, "bad --reason", synopsis);
			break;
		case 'j': json = 1; break;
		case 'h':
			return cli_help(cmd, synopsis, options, opts);
		default:
			return cli_usage(cmd, "bad option", synopsis);
		}
	}
	return disable(homedir, cmd, role, reason, json, argc, argv, synopsis);
}

int
cmd_est_client(const char *homedir, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return est_add(homedir, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "remove") == 0)
		return disable_cmd(homedir, "est-client", STORE_CLIENT_EST,
		    argc - 1, argv + 1, est_synopsis, est_options, 0);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return list(homedir, "est-client", STORE_CLIENT_EST, argc - 1,
		    argv + 1, est_synopsis);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0))
		return cli_help("est-client", est_synopsis, est_options, NULL);
	return cli_usage("est-client", "add, remove or list?", est_synopsis);
}

static int
admin_add(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "csr", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *csrpath = NULL, *outpath = NULL, *name;
	struct store_client rec;
	struct home *h = NULL;
	char *serial = NULL;
	int ch, r, json = 0, ret = EXIT_FAIL;

	optind = 1;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': csrpath = optarg; break;
		case 'o': outpath = optarg; break;
		case 'j': json = 1; break;
		case 'h':
			return cli_help("admin", admin_synopsis, admin_options,
			    opts);
		default:
			return cli_usage("admin", "bad option", admin_synopsis);
		}
	}
	if (optind + 1 != argc || csrpath == NULL || outpath == NULL)
		return cli_usage("admin", "add takes NAME, --csr and --out",
		    admin_synopsis);
	name = argv[optind];
	if ((r = home_open(homedir, HOME_STORE | HOME_SIGNER, &h)) != 0 ||
	    (r = ca_client_name_check(name, &h->policy)) != 0 ||
	    (r = client_exists(h, name)) != 0 ||
	    (r = issue_client_cert(h, CA_PROFILE_ADMIN, name, csrpath, outpath,
	    &serial)) != 0)
		goto fail;
	memset(&rec, 0, sizeof(rec));
	rec.name = (char *)name;
	rec.roles = STORE_CLIENT_ADMIN;
	rec.serial = serial;
	if ((r = record_client(h, &rec)) != 0)
		goto fail;
	if (json)
		added_json(name, "admin", NULL, serial, outpath);
	else
		printf("admin %s added: certificate %s in %s\n", name, serial,
		    outpath);
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	free(serial);
	home_free(h);
	return ret;
}

int
cmd_admin(const char *homedir, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return admin_add(homedir, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "revoke") == 0)
		return disable_cmd(homedir, "admin", STORE_CLIENT_ADMIN,
		    argc - 1, argv + 1, admin_synopsis, admin_options, 1);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return list(homedir, "admin", STORE_CLIENT_ADMIN, argc - 1,
		    argv + 1, admin_synopsis);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0))
		return cli_help("admin", admin_synopsis, admin_options, NULL);
	return cli_usage("admin", "add, revoke or list?", admin_synopsis);
}
