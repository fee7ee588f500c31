/* Helpers shared by the command implementations (see enroll/cli.h). */
#include "enroll/cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "common/json.h"
#include "common/util.h"

static int json_mode;

void
cli_set_json(int on)
{
	json_mode = on;
}

int
cli_json(void)
{
	return json_mode;
}

static void
json_error_doc(const char *name, const char *message)
{
	struct json j;

	/* A document begun and not finished never reaches stdout. */
	json_discard_unfinished();
	if (!json_mode || json_stdout_documents() > 0)
		return;
	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_obj_begin(&j, "error");
	json_str(&j, "code", name);
	json_str(&j, "message", message);
	json_obj_end(&j);
	json_obj_end(&j);
	json_finish(&j);
}

void
cli_json_error(int code)
{
	json_error_doc(amtca_errname(code), amtca_errmsg(code));
}

int
cli_fail(int code)
{
	fprintf(stderr, "amtca: %s\n", amtca_errmsg(code));
	cli_json_error(code);
	return EXIT_FAIL;
}

int
cli_usage(const char *cmd, const char *msg, const char *synopsis)
{
	fprintf(stderr, "amtca %s: %s\n", cmd, msg);
	if (synopsis != NULL)
		fprintf(stderr, "usage: amtca %s %s\n", cmd, synopsis);
	json_error_doc(amtca_errname(AMTCA_E_USAGE), msg);
	return EXIT_USAGE;
}

int
cli_help(const char *cmd, const char *synopsis, const char *options,
    const struct option *opts)
{
	char want[64];
	const char *p;
	size_t n;
	int missing = 0;

	printf("usage: amtca %s %s\n", cmd, synopsis);
	if (options != NULL && *options != '\0')
		printf("\noptions:\n%s", options);
	for (; opts != NULL && opts->name != NULL; opts++) {
		/* "--name" followed by a space, '=' or the end of a line. */
		snprintf(want, sizeof(want), "--%s", opts->name);
		n = strlen(want);
		for (p = options; p != NULL && (p = strstr(p, want)) != NULL; p += n)
			if (p[n] == ' ' || p[n] == '\n' || p[n] == '=' ||
			    p[n] == '\0' || p[n] == ',')
				break;
		if (p != NULL)
			continue;
		if (!missing++ && (options == NULL || *options == '\0'))
			printf("\noptions:\n");
		printf("  %s%s\n", want, opts->has_arg == required_argument ?
		    " ARG" : "");
	}
	return EXIT_OK;
}

static int
secret_file_option(const char *name)
{
	static const char *const suffix[] = {
		"password-file", "pin-file", "secret-file",
	};
	size_t i, n = strlen(name), m;

	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		m = strlen(suffix[i]);
		if (n >= m && strcmp(name + n - m, suffix[i]) == 0)
			return 1;
	}
	return 0;
}

/* The secret-file option of opts that arg ("--xyz[=v]") abbreviates, if any. */
static const char *
abbreviated_secret_file(const char *arg, const struct option *opts)
{
	const struct option *o;
	size_t n;

	if (strncmp(arg, "--", 2) != 0)
		return NULL;
	arg += 2;
	n = strcspn(arg, "=");
	if (n == 0)
		return NULL;
	for (o = opts; o->name != NULL; o++)
		if (strlen(o->name) == n && strncmp(arg, o->name, n) == 0)
			return NULL;	/* exactly some option */
	for (o = opts; o->name != NULL; o++)
		if (secret_file_option(o->name) && strlen(o->name) > n &&
		    strncmp(arg, o->name, n) == 0)
			return o->name;
	return NULL;
}

int
cli_getopt_long(int argc, char **argv, const char *shortopts,
    const struct option *opts, int *longindex)
{
	const char *name;
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if ((name = abbreviated_secret_file(argv[i], opts)) != NULL) {
			fprintf(stderr, "amtca %s: a secret is never taken on "
			    "the command line: give --%s FILE\n", argv[0], name);
			return '?';
		}
	}
	return getopt_long(argc, argv, shortopts, opts, longindex);
}

int
cli_der_to_pem(const unsigned char *der, size_t derlen, unsigned char **out,
    size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int ret = AMTCA_E_NOMEM;

	*out = NULL;
	if (b == NULL || PEM_write_bio(b, PEM_STRING_X509, "", der,
	    (long)derlen) <= 0)
		goto out;
	n = BIO_get_mem_data(b, &p);
	if (n <= 0 || (*out = malloc((size_t)n)) == NULL)
		goto out;
	memcpy(*out, p, (size_t)n);
	*len = (size_t)n;
	ret = 0;
out:
	BIO_free(b);
	return ret;
}

int
cli_parse_long(const char *s, long lo, long hi, long *out)
{
	return amtca_parse_long(s, lo, hi, out);
}

void
cli_fmt_time(time_t t, char *buf, size_t len)
{
	amtca_fmt_time(t, buf, len);
}
