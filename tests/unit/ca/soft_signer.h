/*
 * Test helpers for ca/: an in-memory struct ca_signer over an OpenSSL
 * EVP_PKEY (thread-safe: every call uses its own EVP_MD_CTX), key and CSR
 * makers, and a ready-made root + intermediate + struct ca.
 */
#ifndef AMTCA_TEST_SOFT_SIGNER_H
#define AMTCA_TEST_SOFT_SIGNER_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/signer.h"

struct soft_signer {
	struct ca_signer s;		/* pass &ss->s to ca/ */
	EVP_PKEY *key;
};

/*
 * A key of `kind`: "rsa1024", "rsa2048", "rsa3072", "rsa4096", "p256",
 * "p384", "p521", "secp256k1", optionally with a "#tag" suffix naming
 * another cached key of the same kind.  Cached per process (RSA keygen is slow);
 * the caller gets its own reference and frees it with EVP_PKEY_free().
 * A fresh (uncached) key when `fresh`.  Aborts the test on failure.
 */
EVP_PKEY *soft_key(const char *kind, int fresh);

/* Signer over `key` (a reference is taken).  Aborts on failure. */
struct soft_signer *soft_signer_new(EVP_PKEY *key);
void soft_signer_free(struct soft_signer *ss);

/* Public half only, as a CA would see a token key. */
EVP_PKEY *soft_pub(EVP_PKEY *key);

/* A signed CSR for `key` (subject CN=ignored.invalid).  ca_true adds a
 * basicConstraints CA:TRUE request.  DER into *der (OPENSSL_free). */
X509_REQ *soft_csr(EVP_PKEY *key, int ca_true);
size_t soft_csr_der(EVP_PKEY *key, int ca_true, unsigned char **der);
/*
 * A CSR for `key` whose SubjectPublicKeyInfo is written in `form`, signed
 * by `key`: "rsa-noparams" (rsaEncryption without the NULL), "compressed",
 * "hybrid", "hybrid-badparity", "tag05" (EC points in those SEC 1 forms,
 * the last two invalid), "explicit" (EC with explicit curve parameters).
 * DER into *der (OPENSSL_free).
 */
size_t soft_csr_der_spki(EVP_PKEY *key, const char *form, unsigned char **der);
/* The canonical SubjectPublicKeyInfo of `key` (OpenSSL's i2d_PUBKEY). */
size_t soft_spki_canonical(EVP_PKEY *key, unsigned char **der);

/* A CSR for `key` through ca_csr_parse(); NULL when intake refuses it. */
struct ca_csr *soft_ca_csr(EVP_PKEY *key);
size_t soft_csr_pem(EVP_PKEY *key, int ca_true, char **pem);

/* A root, an intermediate under it and a struct ca over the intermediate. */
struct test_pki {
	struct soft_signer *root, *inter;
	X509 *root_cert, *inter_cert;
	struct ca_policy pol;
	struct ca *ca;
};

extern const char *const test_domains[];
extern const size_t test_ndomains;
extern const char *const test_ip_ranges[];	/* one IPv4, one IPv6 */
extern const size_t test_nip_ranges;

/*
 * root/inter: key kinds as for soft_key(); root_days/inter_days 0 for the
 * defaults; the policy: test_domains, test_ip_ranges, org "Acme", country
 * "DE", client auth, CRL and AIA URLs.  `store` may be NULL.  Aborts on failure.
 */
void test_pki_init(struct test_pki *t, const char *root, const char *inter,
    int root_days, int inter_days, struct store *store);
void test_pki_free(struct test_pki *t);

/* A temp directory (mkdtemp) and rm -r of it. */
char *test_tmpdir(void);
void test_rmrf(const char *dir);

/* Top of the source tree: $AMTCA_TOP or ".". */
const char *test_top(void);

#endif
