/*
 * amtca enroll: one AMT device from plain HTTP to TLS with a per-FQDN
 * certificate from this CA, proven on the TLS port.  Option parsing and
 * output; the steps are in engine.c.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/util.h"
#include "enroll/cli/cli.h"
#include "signer/signer.h"
#include "enroll/enroll.h"
#include "common/json.h"

static const char syn[] =
    "--host FQDN [--address IP] [--port N] [--tls-port N] [--tls-pin SHA256]\n"
    "                    --user USER --password-file FILE [--force] [--json]\n"
    "                    [--device-reset]\n"
    "                    [--accept-non-secure] [--allow-fqdn-mismatch]\n"
    "                    [--renew-days N] [--legacy-tls] [--tls-wait-ms N]";

static int
usage_err(const char *msg)
{
	return cli_usage("enroll", msg, syn);
}

static void
help(const struct option *opts)
{
	char options[1600];

	snprintf(options, sizeof(options),
	    "  --host FQDN             the device's FQDN (CN and SAN of the leaf)\n"
	    "  --address IP            talk to IP instead of resolving FQDN\n"
	    "  --port N                plain WS-MAN port (16992)\n"
	    "  --tls-port N            TLS WS-MAN port (16993)\n"
	    "  --user USER             AMT admin user\n"
	    "  --password-file FILE    AMT password (first line)\n"
	    "  --tls-pin SHA256        also accept this served leaf (SHA-256 of its\n"
	    "                          DER, hex) for credentials over TLS\n"
	    "  --force                 issue and install a new certificate even\n"
	    "                          when the current one is fine\n"
	    "  --device-reset          AMT was reset or re-provisioned: do not hold\n"
	    "                          the enrolled/compromised record against it\n"
	    "                          (plain HTTP is allowed again)\n"
	    "  --accept-non-secure     keep port 16992 open once TLS is on\n"
	    "  --allow-fqdn-mismatch   enroll although AMT reports another FQDN\n"
	    "  --renew-days N          renew when fewer than N days remain (%d)\n"
	    "  --legacy-tls            AMT <= 12: legacy renegotiation, SECLEVEL 0\n"
	    "  --tls-wait-ms N         wait for TLS after the commit (%d)\n"
	    "  --json                  one JSON document on stdout, also on failure\n"
	    "  --help                  this text\n",
	    AMTCA_RENEW_WINDOW_DAYS, AMTCA_AMT_TLS_WAIT_MS);
	cli_help("enroll", syn, options, opts);
	printf("\nInstall a certificate for FQDN from this CA into the AMT device and\n"
	    "turn TLS on, then prove it on the TLS port.  Safe to rerun: an\n"
	    "enrolled device is verified and left alone, a failed run resumes.\n");
}

struct tty_ctx {
	FILE *f;
	int open_line;			/* "[n/7] title ..." printed, no result */
};

static void
tty_progress(void *ctx, enum enroll_step s, enum enroll_event ev,
    const char *detail)
{
	struct tty_ctx *t = ctx;
	const char *d = detail && *detail ? detail : NULL;

	switch (ev) {
	case ENROLL_EV_BEGIN:
		if (d != NULL)
			return;		/* notes while a step runs: keep quiet */
		fprintf(t->f, "[%d/%d] %s ... ", (int)s + 1, ENROLL_NSTEPS,
		    enroll_step_title(s));
		t->open_line = 1;
		break;
	case ENROLL_EV_OK:
	case ENROLL_EV_SKIP:
		if (!t->open_line)
			fprintf(t->f, "[%d/%d] %s ... ", (int)s + 1, ENROLL_NSTEPS,
			    enroll_step_title(s));
		fprintf(t->f, "%s%s%s%s\n", ev == ENROLL_EV_OK ? "ok" : "skipped",
		    d ? " (" : "", d ? d : "", d ? ")" : "");
		t->open_line = 0;
		break;
	case ENROLL_EV_FAIL:
		if (t->open_line)
			fprintf(t->f, "FAILED\n");
		t->open_line = 0;
		break;
	case ENROLL_EV_RESTART:
		if (t->open_line)
			fprintf(t->f, "interrupted\n");
		fprintf(t->f, "      %s\n", d ? d : "starting over");
		t->open_line = 0;
		break;
	}
	fflush(t->f);
}

/*
 * One document whatever the outcome: every key is present (null when
 * unknown), "failed_step" names the step that failed (null otherwise) and
 * "error" is null or {"code":..,"message":..} as in every failure document.
 */
static void
print_json(const struct enroll_result *res, const char *host,
    const char *chain, int err)
{
	struct json j;
	int s;

	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_str(&j, "host", res->host ? res->host : host);
	json_str(&j, "address", res->address);
	json_str(&j, "amt_version", res->amt_version);
	json_str(&j, "serial", res->serial);
	if (res->not_after)
		json_time(&j, "not_after", (long long)res->not_after);
	else
		json_str(&j, "not_after", NULL);
	json_str(&j, "chain_pem", chain);
	json_arr_begin(&j, "steps");
	for (s = 0; s < ENROLL_NSTEPS; s++)
		if (res->steps_done & (1u << s))
			json_str(&j, NULL, enroll_step_name((enum enroll_step)s));
	json_arr_end(&j);
	json_str(&j, "status", res->status ? res->status : "failed");
	json_bool(&j, "reused_certificate", res->reused);
	json_bool(&j, "non_secure_port_open", res->non_secure_open);
	json_int(&j, "removed_certificates", res->removed_certs);
	json_int(&j, "removed_keys", res->removed_keys);
	json_int(&j, "superseded_certificates", res->superseded);
	json_str(&j, "failed_step", res->failed_step >= 0 ?
	    enroll_step_name((enum enroll_step)res->failed_step) : NULL);
	json_str(&j, "warning", res->warning);
	if (err != 0) {
		json_obj_begin(&j, "error");
		json_str(&j, "code", amtca_errname(err));
		json_str(&j, "message", amtca_errmsg(err));
		json_obj_end(&j);
	} else
		json_str(&j, "error", NULL);
	json_obj_end(&j);
	json_finish(&j);
}

int
cmd_enroll(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "tls-port", required_argument, NULL, 'P' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'w' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "accept-non-secure", no_argument, NULL, 'N' },
		{ "allow-fqdn-mismatch", no_argument, NULL, 'M' },
		{ "renew-days", required_argument, NULL, 'r' },
		{ "legacy-tls", no_argument, NULL, 'L' },
		{ "tls-wait-ms", required_argument, NULL, 'W' },
		{ "tls-pin", required_argument, NULL, 'T' },
		{ "device-reset", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct enroll_opts o;
	struct enroll_result res;
	struct tty_ctx tty = { stdout, 0 };
	struct home *h = NULL;
	struct sgn *sgn = NULL;
	const char *pwfile = NULL;
	char *password = NULL, na[32];
	unsigned char pin[32];
	long n;
	int ch, r, json = 0, ret = EXIT_FAIL;

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	res.failed_step = -1;
	o.renew_days = AMTCA_RENEW_WINDOW_DAYS;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': o.host = optarg; break;
		case 'a': o.address = optarg; break;
		case 'u': o.user = optarg; break;
		case 'w': pwfile = optarg; break;
		case 'f': o.force = 1; break;
		case 'j': json = 1; break;
		case 'N': o.accept_non_secure = 1; break;
		case 'M': o.allow_fqdn_mismatch = 1; break;
		case 'L': o.legacy_tls = 1; break;
		case 'D': o.device_reset = 1; break;
		case 'T':
			if (cred_pin_parse(optarg, pin) != 0)
				return usage_err("--tls-pin takes the SHA-256 of the "
				    "leaf's DER as 64 hex digits");
			o.tls_pin = pin;
			break;
		case 'p':
			if (cli_parse_long(optarg, 1, 65535, &n) != 0)
				return usage_err("--port takes 1..65535");
			o.port = (int)n;
			break;
		case 'P':
			if (cli_parse_long(optarg, 1, 65535, &n) != 0)
				return usage_err("--tls-port takes 1..65535");
			o.tls_port = (int)n;
			break;
		case 'r':
			if (cli_parse_long(optarg, 0, AMTCA_DAYS_MAX, &n) != 0)
				return usage_err("--renew-days takes 0..825");
			o.renew_days = (int)n;
			break;
		case 'W':
			if (cli_parse_long(optarg, 1, 3600000, &n) != 0)
				return usage_err("--tls-wait-ms takes 1..3600000");
			o.tls_wait_ms = n;
			break;
		case 'h':
			help(opts);
			return EXIT_OK;
		default:
			return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument");
	if (o.host == NULL || o.user == NULL || pwfile == NULL)
		return usage_err("--host, --user and --password-file are required");
	if (o.port != 0 && o.port == o.tls_port)
		return usage_err("--port and --tls-port must differ");

	/* A peer closing mid-handshake must not kill us (SIGPIPE). */
	signal(SIGPIPE, SIG_IGN);
	/* The signer process holds the token; this one talks to AMT. */
	if ((r = home_open_frontend(homedir, 0, &h, &sgn)) != 0 ||
	    (r = amtca_secret_read(pwfile, &password)) != 0) {
		if (json)
			print_json(&res, o.host, h ? h->chain_path : NULL, r);
		ret = cli_fail(r);
		goto out;
	}
	o.password = password;
	if (!json && isatty(STDOUT_FILENO)) {
		o.progress = tty_progress;
		o.progress_ctx = &tty;
	}
	r = enroll_run(&h->engine, &o, &res);
	amtca_secret_free(password);
	password = NULL;
	o.password = NULL;
	if (json)
		print_json(&res, o.host, h->chain_path, r);
	if (r != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (res.warning != NULL)
		fprintf(stderr, "amtca: warning: %s\n", res.warning);
	if (!json) {
		cli_fmt_time(res.not_after, na, sizeof(na));
		printf("%s: %s (AMT %s at %s); serial %s valid until %s; "
		    "port %d %s; chain for consoles: %s\n", res.host, res.status,
		    res.amt_version ? res.amt_version : "?",
		    res.address ? res.address : "?",
		    res.serial ? res.serial : "?", na, o.port ? o.port : 16992,
		    res.non_secure_open ? "open" : "closed", h->chain_path);
	}
	ret = EXIT_OK;
out:
	amtca_secret_free(password);
	enroll_result_clear(&res);
	sgn_close(sgn);
	home_free(h);
	return ret;
}
