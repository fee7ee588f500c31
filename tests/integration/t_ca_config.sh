#!/usr/bin/env bash
# Configuration that works as a user writes it (issue 7, section 6): init
# with relative paths, a SoftHSM token outside the home (SOFTHSM2_CONF),
# pin-source in the token URI, and a CA home that is moved or copied.
. "$(dirname "$0")/lib.sh"

make_csr "$T/csr" ec:prime256v1 a.example.test
is_cert() { openssl x509 -in "$1" -noout 2>/dev/null; }
conf_value() { sed -n "s/^$2 = //p" "$1/amtca.conf"; }

# A SoftHSM token of the user's own, outside any home.
ext_token() { # dir label pin
	mkdir -p "$1/tokens"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$1/tokens" >"$1/softhsm2.conf"
	SOFTHSM2_CONF="$1/softhsm2.conf" softhsm2-util --init-token --free --label "$2" \
		--so-pin 12345678 --pin "$3" >/dev/null
}

# --- relative --pin-file and a token that needs SOFTHSM2_CONF -------------
mkdir -p "$T/work/vh"
ext_token "$T/work/vh" vh 11223344
echo 11223344 >"$T/work/vh/pin"
(cd "$T/work" && SOFTHSM2_CONF=vh/softhsm2.conf "$AMTCA" --home ca init \
	--module "$SOFTHSM_MODULE" --token-uri pkcs11:token=vh --pin-file vh/pin \
	--domain example.test >/dev/null) || fail "init with a relative --pin-file and SOFTHSM2_CONF"
[ "$(conf_value "$T/work/ca" pin_file)" = "$T/work/vh/pin" ] ||
	fail "pin_file is not stored as an absolute path: $(conf_value "$T/work/ca" pin_file)"
[ "$(conf_value "$T/work/ca" module_env)" = "SOFTHSM2_CONF=$T/work/vh/softhsm2.conf" ] ||
	fail "SOFTHSM2_CONF not recorded: $(grep module_env "$T/work/ca/amtca.conf")"
# Later, from elsewhere, without SOFTHSM2_CONF: the new CA can sign.
(cd / && env -u SOFTHSM2_CONF "$AMTCA" --home "$T/work/ca" issue --fqdn a.example.test \
	--csr "$T/csr" --out "$T/vh.pem") || fail "the new CA cannot sign"
openssl verify -CAfile "$T/work/ca/root.pem" -untrusted "$T/work/ca/intermediate.pem" \
	"$T/vh.pem" >/dev/null || fail "leaf from the external token does not verify"
# The recorded environment wins over a stray one.
mkdir -p "$T/other"
ext_token "$T/other" vh 99999999
SOFTHSM2_CONF="$T/other/softhsm2.conf" "$AMTCA" --home "$T/work/ca" issue --fqdn a.example.test \
	--csr "$T/csr" >/dev/null || fail "a stray SOFTHSM2_CONF overrode the recorded one"
ok "init stores absolute paths and the module's SOFTHSM2_CONF, and the CA signs"

# --- pin-source in the token URI, as amtca(1) documents ------------------
mkdir -p "$T/ps"
ext_token "$T/ps" ps 55667788
echo 55667788 >"$T/ps/pin"
SOFTHSM2_CONF="$T/ps/softhsm2.conf" "$AMTCA" --home "$T/psca" init --module "$SOFTHSM_MODULE" \
	--token-uri "pkcs11:token=ps?pin-source=file:$T/ps/pin" --domain example.test >/dev/null ||
	fail "init refuses a token URI with pin-source"
grep -q '^pin_file' "$T/psca/amtca.conf" && fail "pin_file written although the URI names the PIN"
env -u SOFTHSM2_CONF "$AMTCA" --home "$T/psca" issue --fqdn a.example.test --csr "$T/csr" \
	--out "$T/ps.pem" || fail "issue with the URI's pin-source"
is_cert "$T/ps.pem" || fail "no certificate from the pin-source CA"
# A relative pin-source would depend on the directory amtca runs in.
expect_fail 1 "relative" env SOFTHSM2_CONF="$T/ps/softhsm2.conf" "$AMTCA" --home "$T/psca2" init \
	--module "$SOFTHSM_MODULE" --token-uri "pkcs11:token=ps?pin-source=file:ps/pin" --domain example.test
# Neither --pin-file nor pin-source: a clear error, no CA.
expect_fail 1 "pin-source" env SOFTHSM2_CONF="$T/ps/softhsm2.conf" "$AMTCA" --home "$T/psca3" init \
	--module "$SOFTHSM_MODULE" --token-uri "pkcs11:token=ps" --domain example.test
[ ! -e "$T/psca3/amtca.conf" ] || fail "init without a PIN left a CA"
ok "init accepts pin-source in the token URI (absolute file paths)"

# --- a moved or copied embedded home uses its own token ------------------
new_ca "$T/orig" --domain example.test
"$AMTCA" --home "$T/orig" issue --fqdn a.example.test --csr "$T/csr" >/dev/null
cp -a "$T/orig" "$T/copy"
# While both exist, the copy must sign with its own token, not the original's.
"$AMTCA" --home "$T/copy" issue --fqdn a.example.test --csr "$T/csr" >/dev/null || fail "issue from a copy"
grep -q "tokendir = $T/copy/keys/softhsm/tokens\$" "$T/copy/keys/softhsm/softhsm2.conf" ||
	fail "the copy still names another token store: $(grep tokendir "$T/copy/keys/softhsm/softhsm2.conf")"
grep -q "tokendir = $T/orig/keys/softhsm/tokens\$" "$T/orig/keys/softhsm/softhsm2.conf" ||
	fail "using the copy changed the original"
rm -rf "$T/orig"
"$AMTCA" --home "$T/copy" issue --fqdn a.example.test --csr "$T/csr" --out "$T/copy.pem" ||
	fail "a copied home cannot issue once the original is gone"
openssl verify -CAfile "$T/copy/root.pem" -untrusted "$T/copy/intermediate.pem" "$T/copy.pem" \
	>/dev/null || fail "leaf from the copied home does not verify"
[ "$(cert_count "$T/copy")" = 3 ] || fail "the copy's store does not hold its certificates"
mv "$T/copy" "$T/moved"
"$AMTCA" --home "$T/moved" issue --fqdn a.example.test --csr "$T/csr" >/dev/null ||
	fail "a moved home cannot issue"
# A copy without its token store is refused, naming what is missing.
new_ca "$T/orig2" --domain example.test
mkdir -m 0700 "$T/partial"
cp -a "$T/orig2/." "$T/partial/"
rm -rf "$T/partial/keys/softhsm/tokens"
expect_fail 1 "softhsm/tokens" "$AMTCA" --home "$T/partial" issue --fqdn a.example.test --csr "$T/csr"
ok "a copied or moved home signs with its own token, even with the original gone"
