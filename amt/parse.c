/*
 * Pure request builders and response parsers for the typed AMT calls.
 * Everything here works on buffers or parsed envelopes: no I/O, so unit
 * tests run it on recorded AMT responses and the fuzzer on anything.
 */
#include "amt/internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/limits.h"
#include "common/util.h"

#define URI_PKMS   AMT_CLASS_URI("AMT_PublicKeyManagementService")
#define URI_KEY    AMT_CLASS_URI("AMT_PublicPrivateKeyPair")
#define URI_CERT   AMT_CLASS_URI("AMT_PublicKeyCertificate")
#define URI_TLSSD  AMT_CLASS_URI("AMT_TLSSettingData")
#define URI_TLSCC  AMT_CLASS_URI("AMT_TLSCredentialContext")
#define URI_TLSPEC AMT_CLASS_URI("AMT_TLSProtocolEndpointCollection")
#define URI_TIME   AMT_CLASS_URI("AMT_TimeSynchronizationService")
#define URI_SETUP  AMT_CLASS_URI("AMT_SetupAndConfigurationService")
#define URI_GEN    AMT_CLASS_URI("AMT_GeneralSettings")

/* ------------------------------------------------------------ PT_STATUS */

static const struct {
	int code;
	const char *name;
} pt_names[] = {
	{ 0, "SUCCESS" },
	{ 1, "INTERNAL_ERROR" },
	{ 16, "NOT_PERMITTED" },
	{ 23, "MAX_LIMIT_REACHED" },
	{ 36, "INVALID_PARAMETER" },
	{ 38, "FLASH_WRITE_LIMIT_EXCEEDED" },
	{ 2053, "INVALID_HANDLE" },
	{ 2058, "DUPLICATE" },
	{ 2060, "PKI_MISSING_KEYS" },
	{ 2061, "PKI_GENERATING_KEYS" },
	{ 2062, "INVALID_KEY" },
	{ 2063, "INVALID_CERT" },
	{ 2064, "CERT_KEY_NOT_MATCH" },
	{ 2066, "UNSUPPORTED" },
	{ 2068, "NOT_FOUND" },
	{ 2072, "NO_ASSOCIATION" },
	{ 2082, "OPERATION_IN_PROGRESS" },
};

const char *
amt_status_name(int pt_status)
{
	size_t i;

	for (i = 0; i < sizeof(pt_names) / sizeof(pt_names[0]); i++)
		if (pt_names[i].code == pt_status)
			return pt_names[i].name;
	return "UNKNOWN";
}

/* -------------------------------------------------------------- builders */

static int
buf_take(struct wsman_buf *b, char **out)
{
	if (b->data == NULL && (b->data = strdup("")) == NULL)
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	*out = b->data;
	b->data = NULL;
	return 0;
}

/* <h:M_INPUT xmlns:h="uri">inner</h:M_INPUT> */
static int
method_body(const char *uri, const char *method, const char *inner,
    char **out)
{
	struct wsman_buf b;
	int ret;

	*out = NULL;
	wsman_buf_init(&b, AMTCA_WSMAN_REQ_MAX);
	if ((ret = wsman_buf_addf(&b, "<h:%s_INPUT xmlns:h=\"%s\">%s</h:%s_INPUT>",
	    method, uri, inner != NULL ? inner : "", method)) != 0)
		goto out;
	ret = buf_take(&b, out);
out:
	wsman_buf_free(&b);
	return ret;
}

/* Reject what cannot be a handle or context string. */
static int
check_str(const char *what, const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 1024)
		return amtca_fail(AMTCA_E_USAGE, "%s is empty or too long", what);
	return 0;
}

int
amt_body_pull(const char *context, char **out)
{
	struct wsman_buf b;
	int ret;

	*out = NULL;
	wsman_buf_init(&b, AMTCA_WSMAN_REQ_MAX);
	if ((ret = check_str("EnumerationContext", context)) != 0 ||
	    (ret = wsman_buf_addf(&b, "<Pull xmlns=\"%s\"><EnumerationContext>",
	    WSMAN_NS_WSEN)) != 0 ||
	    (ret = wsman_buf_add_escaped(&b, context)) != 0 ||
	    (ret = wsman_buf_addf(&b, "</EnumerationContext><MaxElements>999"
	    "</MaxElements><MaxCharacters>99999</MaxCharacters></Pull>")) != 0)
		goto out;
	ret = buf_take(&b, out);
out:
	wsman_buf_free(&b);
	return ret;
}

int
amt_body_generate_key_pair(int alg, int bits, char **out)
{
	char inner[128];

	*out = NULL;
	if (alg < 0 || bits <= 0)
		return amtca_fail(AMTCA_E_USAGE, "bad key algorithm or length");
	snprintf(inner, sizeof(inner), "<h:KeyAlgorithm>%d</h:KeyAlgorithm>"
	    "<h:KeyLength>%d</h:KeyLength>", alg, bits);
	return method_body(URI_PKMS, "GenerateKeyPair", inner, out);
}

/* An EPR to `uri` with one InstanceID selector, request prefixes a:/w:. */
static int
add_epr(struct wsman_buf *b, const char *address, const char *uri,
    const char *sel_name, const char *sel_value)
{
	int r;

	if ((r = wsman_buf_addf(b, "<a:Address>%s</a:Address>"
	    "<a:ReferenceParameters><w:ResourceURI>%s</w:ResourceURI>"
	    "<w:SelectorSet><w:Selector Name=\"%s\">", address, uri,
	    sel_name)) != 0 ||
	    (r = wsman_buf_add_escaped(b, sel_value)) != 0)
		return r;
	return wsman_buf_addf(b, "</w:Selector></w:SelectorSet>"
	    "</a:ReferenceParameters>");
}

int
amt_body_pkcs10_request(const char *key_handle, int sigalg,
    const unsigned char *null_csr, size_t len, char **out)
{
	struct wsman_buf b;
	char *b64 = NULL;
	int ret;

	*out = NULL;
	wsman_buf_init(&b, AMTCA_WSMAN_REQ_MAX);
	if ((ret = check_str("key handle", key_handle)) != 0)
		goto out;
	if (null_csr == NULL || len == 0 || len > AMTCA_CSR_MAX || sigalg < 0) {
		ret = amtca_fail(AMTCA_E_USAGE, "bad null-signed CSR");
		goto out;
	}
	if ((ret = amtca_b64_encode(null_csr, len, &b64)) != 0 ||
	    (ret = wsman_buf_addf(&b, "<h:GeneratePKCS10RequestEx_INPUT "
	    "xmlns:h=\"%s\"><h:KeyPair>", URI_PKMS)) != 0 ||
	    (ret = add_epr(&b, WSMAN_ANON, URI_KEY, "InstanceID",
	    key_handle)) != 0 ||
	    (ret = wsman_buf_addf(&b, "</h:KeyPair><h:SigningAlgorithm>%d"
	    "</h:SigningAlgorithm><h:NullSignedCertificateRequest>%s"
	    "</h:NullSignedCertificateRequest>"
	    "</h:GeneratePKCS10RequestEx_INPUT>", sigalg, b64)) != 0)
		goto out;
	ret = buf_take(&b, out);
out:
	free(b64);
	wsman_buf_free(&b);
	return ret;
}

int
amt_body_add_cert(int trusted_root, const unsigned char *der, size_t len,
    char **out)
{
	char *b64 = NULL, *inner = NULL;
	int ret;

	*out = NULL;
	if (der == NULL || len == 0) {
		ret = amtca_fail(AMTCA_E_USAGE, "empty certificate");
		goto out;
	}
	if (len > AMTCA_AMT_CERT_DER_MAX) {
		ret = amtca_fail(AMTCA_E_LIMIT, "certificate of %zu bytes exceeds "
		    "AMT's %d byte limit", len, AMTCA_AMT_CERT_DER_MAX);
		goto out;
	}
	if ((ret = amtca_b64_encode(der, len, &b64)) != 0)
		goto out;
	if (asprintf(&inner, "<h:CertificateBlob>%s</h:CertificateBlob>",
	    b64) < 0) {
		inner = NULL;
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	ret = method_body(URI_PKMS, trusted_root ? "AddTrustedRootCertificate" :
	    "AddCertificate", inner, out);
out:
	free(b64);
	free(inner);
	return ret;
}

int
amt_body_add_key(const unsigned char *pkcs1, size_t len, char **out)
{
	char *b64 = NULL, *inner = NULL;
	size_t ilen = 0;
	int ret;

	*out = NULL;
	if (pkcs1 == NULL || len == 0 || len > AMTCA_AMT_CERT_DER_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "bad PKCS#1 key blob");
		goto out;
	}
	if ((ret = amtca_b64_encode(pkcs1, len, &b64)) != 0)
		goto out;
	if (asprintf(&inner, "<h:KeyBlob>%s</h:KeyBlob>", b64) < 0) {
		inner = NULL;
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	ilen = strlen(inner);
	ret = method_body(URI_PKMS, "AddKey", inner, out);
out:
	/* Private key material: wipe our copies. */
	if (b64 != NULL)
		OPENSSL_cleanse(b64, strlen(b64));
	if (inner != NULL)
		OPENSSL_cleanse(inner, ilen);
	free(b64);
	free(inner);
	return ret;
}

int
amt_body_tls_context(const char *cert_handle, char **out)
{
	struct wsman_buf b;
	int ret;

	*out = NULL;
	wsman_buf_init(&b, AMTCA_WSMAN_REQ_MAX);
	/* Go and MeshCentral send the collection name without the space. */
	if ((ret = check_str("certificate handle", cert_handle)) != 0 ||
	    (ret = wsman_buf_addf(&b, "<h:AMT_TLSCredentialContext xmlns:h=\"%s\">"
	    "<h:ElementInContext>", URI_TLSCC)) != 0 ||
	    (ret = add_epr(&b, "/wsman", URI_CERT, "InstanceID",
	    cert_handle)) != 0 ||
	    (ret = wsman_buf_addf(&b, "</h:ElementInContext>"
	    "<h:ElementProvidingContext>")) != 0 ||
	    (ret = add_epr(&b, "/wsman", URI_TLSPEC, "ElementName",
	    "TLSProtocolEndpointInstances Collection")) != 0 ||
	    (ret = wsman_buf_addf(&b, "</h:ElementProvidingContext>"
	    "</h:AMT_TLSCredentialContext>")) != 0)
		goto out;
	ret = buf_take(&b, out);
out:
	wsman_buf_free(&b);
	return ret;
}

static const char *
tf(int v)
{
	return v ? "true" : "false";
}

int
amt_body_tls_setting(const struct amt_tls_setting *s, char **out)
{
	struct wsman_buf b;
	int ret;

	*out = NULL;
	wsman_buf_init(&b, AMTCA_WSMAN_REQ_MAX);
	if (s == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "no TLS setting");
		goto out;
	}
	if ((ret = check_str("TLS setting InstanceID", s->instance_id)) != 0)
		goto out;
	/*
	 * Alphabetical like AMT itself.  NonSecureConnectionsSupported is
	 * read-only and TrustedCN only matters with mutual auth: never sent.
	 */
	if ((ret = wsman_buf_addf(&b, "<h:AMT_TLSSettingData xmlns:h=\"%s\">"
	    "<h:AcceptNonSecureConnections>%s</h:AcceptNonSecureConnections>"
	    "<h:ElementName>", URI_TLSSD, tf(s->accept_non_secure))) != 0 ||
	    (ret = wsman_buf_add_escaped(&b, s->element_name != NULL &&
	    s->element_name[0] != '\0' ? s->element_name :
	    s->instance_id)) != 0 ||
	    (ret = wsman_buf_addf(&b, "</h:ElementName><h:Enabled>%s"
	    "</h:Enabled><h:InstanceID>", tf(s->enabled))) != 0 ||
	    (ret = wsman_buf_add_escaped(&b, s->instance_id)) != 0 ||
	    (ret = wsman_buf_addf(&b, "</h:InstanceID><h:MutualAuthentication>%s"
	    "</h:MutualAuthentication></h:AMT_TLSSettingData>",
	    tf(s->mutual_auth))) != 0)
		goto out;
	ret = buf_take(&b, out);
out:
	wsman_buf_free(&b);
	return ret;
}

int
amt_body_time_get(char **out)
{
	return method_body(URI_TIME, "GetLowAccuracyTimeSynch", NULL, out);
}

int
amt_body_time_set(uint32_t ta0, uint32_t tm1, uint32_t tm2, char **out)
{
	char inner[160];

	snprintf(inner, sizeof(inner), "<h:Ta0>%u</h:Ta0><h:Tm1>%u</h:Tm1>"
	    "<h:Tm2>%u</h:Tm2>", (unsigned)ta0, (unsigned)tm1, (unsigned)tm2);
	return method_body(URI_TIME, "SetHighAccuracyTimeSynch", inner, out);
}

int
amt_body_commit(char **out)
{
	return method_body(URI_SETUP, "CommitChanges", NULL, out);
}

/* -------------------------------------------------------- classification */

int
amt_response_check(long http_status, const char *buf, size_t len,
    const char *what, struct amt_error *err, struct wsman_msg **out)
{
	struct wsman_msg *m = NULL;
	char detail[256];
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (what == NULL)
		what = "WS-MAN call";
	if (err != NULL) {
		memset(err, 0, sizeof(*err));
		err->http_status = (int)http_status;
		err->return_value = -1;
	}
	r = (buf != NULL && len > 0) ? wsman_msg_parse(buf, len, &m) :
	    amtca_fail(AMTCA_E_AMT_PARSE, "empty response body");
	if (r == 0 && m->is_fault) {
		if (err != NULL) {
			snprintf(err->fault_subcode, sizeof(err->fault_subcode),
			    "%s", m->fault_subcode ? m->fault_subcode : "");
			snprintf(err->fault_reason, sizeof(err->fault_reason),
			    "%s", m->fault_reason ? m->fault_reason : "");
		}
		ret = amtca_fail(AMTCA_E_AMT_FAULT, "%s failed: SOAP fault %s "
		    "(HTTP %ld): %.160s", what, m->fault_subcode ?
		    m->fault_subcode : "(no subcode)", http_status,
		    m->fault_reason ? m->fault_reason : "");
		goto out;
	}
	if (http_status != 200) {
		ret = amtca_fail(AMTCA_E_AMT_HTTP, "%s failed: AMT answered "
		    "HTTP %ld", what, http_status);
		goto out;
	}
	if (r != 0) {
		snprintf(detail, sizeof(detail), "%s", amtca_errmsg(r));
		ret = amtca_fail(r, "%s: bad response: %s", what, detail);
		goto out;
	}
	*out = m;
	m = NULL;
	ret = 0;
out:
	wsman_msg_free(m);
	return ret;
}

/* Parse a body and fail on faults, for the buffer-level parsers. */
static int
body_msg(const char *buf, size_t len, struct wsman_msg **m)
{
	return amt_response_check(200, buf, len, "AMT response", NULL, m);
}

/* ------------------------------------------------------------ field help */

static int
req_text(xmlNode *parent, const char *ns, const char *local, char **out)
{
	xmlNode *n;

	*out = NULL;
	if ((n = wsman_child(parent, ns, local)) == NULL)
		return amtca_fail(AMTCA_E_AMT_PARSE, "AMT response lacks %s",
		    local);
	return wsman_text(n, out);
}

/* Missing element: empty string (never NULL on success). */
static int
opt_text(xmlNode *parent, const char *ns, const char *local, char **out)
{
	xmlNode *n;

	*out = NULL;
	if ((n = wsman_child(parent, ns, local)) != NULL)
		return wsman_text(n, out);
	if ((*out = strdup("")) == NULL)
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	return 0;
}

/* Boolean element: *v = dflt when absent. */
static int
opt_bool(xmlNode *parent, const char *ns, const char *local, int dflt, int *v)
{
	xmlNode *n;
	char *t = NULL;
	int ret;

	*v = dflt;
	if ((n = wsman_child(parent, ns, local)) == NULL)
		return 0;
	if ((ret = wsman_text(n, &t)) != 0)
		return ret;
	if (strcasecmp(t, "true") == 0 || strcmp(t, "1") == 0)
		*v = 1;
	else if (strcasecmp(t, "false") == 0 || strcmp(t, "0") == 0)
		*v = 0;
	else
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "AMT %s is not a boolean",
		    local);
	free(t);
	return ret;
}

static int
parse_uint(const char *what, const char *t, unsigned long max,
    unsigned long *v)
{
	char *end;
	unsigned long x;

	errno = 0;
	if (t[0] < '0' || t[0] > '9')
		return amtca_fail(AMTCA_E_AMT_PARSE, "AMT %s is not a number",
		    what);
	x = strtoul(t, &end, 10);
	if (*end != '\0' || errno != 0 || x > max)
		return amtca_fail(AMTCA_E_AMT_PARSE, "AMT %s is not a number "
		    "in range", what);
	*v = x;
	return 0;
}

/* InstanceID selector inside an EPR element (Address, ReferenceParameters). */
static int
epr_instance(xmlNode *epr, const char *sel_name, char **out)
{
	xmlNode *refp, *set, *sel;

	*out = NULL;
	refp = wsman_child(epr, WSMAN_NS_WSA, "ReferenceParameters");
	set = wsman_child(refp, WSMAN_NS_WSMAN, "SelectorSet");
	if ((sel = wsman_selector_node(set, sel_name)) == NULL)
		return amtca_fail(AMTCA_E_AMT_PARSE, "AMT endpoint reference "
		    "lacks the %s selector", sel_name);
	return wsman_text(sel, out);
}

static int
b64_field(xmlNode *parent, const char *ns, const char *local, size_t max,
    unsigned char **der, size_t *len)
{
	char *t = NULL;
	int ret;

	*der = NULL;
	*len = 0;
	if ((ret = req_text(parent, ns, local, &t)) != 0)
		goto out;
	if (t[0] == '\0') {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "AMT %s is empty", local);
		goto out;
	}
	if ((ret = amtca_b64_decode(t, strlen(t), max, der, len)) != 0) {
		ret = amtca_fail(ret == AMTCA_E_LIMIT ? AMTCA_E_LIMIT :
		    AMTCA_E_AMT_PARSE, "AMT %s is not base64 of at most %zu "
		    "bytes", local, max);
		goto out;
	}
out:
	free(t);
	return ret;
}

/* ------------------------------------------------------------ enumerate */

int
amt_msg_enumerate(struct wsman_msg *m, char **context)
{
	xmlNode *resp;
	int ret;

	*context = NULL;
	resp = wsman_child(m->body, WSMAN_NS_WSEN, "EnumerateResponse");
	if (resp == NULL)
		return amtca_fail(AMTCA_E_AMT_PARSE,
		    "AMT response is not an EnumerateResponse");
	if ((ret = req_text(resp, WSMAN_NS_WSEN, "EnumerationContext",
	    context)) != 0)
		return ret;
	if ((*context)[0] == '\0') {
		free(*context);
		*context = NULL;
		return amtca_fail(AMTCA_E_AMT_PARSE,
		    "AMT EnumerationContext is empty");
	}
	return 0;
}

typedef int (*item_fn)(xmlNode *item, const char *ns, void *arg);

static int
pull_walk(struct wsman_msg *m, const char *cls, const char *ns, item_fn fn,
    void *arg, size_t count, char **context, int *eos)
{
	xmlNode *resp, *items, *it;
	int ret = AMTCA_E_INTERNAL;

	*context = NULL;
	*eos = 0;
	if ((resp = wsman_child(m->body, WSMAN_NS_WSEN, "PullResponse")) == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE,
		    "AMT response is not a PullResponse");
		goto out;
	}
	items = wsman_child(resp, WSMAN_NS_WSEN, "Items");
	for (it = wsman_child(items, ns, cls); it != NULL; it = wsman_next(it)) {
		if (count >= AMTCA_AMT_ITEMS_MAX) {
			ret = amtca_fail(AMTCA_E_LIMIT, "AMT returned more than "
			    "%d %s items", AMTCA_AMT_ITEMS_MAX, cls);
			goto out;
		}
		if ((ret = fn(it, ns, arg)) != 0)
			goto out;
		count++;
	}
	*eos = wsman_child(resp, WSMAN_NS_WSEN, "EndOfSequence") != NULL;
	if (wsman_child(resp, WSMAN_NS_WSEN, "EnumerationContext") != NULL &&
	    (ret = req_text(resp, WSMAN_NS_WSEN, "EnumerationContext",
	    context)) != 0)
		goto out;
	if (*context != NULL && (*context)[0] == '\0') {
		free(*context);
		*context = NULL;
	}
	ret = 0;
out:
	return ret;
}

/* Grow an array of `sz`-byte elements by one zeroed slot. */
static void *
grow(void **v, size_t *n, size_t sz)
{
	char *p;

	if ((p = realloc(*v, (*n + 1) * sz)) == NULL)
		return NULL;
	*v = p;
	memset(p + *n * sz, 0, sz);
	return p + (*n)++ * sz;
}

struct arr {
	void **v;
	size_t *n;
};

static void
cert_clear(struct amt_cert *c)
{
	free(c->instance_id);
	free(c->subject);
	free(c->issuer);
	free(c->der);
	memset(c, 0, sizeof(*c));
}

static int
cert_item(xmlNode *it, const char *ns, void *arg)
{
	struct arr *a = arg;
	struct amt_cert c = { 0 }, *slot;
	int ret;

	if ((ret = req_text(it, ns, "InstanceID", &c.instance_id)) != 0 ||
	    (ret = opt_text(it, ns, "Subject", &c.subject)) != 0 ||
	    (ret = opt_text(it, ns, "Issuer", &c.issuer)) != 0)
		goto out;
	/* AMT spells it TrustedRootCertficate; accept the fixed spelling too. */
	if (wsman_child(it, ns, "TrustedRootCertficate") != NULL)
		ret = opt_bool(it, ns, "TrustedRootCertficate", 0,
		    &c.trusted_root);
	else
		ret = opt_bool(it, ns, "TrustedRootCertificate", 0,
		    &c.trusted_root);
	if (ret != 0 ||
	    (ret = opt_bool(it, ns, "ReadOnlyCertificate", 0, &c.read_only)) ||
	    (ret = b64_field(it, ns, "X509Certificate", AMTCA_AMT_CERT_DER_MAX,
	    &c.der, &c.der_len)) != 0)
		goto out;
	if ((slot = grow(a->v, a->n, sizeof(c))) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	*slot = c;
	memset(&c, 0, sizeof(c));
	ret = 0;
out:
	cert_clear(&c);
	return ret;
}

void
amt_certs_free(struct amt_cert *c, size_t n)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < n; i++)
		cert_clear(&c[i]);
	free(c);
}

int
amt_der_pubkey(const unsigned char *der, size_t len, EVP_PKEY **out)
{
	const unsigned char *p;
	EVP_PKEY *k = NULL;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (der == NULL || len == 0 || len > LONG_MAX) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "empty DERKey");
		goto out;
	}
	/* PKCS#1 RSAPublicKey, what AMT sends for RSA keys. */
	p = der;
	k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
	if (k != NULL && p == der + len)
		goto ok;
	EVP_PKEY_free(k);
	/* SubjectPublicKeyInfo, seen on some firmware. */
	p = der;
	k = d2i_PUBKEY(NULL, &p, (long)len);
	if (k != NULL && p == der + len)
		goto ok;
	EVP_PKEY_free(k);
	k = NULL;
	ERR_clear_error();
	ret = amtca_fail(AMTCA_E_AMT_PARSE,
	    "DERKey is neither a PKCS#1 RSA public key nor an SPKI");
	goto out;
ok:
	ERR_clear_error();
	*out = k;
	k = NULL;
	ret = 0;
out:
	EVP_PKEY_free(k);
	return ret;
}

static int
key_item(xmlNode *it, const char *ns, void *arg)
{
	struct arr *a = arg;
	struct amt_key k = { 0 }, *slot;
	int ret;

	if ((ret = req_text(it, ns, "InstanceID", &k.instance_id)) != 0 ||
	    (ret = b64_field(it, ns, "DERKey", AMTCA_AMT_CERT_DER_MAX, &k.der,
	    &k.der_len)) != 0)
		goto out;
	/* An unknown key form must not hide the other keys: pub stays NULL. */
	if (amt_der_pubkey(k.der, k.der_len, &k.pub) != 0)
		k.pub = NULL;
	if ((slot = grow(a->v, a->n, sizeof(k))) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	*slot = k;
	memset(&k, 0, sizeof(k));
	ret = 0;
out:
	free(k.instance_id);
	free(k.der);
	EVP_PKEY_free(k.pub);
	return ret;
}

void
amt_keys_free(struct amt_key *k, size_t n)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(k[i].instance_id);
		free(k[i].der);
		EVP_PKEY_free(k[i].pub);
	}
	free(k);
}

static int
tls_setting_fill(xmlNode *it, const char *ns, struct amt_tls_setting *s)
{
	int ret;

	memset(s, 0, sizeof(*s));
	if ((ret = req_text(it, ns, "InstanceID", &s->instance_id)) != 0 ||
	    (ret = opt_text(it, ns, "ElementName", &s->element_name)) != 0 ||
	    (ret = opt_bool(it, ns, "Enabled", 0, &s->enabled)) != 0 ||
	    (ret = opt_bool(it, ns, "MutualAuthentication", 0,
	    &s->mutual_auth)) != 0 ||
	    (ret = opt_bool(it, ns, "AcceptNonSecureConnections", 0,
	    &s->accept_non_secure)) != 0 ||
	    (ret = opt_bool(it, ns, "NonSecureConnectionsSupported", -1,
	    &s->non_secure_supported)) != 0)
		amt_tls_setting_clear(s);
	return ret;
}

static int
tls_setting_item(xmlNode *it, const char *ns, void *arg)
{
	struct arr *a = arg;
	struct amt_tls_setting s, *slot;
	int ret;

	if ((ret = tls_setting_fill(it, ns, &s)) != 0)
		return ret;
	if ((slot = grow(a->v, a->n, sizeof(s))) == NULL) {
		amt_tls_setting_clear(&s);
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	}
	*slot = s;
	return 0;
}

void
amt_tls_setting_clear(struct amt_tls_setting *s)
{
	if (s == NULL)
		return;
	free(s->instance_id);
	free(s->element_name);
	memset(s, 0, sizeof(*s));
	s->non_secure_supported = -1;
}

void
amt_tls_settings_free(struct amt_tls_setting *s, size_t n)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < n; i++)
		amt_tls_setting_clear(&s[i]);
	free(s);
}

static int
tls_context_item(xmlNode *it, const char *ns, void *arg)
{
	struct arr *a = arg;
	char *h = NULL, **slot;
	int ret;

	if ((ret = epr_instance(wsman_child(it, ns, "ElementInContext"),
	    "InstanceID", &h)) != 0)
		return ret;
	if ((slot = grow(a->v, a->n, sizeof(h))) == NULL) {
		free(h);
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	}
	*slot = h;
	return 0;
}

void
amt_tls_context_handles_free(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int
amt_msg_pull_certs(struct wsman_msg *m, struct amt_cert **v, size_t *n,
    char **context, int *eos)
{
	struct arr a = { (void **)v, n };

	return pull_walk(m, "AMT_PublicKeyCertificate", URI_CERT, cert_item,
	    &a, *n, context, eos);
}

int
amt_msg_pull_keys(struct wsman_msg *m, struct amt_key **v, size_t *n,
    char **context, int *eos)
{
	struct arr a = { (void **)v, n };

	return pull_walk(m, "AMT_PublicPrivateKeyPair", URI_KEY, key_item,
	    &a, *n, context, eos);
}

int
amt_msg_pull_tls_settings(struct wsman_msg *m, struct amt_tls_setting **v,
    size_t *n, char **context, int *eos)
{
	struct arr a = { (void **)v, n };

	return pull_walk(m, "AMT_TLSSettingData", URI_TLSSD, tls_setting_item,
	    &a, *n, context, eos);
}

int
amt_msg_pull_tls_context(struct wsman_msg *m, char ***v, size_t *n,
    char **context, int *eos)
{
	struct arr a = { (void **)v, n };

	return pull_walk(m, "AMT_TLSCredentialContext", URI_TLSCC,
	    tls_context_item, &a, *n, context, eos);
}

/* ------------------------------------------------------ get and methods */

int
amt_msg_general(struct wsman_msg *m, struct amt_general *out)
{
	xmlNode *g;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((g = wsman_child(m->body, URI_GEN, "AMT_GeneralSettings")) == NULL)
		return amtca_fail(AMTCA_E_AMT_PARSE,
		    "AMT response has no AMT_GeneralSettings");
	if ((ret = opt_text(g, URI_GEN, "HostName", &out->hostname)) != 0 ||
	    (ret = opt_text(g, URI_GEN, "DomainName", &out->domainname)) != 0 ||
	    (ret = opt_text(g, URI_GEN, "DigestRealm", &out->realm)) != 0)
		amt_general_clear(out);
	return ret;
}

void
amt_general_clear(struct amt_general *g)
{
	if (g == NULL)
		return;
	free(g->version);
	free(g->hostname);
	free(g->domainname);
	free(g->realm);
	memset(g, 0, sizeof(*g));
}

int
amt_msg_tls_setting(struct wsman_msg *m, struct amt_tls_setting *out)
{
	xmlNode *s;

	if ((s = wsman_child(m->body, URI_TLSSD, "AMT_TLSSettingData")) == NULL) {
		memset(out, 0, sizeof(*out));
		out->non_secure_supported = -1;
		return amtca_fail(AMTCA_E_AMT_PARSE,
		    "AMT response has no AMT_TLSSettingData");
	}
	return tls_setting_fill(s, URI_TLSSD, out);
}

int
amt_msg_output(struct wsman_msg *m, const char *cls, const char *method,
    const char *field, char **value, int *return_value)
{
	char ns[256], name[128], *t = NULL;
	xmlNode *o, *f;
	unsigned long rv = 0;
	int ret;

	if (value != NULL)
		*value = NULL;
	*return_value = -1;
	snprintf(ns, sizeof(ns), "%s%s", WSMAN_AMT_URI, cls);
	snprintf(name, sizeof(name), "%s_OUTPUT", method);
	if ((o = wsman_child(m->body, ns, name)) == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "AMT response has no %s",
		    name);
		goto out;
	}
	if ((ret = req_text(o, ns, "ReturnValue", &t)) != 0 ||
	    (ret = parse_uint("ReturnValue", t, INT_MAX, &rv)) != 0)
		goto out;
	*return_value = (int)rv;
	if (field == NULL || value == NULL || rv != 0) {
		ret = 0;
		goto out;
	}
	if ((f = wsman_child(o, ns, field)) == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "AMT %s lacks %s", name,
		    field);
		goto out;
	}
	if (wsman_child(f, WSMAN_NS_WSA, "ReferenceParameters") != NULL)
		ret = epr_instance(f, "InstanceID", value);
	else
		ret = wsman_text(f, value);
out:
	free(t);
	return ret;
}

/* ------------------------------------------------- buffer-level wrappers */

int
amt_parse_enumerate(const char *buf, size_t len, char **context)
{
	struct wsman_msg *m = NULL;
	int ret;

	*context = NULL;
	if ((ret = body_msg(buf, len, &m)) == 0)
		ret = amt_msg_enumerate(m, context);
	wsman_msg_free(m);
	return ret;
}

#define PULL_WRAPPER(fname, mname, T)					\
int									\
fname(const char *buf, size_t len, T **v, size_t *n, char **context,	\
    int *eos)								\
{									\
	struct wsman_msg *m = NULL;					\
	int ret;							\
									\
	*context = NULL;						\
	*eos = 0;							\
	if ((ret = body_msg(buf, len, &m)) == 0)			\
		ret = mname(m, v, n, context, eos);			\
	wsman_msg_free(m);						\
	return ret;							\
}

PULL_WRAPPER(amt_parse_pull_certs, amt_msg_pull_certs, struct amt_cert)
PULL_WRAPPER(amt_parse_pull_keys, amt_msg_pull_keys, struct amt_key)
PULL_WRAPPER(amt_parse_pull_tls_settings, amt_msg_pull_tls_settings,
    struct amt_tls_setting)
PULL_WRAPPER(amt_parse_pull_tls_context, amt_msg_pull_tls_context, char *)

int
amt_parse_general(const char *buf, size_t len, struct amt_general *out)
{
	struct wsman_msg *m = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = body_msg(buf, len, &m)) == 0)
		ret = amt_msg_general(m, out);
	wsman_msg_free(m);
	return ret;
}

int
amt_parse_tls_setting(const char *buf, size_t len, struct amt_tls_setting *out)
{
	struct wsman_msg *m = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	out->non_secure_supported = -1;
	if ((ret = body_msg(buf, len, &m)) == 0)
		ret = amt_msg_tls_setting(m, out);
	wsman_msg_free(m);
	return ret;
}

int
amt_parse_output(const char *buf, size_t len, const char *cls,
    const char *method, const char *field, char **value, int *return_value)
{
	struct wsman_msg *m = NULL;
	int ret;

	if (value != NULL)
		*value = NULL;
	*return_value = -1;
	if ((ret = body_msg(buf, len, &m)) == 0)
		ret = amt_msg_output(m, cls, method, field, value,
		    return_value);
	wsman_msg_free(m);
	return ret;
}

int
amt_server_version(const char *server, char **out)
{
	const char *s, *e, *p;

	*out = NULL;
	if (server == NULL)
		return amtca_fail(AMTCA_E_AMT_PARSE, "no Server header");
	e = server + strlen(server);
	while (e > server && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
	    e[-1] == '\n'))
		e--;
	for (s = e; s > server && s[-1] != ' '; s--)
		;
	if (s == e)
		return amtca_fail(AMTCA_E_AMT_PARSE, "Server header has no version");
	for (p = s; p < e; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return amtca_fail(AMTCA_E_AMT_PARSE,
			    "Server header has no AMT version");
	if (*s < '0' || *s > '9' || e - s > 32)
		return amtca_fail(AMTCA_E_AMT_PARSE,
		    "Server header has no AMT version");
	if ((*out = strndup(s, (size_t)(e - s))) == NULL)
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	return 0;
}
