/*
 * signer/note.c: audit entries a front end reports (AUDIT_NOTE,
 * docs/PROTOCOL.signer; docs/audit.md).
 *
 * A front end knows things the signer cannot see: how an enrollment
 * against a device ended, which admin created or cancelled a job.  It may
 * report them, but only as these actions, with the actor the signer
 * authenticated itself, a subject and detail of a fixed shape, and at most
 * AMTCA_SGN_NOTE_PER_MIN a minute per actor (AMTCA_SGN_NOTE_BURST at once):
 *
 *   enroll.outcome  LOCAL (the front end, or the operator's command);
 *                   subject an FQDN under the CA's policy; detail
 *                   "result=<enrolled|renewed|unchanged|failed>" then
 *                   more words (serial=, error=)
 *   job.create,     an ADMIN client (certificate-authenticated) or LOCAL;
 *   job.cancel      subject a job id (letters, digits, '-', '_', '.')
 *
 * A compromised front end can therefore write false outcomes and job
 * entries under its own name (LOCAL), or under an admin's name only while
 * it relays that admin's valid certificate chain; never another action,
 * another actor, or more than the rate allows.
 */
#include "signer/core.h"

#include <stdio.h>
#include <string.h>

#include "ca/ca.h"
#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"

/* "result=<word>" then the end or a space. */
static int
outcome_ok(const char *d)
{
	static const char *const words[] = {
		"enrolled", "renewed", "unchanged", "failed",
	};
	size_t i, n;

	if (strncmp(d, "result=", 7) != 0)
		return 0;
	d += 7;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		n = strlen(words[i]);
		if (strncmp(d, words[i], n) == 0 && (d[n] == '\0' || d[n] == ' '))
			return 1;
	}
	return 0;
}

static int
job_id_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

int
sgn_core_audit_note(struct sgn_core *c, const struct sgn_who *who,
    const char *action, const char *subject, const char *detail)
{
	struct sgn_client cl;
	char fq[AMTCA_FQDN_MAX + 1];
	const char *actor;
	int job, r, ret = AMTCA_E_INTERNAL;

	memset(&cl, 0, sizeof(cl));
	if (c == NULL || c->h == NULL || c->h->store == NULL)
		return amtca_fail(AMTCA_E_INTERNAL, "audit note: no CA store");
	if (who == NULL || action == NULL)
		return amtca_fail(AMTCA_E_USAGE, "audit note: no requester or "
		    "action");
	if (subject == NULL)
		subject = "";
	if (detail == NULL)
		detail = "";
	if (strlen(detail) > AMTCA_SGN_NOTE_DETAIL_MAX)
		return amtca_fail(AMTCA_E_LIMIT, "audit note: detail too long");
	job = strcmp(action, "job.create") == 0 ||
	    strcmp(action, "job.cancel") == 0;
	if (!job && strcmp(action, "enroll.outcome") != 0)
		return amtca_fail(AMTCA_E_DENIED, "a front end may note only "
		    "enroll.outcome, job.create and job.cancel");
	if ((r = sgn_core_auth(c, who, &cl)) != 0) {
		ret = r;
		goto out;
	}
	if (job ? (cl.roles & (SGN_ROLE_ADMIN | SGN_ROLE_LOCAL)) == 0 :
	    (cl.roles & SGN_ROLE_LOCAL) == 0) {
		ret = amtca_fail(AMTCA_E_DENIED, "%s is noted by %s only",
		    action, job ? "an admin or the service" : "the service");
		goto out;
	}
	if (job) {
		if (!job_id_ok(subject)) {
			ret = amtca_fail(AMTCA_E_USAGE, "audit note: a job id is "
			    "1 to 64 letters, digits, '-', '_' or '.'");
			goto out;
		}
	} else {
		if ((r = ca_fqdn_check(subject, &c->h->policy, fq)) != 0) {
			ret = r;
			goto out;
		}
		subject = fq;
		if (!outcome_ok(detail)) {
			ret = amtca_fail(AMTCA_E_USAGE, "audit note: an outcome's "
			    "detail starts result=<enrolled|renewed|unchanged|"
			    "failed>");
			goto out;
		}
	}
	actor = cl.name;
	if (sgn_ratelimit_take(c->notes, actor,
	    (unsigned long long)amtca_now_ms()) != 0) {
		ret = amtca_fail(AMTCA_E_RATE, "audit notes by %.64s: over %d a "
		    "minute", actor, AMTCA_SGN_NOTE_PER_MIN);
		goto out;
	}
	ret = store_audit_append(c->h->store, actor, action, subject, detail);
out:
	sgn_client_clear(&cl);
	return ret;
}
