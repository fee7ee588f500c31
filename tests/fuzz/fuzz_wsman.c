/*
 * libFuzzer target: every parser of AMT WS-MAN responses (and of requests
 * as the simulator sees them) over arbitrary bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amt/amt.h"
#include "amt/wsman.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct wsman_msg *m = NULL;
	struct amt_cert *certs = NULL;
	struct amt_key *keys = NULL;
	struct amt_tls_setting *tls = NULL, one;
	struct amt_general g;
	struct amt_error e;
	char **ctxs = NULL, *ctx = NULL, *val = NULL, *s;
	size_t n = 0;
	int rv, eos;

	if (wsman_msg_parse(buf, size, &m) == 0) {
		(void)wsman_msg_selector(m, "InstanceID");
		(void)wsman_msg_selector(m, "ElementInContext");
		(void)wsman_return_value(m, &rv);
		wsman_msg_free(m);
		m = NULL;
	}
	if (amt_response_check(200, buf, size, "fuzz", &e, &m) == 0)
		wsman_msg_free(m);
	m = NULL;

	if (amt_parse_enumerate(buf, size, &ctx) == 0)
		free(ctx);
	ctx = NULL;
	n = 0;
	(void)amt_parse_pull_certs(buf, size, &certs, &n, &ctx, &eos);
	amt_certs_free(certs, n);
	free(ctx);
	ctx = NULL;
	n = 0;
	(void)amt_parse_pull_keys(buf, size, &keys, &n, &ctx, &eos);
	amt_keys_free(keys, n);
	free(ctx);
	ctx = NULL;
	n = 0;
	(void)amt_parse_pull_tls_settings(buf, size, &tls, &n, &ctx, &eos);
	amt_tls_settings_free(tls, n);
	free(ctx);
	ctx = NULL;
	n = 0;
	(void)amt_parse_pull_tls_context(buf, size, &ctxs, &n, &ctx, &eos);
	amt_tls_context_handles_free(ctxs, n);
	free(ctx);
	ctx = NULL;
	if (amt_parse_general(buf, size, &g) == 0)
		amt_general_clear(&g);
	if (amt_parse_tls_setting(buf, size, &one) == 0)
		amt_tls_setting_clear(&one);
	(void)amt_parse_output(buf, size, "AMT_PublicKeyManagementService",
	    "GenerateKeyPair", "KeyPair", &val, &rv);
	free(val);
	val = NULL;
	(void)amt_parse_output(buf, size, "AMT_TimeSynchronizationService",
	    "GetLowAccuracyTimeSynch", "Ta0", &val, &rv);
	free(val);
	val = NULL;
	(void)amt_parse_output(buf, size, "AMT_SetupAndConfigurationService",
	    "CommitChanges", NULL, NULL, &rv);
	/* DERKey and Server: header parsers take raw bytes / strings too. */
	{
		EVP_PKEY *k = NULL;

		if (amt_der_pubkey(data, size, &k) == 0)
			EVP_PKEY_free(k);
	}
	if (size < 512 && (s = malloc(size + 1)) != NULL) {
		memcpy(s, data, size);
		s[size] = '\0';
		if (amt_server_version(s, &val) == 0)
			free(val);
		free(s);
	}
	return 0;
}
