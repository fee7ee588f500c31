/* Placeholder: replaced by the enrollment engine. */
#include <stdio.h>

#include "enroll/cli.h"

int
cmd_enroll(const char *home, int argc, char **argv)
{
	(void)home;
	(void)argc;
	(void)argv;
	fprintf(stderr, "amtca: enroll is not implemented yet\n");
	return EXIT_FAIL;
}
