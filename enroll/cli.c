/* Helpers shared by the command implementations (see enroll/cli.h). */
#include "enroll/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int
cli_fail(int code)
{
	fprintf(stderr, "amtca: %s\n", amtca_errmsg(code));
	return EXIT_FAIL;
}

int
cli_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

void
cli_fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "?");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
