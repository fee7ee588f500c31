/* See helper_sim_proc.h. */
#include "integration/helper_sim_proc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SIMH_ARGS_MAX 64

void
simh_addr(char *out, size_t outlen, unsigned k)
{
	unsigned p = (unsigned)getpid();

	snprintf(out, outlen, "127.%u.%u.%u", 64 + p % 128, (p / 128) % 250,
	    1 + k % 250);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Children still running: killed at exit when a failed assert skipped stop. */
static pid_t live[32];

static void
kill_live(void)
{
	size_t i;

	for (i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
			live[i] = 0;
		}
}

static void
track(pid_t pid, int add)
{
	static int registered;
	size_t i;

	if (!registered) {
		atexit(kill_live);
		registered = 1;
	}
	for (i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		if (add && live[i] == 0) {
			live[i] = pid;
			return;
		}
		if (!add && live[i] == pid) {
			live[i] = 0;
			return;
		}
	}
}

static int
spawn(struct simh *s, const char *const *args)
{
	const char *bin = getenv("AMTSIM");
	const char *argv[SIMH_ARGS_MAX];
	char buf[256];
	size_t n = 0, got = 0, i;
	int pfd[2];
	long long deadline;

	if (bin == NULL)
		bin = "build/amtsim";
	argv[n++] = bin;
	argv[n++] = "--user";
	argv[n++] = "admin";
	argv[n++] = "--password-file";
	argv[n++] = s->pwfile;
	for (i = 0; args != NULL && args[i] != NULL; i++) {
		if (n + 1 >= SIMH_ARGS_MAX)
			return -1;
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	if (pipe(pfd) != 0)
		return -1;
	fflush(NULL);
	if ((s->pid = fork()) < 0)
		return -1;
	if (s->pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	track(s->pid, 1);
	s->out_fd = pfd[0];
	deadline = now_ms() + 30000;
	while (got < sizeof(buf) - 1) {
		struct pollfd p = { s->out_fd, POLLIN, 0 };
		long long left = deadline - now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if ((r = read(s->out_fd, buf + got, sizeof(buf) - 1 - got)) <= 0)
			break;
		got += (size_t)r;
		buf[got] = '\0';
		if (strstr(buf, "ready\n") != NULL)
			return 0;
	}
	simh_stop(s);
	return -1;
}

int
simh_start(struct simh *s, const char *password, const char *const *args)
{
	int fd;

	memset(s, 0, sizeof(*s));
	s->pid = -1;
	s->out_fd = -1;
	snprintf(s->dir, sizeof(s->dir), "/tmp/amtsim-test.XXXXXX");
	if (mkdtemp(s->dir) == NULL)
		return -1;
	snprintf(s->pwfile, sizeof(s->pwfile), "%s/password", s->dir);
	fd = open(s->pwfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, password, strlen(password)) != (ssize_t)strlen(password) ||
	    write(fd, "\n", 1) != 1) {
		close(fd);
		return -1;
	}
	close(fd);
	return spawn(s, args);
}

int
simh_restart(struct simh *s, const char *const *args)
{
	return spawn(s, args);
}

int
simh_stop(struct simh *s)
{
	long long deadline;
	int st = 0;
	pid_t r;

	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	deadline = now_ms() + 10000;
	while ((r = waitpid(s->pid, &st, WNOHANG)) == 0 && now_ms() < deadline)
		usleep(10000);
	if (r == 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &st, 0);
		st = -1;
	}
	track(s->pid, 0);
	s->pid = -1;
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -1;
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

void
simh_cleanup(struct simh *s)
{
	DIR *dp;
	struct dirent *e;
	char p[512];

	if (s->dir[0] == '\0' || (dp = opendir(s->dir)) == NULL)
		return;
	while ((e = readdir(dp)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", s->dir, e->d_name);
		unlink(p);
	}
	closedir(dp);
	rmdir(s->dir);
	s->dir[0] = '\0';
}

void
simh_resp_free(struct simh_resp *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

char *
simh_header(const struct simh_resp *r, const char *name)
{
	const char *p = r->head, *e;
	size_t nl = strlen(name);

	while (p != NULL && (p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ')
				p++;
			e = strstr(p, "\r\n");
			return strndup(p, e != NULL ? (size_t)(e - p) : strlen(p));
		}
	}
	return NULL;
}

char *
simh_digest_param(const char *www, const char *name)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "%s=\"", name);
	if ((p = strstr(www, pat)) == NULL)
		return NULL;
	p += strlen(pat);
	if ((e = strchr(p, '"')) == NULL)
		return NULL;
	return strndup(p, (size_t)(e - p));
}

static int
dechunk(const char *in, size_t len, struct simh_resp *out)
{
	size_t pos = 0, n;
	char *end;

	if ((out->body = malloc(len + 1)) == NULL)
		return -1;
	out->body_len = 0;
	for (;;) {
		n = strtoul(in + pos, &end, 16);
		if (end == in + pos || (end = strstr(end, "\r\n")) == NULL)
			return -1;
		pos = (size_t)(end - in) + 2;
		if (n == 0)
			break;
		if (pos + n + 2 > len)
			return -1;
		memcpy(out->body + out->body_len, in + pos, n);
		out->body_len += n;
		out->nchunks++;
		pos += n + 2;
	}
	out->body[out->body_len] = '\0';
	return 0;
}

int
simh_http(const char *addr, int port, const char *method, const char *path,
    const char *headers, const char *body, struct simh_resp *out)
{
	struct sockaddr_in sa;
	char *req = NULL, *buf = NULL, *hend, *te;
	size_t cap = 65536, len = 0;
	ssize_t r;
	int fd = -1, ret = -1, n;
	struct timeval tv = { 10, 0 };

	memset(out, 0, sizeof(*out));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -1;
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
	    "Content-Type: application/soap+xml; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n%s\r\n%s", method, path, addr, port,
	    body != NULL ? strlen(body) : 0, headers != NULL ? headers : "",
	    body != NULL ? body : "");
	if (n < 0) {
		req = NULL;
		goto out;
	}
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		goto out;
	if ((buf = malloc(cap + 1)) == NULL)
		goto out;
	while ((r = recv(fd, buf + len, cap - len, 0)) > 0) {
		len += (size_t)r;
		if (len == cap) {
			char *nb;

			cap *= 2;
			if ((nb = realloc(buf, cap + 1)) == NULL)
				goto out;
			buf = nb;
		}
	}
	buf[len] = '\0';
	ret = 0;
	if (len == 0)
		goto out;	/* closed without an answer: status 0 */
	if ((hend = strstr(buf, "\r\n\r\n")) == NULL ||
	    sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
		ret = -1;
		goto out;
	}
	out->head = strndup(buf, (size_t)(hend - buf) + 2);
	te = simh_header(out, "Transfer-Encoding");
	if (te != NULL && strcasecmp(te, "chunked") == 0) {
		if (dechunk(hend + 4, len - (size_t)(hend + 4 - buf), out) != 0)
			ret = -1;
	} else {
		out->body = strdup(hend + 4);
		out->body_len = out->body != NULL ? strlen(out->body) : 0;
	}
	free(te);
out:
	free(req);
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}
