/*
 * The job engine: see enroll/fleet.h.
 *
 * Each device is one enroll_run() (the reconciler: new, renewal window,
 * revoked bound leaf, an interrupted renewal's leaf, compromised, healthy
 * are all decided there from the device's real state and the records);
 * this file schedules, retries what is transient, keeps credentials at the
 * device's turn only, and keeps the job's record in the store.
 */
#include "enroll/fleet.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"

static const char *const result_names[FLEET_NRESULTS] = {
	"enrolled", "renewed", "unchanged", "failed",
};

const char *
fleet_result_name(enum fleet_result r)
{
	return (unsigned)r < FLEET_NRESULTS ? result_names[r] : "failed";
}

static int
result_parse(const char *s, enum fleet_result *out)
{
	int i;

	for (i = 0; s != NULL && i < FLEET_NRESULTS; i++)
		if (strcmp(s, result_names[i]) == 0) {
			*out = (enum fleet_result)i;
			return 0;
		}
	return -1;
}

int
fleet_transient(int code)
{
	/*
	 * Connection refused or reset, timeouts, a reply lost mid-call: the
	 * device or the path to it may be fine a moment later, and the
	 * reconciler makes another attempt safe.  AMT being busy generating
	 * keys is retried inside the engine first (generate_key) and ends as
	 * a transport-free status error, which is not retried again here:
	 * another round would only repeat the same wait.
	 */
	return code == AMTCA_E_AMT_TRANSPORT;
}

int
fleet_cred_stamp(const char *path, char **out)
{
	struct stat sb;

	*out = NULL;
	if (stat(path, &sb) == -1)
		return amtca_fail(AMTCA_E_IO, "password file %s: %s", path,
		    strerror(errno));
	if (asprintf(out, "%llu:%llu:%lld:%lld.%09ld",
	    (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino,
	    (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
	    (long)sb.st_mtim.tv_nsec) == -1) {
		*out = NULL;
		return AMTCA_E_NOMEM;
	}
	return 0;
}

struct fleet {
	const struct enroll_ctx *c;
	const struct fleet_opts *o;
	struct fleet_report *rep;
	char *job_id;
	pthread_mutex_t mu;
	size_t next;			/* next device to take */
	struct fleet_progress prog;
	unsigned char *carried;		/* per device: finished earlier */
	int tries;
	long backoff_ms;
	/* Claim mode (fleet_opts.claim_owner). */
	size_t *order;			/* device indexes sorted by FQDN */
	unsigned char *ran;		/* per device: taken by this run */
	int claim_ttl_s;
	pthread_mutex_t wmu;		/* the renewer's wake-up */
	pthread_cond_t wcv;
	int workers_done;
};

/* FLEET_RUN, or how the run was told to stop. */
static int
stopped(const struct fleet *f)
{
	return f->o->stop != NULL ? atomic_load(&f->o->stop->stop) : FLEET_RUN;
}

static void
emit(struct fleet *f, const struct fleet_outcome *last)
{
	f->prog.last = last;
	if (f->o->progress != NULL)
		f->o->progress(f->o->progress_ctx, &f->prog);
	f->prog.last = NULL;
}

static int
set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = NULL;
	if (src == NULL)
		return 0;
	return (*dst = strdup(src)) == NULL ? AMTCA_E_NOMEM : 0;
}

/* Keep what the hosts file says about the device in its record. */
static int
record_host(struct fleet *f, const struct fleet_host *h, struct store_device *cur)
{
	struct store_device d;
	char *pin = NULL, *ref = NULL;
	int r;

	memset(&d, 0, sizeof(d));
	if (cur != NULL)
		d = *cur;		/* borrowed: the engine's fields as they are */
	else {
		d.fqdn = h->fqdn;
		d.address = h->address;
		d.state = (char *)"pending";
	}
	d.port = h->port;
	d.tls_port = h->tls_port;
	/*
	 * A sealed credential the record names (cred_ref "credential:NAME",
	 * stored by the API; the user is the credential's) is replaced only
	 * by a password file the hosts file's row names itself: the
	 * --password-file default is this run's, not a statement about a
	 * device the service manages.  A password file in the record is
	 * replaced by either, as the operator's newer word.
	 */
	if (h->credential == NULL && !h->password_file_named &&
	    cur != NULL && cur->cred_ref != NULL &&
	    strncmp(cur->cred_ref, STORE_CRED_REF_PREFIX,
	    strlen(STORE_CRED_REF_PREFIX)) == 0) {
		d.user = NULL;		/* both kept */
		d.cred_ref = NULL;
	} else {
		d.user = h->user;
		d.cred_ref = h->password_file;
	}
	if (h->credential != NULL) {
		/* The record names the sealed credential, never a secret. */
		if (asprintf(&ref, "credential:%s", h->credential) == -1)
			return AMTCA_E_NOMEM;
		d.cred_ref = ref;
	}
	if (h->has_pin && (r = amtca_hex_encode(h->tls_pin, 32, &pin)) != 0) {
		free(ref);
		return r;
	}
	d.tls_pin = pin != NULL ? pin : (char *)"";
	d.updated_at = 0;
	r = store_device_put(f->c->store, &d);
	free(pin);
	free(ref);
	return r;
}

/* After an authentication failure: auth_failed, against this credential. */
static void
record_auth_failed(struct fleet *f, const char *fqdn, const char *stamp,
    const char *line)
{
	struct store_device *d = NULL;

	if (store_device_get(f->c->store, fqdn, &d) != 0)
		return;
	if (set_str(&d->state, "auth_failed") == 0 &&
	    set_str(&d->cred_stamp, stamp) == 0 &&
	    set_str(&d->error, line) == 0) {
		d->updated_at = 0;
		(void)!store_device_put(f->c->store, d);
	}
	store_device_free(d);
}

/* The credential worked: forget an old auth_failed stamp. */
static void
clear_stamp(struct fleet *f, const char *fqdn)
{
	struct store_device *d = NULL;

	if (store_device_get(f->c->store, fqdn, &d) != 0)
		return;
	if (d->cred_stamp != NULL && set_str(&d->cred_stamp, "") == 0)
		(void)!store_device_put(f->c->store, d);
	store_device_free(d);
}

static long
backoff_for(struct fleet *f, int attempt)
{
	unsigned int rnd = 0;
	long base = f->backoff_ms;
	int i;

	for (i = 1; i < attempt && base < 60000; i++)
		base *= 2;
	if (amtca_random(&rnd, sizeof(rnd)) != 0)
		rnd = 0;
	/* Full jitter on top: devices failing together retry apart. */
	return base + (long)(rnd % (unsigned)(base + 1));
}

/* One device, start to finish.  Fills `out` (fqdn already set). */
static void
run_device(struct fleet *f, const struct fleet_host *h, struct fleet_outcome *out)
{
	struct enroll_opts eo;
	struct enroll_result res;
	struct store_device *dev = NULL;
	char *stamp = NULL, *password = NULL, *user = NULL, line[600];
	int r, attempt;

	line[0] = '\0';
	out->result = FLEET_FAILED;
	if ((r = store_device_get(f->c->store, h->fqdn, &dev)) != 0 &&
	    r != AMTCA_E_NOT_FOUND) {
		snprintf(line, sizeof(line), "%s", amtca_errmsg(r));
		goto out;
	}
	if (dev != NULL && strcmp(dev->state, "retired") == 0) {
		out->result = FLEET_UNCHANGED;	/* out of every reconcile */
		goto out;
	}
	if (h->credential != NULL) {
		if (f->o->cred_get == NULL) {
			r = amtca_fail(AMTCA_E_USAGE, "no way to fetch credential "
			    "%s", h->credential);
			snprintf(line, sizeof(line), "%s", amtca_errmsg(r));
			goto out;
		}
		r = f->o->cred_stamp != NULL ?
		    f->o->cred_stamp(f->o->cred_ctx, h->credential, &stamp) :
		    asprintf(&stamp, "credential:%s", h->credential) == -1 ?
		    AMTCA_E_NOMEM : 0;
		if (r != 0) {
			stamp = NULL;
			snprintf(line, sizeof(line), "%s", amtca_errmsg(r));
			goto out;
		}
	} else if ((r = fleet_cred_stamp(h->password_file, &stamp)) != 0) {
		snprintf(line, sizeof(line), "%s", amtca_errmsg(r));
		goto out;
	}
	/*
	 * Repeated failures lock AMT accounts: a credential AMT refused is
	 * not tried again until the password file changes.
	 */
	if (dev != NULL && strcmp(dev->state, "auth_failed") == 0 &&
	    dev->cred_stamp != NULL && strcmp(dev->cred_stamp, stamp) == 0) {
		if (h->credential != NULL)
			snprintf(line, sizeof(line), "AMT refused credential "
			    "%s on an earlier run; not tried again until it is "
			    "replaced", h->credential);
		else
			snprintf(line, sizeof(line), "AMT refused user %s with "
			    "the password in %s on an earlier run; not tried "
			    "again until that file changes", h->user,
			    h->password_file);
		goto out;
	}
	if ((r = record_host(f, h, dev)) != 0) {
		snprintf(line, sizeof(line), "%s", amtca_errmsg(r));
		goto out;
	}

	memset(&eo, 0, sizeof(eo));
	eo.host = h->fqdn;
	eo.address = h->address;
	eo.port = h->port;
	eo.tls_port = h->tls_port;
	eo.user = h->user;
	eo.tls_pin = h->has_pin ? h->tls_pin : NULL;
	eo.renew_days = f->o->renew_days;
	eo.reissue_retired = f->o->reissue_retired;
	eo.tls_wait_ms = f->o->tls_wait_ms;
	if (f->o->stop != NULL)
		eo.abort_at_ms = &f->o->stop->abort_at_ms;
	for (attempt = 1;; attempt++) {
		out->attempts = attempt;
		/* Read at the device's turn, wiped right after the run. */
		if (h->credential != NULL)
			r = f->o->cred_get(f->o->cred_ctx, h->credential,
			    h->fqdn, &user, &password);
		else
			r = amtca_secret_read(h->password_file, &password);
		if (r != 0) {
			user = NULL;
			password = NULL;
			snprintf(line, sizeof(line), "%s", amtca_errmsg(r));
			goto out;
		}
		eo.user = user != NULL ? user : h->user;
		eo.password = password;
		r = enroll_run(f->c, &eo, &res);
		eo.password = NULL;
		eo.user = NULL;
		amtca_secret_free(password);
		password = NULL;
		free(user);
		user = NULL;
		if (r == 0) {
			if (res.status != NULL && strcmp(res.status, "renewed") == 0)
				out->result = FLEET_RENEWED;
			else if (res.status != NULL &&
			    strcmp(res.status, "already enrolled") == 0)
				out->result = FLEET_UNCHANGED;
			else
				out->result = FLEET_ENROLLED;
			if (res.serial != NULL)
				out->serial = strdup(res.serial);
			enroll_result_clear(&res);
			if (dev != NULL && dev->cred_stamp != NULL)
				clear_stamp(f, h->fqdn);
			break;
		}
		/* The fleet's way to give --tls-pin is the hosts file's column. */
		snprintf(line, sizeof(line), "%s%s", amtca_errmsg(r),
		    r == AMTCA_E_AMT_TLS && strstr(amtca_errmsg(r), "--tls-pin") ?
		    " (for amtca fleet: the hosts file's tls_pin_sha256 column)" :
		    "");
		enroll_result_clear(&res);
		if (r == AMTCA_E_AMT_AUTH) {
			record_auth_failed(f, h->fqdn, stamp, line);
			break;
		}
		/*
		 * Claim mode: a device whose claim lapsed with a node that
		 * died may still be under that node's device lease for a
		 * moment (both lapse within a renewal period): wait for it.
		 */
		if (!(fleet_transient(r) || (f->o->claim_owner != NULL &&
		    r == AMTCA_E_EXISTS)) || attempt >= f->tries ||
		    stopped(f) != FLEET_RUN)
			break;
		amtca_sleep_ms(backoff_for(f, attempt));
		if (stopped(f) != FLEET_RUN)
			break;
	}
out:
	if (out->result == FLEET_FAILED && line[0] != '\0')
		out->error = strdup(line);
	amtca_secret_free(password);
	free(user);
	store_device_free(dev);
	free(stamp);
}

static void
record_progress(struct fleet *f, const struct fleet_outcome *o)
{
	struct store_job_device jd;

	memset(&jd, 0, sizeof(jd));
	jd.job_id = f->job_id;
	jd.fqdn = o->fqdn;
	jd.result = (char *)fleet_result_name(o->result);
	jd.serial = o->serial;
	jd.error = o->error;
	jd.attempts = o->attempts;
	(void)!store_job_device_put(f->c->store, &jd);
}

/* The host index of `fqdn` (case-insensitive), or (size_t)-1. */
static size_t
host_index(const struct fleet *f, const char *fqdn)
{
	size_t lo = 0, hi = f->rep->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcasecmp(f->o->hosts[f->order[mid]].fqdn, fqdn);
		if (c == 0)
			return f->order[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (size_t)-1;
}

/* qsort has no context argument: one sort at a time. */
static const struct fleet *sort_f;
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int
by_fqdn(const void *a, const void *b)
{
	return strcasecmp(sort_f->o->hosts[*(const size_t *)a].fqdn,
	    sort_f->o->hosts[*(const size_t *)b].fqdn);
}

/*
 * Claim mode: the next device is whichever the store hands this owner;
 * (size_t)-1 when there is none (or the run stops).
 */
static size_t
claim_next(struct fleet *f)
{
	char *fqdn = NULL, *prev = NULL;
	size_t i;
	int r;

	for (;;) {
		if (stopped(f) != FLEET_RUN)
			return (size_t)-1;
		r = store_job_claim(f->c->store, f->job_id, f->o->claim_owner,
		    time(NULL), f->claim_ttl_s, &fqdn, &prev);
		if (r != 0)
			return (size_t)-1;	/* none left (or the store failed:
						   the poll comes back) */
		i = host_index(f, fqdn);
		pthread_mutex_lock(&f->mu);
		if (i != (size_t)-1 && f->ran[i]) {
			/*
			 * Our own claim lapsed while a worker of ours still
			 * runs the device (the renewer was late): it is ours
			 * again, and in hand.
			 */
			pthread_mutex_unlock(&f->mu);
			free(fqdn);
			free(prev);
			fqdn = prev = NULL;
			continue;
		}
		if (i != (size_t)-1) {
			f->ran[i] = 1;
			f->rep->claimed++;
		}
		pthread_mutex_unlock(&f->mu);
		if (i == (size_t)-1) {
			/* Not in the hosts we were given: leave it to others. */
			(void)!store_job_claim_release(f->c->store, f->job_id,
			    f->o->claim_owner, fqdn);
			free(fqdn);
			free(prev);
			return (size_t)-1;
		}
		if (f->o->on_claim != NULL)
			f->o->on_claim(f->o->progress_ctx, fqdn, prev);
		free(fqdn);
		free(prev);
		return i;
	}
}

/*
 * Claim mode: renew this owner's claims every third of their lifetime
 * and stop the run when the job's row says it no longer runs (cancelled
 * on any node).
 */
static void *
renewer(void *arg)
{
	struct fleet *f = arg;
	struct store_job *j = NULL;
	struct timespec ts;
	long every_ms = (long)f->claim_ttl_s * 1000 / 3, poll_ms;
	long long next_renew = amtca_now_ms() + every_ms;

	poll_ms = every_ms < AMTCA_SERVE_JOB_POLL_MS ? every_ms :
	    AMTCA_SERVE_JOB_POLL_MS;
	pthread_mutex_lock(&f->wmu);
	while (!f->workers_done) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += poll_ms / 1000;
		ts.tv_nsec += (poll_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&f->wcv, &f->wmu, &ts);
		if (f->workers_done)
			break;
		pthread_mutex_unlock(&f->wmu);
		if (amtca_now_ms() >= next_renew) {
			(void)!store_job_claim_renew(f->c->store, f->job_id,
			    f->o->claim_owner, time(NULL), f->claim_ttl_s, NULL);
			next_renew = amtca_now_ms() + every_ms;
		}
		/* Cancelled (not done: another node may have finished it
		   while our workers wind down). */
		if (store_job_get(f->c->store, f->job_id, &j) == 0 &&
		    strcmp(j->state, "cancelled") == 0 &&
		    atomic_load(&f->o->stop->stop) == FLEET_RUN) {
			atomic_store(&f->o->stop->abort_at_ms, amtca_now_ms() +
			    AMTCA_API_CANCEL_GRACE_MS);
			atomic_store(&f->o->stop->stop, FLEET_STOP_CANCEL);
		}
		store_job_free(j);
		j = NULL;
		pthread_mutex_lock(&f->wmu);
	}
	pthread_mutex_unlock(&f->wmu);
	return NULL;
}

static void *
worker(void *arg)
{
	struct fleet *f = arg;
	struct fleet_outcome *o;
	size_t i;

	if (f->o->claim_owner != NULL) {
		while ((i = claim_next(f)) != (size_t)-1) {
			pthread_mutex_lock(&f->mu);
			f->prog.in_flight++;
			emit(f, NULL);
			pthread_mutex_unlock(&f->mu);

			o = &f->rep->dev[i];
			/* A device finished elsewhere before is run again
			   only if the store says it is pending: it is. */
			o->carried = 0;
			run_device(f, &f->o->hosts[i], o);
			if (o->result == FLEET_FAILED &&
			    stopped(f) == FLEET_STOP_SHUTDOWN) {
				/*
				 * Cut short by this node's shutdown: left
				 * pending for the other nodes (job_close
				 * releases the claim), as a resumed job would
				 * run it again.
				 */
				pthread_mutex_lock(&f->mu);
				f->prog.in_flight--;
				o->skipped = 1;
				pthread_mutex_unlock(&f->mu);
				continue;
			}
			record_progress(f, o);	/* ends the claim */

			pthread_mutex_lock(&f->mu);
			f->prog.in_flight--;
			f->prog.done++;
			f->prog.counts[o->result]++;
			f->rep->counts[o->result]++;
			emit(f, o);
			pthread_mutex_unlock(&f->mu);
		}
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&f->mu);
		while (f->next < f->rep->n && f->carried[f->next])
			f->next++;
		if (f->next >= f->rep->n || stopped(f) != FLEET_RUN) {
			pthread_mutex_unlock(&f->mu);
			break;
		}
		i = f->next++;
		f->prog.in_flight++;
		emit(f, NULL);
		pthread_mutex_unlock(&f->mu);

		o = &f->rep->dev[i];
		run_device(f, &f->o->hosts[i], o);
		record_progress(f, o);

		pthread_mutex_lock(&f->mu);
		f->prog.in_flight--;
		f->prog.done++;
		f->prog.counts[o->result]++;
		f->rep->counts[o->result]++;
		emit(f, o);
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

/* SHA-256 (hex) of what makes a job the same job: the hosts, the window. */
static int
hosts_digest(const struct fleet_opts *o, char **out)
{
	EVP_MD_CTX *md = NULL;
	unsigned char dg[32];
	char buf[64];
	unsigned len = 0;
	size_t i;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	snprintf(buf, sizeof(buf), "renew=%d\n", o->renew_days);
	EVP_DigestUpdate(md, buf, strlen(buf));
	/* Only when set: jobs recorded before the option keep their digest. */
	if (o->reissue_retired)
		EVP_DigestUpdate(md, "reissue=1\n", 10);
	for (i = 0; i < o->nhosts; i++) {
		const struct fleet_host *h = &o->hosts[i];

		EVP_DigestUpdate(md, h->fqdn, strlen(h->fqdn) + 1);
		if (h->address != NULL)
			EVP_DigestUpdate(md, h->address, strlen(h->address));
		snprintf(buf, sizeof(buf), "\n%d,%d\n", h->port, h->tls_port);
		EVP_DigestUpdate(md, buf, strlen(buf));
	}
	if (EVP_DigestFinal_ex(md, dg, &len) != 1) {
		ret = AMTCA_E_INTERNAL;
		goto out;
	}
	ret = amtca_hex_encode(dg, len, out);
out:
	EVP_MD_CTX_free(md);
	return ret;
}

/*
 * The job this run continues (an unfinished one for the same hosts) or a
 * new one.  Marks the devices an earlier run of it finished as carried.
 */
static int
job_open(struct fleet *f, const char *digest)
{
	struct store_job *jobs = NULL, j;
	struct store_job_device *jd = NULL;
	size_t nj = 0, njd = 0, i, k;
	unsigned char rnd[16];
	enum fleet_result res;
	struct fleet_outcome *o;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = store_job_list(f->c->store, &jobs, &nj)) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < nj; i++)
		if (f->o->job_id != NULL ?
		    strcmp(jobs[i].id, f->o->job_id) == 0 :
		    strcmp(jobs[i].state, "running") == 0 &&
		    jobs[i].hosts_digest != NULL &&
		    strcmp(jobs[i].hosts_digest, digest) == 0)
			break;
	if (f->o->job_id != NULL && (i == nj ||
	    strcmp(jobs[i].state, "running") != 0)) {
		ret = amtca_fail(i == nj ? AMTCA_E_NOT_FOUND : AMTCA_E_USAGE,
		    "job %s %s", f->o->job_id, i == nj ? "is not recorded" :
		    "is not running");
		goto out;
	}
	if (i < nj) {
		if ((f->job_id = strdup(jobs[i].id)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		f->rep->resumed = 1;
		if ((r = store_job_device_list(f->c->store, f->job_id, &jd,
		    &njd)) != 0) {
			ret = r;
			goto out;
		}
		/* Both sorted?  Hosts are in file order: match by name. */
		for (k = 0; k < njd; k++) {
			if (result_parse(jd[k].result, &res) != 0 ||
			    res == FLEET_FAILED)
				continue;	/* failed ones are tried again */
			for (i = 0; i < f->rep->n; i++) {
				o = &f->rep->dev[i];
				if (f->carried[i] || strcmp(o->fqdn, jd[k].fqdn) != 0)
					continue;
				f->carried[i] = 1;
				o->carried = 1;
				o->result = res;
				o->attempts = jd[k].attempts;
				if (set_str(&o->serial, jd[k].serial) != 0) {
					ret = AMTCA_E_NOMEM;
					goto out;
				}
				f->prog.done++;
				f->prog.counts[res]++;
				f->rep->counts[res]++;
				break;
			}
		}
	} else {
		if ((r = amtca_random(rnd, sizeof(rnd))) != 0 ||
		    (r = amtca_hex_encode(rnd, sizeof(rnd), &f->job_id)) != 0) {
			ret = r;
			goto out;
		}
		memset(&j, 0, sizeof(j));
		j.id = f->job_id;
		j.state = (char *)"running";
		j.hosts_digest = (char *)digest;
		j.total = (unsigned)f->rep->n;
		if ((r = store_job_put(f->c->store, &j)) != 0) {
			ret = r;
			goto out;
		}
	}
	ret = 0;
out:
	store_jobs_free(jobs, nj);
	store_job_devices_free(jd, njd);
	return ret;
}

/* Done, or cancelled; a run stopped for a shutdown stays unfinished. */
static int
job_close(struct fleet *f)
{
	struct store_job *j = NULL;
	int r, how = stopped(f);

	if (how == FLEET_STOP_SHUTDOWN) {
		/* Claim mode: what we held is the other nodes' at once. */
		if (f->o->claim_owner != NULL)
			(void)!store_job_claim_release(f->c->store, f->job_id,
			    f->o->claim_owner, NULL);
		return 0;
	}
	if (how == FLEET_RUN && f->o->claim_owner != NULL)
		return store_job_finish(f->c->store, f->job_id, time(NULL),
		    &f->rep->finished);
	if ((r = store_job_get(f->c->store, f->job_id, &j)) != 0)
		return r;
	/* Claim mode: a job another node already ended stays as it ended. */
	if (f->o->claim_owner != NULL && strcmp(j->state, "running") != 0) {
		store_job_free(j);
		return 0;
	}
	free(j->state);
	if ((j->state = strdup(how == FLEET_STOP_CANCEL ? "cancelled" :
	    "done")) == NULL) {
		store_job_free(j);
		return AMTCA_E_NOMEM;
	}
	j->finished_at = time(NULL);
	r = store_job_put(f->c->store, j);
	store_job_free(j);
	return r;
}

int
fleet_run(const struct enroll_ctx *c, const struct fleet_opts *o,
    struct fleet_report *rep)
{
	struct fleet f;
	pthread_t *th = NULL, renew_th;
	pthread_attr_t attr;
	size_t i, nth, started = 0;
	int renew_started = 0;
	char *digest = NULL;
	long long t0 = amtca_now_ms();
	int r, attr_ok = 0, ret = AMTCA_E_INTERNAL;

	memset(rep, 0, sizeof(*rep));
	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.mu, NULL);
	pthread_mutex_init(&f.wmu, NULL);
	pthread_cond_init(&f.wcv, NULL);
	f.c = c;
	f.o = o;
	f.rep = rep;
	f.tries = o->tries > 0 ? o->tries : AMTCA_FLEET_TRIES;
	f.backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : AMTCA_FLEET_BACKOFF_MS;
	if (c == NULL || c->store == NULL || o->hosts == NULL || o->nhosts == 0) {
		ret = amtca_fail(AMTCA_E_USAGE, "fleet: no devices to reconcile");
		goto out;
	}
	if (o->claim_owner != NULL && (o->job_id == NULL || o->stop == NULL)) {
		ret = amtca_fail(AMTCA_E_USAGE, "fleet: claiming devices needs a "
		    "stored job and a stop control");
		goto out;
	}
	f.claim_ttl_s = o->claim_ttl_s > 0 ? o->claim_ttl_s : AMTCA_CLAIM_TTL_S;
	if ((rep->dev = calloc(o->nhosts, sizeof(*rep->dev))) == NULL ||
	    (f.carried = calloc(o->nhosts, 1)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	rep->n = o->nhosts;
	f.prog.total = o->nhosts;
	if (o->claim_owner != NULL) {
		if ((f.order = calloc(o->nhosts, sizeof(*f.order))) == NULL ||
		    (f.ran = calloc(o->nhosts, 1)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		for (i = 0; i < o->nhosts; i++)
			f.order[i] = i;
		pthread_mutex_lock(&sort_mu);
		sort_f = &f;
		qsort(f.order, o->nhosts, sizeof(*f.order), by_fqdn);
		sort_f = NULL;
		pthread_mutex_unlock(&sort_mu);
	}
	for (i = 0; i < o->nhosts; i++) {
		rep->dev[i].result = FLEET_FAILED;
		if ((rep->dev[i].fqdn = strdup(o->hosts[i].fqdn)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	}
	if ((r = hosts_digest(o, &digest)) != 0 || (r = job_open(&f, digest)) != 0) {
		ret = r;
		goto out;
	}
	if ((rep->job_id = strdup(f.job_id)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	emit(&f, NULL);

	nth = o->concurrency > 0 ? o->concurrency : AMTCA_FLEET_CONCURRENCY;
	if (nth > o->nhosts - f.prog.done)
		nth = o->nhosts - f.prog.done;
	if (nth > 0) {
		if ((th = calloc(nth, sizeof(*th))) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		pthread_attr_init(&attr);
		attr_ok = 1;
		pthread_attr_setstacksize(&attr, AMTCA_FLEET_STACK);
		for (i = 0; i < nth; i++) {
			if ((r = pthread_create(&th[i], &attr, worker, &f)) != 0) {
				if (started == 0) {
					ret = amtca_fail(AMTCA_E_NOMEM, "fleet: "
					    "cannot start worker threads: %s",
					    strerror(r));
					goto out;
				}
				break;	/* fewer in flight, still correct */
			}
			started++;
		}
		if (o->claim_owner != NULL &&
		    (r = pthread_create(&renew_th, &attr, renewer, &f)) == 0)
			renew_started = 1;
		for (i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		if (renew_started) {
			pthread_mutex_lock(&f.wmu);
			f.workers_done = 1;
			pthread_cond_signal(&f.wcv);
			pthread_mutex_unlock(&f.wmu);
			pthread_join(renew_th, NULL);
		}
	}
	/*
	 * Claim mode: another node may have cancelled the job after our last
	 * claim found nothing to take and before the renewer's poll saw it
	 * (the claim takes devices of running jobs only): this run then ends
	 * cancelled too, not as a share of a job still running.
	 */
	if (o->claim_owner != NULL && o->stop != NULL &&
	    stopped(&f) == FLEET_RUN) {
		struct store_job *j = NULL;

		if (store_job_get(c->store, f.job_id, &j) == 0 &&
		    strcmp(j->state, "cancelled") == 0)
			atomic_store(&o->stop->stop, FLEET_STOP_CANCEL);
		else
			amtca_err_clear();
		store_job_free(j);
	}
	/* Stopped: what no worker took is neither run nor counted; in claim
	 * mode, what this run did not take was not its to run. */
	rep->stopped = stopped(&f);
	for (i = 0; i < rep->n; i++)
		if (o->claim_owner != NULL ? !f.carried[i] && !f.ran[i] :
		    rep->stopped != FLEET_RUN && !f.carried[i] && i >= f.next)
			rep->dev[i].skipped = 1;
	if ((r = job_close(&f)) != 0) {
		ret = r;
		goto out;
	}
	rep->seconds = (double)(amtca_now_ms() - t0) / 1000.0;
	ret = 0;
out:
	if (attr_ok)
		pthread_attr_destroy(&attr);
	free(th);
	free(digest);
	free(f.carried);
	free(f.order);
	free(f.ran);
	free(f.job_id);
	pthread_mutex_destroy(&f.mu);
	pthread_mutex_destroy(&f.wmu);
	pthread_cond_destroy(&f.wcv);
	return ret;
}

void
fleet_report_clear(struct fleet_report *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; r->dev != NULL && i < r->n; i++) {
		free(r->dev[i].fqdn);
		free(r->dev[i].serial);
		free(r->dev[i].error);
	}
	free(r->dev);
	free(r->job_id);
	memset(r, 0, sizeof(*r));
}
