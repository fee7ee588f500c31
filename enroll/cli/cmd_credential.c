/*
 * amtca credential add | list | remove: AMT credentials that the service
 * and fleet runs name instead of password files.  `add` seals the password
 * in this process's signer (sgn_local: the operator holds the PIN anyway);
 * `list` and `remove` touch only the operational state, where nothing
 * secret is kept.  No password is ever printed or taken from argv.
 */
#include "enroll/cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/store.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/util.h"
#include "signer/signer.h"

static const char syn[] =
    "add NAME --user USER --password-file FILE\n"
    "       amtca credential list [--json]\n"
    "       amtca credential remove NAME";

static const char options[] =
    "add NAME: seal USER's password under the token's credential key\n"
    "(created on first use), replacing a credential of that name\n"
    "  --user USER            AMT user name\n"
    "  --password-file FILE   AMT password (first line); owned by you or\n"
    "                         root and not writable by others\n"
    "list: names, users, mechanisms and dates; never a password\n"
    "  --json                 one JSON document {\"credentials\":[...]}\n"
    "remove NAME: forget the credential (devices naming it fail until it\n"
    "is added again)\n"
    "  --help                 this text\n";

static int
usage_err(const char *msg)
{
	return cli_usage("credential", msg, syn);
}

static int
add(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *user = NULL, *pwfile = NULL, *name;
	char *password = NULL;
	struct sgn *s = NULL;
	int ch, r, ret = EXIT_FAIL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': user = optarg; break;
		case 'w': pwfile = optarg; break;
		case 'h':
			return cli_help("credential", syn, options, opts);
		default:
			return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("add takes one NAME");
	if (user == NULL || pwfile == NULL)
		return usage_err("add needs --user and --password-file");
	name = argv[optind];
	/* Checked like a PIN file: a password others can plant is refused. */
	if ((r = amtca_path_check_secure(pwfile, "password file")) != 0 ||
	    (r = amtca_secret_read(pwfile, &password)) != 0 ||
	    (r = sgn_local(homedir, &s)) != 0 ||
	    (r = sgn_cred_put(s, name, user, password)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	printf("credential %s added for AMT user %s (sealed in the token)\n",
	    name, user);
	ret = EXIT_OK;
out:
	amtca_secret_free(password);
	sgn_close(s);
	return ret;
}

static int
list(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_cred *v = NULL;
	struct home *h = NULL;
	struct json j;
	size_t n = 0, i;
	char cr[32], up[32];
	int ch, r, json = 0, ret = EXIT_FAIL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = 1; break;
		case 'h':
			return cli_help("credential", syn, options, opts);
		default:
			return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("list takes no argument");
	if ((r = home_open(homedir, HOME_STATE, &h)) != 0 ||
	    (r = store_cred_list(h->state, &v, &n)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_arr_begin(&j, "credentials");
		for (i = 0; i < n; i++) {
			json_obj_begin(&j, NULL);
			json_str(&j, "name", v[i].name);
			json_str(&j, "user", v[i].user);
			json_str(&j, "mechanism", v[i].mechanism);
			json_time(&j, "created_at", v[i].created_at);
			json_time(&j, "updated_at", v[i].updated_at);
			json_obj_end(&j);
		}
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%-24s %-16s %-24s %-20s %s\n", "NAME", "USER", "MECHANISM",
		    "CREATED", "UPDATED");
		for (i = 0; i < n; i++) {
			cli_fmt_time(v[i].created_at, cr, sizeof(cr));
			cli_fmt_time(v[i].updated_at, up, sizeof(up));
			printf("%-24s %-16s %-24s %-20s %s\n", v[i].name, v[i].user,
			    v[i].mechanism, cr, up);
		}
	}
	ret = EXIT_OK;
out:
	store_creds_free(v, n);
	home_free(h);
	return ret;
}

static int
remove_cred(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_cred *old = NULL;
	char detail[AMTCA_AMT_USER_MAX + 64];
	struct home *h = NULL;
	int ch, r, ret = EXIT_FAIL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			return cli_help("credential", syn, options, opts);
		default:
			return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("remove takes one NAME");
	/* The CA store too: the removal's audit entry is written there. */
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0 ||
	    (r = store_cred_get(h->state, argv[optind], &old)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	/*
	 * Entry first, as sgn_core_cred_put() does (no transaction spans the
	 * CA store and the state): a removal that then fails is followed by
	 * "credential.error".
	 */
	snprintf(detail, sizeof(detail), "user=%s", old->user);
	if ((r = store_audit_append(h->store, NULL, "credential.remove",
	    argv[optind], detail)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if ((r = store_cred_remove(h->state, argv[optind])) != 0) {
		snprintf(detail, sizeof(detail), "failed=credential.remove "
		    "error=%d", r);
		if (store_audit_append(h->store, NULL, "credential.error",
		    argv[optind], detail) != 0)
			fprintf(stderr, "amtca: the audit trail lacks the "
			    "failed removal of %s\n", argv[optind]);
		ret = cli_fail(r);
		goto out;
	}
	printf("credential %s removed\n", argv[optind]);
	ret = EXIT_OK;
out:
	store_cred_free(old);
	home_free(h);
	return ret;
}

int
cmd_credential(const char *homedir, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return add(homedir, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return list(homedir, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "remove") == 0)
		return remove_cred(homedir, argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0))
		return cli_help("credential", syn, options, NULL);
	return usage_err(argc >= 2 ? "unknown subcommand (add, list, remove)" :
	    "add, list or remove?");
}
