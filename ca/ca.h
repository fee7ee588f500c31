/*
 * ca/: certificate policy and building over a signer callback.
 *
 * Builds the root, the intermediate and per-FQDN WebServer leaves; checks
 * CSRs and FQDNs against the policy; draws serials; records every issued
 * certificate durably (ca/store.h) before handing it out; exports chains.
 * Never includes PKCS#11 headers: every signature goes through
 * struct ca_signer (common/signer.h).
 */
#ifndef AMTCA_CA_H
#define AMTCA_CA_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/err.h"
#include "common/limits.h"
#include "common/signer.h"

struct store;

struct ca_policy {
	const char *const *domains;	/* allowed FQDN suffixes; none = any */
	size_t ndomains;
	const char *const *ip_ranges;	/* CIDR networks for iPAddress SANs; */
	size_t nip_ranges;		/* none = no IP SAN at all */
	int allow_wildcard;		/* "*.x" as the leftmost label only */
	const char *org;		/* optional subject O */
	const char *country;		/* optional subject C (2 letters) */
	int days;			/* default leaf validity */
	int skew_s;			/* notBefore backdating, seconds */
	int client_auth;		/* add clientAuth to the EKU */
	const char *crl_url;		/* optional CRL distribution point */
	const char *aia_url;		/* optional AIA caIssuers URL */
};

/* Defaults: no suffixes, no IP ranges, no wildcard, 397 days, 1 h skew,
 * serverAuth only. */
void ca_policy_init(struct ca_policy *p);

/*
 * FQDN rules (RFC 1123): letters-digits-hyphen labels of 1-63 chars, no
 * leading/trailing hyphen, at most 253 chars, at least two labels, no
 * trailing dot, lowercased into `out`; a wildcard only when the policy
 * allows it; must sit under one of the policy's suffixes when any are set.
 * AMTCA_E_FQDN / AMTCA_E_POLICY with a one-line reason.
 */
int ca_fqdn_check(const char *in, const struct ca_policy *p,
    char out[AMTCA_FQDN_MAX + 1]) AMTCA_WUR;

/*
 * An IP network, as the policy's --ip-range and the intermediate's
 * iPAddress name constraints hold it.
 */
struct ca_ip_range {
	unsigned char addr[16];		/* network address, host bits zero */
	unsigned char len;		/* 4 (IPv4) or 16 (IPv6) */
	unsigned char prefix;		/* 0-32 or 0-128 */
};

/* Room for "ADDR/PREFIX" of any range, NUL included. */
#define CA_IP_RANGE_STRLEN 64

/*
 * Parse "ADDR/PREFIX" (IPv4 0-32, IPv6 0-128; the prefix is required).
 * Non-canonical networks are refused, not normalised: "10.0.0.1/8" has host
 * bits set, and whether it meant 10.0.0.0/8 or 10.0.0.1/32 decides how much
 * the CA vouches for; the message names the network it would be.
 * AMTCA_E_USAGE with a one-line reason.
 */
int ca_ip_range_parse(const char *s, struct ca_ip_range *out) AMTCA_WUR;

/* Canonical "ADDR/PREFIX" (lowercase, RFC 5952 IPv6) into buf. */
void ca_ip_range_format(const struct ca_ip_range *r, char *buf, size_t len);

/*
 * Whether the address `ip` of `len` bytes (4 or 16) lies in `r`.  Families
 * never mix, as in RFC 5280 name constraints: an IPv4-mapped IPv6 address
 * is IPv6 and needs an IPv6 range.
 */
int ca_ip_range_contains(const struct ca_ip_range *r, const unsigned char *ip,
    size_t len);

/*
 * CSR intake: PEM or DER, at most AMTCA_CSR_MAX bytes; the signature must
 * verify (proof of possession); key RSA 2048-4096 or EC P-256/P-384; a CSR
 * requesting basicConstraints CA:TRUE is rejected.  Everything else in it
 * (subject, other extensions) is ignored by issuance.  AMTCA_E_CSR.
 * The certificate never copies the request's SubjectPublicKeyInfo: intake
 * re-encodes it canonically (RSA: rsaEncryption with NULL parameters,
 * whether the CSR had NULL or none; EC: id-ecPublicKey, named curve,
 * uncompressed point, from an uncompressed, compressed or hybrid point
 * that lies on the curve).  Explicit curve parameters, RSA-PSS and other
 * algorithms are refused.
 */
struct ca_csr;
int ca_csr_parse(const unsigned char *buf, size_t len, struct ca_csr **out) AMTCA_WUR;
void ca_csr_free(struct ca_csr *c);
/* The request's public key, borrowed (valid as long as the CSR). */
EVP_PKEY *ca_csr_pubkey(const struct ca_csr *c);

/* A positive random serial of AMTCA_SERIAL_BYTES bytes from the CSPRNG. */
int ca_serial_random(ASN1_INTEGER **out) AMTCA_WUR;

/* Serial as `openssl x509 -serial` prints it (uppercase hex), malloc'd. */
int ca_serial_hex(const ASN1_INTEGER *serial, char **out) AMTCA_WUR;

/*
 * Self-signed root: CN=cn (+O=org), basicConstraints CA:TRUE critical,
 * keyUsage keyCertSign+cRLSign critical, SKI.  Signed by `root`.
 */
int ca_root_create(const struct ca_signer *root, const char *cn,
    const char *org, int days, X509 **out) AMTCA_WUR;

/*
 * Intermediate under `root_cert`, for the key `inter_pub`: CA:TRUE pathlen 0
 * critical, keyUsage keyCertSign+cRLSign critical, AKI/SKI, and critical
 * name constraints: permitted dNSName subtrees exactly policy->domains
 * (when any are set), permitted iPAddress subtrees exactly
 * policy->ip_ranges, and an excluded 0.0.0.0/0 or ::/0 for each address
 * family without a range, so that no verifier has to guess about IP
 * names.  Never valid past the root.  Signed with SHA-384 when `inter_pub`
 * is RSA-3072 or larger or P-384 (AMT 22 may refuse SHA-256 chain
 * certificates), else with the root key's default.
 */
int ca_intermediate_create(const struct ca_signer *root, X509 *root_cert,
    EVP_PKEY *inter_pub, const char *cn, const char *org,
    const struct ca_policy *policy, int days, X509 **out) AMTCA_WUR;

/*
 * External root (docs/external-root.md): the intermediate's PKCS#10
 * request, signed by `key` (the HSM key), subject CN=cn (+O=org), with an
 * extensionRequest for CA:TRUE pathlen 0, keyCertSign+cRLSign and the
 * name constraints ca_intermediate_create() would set for `policy`.
 */
int ca_intermediate_csr(const struct ca_signer *key, const char *cn,
    const char *org, const struct ca_policy *policy, X509_REQ **out) AMTCA_WUR;

/*
 * Before issuing under an intermediate certified elsewhere: its public key
 * is `key`; basicConstraints CA:TRUE; keyUsage keyCertSign and cRLSign;
 * it verifies to `root` (the only trust anchor); and, unless any_domain,
 * its name constraints permit exactly policy->domains as dNSName and
 * policy->ip_ranges as iPAddress, with both address families excluded
 * whole when no range is permitted.  AMTCA_E_CERT naming the first failure.
 */
int ca_intermediate_check(X509 *cert, X509 *root, EVP_PKEY *key,
    const struct ca_policy *policy, int any_domain) AMTCA_WUR;

/*
 * The root's CRL over intermediates (`amtca crl --root`): signed by the
 * root key `root` for `root_cert`, listing the serials of `revoked[0..n)`
 * (revoked intermediates), CRLNumber = Unix milliseconds, AKI; valid for
 * `days`.  PEM or DER into *out (malloc'd).
 */
int ca_root_crl_create(const struct ca_signer *root, X509 *root_cert,
    X509 *const *revoked, size_t n, int days, int pem, unsigned char **out,
    size_t *outlen) AMTCA_WUR;

/*
 * A CA certificate's key identifier as the records, the signer's CRL
 * requests and /crl/<keyid>.crl name it: its subjectKeyIdentifier in
 * lowercase hex, or the SHA-1 of its public key when it has none.
 * AMTCA_E_CERT when neither can be had.
 */
#define CA_KEYID_HEX_MAX 128
/* In a policy's crl_url: replaced by the issuing intermediate's key id. */
#define CA_CRL_URL_KEYID "{keyid}"
int ca_keyid_hex(X509 *x, char out[CA_KEYID_HEX_MAX + 1]) AMTCA_WUR;

/* The issuing CA: signer + issuer certificate + policy + store. */
struct ca;

/*
 * Precomputes what every leaf shares (issuer name, AKI, fixed extensions,
 * default digest: SHA-384 under a P-384 issuer, else SHA-256; a request
 * may ask for either, see ca_request.digest).  Borrows all
 * arguments; they must outlive the ca.  `store` may be NULL only in unit
 * tests of building (ca_issue then fails with AMTCA_E_STORE).
 */
int ca_new(const struct ca_signer *signer, X509 *issuer,
    const struct ca_policy *policy, struct store *store, struct ca **out) AMTCA_WUR;
void ca_free(struct ca *ca);

/*
 * Certificate records without an issuer (made before rotation existed) are
 * the first intermediate's (generation 1): its CA says so with `first` set
 * (the default from ca_new), and its CRL then lists them too
 * (docs/rotation.md).
 */
void ca_set_first(struct ca *ca, int first);
/* The key identifier (ca_keyid_hex) of the CA's certificate. */
const char *ca_keyid(const struct ca *ca);

/* Leaf profiles (docs/profiles.md).  WEBSERVER is the AMT leaf above. */
enum ca_profile {
	CA_PROFILE_WEBSERVER = 0,	/* AMT WebServer leaf (ca_issue below) */
	CA_PROFILE_SERVICE,		/* amtca serve's own HTTPS certificate:
					   as WEBSERVER */
	CA_PROFILE_EST,			/* EST client: serverAuth+clientAuth */
	CA_PROFILE_ADMIN		/* admin API client: clientAuth and the
					   admin marker */
};

/*
 * A leaf's signature digest.  AMT 22 refuses SHA-256-signed leaves, so the
 * enrollment asks for SHA-384 whatever the issuing key (RSA or EC).
 */
enum ca_digest {
	CA_DIGEST_DEFAULT = 0,		/* the issuer key's: SHA-384 under
					   P-384, else SHA-256 */
	CA_DIGEST_SHA256,
	CA_DIGEST_SHA384,
};
#define CA_DIGEST_N 3

/*
 * The admin marker: a certificatePolicies policyIdentifier under 2.25 (a
 * UUID OID, X.667), carried only by CA_PROFILE_ADMIN certificates
 * (docs/profiles.md).
 */
#define CA_ADMIN_POLICY_OID "2.25.230505298089611763819222273082359297452"

/*
 * An admin or EST client's record name: either a plain name, 1 to
 * AMTCA_CLIENT_NAME_MAX of [A-Za-z0-9_-] starting with a letter or digit,
 * or (with a dot) an FQDN, which must then pass ca_fqdn_check() under
 * `p` (when p is not NULL): a verifier would take a dotted CN for a host
 * name under the intermediate's name constraints.  AMTCA_E_USAGE /
 * AMTCA_E_FQDN / AMTCA_E_POLICY with a reason.
 */
int ca_client_name_check(const char *name, const struct ca_policy *p) AMTCA_WUR;

struct ca_request {
	enum ca_profile profile;	/* 0: WEBSERVER */
	const char *fqdn;		/* from the caller, never from the CSR;
					   ADMIN: the admin's name (a plain
					   name: CN only; an FQDN: CN and
					   SAN) */
	const char *const *names;	/* EST: further dNSNames (policy-
					   checked like fqdn), <= AMTCA_EST_NAMES_MAX */
	size_t nnames;
	const struct ca_csr *csr;	/* from ca_csr_parse() */
	const char *const *ips;		/* extra SAN iPAddress entries */
	size_t nips;
	int days;			/* 0: policy default */
	const char *requester;		/* who asked (user, "enroll", "est") */
	const char *device;		/* optional AMT device binding (FQDN) */
	enum ca_digest digest;		/* 0: the issuer key's default */
	const char *actor;		/* who the audit entry names: the
					   authenticated client (NULL: the
					   store's actor, ca/store.h) */
};

/*
 * Issue a WebServer certificate: subject CN=FQDN (+O/C), SAN dNSName=FQDN
 * (+IPs, each inside one of policy->ip_ranges, else AMTCA_E_POLICY), EKU serverAuth (+clientAuth), keyUsage digitalSignature
 * (+keyEncipherment for RSA) critical, CA:FALSE, AKI/SKI, CDP/AIA when
 * configured, random serial; notBefore = now - skew; notAfter = min(now +
 * days, issuer notAfter); signed with req->digest (AMTCA_E_USAGE for an
 * unknown one).  Returns only after the record is durably
 * committed; a serial collision draws a new serial.  Thread-safe.
 */
int ca_issue(struct ca *ca, const struct ca_request *req, X509 **out) AMTCA_WUR;

/*
 * As ca_issue(), handing back the certificate as DER (malloc'd, free())
 * and, when `serial` is not NULL, its serial as uppercase hex (malloc'd).
 * Several times cheaper than ca_issue() under OpenSSL 3.0, whose
 * d2i_X509 spends most of a leaf's CPU time looking up a public-key
 * decoder: prefer it when the DER is what you need (AMT takes DER).
 */
int ca_issue_der(struct ca *ca, const struct ca_request *req,
    unsigned char **der, size_t *derlen, char **serial) AMTCA_WUR;

/*
 * Build and sign a leaf exactly as ca_issue() does, WITHOUT recording it:
 * for unit tests and benchmarks of building only.  A certificate from here
 * must never be handed to anyone (it is in no database and no CRL can name
 * it).  Works with a NULL store.  Thread-safe.
 */
int ca_leaf_build(struct ca *ca, const struct ca_request *req, X509 **out) AMTCA_WUR;
int ca_leaf_build_der(struct ca *ca, const struct ca_request *req,
    unsigned char **der, size_t *derlen) AMTCA_WUR;

/*
 * Load one certificate from a PEM or DER file of at most
 * AMTCA_CERT_FILE_MAX bytes (the first one of a PEM bundle).  AMTCA_E_CERT
 * when it does not parse; AMTCA_E_NOT_FOUND / AMTCA_E_IO from reading.
 */
int ca_cert_load(const char *path, X509 **out) AMTCA_WUR;

/* Same from memory. */
int ca_cert_parse(const unsigned char *buf, size_t len, X509 **out) AMTCA_WUR;

/*
 * Pipelined issuance: check, build and sign in the caller's thread, then
 * queue the record for the store's group commit and return.  `cb(arg,
 * result, msg, der, der_len, serial)` runs exactly once, on the store's
 * committer thread: on success only after the record is durable, handing
 * over the certificate DER (the callback frees it) and its serial (valid
 * during the call); on failure with der NULL and a one-line `msg`.  A
 * non-zero return means the request was refused up front and cb never
 * runs.  The CSR may be freed as soon as this returns.  Thread-safe.
 */
typedef void (*ca_issue_cb)(void *arg, int result, const char *msg,
    unsigned char *der, size_t der_len, const char *serial);
int ca_issue_submit(struct ca *ca, const struct ca_request *req,
    ca_issue_cb cb, void *arg) AMTCA_WUR;

enum ca_chain_format { CA_CHAIN_PEM, CA_CHAIN_DER, CA_CHAIN_P7B };
/* "pem", "der", "p7b" (also "pkcs7"), case-insensitive; else AMTCA_E_USAGE. */
int ca_chain_format_parse(const char *s, enum ca_chain_format *out) AMTCA_WUR;

/*
 * Export the chain `certs[0..n)` given bottom to top (intermediate(s) first,
 * root last).  PEM: one file (or stdout when path is NULL) in that order.
 * DER: `path` is a directory (created 0755 when missing) receiving
 * NN-<cn>.cer per certificate, NN from 01 in chain order and <cn> the
 * subject CN with anything but [A-Za-z0-9._-] replaced by '_'.  P7B: a
 * PKCS#7 certs-only file (DER).  Files are written atomically (0644);
 * only PEM may go to stdout.
 */
int ca_chain_export(X509 *const *certs, size_t n, enum ca_chain_format fmt,
    const char *path) AMTCA_WUR;

/*
 * CRL over the store's revoked entries this CA issued (records whose issuer
 * is its key id, and those without an issuer when ca_set_first()), signed
 * by it; valid for
 * `days` (1-AMTCA_DAYS_MAX).  Output PEM or DER into *out (malloc'd, free()).
 * v2, AKI, CRLNumber = creation time in Unix milliseconds (monotonic without
 * any stored counter); entries carry the revocation date and, unless it is
 * unspecified (0), the reasonCode.  AMTCA_E_STORE without a store.
 */
int ca_crl_create(struct ca *ca, int days, int pem, unsigned char **out,
    size_t *outlen) AMTCA_WUR;

#endif
