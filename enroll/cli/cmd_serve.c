/*
 * amtca serve: the enrollment service.  Parses its options and runs
 * serve_run() (enroll/serve/serve.c) until SIGTERM.  See docs/serve.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "enroll/cli/cli.h"
#include "enroll/serve/serve.h"

static const char syn[] =
    "--listen ADDR:PORT (--name FQDN | --tls-cert FILE --tls-key FILE)\n"
    "                   [--publish-listen ADDR:PORT] [--publish-url URL]\n"
    "                   [--status-listen ADDR:PORT|unix:PATH] [--user USER]\n"
    "                   [--reconcile-every DURATION] [--max-connections N]\n"
    "                   [--timeout SECONDS] [--claim-ttl SECONDS]";

static int
usage_err(const char *msg)
{
	return cli_usage("serve", msg, syn);
}

/* "90", "90s", "30m", "6h", "1d"; "0" turns the timer off. */
static int
parse_duration(const char *s, long *out)
{
	char num[32];
	size_t n = strlen(s);
	long v, mul = 1;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's': mul = 1; num[--n] = '\0'; break;
	case 'm': mul = 60; num[--n] = '\0'; break;
	case 'h': mul = 3600; num[--n] = '\0'; break;
	case 'd': mul = 86400; num[--n] = '\0'; break;
	default: break;
	}
	if (cli_parse_long(num, 0, 366L * 86400 / mul, &v) != 0)
		return -1;
	*out = v * mul;
	return 0;
}

int
cmd_serve(const char *home, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "name", required_argument, NULL, 'n' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "publish-listen", required_argument, NULL, 'p' },
		{ "publish-url", required_argument, NULL, 'P' },
		{ "status-listen", required_argument, NULL, 's' },
		{ "user", required_argument, NULL, 'u' },
		{ "reconcile-every", required_argument, NULL, 'r' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "claim-ttl", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_opts o;
	char options[3000];
	long n;
	int ch, r;

	memset(&o, 0, sizeof(o));
	o.reconcile_every_s = AMTCA_SERVE_RECONCILE_S;
	o.max_connections = AMTCA_SERVE_CONN_MAX;
	o.timeout_s = AMTCA_SERVE_TIMEOUT_S;
	optind = 1;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': o.listen = optarg; break;
		case 'n': o.name = optarg; break;
		case 'c': o.tls_cert = optarg; break;
		case 'k': o.tls_key = optarg; break;
		case 'p': o.publish_listen = optarg; break;
		case 'P': o.publish_url = optarg; break;
		case 's': o.status_listen = optarg; break;
		case 'u': o.user = optarg; break;
		case 'r':
			if (parse_duration(optarg, &o.reconcile_every_s) != 0)
				return usage_err("--reconcile-every takes a "
				    "duration: 90s, 30m, 6h, 1d, or 0 for never");
			break;
		case 'm':
			if (cli_parse_long(optarg, 1, AMTCA_SERVE_CONN_LIMIT,
			    &n) != 0)
				return usage_err("--max-connections takes "
				    "1..16384");
			o.max_connections = (unsigned)n;
			break;
		case 't':
			if (cli_parse_long(optarg, 1, 3600, &n) != 0)
				return usage_err("--timeout takes 1..3600 seconds");
			o.timeout_s = (unsigned)n;
			break;
		case 'C':
			if (cli_parse_long(optarg, AMTCA_CLAIM_TTL_MIN_S,
			    AMTCA_CLAIM_TTL_MAX_S, &n) != 0)
				return usage_err("--claim-ttl takes 3..3600 "
				    "seconds");
			o.claim_ttl_s = (int)n;
			break;
		case 'h':
			snprintf(options, sizeof(options),
			    "  --listen ADDR:PORT        HTTPS: the API, EST and the "
			    "publication\n"
			    "  --name FQDN               the service's name: its "
			    "certificate is issued\n"
			    "                            by this CA, kept in "
			    "state/serve/ and renewed\n"
			    "  --tls-cert FILE           or a PEM certificate (chain) "
			    "from elsewhere\n"
			    "  --tls-key FILE            and its PEM key\n"
			    "  --publish-listen ADDR:PORT  plain HTTP: chain, CRLs, "
			    "CA certificates\n"
			    "  --publish-url URL         the publication's base URL; "
			    "amtca.conf's\n"
			    "                            crl_url/aia_url must point "
			    "under it\n"
			    "  --status-listen ADDR:PORT|unix:PATH  status page and "
			    "/metrics\n"
			    "                            (default 127.0.0.1:%d)\n"
			    "  --user USER               when started as root, run as "
			    "USER once bound\n"
			    "  --reconcile-every DURATION  reconcile the known devices "
			    "(6h; 0 never)\n"
			    "  --max-connections N       per listener (%d)\n"
			    "  --timeout SECONDS         idle time per connection "
			    "(%d); a body\n"
			    "                            must arrive within twice "
			    "that\n"
			    "  --claim-ttl SECONDS       several nodes: how long a "
			    "node's job claims,\n"
			    "                            device leases and reconcile "
			    "leadership outlive\n"
			    "                            it (%d)\n"
			    "  --help                    this text\n",
			    AMTCA_SERVE_STATUS_PORT, AMTCA_SERVE_CONN_MAX,
			    AMTCA_SERVE_TIMEOUT_S, AMTCA_CLAIM_TTL_S);
			cli_help("serve", syn, options, opts);
			printf("\nPrints \"ready\" once every listener accepts; "
			    "logs one key=value line per\nevent on stderr; exits 0 "
			    "on SIGTERM after at most %d seconds; SIGHUP renews\n"
			    "the --name certificate at once.\n",
			    AMTCA_SERVE_STOP_S);
			return EXIT_OK;
		default:
			return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument");
	if (o.listen == NULL)
		return usage_err("--listen is required");
	if ((o.name == NULL) == (o.tls_cert == NULL && o.tls_key == NULL))
		return usage_err("give --name FQDN, or --tls-cert and --tls-key");
	if (o.name == NULL && (o.tls_cert == NULL || o.tls_key == NULL))
		return usage_err("--tls-cert and --tls-key go together");
	if ((r = serve_run(home_default_dir(home), &o)) != 0)
		return cli_fail(r);
	return EXIT_OK;
}
