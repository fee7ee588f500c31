/*
 * The CA bundle AMT's TLS certificates are verified under, parsed once per
 * process.  libcurl and a plain SSL_CTX would each read and decode the PEM
 * file for every TLS connection: under OpenSSL 3 that was about a fifth of
 * an enrollment's CPU (callgrind), paid again for each of the device's TLS
 * connections, and in a fleet for each device.  A parsed X509_STORE is
 * shared instead (read-only after loading, reference counted, safe to use
 * from many threads); a bundle whose file changed is read again.
 */
#include "amt/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "common/limits.h"

struct ca_entry {
	char *path;
	struct stat st;			/* what it was loaded from */
	X509_STORE *store;
	unsigned long long used;	/* LRU tick */
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ca_entry cache[AMTCA_AMT_CA_CACHE_MAX];
static unsigned long long tick;
static unsigned long loads;

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void
entry_clear(struct ca_entry *e)
{
	free(e->path);
	X509_STORE_free(e->store);
	memset(e, 0, sizeof(*e));
}

int
amt_ca_store_get(const char *path, X509_STORE **out)
{
	struct ca_entry *e = NULL;
	X509_STORE *st = NULL;
	struct stat sb;
	char *p = NULL;
	size_t i;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	pthread_mutex_lock(&cache_mu);
	if (stat(path, &sb) != 0) {
		ret = amtca_fail(errno == ENOENT ? AMTCA_E_NOT_FOUND : AMTCA_E_IO,
		    "cannot read CA bundle %s: %s", path, strerror(errno));
		goto out;
	}
	for (i = 0; i < AMTCA_AMT_CA_CACHE_MAX; i++) {
		if (cache[i].path != NULL && strcmp(cache[i].path, path) == 0) {
			e = &cache[i];
			break;
		}
	}
	if (e != NULL && same_file(&e->st, &sb)) {
		if (X509_STORE_up_ref(e->store) != 1)
			goto out;
		e->used = ++tick;
		*out = e->store;
		ret = 0;
		goto out;
	}
	/* Not cached, or the file changed: read it (again). */
	if ((st = X509_STORE_new()) == NULL || (p = strdup(path)) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	if (X509_STORE_load_file(st, path) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CONFIG, "cannot load CA bundle %s",
		    path);
		goto out;
	}
	loads++;
	if (e == NULL) {
		/* A free slot, else the least recently used. */
		e = &cache[0];
		for (i = 0; i < AMTCA_AMT_CA_CACHE_MAX; i++) {
			if (cache[i].path == NULL) {
				e = &cache[i];
				break;
			}
			if (cache[i].used < e->used)
				e = &cache[i];
		}
	}
	entry_clear(e);
	if (X509_STORE_up_ref(st) != 1)
		goto out;
	e->path = p;
	p = NULL;
	e->st = sb;
	e->store = st;
	e->used = ++tick;
	*out = st;
	st = NULL;
	ret = 0;
out:
	pthread_mutex_unlock(&cache_mu);
	X509_STORE_free(st);
	free(p);
	return ret;
}

unsigned long
amt_ca_store_loads(void)
{
	unsigned long n;

	pthread_mutex_lock(&cache_mu);
	n = loads;
	pthread_mutex_unlock(&cache_mu);
	return n;
}

/* Installed only for a leaf already found byte-equal to the recorded one. */
static int
forgive_leaf_expiry(int ok, X509_STORE_CTX *x)
{
	if (!ok && X509_STORE_CTX_get_error(x) == X509_V_ERR_CERT_HAS_EXPIRED &&
	    X509_STORE_CTX_get_error_depth(x) == 0)
		return 1;
	return ok;
}

int
amt_verify_chain(X509_STORE_CTX *x, const unsigned char *der, size_t len,
    int *forgiven)
{
	unsigned char *ld = NULL;
	X509 *leaf;
	int n, eq = 0, r;

	if (forgiven != NULL)
		*forgiven = 0;
	if (der != NULL && len > 0 && (leaf = X509_STORE_CTX_get0_cert(x)) != NULL &&
	    (n = i2d_X509(leaf, &ld)) > 0 && (size_t)n == len &&
	    memcmp(ld, der, len) == 0)
		eq = 1;
	OPENSSL_free(ld);
	if (eq)
		X509_STORE_CTX_set_verify_cb(x, forgive_leaf_expiry);
	r = X509_verify_cert(x);
	if (r > 0 && eq &&
	    X509_STORE_CTX_get_error(x) == X509_V_ERR_CERT_HAS_EXPIRED) {
		X509_STORE_CTX_set_error(x, X509_V_OK);
		if (forgiven != NULL)
			*forgiven = 1;
	}
	return r;
}
