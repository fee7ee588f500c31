#!/usr/bin/env bash
# The CA as a user drives it: init in a throwaway SoftHSM token, issue,
# export, list/show, revoke/CRL; results checked by openssl, certtool and
# pkcs11-tool as independent peers; every bad input refused with a clear
# one-line error and nothing recorded.
. "$(dirname "$0")/lib.sh"

H="$T/home"
new_ca "$H" --domain example.test --domain amt.corp.test --ip-range 192.0.2.0/24 --org "Example Org"
for f in amtca.conf root.pem intermediate.pem chain.pem keys/ca.db state/state.db keys/softhsm/user.pin; do
	[ -e "$H/$f" ] || fail "init did not create $f"
done
[ "$(stat -c %a "$H/keys/softhsm/user.pin")" = 600 ] || fail "PIN file is not 0600"
ok "init creates the home"

expect_fail 1 "already exists" "$AMTCA" --home "$H" init --softhsm --domain example.test
ok "init refuses to overwrite an existing CA"

# --- CA certificates ---------------------------------------------------
openssl x509 -in "$H/root.pem" -noout -text >"$T/root.txt"
grep -A1 'Basic Constraints: critical' "$T/root.txt" | qgrep 'CA:TRUE' || fail "root lacks critical CA:TRUE"
grep -A1 'Key Usage: critical' "$T/root.txt" | qgrep 'Certificate Sign, CRL Sign' || fail "root keyUsage"
grep -q 'Subject Key Identifier' "$T/root.txt" || fail "root lacks SKI"
openssl x509 -in "$H/intermediate.pem" -noout -text >"$T/inter.txt"
grep -A1 'Basic Constraints: critical' "$T/inter.txt" | qgrep 'CA:TRUE, pathlen:0' || fail "intermediate lacks pathlen 0"
grep -A3 'Name Constraints: critical' "$T/inter.txt" | qgrep 'DNS:example.test' || fail "intermediate name constraints"
grep -A3 'Name Constraints: critical' "$T/inter.txt" | qgrep 'DNS:amt.corp.test' || fail "intermediate name constraints (2nd)"
grep -q 'Authority Key Identifier' "$T/inter.txt" || fail "intermediate lacks AKI"
openssl verify -x509_strict -CAfile "$H/root.pem" "$H/intermediate.pem" >/dev/null || fail "intermediate does not verify under root"
ok "root and intermediate profiles"

# --- keys are sensitive and never extractable ---------------------------
export SOFTHSM2_CONF="$H/keys/softhsm/softhsm2.conf"
PIN=$(cat "$H/keys/softhsm/user.pin") pkcs11-tool --module "$SOFTHSM_MODULE" --token-label amtca \
	--login --pin env:PIN --list-objects --type privkey >"$T/objs" 2>&1 || fail "pkcs11-tool: $(cat "$T/objs")"
# root, intermediate and the audit key (docs/audit.md)
n=$(grep -c 'Private Key Object' "$T/objs" || true)
[ "$n" = 3 ] || fail "expected 3 private keys in the token, got $n: $(cat "$T/objs")"
a=$(grep -c 'Access:.*sensitive.*never extractable' "$T/objs" || true)
[ "$a" = 3 ] || fail "CA keys are not sensitive+never extractable: $(cat "$T/objs")"
unset SOFTHSM2_CONF
ok "CA private keys are sensitive and never extractable"

# --- issuance -------------------------------------------------------------
make_csr "$T/rsa.csr" rsa:2048 "ignored-by-policy.evil.test"
"$AMTCA" --home "$H" issue --fqdn AMT-01.Example.Test --csr "$T/rsa.csr" --ip 192.0.2.10 --out "$T/leaf.pem"
openssl verify -x509_strict -purpose sslserver -verify_hostname amt-01.example.test \
	-CAfile "$H/root.pem" -untrusted "$H/intermediate.pem" "$T/leaf.pem" >/dev/null ||
	fail "leaf does not verify with openssl"
openssl verify -x509_strict -purpose sslserver -verify_ip 192.0.2.10 \
	-CAfile "$H/root.pem" -untrusted "$H/intermediate.pem" "$T/leaf.pem" >/dev/null ||
	fail "leaf does not verify for its --ip"
cat "$T/leaf.pem" "$H/intermediate.pem" >"$T/leaf-chain.pem"
certtool --verify --verify-profile medium --verify-hostname amt-01.example.test \
	--load-ca-certificate "$H/root.pem" --infile "$T/leaf-chain.pem" >"$T/certtool.out" 2>&1 ||
	fail "certtool rejects the chain: $(tail -5 "$T/certtool.out")"
openssl x509 -in "$T/leaf.pem" -noout -text >"$T/leaf.txt"
grep -q 'Subject: .*CN = amt-01.example.test' "$T/leaf.txt" || fail "leaf CN is not the lowercased FQDN"
grep -q 'evil' "$T/leaf.txt" && fail "a name from the CSR leaked into the certificate"
grep -q 'DNS:amt-01.example.test, IP Address:192.0.2.10' "$T/leaf.txt" || fail "leaf SAN"
grep -A1 'Extended Key Usage' "$T/leaf.txt" | qgrep 'TLS Web Server Authentication$' || fail "leaf EKU"
grep -A1 'Key Usage: critical' "$T/leaf.txt" | qgrep 'Digital Signature, Key Encipherment' || fail "leaf KU"
grep -A1 'Basic Constraints: critical' "$T/leaf.txt" | qgrep 'CA:FALSE' || fail "leaf CA:FALSE"
grep -q 'sha256WithRSAEncryption' "$T/leaf.txt" || fail "leaf signature is not SHA-256"
ok "RSA-2048 leaf verifies with openssl and certtool, profile as specified"

make_csr "$T/ec.csr" ec:P-256
"$AMTCA" --home "$H" issue --fqdn ec.amt.corp.test --csr "$T/ec.csr" >"$T/ec.pem"
openssl verify -x509_strict -purpose sslserver -verify_hostname ec.amt.corp.test \
	-CAfile "$H/root.pem" -untrusted "$H/intermediate.pem" "$T/ec.pem" >/dev/null || fail "P-256 leaf"
openssl x509 -in "$T/ec.pem" -noout -text | grep -A1 'Key Usage: critical' | qgrep 'Digital Signature$' ||
	fail "EC leaf must not carry keyEncipherment"
ok "P-256 leaf issued to stdout and verifies"

# validity: default 397 days, notBefore backdated ~1 h
nb=$(date -d "$(openssl x509 -in "$T/leaf.pem" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$T/leaf.pem" -noout -enddate | cut -d= -f2)" +%s)
now=$(date +%s)
[ $((now - nb)) -ge 3500 ] && [ $((now - nb)) -le 3700 ] || fail "notBefore is not backdated by ~1 h ($((now - nb)) s)"
d=$(((na - nb - 3600) / 86400))
[ "$d" -ge 396 ] && [ "$d" -le 397 ] || fail "validity is $d days, not 397"
ok "validity 397 days, notBefore backdated 1 h"

# --- list / show -------------------------------------------------------------
[ "$(cert_count "$H")" = 2 ] || fail "list does not show 2 certificates"
serial=$(openssl x509 -in "$T/leaf.pem" -noout -serial | cut -d= -f2)
[ ${#serial} -eq 32 ] || fail "serial $serial is not 16 bytes"
"$AMTCA" --home "$H" list --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
c = d["certificates"]
assert set(c[0]) >= {"serial", "fqdn", "not_before", "not_after", "status"}, c[0]
assert [x["status"] for x in c] == ["valid", "valid"], c
' || fail "list --json shape"
"$AMTCA" --home "$H" show "$serial" --json | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert d['serial'] == '$serial' and d['fqdn'] == 'amt-01.example.test', d
" || fail "show --json"
"$AMTCA" --home "$H" show "$serial" --pem | cmp -s - "$T/leaf.pem" || fail "show --pem differs from the issued certificate"
ok "list/show report the recorded certificates"

# --- chain export --------------------------------------------------------------
"$AMTCA" --home "$H" chain --format pem >"$T/chain.pem"
subjects=$(openssl crl2pkcs7 -nocrl -certfile "$T/chain.pem" | openssl pkcs7 -print_certs -noout | grep '^subject')
first=$(echo "$subjects" | sed -n 1p)
second=$(echo "$subjects" | sed -n 2p)
echo "$first" | qgrep 'amtca Issuing CA' || fail "chain PEM does not start with the intermediate: $first"
echo "$second" | qgrep 'amtca Root CA' || fail "chain PEM does not end with the root: $second"
[ "$(echo "$subjects" | wc -l)" = 2 ] || fail "chain PEM has other than 2 certificates"
mkdir "$T/der"
"$AMTCA" --home "$H" chain --format der --out "$T/der"
[ "$(ls "$T/der"/*.cer | wc -l)" = 2 ] || fail "DER export did not write 2 .cer files"
for f in "$T/der"/*.cer; do openssl x509 -inform DER -in "$f" -noout || fail "$f is not DER"; done
"$AMTCA" --home "$H" chain --format p7b --out "$T/chain.p7b"
[ "$(openssl pkcs7 -inform DER -in "$T/chain.p7b" -print_certs -noout | grep -c '^subject')" = 2 ] ||
	fail "PKCS#7 does not hold both certificates"
expect_fail 2 "need --out" "$AMTCA" --home "$H" chain --format der
ok "chain export: PEM bottom to top, DER files, PKCS#7"

# --- bad input: clear error, non-zero exit, nothing recorded ----------------
before=$(cert_count "$H")
echo "not a csr" >"$T/junk.csr"
expect_fail 1 "CSR" "$AMTCA" --home "$H" issue --fqdn a.example.test --csr "$T/junk.csr"
head -c 70000 /dev/urandom | base64 >"$T/big.csr"
expect_fail 1 "larger than" "$AMTCA" --home "$H" issue --fqdn a.example.test --csr "$T/big.csr"
# flip one byte inside the signature (the last bytes of the DER)
openssl req -in "$T/rsa.csr" -outform DER -out "$T/rsa.der"
python3 - "$T/rsa.der" "$T/badsig.der" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[-5] ^= 0x55
open(sys.argv[2], "wb").write(b)
PY
expect_fail 1 "signature" "$AMTCA" --home "$H" issue --fqdn a.example.test --csr "$T/badsig.der"
make_csr "$T/rsa1024.csr" rsa:1024
expect_fail 1 "1024" "$AMTCA" --home "$H" issue --fqdn a.example.test --csr "$T/rsa1024.csr"
make_csr "$T/k1.csr" ec:secp256k1
expect_fail 1 "curve" "$AMTCA" --home "$H" issue --fqdn a.example.test --csr "$T/k1.csr"
openssl req -new -key "$T/rsa.csr.key" -subj /CN=ca -addext basicConstraints=critical,CA:TRUE -out "$T/ca.csr" 2>/dev/null
expect_fail 1 "CA:TRUE" "$AMTCA" --home "$H" issue --fqdn a.example.test --csr "$T/ca.csr"
expect_fail 1 "wildcard" "$AMTCA" --home "$H" issue --fqdn '*.example.test' --csr "$T/rsa.csr"
expect_fail 1 "trailing dot" "$AMTCA" --home "$H" issue --fqdn 'a.example.test.' --csr "$T/rsa.csr"
expect_fail 1 "empty label" "$AMTCA" --home "$H" issue --fqdn 'a..example.test' --csr "$T/rsa.csr"
expect_fail 1 "63" "$AMTCA" --home "$H" issue --fqdn "$(printf 'a%.0s' {1..64}).example.test" --csr "$T/rsa.csr"
long=$(printf 'abcdefghi.%.0s' {1..25})example.test
expect_fail 1 "253" "$AMTCA" --home "$H" issue --fqdn "$long" --csr "$T/rsa.csr"
expect_fail 1 "not under an allowed domain" "$AMTCA" --home "$H" issue --fqdn 'amt.other.test' --csr "$T/rsa.csr"
expect_fail 1 "not under an allowed domain" "$AMTCA" --home "$H" issue --fqdn 'badexample.test' --csr "$T/rsa.csr"
expect_fail 1 "ip" "$AMTCA" --home "$H" issue --fqdn 'a.example.test' --csr "$T/rsa.csr" --ip 300.1.1.1
[ "$(cert_count "$H")" = "$before" ] || fail "a rejected request left a record"
ok "bad CSRs and FQDNs are refused with one-line errors and no record"

# wrong PIN: one clear error, nothing recorded, token not locked
cp "$H/keys/softhsm/user.pin" "$T/pin.good"
printf 'wrong-pin\n' >"$H/keys/softhsm/user.pin"
expect_fail 1 "PIN" "$AMTCA" --home "$H" issue --fqdn b.example.test --csr "$T/rsa.csr"
grep -q "$(cat "$T/pin.good")" "$T/err" && fail "the PIN appears in an error"
cp "$T/pin.good" "$H/keys/softhsm/user.pin"
# missing token
sed -i 's/^token_uri = .*/token_uri = pkcs11:token=no-such-token/' "$H/amtca.conf"
expect_fail 1 "token" "$AMTCA" --home "$H" issue --fqdn b.example.test --csr "$T/rsa.csr"
sed -i 's/^token_uri = .*/token_uri = pkcs11:token=amtca/' "$H/amtca.conf"
[ "$(cert_count "$H")" = "$before" ] || fail "a failed login left a record"
"$AMTCA" --home "$H" issue --fqdn b.example.test --csr "$T/rsa.csr" >/dev/null || fail "issuance after a wrong PIN fails (token locked?)"
ok "wrong PIN and missing token: clear errors, no record, token still usable"

# --- usage errors exit 2 ---------------------------------------------------------
expect_fail 2 "required" "$AMTCA" --home "$H" issue --csr "$T/rsa.csr"
expect_fail 2 "unknown command" "$AMTCA" frobnicate
"$AMTCA" --help | qgrep 'enroll' || fail "--help does not list commands"
ok "usage errors exit 2"

# --- revoke + CRL -------------------------------------------------------------------
"$AMTCA" --home "$H" revoke "$serial" --reason superseded >/dev/null
"$AMTCA" --home "$H" show "$serial" --json | qgrep '"status":"revoked"' || fail "revoked status not shown"
"$AMTCA" --home "$H" crl --out "$T/crl.pem"
openssl crl -in "$T/crl.pem" -CAfile "$H/chain.pem" -noout 2>&1 | qgrep 'verify OK' || fail "CRL signature does not verify"
openssl crl -in "$T/crl.pem" -noout -text | qgrep "$serial" || fail "CRL does not list the revoked serial"
ok "revoke and CRL"

# --- a second CA type: P-384 everywhere -> SHA-384 leaves -------------------------
H2="$T/home384"
new_ca "$H2" --key-type p384 --any-domain 2>/dev/null
"$AMTCA" --home "$H2" issue --fqdn x.any.test --csr "$T/ec.csr" >"$T/p384leaf.pem"
openssl x509 -in "$T/p384leaf.pem" -noout -text | qgrep 'ecdsa-with-SHA384' || fail "P-384 issuer must sign with SHA-384"
openssl verify -x509_strict -purpose sslserver -CAfile "$H2/root.pem" -untrusted "$H2/intermediate.pem" "$T/p384leaf.pem" >/dev/null ||
	fail "P-384 chain does not verify"
ok "P-384 CA signs leaves with SHA-384"
echo "t_ca_cli: all passed"
