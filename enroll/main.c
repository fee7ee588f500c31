/*
 * amtca(1): command dispatch.  Global options come before the command;
 * each command parses its own options (see the command implementations).
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
#include "enroll/cli.h"

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
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: amtca [--home DIR] COMMAND [OPTIONS]\n"
	    "       amtca COMMAND --help\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nThe CA home is --home, else $AMTCA_HOME, else ./amtca-home.\n"
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

int
main(int argc, char **argv)
{
	const char *home = NULL;
	int i = 1, rc;
	size_t c;

	if (no_core_dumps() != 0) {
		fprintf(stderr, "amtca: cannot disable core dumps\n");
		return EXIT_FAIL;
	}
	while (i < argc && strncmp(argv[i], "--", 2) == 0) {
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
		} else {
			fprintf(stderr, "amtca: unknown option %s\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
		if (strcmp(argv[i], commands[c].name) == 0)
			break;
	if (c == sizeof(commands) / sizeof(commands[0])) {
		fprintf(stderr, "amtca: unknown command '%s' (see amtca --help)\n",
		    argv[i]);
		return EXIT_USAGE;
	}
	if (amt_global_init() != 0) {
		fprintf(stderr, "amtca: cannot initialise libcurl\n");
		return EXIT_FAIL;
	}
	xmlInitParser();
	rc = commands[c].fn(home, argc - i, argv + i);
	xmlCleanupParser();
	curl_global_cleanup();
	OPENSSL_cleanup();
	return rc;
}
