/*
 * amtca fleet: reconcile every device of a hosts file in one process.
 * Parses, loads the hosts file (nothing runs until it is valid), calls the
 * job engine (enroll/fleet.h) and prints: a live progress bar on a
 * terminal, else one line per finished device; a summary; or the
 * contract's one JSON document.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/cli/cli.h"
#include "signer/signer.h"
#include "enroll/fleet.h"
#include "enroll/hosts.h"

static const char syn[] =
    "--hosts FILE [--user USER --password-file FILE] [--concurrency N]\n"
    "                   [--renew-days D] [--reissue-older-than-intermediate]\n"
    "                   [--json]";

static int
usage_err(const char *msg)
{
	return cli_usage("fleet", msg, syn);
}

static void
help(const struct option *opts)
{
	char options[1600];

	snprintf(options, sizeof(options),
	    "  --hosts FILE           CSV: fqdn,address,user,password_file and\n"
	    "                         optional port,tls_port,tls_pin_sha256\n"
	    "  --user USER            AMT user for rows that name none\n"
	    "  --password-file FILE   AMT password for rows that name none\n"
	    "  --concurrency N        devices in flight (%d, at most %d)\n"
	    "  --renew-days D         renew when fewer than D days remain (%d)\n"
	    "  --reissue-older-than-intermediate\n"
	    "                         re-issue, under the current intermediate,\n"
	    "                         leaves under one `ca rotate` retired\n"
	    "  --json                 one JSON document on stdout, also on failure\n"
	    "  --help                 this text\n",
	    AMTCA_FLEET_CONCURRENCY, AMTCA_FLEET_CONCURRENCY_MAX,
	    AMTCA_RENEW_WINDOW_DAYS);
	cli_help("fleet", syn, options, opts);
	printf("\nReconcile every device of the hosts file: enroll new ones, renew\n"
	    "those inside the renewal window, re-enroll revoked ones, verify the\n"
	    "rest over pinned TLS.  After `amtca ca rotate`, devices under the\n"
	    "retired intermediate stay valid (unchanged) unless\n"
	    "--reissue-older-than-intermediate moves them (renewed).  Rerunning\n"
	    "after an interruption (even SIGKILL) continues the job.  Exit 0 only\n"
	    "when every device ended healthy.\n");
}

/* The front end's view of the run, updated from the engine's callback. */
struct view {
	int tty;			/* progress bar on stderr */
	int lines;			/* one line per finished device (stdout) */
	long long t0;			/* ms */
	long long last_draw;
	int seen;			/* first_done is set */
	size_t first_done;		/* carried over from an earlier run */
};

static void
fmt_dur(double s, char *buf, size_t len)
{
	long t = (long)(s + 0.5);

	if (t >= 3600)
		snprintf(buf, len, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
	else if (t >= 60)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%lds", t);
}

static void
draw_bar(struct view *v, const struct fleet_progress *p, int final)
{
	char eta[32];
	double el = (double)(amtca_now_ms() - v->t0) / 1000.0, rate;
	size_t ran = p->done - v->first_done, width = 24, fill, i;
	char bar[64];

	rate = el > 0 ? (double)ran / el : 0;
	if (p->done >= p->total)
		snprintf(eta, sizeof(eta), "0s");
	else if (ran == 0 || rate <= 0)
		snprintf(eta, sizeof(eta), "?");
	else
		fmt_dur((double)(p->total - p->done) / rate, eta, sizeof(eta));
	fill = p->total ? p->done * width / p->total : width;
	for (i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\r[%s] %zu/%zu done, %zu failed, %zu in flight, "
	    "%.1f/s, ETA %s\033[K%s", bar, p->done, p->total,
	    p->counts[FLEET_FAILED], p->in_flight, rate, eta, final ? "\n" : "");
	fflush(stderr);
}

static void
on_progress(void *ctx, const struct fleet_progress *p)
{
	struct view *v = ctx;
	const struct fleet_outcome *o = p->last;
	long long now = amtca_now_ms();

	if (!v->seen) {		/* the rate counts this run's devices only */
		v->seen = 1;
		v->first_done = p->done;
	}
	if (v->lines && o != NULL) {
		printf("%s: %s%s%s%s%s\n", o->fqdn, fleet_result_name(o->result),
		    o->serial ? " serial " : "", o->serial ? o->serial : "",
		    o->error ? ": " : "", o->error ? o->error : "");
		fflush(stdout);
	}
	if (v->tty && (now - v->last_draw >= 100 || p->done == p->total)) {
		v->last_draw = now;
		draw_bar(v, p, 0);
	}
}

static void
print_summary(const struct fleet_report *rep)
{
	size_t i;
	int k;

	printf("\n%-10s %8s\n", "result", "devices");
	for (k = 0; k < FLEET_NRESULTS; k++)
		printf("%-10s %8zu\n", fleet_result_name((enum fleet_result)k),
		    rep->counts[k]);
	printf("%-10s %8zu\n", "total", rep->n);
	if (rep->counts[FLEET_FAILED] > 0) {
		printf("\nfailed devices:\n");
		for (i = 0; i < rep->n; i++)
			if (rep->dev[i].result == FLEET_FAILED)
				printf("  %s: %s\n", rep->dev[i].fqdn,
				    rep->dev[i].error ? rep->dev[i].error : "?");
	}
	printf("\n%zu devices in %.1f s (job %s%s)\n", rep->n, rep->seconds,
	    rep->job_id ? rep->job_id : "?", rep->resumed ? ", continued" : "");
}

static void
print_json(const struct fleet_report *rep)
{
	struct json j;
	size_t i;

	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_int(&j, "total", (long long)rep->n);
	json_int(&j, "enrolled", (long long)rep->counts[FLEET_ENROLLED]);
	json_int(&j, "renewed", (long long)rep->counts[FLEET_RENEWED]);
	json_int(&j, "unchanged", (long long)rep->counts[FLEET_UNCHANGED]);
	json_int(&j, "failed", (long long)rep->counts[FLEET_FAILED]);
	/* Whole seconds keep the writer's integer-only numbers exact. */
	json_seconds(&j, "seconds", rep->seconds);
	json_arr_begin(&j, "devices");
	for (i = 0; i < rep->n; i++) {
		json_obj_begin(&j, NULL);
		json_str(&j, "fqdn", rep->dev[i].fqdn);
		json_str(&j, "result", fleet_result_name(rep->dev[i].result));
		json_str(&j, "serial", rep->dev[i].serial);
		json_str(&j, "error", rep->dev[i].error);
		json_obj_end(&j);
	}
	json_arr_end(&j);
	json_obj_end(&j);
	json_finish(&j);
}

int
cmd_fleet(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hosts", required_argument, NULL, 'H' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'w' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "renew-days", required_argument, NULL, 'r' },
		{ "reissue-older-than-intermediate", no_argument, NULL, 'I' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fleet_opts fo;
	struct fleet_report rep;
	struct hosts_defaults hd;
	struct fleet_host *hosts = NULL;
	struct home *h = NULL;
	struct sgn *sgn = NULL;
	struct view v;
	const char *hosts_path = NULL, *user = NULL, *pwfile = NULL;
	size_t nhosts = 0, inflight;
	long n;
	int ch, r, json = 0, ret = EXIT_FAIL;

	memset(&fo, 0, sizeof(fo));
	memset(&rep, 0, sizeof(rep));
	memset(&v, 0, sizeof(v));
	fo.concurrency = AMTCA_FLEET_CONCURRENCY;
	fo.renew_days = AMTCA_RENEW_WINDOW_DAYS;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': hosts_path = optarg; break;
		case 'u': user = optarg; break;
		case 'w': pwfile = optarg; break;
		case 'j': json = 1; break;
		case 'I': fo.reissue_retired = 1; break;
		case 'c':
			if (cli_parse_long(optarg, 1, AMTCA_FLEET_CONCURRENCY_MAX,
			    &n) != 0)
				return usage_err("--concurrency takes 1..4096");
			fo.concurrency = (unsigned)n;
			break;
		case 'r':
			if (cli_parse_long(optarg, 0, AMTCA_DAYS_MAX, &n) != 0)
				return usage_err("--renew-days takes 0..825");
			fo.renew_days = (int)n;
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
	if (hosts_path == NULL)
		return usage_err("--hosts is required");

	signal(SIGPIPE, SIG_IGN);
	/* The signer process holds the token; this one talks to AMT. */
	if ((r = home_open_frontend(homedir, 0, &h, &sgn)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	/* The whole file is checked before any device is contacted. */
	memset(&hd, 0, sizeof(hd));
	hd.user = user;
	hd.password_file = pwfile;
	hd.policy = &h->policy;
	if ((r = hosts_load(hosts_path, &hd, &hosts, &nhosts)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	inflight = fo.concurrency < nhosts ? fo.concurrency : nhosts;
	if ((r = amtca_nofile_ensure(AMTCA_NOFILE_NEED(inflight))) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	fo.hosts = hosts;
	fo.nhosts = nhosts;
	v.t0 = amtca_now_ms();
	v.tty = !json && isatty(STDERR_FILENO);
	v.lines = !json && !v.tty;
	fo.progress = on_progress;
	fo.progress_ctx = &v;
	if ((r = fleet_run(&h->engine, &fo, &rep)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (v.tty) {
		struct fleet_progress p;

		memset(&p, 0, sizeof(p));
		p.total = rep.n;
		p.done = rep.n;
		p.counts[FLEET_FAILED] = rep.counts[FLEET_FAILED];
		draw_bar(&v, &p, 1);
	}
	if (json)
		print_json(&rep);
	else
		print_summary(&rep);
	ret = rep.counts[FLEET_FAILED] == 0 ? EXIT_OK : EXIT_FAIL;
	if (ret != EXIT_OK && !json)
		fprintf(stderr, "amtca: fleet: %zu of %zu devices failed (listed "
		    "above); fix what they say and rerun\n", rep.counts[FLEET_FAILED], rep.n);
out:
	fleet_report_clear(&rep);
	hosts_free(hosts, nhosts);
	sgn_close(sgn);
	home_free(h);
	return ret;
}
