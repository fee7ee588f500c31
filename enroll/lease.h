/*
 * enroll/lease.c: the per-device lock, kept in the store as a lease
 * (store_lease_take), so that every process sharing a CA home (enroll,
 * fleet, the scheduled timer, later the service) works on a device alone.
 *
 * The owner string is "host:pid:start-time:random".  A lease is taken over
 * when it lapsed, or when its holder is a process of this host that no
 * longer exists (pid gone, or reused: another start time).  The holder
 * renews it with devlock_renew() as it works (the engine does at every
 * step event); every AMT call and wait is bounded, so a live holder renews
 * well within AMTCA_LEASE_TTL_S.  A process that dies stops renewing: on
 * this host its device is free at once, on other hosts sharing the store
 * after at most AMTCA_LEASE_TTL_S.
 */
#ifndef AMTCA_ENROLL_LEASE_H
#define AMTCA_ENROLL_LEASE_H

#include "ca/store.h"
#include "common/err.h"

struct devlock;

/*
 * Lock device `fqdn` (normalised).  AMTCA_E_EXISTS with a one-line detail
 * naming the holder when another live process holds it.  Release with
 * devlock_release() (NULL is fine).
 */
int devlock_take(struct store *s, const char *fqdn, struct devlock **out) AMTCA_WUR;
/* The same with a lease of `ttl_s` seconds (<= 0: AMTCA_LEASE_TTL_S): the
 * service's nodes use their claim lifetime, so that a device of a node
 * that died is free for the others as soon as its job claim is. */
int devlock_take_ttl(struct store *s, const char *fqdn, int ttl_s,
    struct devlock **out) AMTCA_WUR;
void devlock_release(struct devlock *l);

/* Renew when a quarter of the lifetime has passed since the last time;
 * a lost lease is remembered for devlock_lost(). */
void devlock_renew(struct devlock *l);

/* Did a renewal find the lease gone (taken over: we were presumed dead)? */
int devlock_lost(const struct devlock *l);

/* Is the holder named by `owner` a process of this host that is gone?
 * (Exposed for tests.) */
int devlock_owner_dead(const char *owner);

/* A fresh owner string of this process ("host:pid:start-time:random",
 * malloc'd): what the service's job claims and leader lease name. */
int devlock_owner(char **out) AMTCA_WUR;
/* "process PID on HOST" for an owner string, for logs and messages. */
void devlock_owner_describe(const char *owner, char *buf, size_t len);

#endif
