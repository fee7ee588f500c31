/*
 * enroll/home.h: the composition root.  One call opens a CA home (its
 * configuration, the store, the token and signer, the CA, the chain) for
 * any front end: the command line, the fleet engine, the service.  Nothing
 * here prints; failures carry an amtca_fail() detail.
 */
#ifndef AMTCA_ENROLL_HOME_H
#define AMTCA_ENROLL_HOME_H

#include <stddef.h>

#include <openssl/x509.h>

#include "ca/audit.h"
#include "ca/ca.h"
#include "ca/store.h"
#include "common/err.h"
#include "common/limits.h"
#include "enroll/enroll.h"
#include "hsm/hsm.h"

/*
 * File names inside the CA home.  Public files sit at the top; what only
 * the signer reads is in keys/ (0700), the operational state a service
 * user may own in state/ (0700).  Both stores use the same store code and
 * schema; each holds only its own tables' rows.
 */
#define HOME_CONF      "amtca.conf"
#define HOME_PENDING_CSR "intermediate.csr"	/* init --external-root: the
					   request; present until
					   ca import-intermediate */
#define HOME_NEXT_CSR "intermediate-next.csr"	/* ca rotate --csr-out
					   (external root): the next
					   intermediate's request; present
					   until ca import-intermediate */
#define HOME_ROOT_PEM  "root.pem"
#define HOME_INTER_PEM "intermediate.pem"
#define HOME_CHAIN_PEM "chain.pem"	/* bottom to top, for consoles */
#define HOME_RETIRED_PEM "intermediate-retired.pem"	/* after `ca rotate`:
					   the earlier intermediates still in
					   their overlap, newest first (absent:
					   none) */
#define HOME_KEYS_DIR  "keys"
#define HOME_STATE_DIR "state"
#define HOME_CA_DB     "keys/ca.db"	/* the CA's records (signer only) */
#define HOME_STATE_DB  "state/state.db"	/* devices, jobs, leases, sealed
					   credentials */
#define HOME_HSM_DIR   "keys/softhsm"	/* the embedded token */
#define HOME_PIN_FILE  "keys/softhsm/user.pin"
/* Homes made before the split: one store for both roles, token at the
 * top.  Still opened as they are (h->store == h->state); never migrated. */
#define HOME_DB        "amtca.db"
#define HOME_OLD_HSM_DIR "softhsm"
#define KEY_LABEL_ROOT  "amtca-root"
#define KEY_LABEL_INTER "amtca-intermediate"	/* generation 1; generation
					   N > 1 (after `ca rotate`) is
					   "amtca-intermediate-gN" */
#define HOME_INTER_GEN_MAX 9999		/* intermediate generations */
/* Room for any intermediate key label, NUL included. */
#define HOME_INTER_LABEL_MAX 32
#define KEY_LABEL_AUDIT "amtca-audit"		/* seals the audit trail */
#define HOME_AUDIT_ANCHOR "amtca-audit-anchor"	/* token data object */

/* amtca.conf as parsed (key = value lines; see amtca.conf(5)). */
struct home_conf {
	char *module;
	char *token_uri;
	char *pin_file;
	char *softhsm_conf;		/* set for the embedded SoftHSM token */
	char *root_token_uri;		/* init --root-token-uri: the root key's
					   own token (same module), offline
					   except for init, rotation and the
					   root's CRL; NULL: the root key is
					   in token_uri's token (or external) */
	char *root_pin_file;		/* its PIN (NULL: the URI's pin-source) */
	char *module_env[AMTCA_MODULE_ENV_MAX];	/* "NAME=value" for the module */
	size_t nmodule_env;
	char *key_type;
	char *domains[AMTCA_DOMAINS_MAX];
	size_t ndomains;
	int any_domain;			/* "any_domain = yes": no domain lines */
	char *ip_ranges[AMTCA_IP_RANGES_MAX];	/* canonical CIDR */
	size_t nip_ranges;
	char *org;
	char *country;
	int days;
	int skew_s;
	int allow_wildcard;
	int client_auth;
	char *crl_url;
	char *aia_url;
	char *home_id;			/* HOME_ID_LEN hex digits; NULL in homes
					   made before identities */
	char *restored_from;		/* home_id of the backup's home, when
					   this home was made by restore */
	char *credential_mechanism;	/* NULL: auto (see hsm_aead_seal) */
	char *intermediate_key;		/* "intermediate_key = LABEL": the
					   token key of the current
					   intermediate (NULL: KEY_LABEL_INTER);
					   set by `ca rotate` */
	char *store;			/* "store = URI": one shared store
					   (postgresql://...) for the CA
					   records and the state; NULL: the
					   home's SQLite files */
};

/*
 * A home's identity: random, made by init (and by restore, which also
 * records the backed-up home's as restored_from), so that two homes that
 * share a CA key (a restored copy beside its original) can be told apart.
 */
#define HOME_ID_LEN 32
int home_id_new(char out[HOME_ID_LEN + 1]) AMTCA_WUR;
/* Is `s` a well-formed home id? */
int home_id_valid(const char *s);

/* An opened CA home.  Fields are valid according to the open flags. */
struct home {
	char *dir;
	int split;			/* keys/ + state/ (else the old layout:
					   amtca.db for both) */
	struct home_conf conf;
	struct ca_policy policy;	/* views into conf */
	X509 *root;
	X509 *inter;			/* the current (issuing) intermediate */
	X509 **retired;			/* earlier intermediates still in their
					   overlap (HOME_RETIRED_PEM), newest
					   first: they sign only their CRLs */
	size_t nretired;
	char *chain_path;		/* absolute path of chain.pem */
	struct store *store;		/* HOME_STORE or HOME_SIGNER: the CA's
					   records, keys/ca.db */
	struct store *state;		/* HOME_STORE or HOME_STATE: the
					   operational state (devices, jobs,
					   leases, sealed credentials);
					   state/state.db, or the same store
					   as `store` in an old home */
	struct hsm *hsm;		/* HOME_SIGNER */
	struct hsm_key *inter_key;	/* HOME_SIGNER */
	char inter_label[HOME_INTER_LABEL_MAX];	/* HOME_SIGNER: its label */
	unsigned inter_gen;		/* HOME_SIGNER: its generation (1..) */
	struct ca_signer signer;	/* HOME_SIGNER */
	struct hsm_key **retired_keys;	/* HOME_SIGNER: [nretired], each
					   retired intermediate's key (NULL
					   when the token lacks it) */
	unsigned *retired_gen;		/* HOME_SIGNER: their generations */
	struct ca_signer *retired_signers;	/* HOME_SIGNER */
	struct ca **retired_ca;		/* HOME_SIGNER: NULL without a key;
					   they sign only their own CRLs */
	struct hsm_key *audit_key;	/* HOME_SIGNER: seals the audit trail
					   (found, or made on first use; with
					   HOME_NO_SEAL only found: may be
					   NULL) */
	struct ca_signer audit_signer;	/* HOME_SIGNER */
	struct ca *ca;			/* HOME_SIGNER */
	struct enroll_ctx engine;	/* what enroll_run() takes, views into
					   the fields above; engine.sgn is
					   NULL: the front end sets the signer
					   it started (sgn_spawn) */
};

#define HOME_STORE  0x1		/* open the CA records and the state */
#define HOME_SIGNER 0x2		/* log in to the token, resolve the issuing key */
#define HOME_NO_SEAL 0x100	/* with HOME_SIGNER: never seal the audit
				   trail (audit verify reads, changes nothing) */
#define HOME_PENDING 0x200	/* a home waiting for its intermediate
				   (init --external-root): configuration and
				   stores only, no certificates (h->root and
				   h->inter NULL), never HOME_SIGNER */
#define HOME_STATE  0x4		/* only the operational state (h->state;
				   h->store stays NULL): what a front end
				   opens, the signer holding the rest */

/*
 * The root key, for what needs it (`what`: "crl --root", "ca rotate"):
 * from the offline root token (conf root_token_uri; opened here into
 * *own, which the caller frees after *out) or else the CA's own token
 * (h->hsm: HOME_SIGNER).  A clear one-line error when the root token is
 * absent, or when the root is external (no root key in any token).
 */
int home_root_key(struct home *h, const char *what, struct hsm **own,
    struct hsm_key **out) AMTCA_WUR;

/*
 * Intermediate key labels by generation (docs/rotation.md): 1 is
 * KEY_LABEL_INTER, N > 1 KEY_LABEL_INTER "-gN".  home_inter_label_gen()
 * is the inverse: 0 for anything else.
 */
void home_inter_label(unsigned gen, char buf[HOME_INTER_LABEL_MAX]);
unsigned home_inter_label_gen(const char *label);

/*
 * The CA (and its certificate) whose key identifier (ca_keyid_hex) is
 * `keyid`: the current intermediate, or a retired one whose key is in the
 * token (HOME_SIGNER); NULL for `keyid` NULL or "" means the current one.
 * AMTCA_E_NOT_FOUND naming the id otherwise.
 */
int home_ca_by_keyid(struct home *h, const char *keyid, struct ca **ca,
    X509 **cert) AMTCA_WUR;

/* `dir` NULL: $AMTCA_HOME, else ./amtca-home. */
const char *home_default_dir(const char *dir);

/*
 * Environment variables a PKCS#11 module reads its configuration from
 * (SOFTHSM2_CONF, ...), NULL-terminated: `init` records those it sees as
 * module_env lines, home_open() sets them before loading the module.
 */
extern const char *const home_module_env_names[];

/*
 * Make `dir` the new CA home for `init`: created 0700 (parents too) when
 * missing; an existing one must be an empty directory that passes
 * amtca_path_check_secure().  AMTCA_E_EXISTS when it holds anything.
 */
int home_create(const char *dir) AMTCA_WUR;

/*
 * StrictModes for what a token configuration makes us load or read: the
 * module (and its directory) when given as a path, the PIN file or the
 * URI's pin-source, the SoftHSM config (`softhsm_conf`, or SOFTHSM2_CONF
 * among `env`, "NAME=value") and the token directory it names.  For the
 * embedded token (`softhsm_conf`) a moved or copied home is first made to
 * use its own token store (hsm_softhsm_relocate).
 */
int home_token_check(const char *module, const char *token_uri,
    const char *pin_file, const char *softhsm_conf, char *const *env,
    size_t nenv) AMTCA_WUR;

/*
 * Before hsm_open() on a home's token: home_token_check() on its conf, then
 * set its module_env variables (setenv: before any thread starts).
 */
int home_token_prepare(const struct home_conf *c) AMTCA_WUR;
int home_open(const char *dir, int flags, struct home **out) AMTCA_WUR;
void home_free(struct home *h);

/*
 * The audit trail's pieces in the token (docs/audit.md).  home_open() with
 * HOME_STORE names this process's OS user@host as the store's actor; with
 * HOME_SIGNER it also finds (or makes) the audit key and installs the
 * sealing hook, so that whichever process holds the CA store and the token
 * seals every AMTCA_AUDIT_SEAL_EVERY entries and on every "ca.*" entry.
 */
/* "user@host" of this process (malloc'd). */
int home_local_actor(char **out) AMTCA_WUR;
/* The audit key: found, or generated as `key_type` (NULL: rsa2048). */
int home_audit_key(struct hsm *hsm, const char *key_type,
    struct hsm_key **out) AMTCA_WUR;
/* A sealer over `key` whose anchor is the token's HOME_AUDIT_ANCHOR object. */
void home_audit_sealer(struct hsm *hsm, const struct ca_signer *key,
    struct audit_sealer *out);
/* The token's anchor; AMTCA_E_NOT_FOUND when no seal was ever anchored. */
int home_audit_anchor(struct hsm *hsm, struct audit_anchor *out) AMTCA_WUR;
/* `amtca audit seal`: seal the head now (HOME_SIGNER). */
int home_audit_seal(struct home *h, uint64_t *seq) AMTCA_WUR;

/*
 * What a front end that parses outside input (enroll, fleet, amt-info,
 * doctor, devices) opens: the home with HOME_STATE, and the signer in its
 * own process (sgn_spawn, `nconn` connections; 0: per CPU) for the
 * certificate records and issuance; (*h)->engine.sgn is set.  The front
 * end never loads the PKCS#11 module.  Release with sgn_close() then
 * home_free().
 */
struct sgn;
int home_open_frontend(const char *dir, unsigned nconn, struct home **h,
    struct sgn **s) AMTCA_WUR;

/*
 * Several nodes on one shared store (enroll/shared.c, docs/deployment.md).
 * The store keeps the CA's shared configuration: the certificate files
 * (items named HOME_ROOT_PEM, HOME_INTER_PEM, HOME_CHAIN_PEM and, when
 * present, HOME_RETIRED_PEM) and the shareable part of amtca.conf (item
 * HOME_SHARED_CONF: every line whose key is not node-local).
 */
#define HOME_SHARED_CONF "conf"
/* In the home: each shared item's hash as the home and the store last
 * agreed on it (sha256sum format), to tell where a difference came from. */
#define HOME_SHARED_BASE "shared.sha256"

/* Is this amtca.conf key node-local (never shared)? */
int home_conf_key_local(const char *key);
/* Split amtca.conf text into its node-local lines (with every comment and
 * blank line) and its shared lines; both malloc'd, each line ending in \n. */
int home_conf_split(const char *text, char **local, char **shared) AMTCA_WUR;

/*
 * Write this home's shared set (its certificate files and amtca.conf's
 * shared part) to its store, in one transaction; an absent
 * intermediate-retired.pem removes that item.  What changes the CA's
 * certificates or shared settings calls it after writing the files: init
 * --store, ca import-intermediate, ca rotate.  0 and nothing done for a
 * home without a shared store (conf.store NULL).  Needs h->store or
 * h->state.
 */
int home_shared_publish(struct home *h) AMTCA_WUR;
/* The same for the home in `dir` (absolute) and its open store. */
int home_shared_publish_dir(const char *dir, struct store *st) AMTCA_WUR;

/*
 * Bring the home in `dir` in step with its store (home_open does this for
 * a home with a shared store, when it may write the home), item by item
 * against HOME_SHARED_BASE: an item changed only in the store (a rotation
 * on another node) is taken, its file replaced atomically (amtca.conf:
 * only its shared lines); an item changed only here (an edit of a shared
 * setting on this node, a rotation here that was not published) is
 * published; changed on both sides, or without a base, the store's wins.
 * A store holding no shared set yet is seeded from the home.
 * *conf_changed: amtca.conf was rewritten (parse it again).
 */
int home_shared_sync(const char *dir, struct store *st,
    int *conf_changed) AMTCA_WUR;

/* The module configuration variables of this environment (SOFTHSM2_CONF,
 * ...), as "NAME=/absolute/path" (malloc'd): what init records. */
int home_module_env_collect(char *env[AMTCA_MODULE_ENV_MAX],
    size_t *nenv) AMTCA_WUR;

/*
 * init --join: make the new home `dir` (home_create rules) for another node
 * of the CA in `store`: amtca.conf = this node's lines (module, token_uri,
 * pin_file, store, module_env, a new home_id) + the store's shared part,
 * and the store's certificate files.  Refused, with nothing made: a store
 * without a CA, a URI with a password, a schema newer than this amtca, a
 * token that lacks the CA's intermediate key (public key equal to the
 * store's intermediate.pem) or its audit key, a non-empty `dir`.  Appends
 * "ca.join" (subject the new home_id, detail host=NAME) and seals.
 * Paths must be absolute (the CLI resolves them).  home_id: the new one.
 */
struct home_join {
	const char *dir;
	const char *store;
	const char *module;
	const char *token_uri;
	const char *pin_file;		/* NULL: the URI's pin-source */
};
int home_join(const struct home_join *j, char home_id[HOME_ID_LEN + 1]) AMTCA_WUR;

#endif
