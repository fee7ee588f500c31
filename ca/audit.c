/*
 * The audit trail's format, verification and sealing (ca/audit.h).
 *
 * Verification walks the entries in stored order and stops at the first
 * one that does not continue the chain.  It then explains the break from
 * what the rows still say about themselves: an entry whose own hash
 * matches its fields at another seq was moved (renumbered), one whose
 * removal lets the chain continue was inserted, a gap in seq or a row
 * whose fields hash as a later seq means rows were deleted, two
 * neighbours that each hash as the other's seq were swapped, and anything
 * else was edited.  Seals then pin what a rewriter could recompute: a
 * chain rebuilt from scratch still fails every seal signed before it,
 * and the token's anchor catches a truncation that removed the last seal.
 */
#include "ca/audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "common/json.h"
#include "common/limits.h"

static void
put32(EVP_MD_CTX *c, const char *s, int *ok)
{
	unsigned char b[4];
	size_t n = s != NULL ? strlen(s) : 0;

	b[0] = (unsigned char)(n >> 24);
	b[1] = (unsigned char)(n >> 16);
	b[2] = (unsigned char)(n >> 8);
	b[3] = (unsigned char)n;
	if (!EVP_DigestUpdate(c, b, 4) || (n > 0 && !EVP_DigestUpdate(c, s, n)))
		*ok = 0;
}

static void
be64(unsigned char b[8], uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		b[i] = (unsigned char)v;
		v >>= 8;
	}
}

int
audit_entry_hash(const unsigned char prev[AUDIT_HASH_LEN], uint64_t seq,
    int64_t time, const char *actor, const char *action, const char *subject,
    const char *detail, unsigned char out[AUDIT_HASH_LEN])
{
	EVP_MD_CTX *c = NULL;
	unsigned char b[16];
	unsigned int len = 0;
	int ok = 1, ret = AMTCA_E_INTERNAL;

	be64(b, seq);
	be64(b + 8, (uint64_t)time);
	if ((c = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(c, prev, AUDIT_HASH_LEN) ||
	    !EVP_DigestUpdate(c, b, sizeof(b))) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot hash an audit entry");
		goto out;
	}
	put32(c, actor, &ok);
	put32(c, action, &ok);
	put32(c, subject, &ok);
	put32(c, detail, &ok);
	if (!ok || !EVP_DigestFinal_ex(c, out, &len) || len != AUDIT_HASH_LEN) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot hash an audit entry");
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(c);
	return ret;
}

int
audit_text_ok(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n, k;
	uint32_t cp;

	if (s == NULL)
		return 1;
	if ((n = strlen(s)) > max)
		return 0;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			k = 1;
			cp = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			k = 2;
			cp = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			k = 3;
			cp = p[i] & 0x07;
		} else
			return 0;
		if (i + k >= n)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		/* Shortest form only, no surrogates, nothing past U+10FFFF. */
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
		    (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

int
audit_seal_check(EVP_PKEY *pub, const unsigned char hash[AUDIT_HASH_LEN],
    const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *c = NULL;
	int ok = 0;

	if (pub == NULL || sig == NULL || siglen == 0)
		return 0;
	if ((c = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pub) == 1 &&
	    EVP_DigestVerify(c, sig, siglen, hash, AUDIT_HASH_LEN) == 1)
		ok = 1;
	EVP_MD_CTX_free(c);
	ERR_clear_error();
	return ok;
}

static void
hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
unhex(const char *s, size_t slen, unsigned char *out, size_t n)
{
	size_t i;
	int hi, lo;

	if (slen != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		hi = OPENSSL_hexchar2int((unsigned char)s[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int
audit_anchor_format(const struct audit_anchor *a, char *buf, size_t len)
{
	char h[2 * AUDIT_HASH_LEN + 1];
	int n;

	hex(a->hash, AUDIT_HASH_LEN, h);
	n = snprintf(buf, len, "amtca-audit-anchor 1 %" PRIu64 " %s\n", a->seq, h);
	if (n < 0 || (size_t)n >= len)
		return amtca_fail(AMTCA_E_INTERNAL, "audit anchor too long");
	return 0;
}

int
audit_anchor_parse(const unsigned char *buf, size_t len, struct audit_anchor *out)
{
	char tmp[AMTCA_AUDIT_ANCHOR_MAX + 1], h[2 * AUDIT_HASH_LEN + 2];
	unsigned long long seq;
	int used = 0;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > AMTCA_AUDIT_ANCHOR_MAX)
		goto bad;
	memcpy(tmp, buf, len);
	tmp[len] = '\0';
	if (strlen(tmp) != len ||
	    sscanf(tmp, "amtca-audit-anchor 1 %llu %65s\n%n", &seq, h, &used) != 2 ||
	    (size_t)used != len || seq == 0 ||
	    unhex(h, strlen(h), out->hash, AUDIT_HASH_LEN) != 0)
		goto bad;
	out->seq = seq;
	return 0;
bad:
	return amtca_fail(AMTCA_E_AUDIT, "the token's audit anchor is not in the "
	    "expected form");
}

/* Does e hash to its stored hash when taken as entry `seq` after `prev`? */
static int
hashes_as(const struct store_audit *e, uint64_t seq, const unsigned char *prev)
{
	unsigned char h[AUDIT_HASH_LEN];

	if (audit_entry_hash(prev != NULL ? prev : e->prev, seq, e->time, e->actor,
	    e->action, e->subject, e->detail, h) != 0)
		return 0;
	return CRYPTO_memcmp(h, e->hash, AUDIT_HASH_LEN) == 0;
}

/* The seq, near e's stored one, its own hash says it was written as; 0. */
static uint64_t
written_as(const struct store_audit *e, size_t n)
{
	uint64_t k, lo, hi;

	if (hashes_as(e, e->seq, NULL))
		return e->seq;
	/* Renumbering after a few inserts or deletes moves rows by a few. */
	lo = e->seq > 64 ? e->seq - 64 : 1;
	hi = e->seq + 64 + n / 1024;
	for (k = lo; k <= hi; k++)
		if (k != e->seq && hashes_as(e, k, NULL))
			return k;
	return 0;
}

static int
broken(const struct store_audit *e, size_t n, size_t i, uint64_t want,
    const unsigned char *prev)
{
	const struct store_audit *x = &e[i], *nx = i + 1 < n ? &e[i + 1] : NULL;
	uint64_t k;

	if (x->seq > want)
		return amtca_fail(AMTCA_E_AUDIT, x->seq - want == 1 ?
		    "entry %" PRIu64 ": missing (deleted)" :
		    "entry %" PRIu64 ": missing, with the %" PRIu64 " entries after "
		    "it (deleted)", want, x->seq - want - 1);
	if (x->seq < want)
		return amtca_fail(AMTCA_E_AUDIT, "entry %" PRIu64 ": out of "
		    "sequence (inserted)", x->seq);
	k = written_as(x, n);
	/* x and its neighbour each carry the other's place. */
	if (k == want + 1 && nx != NULL && written_as(nx, n) == want &&
	    CRYPTO_memcmp(nx->prev, prev, AUDIT_HASH_LEN) == 0)
		return amtca_fail(AMTCA_E_AUDIT, "entry %" PRIu64 ": out of order, "
		    "swapped with entry %" PRIu64 " (reordered)", want, want + 1);
	/* Without x the chain goes on: x was put in. */
	if (nx != NULL && CRYPTO_memcmp(nx->prev, prev, AUDIT_HASH_LEN) == 0 &&
	    (hashes_as(nx, want, NULL) || hashes_as(nx, nx->seq, NULL)))
		return amtca_fail(AMTCA_E_AUDIT, "entry %" PRIu64 ": not part of "
		    "the chain (inserted)", want);
	if (k > want)
		return amtca_fail(AMTCA_E_AUDIT, k - want == 1 ?
		    "entry %" PRIu64 ": missing (deleted)" :
		    "entry %" PRIu64 ": missing, with the %" PRIu64 " entries after "
		    "it (deleted)", want, k - want - 1);
	if (k != 0 && k < want)
		return amtca_fail(AMTCA_E_AUDIT, "entry %" PRIu64 ": not part of the "
		    "chain (inserted before entry %" PRIu64 ")", k, want);
	if (k == 0)
		return amtca_fail(AMTCA_E_AUDIT, "entry %" PRIu64 ": hash mismatch "
		    "(edited)", want);
	/* Intact itself, but it no longer follows its predecessor. */
	if (i > 0)
		return amtca_fail(AMTCA_E_AUDIT, "entry %" PRIu64 ": hash mismatch "
		    "(edited: entry %" PRIu64 " no longer follows it)",
		    e[i - 1].seq, want);
	return amtca_fail(AMTCA_E_AUDIT, "entry %" PRIu64 ": does not start the "
	    "chain (edited)", want);
}

static const struct store_audit *
find_seq(const struct store_audit *e, size_t n, uint64_t seq)
{
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (e[mid].seq == seq)
			return &e[mid];
		if (e[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int
audit_verify(const struct store_audit *e, size_t n,
    const struct store_seal *seals, size_t nseals, EVP_PKEY *pub,
    const struct audit_anchor *anchor)
{
	static const unsigned char zero[AUDIT_HASH_LEN];
	const unsigned char *prev = zero;
	const struct store_audit *x;
	uint64_t want = 1;
	size_t i;

	for (i = 0; i < n; i++, want++) {
		if (e[i].seq != want || CRYPTO_memcmp(e[i].prev, prev,
		    AUDIT_HASH_LEN) != 0 || !hashes_as(&e[i], want, prev))
			return broken(e, n, i, want, prev);
		prev = e[i].hash;
	}
	for (i = 0; i < nseals; i++) {
		if ((x = find_seq(e, n, seals[i].seq)) == NULL)
			return amtca_fail(AMTCA_E_AUDIT, "seal of entry %" PRIu64 ": "
			    "the entry is missing (truncated after entry %zu)",
			    seals[i].seq, n);
		if (CRYPTO_memcmp(x->hash, seals[i].hash, AUDIT_HASH_LEN) != 0)
			return amtca_fail(AMTCA_E_AUDIT, "seal of entry %" PRIu64 ": "
			    "the entry's hash is not the sealed one (the chain up to "
			    "it was rewritten)", seals[i].seq);
		if (pub != NULL && !audit_seal_check(pub, seals[i].hash,
		    seals[i].sig, seals[i].siglen))
			return amtca_fail(AMTCA_E_AUDIT, "seal of entry %" PRIu64 ": "
			    "the signature does not verify under the audit key",
			    seals[i].seq);
	}
	if (anchor != NULL) {
		if ((x = find_seq(e, n, anchor->seq)) == NULL)
			return amtca_fail(AMTCA_E_AUDIT, "the token's anchor names "
			    "the seal of entry %" PRIu64 " but the trail ends at "
			    "entry %zu (truncated)", anchor->seq, n);
		if (CRYPTO_memcmp(x->hash, anchor->hash, AUDIT_HASH_LEN) != 0)
			return amtca_fail(AMTCA_E_AUDIT, "entry %" PRIu64 ": not the "
			    "entry the token's anchor sealed (rewritten)", anchor->seq);
		for (i = 0; i < nseals && seals[i].seq != anchor->seq; i++)
			;
		if (i == nseals)
			return amtca_fail(AMTCA_E_AUDIT, "the seal of entry %" PRIu64
			    " that the token's anchor names is missing (deleted)",
			    anchor->seq);
	}
	return 0;
}

int
audit_entry_json(const struct store_audit *e, char **out)
{
	char ph[2 * AUDIT_HASH_LEN + 1], hh[2 * AUDIT_HASH_LEN + 1];
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	*out = NULL;
	if ((f = open_memstream(&buf, &len)) == NULL)
		return AMTCA_E_NOMEM;
	hex(e->prev, AUDIT_HASH_LEN, ph);
	hex(e->hash, AUDIT_HASH_LEN, hh);
	fprintf(f, "{\"seq\":%" PRIu64 ",\"time\":%" PRId64 ",\"actor\":", e->seq,
	    e->time);
	json_put_string(f, e->actor);
	fputs(",\"action\":", f);
	json_put_string(f, e->action);
	fputs(",\"subject\":", f);
	json_put_string(f, e->subject);
	fputs(",\"detail\":", f);
	json_put_string(f, e->detail);
	fprintf(f, ",\"prev\":\"%s\",\"hash\":\"%s\"}\n", ph, hh);
	if (fclose(f) != 0) {
		free(buf);
		return AMTCA_E_NOMEM;
	}
	*out = buf;
	return 0;
}

int
audit_seal_json(const struct store_seal *s, char **out)
{
	char hh[2 * AUDIT_HASH_LEN + 1], *b64 = NULL;
	size_t cap;
	int n, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (s->siglen == 0 || s->siglen > CA_SIG_MAX)
		return amtca_fail(AMTCA_E_AUDIT, "seal of entry %" PRIu64 " has no "
		    "usable signature", s->seq);
	cap = 4 * ((s->siglen + 2) / 3) + 1;
	if ((b64 = malloc(cap)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, s->sig, (int)s->siglen);
	hex(s->hash, AUDIT_HASH_LEN, hh);
	n = asprintf(out, "{\"seal\":%" PRIu64 ",\"hash\":\"%s\",\"signature\":"
	    "\"%s\"}\n", s->seq, hh, b64);
	if (n < 0) {
		*out = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	ret = 0;
out:
	free(b64);
	return ret;
}

/*
 * Do the stored entries from the anchored one up to (seq, hash) chain?
 * Reads only what was appended since the last anchored seal.
 */
static int
extends_anchor(struct store *s, const struct audit_sealer *sl, uint64_t seq,
    const unsigned char hash[AUDIT_HASH_LEN])
{
	struct store_audit *e = NULL;
	struct audit_anchor a;
	size_t n = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	if (sl->anchor_get == NULL)
		return 0;
	if ((r = sl->anchor_get(sl->ctx, &a)) == AMTCA_E_NOT_FOUND) {
		amtca_err_clear();
		return 0;		/* the first seal */
	}
	if (r != 0)
		return r;
	if ((r = store_audit_list(s, a.seq - 1, &e, &n)) != 0) {
		ret = r;
		goto out;
	}
	if (n == 0 || e[0].seq != a.seq ||
	    CRYPTO_memcmp(e[0].hash, a.hash, AUDIT_HASH_LEN) != 0) {
		ret = amtca_fail(AMTCA_E_AUDIT, "refusing to seal: entry %" PRIu64
		    " is no longer the one the token's anchor sealed (truncated "
		    "or rewritten; run 'amtca audit verify')", a.seq);
		goto out;
	}
	for (i = 1; i < n && e[i].seq <= seq; i++)
		if (e[i].seq != e[i - 1].seq + 1 ||
		    CRYPTO_memcmp(e[i].prev, e[i - 1].hash, AUDIT_HASH_LEN) != 0 ||
		    !hashes_as(&e[i], e[i].seq, NULL)) {
			ret = amtca_fail(AMTCA_E_AUDIT, "refusing to seal: the trail "
			    "breaks at entry %" PRIu64 " after the anchored seal "
			    "(run 'amtca audit verify')", e[i - 1].seq + 1);
			goto out;
		}
	if (e[i - 1].seq != seq ||
	    CRYPTO_memcmp(e[i - 1].hash, hash, AUDIT_HASH_LEN) != 0) {
		ret = amtca_fail(AMTCA_E_AUDIT, "refusing to seal: entry %" PRIu64
		    " changed while being sealed", seq);
		goto out;
	}
	ret = 0;
out:
	store_audits_free(e, n);
	return ret;
}

int
audit_seal(struct store *s, const char *actor, const struct audit_sealer *sl,
    uint64_t *seqp)
{
	struct store_seal seal;
	unsigned char sig[CA_SIG_MAX];
	size_t siglen = sizeof(sig);
	struct audit_anchor a;
	uint64_t seq = 0;
	int r;

	if (seqp != NULL)
		*seqp = 0;
	if (s == NULL || sl == NULL || sl->key == NULL || sl->key->sign == NULL)
		return amtca_fail(AMTCA_E_USAGE, "audit_seal: no store or no key");
	memset(&seal, 0, sizeof(seal));
	if ((r = store_audit_append_get(s, actor, "audit.seal", "", "", &seq,
	    seal.hash)) != 0)
		return r;
	if ((r = extends_anchor(s, sl, seq, seal.hash)) != 0)
		return r;
	if ((r = sl->key->sign(sl->key->ctx, EVP_sha256(), seal.hash,
	    AUDIT_HASH_LEN, sig, &siglen)) != 0)
		return r;
	/* A key that signs wrongly would make every later verify fail: check. */
	if (sl->key->pub != NULL &&
	    !audit_seal_check(sl->key->pub, seal.hash, sig, siglen))
		return amtca_fail(AMTCA_E_HSM, "the audit key's signature does not "
		    "verify under its own public key");
	seal.seq = seq;
	seal.sig = sig;
	seal.siglen = siglen;
	seal.time = (int64_t)time(NULL);
	if ((r = store_seal_add(s, &seal)) != 0)
		return r;
	/* After the seal is durable: an anchor never names a missing seal. */
	if (sl->anchor != NULL) {
		a.seq = seq;
		memcpy(a.hash, seal.hash, AUDIT_HASH_LEN);
		if ((r = sl->anchor(sl->ctx, seq, a.hash)) != 0)
			return r;
	}
	if (seqp != NULL)
		*seqp = seq;
	return 0;
}
