/*
 * Every size, count and time limit in one place (rpki-client's habit), so a
 * reviewer can see at a glance what outside input may make us allocate.
 */
#ifndef AMTCA_COMMON_LIMITS_H
#define AMTCA_COMMON_LIMITS_H

/* Secrets: PIN and password files. */
#define AMTCA_SECRET_MAX        256

/* Files we write (common/util.c) and the CA home's configuration. */
#define AMTCA_TMP_TRIES         16              /* fresh temp names on EEXIST */
#define AMTCA_SYMLINK_HOPS      8               /* links followed for --out */
#define AMTCA_MODULE_ENV_MAX    8               /* module_env lines in amtca.conf */
#define AMTCA_SOFTHSM_CONF_MAX  (16 * 1024)     /* a softhsm2.conf */

/* CA input. */
#define AMTCA_CSR_MAX           (16 * 1024)     /* PEM or DER CSR file */
#define AMTCA_FQDN_MAX          253
#define AMTCA_LABEL_MAX         63
#define AMTCA_DOMAINS_MAX       32              /* --domain suffixes */
#define AMTCA_IPS_MAX           8               /* --ip per certificate */
#define AMTCA_IP_RANGES_MAX     32              /* --ip-range networks */
#define AMTCA_SERIAL_BYTES      16              /* 127 random bits, positive */
#define AMTCA_DAYS_DEFAULT      397
#define AMTCA_DAYS_MAX          825
#define AMTCA_CA_DAYS_ROOT      (20 * 365)
#define AMTCA_CA_DAYS_INTER     (10 * 365)
#define AMTCA_SKEW_DEFAULT_S    3600            /* notBefore backdating */
#define AMTCA_RENEW_WINDOW_DAYS 30
#define AMTCA_CONF_MAX          (64 * 1024)     /* amtca.conf */
#define AMTCA_CERT_FILE_MAX     (64 * 1024)     /* one PEM/DER certificate file */

/* AMT / WS-Management. */
#define AMTCA_WSMAN_BODY_MAX    (1024 * 1024)   /* one response body */
#define AMTCA_WSMAN_REQ_MAX     (256 * 1024)    /* one request body (amtsim) */
#define AMTCA_AMT_CERT_DER_MAX  4100            /* AMT X509Certificate uint8[4100] */
#define AMTCA_AMT_STORE_MAX     32              /* simulator store capacity default */
#define AMTCA_AMT_PULL_MAX      64              /* Pull rounds before giving up */
#define AMTCA_AMT_ITEMS_MAX     256             /* items accepted from one enumeration */
#define AMTCA_AMT_CONNECT_MS    10000
#define AMTCA_AMT_CALL_MS       60000           /* AMT may take 30 s around commits */
#define AMTCA_AMT_TLS_WAIT_MS   60000           /* wait for 16993 after commit */
#define AMTCA_AMT_KEYGEN_TRIES  20
#define AMTCA_AMT_KEYGEN_BACKOFF_MS 500
/*
 * Response DOMs alive at once in one process (amt/client.c's parse gate):
 * CPUs x PER_CPU, within [MIN, MAX].  Parsing is CPU work, so more than a
 * few per CPU only adds memory, not speed.
 */
#define AMTCA_AMT_PARSES_PER_CPU 2
#define AMTCA_AMT_PARSES_MIN    4
#define AMTCA_AMT_PARSES_MAX    64
/* CA bundles kept parsed (amt/castore.c); a home has one, chain.pem. */
#define AMTCA_AMT_CA_CACHE_MAX  4
/* A handle keeps at most this much response buffer between calls. */
#define AMTCA_AMT_RESP_KEEP     (64 * 1024)

/* Fleet and service. */
#define AMTCA_CSV_LINE_MAX      4096            /* one line of a hosts file */
#define AMTCA_CSV_FIELDS_MAX    16              /* fields in one CSV record */
#define AMTCA_HOSTS_FILE_MAX    (32 * 1024 * 1024) /* a whole hosts file */
#define AMTCA_FLEET_HOSTS_MAX   100000          /* rows in a hosts file */
#define AMTCA_AMT_USER_MAX      64              /* an AMT user name */
#define AMTCA_LEASE_TTL_S       600             /* per-device lock lease */
/* Several service nodes (docs/deployment.md): a node's job claims, its
 * per-device leases and the reconcile leader lease last this long unless
 * renewed (serve --claim-ttl); a node that dies loses them after it. */
#define AMTCA_CLAIM_TTL_S       60
#define AMTCA_CLAIM_TTL_MIN_S   3
#define AMTCA_CLAIM_TTL_MAX_S   3600
#define AMTCA_SERVE_LEADER_LEASE "reconcile-leader"  /* the lease's name */
#define AMTCA_SERVE_JOB_POLL_MS 1500            /* runner: claimable jobs in
						   the store, every */
#define AMTCA_FLEET_CONCURRENCY 64              /* devices in flight (default) */
#define AMTCA_FLEET_CONCURRENCY_MAX 4096
#define AMTCA_FLEET_TRIES       4               /* enroll_run per device per run */
#define AMTCA_FLEET_BACKOFF_MS  1000            /* first retry's base delay */
#define AMTCA_FLEET_STACK       (512 * 1024)    /* worker thread stack */
#define AMTCA_SIM_DEVICES_MAX   4096
/*
 * Open files for N devices in flight: a device holds at most its plain and
 * its TLS connection, and each may briefly overlap a closing one; the base
 * covers the store, the token, stdio, logs and libraries.
 */
#define AMTCA_NOFILE_PER_DEVICE 4
#define AMTCA_NOFILE_BASE       64
#define AMTCA_NOFILE_NEED(n)    (AMTCA_NOFILE_BASE + \
				    (unsigned long)(n) * AMTCA_NOFILE_PER_DEVICE)

/* The service's admin API (enroll/serve/api.c) and its job runner. */
#define AMTCA_API_JSON_DEPTH    8               /* nesting in a request body */
#define AMTCA_API_JOB_DEVICES_MAX 10000         /* devices in one POST /jobs */
#define AMTCA_API_CONCURRENCY_DEFAULT 16        /* devices in flight per job */
#define AMTCA_API_CONCURRENCY_MAX 64            /* cap on a job's concurrency */
#define AMTCA_API_CRED_NAME_MAX 64              /* a credential's name */
#define AMTCA_API_PAGE_DEFAULT  100             /* certificates per page */
#define AMTCA_API_PAGE_MAX      1000
#define AMTCA_API_JOBS_LIST_MAX 200             /* newest jobs in GET /jobs */
#define AMTCA_API_CANCEL_GRACE_MS 5000          /* DELETE: in-flight AMT calls
						   aborted after this */
#define AMTCA_API_QUEUE_MAX     64              /* jobs waiting to run */

/* PKCS#11 (hsm/). */
#define AMTCA_HSM_SESSIONS_MAX  16              /* signing sessions per token */
#define AMTCA_AEAD_PLAIN_MAX    1024            /* one sealed plaintext */
#define AMTCA_AEAD_AAD_MAX      256             /* its associated data */
#define AMTCA_AEAD_SEALED_MAX   (AMTCA_AEAD_PLAIN_MAX + 128) /* a sealed blob */

/* AMT credentials sealed by the signer (signer/cred.c). */
#define AMTCA_CRED_NAME_MAX     64              /* a credential's name */
/*
 * The signer opens credentials through a token bucket.  A fleet run starts
 * up to AMTCA_FLEET_CONCURRENCY devices at once, then asks as devices
 * finish: real AMT takes seconds per device, amtsim fleets measured 20 to
 * 30 devices per second on 2 cores (docs/BENCHMARKS.md).  The bucket sits
 * above both so it never slows an honest run, and bounds what a front end
 * asking in a loop gets: AMTCA_E_RATE (retry later) beyond it.
 */
#define AMTCA_CRED_BURST        128
#define AMTCA_CRED_RATE_PER_S   50

/* Issuance store and CA internals (appended by ca/). */
#define AMTCA_STORE_BUSY_MS     10000           /* SQLite busy timeout */
#define AMTCA_STORE_PG_POOL_MAX 8               /* PostgreSQL connections per store */
#define AMTCA_STORE_PG_URI_MAX  2048            /* PostgreSQL store URI length */
#define AMTCA_STORE_PG_LEASE_TRIES 5            /* lease changing hands between reads */
#define AMTCA_STORE_META_NAME_MAX 64            /* a shared-configuration item's name */
#define AMTCA_STORE_META_VALUE_MAX (1024 * 1024) /* ... its value */
#define AMTCA_STORE_META_PUT_MAX 16             /* items per store_meta_put */
#define AMTCA_HSM_TOKEN_OBJECT_MAX (64 * 1024)   /* SoftHSM token.object */
/* Backups (enroll/backup.h). */
#define AMTCA_BACKUP_FILES_MAX  4096            /* files in one backup */
#define AMTCA_BACKUP_MANIFEST_MAX (1024 * 1024) /* BACKUP_MANIFEST */
#define AMTCA_BACKUP_DEPTH      6               /* directory nesting */
#define AMTCA_STORE_BATCH_MAX   512             /* records per group commit */
#define AMTCA_STORE_LINGER_US   5000            /* async commit waits for company */
#define AMTCA_STORE_LINGER_BATCH 64             /* ... unless this many are queued */
/* The audit trail (ca/audit.h, docs/audit.md). */
#define AMTCA_AUDIT_FIELD_MAX   1024            /* actor, action, subject */
#define AMTCA_AUDIT_DETAIL_MAX  4096            /* an entry's detail */
#define AMTCA_AUDIT_SEAL_EVERY  100             /* entries between seals, at most */
#define AMTCA_AUDIT_ANCHOR_MAX  256             /* the token's anchor object */
#define AMTCA_SERIAL_TRIES      8               /* fresh serials on a collision */
#define AMTCA_URL_MAX           1024            /* CDP / AIA URL in the policy */
#define AMTCA_SKEW_MAX_S        86400           /* notBefore backdating cap */

/* Admin and EST clients (signer/auth.c, enroll/serve/est.c). */
#define AMTCA_CLIENT_NAME_MAX   64              /* a client record's name */
#define AMTCA_CLIENT_ALLOW_MAX  32              /* --allow entries per client */
#define AMTCA_CLIENT_ALLOW_TEXT_MAX (AMTCA_CLIENT_ALLOW_MAX * (AMTCA_FQDN_MAX + 1))
#define AMTCA_EST_NAMES_MAX     8               /* DNS names in one EST CSR */
/*
 * Argon2id for EST Basic passwords (RFC 9106 second recommended option is
 * t=3, m=64 MiB, p=4).  The service verifies at most one password per
 * client per rate-limit token, so memory, not time, is what a flood could
 * exhaust: 19 MiB, t=2, p=1 is OWASP's Argon2id minimum (docs/est.md has
 * the measurement), and AMTCA_ARGON2_INFLIGHT caps the memory at 38 MiB.
 */
#define AMTCA_ARGON2_T          2
#define AMTCA_ARGON2_M_KIB      (19 * 1024)
#define AMTCA_ARGON2_P          1
#define AMTCA_ARGON2_SALT       16
#define AMTCA_ARGON2_HASH       32
#define AMTCA_ARGON2_PHC_MAX    160             /* encoded hash string */
#define AMTCA_ARGON2_INFLIGHT   2               /* KDFs at once (memory cap) */
/*
 * Basic authentication rate limits, token buckets checked before the KDF:
 * per client name and per peer address, BURST requests then RATE per
 * minute; buckets idle for a full refill are dropped, and at most
 * BUCKETS_MAX are kept (the oldest goes).
 */
#define AMTCA_AUTH_NAME_BURST   10
#define AMTCA_AUTH_NAME_PER_MIN 30
#define AMTCA_AUTH_PEER_BURST   20
#define AMTCA_AUTH_PEER_PER_MIN 60
#define AMTCA_AUTH_BUCKETS_MAX  4096
#define AMTCA_AUTH_FAIL_SLOTS   256             /* clients counted per minute */
#define AMTCA_SGN_NOTE_BURST    5000            /* audit notes per actor, burst */
#define AMTCA_SGN_NOTE_PER_MIN  3000            /* and refill a minute */
#define AMTCA_SGN_NOTE_DETAIL_MAX 512           /* a front end's note detail */
#define AMTCA_SGN_NOTE_ACTION_MAX 32            /* and its action */

/* amtca serve */
#define AMTCA_SERVE_HEADER_MAX  (32 * 1024)     /* request line and headers
						   (MHD's per-connection
						   memory) */
#define AMTCA_SERVE_EST_BODY_MAX (64 * 1024)    /* under /.well-known/est/ */
#define AMTCA_SERVE_API_BODY_MAX (1024 * 1024)  /* under /api/v1/ */
#define AMTCA_SERVE_DISCARD_MAX (1024 * 1024)  /* chunked body past its cap:
						   dropped, then cut off */
#define AMTCA_SERVE_CONN_MAX    256             /* connections per listener */
#define AMTCA_SERVE_CONN_LIMIT  16384           /* --max-connections cap */
#define AMTCA_SERVE_TIMEOUT_S   30              /* idle time per connection */
#define AMTCA_SERVE_BODY_TIMEOUTS 2             /* a body must arrive within
						   this many --timeout */
#define AMTCA_SERVE_STOP_S      10              /* SIGTERM: in-flight work */
#define AMTCA_SERVE_STATUS_PORT 9193            /* status listener default */
#define AMTCA_SERVE_RECONCILE_S (6 * 3600)      /* --reconcile-every default */
#define AMTCA_SERVE_CRL_CACHE_S 2               /* a CRL is rebuilt after */
#define AMTCA_SERVE_CRL_MAX     (8 * 1024 * 1024) /* CRL bytes cached */
#define AMTCA_SERVE_RENEW_CHECK_S 60            /* service cert check period */
#define AMTCA_SERVE_STACK       (256 * 1024)    /* per-connection thread */

/* The signer process and its wire format (docs/PROTOCOL.signer). */
#define AMTCA_SGN_REQ_MAX       (128 * 1024)    /* one request frame */
#define AMTCA_SGN_REPLY_MAX     (64 * 1024 * 1024) /* one reply frame */
#define AMTCA_SGN_STR_MAX       1024            /* a name, status, message */
#define AMTCA_SGN_SERIAL_MAX    64              /* hex serial / key id */
#define AMTCA_SGN_CERT_MAX      (16 * 1024)     /* one DER certificate */
#define AMTCA_SGN_CRL_MAX       (32 * 1024 * 1024) /* one DER CRL */
#define AMTCA_SGN_ALLOW_MAX     256             /* allow-list entries */
#define AMTCA_SGN_LIST_MAX      1000000         /* records in one list reply */
#define AMTCA_SGN_CONN_MAX      64              /* connections to one signer */
#define AMTCA_SGN_TIMEOUT_MS    120000          /* one request's answer */
#define AMTCA_SGN_START_MS      60000           /* the signer's HELLO */
#define AMTCA_SGN_CRL_DAYS      7               /* CRLs the signer builds */
#define AMTCA_SGN_KEYID_MAX     128             /* an issuer key id (hex) */

/* Retired intermediates a home keeps in its chain after `ca rotate`. */
#define AMTCA_RETIRED_MAX 8
/* CA certificate records one store_cacert_put() writes (ca rotate: the
 * new one, the old one, the retired ones, and what interrupted runs left). */
#define AMTCA_CACERT_PUT_MAX 32

#endif
