/*
 * enroll/serve/publish.c: what consoles and verifiers fetch, anonymously,
 * on the HTTPS listener and on the plain-HTTP publication listener
 * (Windows fetches CDP and AIA over HTTP only):
 *
 *   /chain.pem          the current intermediate, the retired ones still in
 *                       their overlap (newest first), the root: byte-equal
 *                       to `amtca chain`
 *   /chain.p7b          the same, PKCS#7 certs-only (DER)
 *   /root.pem           the root
 *   /crl                the current issuing CA's CRL (DER)
 *   /crl/<id>.crl       the CRL of the intermediate whose subject key id is
 *                       <id>: the current one or a retired one (each signs
 *                       its own, docs/rotation.md)
 *   /ca/<id>.cer        that CA's certificate (DER)
 *
 * <id> is the lowercase hex of the certificate's subject key identifier.
 * CRLs come from the signer (sgn_crl), built from the records: a revoke
 * from the CLI shows at the latest AMTCA_SERVE_CRL_CACHE_S seconds later
 * (the cache keeps a flood of fetches off the signer); nextUpdate is the
 * signer's.  A cached CRL is also checked against the store's revocation
 * mark (store_revocation_mark()) before it is served: with a shared
 * PostgreSQL store, where the operational state is the CA's database, a
 * revocation on any node shows in every node's next CRL fetch.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/home.h"
#include "enroll/serve/serve.h"

#define PUB_KEYID_HEX_MAX 128		/* 64-byte key identifiers */
#define PUB_CACHE_SLOTS (AMTCA_RETIRED_MAX + 2)

/* One service per process: the cache is the module's. */
static struct {
	char id[PUB_KEYID_HEX_MAX + 1];	/* "" for /crl */
	unsigned char *der;
	size_t len;
	struct timespec at;
	uint64_t mark;			/* revocation mark before it was built */
} cache[PUB_CACHE_SLOTS];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

int
publish_path(const char *p)
{
	return strcmp(p, "/chain.pem") == 0 || strcmp(p, "/chain.p7b") == 0 ||
	    strcmp(p, "/root.pem") == 0 || strcmp(p, "/crl") == 0 ||
	    strncmp(p, "/crl/", 5) == 0 || strncmp(p, "/ca/", 4) == 0;
}

static int
bio_take(BIO *b, unsigned char **out, size_t *len)
{
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);

	*out = NULL;
	*len = 0;
	if (n < 0 || (*out = malloc((size_t)n + 1)) == NULL)
		return AMTCA_E_NOMEM;
	memcpy(*out, p, (size_t)n);
	*len = (size_t)n;
	return 0;
}

size_t
serve_ca_certs(struct home *h, X509 *out[SERVE_CAS_MAX])
{
	size_t n = 0, i;

	out[n++] = h->inter;
	for (i = 0; i < h->nretired && i < AMTCA_RETIRED_MAX; i++)
		out[n++] = h->retired[i];
	out[n++] = h->root;
	return n;
}

/* Lowercase hex of the subject key id into buf; 0 or -1. */
static int
keyid_hex(X509 *x, char *buf, size_t len)
{
	static const char hx[] = "0123456789abcdef";
	const ASN1_OCTET_STRING *k = X509_get0_subject_key_id(x);
	const unsigned char *d;
	int i, n;

	if (k == NULL)
		return -1;
	d = ASN1_STRING_get0_data(k);
	n = ASN1_STRING_length(k);
	if (n <= 0 || (size_t)n * 2 + 1 > len)
		return -1;
	for (i = 0; i < n; i++) {
		buf[2 * i] = hx[d[i] >> 4];
		buf[2 * i + 1] = hx[d[i] & 15];
	}
	buf[2 * n] = '\0';
	return 0;
}

/* "<id><suffix>" with <id> lowercase hex: the CA certificate it names. */
static X509 *
by_keyid(struct home *h, const char *name, const char *suffix, char *id,
    size_t idlen)
{
	X509 *cas[SERVE_CAS_MAX];
	char k[PUB_KEYID_HEX_MAX + 1];
	size_t n, sl = strlen(suffix), i;

	n = strlen(name);
	if (n <= sl || strcmp(name + n - sl, suffix) != 0 ||
	    n - sl > PUB_KEYID_HEX_MAX || n - sl >= idlen)
		return NULL;
	for (i = 0; i < n - sl; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		    (name[i] >= 'a' && name[i] <= 'f')))
			return NULL;
	memcpy(id, name, n - sl);
	id[n - sl] = '\0';
	n = serve_ca_certs(h, cas);
	for (i = 0; i < n; i++)
		if (keyid_hex(cas[i], k, sizeof(k)) == 0 && strcmp(k, id) == 0)
			return cas[i];
	return NULL;
}

static double
age_s(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) +
	    (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* The CRL of `id` ("" current), fresh within AMTCA_SERVE_CRL_CACHE_S. */
static int
crl_get(struct serve *s, const char *id, unsigned char **out, size_t *len)
{
	unsigned char *der = NULL;
	size_t dlen = 0, i, slot = 0;
	uint64_t mark = 0;
	int r, marked, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*len = 0;
	/* Read before the CRL is built: a revocation committed in between
	   makes the next fetch build it again, never serve it stale. */
	marked = store_revocation_mark(serve_home(s)->state, &mark) == 0;
	if (!marked)
		amtca_err_clear();
	pthread_mutex_lock(&cache_mu);
	for (i = 0; i < PUB_CACHE_SLOTS; i++)
		if (cache[i].der != NULL && strcmp(cache[i].id, id) == 0 &&
		    marked && cache[i].mark == mark &&
		    age_s(&cache[i].at) < AMTCA_SERVE_CRL_CACHE_S) {
			if ((*out = malloc(cache[i].len)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			memcpy(*out, cache[i].der, cache[i].len);
			*len = cache[i].len;
			ret = 0;
			goto out;
		}
	pthread_mutex_unlock(&cache_mu);
	/* Not under the lock: the signer may take its time. */
	if ((r = sgn_crl(serve_sgn(s), *id == '\0' ? NULL : id, &der,
	    &dlen)) != 0)
		return r;
	if (dlen > AMTCA_SERVE_CRL_MAX) {
		free(der);
		return amtca_fail(AMTCA_E_LIMIT, "CRL larger than %d bytes",
		    AMTCA_SERVE_CRL_MAX);
	}
	pthread_mutex_lock(&cache_mu);
	for (i = 0; i < PUB_CACHE_SLOTS; i++) {
		if (strcmp(cache[i].id, id) == 0 || cache[i].der == NULL) {
			slot = i;
			break;
		}
		if (age_s(&cache[i].at) > age_s(&cache[slot].at))
			slot = i;
	}
	free(cache[slot].der);
	cache[slot].der = NULL;
	if ((cache[slot].der = malloc(dlen)) != NULL) {
		memcpy(cache[slot].der, der, dlen);
		cache[slot].len = dlen;
		cache[slot].mark = mark;
		snprintf(cache[slot].id, sizeof(cache[slot].id), "%s", id);
		clock_gettime(CLOCK_MONOTONIC, &cache[slot].at);
	}
	*out = der;
	*len = dlen;
	der = NULL;
	ret = 0;
out:
	pthread_mutex_unlock(&cache_mu);
	free(der);
	return ret;
}

static int
pem_of(X509 *const *c, size_t n, unsigned char **out, size_t *len)
{
	BIO *b;
	size_t i;
	int r = AMTCA_E_CERT;

	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return AMTCA_E_NOMEM;
	for (i = 0; i < n; i++)
		if (!PEM_write_bio_X509(b, c[i]))
			goto out;
	r = bio_take(b, out, len);
out:
	BIO_free(b);
	return r;
}

static int
p7b_of(X509 *const *c, size_t n, unsigned char **out, size_t *len)
{
	PKCS7 *p7 = NULL;
	BIO *b = NULL;
	size_t i;
	int r = AMTCA_E_CERT;

	if ((p7 = PKCS7_new()) == NULL || !PKCS7_set_type(p7, NID_pkcs7_signed) ||
	    !PKCS7_content_new(p7, NID_pkcs7_data))
		goto out;
	for (i = 0; i < n; i++)
		if (!PKCS7_add_certificate(p7, c[i]))
			goto out;
	if ((b = BIO_new(BIO_s_mem())) == NULL || !i2d_PKCS7_bio(b, p7))
		goto out;
	r = bio_take(b, out, len);
out:
	BIO_free(b);
	PKCS7_free(p7);
	return r;
}

static int
der_of(X509 *x, unsigned char **out, size_t *len)
{
	unsigned char *d = NULL;
	int n;

	*out = NULL;
	*len = 0;
	if ((n = i2d_X509(x, &d)) <= 0)
		return AMTCA_E_CERT;
	if ((*out = malloc((size_t)n)) == NULL) {
		OPENSSL_free(d);
		return AMTCA_E_NOMEM;
	}
	memcpy(*out, d, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(d);
	return 0;
}

void
publish_handle(struct serve *s, const struct srv_req *rq, struct srv_resp *rs)
{
	struct home *h = serve_home(s);
	X509 *cas[SERVE_CAS_MAX], *x;
	char id[PUB_KEYID_HEX_MAX + 1], age[32];
	unsigned char *body = NULL;
	size_t len = 0, n;
	const char *ctype = NULL;
	int r = AMTCA_E_NOT_FOUND, crl = 0;

	n = serve_ca_certs(h, cas);
	if (strcmp(rq->path, "/chain.pem") == 0) {
		r = pem_of(cas, n, &body, &len);
		ctype = "application/x-pem-file";
	} else if (strcmp(rq->path, "/chain.p7b") == 0) {
		r = p7b_of(cas, n, &body, &len);
		ctype = "application/pkcs7-mime";
	} else if (strcmp(rq->path, "/root.pem") == 0) {
		r = pem_of(&cas[n - 1], 1, &body, &len);
		ctype = "application/x-pem-file";
	} else if (strcmp(rq->path, "/crl") == 0) {
		r = crl_get(s, "", &body, &len);
		crl = 1;
	} else if (strncmp(rq->path, "/crl/", 5) == 0) {
		if (by_keyid(h, rq->path + 5, ".crl", id, sizeof(id)) != NULL) {
			r = crl_get(s, id, &body, &len);
			crl = 1;
		}
	} else if (strncmp(rq->path, "/ca/", 4) == 0) {
		if ((x = by_keyid(h, rq->path + 4, ".cer", id, sizeof(id))) != NULL) {
			r = der_of(x, &body, &len);
			ctype = "application/pkix-cert";
		}
	}
	if (r != 0) {
		free(body);
		if (r == AMTCA_E_NOT_FOUND)
			srv_error(rs, 404, "no such resource");
		else {
			serve_log(s, "publish_error", "path=%s code=%s",
			    crl ? "crl" : "ca", amtca_errname(r));
			srv_error(rs, srv_status_of(r) == 500 ? 500 : 503,
			    "cannot produce it now");
		}
		return;
	}
	if (crl)
		ctype = "application/pkix-crl";
	srv_body(rs, 200, ctype, body, len);
	snprintf(age, sizeof(age), "max-age=%d", crl ? AMTCA_SERVE_CRL_CACHE_S :
	    300);
	(void)srv_header(rs, "Cache-Control", age);
}
