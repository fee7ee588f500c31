/*
 * The WS-Management layer shared by the client (amt/) and the simulator
 * (amt/sim/): hardened XML parsing, namespace-aware lookups, envelope
 * building, SOAP fault decoding and HTTP Digest arithmetic.  Pure functions
 * over buffers: no I/O, so every parser is unit- and fuzz-testable.
 */
#ifndef AMTCA_AMT_WSMAN_H
#define AMTCA_AMT_WSMAN_H

#include <stddef.h>

#include <libxml/tree.h>

#include "common/err.h"

#define WSMAN_NS_SOAP  "http://www.w3.org/2003/05/soap-envelope"
#define WSMAN_NS_WSA   "http://schemas.xmlsoap.org/ws/2004/08/addressing"
#define WSMAN_NS_WSMAN "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
#define WSMAN_NS_WXF   "http://schemas.xmlsoap.org/ws/2004/09/transfer"
#define WSMAN_NS_WSEN  "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
#define WSMAN_NS_XSI   "http://www.w3.org/2001/XMLSchema-instance"
#define WSMAN_ANON     "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
#define WSMAN_AMT_URI  "http://intel.com/wbem/wscim/1/amt-schema/1/"
#define WSMAN_CIM_URI  "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"

#define WSMAN_ACTION_GET       WSMAN_NS_WXF "/Get"
#define WSMAN_ACTION_PUT       WSMAN_NS_WXF "/Put"
#define WSMAN_ACTION_CREATE    WSMAN_NS_WXF "/Create"
#define WSMAN_ACTION_DELETE    WSMAN_NS_WXF "/Delete"
#define WSMAN_ACTION_ENUMERATE WSMAN_NS_WSEN "/Enumerate"
#define WSMAN_ACTION_PULL      WSMAN_NS_WSEN "/Pull"

/*
 * A growable byte buffer with a hard maximum (curl's dynbuf idea).  After
 * the first successful add, data is always NUL-terminated (the NUL is not
 * counted in len).  `max` bounds len; max 0 means AMTCA_WSMAN_BODY_MAX.
 * An add that would exceed it fails with AMTCA_E_LIMIT and leaves the
 * buffer unchanged.
 */
struct wsman_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};
void wsman_buf_init(struct wsman_buf *b, size_t max);
int wsman_buf_add(struct wsman_buf *b, const void *p, size_t n) AMTCA_WUR;
int wsman_buf_addf(struct wsman_buf *b, const char *fmt, ...)
    AMTCA_PRINTF(2, 3) AMTCA_WUR;
/* Append `s` XML-escaped (& < > " '). */
int wsman_buf_add_escaped(struct wsman_buf *b, const char *s) AMTCA_WUR;
void wsman_buf_free(struct wsman_buf *b);

/*
 * Parse untrusted XML: size checked first (AMTCA_WSMAN_BODY_MAX), no
 * network, no DTD loading or validation, no entity substitution, a
 * document with a DOCTYPE is refused outright.  AMTCA_E_AMT_PARSE or
 * AMTCA_E_LIMIT.  Free with xmlFreeDoc().
 */
int wsman_xml_parse(const char *buf, size_t len, xmlDoc **out) AMTCA_WUR;

/* First element child of `parent` with namespace `ns` (NULL: any) and local name. */
xmlNode *wsman_child(xmlNode *parent, const char *ns, const char *local);
/* Next element sibling after `n` with the same namespace and local name. */
xmlNode *wsman_next(xmlNode *n);
/*
 * First element with that namespace/local name in document order below
 * `root` (its descendants; `root` itself is not a candidate).
 */
xmlNode *wsman_find(xmlNode *root, const char *ns, const char *local);
/* Whitespace-trimmed text content, malloc'd (never NULL on success). */
int wsman_text(xmlNode *n, char **out) AMTCA_WUR;

/* A selector: name=value, or name=EPR when `epr_*` are set. */
struct wsman_selector {
	const char *name;
	const char *value;		/* plain selector value */
	const char *epr_resource;	/* EPR selector: target ResourceURI */
	const char *epr_sel_name;	/*   with one inner selector */
	const char *epr_sel_value;
};

/*
 * Build a request envelope in the go-wsman-messages form (one line, header
 * order Action, To, ResourceURI, MessageID, ReplyTo, OperationTimeout,
 * SelectorSet).  `body` is inserted verbatim inside <Body> (may be NULL).
 */
int wsman_envelope(struct wsman_buf *out, const char *action,
    const char *resource_uri, unsigned message_id,
    const struct wsman_selector *sel, size_t nsel, const char *body) AMTCA_WUR;

/* A parsed response or request envelope. */
struct wsman_msg {
	xmlDoc *doc;
	xmlNode *header;
	xmlNode *body;
	char *action;			/* header Action, trimmed, or NULL */
	char *resource_uri;		/* header ResourceURI or NULL */
	char *message_id;		/* header MessageID or NULL */
	char *relates_to;		/* header RelatesTo or NULL */
	int is_fault;
	char *fault_subcode;		/* local part of Subcode/Value, e.g. "AlreadyExists" */
	char *fault_reason;
	void *priv_;			/* private: strings lent by wsman_msg_selector */
	/*
	 * Called once by wsman_msg_free() after the DOM is freed, when set:
	 * the client returns its parse permit here (amt/client.c).
	 */
	void (*on_free)(void);
};

/*
 * Parse an envelope (namespace-aware; prefixes are irrelevant).  The root
 * must be a SOAP 1.2 Envelope with a Body; Header and its fields are
 * optional (NULL when absent).  A Body/Fault sets is_fault, fault_subcode
 * (local part of the innermost Subcode/Value, else of Code/Value) and
 * fault_reason (Reason/Text); a fault is not an error of this function.
 */
int wsman_msg_parse(const char *buf, size_t len, struct wsman_msg **out) AMTCA_WUR;
void wsman_msg_free(struct wsman_msg *m);

/*
 * Header selectors of a request (simulator side): value of the selector
 * `name`, or NULL.  For EPR-valued selectors returns the inner selector's
 * value.  Borrowed from the message.
 */
const char *wsman_msg_selector(struct wsman_msg *m, const char *name);

/*
 * The <Selector Name="name"> element (wsman namespace) that is a child of
 * `selector_set`, or NULL.  For reading EPRs in bodies (e.g. the
 * ElementInContext of an AMT_TLSCredentialContext).
 */
xmlNode *wsman_selector_node(xmlNode *selector_set, const char *name);

/*
 * ReturnValue of the body's *_OUTPUT element, or AMTCA_E_AMT_PARSE when
 * there is none.
 */
int wsman_return_value(struct wsman_msg *m, int *rv) AMTCA_WUR;

/*
 * HTTP Digest (RFC 2617/7616, MD5, qop=auth) response as 32 lowercase hex:
 *   HA1 = MD5(user:realm:password), HA2 = MD5(method:uri),
 *   response = MD5(HA1:nonce:nc:cnonce:qop:HA2)   (qop given)
 *   response = MD5(HA1:nonce:HA2)                 (qop NULL)
 */
int wsman_digest_response(const char *user, const char *realm,
    const char *password, const char *method, const char *uri,
    const char *nonce, const char *nc, const char *cnonce, const char *qop,
    char out[33]) AMTCA_WUR;

#endif
