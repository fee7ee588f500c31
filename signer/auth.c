/*
 * signer/auth.c: requester authentication.  PLACEHOLDER until the EST and
 * admin client records land: only the local requester is known.
 */
#include <stdlib.h>
#include <string.h>

#include "signer/core.h"

int
sgn_core_auth_init(struct sgn_core *c)
{
	c->auth = NULL;
	return 0;
}

void
sgn_core_auth_free(struct sgn_core *c)
{
	c->auth = NULL;
}

int
sgn_core_auth(struct sgn_core *c, const struct sgn_who *who,
    struct sgn_client *out)
{
	memset(out, 0, sizeof(*out));
	if (who == NULL || who->kind != SGN_WHO_LOCAL)
		return amtca_fail(AMTCA_E_AUTH, "client authentication is not "
		    "available yet");
	if ((out->name = strdup(c->local_name != NULL ? c->local_name :
	    "local")) == NULL)
		return AMTCA_E_NOMEM;
	out->roles = SGN_ROLE_LOCAL;
	return 0;
}

int
sgn_core_allows(const struct sgn_client *cl, const char *fqdn)
{
	(void)cl;
	(void)fqdn;
	return 0;
}
