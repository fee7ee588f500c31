#!/usr/bin/env bash
# The offline root (issue 10 §1): `init --root-token-uri` makes the root key
# in its own token; with that token removed, issuance and enrollment go on,
# and what needs the root key (crl --root) says plainly it needs the root
# token; with the token back it works.  An external root has no root key:
# crl --root says so.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ADDR=127.0.102.1
FQDN=amt-o1.example.test
HOME_CA="$T/home"
PW="$T/amt-password"
password_file "$PW" "Adm1n-$RANDOM-pw"

# Two tokens of one SoftHSM: the CA's and the root's.
S="$T/hsm"
mkdir -p "$S/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$S/tokens" >"$S/softhsm2.conf"
export SOFTHSM2_CONF="$S/softhsm2.conf"
softhsm2-util --init-token --free --label ca --so-pin 12345678 --pin 11112222 >/dev/null
ls "$S/tokens" >"$T/before"
softhsm2-util --init-token --free --label offroot --so-pin 12345678 --pin 33334444 >/dev/null
rootdir=$(ls "$S/tokens" | grep -vxF -f "$T/before")
[ -n "$rootdir" ] || fail "cannot tell the root token's directory"
echo 11112222 >"$S/ca.pin"
echo 33334444 >"$S/root.pin"
chmod 600 "$S/ca.pin" "$S/root.pin"

expect_fail 2 "root-token-uri" "$AMTCA" --home "$T/bad" init --softhsm \
    --root-token-uri pkcs11:token=offroot --domain example.test
"$AMTCA" --home "$HOME_CA" init --module "$SOFTHSM_MODULE" --token-uri pkcs11:token=ca \
    --pin-file "$S/ca.pin" --root-token-uri pkcs11:token=offroot \
    --root-pin-file "$S/root.pin" --domain example.test >"$T/init.out" 2>"$T/init.err" ||
    fail "init --root-token-uri: $(cat "$T/init.err")"
grep -q "^root_token_uri = pkcs11:token=offroot$" "$HOME_CA/amtca.conf" ||
    fail "root_token_uri not recorded"
grep -q "keep that token offline" "$T/init.out" || fail "init does not say to keep the root offline"
objs() { pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$1" --login \
    --pin "$2" --list-objects --type privkey 2>/dev/null | sed -n 's/^ *label: *//p' | sort | tr '\n' ' '; }
[ "$(objs ca 11112222)" = "amtca-audit amtca-intermediate " ] ||
    fail "CA token keys: $(objs ca 11112222)"
[ "$(objs offroot 33334444)" = "amtca-root " ] || fail "root token keys: $(objs offroot 33334444)"
ok "init puts the root key in its own token, and only there"

# --- the root token removed ------------------------------------------
mv "$S/tokens/$rootdir" "$T/away"
make_csr "$T/leaf.csr" rsa:2048 a.example.test
"$AMTCA" --home "$HOME_CA" issue --fqdn a.example.test --csr "$T/leaf.csr" --out "$T/leaf.pem" ||
    fail "issue without the root token"
openssl verify -CAfile "$HOME_CA/root.pem" -untrusted "$HOME_CA/intermediate.pem" \
    "$T/leaf.pem" >/dev/null || fail "leaf does not verify"
ok "issue works with the root token removed"

sim_up "$T/sim.log" "$ADDR" "$FQDN"
enroll "$ADDR" "$FQDN" >"$T/en.out" 2>"$T/en.err" || fail "enroll without the root token: $(cat "$T/en.err")"
s_client_ok "$ADDR" "$FQDN"
ok "enroll works with the root token removed"

expect_fail 1 "needs the offline root token (pkcs11:token=offroot)" \
    "$AMTCA" --home "$HOME_CA" crl --root
ok "crl --root says clearly that it needs the root token"

# The root key was never in the CA's token: only the root token signs.
mv "$T/away" "$S/tokens/$rootdir"
"$AMTCA" --home "$HOME_CA" crl --root --out "$T/root.crl" || fail "crl --root with the token back"
openssl crl -in "$T/root.crl" -inform DER -CAfile "$HOME_CA/root.pem" -noout 2>"$T/v" ||
    fail "root CRL does not verify: $(cat "$T/v")"
openssl crl -in "$T/root.crl" -inform DER -noout -issuer | qgrep "amtca Root CA" ||
    fail "root CRL issuer"
"$AMTCA" --home "$HOME_CA" audit show --action ca.crl-root | qgrep ca.crl-root ||
    fail "crl --root not audited"
ok "with the root token back, crl --root makes a CRL the root certificate verifies"

# --- ca rotate needs the root token (issue 10 §2) ----------------------
mv "$S/tokens/$rootdir" "$T/away"
cp "$HOME_CA/chain.pem" "$T/chain0.pem"
cp "$HOME_CA/amtca.conf" "$T/conf0"
keys0=$(objs ca 11112222)
n0=$("$AMTCA" --home "$HOME_CA" audit show --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
expect_fail 1 "ca rotate needs the offline root token (pkcs11:token=offroot)" \
    "$AMTCA" --home "$HOME_CA" ca rotate
cmp -s "$T/chain0.pem" "$HOME_CA/chain.pem" || fail "a refused rotate changed chain.pem"
cmp -s "$T/conf0" "$HOME_CA/amtca.conf" || fail "a refused rotate changed amtca.conf"
[ -e "$HOME_CA/intermediate-retired.pem" ] && fail "a refused rotate retired the intermediate"
[ "$(objs ca 11112222)" = "$keys0" ] || fail "a refused rotate made a key: $(objs ca 11112222)"
n1=$("$AMTCA" --home "$HOME_CA" audit show --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
[ "$n1" = "$n0" ] || fail "a refused rotate appended $((n1 - n0)) audit entries"
ok "ca rotate without the root token: one clear line naming it; chain.pem, conf, token and audit unchanged"

mv "$T/away" "$S/tokens/$rootdir"
"$AMTCA" --home "$HOME_CA" ca rotate --key-type p384 >/dev/null 2>"$T/err" ||
    fail "ca rotate with the root token back: $(cat "$T/err")"
[ "$(objs ca 11112222)" = "amtca-audit amtca-intermediate amtca-intermediate-g2 " ] ||
    fail "CA token keys after rotate: $(objs ca 11112222)"
[ "$(objs offroot 33334444)" = "amtca-root " ] || fail "root token keys after rotate: $(objs offroot 33334444)"
mv "$S/tokens/$rootdir" "$T/away"
make_csr "$T/leaf2.csr" ec:secp384r1 b.example.test
"$AMTCA" --home "$HOME_CA" issue --fqdn b.example.test --csr "$T/leaf2.csr" --out "$T/leaf2.pem" ||
    fail "issue under the new intermediate without the root token"
"$AMTCA" --home "$HOME_CA" chain >"$T/chain1.pem"
for f in leaf leaf2; do
	openssl verify -CAfile "$HOME_CA/root.pem" -untrusted "$T/chain1.pem" "$T/$f.pem" >/dev/null ||
	    fail "$f does not verify with the chain after rotate"
done
ok "with the root token back ca rotate works (new key in the CA's token only); then issuance goes on without it"
