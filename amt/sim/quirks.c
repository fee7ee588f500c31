/*
 * Firmware facts that change with the AMT version, as data.
 *
 * Each row is one fact the simulator enforces, the range of AMT major
 * versions where it holds by default, and where we read it.  Facts about
 * AMT 22 come from public statements and are not verified on hardware
 * (docs/amtsim.md): when they turn out wrong, change a row or pass
 * --amt-quirk NAME=on|off, not code.
 */
#include "amt/sim/sim.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEVER INT_MAX

static const struct sim_quirk_def {
	enum sim_quirk q;
	const char *name;
	int from_major;			/* on by default from this version */
	int before_major;		/* ... up to, not including, this one */
	const char *what;
} quirks[] = {
	{ SIM_Q_KEYGEN_RSA2048, "keygen-rsa2048", 0, 22,
	  "GenerateKeyPair KeyAlgorithm 0 KeyLength 2048 (RSA-2048) accepted "
	  "(AMT 22: blocked, toolkit design record 2026-10)" },
	{ SIM_Q_KEYGEN_RSA3072, "keygen-rsa3072", 22, NEVER,
	  "GenerateKeyPair KeyAlgorithm 0 KeyLength 3072 (RSA-3072) accepted "
	  "(Intel tracking issue 2026-06)" },
	{ SIM_Q_KEYGEN_ECC384, "keygen-ecc384", 22, NEVER,
	  "GenerateKeyPair KeyAlgorithm 1 KeyLength 384 (ECC-384) accepted "
	  "(SDK ValueMap {0,1}; toolkit design record 2026-10)" },
	{ SIM_Q_CSR_SHA1, "csr-sha1", 0, 18,
	  "GeneratePKCS10RequestEx SigningAlgorithm 0 (SHA-1) accepted "
	  "(removed in CSME 18.0)" },
	{ SIM_Q_CSR_SHA256, "csr-sha256", 0, 22,
	  "GeneratePKCS10RequestEx SigningAlgorithm 1 (SHA-256) accepted "
	  "(AMT 22 disallows SHA-256)" },
	{ SIM_Q_CSR_SHA384, "csr-sha384", 22, NEVER,
	  "GeneratePKCS10RequestEx SigningAlgorithm 2 accepted as SHA-384 "
	  "(proposed, rpc-go #971; not confirmed)" },
	{ SIM_Q_REFUSE_WEAK_LEAF, "refuse-weak-leaf-key", 22, NEVER,
	  "leaf certificates with RSA keys under 3072 bits or EC keys under "
	  "384 bits refused at AddCertificate (2062) and bind (HTTP 500, "
	  "status 1), never served" },
	{ SIM_Q_REFUSE_SHA256_LEAF, "refuse-sha256-leaf", 22, NEVER,
	  "leaf certificates signed with a digest shorter than SHA-384 "
	  "refused at AddCertificate (2063) and bind" },
	{ SIM_Q_REFUSE_SHA256_CHAIN, "refuse-sha256-chain", NEVER, NEVER,
	  "CA certificates (AddTrustedRootCertificate, AddCertificate of a "
	  "CA) signed with a digest shorter than SHA-384 refused (2063); "
	  "unknown for AMT 22, so off unless asked for" },
};
#define NQUIRKS (sizeof(quirks) / sizeof(quirks[0]))

/* The major number of "X.Y.Z.B" (0 when it does not parse). */
static int
amt_major(const char *version)
{
	char *end = NULL;
	long v;

	if (version == NULL)
		return 0;
	v = strtol(version, &end, 10);
	if (end == version || v < 0 || v > 1000)
		return 0;
	return (int)v;
}

unsigned
sim_quirks_default(const char *amt_version)
{
	int major = amt_major(amt_version);
	unsigned q = 0;
	size_t i;

	for (i = 0; i < NQUIRKS; i++)
		if (major >= quirks[i].from_major && major < quirks[i].before_major)
			q |= 1u << quirks[i].q;
	return q;
}

int
sim_quirk_set(unsigned *q, const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t i, n;

	if (eq == NULL)
		return AMTCA_E_USAGE;
	n = (size_t)(eq - arg);
	for (i = 0; i < NQUIRKS; i++) {
		if (strlen(quirks[i].name) != n ||
		    strncmp(quirks[i].name, arg, n) != 0)
			continue;
		if (strcmp(eq + 1, "on") == 0)
			*q |= 1u << quirks[i].q;
		else if (strcmp(eq + 1, "off") == 0)
			*q &= ~(1u << quirks[i].q);
		else
			return AMTCA_E_USAGE;
		return 0;
	}
	return AMTCA_E_USAGE;
}

void
sim_quirks_print(FILE *fp, unsigned q)
{
	size_t i;

	for (i = 0; i < NQUIRKS; i++)
		fprintf(fp, "%-22s %-3s %s\n", quirks[i].name,
		    (q & (1u << quirks[i].q)) ? "on" : "off", quirks[i].what);
}
