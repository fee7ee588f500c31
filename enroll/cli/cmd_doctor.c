/*
 * amtca doctor: the checks a technician does by hand when AMT TLS is
 * broken, as one command.  Each check prints
 *     OK   <check>: <what was seen>
 *     FAIL <check>: <what> — fix: <one line>
 *     SKIP <check>: <why>            (needs --user/--password-file, or --skip)
 * and the exit status is 0 only when nothing failed.  Each check has a
 * stable id for --json and --skip.  The checks are the core's
 * (enroll/doctor.c); this file parses, runs them and prints.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "enroll/cli/cli.h"
#include "signer/signer.h"
#include "enroll/doctor.h"
#include "enroll/enroll.h"

static const char syn[] =
    "--host FQDN [--address IP] [--port N] [--tls-port N]\n"
    "                    [--user USER --password-file FILE] [--tls-pin SHA256]\n"
    "                    [--redir-port N]\n"
    "                    [--legacy-tls] [--skip ID]... [--json]";

static const char options[] =
    "  --host FQDN            the device's FQDN\n"
    "  --address IP           check IP instead of what FQDN resolves to\n"
    "  --port N               plain WS-MAN port (16992)\n"
    "  --tls-port N           TLS WS-MAN port (16993)\n"
    "  --user USER            AMT user, for the login, identity and AMT-clock checks\n"
    "  --password-file FILE   AMT password (first line)\n"
    "  --tls-pin SHA256       also accept this served leaf (SHA-256 of its DER,\n"
    "                         hex) for credentials over TLS\n"
    "  --redir-port N         redirection TLS port (16995)\n"
    "  --legacy-tls           AMT <= 12: legacy renegotiation, SECLEVEL 0\n"
    "  --skip ID              do not run check ID (repeatable, or ID,ID): dns,\n"
    "                         port_tls, tls_handshake, port_plain, validity_local,\n"
    "                         chain_file, login, identity, validity_amt, redirection\n"
    "  --json                 one JSON document; each check has its id\n"
    "  --help                 this text\n";

static int
usage_err(const char *msg)
{
	return cli_usage("doctor", msg, syn);
}

/* --skip ID[,ID...] */
static int
parse_skip(unsigned *skip, const char *arg)
{
	char buf[256], *tok, *save = NULL;
	int id;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return -1;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if ((id = doctor_check_parse(tok)) < 0)
			return -1;
		*skip |= 1u << id;
	}
	return 0;
}

/* Each result as the doctor makes it (text mode). */
static void
print_line(void *ctx, const struct doctor_result *c)
{
	(void)ctx;
	if (c->verdict == DOCTOR_FAIL)
		printf("FAIL %s: %s \xe2\x80\x94 fix: %s\n", c->name, c->what,
		    c->fix);
	else
		printf("%s %s: %s\n", c->verdict == DOCTOR_OK ? "OK  " : "SKIP",
		    c->name, c->what);
	fflush(stdout);
}

static void
print_json(const struct doctor_report *d, const char *host, const char *addr)
{
	struct json j;
	size_t i;

	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_str(&j, "host", host);
	json_str(&j, "address", addr);
	json_arr_begin(&j, "checks");
	for (i = 0; i < d->n; i++) {
		json_obj_begin(&j, NULL);
		json_str(&j, "id", d->r[i].key);
		json_str(&j, "check", d->r[i].name);
		json_str(&j, "result", d->r[i].verdict == DOCTOR_OK ? "ok" :
		    d->r[i].verdict == DOCTOR_FAIL ? "fail" : "skip");
		json_str(&j, "detail", d->r[i].what);
		json_str(&j, "fix", d->r[i].verdict == DOCTOR_FAIL ?
		    d->r[i].fix : NULL);
		json_obj_end(&j);
	}
	json_arr_end(&j);
	json_bool(&j, "ok", d->nfail == 0);
	json_obj_end(&j);
	json_finish(&j);
}

int
cmd_doctor(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "tls-port", required_argument, NULL, 'P' },
		{ "redir-port", required_argument, NULL, 'R' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'w' },
		{ "legacy-tls", no_argument, NULL, 'L' },
		{ "tls-pin", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "skip", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct doctor_report rep;
	struct doctor_opts o;
	struct home *h = NULL;
	struct sgn *sgn = NULL;
	unsigned char oppin[32];
	int ch, r, json = 0, ret = EXIT_FAIL;
	long n;

	memset(&o, 0, sizeof(o));
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': o.host = optarg; break;
		case 'a': o.address = optarg; break;
		case 'u': o.user = optarg; break;
		case 'w': o.password_file = optarg; break;
		case 'L': o.legacy_tls = 1; break;
		case 'j': json = 1; break;
		case 'T':
			if (cred_pin_parse(optarg, oppin) != 0)
				return usage_err("--tls-pin takes the SHA-256 of the "
				    "leaf's DER as 64 hex digits");
			o.tls_pin = oppin;
			break;
		case 'S':
			if (parse_skip(&o.skip, optarg) != 0)
				return usage_err("--skip takes check ids: dns, port_tls, "
				    "tls_handshake, port_plain, validity_local, "
				    "chain_file, login, identity, validity_amt, "
				    "redirection");
			break;
		case 'p': case 'P': case 'R':
			if (cli_parse_long(optarg, 1, 65535, &n) != 0)
				return usage_err("ports take 1..65535");
			if (ch == 'p')
				o.port = (int)n;
			else if (ch == 'P')
				o.tls_port = (int)n;
			else
				o.redir_port = (int)n;
			break;
		case 'h':
			cli_help("doctor", syn, options, opts);
			printf("\nChecks DNS, ports %d/%d, "
			    "the TLS handshake with this CA's chain and hostname\n"
			    "verification, certificate validity by our and AMT's "
			    "clock, chain.pem order, and\nthe redirection TLS port.  "
			    "Exit 0 only when no check fails.\n", 16992, 16993);
			return EXIT_OK;
		default:
			return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument");
	if (o.host == NULL)
		return usage_err("--host is required");
	if ((o.user == NULL) != (o.password_file == NULL))
		return usage_err("--user and --password-file go together");
	if (o.address != NULL && !net_is_ip(o.address))
		return usage_err("--address takes an IP address");
	if (o.address == NULL && (o.skip & (1u << DOCTOR_DNS)) != 0)
		return usage_err("--skip dns needs --address");
	signal(SIGPIPE, SIG_IGN);

	if ((r = home_open_frontend(homedir, 1, &h, &sgn)) != 0) {
		o.home_error = r;
		h = NULL;
	}
	o.sgn = sgn;
	if (!json)
		o.on_result = print_line;
	if ((r = doctor_run(h, &o, &rep)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (rep.address[0] == '\0') {
		if (json)
			print_json(&rep, o.host, NULL);
		fprintf(stderr, "amtca: doctor: %s does not resolve and no "
		    "--address was given: nothing else can be checked\n", o.host);
		ret = EXIT_FAIL;
		goto out;
	}
	if (json)
		print_json(&rep, o.host, rep.address);
	ret = rep.nfail ? EXIT_FAIL : EXIT_OK;
	if (rep.nfail)
		fprintf(stderr, "amtca: doctor: %zu of %zu checks failed for %s "
		    "(see the FAIL lines and their fixes)\n", rep.nfail, rep.n,
		    o.host);
out:
	sgn_close(sgn);
	home_free(h);
	return ret;
}
