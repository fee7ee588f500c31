/*
 * `amtca audit export|show|verify|seal|pubkey`: the audit trail
 * (docs/audit.md).  Parsing and printing only: the format and the checks
 * are ca/audit.c's, the records the store's, the key and the anchor the
 * token's (through enroll/home.h).
 */
#include "enroll/cli/cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "ca/audit.h"
#include "common/json.h"
#include "common/util.h"

static const char synopsis[] =
    "export [--out FILE]\n"
    "       amtca audit show [--since TIME] [--action ACTION] [--json]\n"
    "       amtca audit verify [--json]\n"
    "       amtca audit seal\n"
    "       amtca audit pubkey";

static int
usage(const char *msg)
{
	return cli_usage("audit", msg, synopsis);
}

/* Unix seconds, or RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ". */
static int
parse_time(const char *s, int64_t *out)
{
	struct tm tm;
	const char *end;
	long v;

	if (cli_parse_long(s, 0, 253402300799L, &v) == 0) {
		*out = v;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0')
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* Entries and seals, entries by seq with each seal after its entry. */
static int
do_export(struct home *h, const char *outpath)
{
	struct store_audit *e = NULL;
	struct store_seal *sl = NULL;
	size_t n = 0, ns = 0, i, k = 0;
	char *line = NULL, *buf = NULL;
	size_t blen = 0;
	FILE *f = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = store_audit_list(h->store, 0, &e, &n)) != 0 ||
	    (r = store_seal_list(h->store, &sl, &ns)) != 0) {
		ret = r;
		goto out;
	}
	/* Built whole, then written: never half an export on failure. */
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i <= n; i++) {
		if (i < n) {
			if ((r = audit_entry_json(&e[i], &line)) != 0) {
				ret = r;
				goto out;
			}
			fputs(line, f);
			free(line);
			line = NULL;
		}
		/* Seals of this entry (and, at the end, of entries not found). */
		for (; k < ns && (i == n || sl[k].seq <= e[i].seq); k++) {
			if ((r = audit_seal_json(&sl[k], &line)) != 0) {
				ret = r;
				goto out;
			}
			fputs(line, f);
			free(line);
			line = NULL;
		}
	}
	if (fclose(f) != 0) {
		f = NULL;
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	f = NULL;
	if (outpath != NULL && strcmp(outpath, "-") != 0)
		ret = amtca_out_write(outpath, (unsigned char *)buf, blen, 0644);
	else if (blen > 0 && fwrite(buf, 1, blen, stdout) != blen)
		ret = amtca_fail(AMTCA_E_IO, "cannot write to stdout");
	else
		ret = 0;
out:
	if (f != NULL)
		fclose(f);
	free(buf);
	free(line);
	store_audits_free(e, n);
	store_seals_free(sl, ns);
	return ret;
}

static int
do_show(struct home *h, int64_t since, const char *action, int json)
{
	struct store_audit *e = NULL;
	size_t n = 0, i;
	struct json j;
	char when[32];
	int r;

	if ((r = store_audit_list(h->store, 0, &e, &n)) != 0)
		return r;
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_arr_begin(&j, "entries");
	} else
		printf("%-6s  %-20s  %-24s  %-14s  %s\n", "SEQ", "TIME", "ACTOR",
		    "ACTION", "SUBJECT / DETAIL");
	for (i = 0; i < n; i++) {
		if (e[i].time < since ||
		    (action != NULL && strcmp(e[i].action, action) != 0))
			continue;
		if (json) {
			json_obj_begin(&j, NULL);
			json_int(&j, "seq", (long long)e[i].seq);
			json_int(&j, "time", (long long)e[i].time);
			json_str(&j, "actor", e[i].actor);
			json_str(&j, "action", e[i].action);
			json_str(&j, "subject", e[i].subject);
			json_str(&j, "detail", e[i].detail);
			json_obj_end(&j);
		} else {
			cli_fmt_time((time_t)e[i].time, when, sizeof(when));
			printf("%-6" PRIu64 "  %-20s  %-24s  %-14s  %s%s%s\n",
			    e[i].seq, when, e[i].actor, e[i].action, e[i].subject,
			    e[i].detail[0] != '\0' ? "  " : "", e[i].detail);
		}
	}
	if (json) {
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
	}
	store_audits_free(e, n);
	return 0;
}

static int
do_verify(struct home *h, int json)
{
	struct store_audit *e = NULL;
	struct store_seal *sl = NULL;
	struct audit_anchor a;
	size_t n = 0, ns = 0;
	struct json j;
	int r, have_anchor = 0, ret = AMTCA_E_INTERNAL;

	if ((r = store_audit_list(h->store, 0, &e, &n)) != 0 ||
	    (r = store_seal_list(h->store, &sl, &ns)) != 0) {
		ret = r;
		goto out;
	}
	if ((r = home_audit_anchor(h->hsm, &a)) == 0)
		have_anchor = 1;
	else if (r != AMTCA_E_NOT_FOUND) {
		ret = r;
		goto out;
	} else if (ns > 0) {
		/* Every seal is anchored: seals without an anchor lost it. */
		ret = amtca_fail(AMTCA_E_AUDIT, "the token holds no audit anchor "
		    "(object %s) for a trail of %zu entries: it was removed, or "
		    "this is not the CA's token", HOME_AUDIT_ANCHOR, n);
		goto out;
	}
	if (ns > 0 && h->audit_key == NULL) {
		ret = amtca_fail(AMTCA_E_AUDIT, "the trail has %zu seals but the "
		    "token has no audit key (%s): wrong token, or the key was "
		    "removed", ns, KEY_LABEL_AUDIT);
		goto out;
	}
	if ((r = audit_verify(e, n, sl, ns, h->audit_key != NULL ?
	    hsm_key_public(h->audit_key) : NULL, have_anchor ? &a : NULL)) != 0) {
		ret = r;
		goto out;
	}
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_bool(&j, "ok", 1);
		json_int(&j, "entries", (long long)n);
		json_int(&j, "seals", (long long)ns);
		json_int(&j, "last_seal", ns > 0 ? (long long)sl[ns - 1].seq : 0);
		json_int(&j, "anchor", have_anchor ? (long long)a.seq : 0);
		json_obj_end(&j);
		json_finish(&j);
	} else
		printf("audit trail verified: %zu entries, %zu seals, last seal "
		    "at entry %" PRIu64 ", token anchor at entry %" PRIu64 "\n", n,
		    ns, ns > 0 ? sl[ns - 1].seq : 0, have_anchor ? a.seq : 0);
	ret = 0;
out:
	store_audits_free(e, n);
	store_seals_free(sl, ns);
	return ret;
}

static int
do_pubkey(struct home *h)
{
	if (h->audit_key == NULL)
		return amtca_fail(AMTCA_E_HSM_KEY, "the token has no audit key "
		    "(%s) yet: 'amtca audit seal' makes it", KEY_LABEL_AUDIT);
	if (PEM_write_PUBKEY(stdout, hsm_key_public(h->audit_key)) != 1)
		return amtca_fail_ssl(AMTCA_E_IO, "cannot write the audit key");
	return 0;
}

int
cmd_audit(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "since", required_argument, NULL, 's' },
		{ "action", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *outpath = NULL, *action = NULL;
	struct home *h = NULL;
	int64_t since = 0;
	uint64_t seq = 0;
	int ch, r, json = 0, flags, ret = EXIT_FAIL;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0))
		goto help;
	if (argc < 2)
		return usage("a subcommand is required");
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o': outpath = optarg; break;
		case 's':
			if (parse_time(optarg, &since) != 0)
				return usage("--since takes Unix seconds or "
				    "YYYY-MM-DDTHH:MM:SSZ");
			break;
		case 'a': action = optarg; break;
		case 'j': json = 1; break;
		case 'h': goto help;
		default:
			return usage("bad option");
		}
	}
	if (optind != argc)
		return usage("unexpected argument");
	if ((outpath != NULL && strcmp(sub, "export") != 0) ||
	    ((since != 0 || action != NULL) && strcmp(sub, "show") != 0))
		return usage("option not valid for this subcommand");
	if (strcmp(sub, "export") == 0 || strcmp(sub, "show") == 0)
		flags = HOME_STORE;
	else if (strcmp(sub, "verify") == 0 || strcmp(sub, "seal") == 0 ||
	    strcmp(sub, "pubkey") == 0)
		flags = HOME_SIGNER;	/* the key and the anchor are the token's */
	else
		return usage("unknown subcommand (export, show, verify, seal, "
		    "pubkey)");
	if (strcmp(sub, "verify") == 0 || strcmp(sub, "pubkey") == 0)
		flags |= HOME_NO_SEAL;
	if ((r = home_open(homedir, flags, &h)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (strcmp(sub, "export") == 0)
		r = do_export(h, outpath);
	else if (strcmp(sub, "show") == 0)
		r = do_show(h, since, action, json);
	else if (strcmp(sub, "verify") == 0)
		r = do_verify(h, json);
	else if (strcmp(sub, "pubkey") == 0)
		r = do_pubkey(h);
	else if ((r = home_audit_seal(h, &seq)) == 0)
		printf("sealed the audit trail at entry %" PRIu64 "\n", seq);
	ret = r == 0 ? EXIT_OK : cli_fail(r);
out:
	home_free(h);
	return ret;
help:
	return cli_help("audit", synopsis,
	    "  export               every entry and seal, one JSON object a line\n"
	    "  show                 list entries\n"
	    "  verify               check the chain, every seal and the token's "
	    "anchor\n"
	    "  seal                 sign the trail's head with the audit key now\n"
	    "  pubkey               the audit key's public key (PEM)\n"
	    "  --out FILE           export: write FILE instead of stdout\n"
	    "  --since TIME         show: entries from TIME (Unix seconds or "
	    "RFC 3339 UTC)\n"
	    "  --action ACTION      show: only this action (cert.issue, ...)\n"
	    "  --json               show, verify: one JSON document\n"
	    "  --help               this text\n", opts);
}
