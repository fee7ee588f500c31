/*
 * amtca backup / amtca restore: parse, call the core (enroll/backup.h),
 * print.  docs/backup.md says what a backup holds and what it does not.
 */
#include "enroll/cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "enroll/backup.h"

int
cmd_backup(const char *homedir, int argc, char **argv)
{
	static const char syn[] = "--out DIR [--include-pin] [--json]";
	static const char options[] =
	    "  --out DIR              a new (or empty) directory for the backup\n"
	    "  --include-pin          also copy the token's PIN file: the backup\n"
	    "                         then IS the CA's keys; keep it like them\n"
	    "  --json                 one JSON document\n"
	    "  --help                 this text\n";
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "include-pin", no_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct backup_opts o;
	struct backup_result res;
	const char *out = NULL;
	struct json j;
	int ch, r, json = 0;

	memset(&o, 0, sizeof(o));
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o': out = optarg; break;
		case 'P': o.include_pin = 1; break;
		case 'j': json = 1; break;
		case 'h':
			return cli_help("backup", syn, options, opts);
		default:
			return cli_usage("backup", "bad option", syn);
		}
	}
	if (optind != argc)
		return cli_usage("backup", "unexpected argument", syn);
	if (out == NULL)
		return cli_usage("backup", "--out DIR is required", syn);
	if ((r = backup_make(homedir, out, &o, &res)) != 0)
		return cli_fail(r);
	if (res.pin)
		fprintf(stderr, "amtca: warning: the backup in %s holds the token's "
		    "PIN beside the token: whoever reads it can sign as this CA; "
		    "keep it as you keep the keys\n", out);
	if (!res.token)
		fprintf(stderr, "amtca: warning: the CA keys are in a vendor HSM "
		    "and are not in this backup; back them up with the HSM's own "
		    "tools\n");
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_str(&j, "out", out);
		json_str(&j, "home_id", res.home_id[0] ? res.home_id : NULL);
		json_int(&j, "files", (long long)res.nfiles);
		json_bool(&j, "token", res.token);
		json_bool(&j, "pin", res.pin);
		json_obj_end(&j);
		json_finish(&j);
	} else
		printf("backup of CA %s in %s: %zu files; %s; PIN %s\n",
		    res.home_id[0] ? res.home_id : "(no identity)", out,
		    res.nfiles, res.token ? "token copied and checked by a test "
		    "login" : "no token (vendor HSM)",
		    res.pin ? "INCLUDED" : "not included");
	return EXIT_OK;
}

int
cmd_restore(const char *homedir, int argc, char **argv)
{
	static const char syn[] = "--from DIR [--pin-file FILE] [--home DIR] [--json]";
	static const char options[] =
	    "  --from DIR             the backup (made by amtca backup)\n"
	    "  --pin-file FILE        the token's user PIN (first line), when the\n"
	    "                         backup does not hold it\n"
	    "  --home DIR             the new CA home (must not exist or be empty)\n"
	    "  --json                 one JSON document\n"
	    "  --help                 this text\n";
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "pin-file", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct restore_opts o;
	struct restore_result res;
	const char *from = NULL;
	struct json j;
	int ch, r, json = 0;

	memset(&o, 0, sizeof(o));
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': from = optarg; break;
		case 'p': o.pin_file = optarg; break;
		case 'j': json = 1; break;
		case 'h':
			return cli_help("restore", syn, options, opts);
		default:
			return cli_usage("restore", "bad option", syn);
		}
	}
	if (optind != argc)
		return cli_usage("restore", "unexpected argument", syn);
	if (from == NULL)
		return cli_usage("restore", "--from DIR is required", syn);
	if ((r = backup_restore(from, homedir, &o, &res)) != 0)
		return cli_fail(r);
	if (res.pin == 0)
		fprintf(stderr, "amtca: warning: no PIN given and none in the "
		    "backup: put the token's user PIN in %s before using this "
		    "CA\n", res.pin_path[0] ? res.pin_path : "the PIN file");
	fprintf(stderr, "amtca: warning: do not run this copy beside the "
	    "original: both would issue from the same key with diverging CRL "
	    "numbers and records (docs/backup.md)\n");
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_str(&j, "home", home_default_dir(homedir));
		json_str(&j, "home_id", res.home_id);
		json_str(&j, "restored_from", res.from_id[0] ? res.from_id : NULL);
		json_int(&j, "files", (long long)res.nfiles);
		json_bool(&j, "token_checked", res.checked);
		json_obj_end(&j);
		json_finish(&j);
	} else
		printf("restored %s into %s: %zu files; new identity %s "
		    "(restored from %s); %s\n", from, home_default_dir(homedir),
		    res.nfiles, res.home_id, res.from_id[0] ? res.from_id :
		    "a home without identity", res.checked ? "token login and "
		    "issuing key checked" : "token not checked (no PIN)");
	return EXIT_OK;
}
