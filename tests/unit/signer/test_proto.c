/*
 * The signer's wire format (signer/proto.c, docs/PROTOCOL.signer): every
 * message type round-trips; every truncation, every oversized field, a
 * bad flag, non-UTF-8 text, trailing bytes and the wrong direction are
 * refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "signer/proc.h"

static const unsigned char csr[] = { 0x30, 0x82, 0x01, 0x02, 0xAA, 0xBB };
static const unsigned char cert0[] = { 0x30, 0x03, 0x02, 0x01, 0x07 };

/* Encode m, then decode the frame's body; the frame length must match. */
static void
roundtrip(const struct sgn_msg *m, int reply, struct sgn_msg *out,
    unsigned char **frame, size_t *flen)
{
	uint32_t l;

	assert_int_equal(sgn_proto_encode(m, frame, flen), 0);
	assert_true(*flen >= 9);
	l = (uint32_t)(*frame)[0] << 24 | (uint32_t)(*frame)[1] << 16 |
	    (uint32_t)(*frame)[2] << 8 | (*frame)[3];
	assert_int_equal(l, *flen - 4);
	assert_int_equal(sgn_proto_decode(*frame + 4, *flen - 4,
	    reply ? AMTCA_SGN_REPLY_MAX : AMTCA_SGN_REQ_MAX, reply, out), 0);
	assert_int_equal(out->type, m->type);
	assert_int_equal(out->id, m->id);
}

/* Every proper prefix of the body is refused, and so is one byte more. */
static void
truncations(const unsigned char *frame, size_t flen, int reply)
{
	struct sgn_msg m;
	unsigned char *longer;
	size_t i, body = flen - 4;

	for (i = 0; i < body; i++) {
		assert_int_equal(sgn_proto_decode(frame + 4, i, AMTCA_SGN_REPLY_MAX,
		    reply, &m), AMTCA_E_IPC);
		assert_null(m.owned);
	}
	longer = malloc(body + 1);
	assert_non_null(longer);
	memcpy(longer, frame + 4, body);
	longer[body] = 0;
	assert_int_equal(sgn_proto_decode(longer, body + 1, AMTCA_SGN_REPLY_MAX,
	    reply, &m), AMTCA_E_IPC);
	/* And a decoder with a smaller cap refuses the whole. */
	assert_int_equal(sgn_proto_decode(longer, body, body - 1, reply, &m),
	    AMTCA_E_IPC);
	free(longer);
}

static void
test_issue_roundtrip(void **state)
{
	struct sgn_msg m, d;
	unsigned char *f = NULL;
	size_t fl = 0;
	const char *ips[] = { "10.0.0.1", "2001:db8::1" };

	(void)state;
	sgn_msg_init(&m, SGN_MSG_ISSUE, 77);
	m.who.kind = SGN_WHO_BASIC;
	m.who.user = "est-client-ü";
	m.who.password = "s3cret pw";
	m.who.peer = "192.0.2.7";
	m.issue.profile = SGN_PROFILE_EST;
	m.issue.fqdn = "host.example.test";
	m.issue.ips = ips;
	m.issue.nips = 2;
	m.issue.csr = csr;
	m.issue.csrlen = sizeof(csr);
	m.issue.days = 30;
	m.issue.reenroll = 1;
	m.issue.digest = 2;
	roundtrip(&m, 0, &d, &f, &fl);
	assert_int_equal(d.who.kind, SGN_WHO_BASIC);
	assert_string_equal(d.who.user, "est-client-ü");
	assert_string_equal(d.who.password, "s3cret pw");
	assert_string_equal(d.who.peer, "192.0.2.7");
	assert_int_equal(d.issue.profile, SGN_PROFILE_EST);
	assert_string_equal(d.issue.fqdn, "host.example.test");
	assert_null(d.issue.device);
	assert_int_equal(d.issue.nips, 2);
	assert_string_equal(d.issue.ips[1], "2001:db8::1");
	assert_int_equal(d.issue.csrlen, sizeof(csr));
	assert_memory_equal(d.issue.csr, csr, sizeof(csr));
	assert_int_equal(d.issue.days, 30);
	assert_null(d.issue.name);
	assert_int_equal(d.issue.reenroll, 1);
	assert_int_equal(d.issue.digest, 2);
	sgn_msg_clear(&d);
	truncations(f, fl, 0);
	/* A request is not a reply. */
	assert_int_equal(sgn_proto_decode(f + 4, fl - 4, AMTCA_SGN_REPLY_MAX, 1,
	    &d), AMTCA_E_IPC);
	sgn_proto_free(f, fl);
}

static void
test_cert_who_roundtrip(void **state)
{
	struct sgn_msg m, d;
	unsigned char *f = NULL;
	size_t fl = 0;

	(void)state;
	sgn_msg_init(&m, SGN_MSG_REVOKE, 5);
	m.who.kind = SGN_WHO_CERT;
	m.who.cert[0] = cert0;
	m.who.certlen[0] = sizeof(cert0);
	m.who.cert[1] = csr;
	m.who.certlen[1] = sizeof(csr);
	m.who.ncert = 2;
	m.serial = "0A1B";
	m.reason = 1;
	roundtrip(&m, 0, &d, &f, &fl);
	assert_int_equal(d.who.kind, SGN_WHO_CERT);
	assert_int_equal(d.who.ncert, 2);
	assert_memory_equal(d.who.cert[0], cert0, sizeof(cert0));
	assert_int_equal(d.who.certlen[1], sizeof(csr));
	assert_string_equal(d.serial, "0A1B");
	assert_int_equal(d.reason, 1);
	sgn_msg_clear(&d);
	truncations(f, fl, 0);
	sgn_proto_free(f, fl);
}

static void
test_small_requests(void **state)
{
	struct sgn_msg m, d;
	unsigned char *f = NULL;
	size_t fl = 0;

	(void)state;
	sgn_msg_init(&m, SGN_MSG_CERT_LIST, 9);
	m.query.device = "amt-1.example.test";
	m.query.status = "valid";
	m.query.after = "0F";
	m.query.limit = 50;
	m.query.with_der = 1;
	roundtrip(&m, 0, &d, &f, &fl);
	assert_null(d.query.fqdn);
	assert_string_equal(d.query.device, "amt-1.example.test");
	assert_string_equal(d.query.status, "valid");
	assert_string_equal(d.query.after, "0F");
	assert_int_equal(d.query.limit, 50);
	assert_int_equal(d.query.with_der, 1);
	sgn_msg_clear(&d);
	truncations(f, fl, 0);
	sgn_proto_free(f, fl);

	sgn_msg_init(&m, SGN_MSG_CRL, 10);
	roundtrip(&m, 0, &d, &f, &fl);
	assert_null(d.issuer);
	sgn_msg_clear(&d);
	sgn_proto_free(f, fl);
	m.issuer = "00aa";
	roundtrip(&m, 0, &d, &f, &fl);
	assert_string_equal(d.issuer, "00aa");
	sgn_msg_clear(&d);
	truncations(f, fl, 0);
	sgn_proto_free(f, fl);

	sgn_msg_init(&m, SGN_MSG_CRED_PUT, 11);
	m.name = "site-a";
	m.user = "admin";
	m.password = "pw with spaces";
	roundtrip(&m, 0, &d, &f, &fl);
	assert_string_equal(d.password, "pw with spaces");
	sgn_msg_clear(&d);
	truncations(f, fl, 0);
	sgn_proto_free(f, fl);

	sgn_msg_init(&m, SGN_MSG_CERT_GET, 12);
	m.serial = "01";
	roundtrip(&m, 0, &d, &f, &fl);
	assert_string_equal(d.serial, "01");
	sgn_msg_clear(&d);
	sgn_proto_free(f, fl);
}

static void
test_replies(void **state)
{
	struct sgn_msg m, d;
	struct store_cert c[2];
	unsigned char *f = NULL;
	size_t fl = 0;
	char *allow[] = { (char *)"example.test", (char *)"b.example.test" };

	(void)state;
	memset(c, 0, sizeof(c));
	c[0].serial = (char *)"0A";
	c[0].fqdn = (char *)"a.example.test";
	c[0].not_before = 1;
	c[0].not_after = (time_t)4102444800LL;
	c[0].issued_at = 3;
	c[0].status = (char *)"revoked";
	c[0].revoke_reason = 4;
	c[0].revoked_at = 5;
	c[0].requester = (char *)"ops@host";
	c[0].device = (char *)"a.example.test";
	c[0].der = (unsigned char *)cert0;
	c[0].der_len = sizeof(cert0);
	c[0].issuer = (char *)"0a1b2c";
	c[1].serial = (char *)"0B";
	c[1].fqdn = (char *)"b.example.test";
	c[1].status = (char *)"valid";
	c[1].revoke_reason = -1;

	sgn_msg_init(&m, SGN_MSG_REPLY | SGN_MSG_CERT_LIST, 3);
	m.certs = c;
	m.ncerts = 2;
	roundtrip(&m, 1, &d, &f, &fl);
	assert_int_equal(d.result, 0);
	assert_int_equal(d.ncerts, 2);
	assert_string_equal(d.certs[0].requester, "ops@host");
	assert_int_equal(d.certs[0].not_after, (time_t)4102444800LL);
	assert_int_equal(d.certs[0].revoke_reason, 4);
	assert_memory_equal(d.certs[0].der, cert0, sizeof(cert0));
	assert_null(d.certs[1].der);
	assert_null(d.certs[1].device);
	assert_string_equal(d.certs[0].issuer, "0a1b2c");
	assert_null(d.certs[1].issuer);
	assert_int_equal(d.certs[1].revoke_reason, -1);
	sgn_msg_clear(&d);
	truncations(f, fl, 1);
	/* A reply is not a request. */
	assert_int_equal(sgn_proto_decode(f + 4, fl - 4, AMTCA_SGN_REQ_MAX, 0,
	    &d), AMTCA_E_IPC);
	sgn_proto_free(f, fl);

	sgn_msg_init(&m, SGN_MSG_REPLY | SGN_MSG_AUTH, 4);
	m.client.name = (char *)"est-1";
	m.client.roles = SGN_ROLE_EST;
	m.client.serial = (char *)"0C";
	m.client.allow = allow;
	m.client.nallow = 2;
	roundtrip(&m, 1, &d, &f, &fl);
	assert_string_equal(d.client.name, "est-1");
	assert_int_equal(d.client.roles, SGN_ROLE_EST);
	assert_int_equal(d.client.nallow, 2);
	assert_string_equal(d.client.allow[1], "b.example.test");
	sgn_msg_clear(&d);
	truncations(f, fl, 1);
	sgn_proto_free(f, fl);

	sgn_msg_init(&m, SGN_MSG_REPLY | SGN_MSG_ISSUE, 6);
	m.der = cert0;
	m.derlen = sizeof(cert0);
	m.serial = "0D";
	roundtrip(&m, 1, &d, &f, &fl);
	assert_memory_equal(d.der, cert0, sizeof(cert0));
	assert_string_equal(d.serial, "0D");
	sgn_msg_clear(&d);
	truncations(f, fl, 1);
	sgn_proto_free(f, fl);

	/* An error reply: code and message only. */
	sgn_msg_init(&m, SGN_MSG_REPLY | SGN_MSG_ISSUE, 7);
	m.result = AMTCA_E_DENIED;
	m.errmsg = "x may not obtain a certificate for y";
	roundtrip(&m, 1, &d, &f, &fl);
	assert_int_equal(d.result, AMTCA_E_DENIED);
	assert_string_equal(d.errmsg, "x may not obtain a certificate for y");
	assert_null(d.der);
	sgn_msg_clear(&d);
	truncations(f, fl, 1);
	sgn_proto_free(f, fl);

	sgn_msg_init(&m, SGN_MSG_HELLO, 0);
	m.errmsg = "";
	roundtrip(&m, 1, &d, &f, &fl);
	assert_int_equal(d.result, 0);
	sgn_msg_clear(&d);
	sgn_proto_free(f, fl);
}

/* Fields over their caps are refused by the encoder and the decoder. */
static void
test_oversize(void **state)
{
	struct sgn_msg m, d;
	unsigned char *f = NULL, *big;
	size_t fl = 0, n;
	char *longname;

	(void)state;
	longname = malloc(AMTCA_FQDN_MAX + 2);
	assert_non_null(longname);
	memset(longname, 'a', AMTCA_FQDN_MAX + 1);
	longname[AMTCA_FQDN_MAX + 1] = '\0';
	sgn_msg_init(&m, SGN_MSG_CRED_GET, 1);
	m.name = "n";
	m.fqdn = longname;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), AMTCA_E_IPC);
	assert_null(f);
	/* Hand-made: the same field at cap + 1 on the wire. */
	n = 4 + 1 + 4 + 4 + 1 + 4 + AMTCA_FQDN_MAX + 1;
	big = calloc(1, n);
	assert_non_null(big);
	big[0] = SGN_MSG_CRED_GET;
	big[8] = 1;			/* name length 1 */
	big[9] = 'n';
	big[10] = 0; big[11] = 0;
	big[12] = (unsigned char)((AMTCA_FQDN_MAX + 1) >> 8);
	big[13] = (unsigned char)((AMTCA_FQDN_MAX + 1) & 0xff);
	memset(big + 14, 'a', AMTCA_FQDN_MAX + 1);
	assert_int_equal(sgn_proto_decode(big, 14 + AMTCA_FQDN_MAX + 1,
	    AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	/* At the cap itself it is fine. */
	big[13] = (unsigned char)(AMTCA_FQDN_MAX & 0xff);
	assert_int_equal(sgn_proto_decode(big, 14 + AMTCA_FQDN_MAX,
	    AMTCA_SGN_REQ_MAX, 0, &d), 0);
	sgn_msg_clear(&d);
	/* A length field claiming more than the frame holds. */
	big[12] = 0x7f;
	assert_int_equal(sgn_proto_decode(big, 14 + AMTCA_FQDN_MAX,
	    AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	free(big);
	free(longname);

	/* A CSR over AMTCA_CSR_MAX. */
	big = calloc(1, AMTCA_CSR_MAX + 1);
	assert_non_null(big);
	sgn_msg_init(&m, SGN_MSG_ISSUE, 1);
	m.issue.fqdn = "a.example.test";
	m.issue.csr = big;
	m.issue.csrlen = AMTCA_CSR_MAX + 1;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), AMTCA_E_IPC);
	m.issue.csrlen = AMTCA_CSR_MAX;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), 0);
	sgn_proto_free(f, fl);
	/* Too many chain certificates or IPs. */
	m.who.kind = SGN_WHO_CERT;
	m.who.ncert = SGN_CHAIN_MAX + 1;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), AMTCA_E_IPC);
	free(big);
}

/* Enumerations, flags and text are checked. */
static void
test_bad_values(void **state)
{
	struct sgn_msg m, d;
	unsigned char *f = NULL, *b;
	size_t fl = 0, bl;

	(void)state;
	sgn_msg_init(&m, SGN_MSG_CRED_GET, 1);
	m.name = "ab";
	m.fqdn = "c.example.test";
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), 0);
	b = f + 4;
	bl = fl - 4;
	/* Unknown request type, and a reply type on the request side. */
	b[0] = 0x55;
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	b[0] = SGN_MSG_REPLY | SGN_MSG_CRED_GET;
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	b[0] = SGN_MSG_CRED_GET;
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), 0);
	sgn_msg_clear(&d);
	/* A control character, a NUL, and invalid UTF-8 in text. */
	b[9] = '\n';
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	b[9] = '\0';
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	b[9] = 0xc0;			/* overlong lead byte */
	b[10] = 0x80;
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	b[9] = 0xc3;			/* "é": fine */
	b[10] = 0xa9;
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), 0);
	assert_string_equal(d.name, "é");
	sgn_msg_clear(&d);
	sgn_proto_free(f, fl);

	/* A presence flag of 2, an unknown requester kind, reason 11. */
	sgn_msg_init(&m, SGN_MSG_REVOKE, 2);
	m.serial = "0A";
	m.reason = 4;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), 0);
	b = f + 4;
	bl = fl - 4;
	b[7] = 2;			/* who.user present flag */
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	b[7] = 0;
	b[5] = 9;			/* who.kind */
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	b[5] = 0;
	b[bl - 1] = 11;
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), AMTCA_E_IPC);
	b[bl - 1] = 4;
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d), 0);
	sgn_msg_clear(&d);
	sgn_proto_free(f, fl);
	/* The encoder refuses what it could not send either. */
	m.reason = 11;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), AMTCA_E_IPC);
	m.reason = 4;
	m.serial = NULL;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), AMTCA_E_IPC);
}

/* AUDIT_NOTE: who, action (<= AMTCA_SGN_NOTE_ACTION_MAX), subject (an
 * FQDN's cap), detail (<= AMTCA_SGN_NOTE_DETAIL_MAX, one line); its reply
 * is the result alone. */
static void
test_audit_note(void **state)
{
	struct sgn_msg m, d;
	unsigned char *f = NULL, *b;
	size_t fl = 0, bl;
	char action[AMTCA_SGN_NOTE_ACTION_MAX + 2];
	char *detail;

	(void)state;
	sgn_msg_init(&m, SGN_MSG_AUDIT_NOTE, 21);
	m.who.kind = SGN_WHO_LOCAL;
	m.action = "enroll.outcome";
	m.subject = "amt-1.example.test";
	m.detail = "result=enrolled serial=0A";
	roundtrip(&m, 0, &d, &f, &fl);
	assert_int_equal(d.who.kind, SGN_WHO_LOCAL);
	assert_string_equal(d.action, "enroll.outcome");
	assert_string_equal(d.subject, "amt-1.example.test");
	assert_string_equal(d.detail, "result=enrolled serial=0A");
	sgn_msg_clear(&d);
	truncations(f, fl, 0);
	/* A newline in the detail (the last field's last byte) is refused. */
	b = f + 4;
	bl = fl - 4;
	b[bl - 1] = '\n';
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d),
	    AMTCA_E_IPC);
	/* Never accepted as a reply. */
	b[bl - 1] = 'A';
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REPLY_MAX, 1, &d),
	    AMTCA_E_IPC);
	sgn_proto_free(f, fl);

	/* Empty subject and detail are fine on the wire (core.c decides). */
	m.subject = "";
	m.detail = "";
	roundtrip(&m, 0, &d, &f, &fl);
	assert_string_equal(d.subject, "");
	sgn_msg_clear(&d);
	sgn_proto_free(f, fl);

	/* Caps: action and detail one byte over are not encoded... */
	memset(action, 'a', sizeof(action) - 1);
	action[sizeof(action) - 1] = '\0';
	m.action = action;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), AMTCA_E_IPC);
	action[AMTCA_SGN_NOTE_ACTION_MAX] = '\0';
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), 0);
	/* ...nor decoded: the action's length field raised by one. */
	b = f + 4;
	bl = fl - 4;
	/* type(1) id(4) kind(1) ncert(1) user(1) password(1) peer(1): 10 */
	assert_int_equal(b[13], AMTCA_SGN_NOTE_ACTION_MAX);
	b[13] = AMTCA_SGN_NOTE_ACTION_MAX + 1;
	assert_int_equal(sgn_proto_decode(b, bl, AMTCA_SGN_REQ_MAX, 0, &d),
	    AMTCA_E_IPC);
	sgn_proto_free(f, fl);
	m.action = "job.create";
	detail = malloc(AMTCA_SGN_NOTE_DETAIL_MAX + 2);
	assert_non_null(detail);
	memset(detail, 'd', AMTCA_SGN_NOTE_DETAIL_MAX + 1);
	detail[AMTCA_SGN_NOTE_DETAIL_MAX + 1] = '\0';
	m.detail = detail;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), AMTCA_E_IPC);
	detail[AMTCA_SGN_NOTE_DETAIL_MAX] = '\0';
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), 0);
	sgn_proto_free(f, fl);
	free(detail);
	m.detail = "";
	/* No action at all is not encoded. */
	m.action = NULL;
	assert_int_equal(sgn_proto_encode(&m, &f, &fl), AMTCA_E_IPC);

	/* The reply: the result, or a result and a message. */
	sgn_msg_init(&m, SGN_MSG_REPLY | SGN_MSG_AUDIT_NOTE, 21);
	roundtrip(&m, 1, &d, &f, &fl);
	assert_int_equal(d.result, 0);
	sgn_msg_clear(&d);
	truncations(f, fl, 1);
	sgn_proto_free(f, fl);
	m.result = AMTCA_E_RATE;
	m.errmsg = "audit notes by x: over 3000 a minute";
	roundtrip(&m, 1, &d, &f, &fl);
	assert_int_equal(d.result, AMTCA_E_RATE);
	assert_string_equal(d.errmsg, m.errmsg);
	sgn_msg_clear(&d);
	sgn_proto_free(f, fl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_roundtrip),
		cmocka_unit_test(test_cert_who_roundtrip),
		cmocka_unit_test(test_small_requests),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_audit_note),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
