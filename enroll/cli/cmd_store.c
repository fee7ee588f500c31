/*
 * amtca store migrate: bring the home's store(s) to this amtca's schema.
 *
 * A PostgreSQL store shared by several nodes is never upgraded behind the
 * operators' backs: a node whose binary is newer than the schema refuses to
 * open it ("older than this amtca: migrate it first") until someone runs
 * this, once, for the whole database; a node older than the schema refuses
 * too ("newer than this amtca").  The home's SQLite files upgrade on open,
 * so for them this only opens and closes both.
 */
#include "enroll/cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/store.h"
#include "enroll/home.h"

static const char store_synopsis[] = "migrate [--store URI]";

static const char store_options[] =
    "  --store URI            the store to migrate (default: the home's)\n"
    "  --help                 this text\n";

/* Open `uri` with `create` (runs the pending migrations) and close it. */
static int
migrate_one(const char *uri, int create)
{
	struct store *st = NULL;
	int r;

	if ((r = store_open(uri, create, &st)) != 0)
		return r;
	store_close(st);
	printf("store %s: schema up to date\n", uri);
	return 0;
}

static char *
in_home(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) == -1)
		return NULL;
	return p;
}

int
cmd_store(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *uri = NULL;
	struct home *h = NULL;
	char *a = NULL, *b = NULL;
	int ch, r = 0;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		if (argc >= 2)
			return cli_help("store", store_synopsis, store_options,
			    opts);
		return cli_usage("store", "which subcommand? (migrate)",
		    store_synopsis);
	}
	if (strcmp(argv[1], "migrate") != 0)
		return cli_usage("store", "unknown subcommand", store_synopsis);
	argc--;
	argv++;
	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': uri = optarg; break;
		case 'h':
			return cli_help("store", store_synopsis, store_options, opts);
		default:
			return cli_usage("store", "bad option", store_synopsis);
		}
	}
	if (optind != argc)
		return cli_usage("store", "unexpected argument", store_synopsis);
	if (uri != NULL) {
		if ((r = migrate_one(uri, 1)) != 0)
			return cli_fail(r);
		return EXIT_OK;
	}
	/* The home's: its configuration names a shared store, or its files. */
	if ((r = home_open(homedir, 0, &h)) != 0)
		return cli_fail(r);
	if (h->conf.store != NULL)
		r = migrate_one(h->conf.store, 1);
	else {
		if ((a = in_home(h->dir, HOME_CA_DB)) == NULL ||
		    (b = in_home(h->dir, HOME_STATE_DB)) == NULL)
			r = AMTCA_E_NOMEM;
		else if ((r = migrate_one(a, 0)) == AMTCA_E_NOT_FOUND) {
			/* A home from before keys/ and state/: amtca.db. */
			free(a);
			a = in_home(h->dir, HOME_DB);
			r = a == NULL ? AMTCA_E_NOMEM : migrate_one(a, 0);
		} else if (r == 0)
			r = migrate_one(b, 0);
	}
	free(a);
	free(b);
	home_free(h);
	return r != 0 ? cli_fail(r) : EXIT_OK;
}
