/* Placeholder: replaced by the enrollment engine. */
#include <stdio.h>

#include "enroll/cli.h"

int
cmd_doctor(const char *home, int argc, char **argv)
{
	(void)home;
	(void)argc;
	(void)argv;
	fprintf(stderr, "amtca: doctor is not implemented yet\n");
	return EXIT_FAIL;
}
