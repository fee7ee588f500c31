/*
 * amtsim: command line, fleet set-up and signals.  See amtsim(1) and
 * docs/amtsim.md.  Everything else lives in the other amt/sim files, which
 * are also linked into the fuzz targets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "amt/sim/sim.h"
#include "common/limits.h"
#include "common/util.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: amtsim --listen ADDR [--http-port N] [--tls-port N] --user USER\n"
	    "              --password-file FILE --fqdn FQDN [options]\n"
	    "       amtsim --devices N --address-base 127.x.y.z --fqdn-pattern PATTERN\n"
	    "              [--http-port N] [--tls-port N] --user USER --password-file FILE\n"
	    "              [options]\n"
	    "       amtsim --key-pool FILE --key-pool-size N\n"
	    "options: [--latency-ms N] [--keygen-ms N] [--keygen-busy K]\n"
	    "         [--commit-delay-ms N] [--drop-at STEP[+]] [--state FILE]\n"
	    "         [--key-pool FILE [--key-pool-size N]]\n"
	    "         [--clock-offset SECONDS] [--clock-file FILE]\n"
	    "         [--lockout N] [--lockout-s S] [--nonce-ttl S] [--clock-skew S]\n"
	    "         [--store-max N] [--amt-version X.Y.Z.B]\n"
	    "         [--amt-quirk NAME=on|off]... [--list-quirks]\n"
	    "         [--serve-cert PEM --serve-key PEM] [--non-secure-unsupported]\n"
	    "         [--old-tls] [--redir-port N] [--verbose] [--help] [--version]\n");
}

static int
parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	if (s[0] < '0' || s[0] > '9')
		return -1;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A signed number of seconds within +-max. */
static int
parse_seconds(const char *s, long long max, long long *out)
{
	char *end = NULL;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max || v < -max)
		return -1;
	*out = v;
	return 0;
}

/*
 * --clock-file: one signed number of seconds (surrounding white space
 * allowed).  Sets the fleet's clock offset.
 */
static int
read_clock_file(const char *path, struct sim_fleet *f)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	char *p, *e;
	long long v;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = amtca_file_read(path, SIM_CLOCK_FILE_MAX, &buf, &len)) != 0) {
		ret = amtca_fail(r, "cannot read clock file %s", path);
		goto out;
	}
	for (p = (char *)buf; *p == ' ' || *p == '\t' || *p == '\n'; p++)
		;
	for (e = p + strlen(p); e > p && (e[-1] == ' ' || e[-1] == '\t' ||
	    e[-1] == '\n' || e[-1] == '\r'); e--)
		;
	*e = '\0';
	if (parse_seconds(p, SIM_CLOCK_OFFSET_MAX, &v) != 0) {
		ret = amtca_fail(AMTCA_E_CONFIG, "clock file %s does not hold a "
		    "number of seconds", path);
		goto out;
	}
	atomic_store(&f->clock_offset_s, v);
	ret = 0;
out:
	free(buf);
	return ret;
}

/* Exactly one integer conversion (%d, %05d, %u, %x...) and literal %%. */
static int
pattern_ok(const char *p)
{
	int conv = 0;

	for (; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == '%')
			continue;
		while (*p == '0' || *p == '-')
			p++;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p != 'd' && *p != 'u' && *p != 'x' && *p != 'X')
			return 0;
		conv++;
	}
	return conv == 1;
}

static int
read_pem(const char *path, char **out)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = amtca_file_read(path, SIM_PEM_MAX, &buf, &len)) != 0)
		return amtca_fail(r, "cannot read %s", path);
	if (strlen((char *)buf) != len || strstr((char *)buf, "-----BEGIN") ==
	    NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
		return amtca_fail(AMTCA_E_USAGE, "%s is not PEM", path);
	}
	*out = (char *)buf;
	return 0;
}

enum {
	O_LISTEN = 256, O_HTTP_PORT, O_TLS_PORT, O_USER, O_PASSWORD_FILE,
	O_FQDN, O_DEVICES, O_ADDRESS_BASE, O_FQDN_PATTERN, O_LATENCY,
	O_KEYGEN_MS, O_KEYGEN_BUSY, O_COMMIT_DELAY, O_DROP_AT, O_STATE,
	O_LOCKOUT, O_LOCKOUT_S, O_NONCE_TTL, O_CLOCK_SKEW, O_STORE_MAX,
	O_AMT_VERSION, O_SERVE_CERT, O_SERVE_KEY, O_NON_SECURE_UNSUPPORTED,
	O_OLD_TLS, O_VERBOSE, O_HELP, O_VERSION, O_REDIR_PORT, O_KEY_POOL,
	O_KEY_POOL_SIZE, O_CLOCK_OFFSET, O_CLOCK_FILE, O_AMT_QUIRK,
	O_LIST_QUIRKS,
};

static const struct option longopts[] = {
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "http-port", required_argument, NULL, O_HTTP_PORT },
	{ "tls-port", required_argument, NULL, O_TLS_PORT },
	{ "user", required_argument, NULL, O_USER },
	{ "password-file", required_argument, NULL, O_PASSWORD_FILE },
	{ "fqdn", required_argument, NULL, O_FQDN },
	{ "devices", required_argument, NULL, O_DEVICES },
	{ "address-base", required_argument, NULL, O_ADDRESS_BASE },
	{ "fqdn-pattern", required_argument, NULL, O_FQDN_PATTERN },
	{ "latency-ms", required_argument, NULL, O_LATENCY },
	{ "keygen-ms", required_argument, NULL, O_KEYGEN_MS },
	{ "keygen-busy", required_argument, NULL, O_KEYGEN_BUSY },
	{ "commit-delay-ms", required_argument, NULL, O_COMMIT_DELAY },
	{ "drop-at", required_argument, NULL, O_DROP_AT },
	{ "state", required_argument, NULL, O_STATE },
	{ "lockout", required_argument, NULL, O_LOCKOUT },
	{ "lockout-s", required_argument, NULL, O_LOCKOUT_S },
	{ "nonce-ttl", required_argument, NULL, O_NONCE_TTL },
	{ "clock-skew", required_argument, NULL, O_CLOCK_SKEW },
	{ "store-max", required_argument, NULL, O_STORE_MAX },
	{ "amt-version", required_argument, NULL, O_AMT_VERSION },
	{ "amt-quirk", required_argument, NULL, O_AMT_QUIRK },
	{ "list-quirks", no_argument, NULL, O_LIST_QUIRKS },
	{ "serve-cert", required_argument, NULL, O_SERVE_CERT },
	{ "serve-key", required_argument, NULL, O_SERVE_KEY },
	{ "non-secure-unsupported", no_argument, NULL, O_NON_SECURE_UNSUPPORTED },
	{ "old-tls", no_argument, NULL, O_OLD_TLS },
	{ "redir-port", required_argument, NULL, O_REDIR_PORT },
	{ "key-pool", required_argument, NULL, O_KEY_POOL },
	{ "key-pool-size", required_argument, NULL, O_KEY_POOL_SIZE },
	{ "clock-offset", required_argument, NULL, O_CLOCK_OFFSET },
	{ "clock-file", required_argument, NULL, O_CLOCK_FILE },
	{ "verbose", no_argument, NULL, O_VERBOSE },
	{ "help", no_argument, NULL, O_HELP },
	{ "version", no_argument, NULL, O_VERSION },
	{ NULL, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
	struct sim_config cfg;
	struct sim_fleet fleet;
	const char *listen_addr = NULL, *fqdn = NULL, *pattern = NULL;
	const char *base = NULL, *pwfile = NULL, *serve_cert = NULL;
	const char *serve_key = NULL, *pool_path = NULL, *clock_file = NULL;
	struct sim_keypool *pool = NULL;
	unsigned long pool_size = 0;
	int pool_size_given = 0;
	long long off;
	char *password = NULL, name[AMTCA_FQDN_MAX + 2];
	unsigned long v, ndev = 0;
	struct in_addr a0;
	sigset_t sigs;
	int c, sig, r, n, rc = 1, started = 0;
	uint32_t h0;
	size_t i;
	/* --amt-quirk applies on top of --amt-version's defaults, in any
	 * order on the command line. */
	const char *quirk_args[SIM_QUIRK_ARGS_MAX];
	size_t nquirk_args = 0;
	int list_quirks = 0;

	memset(&cfg, 0, sizeof(cfg));
	memset(&fleet, 0, sizeof(fleet));
	cfg.http_port = SIM_HTTP_PORT;
	cfg.tls_port = SIM_TLS_PORT;
	cfg.redir_port = SIM_REDIR_PORT;
	cfg.commit_delay_ms = SIM_COMMIT_DELAY_MS;
	cfg.lockout_s = SIM_LOCKOUT_S;
	cfg.nonce_ttl_s = SIM_NONCE_TTL_S;
	cfg.store_max = AMTCA_AMT_STORE_MAX;
	snprintf(cfg.amt_version, sizeof(cfg.amt_version), "%s", SIM_AMT_VERSION);

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN: listen_addr = optarg; break;
		case O_USER: cfg.user = optarg; break;
		case O_PASSWORD_FILE: pwfile = optarg; break;
		case O_FQDN: fqdn = optarg; break;
		case O_ADDRESS_BASE: base = optarg; break;
		case O_FQDN_PATTERN: pattern = optarg; break;
		case O_STATE: fleet.state_path = optarg; break;
		case O_KEY_POOL: pool_path = optarg; break;
		case O_CLOCK_FILE: clock_file = optarg; break;
		case O_CLOCK_OFFSET:
			if (parse_seconds(optarg, SIM_CLOCK_OFFSET_MAX, &off) != 0)
				goto usage;
			atomic_store(&fleet.clock_offset_s, off);
			fleet.clock_offset_given = 1;
			break;
		case O_KEY_POOL_SIZE:
			if (parse_uint(optarg, SIM_POOL_KEYS_MAX, &pool_size) != 0)
				goto usage;
			pool_size_given = 1;
			break;
		case O_SERVE_CERT: serve_cert = optarg; break;
		case O_SERVE_KEY: serve_key = optarg; break;
		case O_NON_SECURE_UNSUPPORTED: cfg.non_secure_unsupported = 1; break;
		case O_OLD_TLS: cfg.old_tls = 1; break;
		case O_AMT_QUIRK:
			if (nquirk_args == SIM_QUIRK_ARGS_MAX)
				goto usage;
			quirk_args[nquirk_args++] = optarg;
			break;
		case O_LIST_QUIRKS: list_quirks = 1; break;
		case O_VERBOSE: cfg.verbose = 1; break;
		case O_HELP: usage(stdout); return 0;
		case O_VERSION:
			printf("amtsim %s (AMT %s)\n", SIM_VERSION, SIM_AMT_VERSION);
			return 0;
		case O_DROP_AT:
			if (!sim_step_valid(optarg)) {
				fprintf(stderr, "amtsim: unknown --drop-at step "
				    "'%s' (see amtsim(1))\n", optarg);
				return 2;
			}
			snprintf(cfg.drop_at, sizeof(cfg.drop_at), "%s", optarg);
			break;
		case O_AMT_VERSION: {
			unsigned x1, x2, x3, x4;
			char extra;

			if (sscanf(optarg, "%u.%u.%u.%u%c", &x1, &x2, &x3, &x4,
			    &extra) != 4 || strlen(optarg) >= sizeof(cfg.amt_version))
				goto usage;
			snprintf(cfg.amt_version, sizeof(cfg.amt_version), "%s",
			    optarg);
			break;
		}
		case O_CLOCK_SKEW:
			if (parse_seconds(optarg, 100LL * 365 * 86400, &off) != 0)
				goto usage;
			cfg.clock_skew_s = (long)off;
			break;
		default:
			if (c < O_LISTEN || optarg == NULL ||
			    parse_uint(optarg, UINT_MAX, &v) != 0)
				goto usage;
			switch (c) {
			case O_HTTP_PORT:
			case O_TLS_PORT:
				if (v == 0 || v > 65535)
					goto usage;
				*(c == O_HTTP_PORT ? &cfg.http_port :
				    &cfg.tls_port) = (int)v;
				break;
			case O_REDIR_PORT:
				if (v > 65535)
					goto usage;
				cfg.redir_port = (int)v;
				break;
			case O_DEVICES:
				if (v == 0 || v > AMTCA_SIM_DEVICES_MAX)
					goto usage;
				ndev = v;
				break;
			case O_LATENCY: cfg.latency_ms = (unsigned)v; break;
			case O_KEYGEN_MS: cfg.keygen_ms = (unsigned)v; break;
			case O_KEYGEN_BUSY: cfg.keygen_busy = (unsigned)v; break;
			case O_COMMIT_DELAY: cfg.commit_delay_ms = (unsigned)v; break;
			case O_LOCKOUT: cfg.lockout = (unsigned)v; break;
			case O_LOCKOUT_S: cfg.lockout_s = (unsigned)v; break;
			case O_NONCE_TTL:
				if (v == 0)
					goto usage;
				cfg.nonce_ttl_s = (unsigned)v;
				break;
			case O_STORE_MAX:
				if (v == 0 || v > 4096)
					goto usage;
				cfg.store_max = (unsigned)v;
				break;
			default:
				goto usage;
			}
		}
	}
	cfg.quirks = sim_quirks_default(cfg.amt_version);
	for (i = 0; i < nquirk_args; i++) {
		if (sim_quirk_set(&cfg.quirks, quirk_args[i]) != 0) {
			fprintf(stderr, "amtsim: unknown --amt-quirk '%s': "
			    "NAME=on or NAME=off, names from --list-quirks\n",
			    quirk_args[i]);
			return 2;
		}
	}
	if (list_quirks) {
		printf("AMT %s\n", cfg.amt_version);
		sim_quirks_print(stdout, cfg.quirks);
		return 0;
	}
	if (pool_path != NULL && pool_size_given && listen_addr == NULL &&
	    ndev == 0 && base == NULL && pattern == NULL && fqdn == NULL &&
	    optind == argc) {
		/*
		 * No devices: only fill the pool, a set-up step for tests and
		 * benchmarks that would otherwise wait for it before "ready".
		 */
		if ((r = sim_keypool_open(pool_path, pool_size, &pool)) != 0 ||
		    (r = sim_keypool_close(pool, stdout)) != 0) {
			fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
			return 1;
		}
		return 0;
	}
	if (optind != argc || cfg.user == NULL || cfg.user[0] == '\0' ||
	    strchr(cfg.user, '"') != NULL || pwfile == NULL ||
	    cfg.http_port == cfg.tls_port || cfg.redir_port == cfg.http_port ||
	    cfg.redir_port == cfg.tls_port ||
	    (serve_cert == NULL) != (serve_key == NULL) ||
	    (pool_size_given && pool_path == NULL))
		goto usage;
	if (listen_addr != NULL) {
		if (ndev != 0 || base != NULL || pattern != NULL || fqdn == NULL ||
		    inet_pton(AF_INET, listen_addr, &a0) != 1)
			goto usage;
		ndev = 1;
	} else {
		if (ndev == 0 || base == NULL || pattern == NULL || fqdn != NULL ||
		    inet_pton(AF_INET, base, &a0) != 1 || !pattern_ok(pattern))
			goto usage;
		h0 = ntohl(a0.s_addr);
		if ((uint64_t)h0 + ndev - 1 > 0xFFFFFFFFu ||
		    (h0 >> 24) != ((h0 + (uint32_t)ndev - 1) >> 24)) {
			fprintf(stderr, "amtsim: --devices %lu does not fit after "
			    "--address-base %s\n", ndev, base);
			return 2;
		}
	}

	if (serve_cert != NULL) {
		if ((r = read_pem(serve_cert, &cfg.serve_cert_pem)) != 0 ||
		    (r = read_pem(serve_key, &cfg.serve_key_pem)) != 0) {
			fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
			goto out;
		}
	}
	if ((r = amtca_secret_read(pwfile, &password)) != 0) {
		fprintf(stderr, "amtsim: cannot read the password file %s: %s\n",
		    pwfile, amtca_errmsg(r));
		goto out;
	}
	if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		fprintf(stderr, "amtsim: libmicrohttpd lacks TLS support\n");
		goto out;
	}

	fleet.cfg = &cfg;
	cfg.clock_offset_s = &fleet.clock_offset_s;
	if ((fleet.dev = calloc(ndev, sizeof(*fleet.dev))) == NULL)
		goto nomem;
	h0 = ntohl(a0.s_addr);
	for (i = 0; i < ndev; i++) {
		if (listen_addr != NULL)
			snprintf(name, sizeof(name), "%s", fqdn);
		else {
			n = snprintf(name, sizeof(name), pattern, (int)i);
			if (n < 0 || (size_t)n >= sizeof(name)) {
				fprintf(stderr, "amtsim: --fqdn-pattern gives a "
				    "name that is too long\n");
				goto out;
			}
		}
		if ((r = sim_device_new(&cfg, (unsigned)i, name, password,
		    &fleet.dev[i])) != 0) {
			fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
			goto out;
		}
		fleet.n++;
		fleet.dev[i]->addr.s_addr = htonl(h0 + (uint32_t)i);
	}
	/* Only HA1 is kept per device: the password goes now. */
	amtca_secret_free(password);
	password = NULL;

	if ((r = sim_state_load(&fleet)) != 0) {
		fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
		goto out;
	}
	/* The clock file, when there is one, is the latest word. */
	if (clock_file != NULL && access(clock_file, F_OK) == 0 &&
	    (r = read_clock_file(clock_file, &fleet)) != 0) {
		fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
		goto out;
	}
	if (pool_path != NULL) {
		if ((r = sim_keypool_open(pool_path, pool_size_given ? pool_size :
		    ndev, &pool)) != 0) {
			fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
			goto out;
		}
		/* Keys restored from --state are taken already. */
		for (i = 0; i < fleet.n; i++) {
			size_t k;

			for (k = 0; k < fleet.dev[i]->nkeys; k++)
				sim_keypool_skip(pool, fleet.dev[i]->keys[k].pub,
				    fleet.dev[i]->keys[k].pub_len);
		}
		cfg.key_pool = pool;
	}

	/* Every thread inherits this mask; main takes the signals below. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	started = 1;
	if ((r = sim_fleet_start(&fleet)) != 0) {
		fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
		goto out;
	}
	printf("ready\n");
	fflush(stdout);
	if (cfg.verbose)
		fprintf(stderr, "amtsim: %zu device(s) ready\n", fleet.n);
	for (;;) {
		if (sigwait(&sigs, &sig) != 0 || sig != SIGHUP)
			break;
		/* SIGHUP: move the simulated clock to what --clock-file says. */
		if (clock_file == NULL)
			continue;
		if ((r = read_clock_file(clock_file, &fleet)) != 0) {
			fprintf(stderr, "amtsim: %s; clock unchanged\n",
			    amtca_errmsg(r));
			continue;
		}
		sim_fleet_clock_moved(&fleet);
		/* The acknowledgement tests wait for. */
		printf("clock-offset %lld\n",
		    (long long)atomic_load(&fleet.clock_offset_s));
		fflush(stdout);
	}
	rc = 0;
	goto out;
nomem:
	fprintf(stderr, "amtsim: out of memory\n");
out:
	if (started) {
		sim_fleet_stop(&fleet);
		if ((r = sim_state_save(&fleet)) != 0) {
			fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
			rc = 1;
		}
	}
	if (pool != NULL) {
		cfg.key_pool = NULL;
		if ((r = sim_keypool_close(pool, started ? stdout : NULL)) != 0) {
			fprintf(stderr, "amtsim: %s\n", amtca_errmsg(r));
			rc = 1;
		}
	}
	amtca_secret_free(password);
	for (i = 0; i < fleet.n; i++)
		sim_device_free(fleet.dev[i]);
	free(fleet.dev);
	free(cfg.serve_cert_pem);
	if (cfg.serve_key_pem != NULL) {
		OPENSSL_cleanse(cfg.serve_key_pem, strlen(cfg.serve_key_pem));
		free(cfg.serve_key_pem);
	}
	return rc;
usage:
	usage(stderr);
	return 2;
}
