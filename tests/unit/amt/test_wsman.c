/* amt/wsman.c: buffers, hardened parsing, lookups, envelopes, faults, Digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "amt/wsman.h"
#include "common/limits.h"
#include "unit/amt/helper_amt.h"

#define ENV_HEAD "<?xml version=\"1.0\" encoding=\"utf-8\"?><Envelope xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns=\"http://www.w3.org/2003/05/soap-envelope\"><Header>"

/* [LIB] Enumerate of AMT_PublicKeyCertificate, pinned in the reference §4.1. */
static const char pinned_enumerate[] = ENV_HEAD "<a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate</w:ResourceURI><a:MessageID>0</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout></Header><Body><Enumerate xmlns=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" /></Body></Envelope>";

static void
test_buf(void **state)
{
	struct wsman_buf b;

	(void)state;
	wsman_buf_init(&b, 8);
	assert_int_equal(wsman_buf_add(&b, "abcd", 4), 0);
	assert_int_equal(wsman_buf_addf(&b, "%d", 123), 0);
	assert_string_equal(b.data, "abcd123");
	assert_int_equal(wsman_buf_add(&b, "xy", 2), AMTCA_E_LIMIT);
	assert_int_equal(b.len, 7);		/* unchanged on failure */
	assert_int_equal(wsman_buf_add(&b, "x", 1), 0);
	assert_int_equal(wsman_buf_addf(&b, "%s", "y"), AMTCA_E_LIMIT);
	wsman_buf_free(&b);

	wsman_buf_init(&b, 0);
	assert_int_equal(b.max, AMTCA_WSMAN_BODY_MAX);
	assert_int_equal(wsman_buf_add_escaped(&b, "a&b<c>d\"e'f"), 0);
	assert_string_equal(b.data, "a&amp;b&lt;c&gt;d&quot;e&apos;f");
	wsman_buf_free(&b);
	wsman_buf_free(&b);	/* idempotent */
}

static void
test_digest_rfc2617(void **state)
{
	char out[33];

	(void)state;
	/* RFC 2617 §3.5 */
	assert_int_equal(wsman_digest_response("Mufasa", "testrealm@host.com",
	    "Circle Of Life", "GET", "/dir/index.html",
	    "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b",
	    "auth", out), 0);
	assert_string_equal(out, "6629fae49393a05397450978507c4ef1");
}

static void
test_digest_rfc7616(void **state)
{
	char out[33];

	(void)state;
	/* RFC 7616 §3.9.1, MD5 */
	assert_int_equal(wsman_digest_response("Mufasa", "http-auth@example.org",
	    "Circle of Life", "GET", "/dir/index.html",
	    "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
	    "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth", out), 0);
	assert_string_equal(out, "8ca523f5e9506fed4657c9700eebdbec");
	/* qop absent: RFC 2069 form; differs from the qop one. */
	assert_int_equal(wsman_digest_response("Mufasa", "http-auth@example.org",
	    "Circle of Life", "GET", "/dir/index.html",
	    "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", NULL, NULL, NULL,
	    out), 0);
	assert_int_equal(strlen(out), 32);
	assert_string_not_equal(out, "8ca523f5e9506fed4657c9700eebdbec");
	assert_int_equal(wsman_digest_response("u", "r", "p", "POST", "/wsman",
	    "n", NULL, NULL, "auth", out), AMTCA_E_USAGE);
}

static void
test_envelope_enumerate(void **state)
{
	struct wsman_buf b;

	(void)state;
	wsman_buf_init(&b, 0);
	assert_int_equal(wsman_envelope(&b, WSMAN_ACTION_ENUMERATE,
	    WSMAN_AMT_URI "AMT_PublicKeyCertificate", 0, NULL, 0,
	    "<Enumerate xmlns=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" />"), 0);
	assert_string_equal(b.data, pinned_enumerate);
	wsman_buf_free(&b);
}

/* [LIB] the Delete selector set of open-amt-cloud-toolkit's test (§4.8). */
static void
test_envelope_epr_selectors(void **state)
{
	static const char want[] = "<w:SelectorSet><w:Selector Name=\"ElementInContext\"><a:EndpointReference><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT Certificate: Handle: 1</w:Selector></w:SelectorSet></a:ReferenceParameters></a:EndpointReference></w:Selector><w:Selector Name=\"ElementProvidingContext\"><a:EndpointReference><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSProtocolEndpointCollection</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ElementName\">TLSProtocolEndpoint Instances Collection</w:Selector></w:SelectorSet></a:ReferenceParameters></a:EndpointReference></w:Selector></w:SelectorSet></Header><Body></Body></Envelope>";
	struct wsman_selector sel[2] = {
		{ "ElementInContext", NULL, WSMAN_AMT_URI "AMT_PublicKeyCertificate",
		  "InstanceID", "Intel(r) AMT Certificate: Handle: 1" },
		{ "ElementProvidingContext", NULL,
		  WSMAN_AMT_URI "AMT_TLSProtocolEndpointCollection",
		  "ElementName", "TLSProtocolEndpoint Instances Collection" },
	};
	struct wsman_buf b;
	struct wsman_msg *m = NULL;

	(void)state;
	wsman_buf_init(&b, 0);
	assert_int_equal(wsman_envelope(&b, WSMAN_ACTION_DELETE,
	    WSMAN_AMT_URI "AMT_TLSCredentialContext", 4, sel, 2, NULL), 0);
	assert_non_null(strstr(b.data, want));
	/* The simulator's view of the same request. */
	assert_int_equal(wsman_msg_parse(b.data, b.len, &m), 0);
	assert_string_equal(m->action, WSMAN_ACTION_DELETE);
	assert_string_equal(m->message_id, "4");
	assert_string_equal(m->resource_uri,
	    WSMAN_AMT_URI "AMT_TLSCredentialContext");
	assert_string_equal(wsman_msg_selector(m, "ElementInContext"),
	    "Intel(r) AMT Certificate: Handle: 1");
	assert_string_equal(wsman_msg_selector(m, "ElementProvidingContext"),
	    "TLSProtocolEndpoint Instances Collection");
	assert_null(wsman_msg_selector(m, "Name"));
	assert_false(m->is_fault);
	wsman_msg_free(m);
	wsman_buf_free(&b);
}

static void
test_envelope_escapes_selector(void **state)
{
	struct wsman_selector sel = { "InstanceID", "a<b&c", NULL, NULL, NULL };
	struct wsman_buf b;
	struct wsman_msg *m = NULL;

	(void)state;
	wsman_buf_init(&b, 0);
	assert_int_equal(wsman_envelope(&b, WSMAN_ACTION_GET, "urn:x", 7, &sel,
	    1, NULL), 0);
	assert_non_null(strstr(b.data, ">a&lt;b&amp;c</w:Selector>"));
	assert_int_equal(wsman_msg_parse(b.data, b.len, &m), 0);
	assert_string_equal(wsman_msg_selector(m, "InstanceID"), "a<b&c");
	wsman_msg_free(m);
	wsman_buf_free(&b);
}

static void
test_fault_already_exists(void **state)
{
	struct wsman_msg *m = NULL;
	int rv;

	(void)state;
	assert_int_equal(wsman_msg_parse(cap_already_exists,
	    strlen(cap_already_exists), &m), 0);
	assert_true(m->is_fault);
	assert_string_equal(m->fault_subcode, "AlreadyExists");
	assert_string_equal(m->fault_reason,
	    "The sender attempted to create a resource which already exists.");
	assert_string_equal(m->action,
	    "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault");
	assert_string_equal(m->relates_to, "31");
	assert_null(m->resource_uri);	/* faults carry none */
	assert_int_equal(wsman_return_value(m, &rv), AMTCA_E_AMT_PARSE);
	wsman_msg_free(m);
}

static void
test_fault_destination_unreachable(void **state)
{
	struct wsman_msg *m = NULL;

	(void)state;
	assert_int_equal(wsman_msg_parse(cap_destination_unreachable,
	    strlen(cap_destination_unreachable), &m), 0);
	assert_true(m->is_fault);
	assert_string_equal(m->fault_subcode, "DestinationUnreachable");
	assert_string_equal(m->fault_reason, "No route can be determined to "
	    "reach the destination role defined by the WSAddressing To.");
	wsman_msg_free(m);
}

/* Prefixes are irrelevant: the same fault with made-up prefixes. */
static void
test_fault_other_prefixes(void **state)
{
	static const char x[] = "<S:Envelope xmlns:S=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:q=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"><S:Header><q:Action>\n  urn:fault \n</q:Action></S:Header><S:Body><S:Fault><S:Code><S:Value>S:Sender</S:Value><S:Subcode><S:Value>zz:InvalidSelectors</S:Value></S:Subcode></S:Code><S:Reason><S:Text>bad</S:Text></S:Reason></S:Fault></S:Body></S:Envelope>";
	static const char wrongns[] = "<a:Envelope xmlns:a=\"http://schemas.xmlsoap.org/soap/envelope/\"><a:Body/></a:Envelope>";
	struct wsman_msg *m = NULL;

	(void)state;
	assert_int_equal(wsman_msg_parse(x, strlen(x), &m), 0);
	assert_true(m->is_fault);
	assert_string_equal(m->action, "urn:fault");	/* trimmed */
	assert_string_equal(m->fault_subcode, "InvalidSelectors");
	wsman_msg_free(m);
	m = NULL;
	/* SOAP 1.1 namespace with the right prefix: not our envelope. */
	assert_int_equal(wsman_msg_parse(wrongns, strlen(wrongns), &m),
	    AMTCA_E_AMT_PARSE);
	assert_null(m);
}

static void
test_return_value_fixture(void **state)
{
	struct wsman_msg *m = NULL;
	size_t len;
	char *x = fx_load("amt/setupandconfiguration/commitchanges.xml", &len);
	int rv = -2;

	(void)state;
	assert_int_equal(wsman_msg_parse(x, len, &m), 0);
	assert_false(m->is_fault);
	/* The fixture's Action lacks the Response suffix: still fine. */
	assert_string_equal(m->action, "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SetupAndConfigurationService/CommitChanges");
	assert_int_equal(wsman_return_value(m, &rv), 0);
	assert_int_equal(rv, 0);
	wsman_msg_free(m);
	free(x);
}

static void
test_lookup_and_text(void **state)
{
	static const char x[] = "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:g=\"urn:g\" xmlns:h=\"urn:h\"><a:Body><g:R><h:X>1</h:X><g:X> \t two\r\n</g:X><g:Y/><g:X>3</g:X><g:Z><g:X>deep</g:X></g:Z></g:R></a:Body></a:Envelope>";
	struct wsman_msg *m = NULL;
	xmlNode *r, *n;
	char *t = NULL;

	(void)state;
	assert_int_equal(wsman_msg_parse(x, strlen(x), &m), 0);
	r = wsman_child(m->body, "urn:g", "R");
	assert_non_null(r);
	n = wsman_child(r, "urn:g", "X");
	assert_int_equal(wsman_text(n, &t), 0);
	assert_string_equal(t, "two");
	free(t);
	n = wsman_next(n);
	assert_int_equal(wsman_text(n, &t), 0);
	assert_string_equal(t, "3");
	free(t);
	assert_null(wsman_next(n));	/* the nested one is not a sibling */
	assert_int_equal(wsman_text(wsman_child(r, "urn:g", "Y"), &t), 0);
	assert_string_equal(t, "");
	free(t);
	assert_int_equal(wsman_text(wsman_child(r, NULL, "X"), &t), 0);
	assert_string_equal(t, "1");	/* any namespace: first one */
	free(t);
	assert_null(wsman_child(r, "urn:nope", "X"));
	n = wsman_find(wsman_child(r, "urn:g", "Z"), "urn:g", "X");
	assert_int_equal(wsman_text(n, &t), 0);
	assert_string_equal(t, "deep");
	free(t);
	assert_null(wsman_find(r, "urn:g", "Nope"));
	assert_int_equal(wsman_text(NULL, &t), AMTCA_E_AMT_PARSE);
	assert_null(t);
	wsman_msg_free(m);
}

/* ---- hostile XML ---- */

static void
assert_refused(const char *x, int want)
{
	xmlDoc *doc = (xmlDoc *)1;
	struct wsman_msg *m = (struct wsman_msg *)1;

	assert_int_equal(wsman_xml_parse(x, strlen(x), &doc), want);
	assert_null(doc);
	assert_int_equal(wsman_msg_parse(x, strlen(x), &m), want);
	assert_null(m);
}

static void
test_hostile_xxe(void **state)
{
	static const char x[] = "<?xml version=\"1.0\"?><!DOCTYPE a:Envelope [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body><r>&xxe;</r></a:Body></a:Envelope>";

	(void)state;
	assert_refused(x, AMTCA_E_AMT_PARSE);
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_AMT_PARSE), "DOCTYPE"));
	assert_null(strstr(amtca_errmsg(AMTCA_E_AMT_PARSE), "root:"));
}

static void
test_hostile_billion_laughs(void **state)
{
	static const char x[] = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\"><!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\"><!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\"><!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\"><!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\"><!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\"><!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]><a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body><r>&lol9;</r></a:Body></a:Envelope>";

	(void)state;
	assert_refused(x, AMTCA_E_AMT_PARSE);
}

static void
test_hostile_doctype_only(void **state)
{
	static const char x[] = "<!DOCTYPE a:Envelope SYSTEM \"http://127.0.0.1:1/x.dtd\"><a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body/></a:Envelope>";

	(void)state;
	assert_refused(x, AMTCA_E_AMT_PARSE);
}

/* Undeclared entity without a DTD: an error, and no content appears. */
static void
test_hostile_undeclared_entity(void **state)
{
	static const char x[] = "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body>&xxe;</a:Body></a:Envelope>";

	(void)state;
	assert_refused(x, AMTCA_E_AMT_PARSE);
}

static char *
padded(size_t n)
{
	static const char head[] = "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Body/>";
	static const char tail[] = "</a:Envelope>";
	char *x = malloc(n + 1);

	assert_non_null(x);
	memset(x, ' ', n);
	memcpy(x, head, strlen(head));
	memcpy(x + n - strlen(tail), tail, strlen(tail));
	x[n] = '\0';
	return x;
}

static void
test_hostile_oversized(void **state)
{
	xmlDoc *doc = NULL;
	char *x;

	(void)state;
	x = padded(AMTCA_WSMAN_BODY_MAX + 1);
	assert_int_equal(wsman_xml_parse(x, AMTCA_WSMAN_BODY_MAX + 1, &doc),
	    AMTCA_E_LIMIT);
	assert_null(doc);
	free(x);
	x = padded(AMTCA_WSMAN_BODY_MAX);	/* exactly the cap parses */
	assert_int_equal(wsman_xml_parse(x, AMTCA_WSMAN_BODY_MAX, &doc), 0);
	xmlFreeDoc(doc);
	free(x);
}

static void
test_garbage(void **state)
{
	xmlDoc *doc = NULL;

	(void)state;
	assert_int_equal(wsman_xml_parse("", 0, &doc), AMTCA_E_AMT_PARSE);
	assert_int_equal(wsman_xml_parse("<a>", 3, &doc), AMTCA_E_AMT_PARSE);
	assert_int_equal(wsman_xml_parse("<a></b>", 7, &doc), AMTCA_E_AMT_PARSE);
	assert_int_equal(wsman_xml_parse("\0\0\0\0", 4, &doc), AMTCA_E_AMT_PARSE);
	assert_null(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_digest_rfc2617),
		cmocka_unit_test(test_digest_rfc7616),
		cmocka_unit_test(test_envelope_enumerate),
		cmocka_unit_test(test_envelope_epr_selectors),
		cmocka_unit_test(test_envelope_escapes_selector),
		cmocka_unit_test(test_fault_already_exists),
		cmocka_unit_test(test_fault_destination_unreachable),
		cmocka_unit_test(test_fault_other_prefixes),
		cmocka_unit_test(test_return_value_fixture),
		cmocka_unit_test(test_lookup_and_text),
		cmocka_unit_test(test_hostile_xxe),
		cmocka_unit_test(test_hostile_billion_laughs),
		cmocka_unit_test(test_hostile_doctype_only),
		cmocka_unit_test(test_hostile_undeclared_entity),
		cmocka_unit_test(test_hostile_oversized),
		cmocka_unit_test(test_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
