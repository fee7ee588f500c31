/*
 * signer/cred.c: AMT credentials sealed under a token key.  PLACEHOLDER
 * until the credential store lands.
 */
#include "signer/core.h"

int
sgn_core_cred_init(struct sgn_core *c)
{
	c->cred = NULL;
	return 0;
}

void
sgn_core_cred_free(struct sgn_core *c)
{
	c->cred = NULL;
}

int
sgn_core_cred_put(struct sgn_core *c, const char *name, const char *user,
    const char *password)
{
	(void)c; (void)name; (void)user; (void)password;
	return amtca_fail(AMTCA_E_INTERNAL, "credentials are not available yet");
}

int
sgn_core_cred_get(struct sgn_core *c, const char *name, const char *fqdn,
    char **user, char **password)
{
	(void)c; (void)name; (void)fqdn;
	*user = NULL;
	*password = NULL;
	return amtca_fail(AMTCA_E_INTERNAL, "credentials are not available yet");
}
