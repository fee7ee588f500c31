/*
 * amtca(1): command dispatch.  Global options (--home; --json is noted for
 * the failure document) come before or after the command; each command
 * parses its own options (see the command implementations).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <openssl/crypto.h>

#include "amt/amt.h"
#include "enroll/cli/cli.h"
#include "common/json.h"

#define AMTCA_VERSION "0.1.0"

static const struct {
	const char *name;
	int (*fn)(const char *, int, char **);
	const char *help;
} commands[] = {
	{ "init",     cmd_init,     "create the root and intermediate CA in a token" },
	{ "issue",    cmd_issue,    "issue a WebServer certificate for one FQDN from a CSR" },
	{ "chain",    cmd_chain,    "export the CA chain (PEM bottom to top, DER, PKCS#7)" },
	{ "list",     cmd_list,     "list issued certificates" },
	{ "show",     cmd_show,     "show one issued certificate" },
	{ "revoke",   cmd_revoke,   "revoke a certificate" },
	{ "crl",      cmd_crl,      "produce a CRL" },
	{ "bench",    cmd_bench,    "benchmark issuance (bench issue)" },
	{ "amt-info", cmd_amt_info, "show an AMT device's version, TLS state and store" },
	{ "enroll",   cmd_enroll,   "install a certificate into AMT and turn TLS on" },
	{ "doctor",   cmd_doctor,   "diagnose DNS, ports, TLS and chain for an AMT device" },
	{ "fleet",    cmd_fleet,    "reconcile every device of a hosts file, in one process" },
	{ "devices",  cmd_devices,  "list the enrolled devices; devices retire FQDN" },
	{ "backup",   cmd_backup,   "an online, verifiable backup of the CA home" },
	{ "restore",  cmd_restore,  "make a new CA home from a backup" },
	{ "est-client", cmd_est_client, "add, remove or list EST clients" },
	{ "admin",    cmd_admin,    "add, revoke or list admin API clients" },
	{ "serve",    cmd_serve,    "run the enrollment service (HTTPS, publication, status)" },
	{ "credential", cmd_credential, "add, list or remove sealed AMT credentials" },
	{ "ca",       cmd_ca,       "the CA hierarchy: import-intermediate (external root)" },
	{ "audit",    cmd_audit,    "the audit trail: export, show, verify, seal, pubkey" },
	{ "store",    cmd_store,    "store migrate: bring the store to this amtca's schema" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: amtca [--home DIR] COMMAND [OPTIONS]\n"
	    "       amtca COMMAND --help\n"
	    "       amtca help [COMMAND]\n\ncommands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nglobal options (before or after the command):\n"
	    "  --home DIR   the CA home (else $AMTCA_HOME, else ./amtca-home)\n"
	    "  --json       one JSON document on stdout, also on failure\n"
	    "               (commands that support it)\n"
	    "  -h, --help   this text;  --version  the version\n"
	    "\nExit status: 0 success, 1 failure, 2 usage error.\n"
	    "See amtca(1) and amtca.conf(5).\n");
}

/*
 * amtca holds the PIN and AMT passwords: no core file, and no ptrace or
 * /proc/PID/mem by other processes of the same user (root still can).
 * Buffers that held a secret are wiped after use as well.
 */
static int
no_core_dumps(void)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) != 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return -1;
	return 0;
}

/* A usage error before any command runs. */
static int
main_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "amtca: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	cli_json_error(amtca_fail(AMTCA_E_USAGE, fmt, arg));
	return EXIT_USAGE;
}

static int
find_command(const char *name, size_t *out)
{
	size_t c;

	for (c = 0; c < NCOMMANDS; c++)
		if (strcmp(name, commands[c].name) == 0) {
			*out = c;
			return 0;
		}
	return -1;
}

/*
 * The global options may also follow the command: take --home out of the
 * command's arguments (no command has an option of that name), and note
 * --json so that every failure prints the JSON error document.  Stops at
 * "--".  Returns the new argc, or -1 when --home lacks its argument.
 */
static int
global_after_command(int argc, char **argv, const char **home)
{
	int i, n = 1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--json") == 0)
			cli_set_json(1);
		if (strcmp(argv[i], "--home") == 0) {
			if (++i == argc)
				return -1;
			*home = argv[i];
		} else if (strncmp(argv[i], "--home=", 7) == 0)
			*home = argv[i] + 7;
		else
			argv[n++] = argv[i];
	}
	argv[n] = NULL;
	return n;
}

int
main(int argc, char **argv)
{
	const char *home = NULL;
	char *help_argv[3], **cargv = NULL;
	int i = 1, n, rc, json_before = 0;
	size_t c;

	/* --json anywhere: even a usage error below is a JSON document. */
	for (n = 1; n < argc && strcmp(argv[n], "--") != 0; n++)
		if (strcmp(argv[n], "--json") == 0)
			cli_set_json(1);
	/* Before any command reads a PIN or a password. */
	if (no_core_dumps() != 0) {
		fprintf(stderr, "amtca: cannot disable core dumps\n");
		cli_json_error(amtca_fail(AMTCA_E_INTERNAL,
		    "cannot disable core dumps"));
		return EXIT_FAIL;
	}
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("amtca %s\n", AMTCA_VERSION);
			return EXIT_OK;
		} else if (strcmp(argv[i], "--home") == 0 && i + 1 < argc) {
			home = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--home=", 7) == 0) {
			home = argv[i] + 7;
			i++;
		} else if (strcmp(argv[i], "--home") == 0) {
			return main_usage("%s needs a directory", "--home");
		} else if (strcmp(argv[i], "--json") == 0) {
			json_before = 1;	/* passed on to the command */
			i++;
		} else {
			rc = main_usage("unknown option %s (see amtca --help)",
			    argv[i]);
			usage(stderr);
			return rc;
		}
	}
	if (i >= argc) {
		rc = main_usage("no command given%s", "");
		usage(stderr);
		return rc;
	}
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 >= argc) {
			usage(stdout);
			return EXIT_OK;
		}
		if (find_command(argv[i + 1], &c) != 0)
			return main_usage("unknown command '%s' (see amtca help)",
			    argv[i + 1]);
		/* `amtca help CMD` is `amtca CMD --help`. */
		help_argv[0] = argv[i + 1];
		help_argv[1] = (char *)"--help";
		help_argv[2] = NULL;
		return commands[c].fn(home, 2, help_argv);
	}
	/* Hidden from the lists: the signer process, which sgn_spawn()
	 * starts (signer/proc.c). */
	if (strcmp(argv[i], "signer") == 0) {
		if ((n = global_after_command(argc - i, argv + i, &home)) < 0)
			return main_usage("%s needs a directory", "--home");
		return cmd_signer(home, n, argv + i);
	}
	if (find_command(argv[i], &c) != 0)
		return main_usage("unknown command '%s' (see amtca --help)",
		    argv[i]);
	if ((n = global_after_command(argc - i, argv + i, &home)) < 0)
		return main_usage("%s needs a directory", "--home");
	if (json_before) {
		/* `amtca --json CMD` is `amtca CMD --json`. */
		if ((cargv = calloc((size_t)n + 2, sizeof(*cargv))) == NULL)
			return cli_fail(AMTCA_E_NOMEM);
		memcpy(cargv, argv + i, (size_t)n * sizeof(*cargv));
		cargv[n++] = "--json";
	}
	if (amt_global_init() != 0) {
		fprintf(stderr, "amtca: cannot initialise libcurl\n");
		cli_json_error(amtca_fail(AMTCA_E_INTERNAL,
		    "cannot initialise libcurl"));
		return EXIT_FAIL;
	}
	xmlInitParser();
	rc = commands[c].fn(home, n, cargv != NULL ? cargv : argv + i);
	/*
	 * The contract: with --json, a failure is one JSON document.  A
	 * command that failed without one (a path that printed its own
	 * message) gets the error document here.
	 */
	if (rc != EXIT_OK && cli_json())
		cli_json_error(amtca_fail(rc == EXIT_USAGE ? AMTCA_E_USAGE :
		    AMTCA_E_INTERNAL, "amtca %s failed (see standard error)",
		    commands[c].name));
	json_discard_unfinished();
	free(cargv);
	xmlCleanupParser();
	curl_global_cleanup();
	OPENSSL_cleanup();
	return rc;
}
