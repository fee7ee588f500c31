/*
 * libFuzzer target for amtsim's request handling: sim_handle() on one
 * device (reset to factory state per input, so inputs are independent),
 * and the server-side Digest parser on the same bytes as an
 * Authorization header.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amt/sim/sim.h"
#include "common/limits.h"

static struct sim_config cfg;
static struct sim_device *dev;

static void
init(void)
{
	cfg.user = "admin";
	cfg.http_port = SIM_HTTP_PORT;
	cfg.tls_port = SIM_TLS_PORT;
	cfg.store_max = 4;
	cfg.nonce_ttl_s = SIM_NONCE_TTL_S;
	cfg.lockout = 3;
	cfg.lockout_s = 1;
	cfg.keygen_busy = 1;
	snprintf(cfg.amt_version, sizeof(cfg.amt_version), "%s", SIM_AMT_VERSION);
	/* Every version's rules at once, so that inputs reach the ECC-384
	 * key, SHA-384 CSR and AMT 22 refusal paths too; RSA-3072 keygen
	 * stays off (a second of CPU per input). */
	cfg.quirks = (sim_quirks_default(cfg.amt_version) |
	    sim_quirks_default("22.0.0.1000")) & ~(1u << SIM_Q_KEYGEN_RSA3072);
	if (sim_device_new(&cfg, 0, "fuzz.example.test", "P@ssw0rd", &dev) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsman_buf out;
	char *hdr;
	int status = 0;

	if (dev == NULL)
		init();
	sim_device_reset(dev);
	wsman_buf_init(&out, AMTCA_WSMAN_BODY_MAX);
	if (sim_handle(dev, (const char *)data, size, &out, &status) == 0 &&
	    status != 0 && out.len == 0)
		abort();	/* an answer always has a body */
	wsman_buf_free(&out);

	if (size < 4096 && (hdr = malloc(size + 1)) != NULL) {
		memcpy(hdr, data, size);
		hdr[size] = '\0';
		(void)sim_auth_check(dev, "POST", "/wsman", hdr);
		free(hdr);
	}
	return 0;
}
