/*
 * amtsim internals: an Intel AMT firmware stand-in for tests.
 *
 * Layers (each file one job):
 *   device.c        one device's state: key pairs, certificate store, TLS
 *                   settings (pending and committed), credential context,
 *                   clock.  All crypto (OpenSSL) lives here.
 *   handlers.c      sim_handle(): one WS-MAN request in, one response out.
 *                   Pure: no sockets, so the fuzz target drives it directly.
 *   digest_server.c HTTP Digest on the server side: challenge, verify,
 *                   nonce expiry, lockout.
 *   http.c          libmicrohttpd glue: one daemon per device and port,
 *                   irregular chunking, the control thread that restarts
 *                   listeners after CommitChanges.
 *   state.c         the --state file (load at start, rewrite on change).
 *   keypool.c       the --key-pool cache of pre-generated RSA keys.
 *   main.c          command line, fleet set-up, signals.
 *
 * Locking: every struct sim_device has one mutex that guards all of its
 * state; sim_handle() and the digest functions take it themselves.
 */
#ifndef AMTCA_AMT_SIM_H
#define AMTCA_AMT_SIM_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "amt/wsman.h"
#include "common/err.h"

#define SIM_VERSION            "0.1.0"
#define SIM_AMT_VERSION        "16.1.27.2225"
#define SIM_HTTP_PORT          16992
#define SIM_TLS_PORT           16993
#define SIM_REDIR_PORT         16995	/* redirection over TLS; --redir-port 0: off */
#define SIM_STEP_MAX           64	/* --drop-at step name */
#define SIM_ENUM_CTX_MAX       8	/* open enumeration contexts per device */
#define SIM_NONCE_TTL_S        300	/* digest nonce lifetime */
#define SIM_LOCKOUT_S          60	/* lockout period after --lockout N */
#define SIM_COMMIT_DELAY_MS    1000	/* default --commit-delay-ms */
#define SIM_CHUNK_MAX          700	/* largest response chunk */
#define SIM_THREAD_STACK       (256 * 1024)
#define SIM_CONN_LIMIT         32	/* connections per daemon */
#define SIM_CONN_TIMEOUT_S     30
#define SIM_PEM_MAX            (64 * 1024)	/* --serve-cert/--serve-key */
#define SIM_CSR_MAX            (16 * 1024)	/* NullSignedCertificateRequest */
#define SIM_KEY_DER_MAX        4096	/* AddKey KeyBlob */
#define SIM_STATE_MAX          (256 * 1024 * 1024)
#define SIM_POOL_KEYS_MAX      65536	/* keys in a --key-pool file */
#define SIM_POOL_FILE_MAX      ((size_t)SIM_POOL_KEYS_MAX * 2048)
#define SIM_POOL_THREADS_MAX   16	/* key generation threads at start */
#define SIM_CLOCK_OFFSET_MAX   (100LL * 366 * 86400)	/* |--clock-offset| */
#define SIM_CLOCK_FILE_MAX     64
#define SIM_QUIRK_ARGS_MAX     32	/* --amt-quirk options */

/* TLS setting instances. */
#define SIM_TLS_REMOTE 0
#define SIM_TLS_LMS    1
#define SIM_TLS_N      2

struct sim_keypool;

/*
 * Firmware facts that depend on the AMT version (quirks.c): defaults by
 * version from a table, each switchable with --amt-quirk NAME=on|off.
 */
enum sim_quirk {
	SIM_Q_KEYGEN_RSA2048,		/* GenerateKeyPair 0/2048 accepted */
	SIM_Q_KEYGEN_RSA3072,		/* GenerateKeyPair 0/3072 accepted */
	SIM_Q_KEYGEN_ECC384,		/* GenerateKeyPair 1/384 accepted */
	SIM_Q_CSR_SHA1,			/* SigningAlgorithm 0 accepted */
	SIM_Q_CSR_SHA256,		/* SigningAlgorithm 1 accepted */
	SIM_Q_CSR_SHA384,		/* SigningAlgorithm 2 = SHA-384 */
	SIM_Q_REFUSE_WEAK_LEAF,		/* RSA < 3072 / EC < 384 leaf refused */
	SIM_Q_REFUSE_SHA256_LEAF,	/* leaf signed with < SHA-384 refused */
	SIM_Q_REFUSE_SHA256_CHAIN,	/* CA cert signed with < SHA-384 refused */
};

/*
 * Options shared by every device (read-only once the fleet runs; what the
 * two pointers point to has its own synchronisation).
 */
struct sim_config {
	const char *user;
	int http_port;
	int tls_port;
	int redir_port;			/* redirection over TLS (16995); 0 = none */
	unsigned latency_ms;
	unsigned keygen_ms;
	unsigned keygen_busy;		/* first K GenerateKeyPair → 2061 */
	unsigned commit_delay_ms;
	char drop_at[SIM_STEP_MAX];	/* "" = none; "STEP" or "STEP+" */
	unsigned lockout;		/* 0 = never lock */
	unsigned lockout_s;
	long clock_skew_s;
	unsigned store_max;		/* certificates, and keys, each */
	unsigned nonce_ttl_s;
	char amt_version[32];
	unsigned quirks;		/* 1u << enum sim_quirk, in force */
	int non_secure_unsupported;	/* CSME >= 16.1 NonSecureConnectionsSupported=false */
	int old_tls;
	char *serve_cert_pem;		/* --serve-cert contents, or NULL */
	char *serve_key_pem;
	int verbose;
	/*
	 * Simulated wall time = host time + *clock_offset_s (--clock-offset,
	 * moved at run time on SIGHUP).  NULL (the fuzzer): no offset.
	 */
	_Atomic long long *clock_offset_s;
	struct sim_keypool *key_pool;	/* --key-pool, or NULL */
};

struct sim_key {
	int handle;
	EVP_PKEY *pkey;			/* RSA or EC (P-384) key pair */
	unsigned char *pub;		/* DERKey: PKCS#1 RSAPublicKey DER for
					   RSA, SubjectPublicKeyInfo for EC */
	size_t pub_len;
};

struct sim_cert {
	int handle;
	int trusted_root;
	unsigned char *der;
	size_t der_len;
	X509 *x509;
	char *subject;			/* RFC 2253 style, last RDN first */
	char *issuer;
};

struct sim_tls {
	int enabled;
	int mutual;
	int accept_non_secure;
};

struct sim_enum_ctx {
	unsigned id;			/* 0 = free */
	int cls;			/* enum sim_class */
	size_t pos;
};

struct sim_listener;

struct sim_device {
	pthread_mutex_t lock;
	const struct sim_config *cfg;
	unsigned index;
	char *fqdn;
	char *hostname;			/* first label */
	char *domain;			/* the rest, "" when none */
	char realm[48];			/* "Digest:" + 32 uppercase hex */
	unsigned char ha1[16];		/* MD5(user:realm:password) */
	unsigned char nonce_key[32];	/* HMAC key for stateless nonces */
	struct in_addr addr;

	/* Certificate store (handles from 0, separate counters). */
	struct sim_key *keys;
	size_t nkeys;
	struct sim_cert *certs;
	size_t ncerts;
	int key_next;
	int cert_next;

	int ctx_cert;			/* bound TLSCredentialContext cert, -1 none */
	int committed_ctx_cert;		/* binding in force at the last commit */
	struct sim_tls pending[SIM_TLS_N];
	struct sim_tls committed[SIM_TLS_N];

	long long clock_offset_s;	/* AMT clock = simulated time + this */
	uint32_t last_ta0;

	unsigned long long msg_seq;	/* response MessageID counter */
	unsigned enum_seq;
	struct sim_enum_ctx enums[SIM_ENUM_CTX_MAX];

	unsigned keygen_busy_left;
	int dropped;			/* --drop-at fired (once per device) */

	/* Digest state. */
	unsigned auth_failures;
	long long locked_until_ms;

	/* Set by sim_handle(): a commit that changes listeners happened. */
	int commit_requested;

	/* Change notification (state file); NULL in the fuzzer. */
	void (*on_change)(void *arg);
	void *on_change_arg;

	/* Owned by http.c. */
	struct sim_listener *http_l;
	struct sim_listener *tls_l;
	struct sim_listener *redir_l;
	long long apply_at_ms;		/* control thread: apply listeners then */
};

/* ---- device.c ---- */

/*
 * A fresh device (factory state: empty store, TLS off).  `password` is
 * only used to derive HA1 and is not kept.  Free with sim_device_free().
 */
int sim_device_new(const struct sim_config *cfg, unsigned index,
    const char *fqdn, const char *password, struct sim_device **out) AMTCA_WUR;
void sim_device_free(struct sim_device *d);

/* Back to factory state (the fuzzer reuses one device). */
void sim_device_reset(struct sim_device *d);

/* Simulated wall time: host time + --clock-offset (fleet-wide). */
time_t sim_world_clock(const struct sim_config *cfg);

/*
 * AMT clock in Unix seconds: simulated wall time + the device's own drift
 * (--clock-skew, then whatever SetHighAccuracyTimeSynch set).  Caller holds
 * d->lock or does not care.
 */
time_t sim_device_clock(const struct sim_device *d);

struct sim_key *sim_key_by_handle(struct sim_device *d, int handle);
struct sim_cert *sim_cert_by_handle(struct sim_device *d, int handle);
/* The key whose public part matches the certificate's, or NULL. */
struct sim_key *sim_cert_key(struct sim_device *d, const struct sim_cert *c);

/* Handle number from "Intel(r) AMT Certificate: Handle: N" etc., or -1. */
int sim_parse_handle(const char *instance_id, const char *prefix);

/* PT_STATUS results (>= 0), or a negative AMTCA_E_* on internal failure. */
int sim_key_generate(struct sim_device *d, int alg, int bits, int *handle) AMTCA_WUR;
int sim_key_add(struct sim_device *d, const unsigned char *pkcs1, size_t len,
    int *handle) AMTCA_WUR;
int sim_cert_add(struct sim_device *d, const unsigned char *der, size_t len,
    int trusted_root, int *handle) AMTCA_WUR;
/* Re-sign a null-signed CSR; *out malloc'd DER. */
int sim_csr_sign(struct sim_device *d, int key_handle, int sigalg,
    const unsigned char *csr, size_t len, unsigned char **out,
    size_t *out_len) AMTCA_WUR;
void sim_key_remove(struct sim_device *d, struct sim_key *k);
void sim_cert_remove(struct sim_device *d, struct sim_cert *c);

/* Restore helpers for state.c (no PT_STATUS: AMTCA_E_*). */
int sim_key_restore(struct sim_device *d, int handle, const unsigned char *der,
    size_t len) AMTCA_WUR;
int sim_cert_restore(struct sim_device *d, int handle, int trusted,
    const unsigned char *der, size_t len) AMTCA_WUR;

/* PKCS#1 private key DER of a key (state file). */
int sim_key_private_der(const struct sim_key *k, unsigned char **out,
    size_t *len) AMTCA_WUR;

/*
 * What a device should serve on its TLS port now: PEM cert and key
 * (malloc'd) of the committed binding, honouring --serve-cert/--serve-key
 * and the AMT clock (a certificate not valid at the AMT clock is not
 * served, as real firmware silently keeps TLS down).  Caller holds
 * d->lock.  *cert = NULL when TLS should be down.
 */
int sim_device_tls_material(struct sim_device *d, char **cert_pem,
    char **key_pem) AMTCA_WUR;

/* Listener plan from the committed settings (caller holds d->lock). */
int sim_device_wants_http(const struct sim_device *d);
int sim_device_wants_tls(const struct sim_device *d);

/* Notify the state writer (caller holds d->lock). */
void sim_device_changed(struct sim_device *d);

/* ---- quirks.c ---- */

/* The facts in force by default for this AMT version ("X.Y.Z.B"; one
 * whose major number does not parse counts as 0). */
unsigned sim_quirks_default(const char *amt_version);
/* Apply "NAME=on" or "NAME=off" to *q; AMTCA_E_USAGE for an unknown name
 * or value (*q unchanged). */
int sim_quirk_set(unsigned *q, const char *arg) AMTCA_WUR;
/* One line per fact: name, on/off, what it means and its source. */
void sim_quirks_print(FILE *fp, unsigned q);

static inline int
sim_quirk(const struct sim_config *cfg, enum sim_quirk q)
{
	return (cfg->quirks & (1u << q)) != 0;
}

/*
 * Would this firmware refuse `x` (PT_STATUS 2062 or 2063, else 0)?  A
 * certificate that is not a CA is a leaf: key strength and signature
 * digest per the REFUSE_* facts; a CA certificate only its digest.
 */
int sim_cert_refused(const struct sim_config *cfg, X509 *x);

/* ---- handlers.c ---- */

/*
 * Handle one authenticated WS-MAN request body.  On return *http_status is
 * 200 (response), 400 (SOAP fault), 500, or 0: close the connection without
 * answering (--drop-at).  `resp` receives the XML body.  Returns 0, or a
 * negative AMTCA_E_* when no response could be built at all.
 */
int sim_handle(struct sim_device *d, const char *req, size_t len,
    struct wsman_buf *resp, int *http_status) AMTCA_WUR;

/* A --drop-at step name ("GenerateKeyPair", "Put-TLSSettingData", "+" suffix). */
int sim_step_valid(const char *step);

/* ---- digest_server.c ---- */

enum sim_auth {
	SIM_AUTH_OK = 0,
	SIM_AUTH_CHALLENGE,		/* 401, stale="false" */
	SIM_AUTH_STALE,			/* 401, stale="true" */
	SIM_AUTH_LOCKED,		/* 401 with the lockout page */
};

/*
 * Check an Authorization header (NULL when absent) for `method` and the
 * request target `url`.  Counts failures for --lockout.
 */
enum sim_auth sim_auth_check(struct sim_device *d, const char *method,
    const char *url, const char *authz);

/* The WWW-Authenticate value for a fresh challenge. */
int sim_auth_challenge(struct sim_device *d, int stale, char *out,
    size_t outlen) AMTCA_WUR;

/* The HTML bodies AMT sends with 401. */
extern const char sim_html_401[];

/* ---- http.c ---- */

struct sim_fleet {
	struct sim_config *cfg;
	struct sim_device **dev;
	size_t n;
	const char *state_path;
	_Atomic long long clock_offset_s;	/* cfg->clock_offset_s points here */
	int clock_offset_given;		/* on the command line: beats --state */
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond;
	pthread_t ctl_thread;
	int ctl_running;
	int ctl_stop;
	int state_dirty;
};

/* Start listeners for every device per its committed settings. */
int sim_fleet_start(struct sim_fleet *f) AMTCA_WUR;
/* Stop the control thread and every daemon (idempotent). */
void sim_fleet_stop(struct sim_fleet *f);
/* Device state changed: schedule a state write (on_change hook). */
void sim_fleet_changed(void *arg);
/*
 * The simulated clock moved: re-check every device's listeners (a
 * certificate may have become valid or expired) and write the state.
 */
void sim_fleet_clock_moved(struct sim_fleet *f);

/* ---- state.c ---- */

/* Serialize every device (taking each lock in turn). */
int sim_state_save(struct sim_fleet *f) AMTCA_WUR;
/* Load a state file into fresh devices; a missing file is not an error. */
int sim_state_load(struct sim_fleet *f) AMTCA_WUR;

/* ---- keypool.c ---- */

/*
 * Open the key pool cache at `path`: take its lock (FILE.lock, so two
 * running simulators never hand out the same keys), load the RSA-2048 keys
 * it holds and, when there are fewer than `want`, generate the missing ones
 * on up to SIM_POOL_THREADS_MAX threads and rewrite the file (mode 0600,
 * atomically).  A missing file is an empty pool.  Free with
 * sim_keypool_close().
 */
int sim_keypool_open(const char *path, size_t want,
    struct sim_keypool **out) AMTCA_WUR;

/*
 * Mark the pool key whose PKCS#1 public key is `pub` as used (a device
 * restored from --state holds it already).  No-op when not in the pool.
 */
void sim_keypool_skip(struct sim_keypool *p, const unsigned char *pub,
    size_t len);

/*
 * The next unused key, in file order, each at most once per run; when the
 * pool is exhausted, a freshly generated one (said once on stderr, and kept
 * for the next run).  *out holds its own reference.  Thread-safe.
 */
int sim_keypool_take(struct sim_keypool *p, EVP_PKEY **out) AMTCA_WUR;

/*
 * Save keys generated on the fly into the file (when there were any), print
 * "key-pool keys=N used=U generated=G on_the_fly=F" on `report` (may be
 * NULL), release the lock and free.  Returns the save's result; NULL ok.
 */
int sim_keypool_close(struct sim_keypool *p, FILE *report) AMTCA_WUR;

#endif
