/*
 * libFuzzer target: the fleet's hosts file parser (enroll/hosts.c) over
 * arbitrary bytes, with and without command-line defaults and a domain
 * policy.  Every accepted file must hold sane rows.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "enroll/hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct fleet_host *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (h[i].fqdn == NULL || strlen(h[i].fqdn) > AMTCA_FQDN_MAX ||
		    h[i].user == NULL || h[i].password_file == NULL ||
		    h[i].password_file[0] != '/' || h[i].line < 2 ||
		    h[i].port < 0 || h[i].port > 65535 ||
		    h[i].tls_port < 0 || h[i].tls_port > 65535)
			abort();
		if (i > 0 && strcmp(h[i - 1].fqdn, h[i].fqdn) == 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const doms[] = { "example.test" };
	struct hosts_defaults d0 = { NULL, NULL, NULL, 0 };
	struct hosts_defaults d1 = { "admin", "/etc/amtca/amt-password", NULL, 0 };
	struct ca_policy pol;
	struct fleet_host *h = NULL;
	size_t n = 0;

	if (hosts_parse((const char *)data, size, &d0, &h, &n) == 0)
		check(h, n);
	hosts_free(h, n);
	h = NULL;
	n = 0;
	ca_policy_init(&pol);
	pol.domains = doms;
	pol.ndomains = 1;
	d1.policy = &pol;
	if (hosts_parse((const char *)data, size, &d1, &h, &n) == 0)
		check(h, n);
	hosts_free(h, n);
	return 0;
}
