/*
 * The shared configuration of several nodes (enroll/shared.c) over a
 * SQLite store: amtca.conf split into node-local and shared lines; a home
 * published; a second home brought in step with the store, item by item
 * against the last agreed hashes (changed in the store: taken; changed
 * here: published; both, or never agreed: the store's; a retired set comes
 * and goes; the node's own lines never change); a store with nothing
 * shared is seeded from the home that opens it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ca/store.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/home.h"

#define CONF_A \
	"# amtca.conf: written by 'amtca init'\n" \
	"module = /usr/lib/softhsm/libsofthsm2.so\n" \
	"token_uri = pkcs11:token=ca\n" \
	"pin_file = /etc/amtca/pin\n" \
	"key_type = rsa2048\n" \
	"days = 397\n" \
	"store = postgresql:///amtca?host=/run/postgresql\n" \
	"module_env = SOFTHSM2_CONF=/etc/softhsm2.conf\n" \
	"domain = example.test\n" \
	"   # an indented comment\n" \
	"\n" \
	"org = Example # trailing comment\n" \
	"home_id = 0123456789abcdef0123456789abcdef\n" \
	"root_token_uri = pkcs11:token=root\n" \
	"intermediate_key = amtca-intermediate-2"

#define SHARED_A \
	"key_type = rsa2048\n" \
	"days = 397\n" \
	"domain = example.test\n" \
	"org = Example # trailing comment\n" \
	"intermediate_key = amtca-intermediate-2\n"

#define CONF_B_LOCAL \
	"# node b\n" \
	"module = /opt/vendor/p11.so\n" \
	"token_uri = pkcs11:token=ca\n" \
	"store = postgresql://db/amtca\n" \
	"home_id = ffffffffffffffffffffffffffffffff\n"

struct fx {
	char *tmp;
	char a[300], b[300], uri[320], b_inter[330];
	struct store *s;
};

static void
put(const char *dir, const char *name, const char *text)
{
	char p[400];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(amtca_file_write(p, text, strlen(text), 0644, 0), 0);
}

static char *
get(const char *dir, const char *name)
{
	char p[400];
	unsigned char *b = NULL;
	size_t len;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (amtca_file_read(p, AMTCA_CONF_MAX, &b, &len) != 0) {
		amtca_err_clear();
		return NULL;
	}
	return (char *)b;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char tmpl[] = "/tmp/amtca-shared.XXXXXX";

	assert_non_null(f);
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(f->tmp = strdup(tmpl));
	snprintf(f->a, sizeof(f->a), "%s/a", f->tmp);
	snprintf(f->b, sizeof(f->b), "%s/b", f->tmp);
	snprintf(f->uri, sizeof(f->uri), "sqlite:%s/shared.db", f->tmp);
	snprintf(f->b_inter, sizeof(f->b_inter), "%s/%s", f->b, HOME_INTER_PEM);
	assert_int_equal(mkdir(f->a, 0700), 0);
	assert_int_equal(mkdir(f->b, 0700), 0);
	assert_int_equal(store_open(f->uri, 1, &f->s), 0);
	put(f->a, HOME_CONF, CONF_A);
	put(f->a, HOME_ROOT_PEM, "root-1\n");
	put(f->a, HOME_INTER_PEM, "inter-1\n");
	put(f->a, HOME_CHAIN_PEM, "inter-1\nroot-1\n");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	amtca_rmtree(f->tmp);
	free(f->tmp);
	free(f);
	return 0;
}

static void
test_split(void **state)
{
	char *l = NULL, *s = NULL;

	(void)state;
	assert_int_equal(home_conf_split(CONF_A, &l, &s), 0);
	assert_string_equal(s, SHARED_A);
	/* Every node-local key and every comment and blank line stays. */
	assert_non_null(strstr(l, "pin_file = /etc/amtca/pin\n"));
	assert_non_null(strstr(l, "store = postgresql:"));
	assert_non_null(strstr(l, "module_env = SOFTHSM2_CONF"));
	assert_non_null(strstr(l, "home_id = 0123"));
	assert_non_null(strstr(l, "root_token_uri = pkcs11:token=root\n"));
	assert_non_null(strstr(l, "   # an indented comment\n\n"));
	assert_null(strstr(l, "domain"));
	assert_true(home_conf_key_local("token_uri"));
	assert_false(home_conf_key_local("intermediate_key"));
	free(l);
	free(s);
	assert_int_equal(home_conf_split("", &l, &s), 0);
	assert_string_equal(l, "");
	assert_string_equal(s, "");
	free(l);
	free(s);
}

static void
test_publish_and_sync(void **state)
{
	struct fx *f = *state;
	struct store_meta *m = NULL, up[2];
	char *t;
	int changed = -1;

	assert_int_equal(home_shared_publish_dir(f->a, f->s), 0);
	assert_int_equal(store_meta_get(f->s, HOME_SHARED_CONF, &m), 0);
	assert_int_equal(m->len, strlen(SHARED_A));
	assert_memory_equal(m->value, SHARED_A, m->len);
	store_meta_free(m);
	assert_int_equal(store_meta_get(f->s, HOME_RETIRED_PEM, &m),
	    AMTCA_E_NOT_FOUND);

	/* B: its own lines, stale certificates, an old conf. */
	put(f->b, HOME_CONF, CONF_B_LOCAL "domain = old.test\n");
	put(f->b, HOME_ROOT_PEM, "root-1\n");
	put(f->b, HOME_INTER_PEM, "stale\n");
	assert_int_equal(home_shared_sync(f->b, f->s, &changed), 0);
	assert_int_equal(changed, 1);
	assert_non_null(t = get(f->b, HOME_INTER_PEM));
	assert_string_equal(t, "inter-1\n");
	free(t);
	assert_non_null(t = get(f->b, HOME_CHAIN_PEM));
	assert_string_equal(t, "inter-1\nroot-1\n");
	free(t);
	assert_non_null(t = get(f->b, HOME_CONF));
	assert_non_null(strstr(t, CONF_B_LOCAL));
	assert_non_null(strstr(t, SHARED_A));
	assert_null(strstr(t, "old.test"));
	assert_null(strstr(t, "pin_file"));	/* A's never comes over */
	assert_null(strstr(t, "0123456789abcdef"));
	free(t);
	/* In step: nothing to do, and nothing changes. */
	assert_int_equal(home_shared_sync(f->b, f->s, &changed), 0);
	assert_int_equal(changed, 0);

	/* A rotation elsewhere: a new set with a retired intermediate. */
	memset(up, 0, sizeof(up));
	up[0].name = (char *)HOME_INTER_PEM;
	up[0].value = (unsigned char *)"inter-2\n";
	up[0].len = 8;
	up[1].name = (char *)HOME_RETIRED_PEM;
	up[1].value = (unsigned char *)"inter-1\n";
	up[1].len = 8;
	assert_int_equal(store_meta_put(f->s, up, 2), 0);
	assert_int_equal(home_shared_sync(f->b, f->s, &changed), 0);
	assert_int_equal(changed, 0);
	assert_non_null(t = get(f->b, HOME_INTER_PEM));
	assert_string_equal(t, "inter-2\n");
	free(t);
	assert_non_null(t = get(f->b, HOME_RETIRED_PEM));
	assert_string_equal(t, "inter-1\n");
	free(t);
	/* Its overlap ends: the file goes too. */
	up[1].value = NULL;
	up[1].len = 0;
	assert_int_equal(store_meta_put(f->s, &up[1], 1), 0);
	assert_int_equal(home_shared_sync(f->b, f->s, &changed), 0);
	assert_null(get(f->b, HOME_RETIRED_PEM));
	/* Changed on both sides since they last agreed: the store's wins. */
	put(f->b, HOME_CHAIN_PEM, "local\n");
	up[0].name = (char *)HOME_CHAIN_PEM;
	up[0].value = (unsigned char *)"remote\n";
	up[0].len = 7;
	assert_int_equal(store_meta_put(f->s, up, 1), 0);
	assert_int_equal(home_shared_sync(f->b, f->s, &changed), 0);
	assert_non_null(t = get(f->b, HOME_CHAIN_PEM));
	assert_string_equal(t, "remote\n");
	free(t);
	/* A required file gone here is taken back, never removed there. */
	assert_int_equal(unlink(f->b_inter), 0);
	assert_int_equal(home_shared_sync(f->b, f->s, &changed), 0);
	assert_non_null(t = get(f->b, HOME_INTER_PEM));
	assert_string_equal(t, "inter-2\n");
	free(t);
}

/*
 * A node that missed a rotation, whose shared setting is then edited: the
 * store's conf wins (the edit is lost), the store's certificates come in,
 * and nothing of the stale node reaches the store.
 */
static void
test_stale_node_edit(void **state)
{
	struct fx *f = *state;
	struct store_meta *m = NULL, up[2];
	char *t = NULL;
	int changed = -1;

	assert_int_equal(home_shared_publish_dir(f->a, f->s), 0);
	put(f->b, HOME_CONF, CONF_B_LOCAL);
	assert_int_equal(home_shared_sync(f->b, f->s, &changed), 0);
	assert_int_equal(changed, 1);
	/* The rotation, elsewhere: new key label and intermediate. */
	memset(up, 0, sizeof(up));
	up[0].name = (char *)HOME_SHARED_CONF;
	up[0].value = (unsigned char *)SHARED_A "intermediate_key = k3\n";
	up[0].len = strlen(SHARED_A "intermediate_key = k3\n");
	up[1].name = (char *)HOME_INTER_PEM;
	up[1].value = (unsigned char *)"inter-3\n";
	up[1].len = 8;
	assert_int_equal(store_meta_put(f->s, up, 2), 0);
	/* B's operator edits before B ran any command. */
	{
		char p[400], *nt = NULL;

		assert_non_null(t = get(f->b, HOME_CONF));
		assert_true(asprintf(&nt, "%sdays = 30\n", t) > 0);
		snprintf(p, sizeof(p), "%s/%s", f->b, HOME_CONF);
		assert_int_equal(amtca_file_write(p, nt, strlen(nt), 0644, 0), 0);
		free(nt);
		free(t);
	}
	assert_int_equal(home_shared_sync(f->b, f->s, &changed), 0);
	assert_int_equal(changed, 1);
	assert_non_null(t = get(f->b, HOME_CONF));
	assert_non_null(strstr(t, "intermediate_key = k3\n"));
	assert_null(strstr(t, "days = 30"));
	assert_non_null(strstr(t, CONF_B_LOCAL));
	free(t);
	assert_non_null(t = get(f->b, HOME_INTER_PEM));
	assert_string_equal(t, "inter-3\n");
	free(t);
	assert_int_equal(store_meta_get(f->s, HOME_SHARED_CONF, &m), 0);
	assert_null(memmem(m->value, m->len, "days = 30", 9));
	store_meta_free(m);
}

/*
 * Changed here only since the home and the store last agreed: published
 * (a shared setting edited on this node; certificates written here and not
 * yet published, as by a rotation interrupted before its publish).
 */
static void
test_local_edit_published(void **state)
{
	struct fx *f = *state;
	struct store_meta *m = NULL;
	char *t = NULL;
	int changed = -1;

	assert_int_equal(home_shared_publish_dir(f->a, f->s), 0);
	put(f->a, HOME_CONF, CONF_A "\ncrl_url = http://x.test/c.crl\n");
	put(f->a, HOME_RETIRED_PEM, "inter-0\n");
	assert_int_equal(home_shared_sync(f->a, f->s, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(store_meta_get(f->s, HOME_SHARED_CONF, &m), 0);
	assert_non_null(t = strndup((char *)m->value, m->len));
	assert_non_null(strstr(t, "crl_url = http://x.test/c.crl\n"));
	assert_null(strstr(t, "module"));
	free(t);
	store_meta_free(m);
	assert_int_equal(store_meta_get(f->s, HOME_RETIRED_PEM, &m), 0);
	assert_memory_equal(m->value, "inter-0\n", 8);
	store_meta_free(m);
	/* And its removal too. */
	assert_int_equal(unlink(strcat(strcpy(f->b_inter, f->a), "/"
	    HOME_RETIRED_PEM)), 0);
	assert_int_equal(home_shared_sync(f->a, f->s, &changed), 0);
	assert_int_equal(store_meta_get(f->s, HOME_RETIRED_PEM, &m),
	    AMTCA_E_NOT_FOUND);
}

/* A store without a shared set (made before it) is seeded by a home. */
static void
test_seed(void **state)
{
	struct fx *f = *state;
	struct store_meta *v = NULL;
	size_t n = 0;
	int changed = -1;

	assert_int_equal(home_shared_sync(f->a, f->s, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(store_meta_list(f->s, &v, &n), 0);
	assert_int_equal(n, 4);		/* chain, conf, intermediate, root */
	store_metas_free(v, n);
	/* A home without its certificates cannot publish. */
	assert_int_equal(home_shared_publish_dir(f->b, f->s), AMTCA_E_CONFIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test_setup_teardown(test_publish_and_sync, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_local_edit_published, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stale_node_edit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_seed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
