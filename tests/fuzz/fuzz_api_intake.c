/*
 * libFuzzer target: the admin API's request bodies (enroll/serve/
 * api_intake.c: the depth scan, POST /api/v1/jobs and .../revoke) over
 * arbitrary bytes.  Every accepted job must hold sane devices.  The file
 * is compiled in here: it is part of the service, not the library.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enroll/serve/api_intake.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const doms[] = { "example.test" };
	struct ca_policy pol;
	struct api_job_req jr;
	size_t i, k;
	int reason;

	ca_policy_init(&pol);
	pol.domains = doms;
	pol.ndomains = 1;
	(void)api_json_depth(data, size, AMTCA_API_JSON_DEPTH);
	if (api_job_parse(data, size, &pol, &jr) == 0) {
		if (jr.n == 0 || jr.n > AMTCA_API_JOB_DEVICES_MAX ||
		    jr.concurrency < 1 || jr.concurrency > AMTCA_API_CONCURRENCY_MAX)
			abort();
		for (i = 0; i < jr.n; i++) {
			if (jr.hosts[i].fqdn == NULL ||
			    strlen(jr.hosts[i].fqdn) > AMTCA_FQDN_MAX ||
			    !api_cred_name_valid(jr.hosts[i].credential) ||
			    jr.hosts[i].password_file != NULL ||
			    jr.hosts[i].port < 0 || jr.hosts[i].port > 65535 ||
			    jr.hosts[i].tls_port < 0 || jr.hosts[i].tls_port > 65535)
				abort();
			for (k = 0; k < i; k++)
				if (strcmp(jr.hosts[k].fqdn, jr.hosts[i].fqdn) == 0)
					abort();
		}
		api_job_req_clear(&jr);
	}
	if (api_revoke_parse(data, size, &reason) == 0 &&
	    (reason < 0 || reason > 10 || reason == 7 || reason == 8))
		abort();
	amtca_err_clear();
	return 0;
}
