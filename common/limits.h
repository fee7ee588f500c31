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

/* PKCS#11 (hsm/). */
#define AMTCA_HSM_SESSIONS_MAX  16              /* signing sessions per token */

/* Issuance store and CA internals (appended by ca/). */
#define AMTCA_STORE_BUSY_MS     10000           /* SQLite busy timeout */
#define AMTCA_HSM_TOKEN_OBJECT_MAX (64 * 1024)   /* SoftHSM token.object */
/* Backups (enroll/backup.h). */
#define AMTCA_BACKUP_FILES_MAX  4096            /* files in one backup */
#define AMTCA_BACKUP_MANIFEST_MAX (1024 * 1024) /* BACKUP_MANIFEST */
#define AMTCA_BACKUP_DEPTH      6               /* directory nesting */
#define AMTCA_STORE_BATCH_MAX   512             /* records per group commit */
#define AMTCA_STORE_LINGER_US   5000            /* async commit waits for company */
#define AMTCA_STORE_LINGER_BATCH 64             /* ... unless this many are queued */
#define AMTCA_SERIAL_TRIES      8               /* fresh serials on a collision */
#define AMTCA_URL_MAX           1024            /* CDP / AIA URL in the policy */
#define AMTCA_SKEW_MAX_S        86400           /* notBefore backdating cap */

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

#endif
