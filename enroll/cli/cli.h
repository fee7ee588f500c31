/*
 * enroll/cli/: the command-line front end.  Shared pieces of the command
 * implementations (failure and usage output, JSON mode, parse helpers) and
 * the command entry points.  A command parses its arguments, calls the core
 * (enroll/home.h, enroll/enroll.h, enroll/doctor.h, ca/, amt/) and prints.
 */
#ifndef AMTCA_ENROLL_CLI_CLI_H
#define AMTCA_ENROLL_CLI_CLI_H

#include <stdio.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/err.h"
#include "enroll/home.h"

/* Exit statuses of the CLI contract. */
#define EXIT_OK    0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

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

/*
 * getopt_long(3) for every command.  getopt_long takes any unambiguous
 * prefix of a long option, so "--password SECRET" would be read as
 * --password-file and the secret then echoed as a missing file's name.
 * A secret-file option of `opts` (a name ending in "password-file",
 * "pin-file" or "secret-file") is therefore only accepted in full: an
 * abbreviation of one (before "--") prints
 * "amtca CMD: a secret is never taken on the command line: give --NAME FILE"
 * on stderr, never the value, and returns '?', which the command treats
 * as a usage error like any other bad option.
 */
int cli_getopt_long(int argc, char **argv, const char *shortopts,
    const struct option *opts, int *longindex);

/* A decimal integer in [lo, hi], nothing else; 0 or -1. */
int cli_parse_long(const char *s, long lo, long hi, long *out);

/* PEM armour around certificate DER, without re-parsing it; *out malloc'd. */
int cli_der_to_pem(const unsigned char *der, size_t derlen,
    unsigned char **out, size_t *len);

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
/* ca rotate, revoke-intermediate, prune, list (cmd_rotate.c); -1 for
 * another subcommand. */
int cmd_ca_rotation(const char *home, int argc, char **argv);
/* ca import-intermediate after `ca rotate --csr-out` (external root):
 * check `cert` and complete the rotation; 0 or an AMTCA_E_* code. */
int cmd_ca_rotate_import(const char *home, X509 *cert, X509 *root, int any);
int cmd_bench(const char *home, int argc, char **argv);
int cmd_store(const char *home, int argc, char **argv);
int cmd_amt_info(const char *home, int argc, char **argv);
int cmd_enroll(const char *home, int argc, char **argv);
int cmd_doctor(const char *home, int argc, char **argv);
int cmd_fleet(const char *home, int argc, char **argv);
int cmd_devices(const char *home, int argc, char **argv);
int cmd_backup(const char *home, int argc, char **argv);
int cmd_restore(const char *home, int argc, char **argv);
int cmd_est_client(const char *home, int argc, char **argv);
int cmd_admin(const char *home, int argc, char **argv);
int cmd_serve(const char *home, int argc, char **argv);
int cmd_credential(const char *home, int argc, char **argv);
int cmd_audit(const char *home, int argc, char **argv);
int cmd_ca(const char *home, int argc, char **argv);
/* Hidden: the signer process (signer/proc.c), started by sgn_spawn(). */
int cmd_signer(const char *home, int argc, char **argv);

#endif
