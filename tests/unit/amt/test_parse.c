/*
 * amt/parse.c: request builders against the strings working clients pin
 * (docs/amt-wsman-reference.md §4), and the response parsers over every
 * relevant recorded AMT response in tests/fixtures/go-wsman-messages.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "amt/amt.h"
#include "amt/wsman.h"
#include "common/limits.h"
#include "common/util.h"
#include "unit/amt/helper_amt.h"

#define ENV_HEAD "<?xml version=\"1.0\" encoding=\"utf-8\"?><Envelope xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns=\"http://www.w3.org/2003/05/soap-envelope\"><Header>"
#define REPLY "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout>"
#define PKMS "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService"

/* A tiny DER blob standing in for the pinned strings' placeholders. */
static const unsigned char blob[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
#define BLOB64 "MAMCAQU="

static char *
envelope(const char *action, const char *uri, unsigned id,
    const struct wsman_selector *sel, size_t nsel, const char *body)
{
	struct wsman_buf b;

	wsman_buf_init(&b, 0);
	assert_int_equal(wsman_envelope(&b, action, uri, id, sel, nsel, body), 0);
	return b.data;
}

static void
test_req_generate_key_pair(void **state)
{
	static const char want[] = ENV_HEAD "<a:Action>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService/GenerateKeyPair</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService</w:ResourceURI><a:MessageID>9</a:MessageID>" REPLY "</Header><Body><h:GenerateKeyPair_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService\"><h:KeyAlgorithm>0</h:KeyAlgorithm><h:KeyLength>2048</h:KeyLength></h:GenerateKeyPair_INPUT></Body></Envelope>";
	char *body = NULL, *env;

	(void)state;
	assert_int_equal(amt_body_generate_key_pair(0, 2048, &body), 0);
	env = envelope(PKMS "/GenerateKeyPair", PKMS, 9, NULL, 0, body);
	assert_string_equal(env, want);
	free(env);
	free(body);
}

static void
test_req_commit(void **state)
{
	static const char want[] = ENV_HEAD "<a:Action>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SetupAndConfigurationService/CommitChanges</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SetupAndConfigurationService</w:ResourceURI><a:MessageID>0</a:MessageID>" REPLY "</Header><Body><h:CommitChanges_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SetupAndConfigurationService\"></h:CommitChanges_INPUT></Body></Envelope>";
	char *body = NULL, *env;

	(void)state;
	assert_int_equal(amt_body_commit(&body), 0);
	env = envelope(AMT_CLASS_URI("AMT_SetupAndConfigurationService") "/CommitChanges",
	    AMT_CLASS_URI("AMT_SetupAndConfigurationService"), 0, NULL, 0, body);
	assert_string_equal(env, want);
	free(env);
	free(body);
}

static void
test_req_pkcs10(void **state)
{
	static const char want[] = ENV_HEAD "<a:Action>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService/GeneratePKCS10RequestEx</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService</w:ResourceURI><a:MessageID>3</a:MessageID>" REPLY "</Header><Body><h:GeneratePKCS10RequestEx_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService\"><h:KeyPair><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicPrivateKeyPair</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT Key: Handle: 0</w:Selector></w:SelectorSet></a:ReferenceParameters></h:KeyPair><h:SigningAlgorithm>1</h:SigningAlgorithm><h:NullSignedCertificateRequest>" BLOB64 "</h:NullSignedCertificateRequest></h:GeneratePKCS10RequestEx_INPUT></Body></Envelope>";
	char *body = NULL, *env;

	(void)state;
	assert_int_equal(amt_body_pkcs10_request("Intel(r) AMT Key: Handle: 0",
	    1, blob, sizeof(blob), &body), 0);
	env = envelope(PKMS "/GeneratePKCS10RequestEx", PKMS, 3, NULL, 0, body);
	assert_string_equal(env, want);
	free(env);
	free(body);
}

static void
test_req_add_key_and_certs(void **state)
{
	static const char want_key[] = ENV_HEAD "<a:Action>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService/AddKey</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService</w:ResourceURI><a:MessageID>7</a:MessageID>" REPLY "</Header><Body><h:AddKey_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService\"><h:KeyBlob>" BLOB64 "</h:KeyBlob></h:AddKey_INPUT></Body></Envelope>";
	static const char want_root[] = "<Body><h:AddTrustedRootCertificate_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService\"><h:CertificateBlob>" BLOB64 "</h:CertificateBlob></h:AddTrustedRootCertificate_INPUT></Body></Envelope>";
	static const char want_cert[] = "<h:AddCertificate_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService\"><h:CertificateBlob>" BLOB64 "</h:CertificateBlob></h:AddCertificate_INPUT>";
	unsigned char big[AMTCA_AMT_CERT_DER_MAX + 1];
	char *body = NULL, *env;

	(void)state;
	assert_int_equal(amt_body_add_key(blob, sizeof(blob), &body), 0);
	env = envelope(PKMS "/AddKey", PKMS, 7, NULL, 0, body);
	assert_string_equal(env, want_key);
	free(env);
	free(body);
	assert_int_equal(amt_body_add_cert(1, blob, sizeof(blob), &body), 0);
	env = envelope(PKMS "/AddTrustedRootCertificate", PKMS, 5, NULL, 0, body);
	assert_non_null(strstr(env, "<a:MessageID>5</a:MessageID>"));
	assert_int_equal(strcmp(env + strlen(env) - strlen(want_root), want_root), 0);
	free(env);
	free(body);
	assert_int_equal(amt_body_add_cert(0, blob, sizeof(blob), &body), 0);
	assert_string_equal(body, want_cert);
	free(body);
	/* AMT's X509Certificate is uint8[4100]. */
	memset(big, 0x30, sizeof(big));
	assert_int_equal(amt_body_add_cert(0, big, sizeof(big), &body),
	    AMTCA_E_LIMIT);
	assert_null(body);
	assert_int_equal(amt_body_add_cert(0, big, sizeof(big) - 1, &body), 0);
	free(body);
}

static void
test_req_tls_context_create(void **state)
{
	static const char want[] = ENV_HEAD "<a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSCredentialContext</w:ResourceURI><a:MessageID>11</a:MessageID>" REPLY "</Header><Body><h:AMT_TLSCredentialContext xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSCredentialContext\"><h:ElementInContext><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT Certificate: Handle: 1</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ElementInContext><h:ElementProvidingContext><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSProtocolEndpointCollection</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ElementName\">TLSProtocolEndpointInstances Collection</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ElementProvidingContext></h:AMT_TLSCredentialContext></Body></Envelope>";
	char *body = NULL, *env;

	(void)state;
	assert_int_equal(amt_body_tls_context("Intel(r) AMT Certificate: Handle: 1",
	    &body), 0);
	env = envelope(WSMAN_ACTION_CREATE,
	    AMT_CLASS_URI("AMT_TLSCredentialContext"), 11, NULL, 0, body);
	assert_string_equal(env, want);
	free(env);
	free(body);
}

/*
 * The pinned go request (§4.2) writes ElementName, InstanceID,
 * MutualAuthentication, Enabled, AcceptNonSecureConnections; we send the
 * same header and the same fields in AMT's own (alphabetical) order.
 */
static void
test_req_tls_setting_put(void **state)
{
	static const char want[] = ENV_HEAD "<a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Put</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSSettingData</w:ResourceURI><a:MessageID>12</a:MessageID>" REPLY "<w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT 802.3 TLS Settings</w:Selector></w:SelectorSet></Header><Body><h:AMT_TLSSettingData xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSSettingData\"><h:AcceptNonSecureConnections>false</h:AcceptNonSecureConnections><h:ElementName>Intel(r) AMT 802.3 TLS Settings</h:ElementName><h:Enabled>true</h:Enabled><h:InstanceID>Intel(r) AMT 802.3 TLS Settings</h:InstanceID><h:MutualAuthentication>false</h:MutualAuthentication></h:AMT_TLSSettingData></Body></Envelope>";
	struct amt_tls_setting s = {
		.instance_id = AMT_TLS_REMOTE, .element_name = AMT_TLS_REMOTE,
		.enabled = 1, .mutual_auth = 0, .accept_non_secure = 0,
		.non_secure_supported = 0,
	};
	struct wsman_selector sel = { "InstanceID", AMT_TLS_REMOTE, NULL, NULL, NULL };
	char *body = NULL, *env;

	(void)state;
	assert_int_equal(amt_body_tls_setting(&s, &body), 0);
	env = envelope(WSMAN_ACTION_PUT, AMT_CLASS_URI("AMT_TLSSettingData"), 12,
	    &sel, 1, body);
	assert_string_equal(env, want);
	assert_null(strstr(env, "NonSecureConnectionsSupported"));
	assert_null(strstr(env, "TrustedCN"));
	free(env);
	free(body);
}

static void
test_req_pull_and_time(void **state)
{
	char *body = NULL;

	(void)state;
	assert_int_equal(amt_body_pull("CA000000-0000-0000-0000-000000000000", &body), 0);
	assert_string_equal(body, "<Pull xmlns=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\"><EnumerationContext>CA000000-0000-0000-0000-000000000000</EnumerationContext><MaxElements>999</MaxElements><MaxCharacters>99999</MaxCharacters></Pull>");
	free(body);
	assert_int_equal(amt_body_time_get(&body), 0);
	assert_string_equal(body, "<h:GetLowAccuracyTimeSynch_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TimeSynchronizationService\"></h:GetLowAccuracyTimeSynch_INPUT>");
	free(body);
	assert_int_equal(amt_body_time_set(1704586865u, 1704586900u, 4294967295u, &body), 0);
	assert_string_equal(body, "<h:SetHighAccuracyTimeSynch_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TimeSynchronizationService\"><h:Ta0>1704586865</h:Ta0><h:Tm1>1704586900</h:Tm1><h:Tm2>4294967295</h:Tm2></h:SetHighAccuracyTimeSynch_INPUT>");
	free(body);
	assert_int_equal(amt_body_pull("", &body), AMTCA_E_USAGE);
	assert_null(body);
}

/* ---------------------------------------------------------- responses */

static void
test_status_names(void **state)
{
	(void)state;
	assert_string_equal(amt_status_name(0), "SUCCESS");
	assert_string_equal(amt_status_name(AMT_PT_DUPLICATE), "DUPLICATE");
	assert_string_equal(amt_status_name(2061), "PKI_GENERATING_KEYS");
	assert_string_equal(amt_status_name(2062), "INVALID_KEY");
	assert_string_equal(amt_status_name(2063), "INVALID_CERT");
	assert_string_equal(amt_status_name(2066), "UNSUPPORTED");
	assert_string_equal(amt_status_name(2068), "NOT_FOUND");
	assert_string_equal(amt_status_name(23), "MAX_LIMIT_REACHED");
	assert_string_equal(amt_status_name(16), "NOT_PERMITTED");
	assert_string_equal(amt_status_name(2082), "OPERATION_IN_PROGRESS");
	assert_string_equal(amt_status_name(12345), "UNKNOWN");
	assert_string_equal(amt_status_name(-1), "UNKNOWN");
}

static void
check_enum(const char *rel, const char *want)
{
	size_t len;
	char *x = fx_load(rel, &len), *ctx = NULL;

	assert_int_equal(amt_parse_enumerate(x, len, &ctx), 0);
	assert_string_equal(ctx, want);
	free(ctx);
	free(x);
}

static void
test_enumerate_responses(void **state)
{
	(void)state;
	check_enum("amt/publickey/certificate/enumerate.xml",
	    "CB000000-0000-0000-0000-000000000000");
	check_enum("amt/tls/settingdata/enumerate.xml",
	    "CA000000-0000-0000-0000-000000000000");
	/* Every enumerate fixture we rely on yields a context. */
	{
		static const char *const rels[] = {
			"amt/publickey/management/enumerate.xml",
			"amt/publicprivate/enumerate.xml",
			"amt/tls/credentialcontext/enumerate.xml",
			"amt/tls/protocolendpointcollection/enumerate.xml",
			"amt/general/enumerate.xml",
			"amt/setupandconfiguration/enumerate.xml",
			"amt/timesynchronization/enumerate.xml",
		};
		size_t i, len;
		char *x, *ctx;

		for (i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
			x = fx_load(rels[i], &len);
			ctx = NULL;
			assert_int_equal(amt_parse_enumerate(x, len, &ctx), 0);
			assert_int_equal(strlen(ctx), 36);
			assert_int_equal(ctx[8], '-');
			free(ctx);
			free(x);
		}
	}
}

static void
test_pull_certs(void **state)
{
	struct amt_cert *v = NULL;
	size_t n = 0, len, i;
	char *x = fx_load("amt/publickey/certificate/pull.xml", &len), *ctx = NULL;
	const unsigned char *p;
	X509 *c;
	int eos = 0;

	(void)state;
	assert_int_equal(amt_parse_pull_certs(x, len, &v, &n, &ctx, &eos), 0);
	assert_true(eos);
	assert_null(ctx);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++) {
		char want[64];

		snprintf(want, sizeof(want), "Intel(r) AMT Certificate: Handle: %zu", i);
		assert_string_equal(v[i].instance_id, want);
		assert_string_equal(v[i].subject, "C=unknown,O=unknown,CN=MPSRoot-0af1d5");
		assert_string_equal(v[i].issuer, "C=unknown,O=unknown,CN=MPSRoot-0af1d5");
		assert_int_equal(v[i].read_only, 0);	/* absent in this firmware */
		assert_true(v[i].der_len > 0 && v[i].der_len <= AMTCA_AMT_CERT_DER_MAX);
		p = v[i].der;
		c = d2i_X509(NULL, &p, (long)v[i].der_len);
		assert_non_null(c);
		assert_ptr_equal(p, v[i].der + v[i].der_len);
		X509_free(c);
	}
	/* TrustedRootCertficate (sic) */
	assert_int_equal(v[0].trusted_root, 1);
	assert_int_equal(v[1].trusted_root, 0);
	assert_int_equal(v[2].trusted_root, 1);
	/* Appends: a second page adds to the same array. */
	assert_int_equal(amt_parse_pull_certs(x, len, &v, &n, &ctx, &eos), 0);
	assert_int_equal(n, 6);
	amt_certs_free(v, n);
	free(x);
}

static void
test_pull_keys(void **state)
{
	struct amt_key *v = NULL;
	size_t n = 0, len, i;
	char *x = fx_load("amt/publicprivate/pull.xml", &len), *ctx = NULL;
	int eos = 0;

	(void)state;
	assert_int_equal(amt_parse_pull_keys(x, len, &v, &n, &ctx, &eos), 0);
	assert_true(eos);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		char want[64];

		snprintf(want, sizeof(want), "Intel(r) AMT Key: Handle: %zu", i);
		assert_string_equal(v[i].instance_id, want);
		/* PKCS#1 RSAPublicKey: SEQUENCE { n, e }, 270 bytes for RSA-2048 */
		assert_int_equal(v[i].der_len, 270);
		assert_int_equal(v[i].der[0], 0x30);
		assert_non_null(v[i].pub);
		assert_int_equal(EVP_PKEY_get_base_id(v[i].pub), EVP_PKEY_RSA);
		assert_int_equal(EVP_PKEY_get_bits(v[i].pub), 2048);
	}
	amt_keys_free(v, n);
	free(x);
}

static void
test_der_pubkey_forms(void **state)
{
	struct amt_key *v = NULL;
	size_t n = 0, len;
	char *x = fx_load("amt/publicprivate/pull.xml", &len), *ctx = NULL;
	unsigned char *spki = NULL, junk[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
	EVP_PKEY *k = NULL;
	int eos, slen;

	(void)state;
	assert_int_equal(amt_parse_pull_keys(x, len, &v, &n, &ctx, &eos), 0);
	/* The same key as SPKI (what some firmware sends) parses too. */
	slen = i2d_PUBKEY(v[0].pub, &spki);
	assert_true(slen > 270);
	assert_int_equal(amt_der_pubkey(spki, (size_t)slen, &k), 0);
	assert_int_equal(EVP_PKEY_eq(k, v[0].pub), 1);
	EVP_PKEY_free(k);
	k = NULL;
	/* Trailing garbage and junk are refused. */
	assert_int_equal(amt_der_pubkey(v[0].der, v[0].der_len - 1, &k),
	    AMTCA_E_AMT_PARSE);
	assert_int_equal(amt_der_pubkey(junk, sizeof(junk), &k), AMTCA_E_AMT_PARSE);
	assert_null(k);
	OPENSSL_free(spki);
	amt_keys_free(v, n);
	free(x);
}

static void
test_pull_tls_settings(void **state)
{
	struct amt_tls_setting *v = NULL;
	size_t n = 0, len;
	char *x = fx_load("amt/tls/settingdata/pull.xml", &len), *ctx = NULL;
	int eos = 0;

	(void)state;
	assert_int_equal(amt_parse_pull_tls_settings(x, len, &v, &n, &ctx, &eos), 0);
	assert_true(eos);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].instance_id, AMT_TLS_REMOTE);
	assert_string_equal(v[0].element_name, AMT_TLS_REMOTE);
	assert_int_equal(v[0].enabled, 0);
	assert_int_equal(v[0].mutual_auth, 0);
	assert_int_equal(v[0].accept_non_secure, 0);
	assert_int_equal(v[0].non_secure_supported, -1);	/* omitted */
	assert_string_equal(v[1].instance_id, AMT_TLS_LOCAL);
	assert_int_equal(v[1].enabled, 0);
	assert_int_equal(v[1].accept_non_secure, 1);
	amt_tls_settings_free(v, n);
	free(x);
}

static void
test_tls_setting_get_put(void **state)
{
	struct amt_tls_setting s;
	size_t len;
	char *x;

	(void)state;
	x = fx_load("amt/tls/settingdata/get.xml", &len);
	assert_int_equal(amt_parse_tls_setting(x, len, &s), 0);
	assert_string_equal(s.instance_id, AMT_TLS_REMOTE);
	assert_int_equal(s.non_secure_supported, -1);
	amt_tls_setting_clear(&s);
	free(x);
	/* Hand-edited upstream: echoes Enabled=false. */
	x = fx_load("amt/tls/settingdata/put.xml", &len);
	assert_int_equal(amt_parse_tls_setting(x, len, &s), 0);
	assert_string_equal(s.instance_id, AMT_TLS_REMOTE);
	assert_int_equal(s.enabled, 0);
	assert_int_equal(s.accept_non_secure, 0);
	assert_int_equal(s.mutual_auth, 0);
	amt_tls_setting_clear(&s);
	free(x);
}

static void
test_tls_context(void **state)
{
	char **v = NULL, *ctx = NULL, *x;
	struct wsman_msg *m = NULL;
	struct amt_error e;
	size_t n = 0, len;
	int eos = 0;

	(void)state;
	x = fx_load("amt/tls/credentialcontext/pull.xml", &len);
	assert_int_equal(amt_parse_pull_tls_context(x, len, &v, &n, &ctx, &eos), 0);
	assert_true(eos);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "Intel(r) AMT Certificate: Handle: 3");
	amt_tls_context_handles_free(v, n);
	free(x);
	/* Create and Put responses: accepted as success (no fault). */
	x = fx_load("amt/tls/credentialcontext/create.xml", &len);
	assert_int_equal(amt_response_check(200, x, len, "Create", &e, &m), 0);
	assert_non_null(wsman_child(m->body, WSMAN_NS_WXF, "ResourceCreated"));
	wsman_msg_free(m);
	free(x);
	x = fx_load("amt/tls/credentialcontext/put.xml", &len);
	assert_int_equal(amt_response_check(200, x, len, "Put", &e, &m), 0);
	wsman_msg_free(m);
	free(x);
}

static void
check_output(const char *rel, const char *cls, const char *method,
    const char *field, const char *want)
{
	size_t len;
	char *x = fx_load(rel, &len), *val = NULL;
	int rv = -2;

	assert_int_equal(amt_parse_output(x, len, cls, method, field, &val, &rv), 0);
	assert_int_equal(rv, 0);
	if (want != NULL)
		assert_string_equal(val, want);
	else
		assert_null(val);
	free(val);
	free(x);
}

static void
test_method_outputs(void **state)
{
	(void)state;
	check_output("amt/publickey/management/generatekeypair.xml",
	    "AMT_PublicKeyManagementService", "GenerateKeyPair", "KeyPair",
	    "Intel(r) AMT Key: Handle: 0");
	check_output("amt/publickey/management/addcertificate.xml",
	    "AMT_PublicKeyManagementService", "AddCertificate",
	    "CreatedCertificate", "Intel(r) AMT Certificate: Handle: 1");
	check_output("amt/publickey/management/addtrustedrootcertificate.xml",
	    "AMT_PublicKeyManagementService", "AddTrustedRootCertificate",
	    "CreatedCertificate", "Intel(r) AMT Certificate: Handle: 2");
	/* Fixture's EPR names AMT_PublicKeyCertificate (an upstream edit):
	 * only the InstanceID selector is read. */
	check_output("amt/publickey/management/addkey.xml",
	    "AMT_PublicKeyManagementService", "AddKey", "CreatedKey",
	    "Intel(r) AMT Key: Handle: 1");
	/* Value hand-edited upstream ("test?"); the client would reject it
	 * as base64 DER, the parser just returns it. */
	check_output("amt/publickey/management/generatepkcs10requestex.xml",
	    "AMT_PublicKeyManagementService", "GeneratePKCS10RequestEx",
	    "SignedCertificateRequest", "test?");
	check_output("amt/setupandconfiguration/commitchanges.xml",
	    "AMT_SetupAndConfigurationService", "CommitChanges", NULL, NULL);
	check_output("amt/timesynchronization/getlowaccuracytimesynch.xml",
	    "AMT_TimeSynchronizationService", "GetLowAccuracyTimeSynch", "Ta0",
	    "1704586865");
	check_output("amt/timesynchronization/sethighaccuracytimesynch.xml",
	    "AMT_TimeSynchronizationService", "SetHighAccuracyTimeSynch", NULL,
	    NULL);
}

static void
test_output_nonzero_and_wrong(void **state)
{
	size_t len;
	char *x = fx_load("amt/publickey/management/addcertificate.xml", &len);
	char *y, *p, *val = NULL;
	int rv;

	(void)state;
	/* Wrong method: no such _OUTPUT. */
	assert_int_equal(amt_parse_output(x, len, "AMT_PublicKeyManagementService",
	    "AddKey", "CreatedKey", &val, &rv), AMTCA_E_AMT_PARSE);
	/* ReturnValue 2058: reported, not an error here, no value. */
	y = strdup(x);
	p = strstr(y, "<g:ReturnValue>0<");
	assert_non_null(p);
	memcpy(p, "<g:ReturnValue>8<", 17);
	assert_int_equal(amt_parse_output(y, strlen(y),
	    "AMT_PublicKeyManagementService", "AddCertificate",
	    "CreatedCertificate", &val, &rv), 0);
	assert_int_equal(rv, 8);
	assert_null(val);
	free(y);
	free(x);
}

static void
test_general(void **state)
{
	struct amt_general g;
	size_t len;
	char *x = fx_load("amt/general/get.xml", &len), *v = NULL;

	(void)state;
	assert_int_equal(amt_parse_general(x, len, &g), 0);
	assert_string_equal(g.hostname, "Test Host Name");
	assert_string_equal(g.domainname, "Test Domain Name");
	assert_string_equal(g.realm, "Digest:F3EB554784E729164447A89F60B641C5");
	assert_null(g.version);
	amt_general_clear(&g);
	free(x);
	assert_int_equal(amt_server_version(
	    "Intel(R) Active Management Technology 15.0.23.1706", &v), 0);
	assert_string_equal(v, "15.0.23.1706");
	free(v);
	assert_int_equal(amt_server_version("nginx", &v), AMTCA_E_AMT_PARSE);
	assert_null(v);
}

static void
test_response_check(void **state)
{
	struct wsman_msg *m = NULL;
	struct amt_error e;
	size_t len;
	char *x = fx_load("amt/general/get.xml", &len);

	(void)state;
	/* Fault body with HTTP 400: FAULT, subcode + reason recorded. */
	assert_int_equal(amt_response_check(400, cap_already_exists,
	    strlen(cap_already_exists), "Create AMT_TLSCredentialContext", &e,
	    &m), AMTCA_E_AMT_FAULT);
	assert_null(m);
	assert_int_equal(e.http_status, 400);
	assert_string_equal(e.fault_subcode, "AlreadyExists");
	assert_string_equal(e.fault_reason,
	    "The sender attempted to create a resource which already exists.");
	assert_non_null(strstr(amtca_errmsg(AMTCA_E_AMT_FAULT), "AlreadyExists"));
	/* Fault body with HTTP 200 is a fault too. */
	assert_int_equal(amt_response_check(200, cap_destination_unreachable,
	    strlen(cap_destination_unreachable), "Get", &e, &m), AMTCA_E_AMT_FAULT);
	assert_string_equal(e.fault_subcode, "DestinationUnreachable");
	/* Non-fault body with 500: HTTP. */
	assert_int_equal(amt_response_check(500, x, len, "Put", &e, &m),
	    AMTCA_E_AMT_HTTP);
	assert_int_equal(e.http_status, 500);
	/* HTML with 200: PARSE (refused DOCTYPE). */
	assert_int_equal(amt_response_check(200, cap_401_body,
	    strlen(cap_401_body), "Get", &e, &m), AMTCA_E_AMT_PARSE);
	assert_int_equal(amt_response_check(200, NULL, 0, "Get", &e, &m),
	    AMTCA_E_AMT_PARSE);
	assert_int_equal(amt_response_check(200, x, len, "Get", NULL, &m), 0);
	wsman_msg_free(m);
	free(x);
}

/* Items beyond AMTCA_AMT_ITEMS_MAX are refused. */
static void
test_items_cap(void **state)
{
	struct amt_tls_setting *v = NULL;
	size_t n = AMTCA_AMT_ITEMS_MAX - 1, len;
	char *x = fx_load("amt/tls/settingdata/pull.xml", &len), *ctx = NULL;
	int eos;

	(void)state;
	assert_int_equal(amt_parse_pull_tls_settings(x, len, &v, &n, &ctx, &eos),
	    AMTCA_E_LIMIT);
	/* One was appended (slot index 255) before the cap hit. */
	assert_int_equal(n, AMTCA_AMT_ITEMS_MAX);
	amt_tls_setting_clear(&v[n - 1]);
	free(v);
	free(x);
}

/* Every fixture we ship parses as a non-fault envelope. */
static int nfix;

static int
each_fixture(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	struct wsman_msg *m = NULL;
	unsigned char *buf = NULL;
	size_t len;

	(void)sb;
	(void)f;
	if (flag != FTW_F || strstr(path, ".xml") == NULL)
		return 0;
	assert_int_equal(amtca_file_read(path, AMTCA_WSMAN_BODY_MAX, &buf, &len), 0);
	if (wsman_msg_parse((char *)buf, len, &m) != 0) {
		fprintf(stderr, "fixture does not parse: %s\n", path);
		fail();
	}
	assert_false(m->is_fault);
	assert_non_null(m->action);
	wsman_msg_free(m);
	free(buf);
	nfix++;
	return 0;
}

static void
test_all_fixtures_parse(void **state)
{
	const char *base = getenv("AMTCA_FIXTURES");
	char path[1024];

	(void)state;
	snprintf(path, sizeof(path), "%s/go-wsman-messages",
	    base != NULL && *base != '\0' ? base : "tests/fixtures");
	assert_int_equal(nftw(path, each_fixture, 16, FTW_PHYS), 0);
	assert_true(nfix >= 50);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_req_generate_key_pair),
		cmocka_unit_test(test_req_commit),
		cmocka_unit_test(test_req_pkcs10),
		cmocka_unit_test(test_req_add_key_and_certs),
		cmocka_unit_test(test_req_tls_context_create),
		cmocka_unit_test(test_req_tls_setting_put),
		cmocka_unit_test(test_req_pull_and_time),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_enumerate_responses),
		cmocka_unit_test(test_pull_certs),
		cmocka_unit_test(test_pull_keys),
		cmocka_unit_test(test_der_pubkey_forms),
		cmocka_unit_test(test_pull_tls_settings),
		cmocka_unit_test(test_tls_setting_get_put),
		cmocka_unit_test(test_tls_context),
		cmocka_unit_test(test_method_outputs),
		cmocka_unit_test(test_output_nonzero_and_wrong),
		cmocka_unit_test(test_general),
		cmocka_unit_test(test_response_check),
		cmocka_unit_test(test_items_cap),
		cmocka_unit_test(test_all_fixtures_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
