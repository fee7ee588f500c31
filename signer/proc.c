/*
 * signer/proc.c: the signer in its own process.
 *
 * sgn_spawn() makes `nconn` socketpairs and forks; the child closes every
 * other descriptor and execs this binary (/proc/self/exe) as
 * `amtca signer --home DIR --fds A,B,...`, which is sgn_signer_main().
 * That process names its peer from SO_PEERCRED, opens the home with the
 * token, answers HELLO on the first connection, and runs one thread per
 * connection: read a frame, decode it strictly, run the core, answer.  A
 * frame that does not decode, or is over its cap, ends that connection
 * (the others go on).  It exits when every connection has closed, which
 * is what happens when the front end exits or dies (PR_SET_PDEATHSIG is
 * the backstop).
 *
 * Client side: a request takes a free connection (waiting when all are
 * busy), writes its frame and waits for the reply with a deadline.  A
 * connection that fails is closed and never reused; when none is left,
 * every call fails with AMTCA_E_IPC.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "signer/proc.h"

/* --- frames over a stream socket --------------------------------------- */

/* Write all of buf; deadline_ms < 0: none.  0, or -1 with errno. */
static int
write_all(int fd, const unsigned char *buf, size_t len, long deadline_ms)
{
	struct pollfd pf;
	ssize_t n;
	long long end = deadline_ms >= 0 ? amtca_now_ms() + deadline_ms : 0;

	while (len > 0) {
		if (deadline_ms >= 0) {
			long long left = end - amtca_now_ms();
			int pr;

			pf.fd = fd;
			pf.events = POLLOUT;
			if (left <= 0)
				return errno = ETIMEDOUT, -1;
			if ((pr = poll(&pf, 1, (int)left)) < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (pr == 0)
				return errno = ETIMEDOUT, -1;
		}
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes.  0; 1 on EOF before the first byte; -1 with
 * errno otherwise (EPIPE for EOF in the middle). */
static int
read_all(int fd, unsigned char *buf, size_t len, long long end)
{
	struct pollfd pf;
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		if (end != 0) {
			long long left = end - amtca_now_ms();
			int pr;

			if (left <= 0)
				return errno = ETIMEDOUT, -1;
			pf.fd = fd;
			pf.events = POLLIN;
			if ((pr = poll(&pf, 1, (int)(left > 60000 ? 60000 : left))) < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (pr == 0)
				continue;
		}
		if ((n = read(fd, buf + got, len - got)) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (n == 0)
			return got == 0 ? 1 : (errno = EPIPE, -1);
		got += (size_t)n;
	}
	return 0;
}

/*
 * One frame's body (type, id, fields) into *out (malloc'd, len *outlen).
 * 0; 1 on a clean EOF; AMTCA_E_LIMIT when the length is over `max` or
 * under the 5 bytes of type and id (nothing of the body is read then);
 * AMTCA_E_IO otherwise.
 */
static int
frame_read(int fd, size_t max, long long end, unsigned char **out,
    size_t *outlen)
{
	unsigned char hdr[4], *body = NULL;
	uint32_t len;
	int r;

	*out = NULL;
	*outlen = 0;
	if ((r = read_all(fd, hdr, 4, end)) != 0)
		return r == 1 ? 1 : AMTCA_E_IO;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (len > max || len < 5)
		return AMTCA_E_LIMIT;
	if ((body = malloc(len)) == NULL)
		return AMTCA_E_NOMEM;
	if (read_all(fd, body, len, end) != 0) {
		sgn_proto_free(body, len);
		return AMTCA_E_IO;
	}
	*out = body;
	*outlen = len;
	return 0;
}

/* --- the front end's side ---------------------------------------------- */

static int
dead_signer(const struct sgn *s, const char *what)
{
	return amtca_fail(AMTCA_E_IPC, "the signer process (pid %ld) %s; the CA "
	    "cannot issue or revoke until the command is run again (see the "
	    "signer's own message above, if any)", (long)s->pid, what);
}

int
sgn_proc_call(struct sgn *s, struct sgn_msg *req, struct sgn_msg *rep)
{
	struct sgn_conn *c = NULL;
	unsigned char *frame = NULL, *body = NULL;
	size_t flen = 0, blen = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	sgn_msg_init(rep, 0, 0);
	pthread_mutex_lock(&s->lock);
	for (;;) {
		int live = 0;

		for (i = 0; i < s->nconn; i++) {
			if (s->conn[i].fd < 0)
				continue;
			live = 1;
			if (!s->conn[i].busy) {
				c = &s->conn[i];
				break;
			}
		}
		if (c != NULL || !live)
			break;
		pthread_cond_wait(&s->freed, &s->lock);
	}
	if (c != NULL) {
		c->busy = 1;
		req->id = ++c->next_id;
	}
	pthread_mutex_unlock(&s->lock);
	if (c == NULL) {
		ret = dead_signer(s, "is gone");
		goto out;
	}
	if ((r = sgn_proto_encode(req, &frame, &flen)) != 0) {
		ret = r;		/* our own request: the connection is fine */
		goto release;
	}
	if (write_all(c->fd, frame, flen, AMTCA_SGN_TIMEOUT_MS) != 0) {
		ret = dead_signer(s, errno == ETIMEDOUT ? "stopped reading" :
		    "is gone");
		goto kill;
	}
	r = frame_read(c->fd, AMTCA_SGN_REPLY_MAX, amtca_now_ms() +
	    AMTCA_SGN_TIMEOUT_MS, &body, &blen);
	if (r != 0) {
		ret = dead_signer(s, r == 1 ? "closed the connection" :
		    r == AMTCA_E_LIMIT ? "sent an oversized message" :
		    "stopped answering");
		goto kill;
	}
	if ((r = sgn_proto_decode(body, blen, AMTCA_SGN_REPLY_MAX, 1, rep)) != 0) {
		ret = r;
		goto kill;
	}
	if (rep->type != (SGN_MSG_REPLY | req->type) || rep->id != req->id) {
		sgn_msg_clear(rep);
		ret = amtca_fail(AMTCA_E_IPC, "the signer answered another "
		    "request");
		goto kill;
	}
	ret = 0;
	goto release;
kill:
	/* Out of step with the signer: this connection is never used again. */
	pthread_mutex_lock(&s->lock);
	close(c->fd);
	c->fd = -1;
	pthread_mutex_unlock(&s->lock);
release:
	pthread_mutex_lock(&s->lock);
	c->busy = 0;
	pthread_cond_broadcast(&s->freed);
	pthread_mutex_unlock(&s->lock);
out:
	sgn_proto_free(frame, flen);
	sgn_proto_free(body, blen);
	return ret;
}

void
sgn_proc_close(struct sgn *s)
{
	unsigned i;
	int st;

	for (i = 0; s->conn != NULL && i < s->nconn; i++)
		if (s->conn[i].fd >= 0)
			close(s->conn[i].fd);
	free(s->conn);
	s->conn = NULL;
	if (s->pid > 0)
		while (waitpid(s->pid, &st, 0) == -1 && errno == EINTR)
			;
	s->pid = 0;
	if (s->sync_up) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->freed);
	}
}

int
sgn_spawn(const char *home, unsigned nconn, struct sgn **out)
{
	return sgn_spawn_ex(home, nconn, 0, out);
}

int
sgn_spawn_ex(const char *home, unsigned nconn, int flags, struct sgn **out)
{
	struct sgn *s = NULL;
	int (*sv)[2] = NULL;
	char *fdlist = NULL, *p, real[4096];
	const char *argv[8];
	unsigned char *body = NULL;
	size_t blen = 0, fdcap;
	struct sgn_msg hello;
	long ncpu;
	unsigned i;
	pid_t pid;
	int r, devnull = -1, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	sgn_msg_init(&hello, 0, 0);
	if (nconn == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		nconn = ncpu < 2 ? 2 : (unsigned)ncpu;
	}
	if (nconn > AMTCA_SGN_CONN_MAX)
		nconn = AMTCA_SGN_CONN_MAX;
	home = home_default_dir(home);
	if (realpath(home, real) == NULL) {
		ret = amtca_fail(AMTCA_E_CONFIG, "no CA home at %s: run 'amtca "
		    "init' or pass --home", home);
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->conn = calloc(nconn, sizeof(*s->conn))) == NULL ||
	    (sv = calloc(nconn, sizeof(*sv))) == NULL ||
	    (fdlist = malloc(fdcap = (size_t)nconn * 12 + 1)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->freed, NULL);
	s->sync_up = 1;
	for (i = 0; i < nconn; i++) {
		sv[i][0] = sv[i][1] = -1;
		s->conn[i].fd = -1;
	}
	s->nconn = nconn;
	for (i = 0; i < nconn; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]) != 0) {
			ret = amtca_fail(AMTCA_E_IO, "socketpair: %s",
			    strerror(errno));
			goto out;
		}
	for (i = 0, p = fdlist; i < nconn; i++)
		p += snprintf(p, fdcap - (size_t)(p - fdlist), "%s%d",
		    i ? "," : "", sv[i][1]);
	argv[0] = "amtca";
	argv[1] = "signer";
	argv[2] = "--home";
	argv[3] = real;
	argv[4] = "--fds";
	argv[5] = fdlist;
	argv[6] = NULL;
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1) {
		ret = amtca_fail(AMTCA_E_IO, "/dev/null: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	if ((pid = fork()) == -1) {
		ret = amtca_fail(AMTCA_E_IO, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls until exec. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(devnull, 0) == -1 || dup2(devnull, 1) == -1 ||
		    ((flags & SGN_SPAWN_LOG) == 0 && dup2(devnull, 2) == -1))
			_exit(127);
		for (i = 0; i < nconn; i++)
			if (fcntl(sv[i][1], F_SETFD, 0) == -1)
				_exit(127);
		/* Nothing else of ours crosses: every other descriptor
		 * (the store, sockets of the front end, its own ends) is
		 * closed at exec. */
		{
			int fd, maxfd = (int)sysconf(_SC_OPEN_MAX);

			if (maxfd < 0 || maxfd > 65536)
				maxfd = 65536;
			if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
				for (fd = 3; fd < maxfd; fd++)
					(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
			for (i = 0; i < nconn; i++)
				(void)fcntl(sv[i][1], F_SETFD, 0);
		}
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	for (i = 0; i < nconn; i++) {
		close(sv[i][1]);
		sv[i][1] = -1;
		s->conn[i].fd = sv[i][0];
		sv[i][0] = -1;
	}
	/* The signer says whether it could open the home and the token. */
	r = frame_read(s->conn[0].fd, AMTCA_SGN_REPLY_MAX, amtca_now_ms() +
	    AMTCA_SGN_START_MS, &body, &blen);
	if (r != 0) {
		ret = dead_signer(s, r == 1 ? "exited while starting" :
		    "did not start");
		goto out;
	}
	if ((r = sgn_proto_decode(body, blen, AMTCA_SGN_REPLY_MAX, 1,
	    &hello)) != 0) {
		ret = r;
		goto out;
	}
	if (hello.type != SGN_MSG_HELLO) {
		ret = amtca_fail(AMTCA_E_IPC, "the signer did not say hello");
		goto out;
	}
	if (hello.result != 0) {
		/* The signer's own reason (no CA home, wrong PIN, ...). */
		ret = amtca_fail(hello.result, "%s", hello.errmsg);
		goto out;
	}
	*out = s;
	s = NULL;
	ret = 0;
out:
	sgn_msg_clear(&hello);
	sgn_proto_free(body, blen);
	if (devnull != -1)
		close(devnull);
	for (i = 0; sv != NULL && i < nconn; i++) {
		if (sv[i][0] != -1)
			close(sv[i][0]);
		if (sv[i][1] != -1)
			close(sv[i][1]);
	}
	free(sv);
	free(fdlist);
	if (s != NULL) {
		sgn_proc_close(s);
		free(s);
	}
	return ret;
}

/* --- the signer's side -------------------------------------------------- */

struct serve_conn {
	struct sgn_core *core;
	int fd;
	pthread_t t;
	int started;
};

static void
logline(const char *event, const struct sgn_msg *q, int result,
    const char *serial)
{
	char msg[200];

	snprintf(msg, sizeof(msg), "%s", result != 0 ? amtca_errmsg(result) : "");
	fprintf(stderr, "amtca-signer: event=%s result=%s%s%s%s%s%s%s%s%s\n",
	    event, result == 0 ? "ok" : amtca_errname(result),
	    q != NULL && q->issue.fqdn != NULL ? " fqdn=" : "",
	    q != NULL && q->issue.fqdn != NULL ? q->issue.fqdn : "",
	    serial != NULL ? " serial=" : "", serial != NULL ? serial : "",
	    result != 0 ? " reason=\"" : "", result != 0 ? msg : "",
	    result != 0 ? "\"" : "", "");
}

/* Run one decoded request and encode its reply into *frame. */
static int
dispatch(struct sgn_core *core, struct sgn_msg *q, unsigned char **frame,
    size_t *flen)
{
	struct sgn_msg a;
	struct store_cert *one = NULL, *list = NULL;
	unsigned char *der = NULL;
	size_t derlen = 0, n = 0;
	char *serial = NULL, *user = NULL, *password = NULL;
	int r, ret;

	sgn_msg_init(&a, SGN_MSG_REPLY | q->type, q->id);
	switch (q->type) {
	case SGN_MSG_AUTH:
		r = sgn_core_auth(core, &q->who, &a.client);
		break;
	case SGN_MSG_ISSUE:
		r = sgn_core_issue(core, &q->who, &q->issue, &der, &derlen,
		    &serial);
		a.der = der;
		a.derlen = derlen;
		a.serial = serial;
		logline("issue", q, r, serial);
		break;
	case SGN_MSG_CERT_GET:
		r = sgn_core_cert_get(core, q->serial, &one);
		a.certs = one;
		a.ncerts = one != NULL;
		break;
	case SGN_MSG_CERT_LIST:
		r = sgn_core_cert_list(core, &q->query, &list, &n);
		a.certs = list;
		a.ncerts = n;
		break;
	case SGN_MSG_REVOKE:
		r = sgn_core_revoke(core, &q->who, q->serial, q->reason, &one,
		    &a.was);
		a.certs = one;
		a.ncerts = one != NULL;
		logline("revoke", NULL, r, q->serial);
		break;
	case SGN_MSG_CRL:
		r = sgn_core_crl(core, q->issuer, &der, &derlen);
		a.der = der;
		a.derlen = derlen;
		break;
	case SGN_MSG_CRED_PUT:
		r = sgn_core_cred_put(core, q->name, q->user, q->password);
		break;
	case SGN_MSG_AUDIT_NOTE:
		r = sgn_core_audit_note(core, &q->who, q->action, q->subject,
		    q->detail);
		break;
	case SGN_MSG_CRED_GET:
		r = sgn_core_cred_get(core, q->name, q->fqdn, &user, &password);
		a.user = user;
		a.password = password;
		logline("cred_get", NULL, r, NULL);
		break;
	default:
		r = amtca_fail(AMTCA_E_IPC, "unknown request");
	}
	a.result = r;
	if (r != 0)
		a.errmsg = amtca_errmsg(r);
	ret = sgn_proto_encode(&a, frame, flen);
	if (ret != 0 && r == 0) {
		/* Too big to send (a list over the reply cap): say so. */
		char why[200];

		snprintf(why, sizeof(why), "%s", amtca_errmsg(ret));
		sgn_msg_clear(&a);
		sgn_msg_init(&a, SGN_MSG_REPLY | q->type, q->id);
		a.result = AMTCA_E_LIMIT;
		a.errmsg = why;
		ret = sgn_proto_encode(&a, frame, flen);
	}
	sgn_client_clear(&a.client);
	store_cert_free(one);
	store_certs_free(list, n);
	free(der);
	free(serial);
	free(user);
	amtca_secret_free(password);
	return ret;
}

static void *
serve_conn(void *arg)
{
	struct serve_conn *sc = arg;
	struct sgn_msg q;
	unsigned char *body = NULL, *frame = NULL;
	size_t blen = 0, flen = 0;
	int r;

	for (;;) {
		r = frame_read(sc->fd, AMTCA_SGN_REQ_MAX, 0, &body, &blen);
		if (r == 1)
			break;			/* the front end closed it */
		if (r != 0) {
			fprintf(stderr, "amtca-signer: event=drop fd=%d reason=\"%s\"\n",
			    sc->fd, r == AMTCA_E_LIMIT ? "frame length out of "
			    "range" : "read failed");
			break;
		}
		if ((r = sgn_proto_decode(body, blen, AMTCA_SGN_REQ_MAX, 0,
		    &q)) != 0) {
			fprintf(stderr, "amtca-signer: event=drop fd=%d "
			    "reason=\"%s\"\n", sc->fd, amtca_errmsg(r));
			sgn_proto_free(body, blen);
			body = NULL;
			break;
		}
		r = dispatch(sc->core, &q, &frame, &flen);
		sgn_msg_clear(&q);
		sgn_proto_free(body, blen);
		body = NULL;
		if (r != 0) {
			fprintf(stderr, "amtca-signer: event=drop fd=%d "
			    "reason=\"cannot encode a reply\"\n", sc->fd);
			break;
		}
		r = write_all(sc->fd, frame, flen, AMTCA_SGN_TIMEOUT_MS);
		sgn_proto_free(frame, flen);
		frame = NULL;
		if (r != 0)
			break;
		amtca_err_clear();
	}
	sgn_proto_free(body, blen);
	close(sc->fd);
	sc->fd = -1;
	return NULL;
}

int
sgn_signer_main(const char *home, const int *fds, size_t nfds)
{
	struct sgn_core *core = NULL;
	struct serve_conn *sc = NULL;
	struct sgn_msg hello;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	unsigned char *frame = NULL;
	size_t flen = 0, i;
	char *peer = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1) {
		ret = amtca_fail(AMTCA_E_IPC, "the front end is gone");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	/*
	 * The front end decides when we stop: a Ctrl-C or a service
	 * manager's SIGTERM to the whole group must not take the signer away
	 * while the front end finishes (supersedes a proven leaf, answers
	 * in-flight requests).  We exit when its sockets close, or by
	 * PR_SET_PDEATHSIG when it dies.
	 */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	if (nfds == 0 || nfds > AMTCA_SGN_CONN_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "--fds takes 1 to %d descriptors",
		    AMTCA_SGN_CONN_MAX);
		goto out;
	}
	for (i = 0; i < nfds; i++) {
		int type = 0;
		socklen_t tl = sizeof(type);

		if (getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
		    type != SOCK_STREAM) {
			ret = amtca_fail(AMTCA_E_USAGE, "descriptor %d is not a "
			    "stream socket: 'amtca signer' is started by the "
			    "other commands, not by hand", fds[i]);
			goto out;
		}
		(void)fcntl(fds[i], F_SETFD, FD_CLOEXEC);
	}
	/* Who is the front end: the process at the other end of the
	 * socketpair, as the kernel says. */
	if (getsockopt(fds[0], SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
		ret = amtca_fail(AMTCA_E_IPC, "SO_PEERCRED: %s", strerror(errno));
		goto out;
	}
	if ((r = sgn_user_at_host(cred.uid, &peer)) != 0) {
		ret = r;
		goto out;
	}
	r = sgn_core_open(home, 1, peer, &core);
	sgn_msg_init(&hello, SGN_MSG_HELLO, 0);
	hello.result = r;
	hello.errmsg = r != 0 ? amtca_errmsg(r) : "";
	if (sgn_proto_encode(&hello, &frame, &flen) != 0 ||
	    write_all(fds[0], frame, flen, AMTCA_SGN_TIMEOUT_MS) != 0) {
		ret = amtca_fail(AMTCA_E_IPC, "cannot greet the front end");
		goto out;
	}
	if (r != 0) {
		ret = r;
		goto out;
	}
	if ((sc = calloc(nfds, sizeof(*sc))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < nfds; i++) {
		sc[i].core = core;
		sc[i].fd = fds[i];
		if (pthread_create(&sc[i].t, NULL, serve_conn, &sc[i]) != 0) {
			ret = amtca_fail(AMTCA_E_NOMEM, "cannot start a thread");
			goto out;
		}
		sc[i].started = 1;
	}
	ret = 0;
out:
	/* A failed start: end the started threads' connections too. */
	for (i = 0; ret != 0 && sc != NULL && i < nfds; i++)
		if (sc[i].started)
			(void)shutdown(fds[i], SHUT_RDWR);
	for (i = 0; sc != NULL && i < nfds; i++)
		if (sc[i].started)
			pthread_join(sc[i].t, NULL);
	free(sc);
	sgn_proto_free(frame, flen);
	sgn_core_free(core);
	free(peer);
	return ret;
}
