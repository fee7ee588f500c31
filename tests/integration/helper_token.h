/*
 * Integration-test helper: a throwaway SoftHSM token (hsm_softhsm_create())
 * in a fresh /tmp/PREFIX-XXXXXX directory with its user PIN file, removed
 * again with everything in the directory.
 */
#ifndef AMTCA_TESTS_HELPER_TOKEN_H
#define AMTCA_TESTS_HELPER_TOKEN_H

struct test_token {
	char dir[64];
	char pin_path[128];		/* DIR/user.pin */
	char *module, *uri, *conf;	/* from hsm_softhsm_create() */
};

/* 0, or -1 with the reason on stderr. */
int test_token_create(struct test_token *t, const char *prefix,
    const char *label);
/* Frees t's strings and removes its directory; 0 or -1. */
int test_token_destroy(struct test_token *t);

#endif
