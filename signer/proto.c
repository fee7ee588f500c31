/*
 * signer/proto.c: the signer's wire format (docs/PROTOCOL.signer).
 *
 * A frame is a u32 length (network order) of what follows: u8 type, u32
 * request id, then the type's fields in a fixed order.  Integers are
 * big-endian; a string or blob is a u32 length and its bytes; an optional
 * one is a u8 presence flag (0 or 1) before it.  The decoder is strict:
 * every length within its field's cap, every flag 0 or 1, every enum in
 * range, free text valid UTF-8 without control characters, and nothing
 * left over.  Anything else is AMTCA_E_IPC and the connection is dropped.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ca/ca.h"
#include "signer/proc.h"

/* --- encoding ---------------------------------------------------------- */

struct obuf {
	unsigned char *p;
	size_t len, cap, max;
	int err;
};

static void
o_need(struct obuf *b, size_t n)
{
	unsigned char *np;
	size_t ncap;

	if (b->err != 0)
		return;
	if (n > b->max || b->len > b->max - n) {
		b->err = AMTCA_E_LIMIT;
		return;
	}
	if (b->len + n <= b->cap)
		return;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + n)
		ncap *= 2;
	if ((np = malloc(ncap)) == NULL) {
		b->err = AMTCA_E_NOMEM;
		return;
	}
	/* Frames may carry passwords: never leave a copy in freed memory. */
	if (b->p != NULL) {
		memcpy(np, b->p, b->len);
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->cap = ncap;
}

static void
o_u8(struct obuf *b, unsigned v)
{
	o_need(b, 1);
	if (b->err == 0)
		b->p[b->len++] = (unsigned char)v;
}

static void
o_u32(struct obuf *b, uint32_t v)
{
	o_need(b, 4);
	if (b->err != 0)
		return;
	b->p[b->len++] = (unsigned char)(v >> 24);
	b->p[b->len++] = (unsigned char)(v >> 16);
	b->p[b->len++] = (unsigned char)(v >> 8);
	b->p[b->len++] = (unsigned char)v;
}

static void
o_i64(struct obuf *b, int64_t v)
{
	o_u32(b, (uint32_t)((uint64_t)v >> 32));
	o_u32(b, (uint32_t)(uint64_t)v);
}

static void
o_blob(struct obuf *b, const void *p, size_t n, size_t cap)
{
	if (b->err == 0 && (n > cap || (n > 0 && p == NULL)))
		b->err = AMTCA_E_LIMIT;
	o_u32(b, (uint32_t)n);
	o_need(b, n);
	if (b->err == 0 && n > 0) {
		memcpy(b->p + b->len, p, n);
		b->len += n;
	}
}

static void
o_str(struct obuf *b, const char *s, size_t cap)
{
	if (s == NULL) {
		if (b->err == 0)
			b->err = AMTCA_E_USAGE;
		return;
	}
	o_blob(b, s, strlen(s), cap);
}

static void
o_ostr(struct obuf *b, const char *s, size_t cap)
{
	o_u8(b, s != NULL);
	if (s != NULL)
		o_str(b, s, cap);
}

static void
o_who(struct obuf *b, const struct sgn_who *w)
{
	size_t i;

	if (b->err == 0 && w->ncert > SGN_CHAIN_MAX)
		b->err = AMTCA_E_LIMIT;
	o_u8(b, (unsigned)w->kind);
	o_u8(b, (unsigned)w->ncert);
	for (i = 0; i < w->ncert && i < SGN_CHAIN_MAX; i++)
		o_blob(b, w->cert[i], w->certlen[i], AMTCA_SGN_CERT_MAX);
	o_ostr(b, w->user, AMTCA_SGN_STR_MAX);
	o_ostr(b, w->password, AMTCA_SECRET_MAX);
	o_ostr(b, w->peer, AMTCA_SGN_STR_MAX);
}

static void
o_cert(struct obuf *b, const struct store_cert *c)
{
	o_str(b, c->serial, AMTCA_SGN_SERIAL_MAX);
	o_str(b, c->fqdn != NULL ? c->fqdn : "", AMTCA_FQDN_MAX);
	o_i64(b, (int64_t)c->not_before);
	o_i64(b, (int64_t)c->not_after);
	o_i64(b, (int64_t)c->issued_at);
	o_str(b, c->status != NULL ? c->status : "", AMTCA_SGN_STR_MAX);
	o_u32(b, (uint32_t)(int32_t)c->revoke_reason);
	o_i64(b, (int64_t)c->revoked_at);
	o_ostr(b, c->requester, AMTCA_SGN_STR_MAX);
	o_ostr(b, c->device, AMTCA_FQDN_MAX);
	o_u8(b, c->der != NULL);
	if (c->der != NULL)
		o_blob(b, c->der, c->der_len, AMTCA_SGN_CERT_MAX);
	o_ostr(b, c->issuer, AMTCA_SGN_KEYID_MAX);
}

static void
o_request(struct obuf *b, const struct sgn_msg *m)
{
	const struct sgn_issue_req *q = &m->issue;
	size_t i;

	switch (m->type) {
	case SGN_MSG_AUTH:
		o_who(b, &m->who);
		break;
	case SGN_MSG_ISSUE:
		if (b->err == 0 && q->nips > AMTCA_IPS_MAX)
			b->err = AMTCA_E_LIMIT;
		o_who(b, &m->who);
		o_u8(b, (unsigned)q->profile);
		o_str(b, q->fqdn, AMTCA_FQDN_MAX);
		o_ostr(b, q->device, AMTCA_FQDN_MAX);
		o_u8(b, (unsigned)q->nips);
		for (i = 0; i < q->nips && i < AMTCA_IPS_MAX; i++)
			o_str(b, q->ips[i], AMTCA_SGN_STR_MAX);
		o_blob(b, q->csr, q->csrlen, AMTCA_CSR_MAX);
		o_u32(b, (uint32_t)(int32_t)q->days);
		o_ostr(b, q->name, AMTCA_SGN_STR_MAX);
		o_u8(b, q->reenroll != 0);
		if (b->err == 0 && (q->digest < 0 || q->digest >= CA_DIGEST_N))
			b->err = AMTCA_E_USAGE;
		o_u8(b, (unsigned)q->digest);
		break;
	case SGN_MSG_CERT_GET:
		o_str(b, m->serial, AMTCA_SGN_SERIAL_MAX);
		break;
	case SGN_MSG_CERT_LIST:
		o_ostr(b, m->query.fqdn, AMTCA_FQDN_MAX);
		o_ostr(b, m->query.device, AMTCA_FQDN_MAX);
		o_ostr(b, m->query.status, AMTCA_SGN_STR_MAX);
		o_ostr(b, m->query.after, AMTCA_SGN_SERIAL_MAX);
		o_u32(b, m->query.limit > AMTCA_SGN_LIST_MAX ? AMTCA_SGN_LIST_MAX :
		    (uint32_t)m->query.limit);
		o_u8(b, m->query.with_der != 0);
		break;
	case SGN_MSG_REVOKE:
		o_who(b, &m->who);
		o_str(b, m->serial, AMTCA_SGN_SERIAL_MAX);
		if (b->err == 0 && (m->reason < 0 || m->reason > 10))
			b->err = AMTCA_E_USAGE;
		o_u8(b, (unsigned)m->reason);
		break;
	case SGN_MSG_CRL:
		o_ostr(b, m->issuer, AMTCA_SGN_SERIAL_MAX);
		break;
	case SGN_MSG_CRED_PUT:
		o_str(b, m->name, AMTCA_SGN_STR_MAX);
		o_str(b, m->user, AMTCA_SGN_STR_MAX);
		o_str(b, m->password, AMTCA_SECRET_MAX);
		break;
	case SGN_MSG_CRED_GET:
		o_str(b, m->name, AMTCA_SGN_STR_MAX);
		o_str(b, m->fqdn, AMTCA_FQDN_MAX);
		break;
	case SGN_MSG_AUDIT_NOTE:
		o_who(b, &m->who);
		o_str(b, m->action, AMTCA_SGN_NOTE_ACTION_MAX);
		o_str(b, m->subject, AMTCA_FQDN_MAX);
		o_str(b, m->detail, AMTCA_SGN_NOTE_DETAIL_MAX);
		break;
	default:
		b->err = AMTCA_E_USAGE;
	}
}

static void
o_reply(struct obuf *b, const struct sgn_msg *m)
{
	size_t i;

	o_u32(b, (uint32_t)m->result);
	if (m->result != 0 || m->type == SGN_MSG_HELLO) {
		o_str(b, m->errmsg != NULL ? m->errmsg : "", AMTCA_SGN_STR_MAX);
		return;
	}
	switch (m->type & ~SGN_MSG_REPLY) {
	case SGN_MSG_AUTH:
		if (b->err == 0 && m->client.nallow > AMTCA_SGN_ALLOW_MAX)
			b->err = AMTCA_E_LIMIT;
		o_str(b, m->client.name, AMTCA_SGN_STR_MAX);
		o_u32(b, m->client.roles);
		o_ostr(b, m->client.serial, AMTCA_SGN_SERIAL_MAX);
		o_u32(b, (uint32_t)m->client.nallow);
		for (i = 0; i < m->client.nallow && i < AMTCA_SGN_ALLOW_MAX; i++)
			o_str(b, m->client.allow[i], AMTCA_FQDN_MAX);
		break;
	case SGN_MSG_ISSUE:
		o_blob(b, m->der, m->derlen, AMTCA_SGN_CERT_MAX);
		o_str(b, m->serial, AMTCA_SGN_SERIAL_MAX);
		break;
	case SGN_MSG_CERT_GET:
		if (b->err == 0 && m->ncerts != 1)
			b->err = AMTCA_E_USAGE;
		if (m->ncerts == 1)
			o_cert(b, &m->certs[0]);
		break;
	case SGN_MSG_CERT_LIST:
		if (b->err == 0 && m->ncerts > AMTCA_SGN_LIST_MAX)
			b->err = AMTCA_E_LIMIT;
		o_u32(b, (uint32_t)m->ncerts);
		for (i = 0; i < m->ncerts && b->err == 0; i++)
			o_cert(b, &m->certs[i]);
		break;
	case SGN_MSG_REVOKE:
		o_u8(b, m->was != 0);
		if (b->err == 0 && m->ncerts != 1)
			b->err = AMTCA_E_USAGE;
		if (m->ncerts == 1)
			o_cert(b, &m->certs[0]);
		break;
	case SGN_MSG_CRL:
		o_blob(b, m->der, m->derlen, AMTCA_SGN_CRL_MAX);
		break;
	case SGN_MSG_CRED_PUT:
	case SGN_MSG_AUDIT_NOTE:
		break;
	case SGN_MSG_CRED_GET:
		o_str(b, m->user, AMTCA_SGN_STR_MAX);
		o_str(b, m->password, AMTCA_SECRET_MAX);
		break;
	default:
		b->err = AMTCA_E_USAGE;
	}
}

void
sgn_proto_free(unsigned char *buf, size_t len)
{
	if (buf == NULL)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

int
sgn_proto_encode(const struct sgn_msg *m, unsigned char **out, size_t *len)
{
	struct obuf b;
	int reply = m->type == SGN_MSG_HELLO || (m->type & SGN_MSG_REPLY) != 0;
	uint32_t body;

	*out = NULL;
	*len = 0;
	memset(&b, 0, sizeof(b));
	b.max = 4 + (reply ? AMTCA_SGN_REPLY_MAX : AMTCA_SGN_REQ_MAX);
	o_u32(&b, 0);			/* the length, set below */
	o_u8(&b, m->type);
	o_u32(&b, m->id);
	if (reply)
		o_reply(&b, m);
	else
		o_request(&b, m);
	if (b.err != 0) {
		sgn_proto_free(b.p, b.cap);
		return amtca_fail(b.err == AMTCA_E_NOMEM ? AMTCA_E_NOMEM :
		    AMTCA_E_IPC, "a signer message %s",
		    b.err == AMTCA_E_LIMIT ? "exceeds a size limit" :
		    "has a missing or bad field");
	}
	body = (uint32_t)(b.len - 4);
	b.p[0] = (unsigned char)(body >> 24);
	b.p[1] = (unsigned char)(body >> 16);
	b.p[2] = (unsigned char)(body >> 8);
	b.p[3] = (unsigned char)body;
	/* Hand back a buffer whose length is its allocation, for the wipe. */
	if (b.cap != b.len) {
		unsigned char *t = malloc(b.len);

		if (t == NULL) {
			sgn_proto_free(b.p, b.cap);
			return AMTCA_E_NOMEM;
		}
		memcpy(t, b.p, b.len);
		sgn_proto_free(b.p, b.cap);
		b.p = t;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* --- decoding ---------------------------------------------------------- */

struct ibuf {
	const unsigned char *p;
	size_t len, off;
	const char *why;		/* first failure */
	struct sgn_msg *m;
};

static int
fail(struct ibuf *b, const char *why)
{
	if (b->why == NULL)
		b->why = why;
	return -1;
}

static int
i_u8(struct ibuf *b, unsigned *v)
{
	if (b->why != NULL)
		return -1;
	if (b->len - b->off < 1)
		return fail(b, "truncated");
	*v = b->p[b->off++];
	return 0;
}

static int
i_u32(struct ibuf *b, uint32_t *v)
{
	const unsigned char *p;

	if (b->why != NULL)
		return -1;
	if (b->len - b->off < 4)
		return fail(b, "truncated");
	p = b->p + b->off;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	    (uint32_t)p[3];
	b->off += 4;
	return 0;
}

static int
i_i64(struct ibuf *b, int64_t *v)
{
	uint32_t hi, lo;

	if (i_u32(b, &hi) != 0 || i_u32(b, &lo) != 0)
		return -1;
	*v = (int64_t)((uint64_t)hi << 32 | lo);
	return 0;
}

static int
i_flag(struct ibuf *b, int *v)
{
	unsigned f;

	if (i_u8(b, &f) != 0)
		return -1;
	if (f > 1)
		return fail(b, "a flag is neither 0 nor 1");
	*v = (int)f;
	return 0;
}

static int
own(struct sgn_msg *m, void *p)
{
	void **n;

	if (m->nowned == m->capowned) {
		size_t cap = m->capowned ? m->capowned * 2 : 16;

		if ((n = realloc(m->owned, cap * sizeof(*n))) == NULL)
			return -1;
		m->owned = n;
		m->capowned = cap;
	}
	m->owned[m->nowned++] = p;
	return 0;
}

/* Valid UTF-8 (no overlongs, surrogates or > U+10FFFF), no C0/C1 controls
 * and no DEL. */
static int
text_ok(const unsigned char *s, size_t n)
{
	size_t i = 0, k, need;
	uint32_t cp;

	while (i < n) {
		unsigned c = s[i];

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07;
		else
			return 0;
		if (n - i - 1 < need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp <= 0x9f))
			return 0;
		i += need + 1;
	}
	return 1;
}

enum { T_BLOB, T_TEXT, T_SECRET };

/* A blob (or NUL-terminated string) owned by the message. */
static int
i_blob(struct ibuf *b, size_t cap, int kind, const unsigned char **out,
    size_t *n)
{
	uint32_t len;
	unsigned char *p;

	*out = NULL;
	*n = 0;
	if (i_u32(b, &len) != 0)
		return -1;
	if (len > cap)
		return fail(b, "a field exceeds its size limit");
	if (b->len - b->off < len)
		return fail(b, "truncated");
	if (kind != T_BLOB && memchr(b->p + b->off, '\0', len) != NULL)
		return fail(b, "a string holds a NUL byte");
	if (kind == T_TEXT && !text_ok(b->p + b->off, len))
		return fail(b, "a string is not UTF-8 text");
	if ((p = malloc((size_t)len + 1)) == NULL || own(b->m, p) != 0) {
		free(p);
		return fail(b, "out of memory");
	}
	memcpy(p, b->p + b->off, len);
	p[len] = '\0';
	b->off += len;
	*out = p;
	*n = len;
	return 0;
}

static int
i_str(struct ibuf *b, size_t cap, int kind, const char **out)
{
	const unsigned char *p;
	size_t n;

	if (i_blob(b, cap, kind, &p, &n) != 0)
		return -1;
	*out = (const char *)p;
	return 0;
}

static int
i_ostr(struct ibuf *b, size_t cap, int kind, const char **out)
{
	int present;

	*out = NULL;
	if (i_flag(b, &present) != 0)
		return -1;
	return present ? i_str(b, cap, kind, out) : 0;
}

/* An owned copy for the records and clients a reply hands over. */
static int
dup_out(struct ibuf *b, const char *s, char **out)
{
	*out = NULL;
	if (s == NULL)
		return 0;
	if ((*out = strdup(s)) == NULL)
		return fail(b, "out of memory");
	return 0;
}

static int
i_who(struct ibuf *b, struct sgn_who *w)
{
	unsigned kind, n, i;
	const unsigned char *p;
	size_t len;

	if (i_u8(b, &kind) != 0 || i_u8(b, &n) != 0)
		return -1;
	if (kind > SGN_WHO_BASIC)
		return fail(b, "unknown requester kind");
	if (n > SGN_CHAIN_MAX)
		return fail(b, "too many certificates in a chain");
	w->kind = (enum sgn_who_kind)kind;
	for (i = 0; i < n; i++) {
		if (i_blob(b, AMTCA_SGN_CERT_MAX, T_BLOB, &p, &len) != 0)
			return -1;
		w->cert[i] = p;
		w->certlen[i] = len;
	}
	w->ncert = n;
	if (i_ostr(b, AMTCA_SGN_STR_MAX, T_TEXT, &w->user) != 0 ||
	    i_ostr(b, AMTCA_SECRET_MAX, T_SECRET, &w->password) != 0 ||
	    i_ostr(b, AMTCA_SGN_STR_MAX, T_TEXT, &w->peer) != 0)
		return -1;
	return 0;
}

static int
i_cert(struct ibuf *b, struct store_cert *c)
{
	const char *serial, *fqdn, *status, *req, *dev, *iss;
	const unsigned char *der;
	int64_t nb, na, ia, ra;
	uint32_t reason;
	size_t dlen = 0;
	int has_der;

	if (i_str(b, AMTCA_SGN_SERIAL_MAX, T_TEXT, &serial) != 0 ||
	    i_str(b, AMTCA_FQDN_MAX, T_TEXT, &fqdn) != 0 ||
	    i_i64(b, &nb) != 0 || i_i64(b, &na) != 0 || i_i64(b, &ia) != 0 ||
	    i_str(b, AMTCA_SGN_STR_MAX, T_TEXT, &status) != 0 ||
	    i_u32(b, &reason) != 0 || i_i64(b, &ra) != 0 ||
	    i_ostr(b, AMTCA_SGN_STR_MAX, T_TEXT, &req) != 0 ||
	    i_ostr(b, AMTCA_FQDN_MAX, T_TEXT, &dev) != 0 ||
	    i_flag(b, &has_der) != 0)
		return -1;
	der = NULL;
	if ((has_der && i_blob(b, AMTCA_SGN_CERT_MAX, T_BLOB, &der, &dlen) != 0) ||
	    i_ostr(b, AMTCA_SGN_KEYID_MAX, T_TEXT, &iss) != 0)
		return -1;
	if ((int32_t)reason < -1 || (int32_t)reason > 10)
		return fail(b, "a revocation reason is out of range");
	c->not_before = (time_t)nb;
	c->not_after = (time_t)na;
	c->issued_at = (time_t)ia;
	c->revoke_reason = (int)(int32_t)reason;
	c->revoked_at = (time_t)ra;
	if (dup_out(b, serial, &c->serial) != 0 || dup_out(b, fqdn, &c->fqdn) != 0 ||
	    dup_out(b, status, &c->status) != 0 ||
	    dup_out(b, req, &c->requester) != 0 || dup_out(b, dev, &c->device) != 0 ||
	    dup_out(b, iss, &c->issuer) != 0)
		return -1;
	if (der != NULL) {
		if ((c->der = malloc(dlen ? dlen : 1)) == NULL)
			return fail(b, "out of memory");
		memcpy(c->der, der, dlen);
		c->der_len = dlen;
	}
	return 0;
}

static int
i_certs(struct ibuf *b, size_t n)
{
	struct sgn_msg *m = b->m;
	size_t i;

	/* Each record takes at least 50 bytes: no huge allocation for a
	 * count the frame cannot hold. */
	if (n > (b->len - b->off) / 50 + 1)
		return fail(b, "more records than the frame holds");
	if (n == 0)
		return 0;
	if ((m->certs = calloc(n, sizeof(*m->certs))) == NULL)
		return fail(b, "out of memory");
	m->ncerts = n;
	for (i = 0; i < n; i++)
		if (i_cert(b, &m->certs[i]) != 0)
			return -1;
	return 0;
}

static int
i_request(struct ibuf *b, struct sgn_msg *m)
{
	struct sgn_issue_req *q = &m->issue;
	unsigned v, i;
	uint32_t u;
	const unsigned char *p;
	size_t n;
	int f;

	switch (m->type) {
	case SGN_MSG_AUTH:
		return i_who(b, &m->who);
	case SGN_MSG_ISSUE:
		if (i_who(b, &m->who) != 0 || i_u8(b, &v) != 0)
			return -1;
		if (v > SGN_PROFILE_ADMIN)
			return fail(b, "unknown certificate profile");
		q->profile = (enum sgn_profile)v;
		if (i_str(b, AMTCA_FQDN_MAX, T_TEXT, &q->fqdn) != 0 ||
		    i_ostr(b, AMTCA_FQDN_MAX, T_TEXT, &q->device) != 0 ||
		    i_u8(b, &v) != 0)
			return -1;
		if (v > AMTCA_IPS_MAX)
			return fail(b, "too many IP addresses");
		for (i = 0; i < v; i++)
			if (i_str(b, AMTCA_SGN_STR_MAX, T_TEXT, &m->ips[i]) != 0)
				return -1;
		q->ips = v ? m->ips : NULL;
		q->nips = v;
		if (i_blob(b, AMTCA_CSR_MAX, T_BLOB, &p, &n) != 0 ||
		    i_u32(b, &u) != 0)
			return -1;
		q->csr = p;
		q->csrlen = n;
		if ((int32_t)u < 0 || (int32_t)u > AMTCA_DAYS_MAX)
			return fail(b, "days out of range");
		q->days = (int)(int32_t)u;
		if (i_ostr(b, AMTCA_SGN_STR_MAX, T_TEXT, &q->name) != 0 ||
		    i_flag(b, &q->reenroll) != 0 || i_u8(b, &v) != 0)
			return -1;
		if (v >= CA_DIGEST_N)
			return fail(b, "unknown leaf digest");
		q->digest = (int)v;
		return 0;
	case SGN_MSG_CERT_GET:
		return i_str(b, AMTCA_SGN_SERIAL_MAX, T_TEXT, &m->serial);
	case SGN_MSG_CERT_LIST:
		if (i_ostr(b, AMTCA_FQDN_MAX, T_TEXT, &m->query.fqdn) != 0 ||
		    i_ostr(b, AMTCA_FQDN_MAX, T_TEXT, &m->query.device) != 0 ||
		    i_ostr(b, AMTCA_SGN_STR_MAX, T_TEXT, &m->query.status) != 0 ||
		    i_ostr(b, AMTCA_SGN_SERIAL_MAX, T_TEXT, &m->query.after) != 0 ||
		    i_u32(b, &u) != 0 || i_flag(b, &f) != 0)
			return -1;
		if (u > AMTCA_SGN_LIST_MAX)
			return fail(b, "list limit out of range");
		m->query.limit = u;
		m->query.with_der = f;
		return 0;
	case SGN_MSG_REVOKE:
		if (i_who(b, &m->who) != 0 ||
		    i_str(b, AMTCA_SGN_SERIAL_MAX, T_TEXT, &m->serial) != 0 ||
		    i_u8(b, &v) != 0)
			return -1;
		if (v > 10)
			return fail(b, "revocation reason out of range");
		m->reason = (int)v;
		return 0;
	case SGN_MSG_CRL:
		return i_ostr(b, AMTCA_SGN_SERIAL_MAX, T_TEXT, &m->issuer);
	case SGN_MSG_CRED_PUT:
		if (i_str(b, AMTCA_SGN_STR_MAX, T_TEXT, &m->name) != 0 ||
		    i_str(b, AMTCA_SGN_STR_MAX, T_TEXT, &m->user) != 0 ||
		    i_str(b, AMTCA_SECRET_MAX, T_SECRET, &m->password) != 0)
			return -1;
		return 0;
	case SGN_MSG_CRED_GET:
		if (i_str(b, AMTCA_SGN_STR_MAX, T_TEXT, &m->name) != 0 ||
		    i_str(b, AMTCA_FQDN_MAX, T_TEXT, &m->fqdn) != 0)
			return -1;
		return 0;
	case SGN_MSG_AUDIT_NOTE:
		if (i_who(b, &m->who) != 0 ||
		    i_str(b, AMTCA_SGN_NOTE_ACTION_MAX, T_TEXT, &m->action) != 0 ||
		    i_str(b, AMTCA_FQDN_MAX, T_TEXT, &m->subject) != 0 ||
		    i_str(b, AMTCA_SGN_NOTE_DETAIL_MAX, T_TEXT, &m->detail) != 0)
			return -1;
		return 0;
	}
	return fail(b, "unknown request type");
}

static int
i_reply(struct ibuf *b, struct sgn_msg *m)
{
	uint32_t u, i;
	const char *s;
	const unsigned char *p;
	size_t n;
	int f;

	if (i_u32(b, &u) != 0)
		return -1;
	m->result = (int32_t)u;
	if (m->result > 0 || m->result < -1000)
		return fail(b, "result out of range");
	if (m->result != 0 || m->type == SGN_MSG_HELLO)
		return i_str(b, AMTCA_SGN_STR_MAX, T_TEXT, &m->errmsg);
	m->owns_certs = 1;
	switch (m->type & ~SGN_MSG_REPLY) {
	case SGN_MSG_AUTH:
		if (i_str(b, AMTCA_SGN_STR_MAX, T_TEXT, &s) != 0 ||
		    dup_out(b, s, &m->client.name) != 0 ||
		    i_u32(b, &m->client.roles) != 0 ||
		    i_ostr(b, AMTCA_SGN_SERIAL_MAX, T_TEXT, &s) != 0 ||
		    dup_out(b, s, &m->client.serial) != 0 || i_u32(b, &u) != 0)
			return -1;
		if (u > AMTCA_SGN_ALLOW_MAX)
			return fail(b, "allow list too long");
		if (u > 0 && (m->client.allow = calloc(u, sizeof(char *))) == NULL)
			return fail(b, "out of memory");
		for (i = 0; i < u; i++) {
			if (i_str(b, AMTCA_FQDN_MAX, T_TEXT, &s) != 0 ||
			    dup_out(b, s, &m->client.allow[i]) != 0)
				return -1;
			m->client.nallow++;
		}
		return 0;
	case SGN_MSG_ISSUE:
		if (i_blob(b, AMTCA_SGN_CERT_MAX, T_BLOB, &p, &n) != 0 ||
		    i_str(b, AMTCA_SGN_SERIAL_MAX, T_TEXT, &m->serial) != 0)
			return -1;
		m->der = p;
		m->derlen = n;
		return 0;
	case SGN_MSG_CERT_GET:
		return i_certs(b, 1);
	case SGN_MSG_CERT_LIST:
		if (i_u32(b, &u) != 0)
			return -1;
		if (u > AMTCA_SGN_LIST_MAX)
			return fail(b, "too many records");
		return i_certs(b, u);
	case SGN_MSG_REVOKE:
		if (i_flag(b, &f) != 0)
			return -1;
		m->was = f;
		return i_certs(b, 1);
	case SGN_MSG_CRL:
		if (i_blob(b, AMTCA_SGN_CRL_MAX, T_BLOB, &p, &n) != 0)
			return -1;
		m->der = p;
		m->derlen = n;
		return 0;
	case SGN_MSG_CRED_PUT:
	case SGN_MSG_AUDIT_NOTE:
		return 0;
	case SGN_MSG_CRED_GET:
		if (i_str(b, AMTCA_SGN_STR_MAX, T_TEXT, &m->user) != 0 ||
		    i_str(b, AMTCA_SECRET_MAX, T_SECRET, &m->password) != 0)
			return -1;
		return 0;
	}
	return fail(b, "unknown reply type");
}

void
sgn_msg_init(struct sgn_msg *m, uint8_t type, uint32_t id)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->id = id;
}

void
sgn_msg_clear(struct sgn_msg *m)
{
	size_t i;

	for (i = 0; i < m->nowned; i++) {
		/* Each owned piece is NUL-terminated or a blob; wipe what
		 * might be a password either way. */
		if (m->owned[i] != NULL && (m->owned[i] == m->password ||
		    m->owned[i] == m->who.password))
			OPENSSL_cleanse(m->owned[i], strlen(m->owned[i]));
		free(m->owned[i]);
	}
	free(m->owned);
	if (m->owns_certs) {
		store_certs_free(m->certs, m->ncerts);
		sgn_client_clear(&m->client);
	}
	memset(m, 0, sizeof(*m));
}

int
sgn_proto_decode(const unsigned char *buf, size_t len, size_t max,
    int want_reply, struct sgn_msg *m)
{
	struct ibuf b;
	unsigned type;
	int r;

	sgn_msg_init(m, 0, 0);
	memset(&b, 0, sizeof(b));
	b.p = buf;
	b.len = len;
	b.m = m;
	if (len > max) {
		b.why = "the message exceeds its size limit";
		goto bad;
	}
	if (i_u8(&b, &type) != 0 || i_u32(&b, &m->id) != 0)
		goto bad;
	m->type = (uint8_t)type;
	if (want_reply) {
		if (type != SGN_MSG_HELLO && ((type & SGN_MSG_REPLY) == 0 ||
		    (type & ~SGN_MSG_REPLY) < SGN_MSG_AUTH ||
		    (type & ~SGN_MSG_REPLY) > SGN_MSG__LAST)) {
			fail(&b, "not a reply");
			goto bad;
		}
		r = i_reply(&b, m);
	} else {
		if (type < SGN_MSG_AUTH || type > SGN_MSG__LAST) {
			fail(&b, "unknown request type");
			goto bad;
		}
		r = i_request(&b, m);
	}
	if (r != 0)
		goto bad;
	if (b.off != b.len) {
		fail(&b, "trailing bytes");
		goto bad;
	}
	return 0;
bad:
	{
		char why[80];

		snprintf(why, sizeof(why), "%s", b.why ? b.why : "malformed");
		sgn_msg_clear(m);
		return amtca_fail(AMTCA_E_IPC, "bad signer message: %s", why);
	}
}
