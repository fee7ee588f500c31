/*
 * Error codes and messages shared by every module.
 *
 * Fallible functions return int: 0 on success, a negative AMTCA_E_* code
 * otherwise.  The code says what kind of failure it was (so a caller can
 * branch on it); the one-line human detail lives in a thread-local buffer
 * set by amtca_fail() and read back with amtca_errmsg().  Details never
 * contain PINs, passwords or key material.
 */
#ifndef AMTCA_COMMON_ERR_H
#define AMTCA_COMMON_ERR_H

#define AMTCA_WUR __attribute__((warn_unused_result))
#define AMTCA_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* X(name, default message).  Order is ABI for nothing: reorder freely. */
#define AMTCA_ERROR_TABLE(X)                                               \
	X(INTERNAL,      "internal error")                                 \
	X(NOMEM,         "out of memory")                                  \
	X(USAGE,         "invalid usage")                                  \
	X(IO,            "I/O error")                                      \
	X(CONFIG,        "bad configuration")                              \
	X(EXISTS,        "already exists")                                 \
	X(NOT_FOUND,     "not found")                                      \
	X(LIMIT,         "input exceeds a size limit")                     \
	X(HSM_MODULE,    "PKCS#11 module cannot be loaded")                \
	X(HSM_TOKEN,     "PKCS#11 token not found")                        \
	X(HSM_PIN,       "PKCS#11 login failed: wrong PIN")                \
	X(HSM_LOCKED,    "PKCS#11 PIN is locked")                          \
	X(HSM_KEY,       "key not found in the token")                     \
	X(HSM,           "PKCS#11 operation failed")                       \
	X(CSR,           "CSR rejected")                                   \
	X(FQDN,          "FQDN rejected")                                  \
	X(POLICY,        "request violates the issuance policy")          \
	X(CERT,          "certificate error")                              \
	X(STORE,         "issuance database error")                        \
	X(BACKUP,        "the backup does not match its manifest")         \
	X(AUDIT,         "the audit trail does not verify")                \
	X(AMT_TRANSPORT, "AMT device unreachable")                         \
	X(AMT_TLS,       "TLS verification of the AMT device failed")      \
	X(AMT_HTTP,      "AMT answered with an unexpected HTTP status")    \
	X(AMT_AUTH,      "AMT authentication failed")                      \
	X(AMT_FAULT,     "AMT returned a SOAP fault")                      \
	X(AMT_STATUS,    "AMT method returned an error status")            \
	X(AMT_PARSE,     "AMT response could not be parsed")               \
	X(AMT_MISMATCH,  "AMT state differs from what was expected")       \
	X(DNS,           "name resolution failed")                         \
	X(AUTH,          "authentication required or failed")              \
	X(DENIED,        "not allowed for this requester")                 \
	X(RATE,          "too many requests; try again later")             \
	X(IPC,           "signer process failed or sent a bad message")

enum amtca_err_index {
#define AMTCA_X_(n, s) AMTCA_EI_##n,
	AMTCA_ERROR_TABLE(AMTCA_X_)
#undef AMTCA_X_
	AMTCA_EI__COUNT
};

enum amtca_err {
	AMTCA_E_OK = 0,
#define AMTCA_X_(n, s) AMTCA_E_##n = -1 - AMTCA_EI_##n,
	AMTCA_ERROR_TABLE(AMTCA_X_)
#undef AMTCA_X_
};

/* Static default message for a code; never NULL. */
const char *amtca_strerror(int code);

/* Short stable name ("HSM_PIN") for a code, for JSON output; never NULL. */
const char *amtca_errname(int code);

/*
 * Record a one-line detail for the current thread and return `code`, so a
 * failing path reads:  return amtca_fail(AMTCA_E_CSR, "CSR signature does not verify");
 */
int amtca_fail(int code, const char *fmt, ...) AMTCA_PRINTF(2, 3);

/*
 * As amtca_fail(), and append the reason of the newest OpenSSL error (then
 * clear OpenSSL's queue), so users never see "error:0680006C".
 */
int amtca_fail_ssl(int code, const char *fmt, ...) AMTCA_PRINTF(2, 3);

/*
 * The detail recorded for `code` on this thread when it was the last
 * failure recorded, else amtca_strerror(code).  Valid until the next
 * amtca_fail*() on this thread.
 */
const char *amtca_errmsg(int code);

/* Forget the recorded detail (and OpenSSL's queue) of this thread. */
void amtca_err_clear(void);

#endif
