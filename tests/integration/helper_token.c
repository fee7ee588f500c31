#include "integration/helper_token.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "hsm/admin.h"

static int
rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int
test_token_create(struct test_token *t, const char *prefix, const char *label)
{
	int r;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/%s-XXXXXX", prefix);
	if (mkdtemp(t->dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(t->pin_path, sizeof(t->pin_path), "%s/user.pin", t->dir);
	r = hsm_softhsm_create(t->dir, label, t->pin_path, &t->module,
	    &t->uri, &t->conf);
	if (r != 0) {
		fprintf(stderr, "hsm_softhsm_create: %s\n", amtca_errmsg(r));
		return -1;
	}
	return 0;
}

int
test_token_destroy(struct test_token *t)
{
	free(t->module);
	free(t->uri);
	free(t->conf);
	t->module = t->uri = t->conf = NULL;
	if (t->dir[0] == '\0')
		return 0;
	return nftw(t->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}
