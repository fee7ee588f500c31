/*
 * sim_handle(): the WS-MAN service of one simulated device.  Request in
 * (already authenticated), response XML out, no I/O, so the same code
 * serves the MHD glue and the fuzz target.
 *
 * Responses follow the reference's §2.2: compact XML, the a..i prefix map
 * for normal responses and the separate fault map, RelatesTo = request
 * MessageID, MessageID uuid:00000000-8086-8086-8086-%012X incrementing,
 * Action = request Action + "Response", properties in alphabetical order.
 */
#include "amt/sim/sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>
#include <openssl/crypto.h>

#include "amt/amt.h"
#include "common/limits.h"
#include "common/util.h"

#define NS_TRUST  "http://schemas.xmlsoap.org/ws/2005/02/trust"
#define NS_WSSE   "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define NS_CIMB   "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"
#define NS_EVT    "http://schemas.xmlsoap.org/ws/2004/08/eventing"
#define NS_COMMON "http://schemas.dmtf.org/wbem/wscim/1/common"

#define FAULT_WSMAN "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
#define FAULT_WSA   WSMAN_NS_WSA "/fault"
#define FAULT_WXF   WSMAN_NS_WXF "/fault"
#define FAULT_WSEN  WSMAN_NS_WSEN "/fault"

#define CERT_ID  "Intel(r) AMT Certificate: Handle: "
#define KEY_ID   "Intel(r) AMT Key: Handle: "
#define EPC_NAME "TLSProtocolEndpoint Instances Collection"
#define EPC_NAME_ALT "TLSProtocolEndpointInstances Collection"

enum sim_class {
	C_GENERAL,
	C_CERT,
	C_KEY,
	C_TLSSET,
	C_TLSCTX,
	C_PKMS,
	C_SETUP,
	C_TIME,
	C_CONCRETE,
	C_TLSEPC,
	C__COUNT
};

static const struct {
	const char *name;		/* class name */
	int cim;			/* CIM schema (else AMT) */
	const char *service_name;	/* Name of a service singleton */
	const char *element_name;
} classes[C__COUNT] = {
	[C_GENERAL]  = { "AMT_GeneralSettings", 0, NULL, NULL },
	[C_CERT]     = { "AMT_PublicKeyCertificate", 0, NULL, NULL },
	[C_KEY]      = { "AMT_PublicPrivateKeyPair", 0, NULL, NULL },
	[C_TLSSET]   = { "AMT_TLSSettingData", 0, NULL, NULL },
	[C_TLSCTX]   = { "AMT_TLSCredentialContext", 0, NULL, NULL },
	[C_PKMS]     = { "AMT_PublicKeyManagementService", 0,
	    "Intel(r) AMT Public Key Management Service",
	    "Intel(r) AMT Certificate Store Service" },
	[C_SETUP]    = { "AMT_SetupAndConfigurationService", 0,
	    "Intel(r) AMT Setup and Configuration Service",
	    "Intel(r) AMT Setup and Configuration Service" },
	[C_TIME]     = { "AMT_TimeSynchronizationService", 0,
	    "Intel(r) AMT Time Synchronization Service",
	    "Intel(r) AMT Time Synchronization Service" },
	[C_CONCRETE] = { "CIM_ConcreteDependency", 1, NULL, NULL },
	[C_TLSEPC]   = { "AMT_TLSProtocolEndpointCollection", 0, NULL, NULL },
};

static const char *const tls_ids[SIM_TLS_N] = {
	[SIM_TLS_REMOTE] = AMT_TLS_REMOTE,
	[SIM_TLS_LMS] = AMT_TLS_LOCAL,
};

/* An output writer that remembers its first error (no goto per append). */
struct xw {
	struct wsman_buf *b;
	int err;
};

static void
xs(struct xw *w, const char *s)
{
	if (w->err == 0)
		w->err = wsman_buf_add(w->b, s, strlen(s));
}

static void AMTCA_PRINTF(2, 3)
xf(struct xw *w, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	if (w->err != 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		w->err = AMTCA_E_INTERNAL;
		return;
	}
	w->err = wsman_buf_add(w->b, tmp, (size_t)n);
}

static void
xe(struct xw *w, const char *s)
{
	if (w->err == 0)
		w->err = wsman_buf_add_escaped(w->b, s != NULL ? s : "");
}

/* <p:Name>value</p:Name> with the value escaped. */
static void
xprop(struct xw *w, const char *p, const char *name, const char *value)
{
	xf(w, "<%s:%s>", p, name);
	xe(w, value);
	xf(w, "</%s:%s>", p, name);
}

static void
xbool(struct xw *w, const char *p, const char *name, int v)
{
	xprop(w, p, name, v ? "true" : "false");
}

struct req {
	struct wsman_msg *m;
	int cls;
	const char *op;			/* Get, Put, ..., or the method name */
	int method;
	char step[SIM_STEP_MAX];
	const char *g_ns;		/* envelope namespaces in use */
	const char *h_ns;
	int i_ns;
};

static void
class_uri(struct xw *w, int cls)
{
	xs(w, classes[cls].cim ? WSMAN_CIM_URI : WSMAN_AMT_URI);
	xs(w, classes[cls].name);
}

static void
env_begin(struct xw *w, struct sim_device *d, struct req *q, int cls_g,
    const char *g_fixed, int cls_h, int with_i)
{
	xs(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a:Envelope "
	    "xmlns:a=\"" WSMAN_NS_SOAP "\" xmlns:b=\"" WSMAN_NS_WSA "\" "
	    "xmlns:c=\"" WSMAN_NS_WSMAN "\" xmlns:d=\"" NS_TRUST "\" "
	    "xmlns:e=\"" NS_WSSE "\" xmlns:f=\"" NS_CIMB "\" ");
	if (g_fixed != NULL) {
		xs(w, "xmlns:g=\"");
		xs(w, g_fixed);
		xs(w, "\" ");
	} else if (cls_g >= 0) {
		xs(w, "xmlns:g=\"");
		class_uri(w, cls_g);
		xs(w, "\" ");
	}
	if (cls_h >= 0) {
		xs(w, "xmlns:h=\"");
		class_uri(w, cls_h);
		xs(w, "\" ");
	}
	if (with_i)
		xs(w, "xmlns:i=\"" NS_COMMON "\" ");
	xs(w, "xmlns:xsi=\"" WSMAN_NS_XSI "\"><a:Header><b:To>" WSMAN_ANON
	    "</b:To><b:RelatesTo>");
	xe(w, q->m->message_id);
	xs(w, "</b:RelatesTo><b:Action a:mustUnderstand=\"true\">");
	xe(w, q->m->action);
	xs(w, "Response</b:Action>");
	xf(w, "<b:MessageID>uuid:00000000-8086-8086-8086-%012llX</b:MessageID>",
	    d->msg_seq++ & 0xFFFFFFFFFFFFULL);
	xs(w, "<c:ResourceURI>");
	xe(w, q->m->resource_uri);
	xs(w, "</c:ResourceURI></a:Header><a:Body>");
}

static void
env_end(struct xw *w)
{
	xs(w, "</a:Body></a:Envelope>");
}

/*
 * A SOAP fault with the fault prefix map of §2.2 and no ResourceURI.
 * `subcode` carries its prefix in that map (e:=wsman, b:=addressing,
 * c:=enumeration, d:=transfer).
 */
static int
fault(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status, int http, const char *code, const char *subcode,
    const char *action, const char *reason)
{
	struct xw w = { resp, 0 };

	resp->len = 0;
	xs(&w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a:Envelope "
	    "xmlns:g=\"" NS_CIMB "\" xmlns:f=\"" NS_EVT "\" "
	    "xmlns:e=\"" WSMAN_NS_WSMAN "\" xmlns:d=\"" WSMAN_NS_WXF "\" "
	    "xmlns:c=\"" WSMAN_NS_WSEN "\" xmlns:b=\"" WSMAN_NS_WSA "\" "
	    "xmlns:a=\"" WSMAN_NS_SOAP "\" xmlns:h=\"" NS_TRUST "\" "
	    "xmlns:i=\"" NS_WSSE "\" xmlns:xsi=\"" WSMAN_NS_XSI "\">"
	    "<a:Header><b:To>" WSMAN_ANON "</b:To><b:RelatesTo>");
	xe(&w, q != NULL && q->m != NULL ? q->m->message_id : NULL);
	xs(&w, "</b:RelatesTo><b:Action a:mustUnderstand=\"true\">");
	xs(&w, action);
	xf(&w, "</b:Action><b:MessageID>uuid:00000000-8086-8086-8086-%012llX"
	    "</b:MessageID></a:Header>", d->msg_seq++ & 0xFFFFFFFFFFFFULL);
	xf(&w, "<a:Body><a:Fault><a:Code><a:Value>%s</a:Value><a:Subcode>"
	    "<a:Value>%s</a:Value></a:Subcode></a:Code><a:Reason>"
	    "<a:Text xml:lang=\"en-US\">", code, subcode);
	xe(&w, reason);
	xs(&w, "</a:Text></a:Reason><a:Detail></a:Detail></a:Fault></a:Body>"
	    "</a:Envelope>");
	*status = http;
	return w.err;
}

#define F_DEST(d, q, r, s) fault(d, q, r, s, 400, "a:Sender", \
	"b:DestinationUnreachable", FAULT_WSA, "No route can be determined " \
	"to reach the destination role defined by the WSAddressing To.")
#define F_ACTION(d, q, r, s) fault(d, q, r, s, 400, "a:Sender", \
	"b:ActionNotSupported", FAULT_WSA, \
	"The action is not supported by the service.")
#define F_SELECTORS(d, q, r, s) fault(d, q, r, s, 400, "a:Sender", \
	"e:InvalidSelectors", FAULT_WSMAN, \
	"The Selectors for the resource were not valid.")
#define F_REPR(d, q, r, s, why) fault(d, q, r, s, 400, "a:Sender", \
	"d:InvalidRepresentation", FAULT_WXF, why)
#define F_INTERNAL(d, q, r, s, why) fault(d, q, r, s, 500, "a:Receiver", \
	"e:InternalError", FAULT_WSMAN, why)

/* ---- XML input helpers: by local name, namespace-agnostic below Body ---- */

static xmlNode *
find_local(xmlNode *root, const char *local)
{
	xmlNode *n, *f;

	if (root == NULL)
		return NULL;
	for (n = root->children; n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (xmlStrcmp(n->name, (const xmlChar *)local) == 0)
			return n;
		if ((f = find_local(n, local)) != NULL)
			return f;
	}
	return NULL;
}

/* Text of the first descendant `local` of `scope`: 0, NOT_FOUND, NOMEM. */
static int
param_text(xmlNode *scope, const char *local, char **out)
{
	xmlNode *n;

	*out = NULL;
	if ((n = find_local(scope, local)) == NULL)
		return AMTCA_E_NOT_FOUND;
	return wsman_text(n, out);
}

static int
param_long(xmlNode *scope, const char *local, long long lo, long long hi,
    long long *v)
{
	char *s = NULL, *end = NULL;
	long long x;
	int ret;

	if ((ret = param_text(scope, local, &s)) != 0)
		return ret;
	errno = 0;
	x = strtoll(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || x < lo || x > hi)
		ret = AMTCA_E_USAGE;
	else
		*v = x;
	free(s);
	return ret;
}

/* "true"/"false": 0, NOT_FOUND, or USAGE for anything else. */
static int
param_bool(xmlNode *scope, const char *local, int *v)
{
	char *s = NULL;
	int ret;

	if ((ret = param_text(scope, local, &s)) != 0)
		return ret;
	if (strcmp(s, "true") == 0)
		*v = 1;
	else if (strcmp(s, "false") == 0)
		*v = 0;
	else
		ret = AMTCA_E_USAGE;
	free(s);
	return ret;
}

/* Value of <Selector Name="name"> below `scope` (an EPR), malloc'd. */
static int
epr_selector(xmlNode *scope, const char *name, char **out)
{
	xmlNode *n;
	xmlChar *attr;

	*out = NULL;
	if (scope == NULL)
		return AMTCA_E_NOT_FOUND;
	for (n = scope->children; n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (xmlStrcmp(n->name, (const xmlChar *)"Selector") == 0) {
			attr = xmlGetProp(n, (const xmlChar *)"Name");
			if (attr != NULL &&
			    xmlStrcmp(attr, (const xmlChar *)name) == 0) {
				xmlFree(attr);
				return wsman_text(n, out);
			}
			xmlFree(attr);
		}
		if (epr_selector(n, name, out) == 0)
			return 0;
	}
	return AMTCA_E_NOT_FOUND;
}

/* ---- item emitters (prefix p: "g" in Get/Put, "h" in Pull) ---- */

/* Address + ReferenceParameters of an EPR with one selector. */
static void
x_epr_inner(struct xw *w, int cls, const char *sel_name,
    const char *sel_prefix, int sel_handle, const char *sel_value)
{
	xs(w, "<b:Address>" WSMAN_ANON "</b:Address>"
	    "<b:ReferenceParameters><c:ResourceURI>");
	class_uri(w, cls);
	xf(w, "</c:ResourceURI><c:SelectorSet><c:Selector Name=\"%s\">",
	    sel_name);
	if (sel_prefix != NULL)
		xf(w, "%s%d", sel_prefix, sel_handle);
	else
		xe(w, sel_value);
	xs(w, "</c:Selector></c:SelectorSet></b:ReferenceParameters>");
}

static void
x_epr(struct xw *w, const char *p, const char *elem, int cls,
    const char *sel_name, const char *sel_prefix, int sel_handle,
    const char *sel_value)
{
	xf(w, "<%s:%s>", p, elem);
	x_epr_inner(w, cls, sel_name, sel_prefix, sel_handle, sel_value);
	xf(w, "</%s:%s>", p, elem);
}

static void
x_cert(struct xw *w, const char *p, const struct sim_cert *c)
{
	char *b64 = NULL;

	if (w->err == 0)
		w->err = amtca_b64_encode(c->der, c->der_len, &b64);
	xf(w, "<%s:AMT_PublicKeyCertificate>", p);
	xprop(w, p, "ElementName", "Intel(r) AMT Certificate");
	xf(w, "<%s:InstanceID>" CERT_ID "%d</%s:InstanceID>", p, c->handle, p);
	xprop(w, p, "Issuer", c->issuer);
	xbool(w, p, "ReadOnlyCertificate", 0);
	xprop(w, p, "Subject", c->subject);
	xbool(w, p, "TrustedRootCertficate", c->trusted_root);
	xprop(w, p, "X509Certificate", b64);
	xf(w, "</%s:AMT_PublicKeyCertificate>", p);
	free(b64);
}

static void
x_key(struct xw *w, const char *p, const struct sim_key *k)
{
	char *b64 = NULL;

	if (w->err == 0)
		w->err = amtca_b64_encode(k->pub, k->pub_len, &b64);
	xf(w, "<%s:AMT_PublicPrivateKeyPair>", p);
	xprop(w, p, "DERKey", b64);
	xprop(w, p, "ElementName", "Intel(r) AMT Key");
	xf(w, "<%s:InstanceID>" KEY_ID "%d</%s:InstanceID>", p, k->handle, p);
	xf(w, "</%s:AMT_PublicPrivateKeyPair>", p);
	free(b64);
}

static int
version_at_least(const struct sim_device *d, int maj, int min)
{
	int a = 0, b = 0;

	if (sscanf(d->cfg->amt_version, "%d.%d", &a, &b) < 1)
		return 0;
	return a > maj || (a == maj && b >= min);
}

static void
x_tlsset(struct xw *w, const char *p, const struct sim_device *d, int i)
{
	const struct sim_tls *t = &d->pending[i];

	xf(w, "<%s:AMT_TLSSettingData>", p);
	xbool(w, p, "AcceptNonSecureConnections", t->accept_non_secure);
	xprop(w, p, "ElementName", tls_ids[i]);
	xbool(w, p, "Enabled", t->enabled);
	xprop(w, p, "InstanceID", tls_ids[i]);
	xbool(w, p, "MutualAuthentication", t->mutual);
	if (i == SIM_TLS_REMOTE && version_at_least(d, 16, 1))
		xbool(w, p, "NonSecureConnectionsSupported",
		    !d->cfg->non_secure_unsupported);
	xf(w, "</%s:AMT_TLSSettingData>", p);
}

static void
x_tlsctx_body(struct xw *w, const char *p, int cert)
{
	x_epr(w, p, "ElementInContext", C_CERT, "InstanceID", CERT_ID, cert,
	    NULL);
	x_epr(w, p, "ElementProvidingContext", C_TLSEPC, "ElementName", NULL,
	    0, EPC_NAME);
}

static void
x_general(struct xw *w, const char *p, const struct sim_device *d)
{
	xf(w, "<%s:AMT_GeneralSettings>", p);
	xprop(w, p, "AMTNetworkEnabled", "1");
	xprop(w, p, "DDNSPeriodicUpdateInterval", "1440");
	xprop(w, p, "DDNSTTL", "900");
	xprop(w, p, "DDNSUpdateByDHCPServerEnabled", "true");
	xprop(w, p, "DDNSUpdateEnabled", "false");
	xprop(w, p, "DHCPSyncRequiresHostname", "1");
	xprop(w, p, "DHCPv6ConfigurationTimeout", "0");
	xprop(w, p, "DigestRealm", d->realm);
	xprop(w, p, "DomainName", d->domain);
	xprop(w, p, "ElementName", "Intel(r) AMT: General Settings");
	xprop(w, p, "HostName", d->hostname);
	xprop(w, p, "HostOSFQDN", d->fqdn);
	xprop(w, p, "IdleWakeTimeout", "1");
	xprop(w, p, "InstanceID", "Intel(r) AMT: General Settings");
	xprop(w, p, "NetworkInterfaceEnabled", "true");
	xprop(w, p, "PingResponseEnabled", "true");
	xprop(w, p, "PowerSource", "0");
	xprop(w, p, "PreferredAddressFamily", "0");
	xprop(w, p, "PresenceNotificationInterval", "0");
	xprop(w, p, "PrivacyLevel", "0");
	xprop(w, p, "RmcpPingResponseEnabled", "true");
	xprop(w, p, "SharedFQDN", "true");
	xprop(w, p, "ThunderboltDockEnabled", "0");
	xprop(w, p, "WsmanOnlyMode", "false");
	xf(w, "</%s:AMT_GeneralSettings>", p);
}

static void
x_service(struct xw *w, const char *p, int cls)
{
	xf(w, "<%s:%s>", p, classes[cls].name);
	xprop(w, p, "CreationClassName", classes[cls].name);
	xprop(w, p, "ElementName", classes[cls].element_name);
	xprop(w, p, "Name", classes[cls].service_name);
	xprop(w, p, "SystemCreationClassName", "CIM_ComputerSystem");
	xprop(w, p, "SystemName", "Intel(r) AMT");
	xf(w, "</%s:%s>", p, classes[cls].name);
}

/* Certificates that pair with a key, in store order (ConcreteDependency). */
static size_t
paired(struct sim_device *d, size_t idx, struct sim_cert **c,
    struct sim_key **k)
{
	size_t i, n = 0;
	struct sim_key *kk;

	for (i = 0; i < d->ncerts; i++) {
		if ((kk = sim_cert_key(d, &d->certs[i])) == NULL)
			continue;
		if (n == idx && c != NULL) {
			*c = &d->certs[i];
			*k = kk;
		}
		n++;
	}
	return n;
}

static size_t
item_count(struct sim_device *d, int cls)
{
	switch (cls) {
	case C_CERT:
		return d->ncerts;
	case C_KEY:
		return d->nkeys;
	case C_TLSSET:
		return SIM_TLS_N;
	case C_TLSCTX:
		return d->ctx_cert >= 0 ? 1 : 0;
	case C_CONCRETE:
		return paired(d, 0, NULL, NULL);
	default:
		return 1;
	}
}

static void
x_item(struct xw *w, const char *p, struct sim_device *d, int cls, size_t i)
{
	struct sim_cert *c = NULL;
	struct sim_key *k = NULL;

	switch (cls) {
	case C_GENERAL:
		x_general(w, p, d);
		break;
	case C_CERT:
		x_cert(w, p, &d->certs[i]);
		break;
	case C_KEY:
		x_key(w, p, &d->keys[i]);
		break;
	case C_TLSSET:
		x_tlsset(w, p, d, (int)i);
		break;
	case C_TLSCTX:
		xf(w, "<%s:AMT_TLSCredentialContext>", p);
		x_tlsctx_body(w, p, d->ctx_cert);
		xf(w, "</%s:AMT_TLSCredentialContext>", p);
		break;
	case C_CONCRETE:
		paired(d, i, &c, &k);
		if (c == NULL)
			break;
		xf(w, "<%s:CIM_ConcreteDependency>", p);
		x_epr(w, p, "Antecedent", C_CERT, "InstanceID", CERT_ID,
		    c->handle, NULL);
		x_epr(w, p, "Dependent", C_KEY, "InstanceID", KEY_ID,
		    k->handle, NULL);
		xf(w, "</%s:CIM_ConcreteDependency>", p);
		break;
	case C_TLSEPC:
		xf(w, "<%s:AMT_TLSProtocolEndpointCollection>", p);
		xprop(w, p, "ElementName", EPC_NAME);
		xf(w, "</%s:AMT_TLSProtocolEndpointCollection>", p);
		break;
	default:
		x_service(w, p, cls);
		break;
	}
}

/* ---- operations ---- */

static int
op_enumerate(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status)
{
	struct xw w = { resp, 0 };
	struct sim_enum_ctx *e = &d->enums[d->enum_seq % SIM_ENUM_CTX_MAX];

	/* The oldest context is recycled when all are open, as AMT's are finite. */
	d->enum_seq++;
	e->id = d->enum_seq;
	e->cls = q->cls;
	e->pos = 0;
	env_begin(&w, d, q, -1, WSMAN_NS_WSEN, -1, 0);
	xf(&w, "<g:EnumerateResponse><g:EnumerationContext>%08X-0000-0000-"
	    "0000-000000000000</g:EnumerationContext></g:EnumerateResponse>",
	    e->id);
	env_end(&w);
	*status = 200;
	return w.err;
}

static int
op_pull(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status)
{
	struct xw w = { resp, 0 };
	struct sim_enum_ctx *e = NULL;
	char *ctx = NULL;
	unsigned id = 0;
	long long max = 1;
	size_t n, i, end;
	int r, k, ret = AMTCA_E_INTERNAL;

	if ((r = param_text(q->m->body, "EnumerationContext", &ctx)) == 0 &&
	    sscanf(ctx, "%8X-0000-0000-0000-000000000000", &id) == 1 &&
	    strlen(ctx) == 36) {
		for (k = 0; k < SIM_ENUM_CTX_MAX; k++)
			if (d->enums[k].id == id && d->enums[k].cls == q->cls)
				e = &d->enums[k];
	}
	if (r == AMTCA_E_NOMEM) {
		ret = r;
		goto out;
	}
	if (e == NULL) {
		ret = fault(d, q, resp, status, 400, "a:Sender",
		    "c:InvalidEnumerationContext", FAULT_WSEN,
		    "The supplied enumeration context is invalid.");
		goto out;
	}
	/* WS-Enumeration: MaxElements defaults to 1. */
	r = param_long(q->m->body, "MaxElements", 1, 1000000, &max);
	if (r == AMTCA_E_NOMEM) {
		ret = r;
		goto out;
	}
	n = item_count(d, q->cls);
	end = e->pos + (size_t)max;
	if (end > n)
		end = n;
	env_begin(&w, d, q, -1, WSMAN_NS_WSEN, q->cls,
	    q->cls == C_CERT || q->cls == C_KEY);
	xs(&w, "<g:PullResponse>");
	if (end < n)
		xf(&w, "<g:EnumerationContext>%08X-0000-0000-0000-000000000000"
		    "</g:EnumerationContext>", e->id);
	xs(&w, "<g:Items>");
	for (i = e->pos; i < end; i++)
		x_item(&w, "h", d, q->cls, i);
	xs(&w, "</g:Items>");
	if (end >= n) {
		xs(&w, "<g:EndOfSequence></g:EndOfSequence>");
		memset(e, 0, sizeof(*e));
	} else
		e->pos = end;
	xs(&w, "</g:PullResponse>");
	env_end(&w);
	*status = 200;
	ret = w.err;
out:
	free(ctx);
	return ret;
}

static int
op_release(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status)
{
	struct xw w = { resp, 0 };

	env_begin(&w, d, q, -1, NULL, -1, 0);
	env_end(&w);
	*status = 200;
	return w.err;
}

/* Handle from the header InstanceID selector, -1 when absent or unknown. */
static int
selector_handle(struct req *q, const char *prefix)
{
	return sim_parse_handle(wsman_msg_selector(q->m, "InstanceID"), prefix);
}

static int
op_get(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status)
{
	struct xw w = { resp, 0 };
	const char *sel;
	size_t idx = 0;
	int h, i;

	switch (q->cls) {
	case C_CERT: {
		struct sim_cert *c;

		h = selector_handle(q, CERT_ID);
		if ((c = sim_cert_by_handle(d, h)) == NULL)
			return F_SELECTORS(d, q, resp, status);
		idx = (size_t)(c - d->certs);
		break;
	}
	case C_KEY: {
		struct sim_key *k;

		h = selector_handle(q, KEY_ID);
		if ((k = sim_key_by_handle(d, h)) == NULL)
			return F_SELECTORS(d, q, resp, status);
		idx = (size_t)(k - d->keys);
		break;
	}
	case C_TLSSET:
		sel = wsman_msg_selector(q->m, "InstanceID");
		for (i = 0; i < SIM_TLS_N; i++)
			if (sel != NULL && strcmp(sel, tls_ids[i]) == 0)
				break;
		if (i == SIM_TLS_N)
			return F_SELECTORS(d, q, resp, status);
		idx = (size_t)i;
		break;
	case C_TLSCTX:
		if (d->ctx_cert < 0)
			return F_DEST(d, q, resp, status);
		break;
	case C_CONCRETE:
		return F_ACTION(d, q, resp, status);
	default:
		if (classes[q->cls].service_name != NULL &&
		    (sel = wsman_msg_selector(q->m, "Name")) != NULL &&
		    strcmp(sel, classes[q->cls].service_name) != 0)
			return F_SELECTORS(d, q, resp, status);
		break;
	}
	env_begin(&w, d, q, q->cls, NULL, -1,
	    q->cls == C_CERT || q->cls == C_KEY);
	x_item(&w, "g", d, q->cls, idx);
	env_end(&w);
	*status = 200;
	return w.err;
}

static int
op_delete(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status)
{
	struct xw w = { resp, 0 };
	int h;

	switch (q->cls) {
	case C_CERT: {
		struct sim_cert *c;

		h = selector_handle(q, CERT_ID);
		if ((c = sim_cert_by_handle(d, h)) == NULL)
			return F_SELECTORS(d, q, resp, status);
		/* "A certificate cannot be deleted while it is being used." */
		if (h == d->ctx_cert || h == d->committed_ctx_cert)
			return fault(d, q, resp, status, 400, "a:Sender",
			    "e:InvalidParameter", FAULT_WSMAN,
			    "The certificate is in use by TLS and cannot be "
			    "deleted.");
		sim_cert_remove(d, c);
		break;
	}
	case C_KEY: {
		struct sim_key *k;
		struct sim_cert *c;
		size_t i;

		h = selector_handle(q, KEY_ID);
		if ((k = sim_key_by_handle(d, h)) == NULL)
			return F_SELECTORS(d, q, resp, status);
		/*
		 * Refused only while a certificate paired with it is bound to
		 * TLS; an unbound certificate merely loses its pairing.
		 */
		for (i = 0; i < d->ncerts; i++) {
			c = &d->certs[i];
			if ((c->handle == d->ctx_cert ||
			    c->handle == d->committed_ctx_cert) &&
			    sim_cert_key(d, c) == k)
				return fault(d, q, resp, status, 400,
				    "a:Sender", "e:InvalidParameter",
				    FAULT_WSMAN, "The key is in use by TLS "
				    "and cannot be deleted.");
		}
		sim_key_remove(d, k);
		break;
	}
	case C_TLSCTX: {
		const char *cert = wsman_msg_selector(q->m, "ElementInContext");
		const char *epc = wsman_msg_selector(q->m,
		    "ElementProvidingContext");

		if (d->ctx_cert < 0)
			return F_DEST(d, q, resp, status);
		if (cert == NULL || epc == NULL ||
		    sim_parse_handle(cert, CERT_ID) != d->ctx_cert ||
		    (strcmp(epc, EPC_NAME) != 0 &&
		    strcmp(epc, EPC_NAME_ALT) != 0))
			return F_SELECTORS(d, q, resp, status);
		d->ctx_cert = -1;
		break;
	}
	default:
		return F_ACTION(d, q, resp, status);
	}
	sim_device_changed(d);
	env_begin(&w, d, q, -1, NULL, -1, 0);
	env_end(&w);
	*status = 200;
	return w.err;
}

/*
 * The certificate a TLSCredentialContext body names, checking the
 * ElementProvidingContext; -1 when the representation is unusable.
 */
static int
ctx_body_cert(struct req *q, int *cert)
{
	xmlNode *obj, *eic, *epc;
	char *id = NULL, *name = NULL;
	int r, ret = AMTCA_E_USAGE;

	*cert = -1;
	if ((obj = find_local(q->m->body, "AMT_TLSCredentialContext")) == NULL ||
	    (eic = find_local(obj, "ElementInContext")) == NULL ||
	    (epc = find_local(obj, "ElementProvidingContext")) == NULL)
		goto out;
	if ((r = epr_selector(eic, "InstanceID", &id)) != 0 ||
	    (r = epr_selector(epc, "ElementName", &name)) != 0) {
		if (r == AMTCA_E_NOMEM)
			ret = r;
		goto out;
	}
	if (strcmp(name, EPC_NAME) != 0 && strcmp(name, EPC_NAME_ALT) != 0)
		goto out;
	if ((*cert = sim_parse_handle(id, CERT_ID)) < 0)
		goto out;
	ret = 0;
out:
	free(id);
	free(name);
	return ret;
}

static int
op_tlsctx_write(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status, int create)
{
	struct xw w = { resp, 0 };
	struct sim_cert *c;
	int h = -1, r;

	if ((r = ctx_body_cert(q, &h)) == AMTCA_E_NOMEM)
		return r;
	if (r != 0)
		return F_REPR(d, q, resp, status, "The AMT_TLSCredentialContext "
		    "representation is not valid (ElementInContext and "
		    "ElementProvidingContext are required).");
	if (create && d->ctx_cert >= 0)
		return fault(d, q, resp, status, 400, "a:Sender",
		    "e:AlreadyExists", FAULT_WSMAN, "The sender attempted to "
		    "create a resource which already exists.");
	if (!create && d->ctx_cert < 0)
		return F_DEST(d, q, resp, status);
	if ((c = sim_cert_by_handle(d, h)) == NULL)
		return F_REPR(d, q, resp, status, "ElementInContext does not "
		    "name an existing certificate.");
	/* §10: a context to a cert without a key fails like AMT 22's bind. */
	if (sim_cert_key(d, c) == NULL)
		return F_INTERNAL(d, q, resp, status, "AMT_STATUS_INTERNAL_ERROR "
		    "(1): the certificate has no matching private key.");
	/* AMT 22's field report: such a leaf is stored, the bind fails. */
	if (sim_cert_refused(d->cfg, c->x509) != 0)
		return F_INTERNAL(d, q, resp, status, "AMT_STATUS_INTERNAL_ERROR "
		    "(1): the certificate's key or signature algorithm is not "
		    "permitted on this platform.");
	d->ctx_cert = h;
	sim_device_changed(d);
	if (create) {
		env_begin(&w, d, q, -1, WSMAN_NS_WXF, -1, 0);
		xs(&w, "<g:ResourceCreated><b:Address>" WSMAN_ANON "</b:Address>"
		    "<b:ReferenceParameters><c:ResourceURI>");
		class_uri(&w, C_TLSCTX);
		xs(&w, "</c:ResourceURI><c:SelectorSet><c:Selector "
		    "Name=\"ElementInContext\"><b:EndpointReference>");
		x_epr_inner(&w, C_CERT, "InstanceID", CERT_ID, h, NULL);
		xs(&w, "</b:EndpointReference></c:Selector><c:Selector "
		    "Name=\"ElementProvidingContext\"><b:EndpointReference>");
		x_epr_inner(&w, C_TLSEPC, "ElementName", NULL, 0, EPC_NAME);
		xs(&w, "</b:EndpointReference></c:Selector></c:SelectorSet>"
		    "</b:ReferenceParameters></g:ResourceCreated>");
	} else {
		env_begin(&w, d, q, q->cls, NULL, -1, 0);
		x_item(&w, "g", d, C_TLSCTX, 0);
	}
	env_end(&w);
	*status = 200;
	return w.err;
}

static int
op_tlsset_put(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status)
{
	struct xw w = { resp, 0 };
	struct sim_tls t;
	xmlNode *obj;
	const char *sel;
	char *bid = NULL;
	int i, r, v, ret = AMTCA_E_INTERNAL;

	obj = find_local(q->m->body, "AMT_TLSSettingData");
	if (obj == NULL) {
		ret = F_REPR(d, q, resp, status, "AMT_TLSSettingData expected.");
		goto out;
	}
	if ((r = param_text(obj, "InstanceID", &bid)) == AMTCA_E_NOMEM) {
		ret = r;
		goto out;
	}
	if ((sel = wsman_msg_selector(q->m, "InstanceID")) == NULL)
		sel = bid;
	for (i = 0; i < SIM_TLS_N; i++)
		if (sel != NULL && strcmp(sel, tls_ids[i]) == 0)
			break;
	if (i == SIM_TLS_N || (bid != NULL && strcmp(bid, sel) != 0)) {
		ret = F_SELECTORS(d, q, resp, status);
		goto out;
	}
	t = d->pending[i];
	if (param_bool(obj, "Enabled", &t.enabled) != 0) {
		ret = F_REPR(d, q, resp, status, "Enabled must be true or false.");
		goto out;
	}
	r = param_bool(obj, "MutualAuthentication", &t.mutual);
	if (r == AMTCA_E_USAGE || (r == AMTCA_E_NOT_FOUND && t.enabled)) {
		ret = F_REPR(d, q, resp, status, "MutualAuthentication must be "
		    "supplied when Enabled is true.");
		goto out;
	}
	r = param_bool(obj, "AcceptNonSecureConnections", &v);
	if (r == AMTCA_E_USAGE) {
		ret = F_REPR(d, q, resp, status,
		    "AcceptNonSecureConnections must be true or false.");
		goto out;
	}
	if (r == 0) {
		if (i == SIM_TLS_LMS && v != t.accept_non_secure) {
			ret = F_REPR(d, q, resp, status, "AcceptNonSecure"
			    "Connections is read-only on the LMS instance.");
			goto out;
		}
		t.accept_non_secure = v;
	}
	if (i == SIM_TLS_REMOTE && d->cfg->non_secure_unsupported &&
	    (t.accept_non_secure ||
	    (!t.enabled && d->committed[SIM_TLS_REMOTE].enabled))) {
		ret = F_REPR(d, q, resp, status, "AMT_STATUS_NOT_PERMITTED (16): "
		    "non-secure connections are not supported on this "
		    "platform.");
		goto out;
	}
	d->pending[i] = t;
	sim_device_changed(d);
	env_begin(&w, d, q, q->cls, NULL, -1, 0);
	x_tlsset(&w, "g", d, i);
	env_end(&w);
	*status = 200;
	ret = w.err;
out:
	free(bid);
	return ret;
}

/* ---- methods ---- */

static void
out_begin(struct xw *w, struct sim_device *d, struct req *q)
{
	env_begin(w, d, q, q->cls, NULL, -1, 0);
	xf(w, "<g:%s_OUTPUT>", q->op);
}

static void
out_end(struct xw *w, struct req *q, int rv)
{
	xf(w, "<g:ReturnValue>%d</g:ReturnValue></g:%s_OUTPUT>", rv, q->op);
	env_end(w);
}

/* A base64 parameter: 0, NOT_FOUND, LIMIT (too big) or USAGE (bad). */
static int
param_b64(xmlNode *scope, const char *local, size_t max, unsigned char **out,
    size_t *len)
{
	char *s = NULL;
	int r;

	*out = NULL;
	if ((r = param_text(scope, local, &s)) != 0)
		return r;
	r = amtca_b64_decode(s, strlen(s), max, out, len);
	if (r == 0 && *len == 0) {
		free(*out);
		*out = NULL;
		r = AMTCA_E_USAGE;
	}
	free(s);
	return r == AMTCA_E_NOMEM || r == 0 || r == AMTCA_E_LIMIT ? r :
	    AMTCA_E_USAGE;
}

static int
m_generate_key_pair(struct sim_device *d, struct req *q, struct xw *w)
{
	long long alg = -1, bits = -1;
	int rv, h = -1, r;

	if ((r = param_long(q->m->body, "KeyAlgorithm", 0, 255, &alg)) != 0 ||
	    (r = param_long(q->m->body, "KeyLength", 0, 65535, &bits)) != 0) {
		if (r == AMTCA_E_NOMEM)
			return r;
		rv = AMT_PT_INVALID_PARAMETER;
	} else if ((rv = sim_key_generate(d, (int)alg, (int)bits, &h)) < 0)
		return rv;
	out_begin(w, d, q);
	if (rv == 0) {
		x_epr(w, "g", "KeyPair", C_KEY, "InstanceID", KEY_ID, h, NULL);
		sim_device_changed(d);
	}
	out_end(w, q, rv);
	return 0;
}

static int
m_add_key(struct sim_device *d, struct req *q, struct xw *w)
{
	unsigned char *der = NULL;
	size_t len = 0;
	int rv, h = -1, r;

	r = param_b64(q->m->body, "KeyBlob", SIM_KEY_DER_MAX, &der, &len);
	if (r == AMTCA_E_NOMEM)
		return r;
	if (r == AMTCA_E_NOT_FOUND)
		rv = AMT_PT_INVALID_PARAMETER;
	else if (r != 0)
		rv = AMT_PT_INVALID_KEY;
	else if ((rv = sim_key_add(d, der, len, &h)) < 0)
		goto out;
	out_begin(w, d, q);
	if (rv == 0) {
		x_epr(w, "g", "CreatedKey", C_KEY, "InstanceID", KEY_ID, h, NULL);
		sim_device_changed(d);
	}
	out_end(w, q, rv);
	rv = 0;
out:
	if (der != NULL) {
		OPENSSL_cleanse(der, len);
		free(der);
	}
	return rv;
}

static int
m_add_cert(struct sim_device *d, struct req *q, struct xw *w, int trusted)
{
	unsigned char *der = NULL;
	size_t len = 0;
	int rv, h = -1, r;

	r = param_b64(q->m->body, "CertificateBlob", AMTCA_AMT_CERT_DER_MAX,
	    &der, &len);
	if (r == AMTCA_E_NOMEM)
		return r;
	if (r == AMTCA_E_NOT_FOUND)
		rv = AMT_PT_INVALID_PARAMETER;
	else if (r != 0)
		rv = AMT_PT_INVALID_CERT;
	else if ((rv = sim_cert_add(d, der, len, trusted, &h)) < 0)
		goto out;
	out_begin(w, d, q);
	if (rv == 0) {
		x_epr(w, "g", "CreatedCertificate", C_CERT, "InstanceID",
		    CERT_ID, h, NULL);
		sim_device_changed(d);
	}
	out_end(w, q, rv);
	rv = 0;
out:
	free(der);
	return rv;
}

static int
m_pkcs10(struct sim_device *d, struct req *q, struct xw *w)
{
	unsigned char *csr = NULL, *signed_csr = NULL;
	size_t len = 0, slen = 0;
	char *id = NULL, *b64 = NULL;
	long long alg = -1;
	int rv, r, h;

	/* Parameters in any order: each is looked up by name. */
	r = epr_selector(find_local(q->m->body, "KeyPair"), "InstanceID", &id);
	if (r == AMTCA_E_NOMEM) {
		rv = r;
		goto out;
	}
	h = sim_parse_handle(id, KEY_ID);
	if (r != 0) {
		rv = AMT_PT_INVALID_PARAMETER;
		goto reply;
	}
	if ((r = param_long(q->m->body, "SigningAlgorithm", 0, 255, &alg)) != 0) {
		rv = r == AMTCA_E_NOMEM ? r : AMT_PT_INVALID_PARAMETER;
		if (rv < 0)
			goto out;
		goto reply;
	}
	r = param_b64(q->m->body, "NullSignedCertificateRequest", SIM_CSR_MAX,
	    &csr, &len);
	if (r == AMTCA_E_NOMEM) {
		rv = r;
		goto out;
	}
	if (r != 0) {
		rv = sim_key_by_handle(d, h) == NULL ? AMT_PT_INVALID_HANDLE :
		    AMT_PT_INVALID_PARAMETER;
		goto reply;
	}
	if ((rv = sim_csr_sign(d, h, (int)alg, csr, len, &signed_csr,
	    &slen)) < 0)
		goto out;
	if (rv == 0 && (rv = amtca_b64_encode(signed_csr, slen, &b64)) != 0)
		goto out;
reply:
	out_begin(w, d, q);
	if (b64 != NULL)
		xprop(w, "g", "SignedCertificateRequest", b64);
	out_end(w, q, rv);
	rv = 0;
out:
	free(id);
	free(csr);
	free(signed_csr);
	free(b64);
	return rv;
}

static int
m_commit(struct sim_device *d, struct req *q, struct xw *w)
{
	struct sim_cert *c = NULL;
	int rv = AMT_PT_SUCCESS, i, bound;

	if (d->ctx_cert >= 0)
		c = sim_cert_by_handle(d, d->ctx_cert);
	bound = c != NULL && sim_cert_key(d, c) != NULL;
	for (i = 0; i < SIM_TLS_N; i++)
		if (d->pending[i].enabled && !bound)
			rv = 2072;	/* PT_STATUS_NO_ASSOCIATION */
	if (rv == AMT_PT_SUCCESS) {
		if (memcmp(d->pending, d->committed, sizeof(d->pending)) != 0 ||
		    d->committed_ctx_cert != d->ctx_cert) {
			memcpy(d->committed, d->pending, sizeof(d->committed));
			d->committed_ctx_cert = d->ctx_cert;
			d->commit_requested = 1;
			sim_device_changed(d);
		}
	}
	out_begin(w, d, q);
	out_end(w, q, rv);
	return 0;
}

static int
m_time_get(struct sim_device *d, struct req *q, struct xw *w)
{
	d->last_ta0 = (uint32_t)sim_device_clock(d);
	out_begin(w, d, q);
	xf(w, "<g:Ta0>%u</g:Ta0>", (unsigned)d->last_ta0);
	out_end(w, q, 0);
	return 0;
}

static int
m_time_set(struct sim_device *d, struct req *q, struct xw *w)
{
	long long ta0, tm1, tm2;
	int rv = AMT_PT_SUCCESS, r;

	if ((r = param_long(q->m->body, "Ta0", 0, 0xFFFFFFFFLL, &ta0)) != 0 ||
	    (r = param_long(q->m->body, "Tm1", 0, 0xFFFFFFFFLL, &tm1)) != 0 ||
	    (r = param_long(q->m->body, "Tm2", 0, 0xFFFFFFFFLL, &tm2)) != 0) {
		if (r == AMTCA_E_NOMEM)
			return r;
		rv = AMT_PT_INVALID_PARAMETER;
	} else if (d->last_ta0 == 0 || (uint32_t)ta0 != d->last_ta0) {
		/* Ta0 must echo GetLowAccuracyTimeSynch's answer. */
		rv = AMT_PT_INVALID_PARAMETER;
	} else {
		/* The device's drift from simulated time: --clock-offset
		 * moves this device's clock along with the rest. */
		d->clock_offset_s = tm2 - (long long)sim_world_clock(d->cfg);
		sim_device_changed(d);
	}
	out_begin(w, d, q);
	out_end(w, q, rv);
	return 0;
}

static int
op_method(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status)
{
	struct xw w = { resp, 0 };
	const char *sel;
	int r = AMTCA_E_INTERNAL, known = 1;

	/* Service singletons: with or without the Name selector (§2.1). */
	if ((sel = wsman_msg_selector(q->m, "Name")) != NULL &&
	    strcmp(sel, classes[q->cls].service_name) != 0)
		return F_SELECTORS(d, q, resp, status);
	if (q->cls == C_PKMS && strcmp(q->op, "GenerateKeyPair") == 0)
		r = m_generate_key_pair(d, q, &w);
	else if (q->cls == C_PKMS && strcmp(q->op, "AddKey") == 0)
		r = m_add_key(d, q, &w);
	else if (q->cls == C_PKMS && strcmp(q->op, "AddCertificate") == 0)
		r = m_add_cert(d, q, &w, 0);
	else if (q->cls == C_PKMS &&
	    strcmp(q->op, "AddTrustedRootCertificate") == 0)
		r = m_add_cert(d, q, &w, 1);
	else if (q->cls == C_PKMS &&
	    strcmp(q->op, "GeneratePKCS10RequestEx") == 0)
		r = m_pkcs10(d, q, &w);
	else if (q->cls == C_SETUP && strcmp(q->op, "CommitChanges") == 0)
		r = m_commit(d, q, &w);
	else if (q->cls == C_TIME &&
	    strcmp(q->op, "GetLowAccuracyTimeSynch") == 0)
		r = m_time_get(d, q, &w);
	else if (q->cls == C_TIME &&
	    strcmp(q->op, "SetHighAccuracyTimeSynch") == 0)
		r = m_time_set(d, q, &w);
	else
		known = 0;
	if (!known)
		return F_ACTION(d, q, resp, status);
	if (r == AMTCA_E_NOMEM)
		return r;
	if (r < 0)
		return F_INTERNAL(d, q, resp, status, amtca_errmsg(r));
	if (w.err != 0)
		return w.err;
	*status = 200;
	return 0;
}

/* ---- dispatch ---- */

static int
class_of(const char *uri)
{
	size_t al = strlen(WSMAN_AMT_URI), cl = strlen(WSMAN_CIM_URI);
	int i;

	if (uri == NULL)
		return -1;
	for (i = 0; i < C__COUNT; i++) {
		if (classes[i].cim) {
			if (strncmp(uri, WSMAN_CIM_URI, cl) == 0 &&
			    strcmp(uri + cl, classes[i].name) == 0)
				return i;
		} else if (strncmp(uri, WSMAN_AMT_URI, al) == 0 &&
		    strcmp(uri + al, classes[i].name) == 0)
			return i;
	}
	return -1;
}

static const char *const transfer_ops[] = {
	"Get", "Put", "Create", "Delete", NULL
};
static const char *const enum_ops[] = { "Enumerate", "Pull", "Release", NULL };

/* Fill q->op / q->method / q->step from the Action; -1 when unknown. */
static int
classify(struct req *q)
{
	const char *a = q->m->action, *ru = q->m->resource_uri;
	size_t l;
	int i;

	l = strlen(WSMAN_NS_WXF);
	if (strncmp(a, WSMAN_NS_WXF "/", l + 1) == 0) {
		for (i = 0; transfer_ops[i] != NULL; i++)
			if (strcmp(a + l + 1, transfer_ops[i]) == 0)
				q->op = transfer_ops[i];
	}
	l = strlen(WSMAN_NS_WSEN);
	if (strncmp(a, WSMAN_NS_WSEN "/", l + 1) == 0) {
		for (i = 0; enum_ops[i] != NULL; i++)
			if (strcmp(a + l + 1, enum_ops[i]) == 0)
				q->op = enum_ops[i];
	}
	if (q->op != NULL) {
		/* Step name: Op-Class without the AMT_/CIM_ prefix. */
		snprintf(q->step, sizeof(q->step), "%s-%s", q->op,
		    classes[q->cls].name + 4);
		return 0;
	}
	l = strlen(ru);
	if (strncmp(a, ru, l) == 0 && a[l] == '/' && a[l + 1] != '\0' &&
	    strchr(a + l + 1, '/') == NULL && strlen(a + l + 1) < 48) {
		q->op = a + l + 1;
		q->method = 1;
		snprintf(q->step, sizeof(q->step), "%s", q->op);
		return 0;
	}
	return -1;
}

int
sim_step_valid(const char *step)
{
	static const char *const methods[] = { "GenerateKeyPair", "AddKey",
	    "AddCertificate", "AddTrustedRootCertificate",
	    "GeneratePKCS10RequestEx", "CommitChanges",
	    "GetLowAccuracyTimeSynch", "SetHighAccuracyTimeSynch", NULL };
	const char *const *ops;
	char name[SIM_STEP_MAX];
	size_t l = strlen(step);
	int i, k;

	if (l == 0 || l >= sizeof(name))
		return 0;
	memcpy(name, step, l + 1);
	if (name[l - 1] == '+')
		name[l - 1] = '\0';
	for (i = 0; methods[i] != NULL; i++)
		if (strcmp(name, methods[i]) == 0)
			return 1;
	for (k = 0; k < 2; k++)
		for (ops = k ? enum_ops : transfer_ops; *ops != NULL; ops++)
			for (i = 0; i < C__COUNT; i++) {
				char full[SIM_STEP_MAX];

				snprintf(full, sizeof(full), "%s-%s", *ops,
				    classes[i].name + 4);
				if (strcmp(name, full) == 0)
					return 1;
			}
	return 0;
}

static int
drop_matches(const struct sim_device *d, const struct req *q, int after)
{
	const char *s = d->cfg->drop_at;
	size_t l = strlen(q->step);

	if (s[0] == '\0' || d->dropped || strncmp(s, q->step, l) != 0)
		return 0;
	return after ? strcmp(s + l, "+") == 0 : s[l] == '\0';
}

static int
dispatch(struct sim_device *d, struct req *q, struct wsman_buf *resp,
    int *status)
{
	const char *op = q->op;

	if (q->method)
		return classes[q->cls].service_name != NULL ?
		    op_method(d, q, resp, status) :
		    F_ACTION(d, q, resp, status);
	if (strcmp(op, "Enumerate") == 0)
		return op_enumerate(d, q, resp, status);
	if (strcmp(op, "Pull") == 0)
		return op_pull(d, q, resp, status);
	if (strcmp(op, "Release") == 0)
		return op_release(d, q, resp, status);
	if (strcmp(op, "Get") == 0)
		return op_get(d, q, resp, status);
	if (strcmp(op, "Delete") == 0)
		return op_delete(d, q, resp, status);
	if (strcmp(op, "Put") == 0 && q->cls == C_TLSSET)
		return op_tlsset_put(d, q, resp, status);
	if (strcmp(op, "Put") == 0 && q->cls == C_TLSCTX)
		return op_tlsctx_write(d, q, resp, status, 0);
	if (strcmp(op, "Create") == 0 && q->cls == C_TLSCTX)
		return op_tlsctx_write(d, q, resp, status, 1);
	return F_ACTION(d, q, resp, status);
}

int
sim_handle(struct sim_device *d, const char *body, size_t len,
    struct wsman_buf *resp, int *status)
{
	struct req q;
	int r, ret = AMTCA_E_INTERNAL, locked = 0;

	memset(&q, 0, sizeof(q));
	q.cls = -1;
	*status = 500;
	resp->len = 0;
	r = wsman_msg_parse(body, len, &q.m);
	pthread_mutex_lock(&d->lock);
	locked = 1;
	if (r == AMTCA_E_NOMEM) {
		ret = r;
		goto out;
	}
	if (r != 0 || q.m->header == NULL || q.m->body == NULL) {
		ret = fault(d, &q, resp, status, 400, "a:Sender",
		    "e:SchemaValidationError", FAULT_WSMAN,
		    "The supplied SOAP envelope is not valid.");
		goto out;
	}
	if (q.m->action == NULL) {
		ret = fault(d, &q, resp, status, 400, "a:Sender",
		    "b:MessageInformationHeaderRequired", FAULT_WSA,
		    "A required header representing a Message Addressing "
		    "Property is not present");
		goto out;
	}
	if ((q.cls = class_of(q.m->resource_uri)) < 0) {
		ret = F_DEST(d, &q, resp, status);
		goto out;
	}
	if (classify(&q) != 0) {
		ret = F_ACTION(d, &q, resp, status);
		goto out;
	}
	if (drop_matches(d, &q, 0)) {
		d->dropped = 1;
		*status = 0;
		ret = 0;
		goto out;
	}
	if (q.method && strcmp(q.op, "GenerateKeyPair") == 0 &&
	    d->cfg->keygen_ms > 0) {
		/* Key generation takes seconds on real firmware. */
		pthread_mutex_unlock(&d->lock);
		amtca_sleep_ms((long)d->cfg->keygen_ms);
		pthread_mutex_lock(&d->lock);
	}
	if ((ret = dispatch(d, &q, resp, status)) != 0)
		goto out;
	if (drop_matches(d, &q, 1)) {
		d->dropped = 1;
		*status = 0;
		resp->len = 0;
	}
out:
	if (locked)
		pthread_mutex_unlock(&d->lock);
	wsman_msg_free(q.m);
	return ret;
}
