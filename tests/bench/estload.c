/*
 * estload: the EST load generator behind scripts/bench-est.sh (a benchmark
 * tool, not a test).  C clients, each a libcurl easy handle in one multi
 * handle with its own TLS client certificate and a kept-alive connection,
 * POST simpleenroll requests back to back for S seconds; the CSRs (P-256
 * keys, names h<i>.<domain>) are all made before the clock starts, and
 * every client's first request (the TLS handshake) is made before it too.
 *
 *   estload --url URL --cacert FILE --resolve HOST:PORT:ADDR
 *           --certs DIR --clients C --seconds S --domain D [--csrs N]
 *
 * DIR holds c<i>.pem and c<i>.key for i in 1..C.  Prints one line:
 *   est_ok=N est_failed=F seconds=S est_per_s=R clients=C
 * and exits 1 when any request failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

struct client {
	CURL *e;
	struct curl_slist *hdr;
	char *resp;
	size_t resplen;
	size_t next;		/* next CSR */
};

static char **csrs;
static size_t ncsr;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct client *c = arg;
	size_t len = sz * n;
	char *nr;

	if (c->resplen + len > 1024 * 1024)
		return 0;
	if ((nr = realloc(c->resp, c->resplen + len + 1)) == NULL)
		return 0;
	c->resp = nr;
	memcpy(c->resp + c->resplen, p, len);
	c->resplen += len;
	c->resp[c->resplen] = '\0';
	return len;
}

/* A base64 DER CSR for a fresh P-256 key naming `cn`. */
static char *
make_csr(const char *cn)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *r = X509_REQ_new();
	X509_NAME *nm = X509_NAME_new();
	unsigned char *der = NULL;
	char *out = NULL;
	int len;

	if (k == NULL || r == NULL || nm == NULL ||
	    !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_subject_name(r, nm) || !X509_REQ_set_pubkey(r, k) ||
	    !X509_REQ_sign(r, k, EVP_sha256()) ||
	    (len = i2d_X509_REQ(r, &der)) <= 0)
		goto out;
	if ((out = malloc((size_t)len * 4 / 3 + 8)) == NULL)
		goto out;
	EVP_EncodeBlock((unsigned char *)out, der, len);
out:
	OPENSSL_free(der);
	X509_NAME_free(nm);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
	return out;
}

static void
arm(struct client *c)
{
	const char *body = csrs[c->next++ % ncsr];

	c->resplen = 0;
	curl_easy_setopt(c->e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
}

static void
usage(void)
{
	fprintf(stderr, "usage: estload --url URL --cacert FILE --resolve "
	    "HOST:PORT:ADDR --certs DIR --clients C --seconds S --domain D "
	    "[--csrs N]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *url = NULL, *cacert = NULL, *resolve = NULL, *dir = NULL;
	const char *domain = NULL;
	long nclients = 0, secs = 0, ncsrs = 0;
	struct client *cl;
	struct curl_slist *res = NULL;
	CURLM *m;
	CURLMsg *msg;
	char path[1024], name[300];
	unsigned long ok = 0, failed = 0, warm = 0;
	double start = 0, end, elapsed;
	int i, running, q, measuring = 0;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--url") == 0) url = argv[i + 1];
		else if (strcmp(argv[i], "--cacert") == 0) cacert = argv[i + 1];
		else if (strcmp(argv[i], "--resolve") == 0) resolve = argv[i + 1];
		else if (strcmp(argv[i], "--certs") == 0) dir = argv[i + 1];
		else if (strcmp(argv[i], "--domain") == 0) domain = argv[i + 1];
		else if (strcmp(argv[i], "--clients") == 0) nclients = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--seconds") == 0) secs = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--csrs") == 0) ncsrs = atol(argv[i + 1]);
		else usage();
	}
	if (i != argc || url == NULL || cacert == NULL || dir == NULL ||
	    domain == NULL || nclients < 1 || nclients > 1024 || secs < 1)
		usage();
	if (ncsrs <= 0)
		ncsrs = 4096;	/* a fresh name for nearly every request */
	/* Before the clock: every CSR. */
	if ((csrs = calloc((size_t)ncsrs, sizeof(*csrs))) == NULL)
		return 1;
	for (ncsr = 0; ncsr < (size_t)ncsrs; ncsr++) {
		snprintf(name, sizeof(name), "h%zu.%s", ncsr, domain);
		if ((csrs[ncsr] = make_csr(name)) == NULL) {
			fprintf(stderr, "estload: cannot make a CSR\n");
			return 1;
		}
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (resolve != NULL)
		res = curl_slist_append(NULL, resolve);
	m = curl_multi_init();
	cl = calloc((size_t)nclients, sizeof(*cl));
	for (i = 0; i < nclients; i++) {
		struct client *c = &cl[i];

		c->e = curl_easy_init();
		c->next = (size_t)i * (ncsr / (size_t)nclients);
		c->hdr = curl_slist_append(NULL, "Content-Type: application/pkcs10");
		curl_easy_setopt(c->e, CURLOPT_URL, url);
		curl_easy_setopt(c->e, CURLOPT_HTTPHEADER, c->hdr);
		curl_easy_setopt(c->e, CURLOPT_CAINFO, cacert);
		if (res != NULL)
			curl_easy_setopt(c->e, CURLOPT_RESOLVE, res);
		snprintf(path, sizeof(path), "%s/c%d.pem", dir, i + 1);
		curl_easy_setopt(c->e, CURLOPT_SSLCERT, path);
		snprintf(path, sizeof(path), "%s/c%d.key", dir, i + 1);
		curl_easy_setopt(c->e, CURLOPT_SSLKEY, path);
		curl_easy_setopt(c->e, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(c->e, CURLOPT_WRITEDATA, c);
		curl_easy_setopt(c->e, CURLOPT_PRIVATE, c);
		curl_easy_setopt(c->e, CURLOPT_TIMEOUT, 60L);
		curl_easy_setopt(c->e, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(c->e, CURLOPT_PROTOCOLS_STR, "https");
		arm(c);
		curl_multi_add_handle(m, c->e);
	}
	end = 0;
	for (;;) {
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &q)) != NULL) {
			struct client *c = NULL;
			long code = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
			    (char **)&c);
			curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_RESPONSE_CODE, &code);
			curl_multi_remove_handle(m, c->e);
			if (!measuring) {
				/* Warm-up: the handshake of each client. */
				if (msg->data.result != CURLE_OK || code != 200) {
					fprintf(stderr, "estload: warm-up failed: "
					    "%s HTTP %ld %.200s\n",
					    curl_easy_strerror(msg->data.result),
					    code, c->resp ? c->resp : "");
					return 1;
				}
				if (++warm == (unsigned long)nclients) {
					measuring = 1;
					start = now_s();
					end = start + (double)secs;
					for (i = 0; i < nclients; i++) {
						arm(&cl[i]);
						curl_multi_add_handle(m, cl[i].e);
					}
				}
				continue;
			}
			if (msg->data.result == CURLE_OK && code == 200 &&
			    c->resplen > 0)
				ok++;
			else {
				if (failed < 5)
					fprintf(stderr, "estload: %s HTTP %ld "
					    "%.200s\n", curl_easy_strerror(
					    msg->data.result), code,
					    c->resp ? c->resp : "");
				failed++;
			}
			if (now_s() < end) {
				arm(c);
				curl_multi_add_handle(m, c->e);
			}
		}
		if (measuring && running == 0 && now_s() >= end)
			break;
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	elapsed = now_s() - start;
	printf("est_ok=%lu est_failed=%lu seconds=%.2f est_per_s=%.1f "
	    "clients=%ld\n", ok, failed, elapsed, (double)ok / elapsed,
	    nclients);
	for (i = 0; i < nclients; i++) {
		curl_easy_cleanup(cl[i].e);
		curl_slist_free_all(cl[i].hdr);
		free(cl[i].resp);
	}
	free(cl);
	curl_slist_free_all(res);
	curl_multi_cleanup(m);
	curl_global_cleanup();
	for (i = 0; (size_t)i < ncsr; i++)
		free(csrs[i]);
	free(csrs);
	return failed == 0 ? 0 : 1;
}
