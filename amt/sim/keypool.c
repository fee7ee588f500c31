/*
 * The --key-pool cache.  Real AMT generates a device's key on the device;
 * amtsim would otherwise generate it on the host's CPU (130-215 ms for
 * RSA-2048), which is what limits a simulated fleet on a small machine.
 * The pool is a file of PEM private keys generated once and reused by
 * later runs, so GenerateKeyPair costs only the simulated --keygen-ms.
 *
 * Rules: keys are handed out in file order, each at most once per run
 * (unique per device within a run); keys that devices restored from
 * --state already hold are skipped; when the pool runs dry keys are
 * generated on the fly and appended to the file at exit.  A lock file
 * beside the pool (FILE.lock, flock) keeps two running simulators from
 * handing out the same keys.
 *
 * Pool keys are test material: they sit unencrypted in a file that every
 * test run reuses.  Never use them for anything real.
 */
#include "amt/sim/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "common/util.h"

#define POOL_HEADER "# amtsim key pool: RSA-2048 test keys, reused by every " \
	"run.\n# Test material only: never use these keys for anything real.\n"

struct pool_key {
	EVP_PKEY *pkey;
	unsigned char *pub;		/* PKCS#1 RSAPublicKey DER */
	size_t pub_len;
	int used;
};

struct sim_keypool {
	pthread_mutex_t lock;
	char *path;
	int lock_fd;
	struct pool_key *k;
	size_t n, cap;
	size_t next;			/* no unused key before this index */
	size_t loaded;			/* keys read from the file */
	size_t generated;		/* at open, to reach `want` */
	size_t on_the_fly;		/* pool ran dry mid-run */
	size_t used, skipped;
	int warned;
};

static int
pub_of(EVP_PKEY *pkey, unsigned char **out, size_t *len)
{
	unsigned char *der = NULL;
	int n;

	*out = NULL;
	if ((n = i2d_PublicKey(pkey, &der)) <= 0)
		return amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot encode a public key");
	if ((*out = malloc((size_t)n)) == NULL) {
		OPENSSL_free(der);
		return AMTCA_E_NOMEM;
	}
	memcpy(*out, der, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(der);
	return 0;
}

static int
grow(struct sim_keypool *p, size_t want)
{
	struct pool_key *nk;
	size_t cap = p->cap ? p->cap : 16;

	if (want <= p->cap)
		return 0;
	if (want > SIM_POOL_KEYS_MAX)
		return amtca_fail(AMTCA_E_LIMIT, "key pool: more than %d keys",
		    SIM_POOL_KEYS_MAX);
	while (cap < want)
		cap *= 2;
	if (cap > SIM_POOL_KEYS_MAX)
		cap = SIM_POOL_KEYS_MAX;
	if ((nk = realloc(p->k, cap * sizeof(*nk))) == NULL)
		return AMTCA_E_NOMEM;
	memset(nk + p->cap, 0, (cap - p->cap) * sizeof(*nk));
	p->k = nk;
	p->cap = cap;
	return 0;
}

/* Append a key (taking ownership of pkey). */
static int
append(struct sim_keypool *p, EVP_PKEY *pkey)
{
	struct pool_key *k;
	int r;

	if ((r = grow(p, p->n + 1)) != 0) {
		EVP_PKEY_free(pkey);
		return r;
	}
	k = &p->k[p->n];
	if ((r = pub_of(pkey, &k->pub, &k->pub_len)) != 0) {
		EVP_PKEY_free(pkey);
		return r;
	}
	k->pkey = pkey;
	k->used = 0;
	p->n++;
	return 0;
}

static int
pub_cmp(const void *a, const void *b)
{
	const struct pool_key *x = *(const struct pool_key *const *)a;
	const struct pool_key *y = *(const struct pool_key *const *)b;

	if (x->pub_len != y->pub_len)
		return x->pub_len < y->pub_len ? -1 : 1;
	return memcmp(x->pub, y->pub, x->pub_len);
}

/* "Unique per device" rests on the file holding no key twice. */
static int
check_distinct(struct sim_keypool *p)
{
	const struct pool_key **v = NULL;
	size_t i;
	int ret = AMTCA_E_INTERNAL;

	if (p->n < 2)
		return 0;
	if ((v = calloc(p->n, sizeof(*v))) == NULL)
		return AMTCA_E_NOMEM;
	for (i = 0; i < p->n; i++)
		v[i] = &p->k[i];
	qsort(v, p->n, sizeof(*v), pub_cmp);
	for (i = 1; i < p->n; i++) {
		if (pub_cmp(&v[i - 1], &v[i]) == 0) {
			ret = amtca_fail(AMTCA_E_CONFIG, "key pool %s holds key "
			    "%zu twice (delete the file to regenerate it)",
			    p->path, (size_t)(v[i] - p->k) + 1);
			goto out;
		}
	}
	ret = 0;
out:
	free(v);
	return ret;
}

static int
load(struct sim_keypool *p)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	OSSL_DECODER_CTX *dctx = NULL;
	EVP_PKEY *pkey = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (access(p->path, F_OK) != 0 && errno == ENOENT)
		return 0;
	if ((r = amtca_file_read(p->path, SIM_POOL_FILE_MAX, &buf, &len)) != 0) {
		ret = amtca_fail(r, "cannot read key pool %s", p->path);
		goto out;
	}
	/*
	 * One decoder context for the whole file: setting one up per key (as
	 * PEM_read_bio_PrivateKey does) costs ~1 ms a key, 15 times the
	 * decoding itself.
	 */
	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, "RSA",
	    EVP_PKEY_KEYPAIR, NULL, NULL)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (;;) {
		/* Done when no PEM block is left (OpenSSL's EOF errors vary). */
		if (strstr((char *)buf + len - BIO_pending(b), "-----BEGIN") ==
		    NULL)
			break;
		pkey = NULL;
		if (OSSL_DECODER_from_bio(dctx, b) != 1 || pkey == NULL) {
			EVP_PKEY_free(pkey);
			pkey = NULL;
			ret = amtca_fail_ssl(AMTCA_E_CONFIG, "key pool %s: key %zu "
			    "does not parse (delete the file to regenerate it)",
			    p->path, p->n + 1);
			goto out;
		}
		if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
		    EVP_PKEY_get_bits(pkey) != 2048) {
			ret = amtca_fail(AMTCA_E_CONFIG, "key pool %s: key %zu is "
			    "not RSA-2048", p->path, p->n + 1);
			goto out;
		}
		r = append(p, pkey);
		pkey = NULL;
		if (r != 0) {
			ret = r;
			goto out;
		}
	}
	if ((r = check_distinct(p)) != 0) {
		ret = r;
		goto out;
	}
	p->loaded = p->n;
	ret = 0;
out:
	EVP_PKEY_free(pkey);
	OSSL_DECODER_CTX_free(dctx);
	BIO_free(b);
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	return ret;
}

static int
save(struct sim_keypool *p)
{
	BIO *b = NULL;
	BUF_MEM *bm = NULL;
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	if ((b = BIO_new(BIO_s_mem())) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (BIO_puts(b, POOL_HEADER) <= 0) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < p->n; i++) {
		if (PEM_write_bio_PrivateKey(b, p->k[i].pkey, NULL, NULL, 0,
		    NULL, NULL) != 1) {
			ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot encode "
			    "key pool %s", p->path);
			goto out;
		}
	}
	BIO_get_mem_ptr(b, &bm);
	if ((r = amtca_file_write(p->path, bm->data, bm->length, 0600, 0)) != 0) {
		ret = amtca_fail(r, "cannot write key pool %s", p->path);
		goto out;
	}
	ret = 0;
out:
	if (bm != NULL)
		OPENSSL_cleanse(bm->data, bm->length);
	BIO_free(b);
	return ret;
}

struct gen {
	struct sim_keypool *p;
	pthread_mutex_t m;
	size_t next, to;
	int failed;
};

static void *
gen_worker(void *arg)
{
	struct gen *g = arg;
	EVP_PKEY *pkey;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&g->m);
		i = g->failed ? g->to : g->next++;
		pthread_mutex_unlock(&g->m);
		if (i >= g->to)
			break;
		/* Slots are distinct per thread: no lock needed to fill one. */
		if ((pkey = EVP_RSA_gen(2048)) == NULL) {
			pthread_mutex_lock(&g->m);
			g->failed = 1;
			pthread_mutex_unlock(&g->m);
			break;
		}
		g->p->k[i].pkey = pkey;
	}
	ERR_clear_error();
	return NULL;
}

/* Fill p->k[p->n .. want) on worker threads. */
static int
generate(struct sim_keypool *p, size_t want)
{
	pthread_t th[SIM_POOL_THREADS_MAX];
	struct gen g;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nth, started = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = grow(p, want)) != 0)
		return r;
	nth = ncpu < 1 ? 1 : (size_t)ncpu;
	if (nth > SIM_POOL_THREADS_MAX)
		nth = SIM_POOL_THREADS_MAX;
	if (nth > want - p->n)
		nth = want - p->n;
	fprintf(stderr, "amtsim: key pool %s: generating %zu RSA-2048 keys on "
	    "%zu thread(s); later runs reuse them\n", p->path, want - p->n, nth);
	memset(&g, 0, sizeof(g));
	g.p = p;
	g.next = p->n;
	g.to = want;
	if (pthread_mutex_init(&g.m, NULL) != 0)
		return AMTCA_E_INTERNAL;
	for (i = 0; i < nth; i++) {
		if (pthread_create(&th[i], NULL, gen_worker, &g) != 0)
			break;
		started++;
	}
	if (started == 0)
		gen_worker(&g);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&g.m);
	/* Count what was made, in order, even after a failure (freed later). */
	for (i = p->n; i < want && p->k[i].pkey != NULL; i++) {
		if ((r = pub_of(p->k[i].pkey, &p->k[i].pub,
		    &p->k[i].pub_len)) != 0) {
			ret = r;
			goto out;
		}
		p->n++;
		p->generated++;
	}
	if (g.failed || p->n < want) {
		ret = amtca_fail(AMTCA_E_INTERNAL, "key pool %s: RSA key "
		    "generation failed", p->path);
		goto out;
	}
	ret = 0;
out:
	/* Slots past p->n that a failure left behind are not counted: free. */
	for (i = p->n; i < p->cap; i++) {
		EVP_PKEY_free(p->k[i].pkey);
		free(p->k[i].pub);
		memset(&p->k[i], 0, sizeof(p->k[i]));
	}
	return ret;
}

static void
pool_free(struct sim_keypool *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++) {
		EVP_PKEY_free(p->k[i].pkey);
		free(p->k[i].pub);
	}
	free(p->k);
	if (p->lock_fd >= 0)
		close(p->lock_fd);	/* releases the flock */
	free(p->path);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int
sim_keypool_open(const char *path, size_t want, struct sim_keypool **out)
{
	struct sim_keypool *p = NULL;
	char *lockpath = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (want > SIM_POOL_KEYS_MAX)
		return amtca_fail(AMTCA_E_LIMIT, "key pool: at most %d keys",
		    SIM_POOL_KEYS_MAX);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return AMTCA_E_NOMEM;
	p->lock_fd = -1;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return AMTCA_E_INTERNAL;
	}
	if ((p->path = strdup(path)) == NULL ||
	    asprintf(&lockpath, "%s.lock", path) < 0) {
		lockpath = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	p->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (p->lock_fd < 0) {
		ret = amtca_fail(AMTCA_E_IO, "cannot open %s: %s", lockpath,
		    strerror(errno));
		goto out;
	}
	if (flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		ret = amtca_fail(AMTCA_E_EXISTS, "key pool %s is in use by "
		    "another amtsim: give each running simulator its own pool",
		    path);
		goto out;
	}
	if ((r = load(p)) != 0) {
		ret = r;
		goto out;
	}
	if (p->n < want) {
		if ((r = generate(p, want)) != 0 || (r = save(p)) != 0) {
			ret = r;
			goto out;
		}
	}
	*out = p;
	p = NULL;
	ret = 0;
out:
	free(lockpath);
	pool_free(p);
	return ret;
}

void
sim_keypool_skip(struct sim_keypool *p, const unsigned char *pub, size_t len)
{
	size_t i;

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->n; i++) {
		if (!p->k[i].used && p->k[i].pub_len == len &&
		    memcmp(p->k[i].pub, pub, len) == 0) {
			p->k[i].used = 1;
			p->skipped++;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

int
sim_keypool_take(struct sim_keypool *p, EVP_PKEY **out)
{
	EVP_PKEY *pkey = NULL;
	int warn, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	pthread_mutex_lock(&p->lock);
	while (p->next < p->n && p->k[p->next].used)
		p->next++;
	if (p->next < p->n) {
		if (EVP_PKEY_up_ref(p->k[p->next].pkey) == 1) {
			pkey = p->k[p->next].pkey;
			p->k[p->next++].used = 1;
			p->used++;
			ret = 0;
		} else
			ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "key pool");
		pthread_mutex_unlock(&p->lock);
		goto out;
	}
	warn = !p->warned;
	p->warned = 1;
	pthread_mutex_unlock(&p->lock);

	if (warn)
		fprintf(stderr, "amtsim: key pool %s exhausted after %zu keys: "
		    "generating keys on the fly (slow; they join the pool at "
		    "exit)\n", p->path, p->n);
	/* Outside the pool lock: other devices keep taking pool keys. */
	if ((pkey = EVP_RSA_gen(2048)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "RSA key generation");
		goto out;
	}
	pthread_mutex_lock(&p->lock);
	p->on_the_fly++;
	p->used++;
	/* Kept for the next run; a full pool only loses the reuse. */
	if (EVP_PKEY_up_ref(pkey) == 1 && append(p, pkey) == 0) {
		p->k[p->n - 1].used = 1;
		p->next = p->n;
	}
	pthread_mutex_unlock(&p->lock);
	ret = 0;
out:
	if (ret == 0)
		*out = pkey;
	return ret;
}

int
sim_keypool_close(struct sim_keypool *p, FILE *report)
{
	int r = 0;

	if (p == NULL)
		return 0;
	pthread_mutex_lock(&p->lock);
	if (p->n > p->loaded + p->generated)
		r = save(p);
	if (report != NULL) {
		fprintf(report, "key-pool keys=%zu used=%zu skipped=%zu "
		    "generated=%zu on_the_fly=%zu\n", p->n, p->used, p->skipped,
		    p->generated, p->on_the_fly);
		fflush(report);
	}
	pthread_mutex_unlock(&p->lock);
	pool_free(p);
	return r;
}
