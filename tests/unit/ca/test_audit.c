/*
 * ca/audit.c: the entry hash against vectors computed by hand (outside
 * amtca, from the layout in issue 10 section 3), UTF-8 checks, the anchor's
 * form, verify's diagnosis of each kind of tampering, the export lines, and
 * sealing through a store: every AMTCA_AUDIT_SEAL_EVERY entries, never over
 * a trail that no longer extends the anchored seal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ca/audit.h"
#include "common/limits.h"
#include "soft_signer.h"

static void
unhex(const char *h, unsigned char *out, size_t n)
{
	size_t i;
	unsigned int v;

	assert_int_equal(strlen(h), 2 * n);
	for (i = 0; i < n; i++) {
		assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
}

/*
 * Vectors: python3 hashlib over the layout written out byte by byte,
 * prev(32) || be64 seq || be64 time || be32 len || bytes ... (107 bytes
 * for the first).
 */
static void
test_hash_vector(void **state)
{
	unsigned char zero[32] = { 0 }, h1[32], h2[32], want[32];

	(void)state;
	assert_int_equal(audit_entry_hash(zero, 1, 1700000000, "alice@host",
	    "cert.issue", "0A1B", "fqdn=a.example.test", h1), 0);
	unhex("e418268c83adbb7a5b6105c4caf0d716f254222ed0342934b47121921e031062",
	    want, 32);
	assert_memory_equal(h1, want, 32);
	/* Chained, a two-byte UTF-8 character, empty subject and detail. */
	assert_int_equal(audit_entry_hash(h1, 2, 1700000001, "bob@h\xc3\xa9",
	    "crl.create", "", NULL, h2), 0);
	unhex("6c332b2b2bea3cb22b4398188075a9479f6d7b0227c98672e7e2b168aa1d328b",
	    want, 32);
	assert_memory_equal(h2, want, 32);
	/* Every field counts, and so does where one ends and the next begins. */
	assert_int_equal(audit_entry_hash(zero, 1, 1700000000, "alice@hos",
	    "tcert.issue", "0A1B", "fqdn=a.example.test", h2), 0);
	assert_memory_not_equal(h1, h2, 32);
}

static void
test_text_ok(void **state)
{
	char big[AMTCA_AUDIT_FIELD_MAX + 2];

	(void)state;
	assert_true(audit_text_ok("plain ascii", 64));
	assert_true(audit_text_ok("", 64));
	assert_true(audit_text_ok(NULL, 64));
	assert_true(audit_text_ok("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 64));
	assert_false(audit_text_ok("trunc\xc3", 64));
	assert_false(audit_text_ok("\xc0\xaf", 64));		/* overlong '/' */
	assert_false(audit_text_ok("\xed\xa0\x80", 64));		/* surrogate */
	assert_false(audit_text_ok("\xf4\x90\x80\x80", 64));	/* > U+10FFFF */
	assert_false(audit_text_ok("\xff", 64));
	assert_false(audit_text_ok("\xe2\x82", 64));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(audit_text_ok(big, AMTCA_AUDIT_FIELD_MAX));
	big[AMTCA_AUDIT_FIELD_MAX] = '\0';
	assert_true(audit_text_ok(big, AMTCA_AUDIT_FIELD_MAX));
}

static void
test_anchor_form(void **state)
{
	struct audit_anchor a, b;
	char buf[AMTCA_AUDIT_ANCHOR_MAX];
	size_t i;
	static const char *const bad[] = {
		"", "amtca-audit-anchor 1 0 "
		    "0000000000000000000000000000000000000000000000000000000000000000\n",
		"amtca-audit-anchor 2 5 "
		    "0000000000000000000000000000000000000000000000000000000000000000\n",
		"amtca-audit-anchor 1 5 00\n",
		"amtca-audit-anchor 1 5 "
		    "0000000000000000000000000000000000000000000000000000000000000000\nx",
	};

	(void)state;
	a.seq = 103;
	for (i = 0; i < 32; i++)
		a.hash[i] = (unsigned char)(i * 7);
	assert_int_equal(audit_anchor_format(&a, buf, sizeof(buf)), 0);
	assert_int_equal(audit_anchor_parse((unsigned char *)buf, strlen(buf), &b), 0);
	assert_int_equal(b.seq, 103);
	assert_memory_equal(a.hash, b.hash, 32);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(audit_anchor_parse((const unsigned char *)bad[i],
		    strlen(bad[i]), &b), AMTCA_E_AUDIT);
}

/* --- verify's diagnosis on an in-memory trail ----------------------------- */

#define N 30

static void
set(struct store_audit *e, uint64_t seq, const char *actor, const char *subject)
{
	memset(e, 0, sizeof(*e));
	e->seq = seq;
	e->time = 1700000000 + (int64_t)seq;
	e->actor = strdup(actor);
	e->action = strdup("cert.issue");
	e->subject = strdup(subject);
	e->detail = strdup("");
}

/* Hash e[from..n) in place, chained on e[from-1] and numbered as stored. */
static void
rechain(struct store_audit *e, size_t n, size_t from)
{
	size_t i;

	for (i = from; i < n; i++) {
		if (i == 0)
			memset(e[i].prev, 0, 32);
		else
			memcpy(e[i].prev, e[i - 1].hash, 32);
		assert_int_equal(audit_entry_hash(e[i].prev, e[i].seq, e[i].time,
		    e[i].actor, e[i].action, e[i].subject, e[i].detail,
		    e[i].hash), 0);
	}
}

static struct store_audit *
trail(size_t n)
{
	struct store_audit *e = calloc(n + 1, sizeof(*e));
	char subj[24];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(subj, sizeof(subj), "%02zX", i + 1);
		set(&e[i], i + 1, "op@host", subj);
	}
	rechain(e, n, 0);
	return e;
}

static void
expect(const struct store_audit *e, size_t n, const char *msg)
{
	int r = audit_verify(e, n, NULL, 0, NULL, NULL);

	assert_int_equal(r, AMTCA_E_AUDIT);
	if (strstr(amtca_errmsg(r), msg) == NULL)
		fail_msg("want \"%s\", got \"%s\"", msg, amtca_errmsg(r));
}

static void
test_verify_diagnosis(void **state)
{
	struct store_audit *e = trail(N), tmp;
	size_t i;

	(void)state;
	assert_int_equal(audit_verify(e, N, NULL, 0, NULL, NULL), 0);

	/* edited */
	free(e[16].actor);
	e[16].actor = strdup("mallory@x");
	expect(e, N, "entry 17: hash mismatch (edited)");
	free(e[16].actor);
	e[16].actor = strdup("op@host");
	assert_int_equal(audit_verify(e, N, NULL, 0, NULL, NULL), 0);
	/* edited with its own hash recomputed: the next link breaks */
	e[16].time++;
	rechain(e, 17, 16);
	expect(e, N, "entry 17: hash mismatch (edited: entry 18 no longer");
	e[16].time--;
	rechain(e, 17, 16);

	/* swapped: the rows trade places, the seq column stays */
	tmp = e[16];
	e[16] = e[17];
	e[17] = tmp;
	e[16].seq = 17;
	e[17].seq = 18;
	expect(e, N, "entry 17: out of order, swapped with entry 18 (reordered)");
	store_audits_free(e, N);

	/* deleted, not renumbered, then renumbered */
	e = trail(N);
	free(e[16].actor);
	free(e[16].action);
	free(e[16].subject);
	free(e[16].detail);
	memmove(&e[16], &e[17], (N - 17) * sizeof(*e));
	expect(e, N - 1, "entry 17: missing (deleted)");
	for (i = 16; i < N - 1; i++)
		e[i].seq--;
	expect(e, N - 1, "entry 17: missing (deleted)");
	store_audits_free(e, N - 1);

	/* inserted (renumbered after it), with a garbage hash and a good one */
	e = trail(N);
	memmove(&e[17], &e[16], (N - 16) * sizeof(*e));
	for (i = 17; i <= N; i++)
		e[i].seq++;
	set(&e[16], 17, "mallory@x", "FF");
	memcpy(e[16].prev, e[15].hash, 32);
	memset(e[16].hash, 0x5a, 32);
	expect(e, N + 1, "entry 17: not part of the chain (inserted)");
	rechain(e, 17, 16);
	expect(e, N + 1, "entry 17: not part of the chain (inserted before "
	    "entry 18)");
	store_audits_free(e, N + 1);
}

static void
test_verify_seals_and_anchor(void **state)
{
	struct store_audit *e = trail(N);
	struct soft_signer *ss = soft_signer_new(soft_key("p256", 0));
	struct store_seal seal[2];
	struct audit_anchor a;
	unsigned char sig[2][CA_SIG_MAX];
	size_t i, siglen;
	int r;

	(void)state;
	memset(seal, 0, sizeof(seal));
	for (i = 0; i < 2; i++) {
		seal[i].seq = i == 0 ? 10 : 20;
		memcpy(seal[i].hash, e[seal[i].seq - 1].hash, 32);
		siglen = sizeof(sig[i]);
		assert_int_equal(ss->s.sign(ss->s.ctx, EVP_sha256(), seal[i].hash,
		    32, sig[i], &siglen), 0);
		seal[i].sig = sig[i];
		seal[i].siglen = siglen;
		assert_true(audit_seal_check(ss->key, seal[i].hash, sig[i], siglen));
	}
	a.seq = 20;
	memcpy(a.hash, seal[1].hash, 32);
	assert_int_equal(audit_verify(e, N, seal, 2, ss->key, &a), 0);

	/* The chain rebuilt with valid hashes from entry 5 on: seals fail. */
	free(e[4].detail);
	e[4].detail = strdup("rewritten");
	rechain(e, N, 4);
	r = audit_verify(e, N, seal, 2, ss->key, &a);
	assert_int_equal(r, AMTCA_E_AUDIT);
	assert_non_null(strstr(amtca_errmsg(r), "seal of entry 10: the entry's "
	    "hash is not the sealed one"));
	store_audits_free(e, N);

	/* A bad signature. */
	e = trail(N);
	sig[0][seal[0].siglen / 2] ^= 1;
	r = audit_verify(e, N, seal, 2, ss->key, &a);
	assert_int_equal(r, AMTCA_E_AUDIT);
	assert_non_null(strstr(amtca_errmsg(r), "seal of entry 10: the signature "
	    "does not verify"));
	sig[0][seal[0].siglen / 2] ^= 1;

	/* Truncated back to entry 15, seal 20 gone too: the anchor says so. */
	r = audit_verify(e, 15, seal, 1, ss->key, &a);
	assert_int_equal(r, AMTCA_E_AUDIT);
	assert_non_null(strstr(amtca_errmsg(r), "trail ends at entry 15 "
	    "(truncated)"));
	/* Without the anchor that truncation would pass: it is the point. */
	assert_int_equal(audit_verify(e, 15, seal, 1, ss->key, NULL), 0);
	store_audits_free(e, N);
	soft_signer_free(ss);
}

static void
test_export_lines(void **state)
{
	struct store_audit e;
	struct store_seal s;
	unsigned char sig[3] = { 0xfb, 0xff, 0x00 };
	char *line = NULL;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.seq = 7;
	e.time = 1700000000;
	e.actor = (char *)"a\"b\\c";
	e.action = (char *)"enroll.outcome";
	e.subject = (char *)"x.example.test";
	e.detail = (char *)"line1\nline2\t\x01 caf\xc3\xa9";
	memset(e.prev, 0xab, 32);
	memset(e.hash, 0x01, 32);
	assert_int_equal(audit_entry_json(&e, &line), 0);
	assert_string_equal(line, "{\"seq\":7,\"time\":1700000000,\"actor\":"
	    "\"a\\\"b\\\\c\",\"action\":\"enroll.outcome\",\"subject\":"
	    "\"x.example.test\",\"detail\":\"line1\\nline2\\t\\u0001 caf\xc3\xa9\","
	    "\"prev\":\"abababababababababababababababababababababababababababababababab\","
	    "\"hash\":\"0101010101010101010101010101010101010101010101010101010101010101\"}\n");
	free(line);
	memset(&s, 0, sizeof(s));
	s.seq = 7;
	memset(s.hash, 0x01, 32);
	s.sig = sig;
	s.siglen = sizeof(sig);
	assert_int_equal(audit_seal_json(&s, &line), 0);
	assert_string_equal(line, "{\"seal\":7,\"hash\":"
	    "\"0101010101010101010101010101010101010101010101010101010101010101\","
	    "\"signature\":\"+/8A\"}\n");
	free(line);
}

/* --- sealing through a store --------------------------------------------- */

struct mem_anchor {
	struct audit_anchor a;
	int have;
	int writes;
	struct soft_signer *ss;
};

static int
mem_anchor_put(void *ctx, uint64_t seq, const unsigned char hash[32])
{
	struct mem_anchor *m = ctx;

	m->a.seq = seq;
	memcpy(m->a.hash, hash, 32);
	m->have = 1;
	m->writes++;
	return 0;
}

static int
mem_anchor_get(void *ctx, struct audit_anchor *out)
{
	struct mem_anchor *m = ctx;

	if (!m->have)
		return AMTCA_E_NOT_FOUND;
	*out = m->a;
	return 0;
}

static void
hook(void *arg, struct store *s)
{
	struct mem_anchor *m = arg;
	struct audit_sealer sl = { &m->ss->s, mem_anchor_put, mem_anchor_get, m };

	assert_int_equal(audit_seal(s, "signer@host", &sl, NULL), 0);
}

static void
test_seal_every_100(void **state)
{
	char *dir = test_tmpdir(), uri[600], subj[32];
	struct store *s = NULL;
	struct store_audit *e = NULL;
	struct store_seal *sl = NULL;
	struct mem_anchor m;
	struct store_cert c;
	unsigned char der[3] = { 0x30, 0x01, 0x00 };
	uint64_t head, sealed, prev_seal = 0;
	size_t n = 0, ns = 0, i;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.ss = soft_signer_new(soft_key("p256", 0));
	snprintf(uri, sizeof(uri), "sqlite:%s/a.db", dir);
	assert_int_equal(store_open(uri, 1, &s), 0);
	assert_int_equal(store_set_actor(s, "op@host"), 0);
	store_set_sealer(s, hook, &m);
	for (i = 0; i < 250; i++) {
		if (i % 2 == 0) {
			snprintf(subj, sizeof(subj), "%04zX", i + 1);
			memset(&c, 0, sizeof(c));
			c.serial = subj;
			c.fqdn = (char *)"a.example.test";
			c.der = der;
			c.der_len = sizeof(der);
			assert_int_equal(store_cert_add(s, &c), 0);
		} else
			assert_int_equal(store_audit_append(s, NULL, "enroll.outcome",
			    "a.example.test", "enrolled"), 0);
		/* Never more than the limit unsealed after an append returns. */
		assert_int_equal(store_audit_status(s, &head, &sealed), 0);
		assert_true(head - sealed < AMTCA_AUDIT_SEAL_EVERY);
	}
	assert_int_equal(store_audit_list(s, 0, &e, &n), 0);
	assert_int_equal(store_seal_list(s, &sl, &ns), 0);
	/* The first append (never sealed), then every 100: 250 appends and
	 * 3 seal entries. */
	assert_int_equal(ns, 3);
	assert_int_equal(sl[0].seq, 2);
	for (i = 0; i < ns; i++) {
		assert_true(sl[i].seq - prev_seal <= AMTCA_AUDIT_SEAL_EVERY + 1);
		assert_string_equal(e[sl[i].seq - 1].action, "audit.seal");
		assert_string_equal(e[sl[i].seq - 1].actor, "signer@host");
		prev_seal = sl[i].seq;
	}
	assert_int_equal(m.a.seq, sl[ns - 1].seq);
	assert_int_equal(audit_verify(e, n, sl, ns, m.ss->key, &m.a), 0);
	/* A "ca.*" entry is sealed at once. */
	assert_int_equal(store_audit_append(s, NULL, "ca.rotate", "gen 2", ""), 0);
	assert_int_equal(store_audit_status(s, &head, &sealed), 0);
	assert_int_equal(head, sealed);
	assert_int_equal(m.a.seq, head);

	/* A seal over a hash the store does not hold is refused. */
	sl[0].hash[0] ^= 1;
	assert_int_equal(store_seal_add(s, &sl[0]), AMTCA_E_AUDIT);
	sl[0].hash[0] ^= 1;

	/* The anchor names an entry the trail no longer has: no seal. */
	store_set_sealer(s, NULL, NULL);
	m.a.seq = head + 50;
	{
		struct audit_sealer x = { &m.ss->s, mem_anchor_put, mem_anchor_get, &m };
		int w = m.writes, r = audit_seal(s, NULL, &x, NULL);

		assert_int_equal(r, AMTCA_E_AUDIT);
		assert_non_null(strstr(amtca_errmsg(r), "refusing to seal"));
		assert_int_equal(m.writes, w);
	}
	store_audits_free(e, n);
	store_seals_free(sl, ns);
	store_close(s);
	soft_signer_free(m.ss);
	test_rmrf(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_vector),
		cmocka_unit_test(test_text_ok),
		cmocka_unit_test(test_anchor_form),
		cmocka_unit_test(test_verify_diagnosis),
		cmocka_unit_test(test_verify_seals_and_anchor),
		cmocka_unit_test(test_export_lines),
		cmocka_unit_test(test_seal_every_100),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
