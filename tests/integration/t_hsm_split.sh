#!/usr/bin/env bash
# The signing path (hsm/hsm.o) stands alone: a program that opens a token,
# finds a key and signs links without hsm/admin.o, and carries none of the
# provisioning code (issue 8, section 1: a signer process links only this).
. "$(dirname "$0")/lib.sh"

obj=${BUILD:-$top/build}/obj
case $obj in /*) ;; *) obj="$top/$obj" ;; esac
[ -f "$obj/hsm/hsm.o" ] || fail "no $obj/hsm/hsm.o: build first"
[ -f "$obj/hsm/admin.o" ] || fail "no $obj/hsm/admin.o: provisioning is not split from the signing path"

# 1. hsm.o needs nothing that admin.o defines.
nm -g --defined-only "$obj/hsm/admin.o" | awk '{ print $3 }' | sort >"$T/admin.def"
nm -u "$obj/hsm/hsm.o" | awk '{ print $2 }' | sort >"$T/hsm.undef"
comm -12 "$T/admin.def" "$T/hsm.undef" >"$T/both"
[ ! -s "$T/both" ] || fail "hsm.o refers to admin.o: $(tr '\n' ' ' <"$T/both")"
grep -qx hsm_keygen "$T/admin.def" || fail "hsm_keygen is not in admin.o"
ok "hsm.o has no reference to what admin.o defines"

# 2. A signer links from hsm.o and common/ alone, without provisioning code.
cat >"$T/signer.c" <<'C'
#include <stdio.h>
#include "hsm/hsm.h"
int
main(int argc, char **argv)
{
	struct hsm_open_opts o = { .module = argc > 1 ? argv[1] : NULL,
	    .token_uri = "pkcs11:token=none" };
	struct hsm *h = NULL;
	struct hsm_key *k = NULL;
	struct ca_signer s;
	unsigned char sig[512];
	size_t n = sizeof(sig);

	(void)argv;
	if (hsm_open(&o, &h) == 0 && hsm_key_find(h, "k", &k) == 0) {
		hsm_key_signer(k, &s);
		if (hsm_sign(k, NULL, sig, 1, sig, &n) == 0 &&
		    hsm_key_public(k) != NULL)
			puts("signed");
	}
	hsm_key_free(k);
	hsm_free(h);
	return 0;
}
C
san=
# nm into a file, not a pipe: grep -q closing early would make nm die of
# SIGPIPE and, under pipefail, turn a match into "no match".
nm "$obj/hsm/hsm.o" >"$T/hsm.nm"
if grep -q __asan "$T/hsm.nm"; then san="-fsanitize=address,undefined"; fi
pkgs="libssl libcrypto p11-kit-1"
# shellcheck disable=SC2046,SC2086
${CC:-cc} -std=c11 -D_GNU_SOURCE -I"$top" $(pkg-config --cflags $pkgs) $san \
    -o "$T/signer" "$T/signer.c" "$obj/hsm/hsm.o" "$obj"/common/*.o \
    $(pkg-config --libs $pkgs) -lpthread -ldl 2>"$T/link.err" ||
    fail "the signing path does not link alone: $(head -c 600 "$T/link.err")"
nm "$T/signer" >"$T/signer.nm"
if grep -Eq ' T (hsm_keygen|hsm_softhsm_create|hsm_key_destroy|hsm_softhsm_relocate)$' "$T/signer.nm"; then
	fail "the signer binary carries provisioning code"
fi
ok "a signer links from hsm.o and common/ only, with no provisioning code"
