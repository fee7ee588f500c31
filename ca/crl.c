/*
 * The intermediate's CRL over the store's revocations; ca_crl_sign()
 * (ca/crlsign.c) writes and signs it.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"
#include "ca/store.h"

#include <stdlib.h>
#include <string.h>

/* Largest serial accepted from the store (RFC 5280: 20 octets). */
#define SERIAL_MAX_OCTETS 20

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Uppercase hex (odd length allowed) into big-endian octets. */
static int
serial_octets(const char *hex, unsigned char out[SERIAL_MAX_OCTETS],
    size_t *len)
{
	size_t n = strlen(hex), i, o = 0;
	int hi, lo;

	if (n == 0 || n > 2 * SERIAL_MAX_OCTETS)
		return -1;
	i = 0;
	if (n % 2 == 1) {
		if ((lo = hexval(hex[0])) < 0)
			return -1;
		out[o++] = (unsigned char)lo;
		i = 1;
	}
	for (; i < n; i += 2) {
		if ((hi = hexval(hex[i])) < 0 || (lo = hexval(hex[i + 1])) < 0)
			return -1;
		out[o++] = (unsigned char)(hi << 4 | lo);
	}
	*len = o;
	return 0;
}

int
ca_crl_create(struct ca *ca, int days, int pem, unsigned char **out,
    size_t *outlen)
{
	struct store_cert *revoked = NULL;
	struct ca_crl_entry *e = NULL;
	unsigned char (*ser)[SERIAL_MAX_OCTETS] = NULL;
	size_t nrevoked = 0, n = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*outlen = 0;
	if (ca == NULL || ca->store == NULL) {
		ret = amtca_fail(AMTCA_E_STORE, "no issuance database to list "
		    "revocations from");
		goto out;
	}
	if (days < 1 || days > AMTCA_DAYS_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "CRL validity of %d days is out "
		    "of range (1-%d)", days, AMTCA_DAYS_MAX);
		goto out;
	}
	if ((r = store_cert_list_revoked_by(ca->store, ca->keyid, ca->first,
	    &revoked, &nrevoked)) != 0) {
		ret = r;
		goto out;
	}
	if (nrevoked > 0 && ((e = calloc(nrevoked, sizeof(*e))) == NULL ||
	    (ser = calloc(nrevoked, sizeof(*ser))) == NULL)) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < nrevoked; i++) {
		if (serial_octets(revoked[i].serial, ser[n], &e[n].serial_len) != 0)
			continue;	/* not ours to name; store_cert_add vets serials */
		e[n].serial = ser[n];
		e[n].when = revoked[i].revoked_at;
		e[n].reason = revoked[i].revoke_reason;
		n++;
	}
	ret = ca_crl_sign(ca->signer, &ca->alg, ca->algid_issuer,
	    ca->algid_issuer_len, ca->aki, ca->aki_len, e, n, days, pem, out,
	    outlen);
out:
	store_certs_free(revoked, nrevoked);
	free(e);
	free(ser);
	return ret;
}
