/*
 * The per-device lock as a lease in the store: see enroll/lease.h.
 */
#include "enroll/lease.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/util.h"

#define LEASE_PREFIX "device:"

struct devlock {
	struct store *store;
	char *name;			/* "device:<fqdn>" */
	char *owner;
	time_t renewed;
	int ttl_s;
	int lost;
};

/* Field 22 of /proc/<pid>/stat (start time in clock ticks), 0 if gone. */
static unsigned long long
proc_start(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	FILE *fp;
	size_t n;
	int i;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip to its end. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	p++;
	for (i = 3; i <= 22 && p != NULL; i++) {
		while (*p == ' ')
			p++;
		if (i == 22) {
			v = strtoull(p, NULL, 10);
			break;
		}
		p = strchr(p, ' ');
	}
	return v;
}

static void
host_name(char *buf, size_t len)
{
	if (gethostname(buf, len) == -1 || buf[0] == '\0')
		snprintf(buf, len, "localhost");
	buf[len - 1] = '\0';
	/* ':' separates the owner's fields. */
	for (; *buf != '\0'; buf++)
		if (*buf == ':')
			*buf = '_';
}

int
devlock_owner_dead(const char *owner)
{
	char host[256], *end;
	const char *p, *q;
	unsigned long long start;
	long pid;

	if (owner == NULL || (p = strchr(owner, ':')) == NULL)
		return 0;
	host_name(host, sizeof(host));
	if ((size_t)(p - owner) != strlen(host) ||
	    strncmp(owner, host, (size_t)(p - owner)) != 0)
		return 0;		/* another host: only the lease expiry */
	errno = 0;
	pid = strtol(p + 1, &end, 10);
	if (errno != 0 || end == p + 1 || *end != ':' || pid <= 0)
		return 0;
	q = end + 1;
	start = strtoull(q, &end, 10);
	if (end == q || *end != ':')
		return 0;
	return proc_start(pid) != start;
}

/* "host 'h' pid N" out of an owner string, for messages. */
static void
owner_describe(const char *owner, char *buf, size_t len)
{
	const char *p = strchr(owner, ':'), *q;

	if (p == NULL || (q = strchr(p + 1, ':')) == NULL) {
		snprintf(buf, len, "%.100s", owner);
		return;
	}
	snprintf(buf, len, "process %.*s on %.*s", (int)(q - p - 1), p + 1,
	    (int)(p - owner > 100 ? 100 : p - owner), owner);
}

int
devlock_owner(char **out)
{
	unsigned char rnd[8];
	char host[256];
	int r;

	*out = NULL;
	host_name(host, sizeof(host));
	if ((r = amtca_random(rnd, sizeof(rnd))) != 0)
		return r;
	if (asprintf(out, "%s:%ld:%llu:%02x%02x%02x%02x%02x%02x%02x%02x",
	    host, (long)getpid(), proc_start((long)getpid()), rnd[0], rnd[1],
	    rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]) == -1) {
		*out = NULL;
		return AMTCA_E_NOMEM;
	}
	return 0;
}

void
devlock_owner_describe(const char *owner, char *buf, size_t len)
{
	owner_describe(owner, buf, len);
}

int
devlock_take(struct store *s, const char *fqdn, struct devlock **out)
{
	return devlock_take_ttl(s, fqdn, AMTCA_LEASE_TTL_S, out);
}

int
devlock_take_ttl(struct store *s, const char *fqdn, int ttl_s,
    struct devlock **out)
{
	struct devlock *l = NULL;
	char who[200], when[64], *holder = NULL;
	time_t now, exp = 0;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (ttl_s <= 0)
		ttl_s = AMTCA_LEASE_TTL_S;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return AMTCA_E_NOMEM;
	l->store = s;
	l->ttl_s = ttl_s;
	if (asprintf(&l->name, LEASE_PREFIX "%s", fqdn) == -1) {
		l->name = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = devlock_owner(&l->owner)) != 0) {
		ret = r;
		goto out;
	}
	now = time(NULL);
	r = store_lease_take(s, l->name, l->owner, now, ttl_s, NULL, &holder,
	    &exp);
	/* Held by a process of this host that is gone: take it over. */
	if (r == AMTCA_E_EXISTS && devlock_owner_dead(holder))
		r = store_lease_take(s, l->name, l->owner, now, ttl_s, holder,
		    NULL, NULL);
	if (r == AMTCA_E_EXISTS) {
		owner_describe(holder ? holder : "?", who, sizeof(who));
		amtca_fmt_time(exp, when, sizeof(when));
		ret = amtca_fail(AMTCA_E_EXISTS, "another amtca is working on %s "
		    "(enroll, fleet or the service: %s holds its lock until %s "
		    "unless it renews it); wait for it, then rerun", fqdn, who,
		    when);
		goto out;
	}
	if (r != 0) {
		ret = r;
		goto out;
	}
	l->renewed = now;
	*out = l;
	l = NULL;
	ret = 0;
out:
	free(holder);
	if (l != NULL) {
		free(l->name);
		free(l->owner);
		free(l);
	}
	return ret;
}

void
devlock_renew(struct devlock *l)
{
	time_t now = time(NULL);

	if (l == NULL || l->lost || now - l->renewed < l->ttl_s / 4)
		return;
	if (store_lease_renew(l->store, l->name, l->owner, now,
	    l->ttl_s) == AMTCA_E_NOT_FOUND)
		l->lost = 1;
	else
		l->renewed = now;	/* a store error: try again later */
}

int
devlock_lost(const struct devlock *l)
{
	return l != NULL && l->lost;
}

void
devlock_release(struct devlock *l)
{
	if (l == NULL)
		return;
	if (!l->lost)
		(void)!store_lease_release(l->store, l->name, l->owner);
	free(l->name);
	free(l->owner);
	free(l);
}
