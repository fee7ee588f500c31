#include "helper_amt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESP_DIR "/go-wsman-messages/pkg/wsman/wsmantesting/responses/"

char *
fx_load(const char *rel, size_t *len)
{
	const char *base = getenv("AMTCA_FIXTURES");
	char path[1024];
	FILE *f;
	char *buf;
	long n;

	if (base == NULL || *base == '\0')
		base = "tests/fixtures";
	snprintf(path, sizeof(path), "%s%s%s", base, RESP_DIR, rel);
	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "fixture missing: %s\n", path);
		abort();
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n < 0 || (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n)
		abort();
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

/* Chunk framing removed; bytes otherwise as captured. */
const char cap_already_exists[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a:Envelope xmlns:g=\"http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd\" xmlns:f=\"http://schemas.xmlsoap.org/ws/2004/08/eventing\" xmlns:e=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns:d=\"http://schemas.xmlsoap.org/ws/2004/09/transfer\" xmlns:c=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" xmlns:b=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:h=\"http://schemas.xmlsoap.org/ws/2005/02/trust\" xmlns:i=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><a:Header><b:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</b:To><b:RelatesTo>31</b:RelatesTo><b:Action a:mustUnderstand=\"true\">http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</b:Action><b:MessageID>uuid:00000000-8086-8086-8086-000000023EEF</b:MessageID></a:Header><a:Body><a:Fault><a:Code><a:Value>a:Sender</a:Value><a:Subcode><a:Value>e:AlreadyExists</a:Value></a:Subcode></a:Code><a:Reason><a:Text xml:lang=\"en-US\">The sender attempted to create a resource which already exists.</a:Text></a:Reason><a:Detail></a:Detail></a:Fault></a:Body></a:Envelope>";

const char cap_destination_unreachable[] =
    "<a:Envelope xmlns:g=\"http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd\" xmlns:f=\"http://schemas.xmlsoap.org/ws/2004/08/eventing\" xmlns:e=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns:d=\"http://schemas.xmlsoap.org/ws/2004/09/transfer\" xmlns:c=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" xmlns:b=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:h=\"http://schemas.xmlsoap.org/ws/2005/02/trust\" xmlns:i=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><a:Header><b:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</b:To><b:RelatesTo>0</b:RelatesTo><b:Action a:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/08/addressing/fault</b:Action><b:MessageID>uuid:00000000-8086-8086-8086-000000000061</b:MessageID></a:Header><a:Body><a:Fault><a:Code><a:Value>a:Sender</a:Value><a:Subcode><a:Value>b:DestinationUnreachable</a:Value></a:Subcode></a:Code><a:Reason><a:Text xml:lang=\"en-US\">No route can be determined to reach the destination role defined by the WSAddressing To.</a:Text></a:Reason><a:Detail></a:Detail></a:Fault></a:Body></a:Envelope>";

const char cap_401_head[] =
    "HTTP/1.1 401 Unauthorized\r\n"
    "WWW-Authenticate: Digest realm=\"Digest:A4070000000000000000000000000000\", nonce=\"wlbEK1EtAAAAAAAAWW5aUHFp+mQQ1j63\",stale=\"false\",qop=\"auth\"\r\n"
    "Content-Type: text/html\r\n"
    "Server: Intel(R) Active Management Technology 11.8.50.3425\r\n";

const char cap_401_body[] =
    "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" >\n"
    "<html><head><link rel=stylesheet href=/styles.css></head><body>"
    "<h2 class=warn>Log on failed. Incorrect user name or password, or user account temporarily locked.</h2>"
    "</body></html>\n";

static char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

char *
http_401(const char *stale)
{
	static unsigned n;
	char *head, *r;

	/* A fresh 32-char nonce per challenge, as AMT does. */
	head = xasprintf("HTTP/1.1 401 Unauthorized\r\n"
	    "WWW-Authenticate: Digest realm=\"Digest:A4070000000000000000000000000000\", "
	    "nonce=\"wlbEK1EtAAAAAAAAWW5aUHFp+mQQ%04u\",stale=\"%s\",qop=\"auth\"\r\n"
	    "Content-Type: text/html\r\n"
	    "Server: Intel(R) Active Management Technology 11.8.50.3425\r\n",
	    n++ % 10000, stale);
	r = xasprintf("%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    head, strlen(cap_401_body), cap_401_body);
	free(head);
	return r;
}

char *
http_chunked(int status, const char *reason, const char *body)
{
	static const size_t sizes[] = { 0x220, 7, 0x2FA, 1, 33, 500 };
	size_t off = 0, len = strlen(body), k = 0, c, cap;
	char *out, *p;

	cap = len * 2 + 4096;
	if ((out = malloc(cap)) == NULL)
		abort();
	p = out + sprintf(out, "HTTP/1.1 %d %s\r\n"
	    "Date: Mon, 31 Jan 2022 10:23:04 GMT\r\n"
	    "Server: Intel(R) Active Management Technology 15.0.23.1706\r\n"
	    "X-Frame-Options: DENY\r\n"
	    "Content-Type: application/soap+xml; charset=UTF-8\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", status, reason);
	while (off < len) {
		c = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
		if (c > len - off)
			c = len - off;
		p += sprintf(p, "%04zX\r\n", c);
		memcpy(p, body + off, c);
		p += c;
		*p++ = '\r';
		*p++ = '\n';
		off += c;
	}
	p += sprintf(p, "0\r\n\r\n");
	return out;
}

static void
write_all(int fd, const char *p, size_t n, size_t piece)
{
	size_t w, step;
	ssize_t r;

	for (w = 0; w < n; w += (size_t)r) {
		step = piece != 0 && piece < n - w ? piece : n - w;
		if ((r = send(fd, p + w, step, MSG_NOSIGNAL)) <= 0)
			return;
		if (piece != 0)
			usleep(1000);
	}
}

/* Read one request (headers + Content-Length body); NULL on EOF. */
static char *
read_request(int fd, volatile int *stop)
{
	size_t cap = 8192, len = 0, need = 0;
	char *buf = malloc(cap), *hend, *cl;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t r;

	if (buf == NULL)
		abort();
	for (;;) {
		if (len + 1 >= cap && (buf = realloc(buf, cap *= 2)) == NULL)
			abort();
		if (poll(&pfd, 1, 100) == 0) {
			if (*stop)
				break;
			continue;
		}
		if ((r = recv(fd, buf + len, cap - len - 1, 0)) <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		if ((hend = strstr(buf, "\r\n\r\n")) == NULL)
			continue;
		if (need == 0) {
			need = (size_t)(hend + 4 - buf);
			if ((cl = strcasestr(buf, "\r\nContent-Length:")) != NULL &&
			    cl < hend)
				need += strtoul(cl + 17, NULL, 10);
		}
		if (len >= need)
			return buf;
	}
	free(buf);
	return NULL;
}

static void *
serve(void *arg)
{
	struct tsrv *s = arg;
	struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
	const struct tsrv_resp *rsp;
	char *req;
	int fd, one = 1, keep;

	while (!s->stop) {
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s->nconn++;
		keep = 1;
		while (keep) {
			/*
			 * A client may leave this connection idle in its pool
			 * and open a fresh one (the AMT client does for calls
			 * that change state): serve whichever speaks first.
			 */
			struct pollfd two[2] = { { .fd = fd, .events = POLLIN },
			    { .fd = s->lfd, .events = POLLIN } };

			if (s->stop || poll(two, 2, 100) < 0)
				break;
			if (!(two[0].revents & (POLLIN | POLLHUP))) {
				if (two[1].revents & POLLIN)
					break;
				continue;
			}
			if ((req = read_request(fd, &s->stop)) == NULL)
				break;
			if (s->nreq < TSRV_MAX_REQ)
				s->req[s->nreq] = req;
			else
				free(req);
			if (s->nreq >= s->nscript) {
				s->nreq++;
				break;
			}
			rsp = &s->script[s->nreq++];
			if (rsp->raw == NULL)
				break;		/* a dropped connection */
			write_all(fd, rsp->raw, rsp->len ? rsp->len :
			    strlen(rsp->raw), rsp->piece);
			keep = strcasestr(rsp->raw, "\r\nConnection: close") == NULL;
		}
		close(fd);
	}
	return NULL;
}

int
tsrv_start(struct tsrv *s, const struct tsrv_resp *script, size_t n)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(s, 0, sizeof(*s));
	s->script = script;
	s->nscript = n;
	if ((s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(s->lfd, 8) != 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&sin, &sl) != 0)
		return -1;
	s->port = ntohs(sin.sin_port);
	return pthread_create(&s->th, NULL, serve, s) == 0 ? 0 : -1;
}

void
tsrv_stop(struct tsrv *s)
{
	unsigned i;

	s->stop = 1;
	pthread_join(s->th, NULL);
	close(s->lfd);
	(void)i;
}

void
tsrv_free(struct tsrv *s)
{
	unsigned i;

	for (i = 0; i < s->nreq && i < TSRV_MAX_REQ; i++) {
		free(s->req[i]);
		s->req[i] = NULL;
	}
}

char *
auth_param(const char *req, const char *key)
{
	const char *h, *eol, *p;
	size_t kl = strlen(key);

	if ((h = strcasestr(req, "\r\nAuthorization: Digest ")) == NULL)
		return NULL;
	eol = strstr(h + 2, "\r\n");
	for (p = h + 24; p != NULL && p < eol; p = strchr(p, ',')) {
		while (*p == ',' || *p == ' ')
			p++;
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			p += kl + 1;
			if (*p == '"')
				return strndup(p + 1, strcspn(p + 1, "\""));
			return strndup(p, strcspn(p, ",\r"));
		}
		if (*p == '"' || strchr(p, '=') == NULL)
			break;
		/* skip a quoted value that may contain commas */
		p = strchr(p, '=') + 1;
		if (*p == '"')
			p = strchr(p + 1, '"');
	}
	return NULL;
}
