/*
 * WS-Management layer shared by the client and the simulator: bounded
 * buffers, hardened libxml2 parsing, namespace-aware lookups, envelope
 * building, SOAP fault decoding, HTTP Digest arithmetic.  No I/O.
 */
#include "amt/wsman.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/limits.h"

/* ---------------------------------------------------------------- buffers */

void
wsman_buf_init(struct wsman_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max != 0 ? max : AMTCA_WSMAN_BODY_MAX;
}

/* Make room for `n` more bytes plus a NUL terminator. */
static int
buf_reserve(struct wsman_buf *b, size_t n)
{
	size_t need, ncap;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return amtca_fail(AMTCA_E_LIMIT,
		    "WS-MAN buffer would exceed %zu bytes", b->max);
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap != 0 ? b->cap : 256;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	if ((p = realloc(b->data, ncap)) == NULL)
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
wsman_buf_add(struct wsman_buf *b, const void *p, size_t n)
{
	int r;

	if ((r = buf_reserve(b, n)) != 0)
		return r;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
wsman_buf_addf(struct wsman_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return amtca_fail(AMTCA_E_INTERNAL, "formatting failed");
	if ((r = buf_reserve(b, (size_t)n)) != 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int
wsman_buf_add_escaped(struct wsman_buf *b, const char *s)
{
	const char *p, *run;
	const char *rep;
	int r;

	if (s == NULL)
		return 0;
	for (p = run = s; *p != '\0'; p++) {
		switch (*p) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		default: continue;
		}
		if ((r = wsman_buf_add(b, run, (size_t)(p - run))) != 0)
			return r;
		if ((r = wsman_buf_add(b, rep, strlen(rep))) != 0)
			return r;
		run = p + 1;
	}
	return wsman_buf_add(b, run, (size_t)(p - run));
}

void
wsman_buf_free(struct wsman_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* -------------------------------------------------------------- XML input */

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void
xml_init(void)
{
	xmlInitParser();
}

/* libxml2 would print to stderr; untrusted input must not reach our logs. */
static void
xml_quiet(void *ctx, xmlErrorPtr e)
{
	(void)ctx;
	(void)e;
}

static void
xml_quiet_generic(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

/*
 * SAX hook: called as soon as "<!DOCTYPE name ..." is read, before any
 * internal subset is parsed, so entity declarations are never processed.
 */
static void
xml_refuse_doctype(void *ctx, const xmlChar *name, const xmlChar *ext,
    const xmlChar *sys)
{
	xmlParserCtxtPtr ctxt = ctx;

	(void)name;
	(void)ext;
	(void)sys;
	ctxt->_private = (void *)1;
	xmlStopParser(ctxt);
}

int
wsman_xml_parse(const char *buf, size_t len, xmlDoc **out)
{
	xmlParserCtxtPtr ctxt = NULL;
	xmlDoc *doc = NULL;
	xmlStructuredErrorFunc old_serr;
	void *old_sctx;
	xmlGenericErrorFunc old_gerr;
	void *old_gctx;
	int ret = AMTCA_E_INTERNAL, refused;

	*out = NULL;
	if (len > AMTCA_WSMAN_BODY_MAX)
		return amtca_fail(AMTCA_E_LIMIT,
		    "WS-MAN document of %zu bytes exceeds the %d byte limit",
		    len, AMTCA_WSMAN_BODY_MAX);
	if (buf == NULL || len == 0)
		return amtca_fail(AMTCA_E_AMT_PARSE, "empty WS-MAN document");
	pthread_once(&xml_once, xml_init);

	/* Thread-local in libxml2; restored below. */
	old_serr = xmlStructuredError;
	old_sctx = xmlStructuredErrorContext;
	old_gerr = xmlGenericError;
	old_gctx = xmlGenericErrorContext;
	xmlSetStructuredErrorFunc(NULL, xml_quiet);
	xmlSetGenericErrorFunc(NULL, xml_quiet_generic);

	if ((ctxt = xmlNewParserCtxt()) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	ctxt->sax->internalSubset = xml_refuse_doctype;
	ctxt->sax->serror = xml_quiet;
	ctxt->_private = NULL;
	/* Never NOENT, DTDLOAD, DTDVALID, XINCLUDE or HUGE. */
	doc = xmlCtxtReadMemory(ctxt, buf, (int)len, NULL, NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
	    XML_PARSE_NOCDATA);
	refused = ctxt->_private != NULL;
	if (refused || (doc != NULL && (doc->intSubset != NULL ||
	    doc->extSubset != NULL))) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE,
		    "WS-MAN document with a DOCTYPE refused");
		goto out;
	}
	if (doc == NULL || !ctxt->wellFormed) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE,
		    "WS-MAN document is not well-formed XML");
		goto out;
	}
	if (xmlDocGetRootElement(doc) == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE,
		    "WS-MAN document has no root element");
		goto out;
	}
	*out = doc;
	doc = NULL;
	ret = 0;
out:
	if (doc != NULL)
		xmlFreeDoc(doc);
	if (ctxt != NULL)
		xmlFreeParserCtxt(ctxt);
	xmlSetStructuredErrorFunc(old_sctx, old_serr);
	xmlSetGenericErrorFunc(old_gctx, old_gerr);
	return ret;
}

static int
node_is(const xmlNode *n, const char *ns, const char *local)
{
	if (n == NULL || n->type != XML_ELEMENT_NODE)
		return 0;
	if (strcmp((const char *)n->name, local) != 0)
		return 0;
	if (ns == NULL)
		return 1;
	return n->ns != NULL && n->ns->href != NULL &&
	    strcmp((const char *)n->ns->href, ns) == 0;
}

xmlNode *
wsman_child(xmlNode *parent, const char *ns, const char *local)
{
	xmlNode *c;

	if (parent == NULL || local == NULL)
		return NULL;
	for (c = parent->children; c != NULL; c = c->next)
		if (node_is(c, ns, local))
			return c;
	return NULL;
}

xmlNode *
wsman_next(xmlNode *n)
{
	xmlNode *c;
	const char *ns;

	if (n == NULL || n->type != XML_ELEMENT_NODE)
		return NULL;
	ns = n->ns != NULL ? (const char *)n->ns->href : NULL;
	for (c = n->next; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE ||
		    strcmp((const char *)c->name, (const char *)n->name) != 0)
			continue;
		if (ns == NULL ? c->ns == NULL || c->ns->href == NULL :
		    node_is(c, ns, (const char *)n->name))
			return c;
	}
	return NULL;
}

xmlNode *
wsman_find(xmlNode *root, const char *ns, const char *local)
{
	xmlNode *n;

	if (root == NULL || local == NULL)
		return NULL;
	/* Iterative pre-order walk of root's descendants. */
	n = root->children;
	while (n != NULL) {
		if (node_is(n, ns, local))
			return n;
		if (n->type == XML_ELEMENT_NODE && n->children != NULL) {
			n = n->children;
			continue;
		}
		while (n != NULL && n->next == NULL) {
			n = n->parent;
			if (n == root)
				return NULL;
		}
		if (n != NULL)
			n = n->next;
	}
	return NULL;
}

static int
is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int
wsman_text(xmlNode *n, char **out)
{
	xmlChar *t = NULL;
	const char *s, *e;
	char *r;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (n == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "missing WS-MAN element");
		goto out;
	}
	if ((t = xmlNodeGetContent(n)) == NULL) {
		/* An element with no text at all is the empty string. */
		if ((r = strdup("")) == NULL) {
			ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
			goto out;
		}
		*out = r;
		ret = 0;
		goto out;
	}
	s = (const char *)t;
	while (is_ws((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_ws((unsigned char)e[-1]))
		e--;
	if ((r = strndup(s, (size_t)(e - s))) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	*out = r;
	ret = 0;
out:
	xmlFree(t);
	return ret;
}

/* ------------------------------------------------------------- envelopes */

static int
add_selector(struct wsman_buf *b, const struct wsman_selector *s)
{
	int r;

	if ((r = wsman_buf_add(b, "<w:Selector Name=\"", 18)) != 0 ||
	    (r = wsman_buf_add_escaped(b, s->name)) != 0 ||
	    (r = wsman_buf_add(b, "\">", 2)) != 0)
		return r;
	if (s->epr_resource != NULL) {
		if ((r = wsman_buf_addf(b, "<a:EndpointReference><a:Address>%s"
		    "</a:Address><a:ReferenceParameters><w:ResourceURI>",
		    WSMAN_ANON)) != 0 ||
		    (r = wsman_buf_add_escaped(b, s->epr_resource)) != 0 ||
		    (r = wsman_buf_addf(b, "</w:ResourceURI><w:SelectorSet>"
		    "<w:Selector Name=\"")) != 0 ||
		    (r = wsman_buf_add_escaped(b, s->epr_sel_name)) != 0 ||
		    (r = wsman_buf_add(b, "\">", 2)) != 0 ||
		    (r = wsman_buf_add_escaped(b, s->epr_sel_value)) != 0 ||
		    (r = wsman_buf_addf(b, "</w:Selector></w:SelectorSet>"
		    "</a:ReferenceParameters></a:EndpointReference>")) != 0)
			return r;
	} else if ((r = wsman_buf_add_escaped(b, s->value)) != 0)
		return r;
	return wsman_buf_addf(b, "</w:Selector>");
}

int
wsman_envelope(struct wsman_buf *out, const char *action,
    const char *resource_uri, unsigned message_id,
    const struct wsman_selector *sel, size_t nsel, const char *body)
{
	size_t i;
	int r;

	if (action == NULL || resource_uri == NULL || (nsel > 0 && sel == NULL))
		return amtca_fail(AMTCA_E_USAGE, "wsman_envelope: bad arguments");
	if ((r = wsman_buf_addf(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
	    "<Envelope xmlns:xsi=\"%s\" xmlns:xsd=\"http://www.w3.org/2001/"
	    "XMLSchema\" xmlns:a=\"%s\" xmlns:w=\"%s\" xmlns=\"%s\"><Header>"
	    "<a:Action>", WSMAN_NS_XSI, WSMAN_NS_WSA, WSMAN_NS_WSMAN,
	    WSMAN_NS_SOAP)) != 0 ||
	    (r = wsman_buf_add_escaped(out, action)) != 0 ||
	    (r = wsman_buf_addf(out, "</a:Action><a:To>/wsman</a:To>"
	    "<w:ResourceURI>")) != 0 ||
	    (r = wsman_buf_add_escaped(out, resource_uri)) != 0 ||
	    (r = wsman_buf_addf(out, "</w:ResourceURI><a:MessageID>%u"
	    "</a:MessageID><a:ReplyTo><a:Address>%s</a:Address></a:ReplyTo>"
	    "<w:OperationTimeout>PT60S</w:OperationTimeout>", message_id,
	    WSMAN_ANON)) != 0)
		return r;
	if (nsel > 0) {
		if ((r = wsman_buf_addf(out, "<w:SelectorSet>")) != 0)
			return r;
		for (i = 0; i < nsel; i++)
			if ((r = add_selector(out, &sel[i])) != 0)
				return r;
		if ((r = wsman_buf_addf(out, "</w:SelectorSet>")) != 0)
			return r;
	}
	return wsman_buf_addf(out, "</Header><Body>%s</Body></Envelope>",
	    body != NULL ? body : "");
}

/* -------------------------------------------------------------- messages */

/* Strings handed out by wsman_msg_selector(), freed with the message. */
struct wsman_msg_priv {
	char **strs;
	size_t n;
};

static int
opt_text(xmlNode *parent, const char *ns, const char *local, char **out)
{
	xmlNode *n;

	*out = NULL;
	if ((n = wsman_child(parent, ns, local)) == NULL)
		return 0;
	return wsman_text(n, out);
}

/* "e:AlreadyExists" -> "AlreadyExists" (QName text; prefix irrelevant). */
static int
local_part(char **s)
{
	char *c, *t;

	if (*s == NULL || (c = strrchr(*s, ':')) == NULL)
		return 0;
	if ((t = strdup(c + 1)) == NULL)
		return amtca_fail(AMTCA_E_NOMEM, "out of memory");
	free(*s);
	*s = t;
	return 0;
}

static int
parse_fault(struct wsman_msg *m, xmlNode *fault)
{
	xmlNode *code, *sub, *reason;
	int r;

	m->is_fault = 1;
	code = wsman_child(fault, WSMAN_NS_SOAP, "Code");
	sub = wsman_child(code, WSMAN_NS_SOAP, "Subcode");
	/* Innermost subcode is the most specific. */
	while (wsman_child(sub, WSMAN_NS_SOAP, "Subcode") != NULL)
		sub = wsman_child(sub, WSMAN_NS_SOAP, "Subcode");
	if (sub != NULL)
		r = opt_text(sub, WSMAN_NS_SOAP, "Value", &m->fault_subcode);
	else
		r = opt_text(code, WSMAN_NS_SOAP, "Value", &m->fault_subcode);
	if (r != 0 || (r = local_part(&m->fault_subcode)) != 0)
		return r;
	reason = wsman_child(fault, WSMAN_NS_SOAP, "Reason");
	return opt_text(reason, WSMAN_NS_SOAP, "Text", &m->fault_reason);
}

int
wsman_msg_parse(const char *buf, size_t len, struct wsman_msg **out)
{
	struct wsman_msg *m = NULL;
	xmlNode *root, *fault;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	if ((r = wsman_xml_parse(buf, len, &m->doc)) != 0) {
		ret = r;
		goto out;
	}
	root = xmlDocGetRootElement(m->doc);
	if (!node_is(root, WSMAN_NS_SOAP, "Envelope")) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE,
		    "WS-MAN document is not a SOAP 1.2 envelope");
		goto out;
	}
	m->header = wsman_child(root, WSMAN_NS_SOAP, "Header");
	if ((m->body = wsman_child(root, WSMAN_NS_SOAP, "Body")) == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "SOAP envelope has no Body");
		goto out;
	}
	if ((r = opt_text(m->header, WSMAN_NS_WSA, "Action", &m->action)) ||
	    (r = opt_text(m->header, WSMAN_NS_WSMAN, "ResourceURI",
	    &m->resource_uri)) ||
	    (r = opt_text(m->header, WSMAN_NS_WSA, "MessageID",
	    &m->message_id)) ||
	    (r = opt_text(m->header, WSMAN_NS_WSA, "RelatesTo",
	    &m->relates_to))) {
		ret = r;
		goto out;
	}
	if ((fault = wsman_child(m->body, WSMAN_NS_SOAP, "Fault")) != NULL &&
	    (r = parse_fault(m, fault)) != 0) {
		ret = r;
		goto out;
	}
	*out = m;
	m = NULL;
	ret = 0;
out:
	wsman_msg_free(m);
	return ret;
}

void
wsman_msg_free(struct wsman_msg *m)
{
	struct wsman_msg_priv *p;
	size_t i;

	if (m == NULL)
		return;
	if ((p = m->priv_) != NULL) {
		for (i = 0; i < p->n; i++)
			free(p->strs[i]);
		free(p->strs);
		free(p);
	}
	if (m->doc != NULL)
		xmlFreeDoc(m->doc);
	free(m->action);
	free(m->resource_uri);
	free(m->message_id);
	free(m->relates_to);
	free(m->fault_subcode);
	free(m->fault_reason);
	if (m->on_free != NULL)
		m->on_free();
	free(m);
}

static const char *
msg_keep(struct wsman_msg *m, char *s)
{
	struct wsman_msg_priv *p = m->priv_;
	char **v;

	if (p == NULL) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			goto fail;
		m->priv_ = p;
	}
	if ((v = realloc(p->strs, (p->n + 1) * sizeof(*v))) == NULL)
		goto fail;
	p->strs = v;
	p->strs[p->n++] = s;
	return s;
fail:
	free(s);
	return NULL;
}

xmlNode *
wsman_selector_node(xmlNode *selector_set, const char *name)
{
	xmlNode *s;
	xmlChar *attr;
	int match;

	for (s = wsman_child(selector_set, WSMAN_NS_WSMAN, "Selector");
	    s != NULL; s = wsman_next(s)) {
		if ((attr = xmlGetNoNsProp(s, (const xmlChar *)"Name")) == NULL)
			continue;
		match = strcmp((const char *)attr, name) == 0;
		xmlFree(attr);
		if (match)
			return s;
	}
	return NULL;
}

const char *
wsman_msg_selector(struct wsman_msg *m, const char *name)
{
	xmlNode *set, *sel, *epr, *inner;
	char *v = NULL;

	if (m == NULL || name == NULL)
		return NULL;
	set = wsman_child(m->header, WSMAN_NS_WSMAN, "SelectorSet");
	if ((sel = wsman_selector_node(set, name)) == NULL)
		return NULL;
	if ((epr = wsman_child(sel, WSMAN_NS_WSA, "EndpointReference")) != NULL) {
		/* EPR-valued: the inner selector's value. */
		if ((inner = wsman_find(epr, WSMAN_NS_WSMAN, "Selector")) == NULL)
			return NULL;
		sel = inner;
	}
	if (wsman_text(sel, &v) != 0)
		return NULL;
	return msg_keep(m, v);
}

int
wsman_return_value(struct wsman_msg *m, int *rv)
{
	xmlNode *c, *n;
	char *t = NULL, *end;
	size_t l;
	long v;
	int ret = AMTCA_E_INTERNAL;

	*rv = -1;
	if (m == NULL || m->body == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE, "no SOAP body");
		goto out;
	}
	for (c = m->body->children; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		l = strlen((const char *)c->name);
		if (l > 7 && strcmp((const char *)c->name + l - 7,
		    "_OUTPUT") == 0)
			break;
	}
	if (c == NULL || (n = wsman_child(c, NULL, "ReturnValue")) == NULL) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE,
		    "AMT response has no *_OUTPUT/ReturnValue");
		goto out;
	}
	if ((ret = wsman_text(n, &t)) != 0)
		goto out;
	errno = 0;
	v = strtol(t, &end, 10);
	if (t[0] == '\0' || *end != '\0' || errno != 0 || v < 0 ||
	    v > INT_MAX) {
		ret = amtca_fail(AMTCA_E_AMT_PARSE,
		    "AMT ReturnValue is not a number");
		goto out;
	}
	*rv = (int)v;
	ret = 0;
out:
	free(t);
	return ret;
}

/* ---------------------------------------------------------------- digest */

static int
md5_hex(const char *const *parts, size_t nparts, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	EVP_MD_CTX *ctx = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	size_t k;
	int ret = AMTCA_E_INTERNAL;

	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		ret = amtca_fail(AMTCA_E_NOMEM, "out of memory");
		goto out;
	}
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "MD5 unavailable");
		goto out;
	}
	for (k = 0; k < nparts; k++) {
		if ((k > 0 && EVP_DigestUpdate(ctx, ":", 1) != 1) ||
		    EVP_DigestUpdate(ctx, parts[k], strlen(parts[k])) != 1) {
			ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "MD5 failed");
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 16) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "MD5 failed");
		goto out;
	}
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[32] = '\0';
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(md, sizeof(md));
	return ret;
}

int
wsman_digest_response(const char *user, const char *realm,
    const char *password, const char *method, const char *uri,
    const char *nonce, const char *nc, const char *cnonce, const char *qop,
    char out[33])
{
	char ha1[33], ha2[33];
	const char *p1[3], *p2[2], *p3[6];
	int ret = AMTCA_E_INTERNAL;

	out[0] = '\0';
	if (user == NULL || realm == NULL || password == NULL ||
	    method == NULL || uri == NULL || nonce == NULL ||
	    (qop != NULL && (nc == NULL || cnonce == NULL))) {
		ret = amtca_fail(AMTCA_E_USAGE, "digest: missing parameter");
		goto out;
	}
	p1[0] = user; p1[1] = realm; p1[2] = password;
	p2[0] = method; p2[1] = uri;
	if ((ret = md5_hex(p1, 3, ha1)) != 0 ||
	    (ret = md5_hex(p2, 2, ha2)) != 0)
		goto out;
	p3[0] = ha1;
	p3[1] = nonce;
	if (qop != NULL) {
		p3[2] = nc; p3[3] = cnonce; p3[4] = qop; p3[5] = ha2;
		ret = md5_hex(p3, 6, out);
	} else {
		p3[2] = ha2;
		ret = md5_hex(p3, 3, out);
	}
out:
	OPENSSL_cleanse(ha1, sizeof(ha1));
	return ret;
}
