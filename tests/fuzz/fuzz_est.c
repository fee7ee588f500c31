/*
 * libFuzzer target for the EST front end (enroll/serve/est.c): a
 * simpleenroll body (base64 of a PKCS#10 request, any bytes) through
 * est_handle() with HTTP Basic credentials, the service and the signer
 * stubbed.  Properties: no crash or leak; every reply is one of the
 * statuses EST documents; the signer is asked only for one name, which is
 * lowercase, at most 253 bytes, and is the CSR's CN or one of its SAN
 * dNSNames as OpenSSL reads them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* The library has the real signer API; est.c gets these stubs instead. */
#define sgn_issue stub_sgn_issue
#define sgn_auth stub_sgn_auth
#define sgn_client_clear stub_sgn_client_clear
#include "enroll/serve/est.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *cur;
static size_t curlen;

/* --- stubs of the service and the signer ------------------------------- */

void
srv_body(struct srv_resp *rs, int status, const char *ctype,
    unsigned char *body, size_t len)
{
	free(rs->body);
	rs->status = status;
	rs->ctype = ctype;
	rs->body = body;
	rs->len = len;
}

void
srv_error(struct srv_resp *rs, int status, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv_body(rs, status, "application/json",
	    (unsigned char *)strdup(msg), strlen(msg));
}

int
srv_status_of(int code)
{
	return code == AMTCA_E_AUTH ? 401 : code == AMTCA_E_DENIED ? 403 : 400;
}

int
srv_header(struct srv_resp *rs, const char *name, const char *value)
{
	if (rs->nhdr >= SRV_HDR_MAX)
		return AMTCA_E_LIMIT;
	rs->hdr_name[rs->nhdr] = name;
	rs->hdr_value[rs->nhdr++] = strdup(value);
	return 0;
}

struct sgn *serve_sgn(struct serve *s) { (void)s; return NULL; }
struct home *serve_home(struct serve *s) { (void)s; return NULL; }
void
serve_log(struct serve *s, const char *event, const char *fmt, ...)
{
	(void)s;
	(void)event;
	(void)fmt;
}

void
sgn_client_clear(struct sgn_client *c)
{
	size_t i;

	free(c->name);
	for (i = 0; i < c->nallow; i++)
		free(c->allow[i]);
	free(c->allow);
	memset(c, 0, sizeof(*c));
}

int
sgn_auth(struct sgn *s, const struct sgn_who *who, struct sgn_client *out)
{
	(void)s;
	(void)who;
	memset(out, 0, sizeof(*out));
	out->name = strdup("fuzz");
	out->roles = SGN_ROLE_EST;
	out->allow = calloc(1, sizeof(char *));
	out->allow[0] = strdup("example.test");
	out->nallow = 1;
	return 0;
}

/* Is `name` the CN or a SAN dNSName of the request in `der`? */
static int
csr_has(const unsigned char *der, size_t len, const char *name)
{
	const unsigned char *p = der;
	X509_REQ *r = d2i_X509_REQ(NULL, &p, (long)len);
	STACK_OF(X509_EXTENSION) *exts;
	GENERAL_NAMES *g;
	X509_NAME *sn;
	int i, k, found = 0;

	if (r == NULL)
		return 0;
	sn = X509_REQ_get_subject_name(r);
	for (k = -1; (k = X509_NAME_get_index_by_NID(sn, NID_commonName, k)) >= 0;) {
		ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(sn, k));

		if ((size_t)ASN1_STRING_length(s) == strlen(name) &&
		    strncasecmp((const char *)ASN1_STRING_get0_data(s), name,
		    strlen(name)) == 0)
			found = 1;
	}
	exts = X509_REQ_get_extensions(r);
	for (i = 0; exts != NULL && i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);

		if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name ||
		    (g = X509V3_EXT_d2i(e)) == NULL)
			continue;
		for (k = 0; k < sk_GENERAL_NAME_num(g); k++) {
			GENERAL_NAME *gn = sk_GENERAL_NAME_value(g, k);

			if (gn->type == GEN_DNS &&
			    (size_t)ASN1_STRING_length(gn->d.dNSName) == strlen(name) &&
			    strncasecmp((const char *)ASN1_STRING_get0_data(
			    gn->d.dNSName), name, strlen(name)) == 0)
				found = 1;
		}
		GENERAL_NAMES_free(g);
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(r);
	return found;
}

int
sgn_issue(struct sgn *s, const struct sgn_who *who,
    const struct sgn_issue_req *req, unsigned char **der, size_t *derlen,
    char **serial)
{
	size_t i, n;

	(void)s;
	(void)who;
	*der = NULL;
	*derlen = 0;
	*serial = NULL;
	if (req->profile != SGN_PROFILE_EST || req->fqdn == NULL ||
	    (n = strlen(req->fqdn)) == 0 || n > AMTCA_FQDN_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (req->fqdn[i] >= 'A' && req->fqdn[i] <= 'Z')
			abort();
	if (!csr_has(req->csr, req->csrlen, req->fqdn))
		abort();
	(void)cur;
	(void)curlen;
	return amtca_fail(AMTCA_E_DENIED, "stub");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_req rq;
	struct srv_resp rs;
	size_t i;

	if (size > AMTCA_SERVE_EST_BODY_MAX)
		return 0;
	cur = data;
	curlen = size;
	memset(&rq, 0, sizeof(rq));
	memset(&rs, 0, sizeof(rs));
	rq.listener = SRV_HTTPS;
	rq.method = "POST";
	rq.path = "/.well-known/est/simpleenroll";
	rq.content_type = "application/pkcs10";
	rq.body = data;
	rq.bodylen = size;
	rq.who.kind = SGN_WHO_BASIC;
	rq.who.user = "fuzz";
	rq.who.password = "pw";
	rq.peer = "192.0.2.1";
	est_handle(NULL, &rq, &rs);
	if (rs.status != 400 && rs.status != 403 && rs.status != 413)
		abort();
	free(rs.body);
	for (i = 0; i < rs.nhdr; i++)
		free(rs.hdr_value[i]);
	return 0;
}
