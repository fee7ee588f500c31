/*
 * amtca devices: the device inventory from the records, and
 * `devices retire FQDN` to decommission one.  The logic is in the core
 * (enroll/devices.h); this parses, calls it, and prints.
 */
#include "enroll/cli/cli.h"
#include "signer/signer.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "enroll/devices.h"

static const char syn[] =
    "[--state STATE] [--expiring-days D] [--json]\n"
    "       amtca devices retire FQDN [--remove-from-device\n"
    "                     [--user USER --password-file FILE]] [--address IP]\n"
    "                     [--port N] [--tls-port N] [--json]";

static const char options[] =
    "  --state STATE          only devices in STATE: pending, enrolling,\n"
    "                         enrolled, failed, auth_failed, compromised,\n"
    "                         retired\n"
    "  --expiring-days D      only devices whose certificate ends within D days\n"
    "                         (expired ones included)\n"
    "  --json                 one JSON document {\"devices\":[...]}\n"
    "  --help                 this text\n"
    "retire FQDN: revoke the device's certificate (cessationOfOperation) and\n"
    "mark it retired: no reconcile touches it until amtca enroll --device-reset\n"
    "  --remove-from-device   also turn TLS off in AMT and delete the\n"
    "                         certificate and its key from AMT\n"
    "  --user USER            AMT user (default: the record's, from the hosts\n"
    "                         file of a fleet run)\n"
    "  --password-file FILE   AMT password (first line; default: the record's)\n"
    "  --address IP           talk to IP (default: the recorded address)\n"
    "  --port N               plain WS-MAN port (the record's, else 16992)\n"
    "  --tls-port N           TLS WS-MAN port (the record's, else 16993)\n";

static int
usage_err(const char *msg)
{
	return cli_usage("devices", msg, syn);
}

static int
retire(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "remove-from-device", no_argument, NULL, 'R' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'w' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "tls-port", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct retire_opts o;
	struct retire_result res;
	struct enroll_ctx c;
	struct home *h = NULL;
	struct sgn *sgn = NULL;
	struct json j;
	const char *pwfile = NULL;
	long n;
	int ch, r, json = 0, ret = EXIT_FAIL;

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'R': o.remove_from_device = 1; break;
		case 'u': o.user = optarg; break;
		case 'w': pwfile = optarg; break;
		case 'a': o.address = optarg; break;
		case 'j': json = 1; break;
		case 'p':
		case 'P':
			if (cli_parse_long(optarg, 1, 65535, &n) != 0)
				return usage_err("--port and --tls-port take 1..65535");
			*(ch == 'p' ? &o.port : &o.tls_port) = (int)n;
			break;
		case 'h':
			return cli_help("devices", syn, options, opts);
		default:
			return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("retire takes one FQDN");
	o.fqdn = argv[optind];
	if ((o.user == NULL) != (pwfile == NULL))
		return usage_err("--user and --password-file go together");
	if (!o.remove_from_device && (o.user != NULL || pwfile != NULL ||
	    o.address != NULL || o.port != 0 || o.tls_port != 0))
		return usage_err("--user, --password-file, --address and the ports "
		    "go with --remove-from-device");
	if ((r = home_open_frontend(homedir, 1, &h, &sgn)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	o.password_file = pwfile;
	c = h->engine;
	if ((r = device_retire(&c, &o, &res)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_str(&j, "fqdn", res.fqdn);
		json_str(&j, "state", "retired");
		json_str(&j, "serial", res.serial);
		json_bool(&j, "was_revoked", res.was_revoked);
		json_bool(&j, "tls_disabled", res.tls_disabled);
		json_int(&j, "removed_certificates", res.removed_certs);
		json_int(&j, "removed_keys", res.removed_keys);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%s retired", res.fqdn);
		if (res.serial != NULL)
			printf("; certificate %s %s", res.serial, res.was_revoked ?
			    "was already revoked (its reason is kept)" :
			    "revoked (cessationOfOperation)");
		if (o.remove_from_device)
			printf("; in AMT: TLS %s, %u certificate%s and %u key%s "
			    "removed", res.tls_disabled ? "turned off" :
			    "already off", res.removed_certs,
			    res.removed_certs == 1 ? "" : "s", res.removed_keys,
			    res.removed_keys == 1 ? "" : "s");
		printf("\nno reconcile touches it now; amtca enroll --device-reset "
		    "brings it back\n");
	}
	ret = EXIT_OK;
out:
	retire_result_clear(&res);
	sgn_close(sgn);
	home_free(h);
	return ret;
}

/* device_info_fields() into the JSON writer. */
static void
field_str(void *ctx, const char *key, const char *val)
{
	json_str(ctx, key, val);
}

static void
field_flag(void *ctx, const char *key, int val)
{
	if (val < 0)
		json_str(ctx, key, NULL);
	else
		json_bool(ctx, key, val);
}

static void
field_time(void *ctx, const char *key, time_t t, int nullable)
{
	if (nullable && t == 0)
		json_str(ctx, key, NULL);
	else
		json_time(ctx, key, t);
}

int
cmd_devices(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "expiring-days", required_argument, NULL, 'e' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct device_filter f;
	struct device_info *v = NULL;
	struct home *h = NULL;
	struct sgn *sgn = NULL;
	struct json j;
	struct device_fields jf = { field_str, field_time, field_flag, &j };
	size_t n = 0, i;
	long d;
	char na[32], up[32];
	int ch, r, json = 0, ret = EXIT_FAIL;

	if (argc >= 2 && strcmp(argv[1], "retire") == 0)
		return retire(homedir, argc - 1, argv + 1);
	memset(&f, 0, sizeof(f));
	f.expiring_days = -1;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (!device_state_valid(optarg))
				return usage_err("--state takes pending, enrolling, "
				    "enrolled, failed, auth_failed, compromised or "
				    "retired");
			f.state = optarg;
			break;
		case 'e':
			if (cli_parse_long(optarg, 0, 100000, &d) != 0)
				return usage_err("--expiring-days takes 0..100000");
			f.expiring_days = (int)d;
			break;
		case 'j': json = 1; break;
		case 'h':
			return cli_help("devices", syn, options, opts);
		default:
			return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument (did you mean devices retire "
		    "FQDN?)");
	if ((r = home_open_frontend(homedir, 1, &h, &sgn)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	f.ca = &h->engine;	/* which intermediate each leaf is under */
	if ((r = devices_list(h->state, sgn, &f, &v, &n)) != 0) {
		ret = cli_fail(r);
		goto out;
	}
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_arr_begin(&j, "devices");
		for (i = 0; i < n; i++) {
			json_obj_begin(&j, NULL);
			device_info_fields(&v[i], &jf);
			json_obj_end(&j);
		}
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%-30s %-15s %-13s %-11s %-32s %-20s %-8s %-10s %-20s "
		    "%s\n", "FQDN", "ADDRESS", "AMT", "STATE", "SERIAL",
		    "NOT AFTER", "ISSUER", "LAST STEP", "UPDATED", "ERROR");
		for (i = 0; i < n; i++) {
			if (v[i].not_after != 0)
				cli_fmt_time(v[i].not_after, na, sizeof(na));
			else
				snprintf(na, sizeof(na), "-");
			cli_fmt_time(v[i].d.updated_at, up, sizeof(up));
			/* current, retired (under an intermediate `ca
			 * rotate` retired), or - (none, or not ours) */
			printf("%-30s %-15s %-13s %-11s %-32s %-20s %-8s %-10s "
			    "%-20s %s\n",
			    v[i].d.fqdn, v[i].d.address ? v[i].d.address : "-",
			    v[i].d.amt_version ? v[i].d.amt_version : "-",
			    v[i].d.state ? v[i].d.state : "-",
			    v[i].d.cert_serial ? v[i].d.cert_serial : "-", na,
			    v[i].issuer[0] == '\0' ? "-" : v[i].issuer_current ?
			    "current" : "retired",
			    v[i].d.last_step ? v[i].d.last_step : "-", up,
			    v[i].d.error ? v[i].d.error : "");
		}
	}
	ret = EXIT_OK;
out:
	device_infos_free(v, n);
	sgn_close(sgn);
	home_free(h);
	return ret;
}
