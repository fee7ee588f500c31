/*
 * enroll/serve/status.c: the status listener (loopback or a Unix socket
 * by default; read-only, anonymous, never a secret).
 *
 *   GET /         one server-rendered HTML page, no external assets, no
 *                 script: devices by state, certificates expiring within
 *                 AMTCA_STATUS_EXPIRY_DAYS days, recent failures, the
 *                 current job's progress, links to the chain
 *   GET /metrics  Prometheus text format 0.0.4
 *
 * Devices and jobs come from the operational state (h->state), the
 * certificates from the signer (sgn_cert_list).  Everything that comes
 * from a record is HTML-escaped.  The publication paths (/chain.pem, ...)
 * are served here too, so that the page's links work.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/store.h"
#include "common/limits.h"
#include "enroll/devices.h"
#include "enroll/home.h"
#include "enroll/serve/serve.h"

#define AMTCA_STATUS_EXPIRY_DAYS 30
#define STATUS_PAGE_MAX   (4 * 1024 * 1024)	/* the page or the metrics */
#define STATUS_ROWS_MAX   50			/* rows per table */

struct buf {
	char *p;
	size_t len, cap;
	int err;
};

static void
bprintf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	size_t need;
	char *np;

	if (b->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = 1;
		return;
	}
	need = b->len + (size_t)n + 1;
	if (need > STATUS_PAGE_MAX) {
		b->err = 1;
		return;
	}
	if (need > b->cap) {
		size_t nc = b->cap == 0 ? 8192 : b->cap;

		while (nc < need)
			nc *= 2;
		if ((np = realloc(b->p, nc)) == NULL) {
			b->err = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* HTML text or attribute value from a record. */
static void
besc(struct buf *b, const char *s)
{
	if (s == NULL) {
		bprintf(b, "-");
		return;
	}
	for (; *s != '\0'; s++)
		switch (*s) {
		case '&': bprintf(b, "&amp;"); break;
		case '<': bprintf(b, "&lt;"); break;
		case '>': bprintf(b, "&gt;"); break;
		case '"': bprintf(b, "&quot;"); break;
		case '\'': bprintf(b, "&#39;"); break;
		default:
			if ((unsigned char)*s < 0x20)
				bprintf(b, "?");
			else
				bprintf(b, "%c", *s);
		}
}

static void
fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "-");
	else
		strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm);
}

/* What both the page and the metrics show, read once per request. */
struct snap {
	struct device_info *dev;
	size_t ndev;
	size_t by_state[16];		/* index in device_states[] */
	size_t nstates;
	struct store_cert *certs;	/* every certificate, no DER */
	size_t ncert;
	size_t valid, revoked, expired;
	time_t earliest;		/* of the valid ones; 0 none */
	struct store_job *job;		/* the current (or last) job */
	size_t jcounts[5];		/* pending enrolled renewed unchanged
					   failed */
	size_t failures;		/* devices failed or auth_failed */
	time_t now;
};

static const char *const job_results[] = {
	"pending", "enrolled", "renewed", "unchanged", "failed"
};

static void
snap_free(struct snap *sn)
{
	device_infos_free(sn->dev, sn->ndev);
	store_certs_free(sn->certs, sn->ncert);
	store_job_free(sn->job);
	memset(sn, 0, sizeof(*sn));
}

static int
snap_take(struct serve *s, struct snap *sn)
{
	struct home *h = serve_home(s);
	struct sgn_cert_query q;
	struct store_job *jobs = NULL;
	struct store_job_device *jd = NULL;
	size_t njobs = 0, njd = 0, i, k, pick;
	int r, ret = AMTCA_E_INTERNAL;

	memset(sn, 0, sizeof(*sn));
	sn->now = time(NULL);
	for (sn->nstates = 0; device_states[sn->nstates] != NULL &&
	    sn->nstates < 16; sn->nstates++)
		;
	if ((r = devices_list(h->state, serve_sgn(s), NULL, &sn->dev, &sn->ndev)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < sn->ndev; i++) {
		for (k = 0; k < sn->nstates; k++)
			if (sn->dev[i].d.state != NULL &&
			    strcmp(sn->dev[i].d.state, device_states[k]) == 0)
				sn->by_state[k]++;
		if (sn->dev[i].d.state != NULL &&
		    (strcmp(sn->dev[i].d.state, "failed") == 0 ||
		    strcmp(sn->dev[i].d.state, "auth_failed") == 0))
			sn->failures++;
	}
	memset(&q, 0, sizeof(q));
	if ((r = sgn_cert_list(serve_sgn(s), &q, &sn->certs, &sn->ncert)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < sn->ncert; i++) {
		const struct store_cert *c = &sn->certs[i];

		if (c->status != NULL && strcmp(c->status, "revoked") == 0)
			sn->revoked++;
		else if (c->not_after <= sn->now)
			sn->expired++;
		else {
			sn->valid++;
			if (sn->earliest == 0 || c->not_after < sn->earliest)
				sn->earliest = c->not_after;
		}
	}
	/* The current job: a running one, else the newest. */
	if ((r = store_job_list(h->state, &jobs, &njobs)) != 0) {
		ret = r;
		goto out;
	}
	if (njobs > 0) {
		pick = 0;
		for (i = 0; i < njobs; i++) {
			int run_i = strcmp(jobs[i].state, "running") == 0;
			int run_p = strcmp(jobs[pick].state, "running") == 0;

			if ((run_i && !run_p) || (run_i == run_p &&
			    jobs[i].created_at >= jobs[pick].created_at))
				pick = i;
		}
		if ((sn->job = calloc(1, sizeof(*sn->job))) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		*sn->job = jobs[pick];
		memset(&jobs[pick], 0, sizeof(jobs[pick]));
		if ((r = store_job_device_list(h->state, sn->job->id, &jd,
		    &njd)) != 0) {
			ret = r;
			goto out;
		}
		for (i = 0; i < njd; i++)
			for (k = 0; k < 5; k++)
				if (jd[i].result != NULL &&
				    strcmp(jd[i].result, job_results[k]) == 0)
					sn->jcounts[k]++;
	}
	ret = 0;
out:
	store_jobs_free(jobs, njobs);
	store_job_devices_free(jd, njd);
	if (ret != 0)
		snap_free(sn);
	return ret;
}

static void
page(struct buf *b, const struct snap *sn)
{
	char t[64];
	size_t i, rows, done = 0;
	time_t horizon = sn->now + (time_t)AMTCA_STATUS_EXPIRY_DAYS * 86400;

	bprintf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	    "<title>amtca status</title><style>"
	    "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:48em;"
	    "padding:.75em;line-height:1.4;color:#111;background:#fff}"
	    "h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.4em}"
	    "table{border-collapse:collapse;width:100%%}"
	    "td,th{border-bottom:1px solid #ddd;padding:.3em;text-align:left;"
	    "vertical-align:top;word-break:break-word}"
	    ".n{text-align:right}.bad{color:#a00}"
	    "progress{width:100%%;height:1.2em}"
	    "</style></head><body>\n<h1>amtca status</h1>\n");
	fmt_time(sn->now, t, sizeof(t));
	bprintf(b, "<p>As of %s.</p>\n", t);

	bprintf(b, "<h2>Devices by state</h2>\n<table id=\"devices\">"
	    "<tr><th>state</th><th class=\"n\">devices</th></tr>\n");
	for (i = 0; i < sn->nstates; i++)
		bprintf(b, "<tr><td>%s</td><td class=\"n\" id=\"state-%s\" "
		    "data-count=\"%zu\">%zu</td></tr>\n", device_states[i],
		    device_states[i], sn->by_state[i], sn->by_state[i]);
	bprintf(b, "<tr><th>total</th><th class=\"n\" id=\"state-total\" "
	    "data-count=\"%zu\">%zu</th></tr></table>\n", sn->ndev, sn->ndev);

	bprintf(b, "<h2>Current job</h2>\n");
	if (sn->job == NULL)
		bprintf(b, "<p id=\"job\">No job yet.</p>\n");
	else {
		for (i = 1; i < 5; i++)
			done += sn->jcounts[i];
		fmt_time(sn->job->created_at, t, sizeof(t));
		bprintf(b, "<p id=\"job\">Job <code>");
		besc(b, sn->job->id);
		bprintf(b, "</code>, ");
		besc(b, sn->job->state);
		bprintf(b, ", started %s: %zu of %u devices done.</p>\n"
		    "<progress max=\"%u\" value=\"%zu\"></progress>\n"
		    "<table><tr>", t, done, sn->job->total,
		    sn->job->total > 0 ? sn->job->total : 1, done);
		for (i = 0; i < 5; i++)
			bprintf(b, "<th>%s</th>", job_results[i]);
		bprintf(b, "</tr><tr>");
		for (i = 0; i < 5; i++)
			bprintf(b, "<td class=\"n\">%zu</td>", sn->jcounts[i]);
		bprintf(b, "</tr></table>\n");
	}

	bprintf(b, "<h2>Expiring within %d days</h2>\n<table id=\"expiring\">"
	    "<tr><th>name</th><th>serial</th><th>not after</th></tr>\n",
	    AMTCA_STATUS_EXPIRY_DAYS);
	for (i = 0, rows = 0; i < sn->ncert && rows < STATUS_ROWS_MAX; i++) {
		const struct store_cert *c = &sn->certs[i];

		if ((c->status != NULL && strcmp(c->status, "revoked") == 0) ||
		    c->not_after > horizon)
			continue;
		fmt_time(c->not_after, t, sizeof(t));
		bprintf(b, "<tr><td>");
		besc(b, c->fqdn);
		bprintf(b, "</td><td><code>");
		besc(b, c->serial);
		bprintf(b, "</code></td><td%s>%s</td></tr>\n",
		    c->not_after <= sn->now ? " class=\"bad\"" : "", t);
		rows++;
	}
	if (rows == 0)
		bprintf(b, "<tr><td colspan=\"3\">none</td></tr>\n");
	bprintf(b, "</table>\n");

	bprintf(b, "<h2>Recent failures</h2>\n<table id=\"failures\">"
	    "<tr><th>device</th><th>state</th><th>error</th><th>when</th></tr>\n");
	for (i = 0, rows = 0; i < sn->ndev && rows < STATUS_ROWS_MAX; i++) {
		const struct store_device *d = &sn->dev[i].d;

		if (d->state == NULL || (strcmp(d->state, "failed") != 0 &&
		    strcmp(d->state, "auth_failed") != 0))
			continue;
		fmt_time(d->updated_at, t, sizeof(t));
		bprintf(b, "<tr><td>");
		besc(b, d->fqdn);
		bprintf(b, "</td><td class=\"bad\">");
		besc(b, d->state);
		bprintf(b, "</td><td>");
		besc(b, d->error);
		bprintf(b, "</td><td>%s</td></tr>\n", t);
		rows++;
	}
	if (rows == 0)
		bprintf(b, "<tr><td colspan=\"4\">none</td></tr>\n");
	bprintf(b, "</table>\n");

	bprintf(b, "<h2>Certificates</h2>\n<p>%zu valid, %zu revoked, %zu "
	    "expired.</p>\n<h2>Chain</h2>\n<ul>"
	    "<li><a href=\"/chain.pem\">chain.pem</a> (bottom to top)</li>"
	    "<li><a href=\"/chain.p7b\">chain.p7b</a></li>"
	    "<li><a href=\"/root.pem\">root.pem</a></li>"
	    "<li><a href=\"/crl\">current CRL</a></li></ul>\n"
	    "<p><a href=\"/metrics\">metrics</a></p>\n</body></html>\n",
	    sn->valid, sn->revoked, sn->expired);
}

static void
metrics(struct buf *b, struct serve *s, const struct snap *sn)
{
	struct serve_stats st;
	size_t i;

	serve_stats_get(s, &st);
	bprintf(b, "# HELP amtca_devices Devices in the inventory, by state.\n"
	    "# TYPE amtca_devices gauge\n");
	for (i = 0; i < sn->nstates; i++)
		bprintf(b, "amtca_devices{state=\"%s\"} %zu\n", device_states[i],
		    sn->by_state[i]);
	bprintf(b, "# HELP amtca_device_failures Devices whose last reconcile "
	    "failed (failed or auth_failed).\n"
	    "# TYPE amtca_device_failures gauge\n"
	    "amtca_device_failures %zu\n", sn->failures);
	bprintf(b, "# HELP amtca_certificates_issued_total Certificates the CA "
	    "has issued.\n# TYPE amtca_certificates_issued_total counter\n"
	    "amtca_certificates_issued_total %zu\n", sn->ncert);
	bprintf(b, "# HELP amtca_certificates Issued certificates by status.\n"
	    "# TYPE amtca_certificates gauge\n"
	    "amtca_certificates{status=\"valid\"} %zu\n"
	    "amtca_certificates{status=\"revoked\"} %zu\n"
	    "amtca_certificates{status=\"expired\"} %zu\n",
	    sn->valid, sn->revoked, sn->expired);
	bprintf(b, "# HELP amtca_certificate_earliest_expiry_seconds Seconds "
	    "until the earliest valid certificate expires.\n"
	    "# TYPE amtca_certificate_earliest_expiry_seconds gauge\n");
	if (sn->earliest != 0)
		bprintf(b, "amtca_certificate_earliest_expiry_seconds %lld\n",
		    (long long)(sn->earliest - sn->now));
	bprintf(b, "# HELP amtca_job_devices Devices of the current job by "
	    "result.\n# TYPE amtca_job_devices gauge\n");
	for (i = 0; i < 5; i++)
		bprintf(b, "amtca_job_devices{result=\"%s\"} %zu\n",
		    job_results[i], sn->jcounts[i]);
	bprintf(b, "# HELP amtca_job_total Devices in the current job.\n"
	    "# TYPE amtca_job_total gauge\namtca_job_total %u\n"
	    "# HELP amtca_job_running Whether a job is running.\n"
	    "# TYPE amtca_job_running gauge\namtca_job_running %d\n",
	    sn->job != NULL ? sn->job->total : 0,
	    sn->job != NULL && strcmp(sn->job->state, "running") == 0);
	bprintf(b, "# HELP amtca_reconcile_leader Whether this node holds the "
	    "reconcile leader lease.\n# TYPE amtca_reconcile_leader gauge\n"
	    "amtca_reconcile_leader %d\n", serve_leader(s));
	bprintf(b, "# HELP amtca_http_requests_total HTTP requests answered.\n"
	    "# TYPE amtca_http_requests_total counter\n"
	    "amtca_http_requests_total %llu\n"
	    "# HELP amtca_http_errors_total HTTP error answers by class.\n"
	    "# TYPE amtca_http_errors_total counter\n"
	    "amtca_http_errors_total{class=\"4xx\"} %llu\n"
	    "amtca_http_errors_total{class=\"5xx\"} %llu\n",
	    st.requests, st.errors_4xx, st.errors_5xx);
	bprintf(b, "# HELP amtca_tls_certificate_expiry_seconds Seconds until "
	    "the HTTPS certificate expires.\n"
	    "# TYPE amtca_tls_certificate_expiry_seconds gauge\n"
	    "amtca_tls_certificate_expiry_seconds %lld\n"
	    "# HELP amtca_start_time_seconds When the service started.\n"
	    "# TYPE amtca_start_time_seconds gauge\n"
	    "amtca_start_time_seconds %lld\n",
	    st.tls_not_after > 0 ? st.tls_not_after - (long long)sn->now : 0,
	    st.started);
}

void
status_handle(struct serve *s, const struct srv_req *rq, struct srv_resp *rs)
{
	struct snap sn;
	struct buf b;
	int r, html;

	memset(&b, 0, sizeof(b));
	if (strcmp(rq->path, "/") != 0 && strcmp(rq->path, "/metrics") != 0 &&
	    !publish_path(rq->path)) {
		srv_error(rs, 404, "no such resource");
		return;
	}
	if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
		srv_error(rs, 405, "method %s not allowed here", rq->method);
		(void)srv_header(rs, "Allow", "GET, HEAD");
		return;
	}
	if (publish_path(rq->path)) {
		publish_handle(s, rq, rs);
		return;
	}
	html = strcmp(rq->path, "/") == 0;
	if ((r = snap_take(s, &sn)) != 0) {
		serve_log(s, "status_error", "code=%s", amtca_errname(r));
		srv_error(rs, 500, "cannot read the records now");
		return;
	}
	if (html)
		page(&b, &sn);
	else
		metrics(&b, s, &sn);
	snap_free(&sn);
	if (b.err) {
		free(b.p);
		srv_error(rs, 500, "status too large");
		return;
	}
	if (html) {
		srv_body(rs, 200, "text/html; charset=utf-8",
		    (unsigned char *)b.p, b.len);
		(void)srv_header(rs, "Content-Security-Policy",
		    "default-src 'none'; style-src 'unsafe-inline'");
	} else
		srv_body(rs, 200, "text/plain; version=0.0.4; charset=utf-8",
		    (unsigned char *)b.p, b.len);
	(void)srv_header(rs, "Cache-Control", "no-store");
}
