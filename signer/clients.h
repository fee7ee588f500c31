/*
 * signer/clients.h: admin and EST client records, the pieces the operator's
 * commands (`amtca est-client`, `amtca admin`) share with the signer's
 * authentication (signer/auth.c).  The records themselves live in the CA
 * store (ca/store.h, store_client_*); only the signer and the operator's
 * in-process commands write them.
 */
#ifndef AMTCA_SIGNER_CLIENTS_H
#define AMTCA_SIGNER_CLIENTS_H

#include <stddef.h>

#include "ca/ca.h"
#include "common/err.h"
#include "common/limits.h"

/*
 * Hash a Basic password for a client record: Argon2id with
 * AMTCA_ARGON2_{T,M_KIB,P}, a fresh AMTCA_ARGON2_SALT-byte salt, as a PHC
 * string ("$argon2id$v=19$m=...,t=...,p=...$salt$hash"), malloc'd.  The
 * password must be 1 to AMTCA_SECRET_MAX bytes.
 */
int sgn_password_hash(const char *password, char **phc) AMTCA_WUR;

/*
 * Check one --allow entry: a name or a suffix (it then covers every name
 * below it, whole labels only), an FQDN under the CA's policy `p`,
 * lowercased into `out`.  AMTCA_E_FQDN / AMTCA_E_POLICY with a reason.
 */
int sgn_allow_check(const char *entry, const struct ca_policy *p,
    char out[AMTCA_FQDN_MAX + 1]) AMTCA_WUR;

/*
 * Does the allow entry `entry` cover `fqdn`?  Equal, or `fqdn` ends with
 * "." followed by `entry` (case-insensitive): "example.test" covers
 * "example.test" and "a.example.test", never "badexample.test".
 */
int sgn_allow_match(const char *entry, const char *fqdn);

#endif
