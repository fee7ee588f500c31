/*
 * enroll/: the CLI and orchestration.  Shared pieces of the command
 * implementations: the CA home and the command entry points.
 */
#ifndef AMTCA_ENROLL_CLI_H
#define AMTCA_ENROLL_CLI_H

#include <stdio.h>
#include <time.h>

#include <openssl/x509.h>

#include "ca/ca.h"
#include "ca/store.h"
#include "common/err.h"
#include "hsm/hsm.h"

/* Exit statuses of the CLI contract. */
#define EXIT_OK    0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

/* File names inside the CA home. */
#define HOME_CONF      "amtca.conf"
#define HOME_DB        "amtca.db"
#define HOME_ROOT_PEM  "root.pem"
#define HOME_INTER_PEM "intermediate.pem"
#define HOME_CHAIN_PEM "chain.pem"	/* bottom to top, for consoles */
#define HOME_HSM_DIR   "softhsm"
#define HOME_PIN_FILE  "softhsm/user.pin"
#define KEY_LABEL_ROOT  "amtca-root"
#define KEY_LABEL_INTER "amtca-intermediate"

/* amtca.conf as parsed (key = value lines; see amtca.conf(5)). */
struct home_conf {
	char *module;
	char *token_uri;
	char *pin_file;
	char *softhsm_conf;		/* set for the embedded SoftHSM token */
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
};

/* An opened CA home.  Fields are valid according to the open flags. */
struct home {
	char *dir;
	struct home_conf conf;
	struct ca_policy policy;	/* views into conf */
	X509 *root;
	X509 *inter;
	char *chain_path;		/* absolute path of chain.pem */
	struct store *store;		/* HOME_STORE */
	struct hsm *hsm;		/* HOME_SIGNER */
	struct hsm_key *inter_key;	/* HOME_SIGNER */
	struct ca_signer signer;	/* HOME_SIGNER */
	struct ca *ca;			/* HOME_SIGNER */
};

#define HOME_STORE  0x1		/* open the database */
#define HOME_SIGNER 0x2		/* log in to the token, resolve the issuing key */

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
 * JSON mode.  main() turns it on when --json is among the command's
 * arguments, before dispatch, so every failure path of every command gets
 * the contract's failure document without code of its own: cli_fail() and
 * cli_usage() then also print, on stdout,
 *     {"error":{"code":"<amtca_errname()>","message":"<detail>"}}
 * unless the command already printed its one document (json_finish()), and
 * throw away a document that was begun but not finished, so stdout never
 * holds a partial or a second document.  main() prints the error document
 * itself when a command failed in JSON mode and printed nothing.
 */
void cli_set_json(int on);
int cli_json(void);
/* The error document for code (when JSON mode is on and none was printed). */
void cli_json_error(int code);

/*
 * Print "amtca: <detail>" for code on stderr (and the JSON error document,
 * see above); returns EXIT_FAIL.
 */
int cli_fail(int code);

/*
 * A usage error of command cmd: "amtca CMD: MSG" and the synopsis on
 * stderr (and the JSON error document, code "USAGE"); returns EXIT_USAGE.
 */
int cli_usage(const char *cmd, const char *msg, const char *synopsis);

/*
 * `amtca CMD --help`: the synopsis, then `options` (lines
 * "  --name ARG   what it does"), then a bare line for any long option of
 * the getopt table `opts` that `options` does not mention, so a new
 * option is never missing from the help.  On stdout; returns EXIT_OK.
 */
struct option;
int cli_help(const char *cmd, const char *synopsis, const char *options,
    const struct option *opts);

/* A decimal integer in [lo, hi], nothing else; 0 or -1. */
int cli_parse_long(const char *s, long lo, long hi, long *out);

/* RFC 3339 UTC ("2026-11-27T12:00:00Z"); "?" for 0. */
void cli_fmt_time(time_t t, char *buf, size_t len);

/* Command entry points: argv[0] is the command name; return an exit status. */
int cmd_init(const char *home, int argc, char **argv);
int cmd_issue(const char *home, int argc, char **argv);
int cmd_chain(const char *home, int argc, char **argv);
int cmd_list(const char *home, int argc, char **argv);
int cmd_show(const char *home, int argc, char **argv);
int cmd_revoke(const char *home, int argc, char **argv);
int cmd_crl(const char *home, int argc, char **argv);
int cmd_bench(const char *home, int argc, char **argv);
int cmd_amt_info(const char *home, int argc, char **argv);
int cmd_enroll(const char *home, int argc, char **argv);
int cmd_doctor(const char *home, int argc, char **argv);

#endif
