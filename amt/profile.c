/*
 * Profiles by AMT version: which device key to ask for, how AMT signs the
 * CSR, which digest signs the leaf, and how strong the CA chain should be.
 *
 * Rows, not branches: when what is public about a firmware changes (AMT 22's
 * is proposal-grade: the Device Management Toolkit's design record of
 * 2026-10, Intel's tracking issue of 2026-06), a row changes.
 */
#include "amt/amt.h"

#include <stdlib.h>
#include <string.h>

static const struct amt_profile profiles[] = {
	{
		.name = "AMT 21 and older",
		.major_from = 0,
		.keys = { { AMT_KEYALG_RSA, 2048, "RSA-2048" } },
		.nkeys = 1,
		.csr_sigalg = 1,		/* SHA256-RSA */
		.leaf_sha384 = 0,		/* the CA key's default */
		.min_rsa_bits = 2048,
		.min_ec_bits = 256,
		.chain_sha384 = 0,
	},
	{
		/* "disallows AES-128, SHA-256, RSA-2048 and ECC-256";
		 * RSA-2048 key generation blocked, ECC-384 the generated
		 * type; the toolkit plans SHA-384 and RSA-3072. */
		.name = "AMT 22 and later",
		.major_from = 22,
		.keys = { { AMT_KEYALG_ECC, 384, "ECC-384" },
			  { AMT_KEYALG_RSA, 3072, "RSA-3072" } },
		.nkeys = 2,
		.csr_sigalg = 2,		/* SHA-384: proposed, not confirmed */
		.leaf_sha384 = 1,
		.min_rsa_bits = 3072,
		.min_ec_bits = 384,
		.chain_sha384 = 1,
	},
};
#define NPROFILES (sizeof(profiles) / sizeof(profiles[0]))

const struct amt_profile *
amt_profile_for(const char *version)
{
	const struct amt_profile *best = &profiles[0];
	char *end = NULL;
	long major = -1;
	size_t i;

	if (version != NULL && version[0] >= '0' && version[0] <= '9')
		major = strtol(version, &end, 10);
	if (major < 0 || major > 1000 || (*end != '\0' && *end != '.'))
		return best;
	for (i = 0; i < NPROFILES; i++)
		if (profiles[i].major_from <= major &&
		    profiles[i].major_from >= best->major_from)
			best = &profiles[i];
	return best;
}

int
amt_profile_key_weak(const struct amt_profile *p, EVP_PKEY *pk)
{
	if (pk == NULL)
		return 1;
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA)
		return EVP_PKEY_get_bits(pk) < p->min_rsa_bits;
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC)
		return EVP_PKEY_get_bits(pk) < p->min_ec_bits;
	return 1;
}

int
amt_profile_keygen_refusal(int pt)
{
	/* 2066 UNSUPPORTED is what firmware answers for an unknown
	 * algorithm or length; 2062 (InvalidKeyLength) and 36 are the other
	 * plausible refusals of a key type.  None creates a key. */
	return pt == AMT_PT_UNSUPPORTED || pt == AMT_PT_INVALID_KEY ||
	    pt == AMT_PT_INVALID_PARAMETER;
}
