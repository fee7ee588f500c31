/*
 * Serial numbers: AMTCA_SERIAL_BYTES random octets, first octet in 0x01-0x7f
 * so the INTEGER is positive and its encoding always exactly that long.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/util.h"

int
ca_serial_draw(unsigned char b[AMTCA_SERIAL_BYTES])
{
	if (RAND_bytes(b, AMTCA_SERIAL_BYTES) != 1)
		return amtca_fail_ssl(AMTCA_E_INTERNAL, "CSPRNG failure");
	/* Redraw rather than force a bit, so the first octet stays uniform. */
	while ((b[0] &= 0x7f) == 0)
		if (RAND_bytes(b, 1) != 1)
			return amtca_fail_ssl(AMTCA_E_INTERNAL, "CSPRNG failure");
	return 0;
}

int
ca_serial_random(ASN1_INTEGER **out)
{
	unsigned char b[AMTCA_SERIAL_BYTES];
	ASN1_INTEGER *ai = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((r = ca_serial_draw(b)) != 0) {
		ret = r;
		goto out;
	}
	if ((ai = ASN1_INTEGER_new()) == NULL ||
	    !ASN1_STRING_set(ai, b, sizeof(b))) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	*out = ai;
	ai = NULL;
	ret = 0;
out:
	ASN1_INTEGER_free(ai);
	return ret;
}

/* As i2a_ASN1_INTEGER (what `openssl x509 -serial` uses): "00" for zero. */
int
ca_serial_hex(const ASN1_INTEGER *serial, char **out)
{
	const unsigned char *p;
	char *hex = NULL, *s = NULL;
	size_t len;
	int r, neg, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (serial == NULL) {
		ret = AMTCA_E_USAGE;
		goto out;
	}
	p = ASN1_STRING_get0_data(serial);
	len = (size_t)ASN1_STRING_length(serial);
	neg = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER;
	if (len == 0) {
		p = (const unsigned char *)"\0";
		len = 1;
	}
	if ((r = amtca_hex_encode(p, len, &hex)) != 0) {
		ret = r;
		goto out;
	}
	if (neg) {
		if (asprintf(&s, "-%s", hex) == -1) {
			s = NULL;
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	} else {
		s = hex;
		hex = NULL;
	}
	*out = s;
	ret = 0;
out:
	free(hex);
	return ret;
}
