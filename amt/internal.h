/*
 * Private to the amt/ client sources: the parsers of amt.h over an already parsed and
 * fault-checked envelope, so the client parses each response once.
 */
#ifndef AMTCA_AMT_INTERNAL_H
#define AMTCA_AMT_INTERNAL_H

#include <openssl/x509_vfy.h>

#include "amt/amt.h"
#include "amt/wsman.h"

int amt_msg_enumerate(struct wsman_msg *m, char **context) AMTCA_WUR;
int amt_msg_pull_certs(struct wsman_msg *m, struct amt_cert **v, size_t *n,
    char **context, int *eos) AMTCA_WUR;
int amt_msg_pull_keys(struct wsman_msg *m, struct amt_key **v, size_t *n,
    char **context, int *eos) AMTCA_WUR;
int amt_msg_pull_tls_settings(struct wsman_msg *m, struct amt_tls_setting **v,
    size_t *n, char **context, int *eos) AMTCA_WUR;
int amt_msg_pull_tls_context(struct wsman_msg *m, char ***v, size_t *n,
    char **context, int *eos) AMTCA_WUR;
int amt_msg_general(struct wsman_msg *m, struct amt_general *out) AMTCA_WUR;
int amt_msg_tls_setting(struct wsman_msg *m, struct amt_tls_setting *out) AMTCA_WUR;
int amt_msg_output(struct wsman_msg *m, const char *cls, const char *method,
    const char *field, char **value, int *return_value) AMTCA_WUR;

/*
 * The parse gate: a counting semaphore over every response DOM the client
 * holds, so that 1000 devices in flight never hold 1000 parsed documents
 * at once.  amt_call_check() is amt_response_check() taking a permit
 * first; a message it returns keeps the permit until wsman_msg_free().
 * A thread never holds a message across a network call, so waiting for a
 * permit cannot deadlock.
 */
int amt_call_check(long http_status, const char *buf, size_t len,
    const char *what, struct amt_error *err, struct wsman_msg **out) AMTCA_WUR;

/*
 * amt/castore.c: the CA bundle at `path` as a shared X509_STORE, parsed
 * once per process and again only when the file changes (device, inode,
 * size, mtime, ctime).  *out is a new reference: X509_STORE_free() it, or
 * hand it to SSL_CTX_set_cert_store().  AMTCA_E_NOT_FOUND / AMTCA_E_IO when
 * the file cannot be read, AMTCA_E_CONFIG when it does not parse.
 */
int amt_ca_store_get(const char *path, X509_STORE **out) AMTCA_WUR;
/* How many times a bundle was read and parsed (for tests). */
unsigned long amt_ca_store_loads(void);

/*
 * amt/castore.c: X509_verify_cert(x), except that when x's leaf is
 * byte-equal to `der` (may be NULL), X509_V_ERR_CERT_HAS_EXPIRED at depth 0
 * is forgiven (and only that); then the context's error reads X509_V_OK,
 * so what OpenSSL records as the handshake's verify result is clean.
 * Returns X509_verify_cert()'s result; *forgiven (may be NULL) is set when
 * the leaf's expiry was forgiven.
 */
int amt_verify_chain(X509_STORE_CTX *x, const unsigned char *der, size_t len,
    int *forgiven);

struct amt_parse_gate {
	unsigned limit;			/* permits */
	unsigned used;			/* held now */
	unsigned waiting;		/* threads waiting for one */
	unsigned peak;			/* most held at once since reset */
};
/* Set the number of permits (0: the default from the CPU count), reset peak. */
void amt_parse_gate_set(unsigned limit);
void amt_parse_gate_get(struct amt_parse_gate *out);

#endif
