/*
 * enroll/serve/est.c: EST (RFC 7030) under /.well-known/est/ on the HTTPS
 * listener (docs/est.md).
 *
 *   GET  cacerts          anonymous: the CA chain, base64 PKCS#7 certs-only
 *   POST simpleenroll     base64 PKCS#10 in, base64 PKCS#7 certs-only out;
 *                         HTTP Basic or a TLS client certificate
 *   POST simplereenroll   the same, with the client's current certificate
 *                         (TLS) only; the names are kept
 *   GET  csrattrs         anonymous: base64 DER CsrAttrs
 *
 * This is a front end: it parses the body and the CSR's names, and asks the
 * signer (sgn_issue, profile EST) with what the client presented; the
 * signer authenticates the client, checks every name against its allow
 * list and the AMT inventory, and issues.  Nothing is recorded on any
 * failure, because nothing here writes.
 *
 * One name per certificate: a CSR whose subject CN and SAN dNSNames name
 * more than one host is checked (every name must be allowed, else 403) and
 * then refused (400), since sgn_issue() takes one name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/limits.h"
#include "common/util.h"
#include "enroll/home.h"
#include "enroll/serve/serve.h"
#include "signer/clients.h"

#define EST_PREFIX "/.well-known/est/"

static const char ct_pkcs7[] = "application/pkcs7-mime";
static const char ct_certs[] = "application/pkcs7-mime; smime-type=certs-only";
static const char ct_csrattrs[] = "application/csrattrs";

/*
 * CsrAttrs: rsaEncryption; id-ecPublicKey with P-256 or P-384; signed with
 * sha256WithRSAEncryption, ecdsa-with-SHA256 or ecdsa-with-SHA384 (what
 * CSR intake accepts, ca_csr_parse()).
 */
static const unsigned char csrattrs_der[] = {
	0x30, 0x48, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
	0x01, 0x30, 0x1c, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
	0x31, 0x11, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
	0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x06, 0x09, 0x2a, 0x86, 0x48,
	0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	0x3d, 0x04, 0x03, 0x02, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04,
	0x03, 0x03,
};

/* Reply with `der` as base64 (RFC 7030 4.1.3: Content-Transfer-Encoding). */
static void
reply_b64(struct srv_resp *rs, const char *ctype, const unsigned char *der,
    size_t len)
{
	char *b64 = NULL;

	if (amtca_b64_encode(der, len, &b64) != 0) {
		srv_error(rs, 500, "out of memory");
		return;
	}
	srv_body(rs, 200, ctype, (unsigned char *)b64, strlen(b64));
	if (srv_header(rs, "Content-Transfer-Encoding", "base64") != 0)
		srv_error(rs, 500, "out of memory");
}

/* PKCS#7 SignedData, certs only, DER. */
static int
certs_only(X509 *const *c, size_t n, unsigned char **out, size_t *len)
{
	PKCS7 *p7 = NULL;
	unsigned char *der = NULL;
	size_t i;
	int l, ret = AMTCA_E_NOMEM;

	*out = NULL;
	*len = 0;
	if ((p7 = PKCS7_new()) == NULL ||
	    !PKCS7_set_type(p7, NID_pkcs7_signed) ||
	    !PKCS7_content_new(p7, NID_pkcs7_data))
		goto out;
	for (i = 0; i < n; i++)
		if (c[i] != NULL && !PKCS7_add_certificate(p7, c[i]))
			goto out;
	if ((l = i2d_PKCS7(p7, &der)) <= 0)
		goto out;
	if ((*out = malloc((size_t)l)) == NULL)
		goto out;
	memcpy(*out, der, (size_t)l);
	*len = (size_t)l;
	ret = 0;
out:
	OPENSSL_free(der);
	PKCS7_free(p7);
	ERR_clear_error();
	return ret;
}

/* DER length octets of `n` into b (at most 5); returns how many. */
static size_t
der_len(size_t n, unsigned char *b)
{
	size_t k = 0, i;

	if (n < 0x80) {
		b[0] = (unsigned char)n;
		return 1;
	}
	for (i = n; i > 0; i >>= 8)
		k++;
	b[0] = (unsigned char)(0x80 | k);
	for (i = 0; i < k; i++)
		b[1 + i] = (unsigned char)(n >> (8 * (k - 1 - i)));
	return 1 + k;
}

/*
 * The same certs-only SignedData around one certificate's DER, written
 * directly: parsing the certificate to hand it to PKCS7_add_certificate()
 * would cost more than the rest of the reply (OpenSSL 3's decoder lookup).
 *   ContentInfo { signedData, [0] { SignedData { 1, {}, { data },
 *       [0] IMPLICIT { cert }, {} } } }
 */
static int
certs_only_der(const unsigned char *cert, size_t certlen, unsigned char **out,
    size_t *len)
{
	static const unsigned char oid_signed[] = { 0x06, 0x09, 0x2a, 0x86,
	    0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };
	static const unsigned char head[] = { 0x02, 0x01, 0x01, 0x31, 0x00,
	    0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
	    0x07, 0x01 };
	static const unsigned char tail[] = { 0x31, 0x00 };
	unsigned char l1[6], l2[6], l3[6], l4[6], *p;
	size_t n1, n2, n3, n4, certs, sd, exp, ci;

	*out = NULL;
	*len = 0;
	n4 = der_len(certlen, l4);			/* [0] IMPLICIT SET */
	certs = 1 + n4 + certlen;
	sd = sizeof(head) + certs + sizeof(tail);	/* SignedData body */
	n3 = der_len(sd, l3);
	exp = 1 + n3 + sd;				/* [0] EXPLICIT body */
	n2 = der_len(exp, l2);
	ci = sizeof(oid_signed) + 1 + n2 + exp;		/* ContentInfo body */
	n1 = der_len(ci, l1);
	if ((p = *out = malloc(1 + n1 + ci)) == NULL)
		return AMTCA_E_NOMEM;
	*p++ = 0x30;
	memcpy(p, l1, n1), p += n1;
	memcpy(p, oid_signed, sizeof(oid_signed)), p += sizeof(oid_signed);
	*p++ = 0xa0;
	memcpy(p, l2, n2), p += n2;
	*p++ = 0x30;
	memcpy(p, l3, n3), p += n3;
	memcpy(p, head, sizeof(head)), p += sizeof(head);
	*p++ = 0xa0;
	memcpy(p, l4, n4), p += n4;
	memcpy(p, cert, certlen), p += certlen;
	memcpy(p, tail, sizeof(tail)), p += sizeof(tail);
	*len = (size_t)(p - *out);
	return 0;
}

static void
cacerts(struct serve *s, struct srv_resp *rs)
{
	struct home *h = serve_home(s);
	X509 *c[SERVE_CAS_MAX];
	unsigned char *der = NULL;
	size_t len = 0, n;

	if (h == NULL || h->inter == NULL || h->root == NULL) {
		srv_error(rs, 500, "the CA chain is not loaded");
		return;
	}
	/*
	 * RFC 7030 4.1.3: what a client needs to build a chain from any
	 * certificate this EST CA issued to the trust anchor: after `ca
	 * rotate` that includes the intermediates still in their overlap
	 * (clients enrolled under them re-enroll under the current one).
	 */
	n = serve_ca_certs(h, c);
	if (certs_only(c, n, &der, &len) != 0) {
		srv_error(rs, 500, "cannot encode the chain");
		return;
	}
	reply_b64(rs, ct_pkcs7, der, len);
	free(der);
}

/* "application/pkcs10", any case, parameters allowed. */
static int
is_pkcs10(const char *ct)
{
	size_t n = strlen("application/pkcs10");

	if (ct == NULL)
		return 0;
	ct += strspn(ct, " \t");
	return strncasecmp(ct, "application/pkcs10", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* Add `name` (lowercased) to names[] unless there already. */
static int
add_name(char names[][AMTCA_FQDN_MAX + 1], size_t *n, const char *name,
    size_t len)
{
	size_t i;

	if (len == 0 || len > AMTCA_FQDN_MAX || memchr(name, '\0', len) != NULL)
		return AMTCA_E_FQDN;
	if (*n == AMTCA_EST_NAMES_MAX)
		return AMTCA_E_LIMIT;
	for (i = 0; i < len; i++)
		names[*n][i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ?
		    name[i] + 32 : name[i]);
	names[*n][len] = '\0';
	for (i = 0; i < *n; i++)
		if (strcmp(names[i], names[*n]) == 0)
			return 0;
	(*n)++;
	return 0;
}

/*
 * The host names a CSR asks for: its subject CN and its requested SAN
 * dNSNames, lowercased, each once.  Other SAN types are refused (an EST
 * certificate carries DNS names only).  AMTCA_E_CSR, AMTCA_E_FQDN,
 * AMTCA_E_LIMIT.
 */
static int
csr_names(const unsigned char *der, size_t len,
    char names[][AMTCA_FQDN_MAX + 1], size_t *n)
{
	const unsigned char *p = der;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *san = NULL;
	X509_NAME *subj;
	X509_REQ *req = NULL;
	int i, k, r, ret = AMTCA_E_CSR;

	*n = 0;
	if ((req = d2i_X509_REQ(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		ret = amtca_fail(AMTCA_E_CSR, "the body is not a DER PKCS#10 "
		    "request");
		goto out;
	}
	subj = X509_REQ_get_subject_name(req);
	for (k = -1; (k = X509_NAME_get_index_by_NID(subj, NID_commonName,
	    k)) >= 0;) {
		ASN1_STRING *cn = X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(subj, k));

		if ((r = add_name(names, n, (const char *)ASN1_STRING_get0_data(cn),
		    (size_t)ASN1_STRING_length(cn))) != 0) {
			ret = amtca_fail(r, "the CSR's subject CN is not a host "
			    "name, or there are too many");
			goto out;
		}
	}
	exts = X509_REQ_get_extensions(req);
	for (i = 0; exts != NULL && i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);

		if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) !=
		    NID_subject_alt_name)
			continue;
		if ((san = X509V3_EXT_d2i(e)) == NULL) {
			ret = amtca_fail(AMTCA_E_CSR, "the CSR's subjectAltName "
			    "does not parse");
			goto out;
		}
		for (k = 0; k < sk_GENERAL_NAME_num(san); k++) {
			GENERAL_NAME *g = sk_GENERAL_NAME_value(san, k);

			if (g->type != GEN_DNS) {
				ret = amtca_fail(AMTCA_E_CSR, "an EST certificate "
				    "carries DNS names only");
				goto out;
			}
			if ((r = add_name(names, n, (const char *)
			    ASN1_STRING_get0_data(g->d.dNSName),
			    (size_t)ASN1_STRING_length(g->d.dNSName))) != 0) {
				ret = amtca_fail(r, "a subjectAltName of the CSR "
				    "is not a host name, or there are too many");
				goto out;
			}
		}
		GENERAL_NAMES_free(san);
		san = NULL;
	}
	if (*n == 0) {
		ret = amtca_fail(AMTCA_E_CSR, "the CSR names no host (subject "
		    "CN or subjectAltName dNSName)");
		goto out;
	}
	ret = 0;
out:
	GENERAL_NAMES_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	ERR_clear_error();
	return ret;
}

/* The error reply for a failed sgn_* call, with the challenge on 401. */
static void
refuse(struct serve *s, const struct srv_req *rq, struct srv_resp *rs,
    int code, int basic_ok)
{
	int status = srv_status_of(code);

	srv_error(rs, status, "%s", amtca_errmsg(code));
	if (status == 401 && basic_ok)
		(void)srv_header(rs, "WWW-Authenticate",
		    "Basic realm=\"amtca EST\", charset=\"UTF-8\"");
	serve_log(s, "est_refused", "path=%s status=%d peer=%s", rq->path,
	    status, rq->peer != NULL ? rq->peer : "-");
}

/*
 * Several names: every one must be allowed (403 otherwise, like a single
 * name), then the request is refused for asking more than one.
 */
static int
allowed(const struct sgn_client *cl, const char *fqdn)
{
	size_t i;

	for (i = 0; i < cl->nallow; i++)
		if (sgn_allow_match(cl->allow[i], fqdn))
			return 1;
	return 0;
}

static void
several_names(struct serve *s, const struct srv_req *rq, struct srv_resp *rs,
    char names[][AMTCA_FQDN_MAX + 1], size_t n)
{
	struct sgn_client cl;
	size_t i;
	int r;

	memset(&cl, 0, sizeof(cl));
	if ((r = sgn_auth(serve_sgn(s), &rq->who, &cl)) != 0) {
		refuse(s, rq, rs, r, 1);
		return;
	}
	for (i = 0; i < n; i++)
		if (!(cl.roles & SGN_ROLE_EST) ||
		    !allowed(&cl, names[i])) {
			refuse(s, rq, rs, amtca_fail(AMTCA_E_DENIED, "%s may not "
			    "obtain a certificate for %s", cl.name, names[i]), 1);
			sgn_client_clear(&cl);
			return;
		}
	sgn_client_clear(&cl);
	srv_error(rs, 400, "one host name per EST request (the CSR names %zu)",
	    n);
}

static void
enroll(struct serve *s, const struct srv_req *rq, struct srv_resp *rs,
    int reenroll)
{
	char names[AMTCA_EST_NAMES_MAX][AMTCA_FQDN_MAX + 1];
	struct sgn_issue_req req;
	unsigned char *csr = NULL, *der = NULL, *p7 = NULL;
	size_t csrlen = 0, derlen = 0, p7len = 0, n = 0;
	char *serial = NULL;
	int r;

	if (strcmp(rq->method, "POST") != 0) {
		srv_error(rs, 405, "method %s not allowed here", rq->method);
		(void)srv_header(rs, "Allow", "POST");
		return;
	}
	/* Credentials first: an anonymous client learns nothing more. */
	if (rq->anonymous || rq->who.kind == SGN_WHO_LOCAL) {
		refuse(s, rq, rs, amtca_fail(AMTCA_E_AUTH, "authentication "
		    "required: HTTP Basic or a client certificate of this CA"),
		    !reenroll);
		return;
	}
	if (reenroll && rq->who.kind != SGN_WHO_CERT) {
		refuse(s, rq, rs, amtca_fail(AMTCA_E_AUTH, "simplereenroll "
		    "needs the client's current certificate (TLS client "
		    "authentication)"), 0);
		return;
	}
	if (!is_pkcs10(rq->content_type)) {
		srv_error(rs, 415, "Content-Type must be application/pkcs10");
		return;
	}
	if ((r = amtca_b64_decode((const char *)rq->body, rq->bodylen,
	    AMTCA_CSR_MAX, &csr, &csrlen)) != 0) {
		if (r == AMTCA_E_LIMIT)
			srv_error(rs, 413, "CSR larger than %d bytes",
			    AMTCA_CSR_MAX);
		else
			srv_error(rs, 400, "the body is not base64");
		goto out;
	}
	if (csrlen == 0) {
		srv_error(rs, 400, "empty request");
		goto out;
	}
	if ((r = csr_names(csr, csrlen, names, &n)) != 0) {
		srv_error(rs, r == AMTCA_E_LIMIT ? 413 : 400, "%s",
		    amtca_errmsg(r));
		goto out;
	}
	if (n > 1) {
		several_names(s, rq, rs, names, n);
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.profile = SGN_PROFILE_EST;
	req.fqdn = names[0];
	req.csr = csr;
	req.csrlen = csrlen;
	req.reenroll = reenroll;
	if ((r = sgn_issue(serve_sgn(s), &rq->who, &req, &der, &derlen,
	    &serial)) != 0) {
		refuse(s, rq, rs, r, !reenroll);
		goto out;
	}
	if (certs_only_der(der, derlen, &p7, &p7len) != 0) {
		srv_error(rs, 500, "certificate %s is issued but cannot be "
		    "encoded", serial);
		goto out;
	}
	reply_b64(rs, ct_certs, p7, p7len);
	serve_log(s, reenroll ? "est_reenroll" : "est_enroll",
	    "serial=%s fqdn=%s peer=%s", serial, names[0],
	    rq->peer != NULL ? rq->peer : "-");
out:
	free(csr);
	free(der);
	free(p7);
	free(serial);
}

void
est_handle(struct serve *s, const struct srv_req *rq, struct srv_resp *rs)
{
	const char *op = rq->path + strlen(EST_PREFIX);
	int get = strcmp(rq->method, "GET") == 0 ||
	    strcmp(rq->method, "HEAD") == 0;

	if (strncmp(rq->path, EST_PREFIX, strlen(EST_PREFIX)) != 0) {
		srv_error(rs, 404, "no such resource");
		return;
	}
	if (strcmp(op, "cacerts") == 0 || strcmp(op, "csrattrs") == 0) {
		if (!get) {
			srv_error(rs, 405, "method %s not allowed here",
			    rq->method);
			(void)srv_header(rs, "Allow", "GET, HEAD");
			return;
		}
		if (op[1] == 'a')
			cacerts(s, rs);
		else
			reply_b64(rs, ct_csrattrs, csrattrs_der,
			    sizeof(csrattrs_der));
		return;
	}
	if (strcmp(op, "simpleenroll") == 0)
		enroll(s, rq, rs, 0);
	else if (strcmp(op, "simplereenroll") == 0)
		enroll(s, rq, rs, 1);
	else
		srv_error(rs, 404, "no such EST operation (no labels here): %.64s",
		    op);
}
