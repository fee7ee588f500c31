/*
 * enroll/fleet.c: the job engine.  One process, one CA home (one PKCS#11
 * session pool, one store), a bounded number of devices in flight.  Each
 * device is reconciled by enroll_run() (enroll/enroll.h), which starts
 * from the device's real state, so this file adds only what a fleet needs:
 * scheduling, retries of transient failures, per-device credentials read
 * at the device's turn, the auth_failed rule, and the job's record in the
 * store so a killed run can be continued.  Core: no front end's types;
 * nothing here prints.
 *
 * Concurrency model: a pool of min(concurrency, devices) threads, each
 * taking the next device and running enroll_run() for it (a device's
 * calls are sequential anyway; the work in flight is waiting on AMT).
 * Thread stacks are AMTCA_FLEET_STACK bytes.  Measurements and the reasons
 * are in docs/enroll.md.
 */
#ifndef AMTCA_ENROLL_FLEET_H
#define AMTCA_ENROLL_FLEET_H

#include <stdatomic.h>
#include <stddef.h>

#include "common/err.h"
#include "enroll/enroll.h"
#include "enroll/hosts.h"

/* What became of one device (the contract's "result"). */
enum fleet_result {
	FLEET_ENROLLED = 0,
	FLEET_RENEWED,
	FLEET_UNCHANGED,
	FLEET_FAILED,
	FLEET_NRESULTS
};

/* "enrolled", "renewed", "unchanged", "failed". */
const char *fleet_result_name(enum fleet_result r);

struct fleet_outcome {
	char *fqdn;
	enum fleet_result result;
	char *serial;			/* the bound leaf, or NULL */
	char *error;			/* one line, or NULL */
	int attempts;			/* enroll_run() calls this run */
	int carried;			/* finished by an earlier, interrupted
					   run of the same job: not contacted */
	int skipped;			/* not started: the run was stopped
					   (fleet_stop) before its turn */
};

/* Counts for a progress display; what changed is `last` (or NULL). */
struct fleet_progress {
	size_t total;
	size_t done;			/* finished, any result */
	size_t in_flight;
	size_t counts[FLEET_NRESULTS];
	const struct fleet_outcome *last;	/* the device just finished */
};

/*
 * Stopping a run from another thread (the service's DELETE and SIGTERM).
 * Set `stop` to FLEET_STOP_CANCEL or FLEET_STOP_SHUTDOWN: workers take no
 * further device and make no further retry.  `abort_at_ms` (amtca_now_ms()
 * clock; 0: never) bounds the devices in flight: once it passes, their AMT
 * calls and the engine's waits fail at once (enroll_opts.abort_at_ms), and
 * the engine records the device as it does for any failure, so the next
 * run reconciles it.  CANCEL ends the job "cancelled"; SHUTDOWN leaves it
 * "running", so that the next fleet_run() of it continues it.
 */
enum { FLEET_RUN = 0, FLEET_STOP_CANCEL, FLEET_STOP_SHUTDOWN };
struct fleet_stop {
	atomic_int stop;
	atomic_llong abort_at_ms;
};

/*
 * A sealed credential for a host with `credential` set, fetched at the
 * device's turn before each attempt: *user malloc'd, *password released
 * with amtca_secret_free().  `stamp`: what an auth_failed is recorded
 * against for that credential (malloc'd; it changes when the credential is
 * replaced), or NULL for "credential:NAME".
 */
typedef int (*fleet_cred_fn)(void *ctx, const char *credential,
    const char *fqdn, char **user, char **password);
typedef int (*fleet_stamp_fn)(void *ctx, const char *credential, char **stamp);

struct fleet_opts {
	const struct fleet_host *hosts;	/* from hosts_load() */
	size_t nhosts;
	unsigned concurrency;		/* 0: AMTCA_FLEET_CONCURRENCY */
	int renew_days;			/* renewal window */
	int tries;			/* 0: AMTCA_FLEET_TRIES; per device */
	long backoff_ms;		/* 0: AMTCA_FLEET_BACKOFF_MS; first
					   retry's base delay, doubled each
					   time, plus jitter up to as much */
	long tls_wait_ms;		/* passed to enroll_run (0: default) */
	/*
	 * Called with the engine's counters whenever a device starts or
	 * finishes, serialised (never two at once), from worker threads.
	 */
	void (*progress)(void *ctx, const struct fleet_progress *p);
	void *progress_ctx;
	/* Optional. */
	const char *job_id;		/* run (or continue) this job, which
					   the caller stored beforehand with
					   its devices; NULL: find the
					   unfinished job with the same hosts
					   or make a new one */
	struct fleet_stop *stop;	/* NULL: runs to the end */
	fleet_cred_fn cred_get;		/* for hosts with `credential` */
	fleet_stamp_fn cred_stamp;	/* NULL: "credential:NAME" */
	void *cred_ctx;
	/*
	 * Claim mode (the service's nodes): with job_id, take the devices one
	 * by one with store_job_claim() as `claim_owner` instead of walking
	 * `hosts` (which must hold every device of the job), so that every
	 * process running the same job shares its devices.  While the run
	 * lasts, a thread renews this owner's claims every third of
	 * claim_ttl_s (0: AMTCA_CLAIM_TTL_S) and watches the job's row: a job
	 * cancelled anywhere stops here as by FLEET_STOP_CANCEL (`stop` must
	 * be set).  A run stopped by FLEET_STOP_SHUTDOWN releases its claims;
	 * a run that ends finishes the job with store_job_finish(), which
	 * only the process finishing its last device does; a job another
	 * process already ended (done or cancelled) is left as it ended.
	 */
	const char *claim_owner;
	int claim_ttl_s;
	/* Optional, claim mode: a device claimed (`prev`: the owner whose
	 * lapsed claim was taken over, or NULL), from worker threads. */
	void (*on_claim)(void *ctx, const char *fqdn, const char *prev);
};

struct fleet_report {
	char *job_id;
	int resumed;			/* continued an interrupted job */
	int stopped;			/* FLEET_STOP_* seen (0: ran to the end);
					   skipped devices are not counted */
	struct fleet_outcome *dev;	/* in hosts order */
	size_t n;
	size_t counts[FLEET_NRESULTS];
	double seconds;
	size_t claimed;			/* claim mode: devices this run took */
	int finished;			/* claim mode: this run marked the job
					   done */
};

/*
 * Reconcile every host.  A job with the same hosts list that an earlier
 * run left unfinished (killed, even by SIGKILL) is continued: its finished
 * devices keep their results and are not contacted again; every other
 * device is reconciled.  Returns 0 when the job ran (see report->counts
 * for how each device ended) or a negative AMTCA_E_* code when it could
 * not (store, threads); the report is then still cleared safely.
 * Release with fleet_report_clear().
 */
int fleet_run(const struct enroll_ctx *c, const struct fleet_opts *o,
    struct fleet_report *report) AMTCA_WUR;
void fleet_report_clear(struct fleet_report *r);

/* Is this enroll_run() failure worth another try (connection refused or
 * reset, timeouts, AMT busy)?  Authentication failures never are. */
int fleet_transient(int code);

/*
 * "dev:ino:size:mtime" of a password file: what auth_failed is recorded
 * against (never the password or a hash of it).  *out is malloc'd.
 */
int fleet_cred_stamp(const char *path, char **out) AMTCA_WUR;

#endif
