/*
 * amt/: WS-Management client for Intel AMT firmware (libcurl + libxml2).
 *
 * One struct amt is one device endpoint (plain HTTP on `port`, or TLS on
 * `tls_port` verified against a CA bundle and the FQDN).  Every call is a
 * blocking request/response; a struct amt is used by one thread at a time.
 *
 * Errors keep their kind:
 *   AMTCA_E_AMT_TRANSPORT  connect/timeout/dropped connection
 *   AMTCA_E_AMT_TLS        handshake, chain, hostname or pin mismatch
 *   AMTCA_E_AMT_AUTH       digest rejected: exactly one attempt, never looped
 *   AMTCA_E_AMT_HTTP       other unexpected HTTP status
 *   AMTCA_E_AMT_FAULT      SOAP fault (subcode in amt_last_error())
 *   AMTCA_E_AMT_STATUS     non-zero ReturnValue (code and PT_STATUS name too)
 *   AMTCA_E_AMT_PARSE      response not what the call expects
 */
#ifndef AMTCA_AMT_H
#define AMTCA_AMT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/err.h"

/* PT_STATUS values the flow branches on. */
#define AMT_PT_SUCCESS              0
#define AMT_PT_INTERNAL_ERROR       1
#define AMT_PT_NOT_PERMITTED        16
#define AMT_PT_MAX_LIMIT_REACHED    23
#define AMT_PT_INVALID_PARAMETER    36
#define AMT_PT_INVALID_HANDLE       2053
#define AMT_PT_DUPLICATE            2058
#define AMT_PT_PKI_GENERATING_KEYS  2061
#define AMT_PT_INVALID_KEY          2062
#define AMT_PT_INVALID_CERT         2063
#define AMT_PT_UNSUPPORTED          2066
#define AMT_PT_NOT_FOUND            2068

/* "DUPLICATE" for 2058 etc.; "UNKNOWN" for codes not in the table. */
const char *amt_status_name(int pt_status);

/*
 * What amtca asks of a firmware generation: a table by AMT major version
 * (amt/profile.c, data only), so that firmware facts can change without
 * code changes.  Facts for AMT 22 are from public statements, not verified
 * on hardware (docs/amtsim.md).
 */
#define AMT_KEYALG_RSA 0		/* GenerateKeyPair KeyAlgorithm */
#define AMT_KEYALG_ECC 1
#define AMT_PROFILE_KEYS_MAX 4

struct amt_keyspec {
	int alg;			/* AMT_KEYALG_* */
	int bits;			/* KeyLength */
	const char *name;		/* "ECC-384", for messages */
};

struct amt_profile {
	const char *name;		/* "AMT 22 and later" */
	int major_from;			/* applies from this AMT major version */
	/* Device keys to generate, preferred first.  AMT says which it
	 * offers only by refusing (2066, 2062 or 36, leaving nothing behind),
	 * so the enrollment tries them in turn. */
	struct amt_keyspec keys[AMT_PROFILE_KEYS_MAX];
	size_t nkeys;
	int csr_sigalg;			/* GeneratePKCS10RequestEx SigningAlgorithm:
					   1 SHA-256, 2 SHA-384 (proposed) */
	int leaf_sha384;		/* sign the leaf with SHA-384 */
	int min_rsa_bits;		/* weakest leaf key the firmware takes; */
	int min_ec_bits;		/* a CA chain should be no weaker */
	int chain_sha384;		/* the firmware may refuse SHA-256-signed
					   chain certificates */
};

/*
 * The profile for a firmware version "X.Y.Z.B" (GeneralSettings): the row
 * with the highest major_from not above X.  A version that does not parse
 * gets the oldest profile.  Never NULL; static storage.
 */
const struct amt_profile *amt_profile_for(const char *amt_version);

/* Is `pk` weaker than the profile's minimum (RSA bits, EC bits)? */
int amt_profile_key_weak(const struct amt_profile *p, EVP_PKEY *pk);

/* Did AMT refuse a GenerateKeyPair for its key type (so try the next)? */
int amt_profile_keygen_refusal(int pt_status);

#define AMT_TLS_REMOTE "Intel(r) AMT 802.3 TLS Settings"
#define AMT_TLS_LOCAL  "Intel(r) AMT LMS TLS Settings"

struct amt_opts {
	const char *host;		/* FQDN: Host header, SNI, hostname check */
	const char *address;		/* optional IP pin (as curl --resolve) */
	int port;			/* plain WS-MAN port; 0 = 16992 */
	int tls_port;			/* TLS WS-MAN port; 0 = 16993 */
	int tls;			/* talk https on tls_port */
	const char *ca_file;		/* PEM bundle that must verify the peer */
	const unsigned char *pin_sha256;/* optional SHA-256 of the leaf DER */
	/*
	 * Optional: the DER of the leaf the records say was bound on this
	 * device.  When the peer serves exactly these bytes, the chain check
	 * (with ca_file) forgives that leaf's expiry, and nothing else: not
	 * an expired CA certificate, not a leaf not yet valid, not another
	 * leaf.  The hostname and the pin are checked as always.  Lets a
	 * device offline past its certificate's notAfter be renewed.
	 */
	const unsigned char *expired_ok_der;
	size_t expired_ok_len;
	int legacy_tls;			/* AMT <= 12: legacy reneg, SECLEVEL 0 */
	const char *user;
	const char *password;		/* borrowed; the caller wipes it */
	long timeout_ms;		/* per call; 0 = AMTCA_AMT_CALL_MS */
	/* Optional: once amtca_now_ms() passes a non-zero *abort_at_ms, a
	 * call in flight (or about to start) fails at once with
	 * AMTCA_E_AMT_TRANSPORT "aborted" (a stopping service's deadline). */
	const atomic_llong *abort_at_ms;
};

/* Has the deadline in `abort_at_ms` (may be NULL) passed? */
int amt_aborted(const atomic_llong *abort_at_ms);

struct amt;

/*
 * Initialise libcurl, with an allocator that wipes every block libcurl
 * frees (its copies of the password among them).  Runs once per process;
 * later calls return the first result.  It must come before any other
 * curl_global_init() to take effect; amt_open() calls it too.  A program's
 * main() pairs its call with one curl_global_cleanup().
 */
int amt_global_init(void) AMTCA_WUR;

/* Copies what it needs from `o` (not the password pointer's lifetime). */
int amt_open(const struct amt_opts *o, struct amt **out) AMTCA_WUR;
void amt_free(struct amt *a);

struct amt_error {
	int http_status;		/* 0 when no HTTP response */
	char fault_subcode[64];		/* local name, e.g. "AlreadyExists" */
	char fault_reason[256];
	int return_value;		/* PT_STATUS, or -1 */
};

/* Details of the newest failed call on `a`. */
const struct amt_error *amt_last_error(const struct amt *a);

/* Number of HTTP requests sent so far (tests: "exactly one attempt"). */
unsigned amt_request_count(const struct amt *a);

struct amt_general {
	char *version;			/* from the Server: header, e.g. "15.0.23.1706" */
	char *hostname;
	char *domainname;
	char *realm;			/* DigestRealm */
};
int amt_general_get(struct amt *a, struct amt_general *out) AMTCA_WUR;
void amt_general_clear(struct amt_general *g);

struct amt_cert {
	char *instance_id;		/* "Intel(r) AMT Certificate: Handle: N" */
	char *subject;			/* as AMT reports it (RFC 2253 style) */
	char *issuer;
	int trusted_root;		/* TrustedRootCertficate (sic) */
	int read_only;			/* ReadOnlyCertificate, 0 when absent */
	unsigned char *der;
	size_t der_len;
};
int amt_certs_list(struct amt *a, struct amt_cert **out, size_t *n) AMTCA_WUR;
void amt_certs_free(struct amt_cert *c, size_t n);

struct amt_key {
	char *instance_id;		/* "Intel(r) AMT Key: Handle: N" */
	unsigned char *der;		/* DERKey as sent (PKCS#1 or SPKI) */
	size_t der_len;
	EVP_PKEY *pub;			/* parsed from either form; NULL when
					   neither form parses (e.g. an ECC
					   key in a form we do not know) */
};
int amt_keys_list(struct amt *a, struct amt_key **out, size_t *n) AMTCA_WUR;
void amt_keys_free(struct amt_key *k, size_t n);

int amt_cert_delete(struct amt *a, const char *instance_id) AMTCA_WUR;
int amt_key_delete(struct amt *a, const char *instance_id) AMTCA_WUR;

/* KeyAlgorithm 0 = RSA.  *handle = the new key's InstanceID. */
int amt_generate_key_pair(struct amt *a, int alg, int bits, char **handle) AMTCA_WUR;

/*
 * GeneratePKCS10RequestEx: AMT signs the null-signed request `null_csr`
 * with the key `key_handle` (SigningAlgorithm 1 = SHA256-RSA).  Returns the
 * signed CSR DER (malloc'd).
 */
int amt_pkcs10_request(struct amt *a, const char *key_handle, int sigalg,
    const unsigned char *null_csr, size_t len, unsigned char **csr,
    size_t *csr_len) AMTCA_WUR;

int amt_add_cert(struct amt *a, const unsigned char *der, size_t len,
    char **handle) AMTCA_WUR;
int amt_add_trusted_root(struct amt *a, const unsigned char *der, size_t len,
    char **handle) AMTCA_WUR;
/* PKCS#1 RSAPrivateKey DER. */
int amt_add_key(struct amt *a, const unsigned char *pkcs1, size_t len,
    char **handle) AMTCA_WUR;

/* The bound certificate's InstanceID, or *cert_handle = NULL when none. */
int amt_tls_context_get(struct amt *a, char **cert_handle) AMTCA_WUR;
int amt_tls_context_create(struct amt *a, const char *cert_handle) AMTCA_WUR;
int amt_tls_context_put(struct amt *a, const char *cert_handle) AMTCA_WUR;
int amt_tls_context_delete(struct amt *a, const char *cert_handle) AMTCA_WUR;

struct amt_tls_setting {
	char *instance_id;
	char *element_name;
	int enabled;
	int mutual_auth;
	int accept_non_secure;
	int non_secure_supported;	/* -1 when the firmware omits it */
};
int amt_tls_settings_list(struct amt *a, struct amt_tls_setting **out,
    size_t *n) AMTCA_WUR;
int amt_tls_setting_get(struct amt *a, const char *instance_id,
    struct amt_tls_setting *out) AMTCA_WUR;
/* Puts the instance (never sends NonSecureConnectionsSupported). */
int amt_tls_setting_put(struct amt *a, const struct amt_tls_setting *s) AMTCA_WUR;
void amt_tls_setting_clear(struct amt_tls_setting *s);
void amt_tls_settings_free(struct amt_tls_setting *s, size_t n);

int amt_time_get(struct amt *a, uint32_t *ta0) AMTCA_WUR;
int amt_time_set(struct amt *a, uint32_t ta0, uint32_t tm1, uint32_t tm2) AMTCA_WUR;

/* AMT_SetupAndConfigurationService.CommitChanges; checks ReturnValue. */
int amt_commit(struct amt *a) AMTCA_WUR;

/*
 * TLS handshake with host:tls_port (honouring address pin), verifying the
 * chain against o->ca_file and the hostname against o->host.  Returns the
 * leaf the peer served (caller X509_free()s).  With ca_file NULL no
 * verification is done (diagnostics only).  AMTCA_E_AMT_TRANSPORT when
 * nothing answers, AMTCA_E_AMT_TLS when verification fails.
 */
int amt_tls_fetch_leaf(const struct amt_opts *o, X509 **leaf) AMTCA_WUR;

/* ------------------------------------------------------------------------
 * Pure request builders and response parsers (no I/O).  Exported so unit
 * tests compare requests byte-for-byte with the strings working clients
 * pin, run the parsers over recorded AMT responses, and so the fuzz target
 * reaches them.  The client uses exactly these.  Strings returned in *out
 * are malloc'd and NUL-terminated; out-params are NULL/0 on failure.
 * ---------------------------------------------------------------------- */

#define AMT_CLASS_URI(cls) "http://intel.com/wbem/wscim/1/amt-schema/1/" cls
#define AMT_BODY_ENUMERATE \
	"<Enumerate xmlns=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" />"
/* ElementName of the TLS endpoint collection as AMT reports it. */
#define AMT_TLS_COLLECTION "TLSProtocolEndpoint Instances Collection"

struct amt_tls_setting;

/* <Body> contents (without <Body>) for the calls above. */
int amt_body_pull(const char *context, char **out) AMTCA_WUR;
int amt_body_generate_key_pair(int alg, int bits, char **out) AMTCA_WUR;
int amt_body_pkcs10_request(const char *key_handle, int sigalg,
    const unsigned char *null_csr, size_t len, char **out) AMTCA_WUR;
/* AddTrustedRootCertificate when trusted_root, else AddCertificate. */
int amt_body_add_cert(int trusted_root, const unsigned char *der, size_t len,
    char **out) AMTCA_WUR;
int amt_body_add_key(const unsigned char *pkcs1, size_t len, char **out) AMTCA_WUR;
/* AMT_TLSCredentialContext instance (Create and Put). */
int amt_body_tls_context(const char *cert_handle, char **out) AMTCA_WUR;
/* AMT_TLSSettingData instance for Put: alphabetical, no TrustedCN, never
 * NonSecureConnectionsSupported. */
int amt_body_tls_setting(const struct amt_tls_setting *s, char **out) AMTCA_WUR;
int amt_body_time_get(char **out) AMTCA_WUR;
int amt_body_time_set(uint32_t ta0, uint32_t tm1, uint32_t tm2, char **out) AMTCA_WUR;
int amt_body_commit(char **out) AMTCA_WUR;

/*
 * Classify one HTTP response: a SOAP fault body (whatever the status) is
 * AMTCA_E_AMT_FAULT with subcode/reason in `err`; any other non-200 status
 * is AMTCA_E_AMT_HTTP; an unparsable 200 body AMTCA_E_AMT_PARSE (or
 * AMTCA_E_LIMIT).  `what` names the call in messages ("Get AMT_X").  On
 * success *out is the parsed envelope (wsman_msg_free()).  `err` may be NULL.
 */
struct wsman_msg;
int amt_response_check(long http_status, const char *buf, size_t len,
    const char *what, struct amt_error *err, struct wsman_msg **out) AMTCA_WUR;

/*
 * Parsers over one response body (a SOAP fault gives AMTCA_E_AMT_FAULT).
 * Pull parsers append to (*v, *n) (start with NULL, 0; at most
 * AMTCA_AMT_ITEMS_MAX items in all, else AMTCA_E_LIMIT) and report the next
 * EnumerationContext (NULL when absent) and whether EndOfSequence was seen.
 * On failure the arrays keep what was appended before (free them).
 */
int amt_parse_enumerate(const char *buf, size_t len, char **context) AMTCA_WUR;
int amt_parse_pull_certs(const char *buf, size_t len, struct amt_cert **v,
    size_t *n, char **context, int *eos) AMTCA_WUR;
int amt_parse_pull_keys(const char *buf, size_t len, struct amt_key **v,
    size_t *n, char **context, int *eos) AMTCA_WUR;
int amt_parse_pull_tls_settings(const char *buf, size_t len,
    struct amt_tls_setting **v, size_t *n, char **context, int *eos) AMTCA_WUR;
/* Bound certificate InstanceIDs (ElementInContext) of TLSCredentialContext items. */
int amt_parse_pull_tls_context(const char *buf, size_t len, char ***v,
    size_t *n, char **context, int *eos) AMTCA_WUR;
/* Get AMT_GeneralSettings (version stays NULL: it comes from Server:). */
int amt_parse_general(const char *buf, size_t len, struct amt_general *out) AMTCA_WUR;
/* Get/Put response of AMT_TLSSettingData. */
int amt_parse_tls_setting(const char *buf, size_t len,
    struct amt_tls_setting *out) AMTCA_WUR;
/*
 * `cls` method output (cls e.g. "AMT_PublicKeyManagementService"): its
 * ReturnValue, and when `field` is non-NULL that field's value (for an EPR
 * field, the InstanceID selector inside it) in *value.  A non-zero
 * ReturnValue is not an error here; a missing field is AMTCA_E_AMT_PARSE
 * only when ReturnValue is 0.
 */
int amt_parse_output(const char *buf, size_t len, const char *cls,
    const char *method, const char *field, char **value,
    int *return_value) AMTCA_WUR;
/* DERKey: PKCS#1 RSAPublicKey or SubjectPublicKeyInfo, whole input. */
int amt_der_pubkey(const unsigned char *der, size_t len, EVP_PKEY **out) AMTCA_WUR;
/* "Intel(R) Active Management Technology 15.0.23.1706" -> "15.0.23.1706". */
int amt_server_version(const char *server, char **out) AMTCA_WUR;
void amt_tls_context_handles_free(char **v, size_t n);

#endif
