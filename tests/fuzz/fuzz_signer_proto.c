/*
 * libFuzzer target: the signer's wire decoder (signer/proto.c,
 * docs/PROTOCOL.signer).  The first byte picks the side (bit 0: a front
 * end reading replies, else the signer reading requests); the rest is one
 * frame body.  Whatever decodes must encode back to exactly the same
 * bytes: the format has one encoding per message, so a decoder that
 * accepted slack would show up here.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "signer/proc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sgn_msg m;
	unsigned char *f = NULL;
	size_t fl = 0;
	int reply;

	if (size < 1)
		return 0;
	reply = data[0] & 1;
	if (sgn_proto_decode(data + 1, size - 1, reply ? AMTCA_SGN_REPLY_MAX :
	    AMTCA_SGN_REQ_MAX, reply, &m) != 0) {
		amtca_err_clear();
		return 0;
	}
	if (sgn_proto_encode(&m, &f, &fl) != 0)
		abort();
	if (fl != size - 1 + 4 || memcmp(f + 4, data + 1, size - 1) != 0)
		abort();
	sgn_proto_free(f, fl);
	sgn_msg_clear(&m);
	return 0;
}
