/*
 * Not a test: throughput of ca/ with the in-memory signer, as ratios
 * measured in one run (house style: timing belongs in benchmarks).
 *
 *   make build/libamtca.a && cc -std=c11 -D_GNU_SOURCE -I. -Itests -O2 \
 *     -o build/bench_ca tests/unit/ca/bench_ca.c \
 *     tests/unit/ca/helper_soft_signer.c build/libamtca.a \
 *     $(pkg-config --libs libssl libcrypto sqlite3) -lcmocka -lpthread
 *   build/bench_ca [seconds-per-case]
 *
 * For each issuer key (RSA-2048, P-256) and 1 and 2 threads: the raw
 * signing rate over a leaf-sized TBS; building+signing a leaf as DER
 * (ca_leaf_build_der) and as an X509 (ca_leaf_build, adds d2i_X509); and
 * full issuance including the durable group-committed store (ca_issue_der,
 * ca_issue).  The leaf CSR key is RSA-2048 as AMT generates.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>

#include "ca/ca.h"
#include "ca/store.h"
#include "common/util.h"
#include "soft_signer.h"

enum mode { RAW, BUILD_DER, BUILD_X509, ISSUE_DER, ISSUE_X509 };

struct job {
	enum mode mode;
	struct test_pki *t;
	X509_REQ *csr;
	long long until;
	long n;
	int err;
};

static void *
run(void *arg)
{
	struct job *j = arg;
	struct ca_request req = { 0 };
	unsigned char tbs[700], sig[CA_SIG_MAX];
	size_t siglen;
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	X509 *x;

	memset(tbs, 0x5a, sizeof(tbs));
	req.fqdn = "amt-0001.example.com";
	req.csr = j->csr;
	req.requester = "bench";
	while (amtca_now_ms() < j->until) {
		if (j->mode == RAW) {
			siglen = sizeof(sig);
			if (j->t->inter->s.sign(j->t->inter->s.ctx, md, tbs,
			    sizeof(tbs), sig, &siglen) != 0)
				j->err++;
		} else {
			unsigned char *der = NULL;
			size_t len = 0;
			int r;

			x = NULL;
			switch (j->mode) {
			case BUILD_DER:
				r = ca_leaf_build_der(j->t->ca, &req, &der, &len);
				break;
			case BUILD_X509:
				r = ca_leaf_build(j->t->ca, &req, &x);
				break;
			case ISSUE_DER:
				r = ca_issue_der(j->t->ca, &req, &der, &len, NULL);
				break;
			default:
				r = ca_issue(j->t->ca, &req, &x);
				break;
			}
			if (r != 0)
				j->err++;
			X509_free(x);
			free(der);
		}
		j->n++;
	}
	EVP_MD_free(md);
	return NULL;
}

static double
measure(enum mode m, struct test_pki *t, X509_REQ *csr, int threads, int secs)
{
	struct job j[8];
	pthread_t th[8];
	long long t0 = amtca_now_ms(), t1;
	long total = 0;
	int i;

	for (i = 0; i < threads; i++) {
		j[i] = (struct job){ .mode = m, .t = t, .csr = csr,
		    .until = t0 + secs * 1000LL };
		pthread_create(&th[i], NULL, run, &j[i]);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		total += j[i].n;
		if (j[i].err)
			fprintf(stderr, "%d errors: %s\n", j[i].err,
			    amtca_errmsg(AMTCA_E_STORE));
	}
	t1 = amtca_now_ms();
	return total * 1000.0 / (double)(t1 - t0);
}

int
main(int argc, char **argv)
{
	static const char *const issuers[] = { "rsa2048", "p256" };
	int secs = argc > 1 ? atoi(argv[1]) : 3, th, k;
	char dir[] = "/var/tmp/amtca-bench.XXXXXX", path[128];
	EVP_PKEY *leafkey;
	X509_REQ *csr;

	if (mkdtemp(dir) == NULL)
		return 1;
	leafkey = soft_key("rsa2048#leaf", 0);
	csr = soft_csr(leafkey, 0);
	printf("rates per second; ratios to the raw signing rate in brackets\n");
	printf("%-8s %2s %9s %16s %16s %16s %16s\n", "issuer", "th", "raw sign",
	    "build DER", "build X509", "issue DER", "issue X509");
	for (k = 0; k < 2; k++)
		for (th = 1; th <= 2; th++) {
			struct test_pki t;
			struct store *s = NULL;
			double raw, r[4];
			int m;

			snprintf(path, sizeof(path), "%s/%s-%d.db", dir, issuers[k], th);
			if (store_open(path, 1, &s) != 0)
				return 1;
			test_pki_init(&t, "p384", issuers[k], 0, 0, s);
			/* Warm the database file up so WAL growth is not timed. */
			(void)measure(ISSUE_DER, &t, csr, th, 1);
			raw = measure(RAW, &t, csr, th, secs);
			for (m = 0; m < 4; m++)
				r[m] = measure(BUILD_DER + m, &t, csr, th, secs);
			printf("%-8s %2d %9.0f", issuers[k], th, raw);
			for (m = 0; m < 4; m++)
				printf(" %8.0f (%.2fx)", r[m], r[m] / raw);
			printf("\n");
			test_pki_free(&t);
			store_close(s);
		}
	X509_REQ_free(csr);
	EVP_PKEY_free(leafkey);
	test_rmrf(dir);
	return 0;
}
