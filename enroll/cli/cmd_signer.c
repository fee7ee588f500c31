/*
 * amtca signer: the signer process (signer/proc.c).  Internal: enroll,
 * fleet, serve and the other front ends start it themselves (sgn_spawn)
 * over socketpairs; it is not listed among the commands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/util.h"
#include "enroll/cli/cli.h"
#include "signer/signer.h"

static const char help[] =
    "usage: amtca signer --fds FD[,FD]...\n"
    "\n"
    "Internal: the CA's signer process.  Commands that parse outside input\n"
    "(enroll, fleet, serve, amt-info, doctor, devices retire) start it\n"
    "themselves, over socketpairs whose descriptors it receives with --fds;\n"
    "only it loads the PKCS#11 module, reads the PIN and writes the CA's\n"
    "records.  Running it by hand serves no purpose.  The wire format is\n"
    "docs/PROTOCOL.signer.\n";

int
cmd_signer(const char *home, int argc, char **argv)
{
	int fds[AMTCA_SGN_CONN_MAX], i, r;
	size_t n = 0;
	const char *list = NULL;
	char *copy = NULL, *tok, *save = NULL;
	long v;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(help, stdout);
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--fds") == 0 && i + 1 < argc)
			list = argv[++i];
		else {
			fprintf(stderr, "amtca: signer: unknown argument %s; this "
			    "command is internal (see amtca signer --help)\n",
			    argv[i]);
			return EXIT_USAGE;
		}
	}
	if (list == NULL || (copy = strdup(list)) == NULL) {
		fprintf(stderr, "amtca: signer: --fds is required; this command "
		    "is internal (see amtca signer --help)\n");
		return EXIT_USAGE;
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (n == AMTCA_SGN_CONN_MAX || amtca_parse_long(tok, 3, 1 << 20,
		    &v) != 0) {
			fprintf(stderr, "amtca: signer: bad --fds '%s'\n", list);
			free(copy);
			return EXIT_USAGE;
		}
		fds[n++] = (int)v;
	}
	free(copy);
	if ((r = sgn_signer_main(home, fds, n)) != 0) {
		fprintf(stderr, "amtca: signer: %s\n", amtca_errmsg(r));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
