/*
 * ca/audit.h: the audit trail's format, its verification and sealing
 * (docs/audit.md).  Pure: hashing, checking and formatting work on records
 * the store hands out (ca/store.h: struct store_audit, struct store_seal);
 * sealing signs through a struct ca_signer, like everything else in ca/,
 * and leaves the token's anchor to a callback.  No PKCS#11, no SQL.
 *
 * An entry's hash (issue 10, section 3), every integer big-endian:
 *   hash = SHA-256( prev || be64(seq) || be64(time) ||
 *                   be32(len(actor)) || actor || be32(len(action)) || action ||
 *                   be32(len(subject)) || subject || be32(len(detail)) || detail )
 * prev is the previous entry's hash, 32 zero bytes for seq 1.  A seal is the
 * audit key's signature with SHA-256 over the 32 bytes of an entry's hash
 * (RSA PKCS#1 v1.5, or ECDSA as a DER Ecdsa-Sig-Value).
 */
#ifndef AMTCA_CA_AUDIT_H
#define AMTCA_CA_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ca/store.h"
#include "common/err.h"
#include "common/signer.h"

#define AUDIT_HASH_LEN 32

/*
 * The entry hash above into out.  Strings are taken as the bytes they are
 * (NULL is the empty string).  0 or AMTCA_E_INTERNAL.
 */
int audit_entry_hash(const unsigned char prev[AUDIT_HASH_LEN], uint64_t seq,
    int64_t time, const char *actor, const char *action, const char *subject,
    const char *detail, unsigned char out[AUDIT_HASH_LEN]) AMTCA_WUR;

/*
 * Is `s` fit for an entry field: valid UTF-8 without NUL, at most `max`
 * bytes?  1 or 0.  (Export is JSON; a field that is not UTF-8 could not be
 * exported byte for byte, so the store refuses it.)
 */
int audit_text_ok(const char *s, size_t max);

/* Does `sig` verify as a seal over `hash` under `pub`?  1 yes, 0 no. */
int audit_seal_check(EVP_PKEY *pub, const unsigned char hash[AUDIT_HASH_LEN],
    const unsigned char *sig, size_t siglen);

/* What the token's anchor holds: the latest seal's entry and its hash. */
struct audit_anchor {
	uint64_t seq;
	unsigned char hash[AUDIT_HASH_LEN];
};

/* The anchor's bytes in the token: "amtca-audit-anchor 1 SEQ HEX\n". */
int audit_anchor_format(const struct audit_anchor *a, char *buf, size_t len) AMTCA_WUR;
/* AMTCA_E_AUDIT for anything else. */
int audit_anchor_parse(const unsigned char *buf, size_t len,
    struct audit_anchor *out) AMTCA_WUR;

/*
 * Check the whole trail: entries e[0..n) as stored (ordered by seq), every
 * seal (each must name a stored entry with the same hash and verify under
 * `pub`; `pub` NULL skips signatures), and the anchor (NULL: none to check).
 * 0, or AMTCA_E_AUDIT with a one-line detail naming the first entry that
 * was edited, deleted, inserted or reordered ("entry 17: hash mismatch
 * (edited)"), a bad seal, or a trail truncated before the anchored seal.
 */
int audit_verify(const struct store_audit *e, size_t n,
    const struct store_seal *seals, size_t nseals, EVP_PKEY *pub,
    const struct audit_anchor *anchor) AMTCA_WUR;

/*
 * Export lines (malloc'd, ending in '\n'), exactly:
 *   {"seq":N,"time":N,"actor":"..","action":"..","subject":"..","detail":"..","prev":"hex","hash":"hex"}
 *   {"seal":SEQ,"hash":"hex","signature":"base64"}
 */
int audit_entry_json(const struct store_audit *e, char **out) AMTCA_WUR;
int audit_seal_json(const struct store_seal *s, char **out) AMTCA_WUR;

/*
 * Sealing.  `key` is the audit key's signer; `anchor(ctx, seq, hash)`
 * rewrites the anchor outside the database (the token's data object).
 */
struct audit_sealer {
	const struct ca_signer *key;
	int (*anchor)(void *ctx, uint64_t seq, const unsigned char hash[AUDIT_HASH_LEN]);
	/* The current anchor; AMTCA_E_NOT_FOUND when none (NULL: none). */
	int (*anchor_get)(void *ctx, struct audit_anchor *out);
	void *ctx;
};

/*
 * Seal the trail: append an "audit.seal" entry by `actor` (NULL: the
 * store's actor), sign the hash the store returned for it (the head this
 * process read itself, never one handed in), record the seal, then rewrite
 * the anchor.  *seq (if not NULL) is the sealed entry.  A failure after
 * the entry was appended leaves it unsealed; the next seal covers it.
 * Before signing, the entries from the anchored one to the new head must
 * still chain (AMTCA_E_AUDIT otherwise): a truncated or rewritten trail is
 * never sealed, so a seal cannot launder it and the anchor keeps pointing
 * at the evidence.
 */
int audit_seal(struct store *s, const char *actor,
    const struct audit_sealer *sl, uint64_t *seq) AMTCA_WUR;

#endif
