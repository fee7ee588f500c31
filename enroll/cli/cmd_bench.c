/*
 * amtca bench issue: the raw PKCS#11 signing rate of an issuing key and the
 * full issuance rate (CSR in, durable record, certificate out), measured in
 * the same run on the same thread count (signing threads; the store's
 * committer thread only waits on fsync).
 *
 * It never signs with the CA's own keys and never writes to the CA's
 * records: a certificate under the real intermediate that no record knows
 * of would be a CA defect.  It makes a temporary key of the same type (in a
 * throwaway SoftHSM token for the embedded default, else in the CA's token)
 * and a scratch database, and removes both afterwards.  --store URI puts
 * the scratch database elsewhere (a PostgreSQL server, to compare
 * backends): it must not hold a store already, since it is destroyed at
 * the end.
 */
#include "enroll/cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/limits.h"
#include "common/util.h"
#include "hsm/admin.h"

#define BENCH_THREADS_MAX 64
#define BENCH_ROUNDS 3

struct bench {
	struct hsm_key *key;
	struct ca *ca;
	const EVP_MD *md;
	unsigned char *csr;
	size_t csr_len;
	unsigned char tbs[1024];
	int per_thread;
	int failed;
	pthread_mutex_t lock;
};

static void *
sign_worker(void *arg)
{
	struct bench *b = arg;
	unsigned char sig[CA_SIG_MAX];
	size_t len;
	int i;

	for (i = 0; i < b->per_thread; i++) {
		len = sizeof(sig);
		if (hsm_sign(b->key, b->md, b->tbs, sizeof(b->tbs), sig, &len) != 0) {
			pthread_mutex_lock(&b->lock);
			b->failed = 1;
			pthread_mutex_unlock(&b->lock);
			break;
		}
	}
	return NULL;
}

/*
 * Issuance as a service does it: each worker takes a CSR in, checks, builds
 * and signs, and hands the record to the store's group commit; the
 * certificate is released by the callback only once its record is
 * durable.  A worker keeps at most BENCH_INFLIGHT requests outstanding.
 * The run ends when the last certificate has been released.
 */
#define BENCH_INFLIGHT 512

struct worker {
	struct bench *b;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
	int released;
	int failed;
};

static void
released(void *arg, int result, const char *msg, unsigned char *der,
    size_t der_len, const char *serial)
{
	struct worker *w = arg;

	(void)der_len;
	(void)serial;
	free(der);
	pthread_mutex_lock(&w->mu);
	if (result != 0 && !w->failed) {
		fprintf(stderr, "amtca: bench issuance failed: %s\n", msg);
		w->failed = 1;
	}
	w->inflight--;
	w->released++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void *
issue_worker(void *arg)
{
	struct bench *b = arg;
	struct worker w;
	struct ca_request req;
	struct ca_csr *csr;
	char fqdn[64];
	int i, r = 0, submitted = 0;

	memset(&w, 0, sizeof(w));
	w.b = b;
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	for (i = 0; i < b->per_thread && !w.failed; i++) {
		pthread_mutex_lock(&w.mu);
		while (w.inflight >= BENCH_INFLIGHT)
			pthread_cond_wait(&w.cv, &w.mu);
		w.inflight++;
		pthread_mutex_unlock(&w.mu);
		snprintf(fqdn, sizeof(fqdn), "bench%06d.bench.test", i);
		memset(&req, 0, sizeof(req));
		req.fqdn = fqdn;
		req.requester = "bench";
		csr = NULL;
		if ((r = ca_csr_parse(b->csr, b->csr_len, &csr)) == 0) {
			req.csr = csr;
			r = ca_issue_submit(b->ca, &req, released, &w);
		}
		ca_csr_free(csr);
		if (r != 0) {
			fprintf(stderr, "amtca: bench issuance failed: %s\n",
			    amtca_errmsg(r));
			pthread_mutex_lock(&w.mu);
			w.inflight--;
			w.failed = 1;
			pthread_mutex_unlock(&w.mu);
			break;
		}
		submitted++;
	}
	/* Wait for every certificate to be released (durable). */
	pthread_mutex_lock(&w.mu);
	while (w.released < submitted)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	if (w.failed) {
		pthread_mutex_lock(&b->lock);
		b->failed = 1;
		pthread_mutex_unlock(&b->lock);
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return NULL;
}

/* Run `fn` on `threads` threads; returns operations per second. */
static double
run(struct bench *b, void *(*fn)(void *), int threads)
{
	pthread_t tid[BENCH_THREADS_MAX];
	struct timespec t0, t1;
	int i, started = 0;
	double secs;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < threads; i++)
		if (pthread_create(&tid[i], NULL, fn, b) == 0)
			started++;
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (started != threads)
		b->failed = 1;
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return (double)b->per_thread * threads / secs;
}

static double
median3(const double v[BENCH_ROUNDS])
{
	double a = v[0], b = v[1], c = v[2];

	if ((a <= b && b <= c) || (c <= b && b <= a))
		return b;
	if ((b <= a && a <= c) || (c <= a && a <= b))
		return a;
	return c;
}

/* A CSR for an RSA-2048 key, the kind AMT firmware generates. */
static int
make_csr(unsigned char **out, size_t *len)
{
	EVP_PKEY *k = NULL;
	X509_REQ *req = NULL;
	X509_NAME *n;
	unsigned char *p;
	int l, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((k = EVP_RSA_gen(2048)) == NULL || (req = X509_REQ_new()) == NULL ||
	    (n = X509_REQ_get_subject_name(req)) == NULL ||
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"bench.bench.test", -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, k) != 1 ||
	    X509_REQ_sign(req, k, EVP_sha256()) <= 0 ||
	    (l = i2d_X509_REQ(req, NULL)) <= 0 || (*out = malloc((size_t)l)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot make a bench CSR");
		goto out;
	}
	p = *out;
	*len = (size_t)i2d_X509_REQ(req, &p);
	ret = 0;
out:
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return ret;
}

static int
usage_error_bench(const char *syn)
{
	return cli_usage("bench", "bad usage", syn);
}

static const char bench_options[] =
    "  --count N              certificates to issue per round (2000)\n"
    "  --threads T            issuing threads (1)\n"
    "  --key-type TYPE        rsa2048, rsa3072, rsa4096, p256, p384\n"
    "                         (default: the CA's key type)\n"
    "  --store URI            scratch store (default: SQLite in a temporary\n"
    "                         directory); must not exist, removed afterwards\n"
    "  --help                 this text\n";

int
cmd_bench(const char *homedir, int argc, char **argv)
{
	static const char syn[] = "issue [--count N] [--threads T] "
	    "[--key-type rsa2048|rsa3072|rsa4096|p256|p384] [--store URI]";
	static const struct option opts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "key-type", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *kt_name = NULL, *store_uri = NULL;
	int count = 2000, threads = 1, ch, r, ret = EXIT_FAIL;
	enum hsm_keytype kt;
	struct home *h = NULL;
	struct hsm *hsm = NULL;
	struct hsm_open_opts ho;
	struct ca_signer signer;
	struct ca_policy pol;
	struct store *st = NULL;
	struct bench b;
	X509 *issuer = NULL;
	char tmpl[] = "/tmp/amtca-bench-XXXXXXXX", *tmp = NULL;
	char *tokdir = NULL, *pin = NULL, *db = NULL, *mod = NULL, *uri = NULL;
	char *conf = NULL, label[64];
	unsigned char rnd[8];
	double raw, iss, raws[BENCH_ROUNDS], isss[BENCH_ROUNDS];
	long v;
	int i;
	int own_token, made_store = 0;

	memset(&b, 0, sizeof(b));
	pthread_mutex_init(&b.lock, NULL);
	if (argc < 2 || strcmp(argv[1], "issue") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
		    strcmp(argv[1], "-h") == 0))
			return cli_help("bench", syn, bench_options, opts);
		return usage_error_bench(syn);
	}
	argc--;
	argv++;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (cli_parse_long(optarg, 1, 10000000, &v) != 0)
				return usage_error_bench(syn);
			count = (int)v;
			break;
		case 't':
			if (cli_parse_long(optarg, 1, BENCH_THREADS_MAX, &v) != 0)
				return usage_error_bench(syn);
			threads = (int)v;
			break;
		case 'k':
			kt_name = optarg;
			break;
		case 's':
			store_uri = optarg;
			break;
		case 'h':
			return cli_help("bench", syn, bench_options, opts);
		default:
			return usage_error_bench(syn);
		}
	}
	if (optind != argc || count < 1 || count > 10000000 || threads < 1 ||
	    threads > BENCH_THREADS_MAX)
		return usage_error_bench(syn);

	/* The CA home, when there is one, only decides which token to use. */
	if (home_open(homedir, 0, &h) != 0) {
		amtca_err_clear();
		h = NULL;
	}
	if (kt_name == NULL)
		kt_name = h != NULL && h->conf.key_type != NULL ? h->conf.key_type :
		    "rsa2048";
	if (hsm_keytype_parse(kt_name, &kt) != 0)
		return usage_error_bench(syn);
	own_token = h == NULL || h->conf.softhsm_conf != NULL;

	if ((tmp = mkdtemp(tmpl)) == NULL) {
		r = amtca_fail(AMTCA_E_IO, "mkdtemp: %s", strerror(errno));
		goto fail;
	}
	if ((store_uri != NULL ? (db = strdup(store_uri)) == NULL :
	    asprintf(&db, "%s/bench.db", tmp) == -1) ||
	    asprintf(&tokdir, "%s/softhsm", tmp) == -1 ||
	    asprintf(&pin, "%s/softhsm/user.pin", tmp) == -1) {
		r = AMTCA_E_NOMEM;
		goto fail;
	}
	memset(&ho, 0, sizeof(ho));
	if (own_token) {
		if ((r = hsm_softhsm_create(tokdir, "amtca-bench", pin, &mod, &uri,
		    &conf)) != 0)
			goto fail;
		ho.module = mod;
		ho.token_uri = uri;
		ho.pin_file = pin;
		ho.softhsm_conf = conf;
	} else {
		if ((r = home_token_prepare(&h->conf)) != 0)
			goto fail;
		ho.module = h->conf.module;
		ho.token_uri = h->conf.token_uri;
		ho.pin_file = h->conf.pin_file;
	}
	if ((r = amtca_random(rnd, sizeof(rnd))) != 0)
		goto fail;
	snprintf(label, sizeof(label), "amtca-bench-%02x%02x%02x%02x%02x%02x%02x%02x",
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if ((r = hsm_open(&ho, &hsm)) != 0 ||
	    (r = hsm_keygen(hsm, kt, label, &b.key)) != 0)
		goto fail;
	/* A store that exists is somebody's: never ours to destroy. */
	if (store_uri != NULL) {
		if ((r = store_open(db, 0, &st)) == 0) {
			r = amtca_fail(AMTCA_E_USAGE, "bench issue needs a scratch "
			    "store: --store names one that exists");
			goto fail;
		}
		if (r != AMTCA_E_NOT_FOUND)
			goto fail;
		amtca_err_clear();
	}
	hsm_key_signer(b.key, &signer);
	ca_policy_init(&pol);
	b.md = kt == HSM_KEY_P384 ? EVP_sha384() : EVP_sha256();
	if ((r = amtca_random(b.tbs, sizeof(b.tbs))) != 0 ||
	    (r = make_csr(&b.csr, &b.csr_len)) != 0 ||
	    (r = ca_root_create(&signer, "amtca bench issuer (temporary)", NULL,
	    30, &issuer)) != 0 ||
	    (r = store_open(db, 1, &st)) != 0)
		goto fail;
	made_store = 1;
	if ((r = ca_new(&signer, issuer, &pol, st, &b.ca)) != 0)
		goto fail;

	/* Warm up both paths (sessions, caches) before measuring. */
	b.per_thread = 20;
	run(&b, sign_worker, threads);
	run(&b, issue_worker, threads);
	if (b.failed) {
		r = amtca_fail(AMTCA_E_HSM, "benchmark warm-up failed");
		goto fail;
	}
	/*
	 * Alternate the two measurements and take each one's median, so a
	 * burst of load from elsewhere on the machine lands on both alike.
	 */
	b.per_thread = (count + threads - 1) / threads;
	for (i = 0; i < BENCH_ROUNDS && !b.failed; i++) {
		raws[i] = run(&b, sign_worker, threads);
		isss[i] = run(&b, issue_worker, threads);
	}
	raw = median3(raws);
	iss = median3(isss);
	if (b.failed) {
		r = amtca_fail(AMTCA_E_INTERNAL, "benchmark run failed");
		goto fail;
	}
	printf("raw_sign_per_s=%.0f issue_per_s=%.0f ratio=%.3f threads=%d key=%s\n",
	    raw, iss, iss / raw, threads, hsm_keytype_name(kt));
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	ca_free(b.ca);
	store_close(st);
	if (made_store && store_uri != NULL && (r = store_destroy(db)) != 0)
		fprintf(stderr, "amtca: could not remove the scratch store: %s\n",
		    amtca_errmsg(r));
	X509_free(issuer);
	free(b.csr);
	if (b.key != NULL && hsm_key_destroy(hsm, b.key) != 0)
		fprintf(stderr, "amtca: could not remove bench key %s\n", label);
	hsm_key_free(b.key);
	hsm_free(hsm);
	home_free(h);
	if (tmp != NULL)
		amtca_rmtree(tmp);
	free(db);
	free(tokdir);
	free(pin);
	free(mod);
	free(uri);
	free(conf);
	pthread_mutex_destroy(&b.lock);
	return ret;
}
