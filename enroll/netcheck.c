/*
 * DNS and reachability checks shared by enroll and doctor.  Resolution is
 * done once here and the chosen address is then pinned for libcurl, so the
 * address we checked is the address we talk to.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "enroll/enroll.h"

int
net_is_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (s == NULL)
		return 0;
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

void
net_addrs_clear(struct net_addrs *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->n; i++)
		free(a->addr[i]);
	free(a->addr);
	a->addr = NULL;
	a->n = 0;
}

int
net_resolve(const char *host, struct net_addrs *out)
{
	struct addrinfo hints, *res = NULL, *ai;
	char buf[INET6_ADDRSTRLEN];
	char **v = NULL;
	size_t n = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	out->addr = NULL;
	out->n = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	if ((r = getaddrinfo(host, NULL, &hints, &res)) != 0) {
		ret = amtca_fail(AMTCA_E_DNS, "%s does not resolve: %s", host,
		    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		res = NULL;
		goto out;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		const void *src;
		char **nv;
		int dup = 0;

		if (ai->ai_family == AF_INET)
			src = &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr;
		else if (ai->ai_family == AF_INET6)
			src = &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(ai->ai_family, src, buf, sizeof(buf)) == NULL)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(v[i], buf) == 0)
				dup = 1;
		if (dup)
			continue;
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		v = nv;
		if ((v[n] = strdup(buf)) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		n++;
	}
	if (n == 0) {
		ret = amtca_fail(AMTCA_E_DNS, "%s has no IPv4/IPv6 address", host);
		goto out;
	}
	out->addr = v;
	out->n = n;
	v = NULL;
	n = 0;
	ret = 0;
out:
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	if (res != NULL)
		freeaddrinfo(res);
	return ret;
}

void
net_addrs_join(const struct net_addrs *a, char *buf, size_t len)
{
	size_t i, off = 0;
	int w;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < a->n; i++) {
		w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", a->addr[i]);
		if (w < 0 || (size_t)w >= len - off) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
		off += (size_t)w;
	}
}

int
net_tcp_probe(const char *addr, int port, long timeout_ms)
{
	struct addrinfo hints, *res = NULL;
	struct pollfd pfd;
	char portstr[16];
	socklen_t sl;
	int fd = -1, r, err = 0, ret = AMTCA_E_INTERNAL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((r = getaddrinfo(addr, portstr, &hints, &res)) != 0) {
		res = NULL;
		ret = amtca_fail(AMTCA_E_USAGE, "%s is not a numeric address", addr);
		goto out;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, res->ai_addr, res->ai_addrlen) == -1) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto failed;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		do {
			r = poll(&pfd, 1, (int)timeout_ms);
		} while (r == -1 && errno == EINTR);
		if (r == 0) {
			ret = amtca_fail(AMTCA_E_AMT_TRANSPORT,
			    "%s port %d: no answer within %ld ms (filtered or host down)",
			    addr, port, timeout_ms);
			goto out;
		}
		sl = sizeof(err);
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1)
			err = errno;
		if (err != 0)
			goto failed;
	}
	ret = 0;
	goto out;
failed:
	ret = amtca_fail(AMTCA_E_AMT_TRANSPORT, "%s port %d: %s", addr, port,
	    err == ECONNREFUSED ? "connection refused (nothing listens)" :
	    strerror(err));
out:
	if (fd != -1)
		close(fd);
	if (res != NULL)
		freeaddrinfo(res);
	return ret;
}
