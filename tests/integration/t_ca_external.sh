#!/usr/bin/env bash
# An external root (issue 10 §1): `init --external-root` makes the
# intermediate key and a CSR requesting the name constraints; until
# `ca import-intermediate` the home refuses to issue; import refuses a
# certificate for another key, without the CA flag, without (or with other)
# name constraints, or not under the given root; after a good import,
# issuance and enrollment work and openssl verifies against the external
# root alone.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ADDR=127.0.101.1
FQDN=amt-x1.example.test
HOME_CA="$T/home"
PW="$T/amt-password"
password_file "$PW" "Adm1n-$RANDOM-pw"
E="$T/ent"
mkdir "$E"

# The "enterprise root", made with openssl, and a second unrelated one.
for r in root other; do
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$E/$r.key" \
	    -subj "/O=Enterprise/CN=Enterprise $r CA" -days 3650 -out "$E/$r.pem" \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null ||
	    fail "openssl could not make the $r root"
done
# sign CSR OUT ROOT [openssl x509 -req args...]
sign() {
	local csr=$1 out=$2 root=$3
	shift 3
	openssl x509 -req -in "$csr" -CA "$E/$root.pem" -CAkey "$E/$root.key" \
	    -set_serial "0x$(openssl rand -hex 8)" -days 1000 -out "$out" "$@" 2>/dev/null ||
	    fail "openssl could not sign $out"
}

# --- init: key and request, nothing that can sign yet ------------------
"$AMTCA" --home "$HOME_CA" init --softhsm --external-root --csr-out "$T/inter.csr" \
    --domain example.test --ip-range 10.77.0.0/16 >"$T/init.out" 2>"$T/init.err" ||
    fail "init --external-root: $(cat "$T/init.err")"
grep -q "import-intermediate" "$T/init.out" || fail "init does not name the next step"
[ ! -e "$HOME_CA/root.pem" ] && [ ! -e "$HOME_CA/intermediate.pem" ] ||
    fail "a pending home has CA certificates"
openssl req -in "$T/inter.csr" -verify -noout 2>/dev/null || fail "CSR signature"
openssl req -in "$T/inter.csr" -noout -text >"$T/csr.txt"
grep -q "CA:TRUE, pathlen:0" "$T/csr.txt" || fail "CSR does not ask for CA:TRUE"
grep -q "Certificate Sign, CRL Sign" "$T/csr.txt" || fail "CSR keyUsage"
grep -q "Name Constraints: critical" "$T/csr.txt" || fail "CSR has no name constraints"
grep -q "DNS:example.test" "$T/csr.txt" || fail "CSR lacks the dNSName subtree"
grep -q "IP:10.77.0.0/255.255.0.0" "$T/csr.txt" || fail "CSR lacks the iPAddress subtree"
grep -q "IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0" "$T/csr.txt" || fail "CSR does not exclude IPv6"
ok "init --external-root writes a CSR with CA flags and name constraints"

make_csr "$T/leaf.csr" rsa:2048 "$FQDN"
expect_fail 1 "import-intermediate" "$AMTCA" --home "$HOME_CA" issue --fqdn "$FQDN" --csr "$T/leaf.csr"
expect_fail 1 "import-intermediate" "$AMTCA" --home "$HOME_CA" chain
ok "a pending home refuses to issue, naming the next command"

# --- refused imports ---------------------------------------------------
cat >"$E/ca.ext" <<'X'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
nameConstraints=critical,permitted;DNS:example.test,permitted;IP:10.77.0.0/255.255.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0
X
make_csr "$T/other.csr" rsa:2048 "amtca Issuing CA"
sign "$T/other.csr" "$T/wrongkey.pem" root -extfile "$E/ca.ext"
expect_fail 1 "another key" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/wrongkey.pem" --root "$E/root.pem"
ok "a certificate for another key is refused"

printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$E/noca.ext"
sign "$T/inter.csr" "$T/noca.pem" root -extfile "$E/noca.ext"
expect_fail 1 "not a CA" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/noca.pem" --root "$E/root.pem"
sign "$T/inter.csr" "$T/nobc.pem" root
expect_fail 1 "not a CA" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/nobc.pem" --root "$E/root.pem"
ok "a certificate without the CA flag is refused"

printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,digitalSignature\n' >"$E/noku.ext"
sign "$T/inter.csr" "$T/noku.pem" root -extfile "$E/noku.ext"
expect_fail 1 "keyCertSign" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/noku.pem" --root "$E/root.pem"
ok "a CA certificate without keyCertSign is refused"

sign "$T/inter.csr" "$T/otherroot.pem" other -extfile "$E/ca.ext"
expect_fail 1 "does not verify" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/otherroot.pem" --root "$E/root.pem"
ok "a certificate from another root is refused"

printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$E/nonc.ext"
sign "$T/inter.csr" "$T/nonc.pem" root -extfile "$E/nonc.ext"
expect_fail 1 "no name constraints" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/nonc.pem" --root "$E/root.pem"
sed 's/DNS:example.test/DNS:other.test/' "$E/ca.ext" >"$E/otherdns.ext"
sign "$T/inter.csr" "$T/otherdns.pem" root -extfile "$E/otherdns.ext"
expect_fail 1 "other.test" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/otherdns.pem" --root "$E/root.pem"
sed 's/,permitted;IP:10.77.0.0\/255.255.0.0//' "$E/ca.ext" >"$E/noip.ext"
sign "$T/inter.csr" "$T/noip.pem" root -extfile "$E/noip.ext"
expect_fail 1 "10.77.0.0/16" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/noip.pem" --root "$E/root.pem"
ok "missing or different name constraints are refused"

expect_fail 1 "import-intermediate" "$AMTCA" --home "$HOME_CA" issue --fqdn "$FQDN" --csr "$T/leaf.csr"
ok "after refused imports the home is still pending"

# --- the good import: the root copies the requested extensions ---------
sign "$T/inter.csr" "$T/inter.pem" root -copy_extensions copyall
"$AMTCA" --home "$HOME_CA" ca import-intermediate --cert "$T/inter.pem" \
    --root "$E/root.pem" >"$T/imp.out" 2>"$T/imp.err" || fail "import: $(cat "$T/imp.err")"
cmp -s <(openssl x509 -in "$HOME_CA/root.pem" -outform DER) \
    <(openssl x509 -in "$E/root.pem" -outform DER) || fail "root.pem is not the external root"
"$AMTCA" --home "$HOME_CA" chain >"$T/chain.pem" || fail "chain export"
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/chain.pem")" = 2 ] || fail "chain is not 2 certificates"
last=$(awk '/BEGIN CERT/{n++} n==2' "$T/chain.pem" | openssl x509 -noout -fingerprint -sha256)
[ "$last" = "$(openssl x509 -in "$E/root.pem" -noout -fingerprint -sha256)" ] ||
    fail "the exported chain does not end in the external root"
expect_fail 1 "not waiting" "$AMTCA" --home "$HOME_CA" ca import-intermediate \
    --cert "$T/inter.pem" --root "$E/root.pem"
"$AMTCA" --home "$HOME_CA" audit show --action ca.import >"$T/aud" || fail "audit show"
grep -q "ca.import" "$T/aud" || fail "no ca.import audit entry: $(cat "$T/aud")"
"$AMTCA" --home "$HOME_CA" audit verify >/dev/null 2>"$T/av.err" || fail "audit verify: $(cat "$T/av.err")"
ok "import succeeds; chain ends in the external root; ca.import audited and sealed"

"$AMTCA" --home "$HOME_CA" issue --fqdn "$FQDN" --csr "$T/leaf.csr" --out "$T/leaf.pem" ||
    fail "issue after import"
openssl verify -x509_strict -CAfile "$E/root.pem" -untrusted "$HOME_CA/intermediate.pem" \
    "$T/leaf.pem" >/dev/null || fail "leaf does not verify to the external root"
ok "issued leaf verifies to the external root"

# Rotation needs the root key, which an external root keeps: refused,
# saying how such a CA gets a new intermediate, and nothing changes.
cp "$HOME_CA/chain.pem" "$T/chain0.pem"
expect_fail 1 "this CA's root is external.*ca import-intermediate" \
    "$AMTCA" --home "$HOME_CA" ca rotate
cmp -s "$T/chain0.pem" "$HOME_CA/chain.pem" || fail "a refused rotate changed chain.pem"
grep -q intermediate_key "$HOME_CA/amtca.conf" && fail "a refused rotate changed amtca.conf"
ok "ca rotate under an external root: refused with the way out, nothing changed"

# ... and done that way: the next key's request, signed by the enterprise
# root, imported; both generations' leaves verify to the external root.
"$AMTCA" --home "$HOME_CA" ca rotate --csr-out "$T/next.csr" --key-type p384 >"$T/rr.out" 2>"$T/rr.err" ||
    fail "ca rotate --csr-out: $(cat "$T/rr.err")"
openssl req -in "$T/next.csr" -noout -subject | qgrep "G2" || fail "the request's subject has no generation"
cmp -s "$T/chain0.pem" "$HOME_CA/chain.pem" || fail "the request alone changed chain.pem"
"$AMTCA" --home "$HOME_CA" issue --fqdn "$FQDN" --csr "$T/leaf.csr" --out "$T/leaf1b.pem" >/dev/null ||
    fail "issue while a rotation request is out"
openssl x509 -in "$T/leaf1b.pem" -noout -issuer | qgrep "G2" && fail "issued under the unimported G2"
sign "$T/next.csr" "$T/wrong-g2.pem" other -extfile "$E/ca.ext"
expect_fail 1 "is not this CA's root" "$AMTCA" --home "$HOME_CA" ca import-intermediate --cert "$T/wrong-g2.pem" --root "$E/other.pem"
sign "$T/next.csr" "$T/g2.pem" root -extfile "$E/ca.ext"
"$AMTCA" --home "$HOME_CA" ca import-intermediate --cert "$T/g2.pem" --root "$E/root.pem" >/dev/null 2>"$T/ri.err" ||
    fail "import of the rotated intermediate: $(cat "$T/ri.err")"
[ -e "$HOME_CA/intermediate-next.csr" ] && fail "the answered request is still in the home"
"$AMTCA" --home "$HOME_CA" issue --fqdn "$FQDN" --csr "$T/leaf.csr" --out "$T/leaf2.pem" >/dev/null
openssl x509 -in "$T/leaf2.pem" -noout -issuer | qgrep "G2" || fail "not issued under G2 after import"
"$AMTCA" --home "$HOME_CA" chain >"$T/chain2.pem"
[ "$(grep -c BEGIN "$T/chain2.pem")" = 3 ] || fail "chain after an external rotation: $(grep -c BEGIN "$T/chain2.pem")"
for f in leaf leaf2; do
	openssl verify -CAfile "$E/root.pem" -untrusted "$T/chain2.pem" "$T/$f.pem" >/dev/null ||
	    fail "$f does not verify to the external root after rotation"
done
"$AMTCA" --home "$HOME_CA" audit verify >/dev/null 2>&1 || fail "audit verify after an external rotation"
ok "external root: ca rotate --csr-out + import-intermediate rotate; a wrong root is refused; both leaves verify"

# --- enrollment against amtsim; s_client trusts the external root only --
# AMT serves the leaf alone: the client holds our intermediate (untrusted
# without -partial_chain: OpenSSL must still reach a self-signed anchor,
# and the only one here is the enterprise root made above).
cat "$HOME_CA/intermediate.pem" "$E/root.pem" >"$T/trust.pem"
sim_up "$T/sim.log" "$ADDR" "$FQDN"
enroll "$ADDR" "$FQDN" >"$T/en.out" 2>"$T/en.err" || fail "enroll: $(cat "$T/en.err")"
out=$(openssl s_client -connect "$ADDR:16993" -servername "$FQDN" \
    -verify_return_error -verify_hostname "$FQDN" -CAfile "$T/trust.pem" \
    </dev/null 2>&1) || fail "s_client against the external root: $(echo "$out" | grep -iE "error|verify" | head -n 8)"
echo "$out" | qgrep 'Verify return code: 0 (ok)' || fail "s_client: $(echo "$out" | grep 'Verify return')"
ok "enrolled device verifies with openssl s_client against the external root"

# --- --any-domain takes an intermediate without name constraints -------
H2="$T/home2"
"$AMTCA" --home "$H2" init --softhsm --external-root --csr-out "$T/i2.csr" \
    --domain example.test >/dev/null 2>&1 || fail "second init"
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nnameConstraints=critical,permitted;DNS:example.test\n' >"$E/dnsonly.ext"
sign "$T/i2.csr" "$T/i2open.pem" root -extfile "$E/dnsonly.ext"
expect_fail 1 "0.0.0.0/0" "$AMTCA" --home "$H2" ca import-intermediate \
    --cert "$T/i2open.pem" --root "$E/root.pem"
ok "DNS-only name constraints that leave IP names open are refused"
sign "$T/i2.csr" "$T/i2.pem" root -extfile "$E/nonc.ext"
"$AMTCA" --home "$H2" ca import-intermediate --cert "$T/i2.pem" --root "$E/root.pem" \
    --any-domain >/dev/null 2>"$T/i2.err" || fail "--any-domain import: $(cat "$T/i2.err")"
grep -q "warning" "$T/i2.err" || fail "--any-domain import does not warn"
ok "--any-domain imports an unconstrained intermediate, with a warning"
