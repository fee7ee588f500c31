/*
 * The thread-model measurement behind amtca fleet's concurrency choice
 * (docs/BENCHMARKS.md): N threads in one process, each running the engine's
 * enroll_run() for one amtsim device, with a given thread stack size.  Not a
 * test (run by scripts/bench-fleet.sh --threads-only); built by the tests/
 * pattern rule: make build/tests/bench/threads.
 *
 *   threads HOME PASSWORD_FILE N STACK_KB ADDRESS_BASE FQDN_PATTERN [FIRST]
 *
 * STACK_KB 0 keeps the default stack (ulimit -s).  BENCH_PARSE_GATE=N in
 * the environment sets the parse gate's permits (amt/internal.h), to
 * measure what the gate saves.  Device i (from FIRST,
 * default 0) is FQDN_PATTERN(i) at ADDRESS_BASE + i.  Prints, last:
 *   threads=N stack_kb=K wall_s= cpu_ms_per_device= peak_rss_mb=
 *   peak_vm_mb= failed= parse_peak=
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "amt/amt.h"
#include "amt/internal.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/enroll.h"
#include "enroll/home.h"

struct job {
	pthread_t th;
	const struct enroll_ctx *ctx;
	const char *password;
	char fqdn[256];
	char addr[INET_ADDRSTRLEN];
	int rc;
};

static void *
job_main(void *arg)
{
	struct job *j = arg;
	struct enroll_opts o;
	struct enroll_result res;

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	o.host = j->fqdn;
	o.address = j->addr;
	o.user = "admin";
	o.password = j->password;
	o.renew_days = AMTCA_RENEW_WINDOW_DAYS;
	j->rc = enroll_run(j->ctx, &o, &res);
	if (j->rc != 0)
		fprintf(stderr, "%s: %s\n", j->fqdn, amtca_errmsg(j->rc));
	enroll_result_clear(&res);
	return NULL;
}

/* A "Vm...:" line of /proc/self/status in KB, e.g. "VmHWM" (peak RSS). */
static long
vm_kb(const char *name)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(name);
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, n) == 0 && line[n] == ':') {
			char *end;

			kb = strtol(line + n + 1, &end, 10);
			if (end == line + n + 1)
				kb = -1;
			break;
		}
	fclose(f);
	return kb;
}

int
main(int argc, char **argv)
{
	struct home *h = NULL;
	struct job *jobs = NULL;
	struct amt_parse_gate g;
	struct rusage ru;
	pthread_attr_t attr;
	struct in_addr base;
	char *password = NULL;
	long n, stack_kb, first = 0, i, failed = 0, gate = 0;
	const char *gate_env;
	long long t0, t1;
	double cpu_ms;
	int r, ret = 1;

	if (argc < 7 || amtca_parse_long(argv[3], 1, 4096, &n) != 0 ||
	    amtca_parse_long(argv[4], 0, 65536, &stack_kb) != 0 ||
	    inet_pton(AF_INET, argv[5], &base) != 1 ||
	    (argc > 7 && amtca_parse_long(argv[7], 0, 1 << 20, &first) != 0)) {
		fprintf(stderr, "usage: threads HOME PASSWORD_FILE N STACK_KB "
		    "ADDRESS_BASE FQDN_PATTERN [FIRST]\n");
		return 2;
	}
	if ((r = amtca_nofile_ensure(AMTCA_NOFILE_NEED(n))) != 0 ||
	    (r = amt_global_init()) != 0 ||
	    (r = home_open(argv[1], HOME_STORE | HOME_SIGNER, &h)) != 0 ||
	    (r = amtca_secret_read(argv[2], &password)) != 0) {
		fprintf(stderr, "threads: %s\n", amtca_errmsg(r));
		goto out;
	}
	if ((jobs = calloc((size_t)n, sizeof(*jobs))) == NULL)
		goto out;
	pthread_attr_init(&attr);
	if (stack_kb > 0 &&
	    pthread_attr_setstacksize(&attr, (size_t)stack_kb * 1024) != 0) {
		fprintf(stderr, "threads: stack size %ld KB refused\n", stack_kb);
		goto out;
	}
	/* BENCH_PARSE_GATE=N: N permits instead of the default, to compare. */
	if ((gate_env = getenv("BENCH_PARSE_GATE")) != NULL &&
	    amtca_parse_long(gate_env, 0, 4096, &gate) != 0) {
		fprintf(stderr, "threads: BENCH_PARSE_GATE is 0..4096\n");
		goto out;
	}
	amt_parse_gate_set((unsigned)gate);
	t0 = amtca_now_ms();
	for (i = 0; i < n; i++) {
		struct in_addr a;

		jobs[i].ctx = &h->engine;
		jobs[i].password = password;
		snprintf(jobs[i].fqdn, sizeof(jobs[i].fqdn), argv[6],
		    (int)(first + i));
		a.s_addr = htonl(ntohl(base.s_addr) + (uint32_t)(first + i));
		inet_ntop(AF_INET, &a, jobs[i].addr, sizeof(jobs[i].addr));
		if (pthread_create(&jobs[i].th, &attr, job_main, &jobs[i]) != 0) {
			fprintf(stderr, "threads: pthread_create %ld failed\n", i);
			n = i;
			failed++;
			break;
		}
	}
	for (i = 0; i < n; i++) {
		pthread_join(jobs[i].th, NULL);
		if (jobs[i].rc != 0)
			failed++;
	}
	t1 = amtca_now_ms();
	pthread_attr_destroy(&attr);
	getrusage(RUSAGE_SELF, &ru);
	cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
	amt_parse_gate_get(&g);
	printf("threads=%ld stack_kb=%ld wall_s=%.2f cpu_ms_per_device=%.1f "
	    "peak_rss_mb=%.1f peak_vm_mb=%.0f failed=%ld parse_peak=%u\n", n,
	    stack_kb, (t1 - t0) / 1000.0, cpu_ms / (double)n,
	    vm_kb("VmHWM") / 1024.0, vm_kb("VmPeak") / 1024.0, failed, g.peak);
	ret = failed != 0;
out:
	amtca_secret_free(password);
	free(jobs);
	home_free(h);
	return ret;
}
