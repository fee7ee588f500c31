/*
 * The admin API under /api/v1/ (enroll/serve/serve.h, api.h).
 *
 * Every request: a TLS client certificate (nothing else is accepted),
 * authenticated by the signer on every request (it checks the chain, the
 * recorded serial and revocation), and the admin role; then the route and
 * the method; then, for a POST, the JSON content type (415 before the body
 * is looked at: a browser cannot send that type across origins without a
 * preflight), then the body's checks (api_intake.c).  Replies are JSON
 * written with jansson; errors are srv_error()'s one-line reason.  This
 * file only parses, calls the core (signer, store, fleet engine through
 * jobs.c) and prints.
 */
#include "enroll/serve/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "ca/store.h"
#include "common/limits.h"
#include "enroll/devices.h"
#include "enroll/enroll.h"
#include "enroll/fleet.h"
#include "enroll/home.h"
#include "enroll/serve/serve.h"

#define API_PREFIX "/api/v1/"

extern const char api_openapi_json[];	/* api_openapi.c */

/* The caller of one request, once authenticated. */
struct api_call {
	struct serve *s;
	const struct srv_req *rq;
	struct srv_resp *rs;
	struct sgn_client cl;
	const char *rest;		/* the path after /api/v1/ */
};

static void
rfc3339(time_t t, char buf[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A time, or null for 0. */
static json_t *
jtime(time_t t)
{
	char buf[32];

	if (t == 0)
		return json_null();
	rfc3339(t, buf);
	return json_string(buf);
}

static json_t *
jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* Send `doc` (reference taken) with `status`. */
static void
reply(struct srv_resp *rs, int status, json_t *doc)
{
	char *body = NULL;

	if (doc == NULL || (body = json_dumps(doc, JSON_COMPACT)) == NULL) {
		json_decref(doc);
		srv_error(rs, 500, "out of memory");
		return;
	}
	json_decref(doc);
	srv_body(rs, status, "application/json", (unsigned char *)body,
	    strlen(body));
}

/* An AMTCA_E_* failure as its HTTP status with the detail. */
static void
reply_err(struct srv_resp *rs, int code)
{
	srv_error(rs, srv_status_of(code), "%s", amtca_errmsg(code));
}

static void
method_not_allowed(struct srv_resp *rs, const char *allow)
{
	srv_error(rs, 405, "method not allowed here (allowed: %s)", allow);
	(void)!srv_header(rs, "Allow", allow);
}

/* --- devices -------------------------------------------------------- */

static void
dev_str(void *ctx, const char *key, const char *val)
{
	json_object_set_new(ctx, key, jstr(val));
}

static void
dev_time(void *ctx, const char *key, time_t t, int nullable)
{
	char buf[32];

	if (nullable && t == 0)
		json_object_set_new(ctx, key, json_null());
	else {
		rfc3339(t, buf);
		json_object_set_new(ctx, key, json_string(buf));
	}
}

static void
dev_flag(void *ctx, const char *key, int val)
{
	json_object_set_new(ctx, key, val < 0 ? json_null() : json_boolean(val));
}

static json_t *
device_json(const struct device_info *v)
{
	json_t *o = json_object();
	struct device_fields f = { dev_str, dev_time, dev_flag, o };

	if (o != NULL)
		device_info_fields(v, &f);
	return o;
}

static void
get_devices(struct api_call *a, const char *fqdn)
{
	struct device_info *v = NULL;
	struct device_filter flt;
	json_t *arr = NULL, *doc = NULL;
	size_t n = 0, i;
	int r;

	memset(&flt, 0, sizeof(flt));
	flt.expiring_days = -1;
	flt.ca = &serve_home(a->s)->engine;
	if ((r = devices_list(serve_home(a->s)->state, serve_sgn(a->s), &flt,
	    &v, &n)) != 0) {
		reply_err(a->rs, r);
		goto out;
	}
	if (fqdn != NULL) {
		for (i = 0; i < n; i++)
			if (strcasecmp(v[i].d.fqdn, fqdn) == 0)
				break;
		if (i == n) {
			srv_error(a->rs, 404, "no device %.253s in the records",
			    fqdn);
			goto out;
		}
		reply(a->rs, 200, device_json(&v[i]));
		goto out;
	}
	if ((arr = json_array()) == NULL || (doc = json_object()) == NULL) {
		srv_error(a->rs, 500, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		json_array_append_new(arr, device_json(&v[i]));
	json_object_set_new(doc, "devices", arr);
	arr = NULL;
	reply(a->rs, 200, doc);
	doc = NULL;
out:
	json_decref(arr);
	json_decref(doc);
	device_infos_free(v, n);
}

/* --- certificates --------------------------------------------------- */

static json_t *
cert_json(const struct store_cert *c, time_t now)
{
	json_t *o = json_object();
	const char *status = c->status;
	const char *reason;

	if (o == NULL)
		return NULL;
	if (status != NULL && strcmp(status, "valid") == 0 && c->not_after < now)
		status = "expired";
	reason = c->status != NULL && strcmp(c->status, "revoked") == 0 ?
	    cred_reason_name(c->revoke_reason) : NULL;
	json_object_set_new(o, "serial", jstr(c->serial));
	json_object_set_new(o, "fqdn", jstr(c->fqdn));
	json_object_set_new(o, "device", jstr(c->device));
	json_object_set_new(o, "status", jstr(status));
	json_object_set_new(o, "not_before", jtime(c->not_before));
	json_object_set_new(o, "not_after", jtime(c->not_after));
	json_object_set_new(o, "issued_at", jtime(c->issued_at));
	json_object_set_new(o, "revoked_at", jtime(c->revoked_at));
	json_object_set_new(o, "revoke_reason", jstr(reason));
	json_object_set_new(o, "requester", jstr(c->requester));
	return o;
}

static const char *const cert_args[] = { "fqdn", "status", "limit", "after",
    NULL };

struct argcheck {
	const char *bad;
};

static enum MHD_Result
arg_iter(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct argcheck *ac = cls;
	size_t i;

	(void)kind;
	(void)value;
	for (i = 0; cert_args[i] != NULL; i++)
		if (strcmp(key, cert_args[i]) == 0)
			return MHD_YES;
	ac->bad = key;
	return MHD_NO;
}

static const char *
arg(const struct srv_req *rq, const char *key)
{
	const char *v;

	if (rq->conn == NULL)
		return NULL;
	v = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The length of s when it is all hex digits, else 0. */
static size_t
hex_len(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return i;
}

static int
serial_valid(const char *s)
{
	size_t n = hex_len(s);

	return n > 0 && n <= 64;
}

static void
get_certificates(struct api_call *a)
{
	struct sgn_cert_query q;
	struct store_cert *c = NULL;
	struct argcheck ac = { NULL };
	json_t *arr = NULL, *doc = NULL;
	const char *lim;
	char *end = NULL;
	size_t n = 0, i, limit = AMTCA_API_PAGE_DEFAULT;
	time_t now = time(NULL);
	long v;
	int r;

	if (a->rq->conn != NULL)
		MHD_get_connection_values(a->rq->conn, MHD_GET_ARGUMENT_KIND,
		    arg_iter, &ac);
	if (ac.bad != NULL) {
		srv_error(a->rs, 400, "unknown query parameter \"%.40s\" (fqdn, "
		    "status, limit, after)", ac.bad);
		goto out;
	}
	memset(&q, 0, sizeof(q));
	q.fqdn = arg(a->rq, "fqdn");
	q.status = arg(a->rq, "status");
	q.after = arg(a->rq, "after");
	if (q.fqdn != NULL && strlen(q.fqdn) > AMTCA_FQDN_MAX) {
		srv_error(a->rs, 400, "fqdn: longer than %d", AMTCA_FQDN_MAX);
		goto out;
	}
	if (q.status != NULL && strcmp(q.status, "valid") != 0 &&
	    strcmp(q.status, "revoked") != 0 && strcmp(q.status, "expired") != 0) {
		srv_error(a->rs, 400, "status: valid, revoked or expired");
		goto out;
	}
	if (q.after != NULL && !serial_valid(q.after)) {
		srv_error(a->rs, 400, "after: a serial (hex) from \"next\"");
		goto out;
	}
	if ((lim = arg(a->rq, "limit")) != NULL) {
		v = strtol(lim, &end, 10);
		if (end == lim || *end != '\0' || v < 1 || v > AMTCA_API_PAGE_MAX) {
			srv_error(a->rs, 400, "limit: 1 to %d", AMTCA_API_PAGE_MAX);
			goto out;
		}
		limit = (size_t)v;
	}
	/* One more than the page: whether there is a next one. */
	q.limit = limit + 1;
	if ((r = sgn_cert_list(serve_sgn(a->s), &q, &c, &n)) != 0) {
		reply_err(a->rs, r);
		goto out;
	}
	if ((arr = json_array()) == NULL || (doc = json_object()) == NULL) {
		srv_error(a->rs, 500, "out of memory");
		goto out;
	}
	for (i = 0; i < n && i < limit; i++)
		json_array_append_new(arr, cert_json(&c[i], now));
	json_object_set_new(doc, "certificates", arr);
	arr = NULL;
	json_object_set_new(doc, "next", n > limit ? jstr(c[limit - 1].serial) :
	    json_null());
	reply(a->rs, 200, doc);
	doc = NULL;
out:
	json_decref(arr);
	json_decref(doc);
	store_certs_free(c, n);
}

static void
post_revoke(struct api_call *a, const char *serial)
{
	struct store_cert *c = NULL;
	json_t *doc = NULL;
	int r, reason = -1, was = 0;

	if ((r = api_revoke_parse(a->rq->body, a->rq->bodylen, &reason)) != 0) {
		reply_err(a->rs, r);
		goto out;
	}
	/* The signer decides; it records the admin as the revoker. */
	if ((r = sgn_revoke(serve_sgn(a->s), &a->rq->who, serial, reason, &c,
	    &was)) != 0) {
		reply_err(a->rs, r);
		goto out;
	}
	/* A compromised bound leaf: the device is left alone from now on. */
	if (c != NULL && (r = cred_note_revocation(serve_home(a->s)->state,
	    c)) != 0)
		serve_log(a->s, "api_error", "client=%s serial=%s error=\"device "
		    "state not updated: %s\"", a->cl.name, serial,
		    amtca_errmsg(r));
	serve_log(a->s, "revoke", "client=%s serial=%s reason=%s was=%d",
	    a->cl.name, serial, cred_reason_name(reason), was);
	if ((doc = c != NULL ? cert_json(c, time(NULL)) : json_object()) == NULL) {
		srv_error(a->rs, 500, "out of memory");
		goto out;
	}
	json_object_set_new(doc, "already_revoked", json_boolean(was));
	reply(a->rs, 200, doc);
	doc = NULL;
out:
	json_decref(doc);
	store_cert_free(c);
}

/* --- jobs ----------------------------------------------------------- */

static const char *const job_results[] = { "pending", "enrolled", "renewed",
    "unchanged", "failed", NULL };

static int
id_valid(const char *s)
{
	return hex_len(s) == 32;
}

static json_t *
job_json(struct store *st, const struct store_job *j, int with_devices)
{
	struct store_job_device *jd = NULL;
	json_t *o = NULL, *counts = NULL, *devs = NULL, *d;
	size_t njd = 0, i, k, cnt[6];

	memset(cnt, 0, sizeof(cnt));
	if (store_job_device_list(st, j->id, &jd, &njd) != 0 ||
	    (o = json_object()) == NULL || (counts = json_object()) == NULL ||
	    (with_devices && (devs = json_array()) == NULL))
		goto fail;
	for (i = 0; i < njd; i++) {
		for (k = 0; job_results[k] != NULL; k++)
			if (jd[i].result != NULL &&
			    strcmp(jd[i].result, job_results[k]) == 0)
				break;
		cnt[k]++;		/* k == 5: unknown, not shown */
		if (!with_devices)
			continue;
		if ((d = json_object()) == NULL)
			goto fail;
		json_object_set_new(d, "fqdn", jstr(jd[i].fqdn));
		json_object_set_new(d, "result", jstr(jd[i].result));
		json_object_set_new(d, "serial", jstr(jd[i].serial));
		json_object_set_new(d, "error", jstr(jd[i].error));
		json_object_set_new(d, "attempts", json_integer(jd[i].attempts));
		json_object_set_new(d, "updated_at", jtime(jd[i].updated_at));
		json_array_append_new(devs, d);
	}
	/* Rows not written yet (a job stored half-way) are pending. */
	if (j->total > njd)
		cnt[0] += j->total - njd;
	for (k = 0; job_results[k] != NULL; k++)
		json_object_set_new(counts, job_results[k],
		    json_integer((json_int_t)cnt[k]));
	json_object_set_new(o, "id", jstr(j->id));
	json_object_set_new(o, "state", jstr(j->state));
	json_object_set_new(o, "cancelling", json_boolean(
	    strcmp(j->state, "running") == 0 && api_job_cancelling(j->id)));
	json_object_set_new(o, "kind", json_string(j->hosts_digest != NULL &&
	    strncmp(j->hosts_digest, "reconcile:", 10) == 0 ? "reconcile" :
	    j->hosts_digest != NULL && strncmp(j->hosts_digest, "api:", 4) == 0 ?
	    "api" : "fleet"));
	json_object_set_new(o, "reissue_older_than_intermediate", json_boolean(
	    api_job_reissues(j->hosts_digest)));
	json_object_set_new(o, "created_at", jtime(j->created_at));
	json_object_set_new(o, "finished_at", jtime(j->finished_at));
	json_object_set_new(o, "total", json_integer(j->total));
	json_object_set_new(o, "counts", counts);
	counts = NULL;
	if (with_devices) {
		json_object_set_new(o, "devices", devs);
		devs = NULL;
	}
	store_job_devices_free(jd, njd);
	return o;
fail:
	json_decref(o);
	json_decref(counts);
	json_decref(devs);
	store_job_devices_free(jd, njd);
	return NULL;
}

static void
get_job(struct api_call *a, const char *id)
{
	struct store *st = serve_home(a->s)->state;
	struct store_job *j = NULL;
	int r;

	if ((r = store_job_get(st, id, &j)) != 0) {
		if (r == AMTCA_E_NOT_FOUND)
			srv_error(a->rs, 404, "no job %s", id);
		else
			reply_err(a->rs, r);
		return;
	}
	reply(a->rs, 200, job_json(st, j, 1));
	store_job_free(j);
}

static void
get_jobs(struct api_call *a)
{
	struct store *st = serve_home(a->s)->state;
	struct store_job *j = NULL;
	json_t *arr = NULL, *doc = NULL, *o;
	size_t n = 0, i;
	int r;

	if ((r = store_job_list(st, &j, &n)) != 0) {
		reply_err(a->rs, r);
		goto out;
	}
	if ((arr = json_array()) == NULL || (doc = json_object()) == NULL) {
		srv_error(a->rs, 500, "out of memory");
		goto out;
	}
	/* Newest first. */
	for (i = 0; i < n && i < AMTCA_API_JOBS_LIST_MAX; i++) {
		if ((o = job_json(st, &j[i], 0)) == NULL) {
			srv_error(a->rs, 500, "out of memory");
			goto out;
		}
		json_array_append_new(arr, o);
	}
	json_object_set_new(doc, "jobs", arr);
	arr = NULL;
	reply(a->rs, 200, doc);
	doc = NULL;
out:
	json_decref(arr);
	json_decref(doc);
	store_jobs_free(j, n);
}

/*
 * The audit entry of a job change (docs/audit.md): the signer appends it
 * naming the admin it authenticates again from the request's own chain.
 * The job lives in the operational state, so the entry follows its
 * change; a failure to append is logged, never the request's answer.
 */
static void
api_audit(struct api_call *a, const char *action, const char *id, size_t n,
    unsigned conc)
{
	char detail[64] = "";
	int r;

	if (strcmp(action, "job.create") == 0)
		snprintf(detail, sizeof(detail), "devices=%zu concurrency=%u",
		    n, conc);
	else
		snprintf(detail, sizeof(detail), "cancelling=%u", conc);
	if ((r = sgn_audit_note(serve_sgn(a->s), &a->rq->who, action, id,
	    detail)) != 0)
		serve_log(a->s, "audit_error", "client=%s action=%s job=%s "
		    "error=\"%s\"", a->cl.name, action, id, amtca_errmsg(r));
}

static void
post_job(struct api_call *a)
{
	struct api_job_req jr;
	json_t *doc = NULL;
	char *id = NULL, *loc = NULL;
	int r;

	memset(&jr, 0, sizeof(jr));
	if ((r = api_job_parse(a->rq->body, a->rq->bodylen,
	    &serve_home(a->s)->policy, &jr)) != 0) {
		reply_err(a->rs, r);
		goto out;
	}
	if ((r = api_job_submit(a->s, jr.hosts, jr.n, jr.concurrency,
	    jr.reissue, &id)) != 0) {
		reply_err(a->rs, r);
		goto out;
	}
	serve_log(a->s, "job_submit", "client=%s job=%s devices=%zu "
	    "concurrency=%u%s", a->cl.name, id, jr.n, jr.concurrency,
	    jr.reissue ? " reissue=1" : "");
	api_audit(a, "job.create", id, jr.n, jr.concurrency);
	if ((doc = json_object()) == NULL ||
	    asprintf(&loc, API_PREFIX "jobs/%s", id) == -1) {
		loc = NULL;
		srv_error(a->rs, 500, "out of memory");
		goto out;
	}
	json_object_set_new(doc, "id", json_string(id));
	json_object_set_new(doc, "devices", json_integer((json_int_t)jr.n));
	json_object_set_new(doc, "concurrency", json_integer(jr.concurrency));
	json_object_set_new(doc, "reissue_older_than_intermediate",
	    json_boolean(jr.reissue));
	reply(a->rs, 202, doc);
	doc = NULL;
	(void)!srv_header(a->rs, "Location", loc);
out:
	json_decref(doc);
	free(loc);
	free(id);
	api_job_req_clear(&jr);
}

static void
delete_job(struct api_call *a, const char *id)
{
	int r, cancelling = 0;

	if ((r = api_job_cancel(a->s, id, &cancelling)) != 0) {
		if (r == AMTCA_E_NOT_FOUND)
			srv_error(a->rs, 404, "no job %s", id);
		else
			reply_err(a->rs, r);
		return;
	}
	serve_log(a->s, "job_delete", "client=%s job=%s cancelling=%d",
	    a->cl.name, id, cancelling);
	api_audit(a, "job.cancel", id, 0, (unsigned)cancelling);
	/* The job as it is now: "cancelled", or still stopping, or done. */
	get_job(a, id);
	if (a->rs->status == 200 && cancelling)
		a->rs->status = 202;
}

/* --- routing -------------------------------------------------------- */

static int
is(const struct srv_req *rq, const char *m)
{
	return strcmp(rq->method, m) == 0;
}

/* POSTs: the JSON type first, before anything reads the body. */
static int
json_type_ok(struct api_call *a)
{
	if (api_ctype_is_json(a->rq->content_type))
		return 1;
	srv_error(a->rs, 415, "a POST here must be Content-Type: "
	    "application/json");
	return 0;
}

static void
route(struct api_call *a)
{
	const char *p = a->rest, *slash;
	char seg[AMTCA_FQDN_MAX + 2];
	size_t len;

	if (strcmp(p, "openapi.json") == 0) {
		if (!is(a->rq, "GET") && !is(a->rq, "HEAD")) {
			method_not_allowed(a->rs, "GET");
			return;
		}
		srv_body(a->rs, 200, "application/json",
		    (unsigned char *)strdup(api_openapi_json),
		    strlen(api_openapi_json));
		if (a->rs->body == NULL)
			srv_error(a->rs, 500, "out of memory");
		return;
	}
	if (strcmp(p, "jobs") == 0) {
		if (is(a->rq, "GET"))
			get_jobs(a);
		else if (is(a->rq, "POST")) {
			if (json_type_ok(a))
				post_job(a);
		} else
			method_not_allowed(a->rs, "GET, POST");
		return;
	}
	if (strcmp(p, "devices") == 0) {
		if (is(a->rq, "GET"))
			get_devices(a, NULL);
		else
			method_not_allowed(a->rs, "GET");
		return;
	}
	if (strcmp(p, "certificates") == 0) {
		if (is(a->rq, "GET"))
			get_certificates(a);
		else
			method_not_allowed(a->rs, "GET");
		return;
	}
	/* {collection}/{one}[/{action}] */
	if ((slash = strchr(p, '/')) == NULL)
		goto notfound;
	len = strcspn(slash + 1, "/");
	if (len == 0 || len >= sizeof(seg))
		goto notfound;
	memcpy(seg, slash + 1, len);
	seg[len] = '\0';
	if (strncmp(p, "jobs/", 5) == 0 && slash[1 + len] == '\0') {
		if (!id_valid(seg))
			goto notfound;
		if (is(a->rq, "GET"))
			get_job(a, seg);
		else if (is(a->rq, "DELETE"))
			delete_job(a, seg);
		else
			method_not_allowed(a->rs, "GET, DELETE");
		return;
	}
	if (strncmp(p, "devices/", 8) == 0 && slash[1 + len] == '\0') {
		if (is(a->rq, "GET"))
			get_devices(a, seg);
		else
			method_not_allowed(a->rs, "GET");
		return;
	}
	if (strncmp(p, "certificates/", 13) == 0 &&
	    strcmp(slash + 1 + len, "/revoke") == 0) {
		if (!serial_valid(seg))
			goto notfound;
		if (!is(a->rq, "POST"))
			method_not_allowed(a->rs, "POST");
		else if (json_type_ok(a))
			post_revoke(a, seg);
		return;
	}
notfound:
	srv_error(a->rs, 404, "no such API path (see " API_PREFIX
	    "openapi.json)");
}

/* The path for a log line: what a client sent, never a line break. */
static void
log_path(const char *in, char out[128])
{
	size_t i;

	for (i = 0; in != NULL && in[i] != '\0' && i < 127; i++)
		out[i] = (in[i] >= 'a' && in[i] <= 'z') ||
		    (in[i] >= 'A' && in[i] <= 'Z') ||
		    (in[i] >= '0' && in[i] <= '9') || in[i] == '/' ||
		    in[i] == '.' || in[i] == '-' || in[i] == '_' ? in[i] : '?';
	out[i] = '\0';
}

void
api_handle(struct serve *s, const struct srv_req *rq, struct srv_resp *rs)
{
	struct api_call a;
	char lp[128];
	int r;

	memset(&a, 0, sizeof(a));
	a.s = s;
	a.rq = rq;
	a.rs = rs;
	if (rq->listener != SRV_HTTPS || rq->path == NULL ||
	    strncmp(rq->path, API_PREFIX, strlen(API_PREFIX)) != 0) {
		srv_error(rs, 404, "not found");
		goto out;
	}
	a.rest = rq->path + strlen(API_PREFIX);
	/* A client certificate, and nothing else, authenticates here. */
	if (rq->anonymous || rq->who.kind != SGN_WHO_CERT || rq->who.ncert == 0) {
		srv_error(rs, 401, "the admin API needs a TLS client certificate "
		    "from `amtca admin add`");
		goto out;
	}
	/* Every request: the signer checks the chain, serial, revocation. */
	if ((r = sgn_auth(serve_sgn(s), &rq->who, &a.cl)) != 0) {
		srv_error(rs, srv_status_of(r), "%s", r == AMTCA_E_RATE ?
		    "too many requests; try again later" :
		    "client certificate not accepted");
		goto out;
	}
	if ((a.cl.roles & SGN_ROLE_ADMIN) == 0) {
		srv_error(rs, 403, "client %s is not an admin", a.cl.name);
		goto out;
	}
	route(&a);
out:
	log_path(rq->path, lp);
	serve_log(s, "api", "client=%s peer=%s method=%s path=%s status=%d",
	    a.cl.name != NULL ? a.cl.name : "-", rq->peer != NULL ? rq->peer :
	    "-", rq->method, lp, rs->status);
	sgn_client_clear(&a.cl);
}
