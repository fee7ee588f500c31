/*
 * enroll/serve/api.h: the admin API's internals (not a public header).
 *
 *   api.c         routing under /api/v1/, authentication, the handlers,
 *                 replies (jansson), openapi.json
 *   api_intake.c  request bodies: the JSON checks every POST goes through
 *                 before anything is looked up or stored (unit-tested on
 *                 its own: tests/unit/serve/test_api_intake.c)
 *   jobs.c        the job runner: jobs stored in the operational state,
 *                 run one at a time by the fleet engine on a thread of the
 *                 service, cancelled, stopped, resumed after a restart
 */
#ifndef AMTCA_ENROLL_SERVE_API_H
#define AMTCA_ENROLL_SERVE_API_H

#include <stddef.h>

#include "ca/ca.h"
#include "common/err.h"
#include "enroll/hosts.h"

struct serve;

/* --- api_intake.c ---------------------------------------------------- */

/*
 * Is `ctype` (a Content-Type header, NULL when absent) application/json,
 * with optional parameters ("; charset=utf-8")?  Case-insensitive.
 */
int api_ctype_is_json(const char *ctype);

/*
 * The deepest nesting of arrays and objects in `len` bytes of JSON text
 * (strings and escapes skipped), counted before handing the text to the
 * parser; -1 when it exceeds `max` (the scan stops there).
 */
int api_json_depth(const unsigned char *buf, size_t len, int max);

/*
 * A job as POSTed: {"devices":[{...}], "concurrency":N,
 * "reissue_older_than_intermediate":BOOL}.
 */
struct api_job_req {
	struct fleet_host *hosts;	/* credential set, password_file NULL */
	size_t n;
	unsigned concurrency;		/* clamped to AMTCA_API_CONCURRENCY_MAX */
	int reissue;			/* move devices under a retired
					   intermediate onto the current one
					   (fleet_opts.reissue_retired) */
};

/*
 * Parse and check a POST /api/v1/jobs body: an object with "devices" (1 to
 * AMTCA_API_JOB_DEVICES_MAX objects with "fqdn" and "credential",
 * optional "address" (numeric IP), "port", "tls_port" (1-65535),
 * "tls_pin_sha256" (64 hex digits)), an optional "concurrency" (>= 1) and
 * an optional boolean "reissue_older_than_intermediate" (false).
 * Unknown fields, wrong types, a duplicate FQDN, an FQDN outside `policy`
 * (NULL: syntax only), a credential name that is not 1 to
 * AMTCA_API_CRED_NAME_MAX of [A-Za-z0-9._-]: AMTCA_E_USAGE with a detail
 * naming the field (HTTP 400).  Clear with api_job_req_clear().
 */
int api_job_parse(const unsigned char *body, size_t len,
    const struct ca_policy *policy, struct api_job_req *out) AMTCA_WUR;
void api_job_req_clear(struct api_job_req *r);

/* POST .../revoke: {"reason":"keyCompromise"} into a CRLReason. */
int api_revoke_parse(const unsigned char *body, size_t len,
    int *reason) AMTCA_WUR;

/* A credential's name: 1..AMTCA_API_CRED_NAME_MAX of [A-Za-z0-9._-]. */
int api_cred_name_valid(const char *s);

/* --- jobs.c ---------------------------------------------------------- */

/*
 * Store a job (state "running", every device "pending" in it, each
 * device's record naming its credential as cred_ref "credential:NAME")
 * and queue it; `reissue`: the job moves devices onto the current
 * intermediate (recorded with it, kept when it is resumed).  *id is
 * malloc'd.  AMTCA_E_RATE when AMTCA_API_QUEUE_MAX
 * jobs wait already; AMTCA_E_USAGE once the service is stopping.
 */
int api_job_submit(struct serve *s, const struct fleet_host *hosts, size_t n,
    unsigned concurrency, int reissue, char **id) AMTCA_WUR;

/*
 * What a stored job's kind field (hosts_digest) says about how it runs:
 * whether it moves devices onto the current intermediate (reconcile jobs
 * always do; API jobs when they asked).  `amtca fleet` jobs record a hash
 * only: 0.
 */
int api_job_reissues(const char *hosts_digest);

/*
 * Cancel a job: one still waiting ends "cancelled" at once; the running
 * one is told to stop (no further device; AMT calls in flight aborted
 * after AMTCA_API_CANCEL_GRACE_MS) and ends "cancelled" when its devices
 * in flight have stopped.  A finished job is left as it is.  *cancelling
 * says the job is still stopping.  AMTCA_E_NOT_FOUND for an unknown id.
 */
int api_job_cancel(struct serve *s, const char *id, int *cancelling) AMTCA_WUR;

/* Is job `id` the one running and told to cancel? */
int api_job_cancelling(const char *id);

#endif
