#!/usr/bin/env bash
# Intermediate rotation (issue 10 §2, docs/rotation.md).  Properties:
# `ca rotate` makes a new key (its own label) and a new intermediate under
# the same root with its own subject; issuance uses it at once; `amtca
# chain` is current, old, root and leaves of both verify with it alone; the
# old intermediate's CRL (by key id) still lists its revoked leaf, is
# signed by the old key and is the one `-crl_check` needs; the new CRL
# lists none of the old's; `serve` publishes the same chain and both CRLs;
# a second rotation to P-384 works; the audit trail verifies; a SIGKILL at
# each step of a rotation leaves a home that issues (old or new CA, never
# half); revoke-intermediate refuses the current one and `crl --root` lists
# a revoked one; prune drops an intermediate with no valid certificate;
# backup/restore keeps every intermediate; crl_url's {keyid} gives each
# leaf its own issuer's CRL URL.
# Addresses: 127.0.140.x (amtsim 1, serve 200).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
H=$HOME_CA
inter_cn() { openssl x509 -in "$1" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p'; }
keyid() { openssl x509 -in "$1" -noout -ext subjectKeyIdentifier | sed -n '2s/[ :]//gp' | tr 'A-F' 'a-f'; }
issue() { "$AMTCA" --home "$H" issue --fqdn "$1" --csr "$T/leaf.csr" --out "$2" >/dev/null; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
crl_lists() { openssl crl -in "$1" -noout -text | qgrep "Serial Number: $2"; }
make_csr "$T/leaf.csr" rsa:2048 a.example.test

issue a.example.test "$T/A.pem"
issue r.example.test "$T/R.pem"
R=$(serial_of "$T/R.pem")
"$AMTCA" --home "$H" revoke "$R" --reason keyCompromise >/dev/null
# R as a record made before rotation existed: no issuer (generation 1's).
sqlite3 "$H/keys/ca.db" "UPDATE certificates SET issuer = NULL WHERE serial = '$R'"
cp "$H/intermediate.pem" "$T/g1.pem"
K1=$(keyid "$T/g1.pem")
"$AMTCA" --home "$H" crl --out "$T/pre.pem" >/dev/null
"$AMTCA" --home "$H" ca rotate >"$T/rot.out" 2>"$T/rot.err" || fail "ca rotate: $(cat "$T/rot.err")"
cp "$H/intermediate.pem" "$T/g2.pem"
K2=$(keyid "$T/g2.pem")
[ "$K1" != "$K2" ] || fail "the key id did not change"
[ "$(inter_cn "$T/g1.pem")" = "amtca Issuing CA" ] || fail "g1 CN $(inter_cn "$T/g1.pem")"
[ "$(inter_cn "$T/g2.pem")" = "amtca Issuing CA G2" ] || fail "g2 CN $(inter_cn "$T/g2.pem")"
grep -qx "intermediate_key = amtca-intermediate-g2" "$H/amtca.conf" || fail "conf has no intermediate_key"
openssl verify -CAfile "$H/root.pem" "$T/g2.pem" >/dev/null || fail "G2 is not under the same root"
# Same name constraints as G1.
for f in g1 g2; do openssl x509 -in "$T/$f.pem" -noout -ext nameConstraints >"$T/$f.nc"; done
cmp -s "$T/g1.nc" "$T/g2.nc" || fail "name constraints differ: $(cat "$T/g2.nc")"
pkcs11_labels() { SOFTHSM2_CONF="$H/keys/softhsm/softhsm2.conf" pkcs11-tool --module "$SOFTHSM_MODULE" --token-label amtca --login \
    --pin "$(cat "$H/keys/softhsm/user.pin")" --list-objects --type privkey 2>/dev/null |
    sed -n 's/^ *label: *//p' | sort | tr '\n' ' '; }
[ "$(pkcs11_labels)" = "amtca-audit amtca-intermediate amtca-intermediate-g2 amtca-root " ] ||
    fail "token keys after rotate: $(pkcs11_labels)"
ok "ca rotate: new key amtca-intermediate-g2, new intermediate 'amtca Issuing CA G2' under the same root, same name constraints"

issue b.example.test "$T/B.pem"
"$AMTCA" --home "$H" show "$(serial_of "$T/B.pem")" --json | qgrep "\"issuer\":\"$K2\"" ||
    fail "show --json does not name B's issuer $K2"
"$AMTCA" --home "$H" show "$(serial_of "$T/A.pem")" --json | qgrep "\"issuer\":\"$K1\"" ||
    fail "show --json does not name A's issuer $K1"
[ "$(openssl x509 -in "$T/B.pem" -noout -issuer -nameopt multiline | sed -n 's/^ *commonName *= *//p')" = "amtca Issuing CA G2" ] ||
    fail "B is not issued by G2"
"$AMTCA" --home "$H" chain >"$T/chain.pem"
[ "$(grep -c BEGIN "$T/chain.pem")" = 3 ] || fail "chain holds $(grep -c BEGIN "$T/chain.pem") certificates"
cmp -s "$T/chain.pem" "$H/chain.pem" || fail "amtca chain differs from chain.pem"
python3 - "$T/chain.pem" "$T/g2.pem" "$T/g1.pem" "$H/root.pem" <<'PY' || fail "chain order is not current, old, root"
import sys
blocks = open(sys.argv[1]).read().split("-----END CERTIFICATE-----")[:3]
want = [open(f).read().split("-----END CERTIFICATE-----")[0] for f in sys.argv[2:]]
assert [b.strip() for b in blocks] == [w.strip() for w in want]
PY
# Only the exported chain: root (last) the anchor, the rest untrusted.
awk '/BEGIN/{n++} n==3' "$T/chain.pem" >"$T/anchor.pem"
for f in A B; do
	openssl verify -CAfile "$T/anchor.pem" -untrusted "$T/chain.pem" "$T/$f.pem" >/dev/null ||
	    fail "$f does not verify with the exported chain"
done
ok "new issuance under G2 at once; amtca chain = G2, G1, root; A (G1) and B (G2) verify with it alone"

"$AMTCA" --home "$H" crl --issuer "$K1" --out "$T/old.pem" >/dev/null || fail "crl --issuer $K1"
"$AMTCA" --home "$H" crl --out "$T/new.pem" >/dev/null
crl_lists "$T/old.pem" "$R" || fail "the old CRL does not list R"
crl_lists "$T/new.pem" "$R" && fail "the new CRL lists G1's R"
openssl crl -in "$T/old.pem" -noout -verify -CAfile "$T/g1.pem" 2>&1 | qgrep "verify OK" ||
    fail "the old CRL is not signed by G1's key"
openssl crl -in "$T/new.pem" -noout -verify -CAfile "$T/g2.pem" 2>&1 | qgrep "verify OK" ||
    fail "the new CRL is not signed by G2's key"
openssl verify -crl_check -CAfile "$T/anchor.pem" -untrusted "$T/chain.pem" \
    -CRLfile "$T/old.pem" "$T/A.pem" >/dev/null || fail "A fails -crl_check with the old CRL"
openssl verify -crl_check -CAfile "$T/anchor.pem" -untrusted "$T/chain.pem" \
    -CRLfile "$T/old.pem" "$T/R.pem" >"$T/v.out" 2>&1 && fail "R passes -crl_check with the old CRL"
grep -q "certificate revoked" "$T/v.out" || fail "R: $(cat "$T/v.out")"
"$AMTCA" --home "$H" crl --issuer 0123abcd --out "$T/x.pem" >/dev/null 2>"$T/err" && fail "an unknown issuer gave a CRL"
grep -q "no issuing CA with key identifier 0123abcd" "$T/err" || fail "unknown issuer: $(cat "$T/err")"
ok "the old intermediate's CRL lists R and is signed by G1; the new one does not list it; -crl_check: A passes, R revoked"

# --- serve publishes both ------------------------------------------------
A=127.0.140.200
"$AMTCA" --home "$H" serve --listen "$A:8443" --name svc.example.test \
    --publish-listen "$A:8080" --user nobody --reconcile-every 0 >"$T/s.out" 2>"$T/s.err" &
SP=$!
on_exit "kill -TERM $SP 2>/dev/null; wait $SP 2>/dev/null"
for ((i = 0; i < 600; i++)); do
	grep -qx ready "$T/s.out" 2>/dev/null && break
	kill -0 "$SP" 2>/dev/null || fail "serve exited: $(cat "$T/s.err")"
	sleep 0.05
done
C=(curl -sS --fail --max-time 10)
"${C[@]}" "http://$A:8080/chain.pem" -o "$T/pub-chain.pem" || fail "GET /chain.pem"
cmp -s "$T/pub-chain.pem" "$T/chain.pem" || fail "/chain.pem differs from amtca chain"
"${C[@]}" "http://$A:8080/chain.p7b" -o "$T/pub.p7b" || fail "GET /chain.p7b"
[ "$(openssl pkcs7 -inform DER -in "$T/pub.p7b" -print_certs | grep -c BEGIN)" = 3 ] ||
    fail "/chain.p7b does not carry 3 certificates"
"${C[@]}" "http://$A:8080/crl/$K1.crl" -o "$T/pub-old.der" || fail "GET /crl/$K1.crl"
openssl crl -inform DER -in "$T/pub-old.der" -out "$T/pub-old.pem"
crl_lists "$T/pub-old.pem" "$R" || fail "/crl/$K1.crl does not list R"
"${C[@]}" "http://$A:8080/crl" -o "$T/pub-cur.der" || fail "GET /crl"
openssl crl -inform DER -in "$T/pub-cur.der" -noout -verify -CAfile "$T/g2.pem" 2>&1 | qgrep "verify OK" ||
    fail "/crl is not the current intermediate's"
"${C[@]}" "http://$A:8080/ca/$K1.cer" -o "$T/pub-g1.cer" || fail "GET /ca/$K1.cer"
"${C[@]}" "http://$A:8080/ca/$K2.cer" -o "$T/pub-g2.cer" || fail "GET /ca/$K2.cer"
openssl x509 -inform DER -in "$T/pub-g1.cer" | cmp -s - <(openssl x509 -in "$T/g1.pem") ||
    fail "/ca/$K1.cer is not G1"
"${C[@]}" --cacert "$H/root.pem" --resolve "svc.example.test:8443:$A" \
    "https://svc.example.test:8443/.well-known/est/cacerts" -o "$T/est-ca.b64" || fail "GET EST cacerts"
base64 -d "$T/est-ca.b64" | openssl pkcs7 -inform DER -print_certs >"$T/est-ca.pem" ||
    fail "EST cacerts does not decode"
[ "$(grep -c BEGIN "$T/est-ca.pem")" = 3 ] || fail "EST cacerts does not carry 3 certificates"
for g in g1 g2 root; do
	[ "$g" = root ] && f="$H/root.pem" || f="$T/$g.pem"
	fp=$(openssl x509 -in "$f" -noout -fingerprint -sha256)
	csplit -s -z -f "$T/estc" "$T/est-ca.pem" '/BEGIN/' '{*}'
	found=0
	for c in "$T"/estc*; do
		[ "$(openssl x509 -in "$c" -noout -fingerprint -sha256 2>/dev/null)" = "$fp" ] && found=1
	done
	rm -f "$T"/estc*
	[ $found = 1 ] || fail "EST cacerts lacks $g"
done
kill -TERM "$SP"
wait "$SP" || fail "serve did not exit 0"
ok "serve: /chain.pem byte-equal to amtca chain, /chain.p7b with both, /crl/$K1.crl lists R, /crl is G2's, /ca/<id>.cer for each, EST cacerts with both intermediates"

# --- a device enrolls under G2 and verifies with chain.pem ---------------
sim_up "$T/sim.log" 127.0.140.1 amt-r1.example.test
enroll 127.0.140.1 amt-r1.example.test >/dev/null 2>"$T/en.err" || fail "enroll after rotate: $(cat "$T/en.err")"
s_client_ok 127.0.140.1 amt-r1.example.test
openssl s_client -connect 127.0.140.1:16993 -servername amt-r1.example.test </dev/null 2>/dev/null |
    openssl x509 -noout -issuer | qgrep "amtca Issuing CA G2" || fail "the device's leaf is not G2's"
ok "enrollment after rotate: the device serves a G2 leaf that verifies with chain.pem"

# --- a second rotation, to P-384 ------------------------------------------
"$AMTCA" --home "$H" ca rotate --key-type p384 >/dev/null 2>"$T/err" || fail "rotate --key-type p384: $(cat "$T/err")"
cp "$H/intermediate.pem" "$T/g3.pem"
K3=$(keyid "$T/g3.pem")
openssl x509 -in "$T/g3.pem" -noout -text | qgrep "NIST CURVE: P-384" || fail "G3 is not P-384"
openssl x509 -in "$T/g3.pem" -noout -text | qgrep "Signature Algorithm: sha384WithRSAEncryption" ||
    fail "G3 is not signed with SHA-384"
[ "$(inter_cn "$T/g3.pem")" = "amtca Issuing CA G3" ] || fail "g3 CN $(inter_cn "$T/g3.pem")"
make_csr "$T/leaf384.csr" ec:secp384r1 c.example.test
"$AMTCA" --home "$H" issue --fqdn c.example.test --csr "$T/leaf384.csr" --out "$T/C.pem" >/dev/null
"$AMTCA" --home "$H" chain >"$T/chain3.pem"
[ "$(grep -c BEGIN "$T/chain3.pem")" = 4 ] || fail "chain after 2 rotations: $(grep -c BEGIN "$T/chain3.pem")"
for f in A B C; do
	openssl verify -CAfile "$T/anchor.pem" -untrusted "$T/chain3.pem" "$T/$f.pem" >/dev/null ||
	    fail "$f does not verify after the second rotation"
done
# doctor: chain.pem (G3, G2, G1, root) is sound and holds the issuer of
# the device's G2 leaf, now a retired intermediate's.
"$AMTCA" --home "$H" doctor --host amt-r1.example.test --address 127.0.140.1 \
    --user admin --password-file "$PW" >"$T/doc.out" 2>&1 || true
grep -q "^OK   chain.pem: .*4 certificate(s).*a retired intermediate in it issued the served leaf" "$T/doc.out" ||
    fail "doctor chain.pem after rotation: $(grep chain.pem "$T/doc.out")"
stop_sim
"$AMTCA" --home "$H" crl --issuer "$K1" --out "$T/old3.pem" >/dev/null || fail "G1's CRL after 2 rotations"
crl_lists "$T/old3.pem" "$R" || fail "G1's CRL lost R"
"$AMTCA" --home "$H" ca rotate --key-type rsa3072 --days 30 >/dev/null 2>"$T/err" || fail "rotate --key-type rsa3072: $(cat "$T/err")"
openssl x509 -in "$H/intermediate.pem" -noout -text | qgrep "Public-Key: (3072 bit)" || fail "G4 is not RSA-3072"
"$AMTCA" --home "$H" issue --fqdn d.example.test --csr "$T/leaf.csr" --out "$T/D.pem" >/dev/null
ok "second and third rotation (p384, rsa3072): G3/G4, SHA-384-signed, chain of 5 verifies A, B, C; G1's CRL still lists R"

"$AMTCA" --home "$H" audit verify >"$T/av.out" 2>&1 || fail "audit verify: $(cat "$T/av.out")"
"$AMTCA" --home "$H" audit show --action ca.rotate --json >"$T/rot.json"
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["entries"]))' "$T/rot.json")" = 3 ] ||
    fail "ca.rotate entries: $(cat "$T/rot.json")"
qgrep "old=$K1 generation=2" "$T/rot.json" || fail "ca.rotate detail: $(cat "$T/rot.json")"
qgrep "\"subject\":\"$K2\"" "$T/rot.json" || fail "ca.rotate subject: $(cat "$T/rot.json")"
ok "audit verify passes; three ca.rotate entries name new key id, old key id and generation"

# --- revoke-intermediate, crl --root --------------------------------------
KC=$(keyid "$H/intermediate.pem")
expect_fail 1 "is the current (issuing) intermediate" "$AMTCA" --home "$H" ca revoke-intermediate "$KC"
expect_fail 1 "no intermediate with key identifier" "$AMTCA" --home "$H" ca revoke-intermediate abcdef12
"$AMTCA" --home "$H" ca revoke-intermediate "$K1" --reason superseded >/dev/null || fail "revoke-intermediate $K1"
"$AMTCA" --home "$H" crl --root --out "$T/root.crl" >/dev/null || fail "crl --root"
G1S=$(serial_of "$T/g1.pem")
crl_lists "$T/root.crl" "$G1S" || fail "crl --root does not list G1 ($G1S)"
crl_lists "$T/root.crl" "$(serial_of "$T/g2.pem")" && fail "crl --root lists G2"
openssl crl -in "$T/root.crl" -noout -verify -CAfile "$H/root.pem" 2>&1 | qgrep "verify OK" || fail "root CRL signature"
openssl verify -crl_check -CAfile "$T/anchor.pem" -untrusted "$T/chain3.pem" \
    -CRLfile "$T/root.crl" "$T/g1.pem" >"$T/v.out" 2>&1 && fail "revoked G1 passes -crl_check"
"$AMTCA" --home "$H" ca list >"$T/list.out"
grep -q "^revoked  1 *$K1" "$T/list.out" || fail "ca list: $(cat "$T/list.out")"
grep -q "^current  4 " "$T/list.out" || fail "ca list: $(cat "$T/list.out")"
ok "revoke-intermediate refuses the current one; crl --root lists the revoked G1 only, signed by the root"

# --- prune -----------------------------------------------------------------
# G1's leaves: A valid (keeps it), R revoked.  G3's: C.  Revoke C: G3 ends.
"$AMTCA" --home "$H" revoke "$(serial_of "$T/C.pem")" >/dev/null
"$AMTCA" --home "$H" ca prune --dry-run >"$T/pr.out"
grep -q "would end $K3" "$T/pr.out" || fail "prune --dry-run: $(cat "$T/pr.out")"
cmp -s "$H/chain.pem" "$T/chain-before-prune.pem" 2>/dev/null || cp "$H/chain.pem" "$T/chain-before-prune.pem"
[ "$(grep -c BEGIN "$H/chain.pem")" = 5 ] || fail "--dry-run changed chain.pem"
"$AMTCA" --home "$H" ca prune >"$T/pr.out" || fail "prune"
grep -q "ended $K3" "$T/pr.out" || fail "prune: $(cat "$T/pr.out")"
grep -q "$K1\|$K2" "$T/pr.out" && fail "prune ended an intermediate with a valid leaf: $(cat "$T/pr.out")"
[ "$(grep -c BEGIN "$H/chain.pem")" = 4 ] || fail "chain after prune: $(grep -c BEGIN "$H/chain.pem")"
python3 -c 'import sys; g=open(sys.argv[1]).read().split("-----")[2].strip(); sys.exit(g in open(sys.argv[2]).read())' \
    "$T/g3.pem" "$H/chain.pem" || fail "G3 still in chain.pem"
for f in A B D; do
	openssl verify -CAfile "$T/anchor.pem" -untrusted "$H/chain.pem" "$T/$f.pem" >/dev/null ||
	    fail "$f does not verify after prune"
done
"$AMTCA" --home "$H" crl --issuer "$K1" --out "$T/old4.pem" >/dev/null || fail "G1's CRL after prune"
ok "prune: G3 (its only leaf revoked) leaves the chain; G1 and G2 (valid leaves) stay"

# --- backup and restore keep every intermediate ----------------------------
"$AMTCA" --home "$H" backup --out "$T/bk" >"$T/b.out" 2>"$T/b.err" || fail "backup after rotations: $(cat "$T/b.err")"
"$AMTCA" restore --from "$T/bk" --home "$T/restored" --pin-file "$H/keys/softhsm/user.pin" >/dev/null 2>"$T/r.err" ||
    fail "restore after rotations: $(cat "$T/r.err")"
cmp -s "$H/chain.pem" "$T/restored/chain.pem" || fail "the restored chain differs"
"$AMTCA" --home "$T/restored" issue --fqdn e.example.test --csr "$T/leaf.csr" --out "$T/E.pem" >/dev/null ||
    fail "the restored home does not issue"
openssl x509 -in "$T/E.pem" -noout -issuer | qgrep "amtca Issuing CA G4" || fail "restored home issues under $(openssl x509 -in "$T/E.pem" -noout -issuer)"
"$AMTCA" --home "$T/restored" crl --issuer "$K1" --out "$T/rold.pem" >/dev/null || fail "restored: G1's CRL"
crl_lists "$T/rold.pem" "$R" || fail "restored: G1's CRL lost R"
ok "backup and restore after rotations: same chain, issues under G4, G1's CRL still lists R"

# --- a kill at each step of a rotation -------------------------------------
for step in key records conf retired chain; do
	H2="$T/k-$step"
	new_ca "$H2" --domain example.test
	"$AMTCA" --home "$H2" issue --fqdn a.example.test --csr "$T/leaf.csr" --out "$T/k0.pem" >/dev/null
	cp "$H2/intermediate.pem" "$T/k-before.pem"
	rc=0
	AMTCA_TEST_ROTATE_CRASH=$step "$AMTCA" --home "$H2" ca rotate >/dev/null 2>&1 || rc=$?
	[ "$rc" = 137 ] || fail "rotate with a crash at $step exited $rc"
	cmp -s "$H2/intermediate.pem" "$T/k-before.pem" || fail "crash at $step: intermediate.pem changed"
	"$AMTCA" --home "$H2" issue --fqdn k.example.test --csr "$T/leaf.csr" --out "$T/k1.pem" >/dev/null 2>"$T/err" ||
	    fail "the home does not issue after a crash at $step: $(cat "$T/err")"
	"$AMTCA" --home "$H2" chain >"$T/kc.pem"
	openssl verify -CAfile "$H2/root.pem" -untrusted "$T/kc.pem" "$T/k1.pem" >/dev/null ||
	    fail "crash at $step: the new leaf does not verify with the chain"
	openssl x509 -in "$T/k1.pem" -noout -issuer | qgrep "amtca Issuing CA$" ||
	    fail "crash at $step: not issued by the old intermediate"
	# Rerun: completes the rotation.
	"$AMTCA" --home "$H2" ca rotate >/dev/null 2>"$T/err" || fail "rotate after a crash at $step: $(cat "$T/err")"
	"$AMTCA" --home "$H2" issue --fqdn k.example.test --csr "$T/leaf.csr" --out "$T/k2.pem" >/dev/null
	openssl x509 -in "$T/k2.pem" -noout -issuer | qgrep "amtca Issuing CA G2" ||
	    fail "crash at $step: the rerun did not make G2"
	"$AMTCA" --home "$H2" chain >"$T/kc.pem"
	[ "$(grep -c BEGIN "$T/kc.pem")" = 3 ] || fail "crash at $step, rerun: chain of $(grep -c BEGIN "$T/kc.pem")"
	for f in k0 k1 k2; do
		openssl verify -CAfile "$H2/root.pem" -untrusted "$T/kc.pem" "$T/$f.pem" >/dev/null ||
		    fail "crash at $step, rerun: $f does not verify"
	done
	"$AMTCA" --home "$H2" audit verify >/dev/null 2>&1 || fail "crash at $step: audit verify"
done
ok "SIGKILL after key, records, conf, retired and chain: the old CA issues on; a rerun completes the rotation"

# --- crl_url {keyid}: each leaf names its own issuer's CRL -----------------
H3="$T/cdp"
new_ca "$H3" --domain example.test
echo 'crl_url = http://ca.example.test:8080/crl/{keyid}.crl' >>"$H3/amtca.conf"
cdp() { openssl x509 -in "$1" -noout -ext crlDistributionPoints | sed -n 's/^ *URI://p'; }
"$AMTCA" --home "$H3" issue --fqdn a.example.test --csr "$T/leaf.csr" --out "$T/cdp1.pem" >/dev/null
"$AMTCA" --home "$H3" ca rotate >/dev/null 2>"$T/err" || fail "rotate with crl_url: $(cat "$T/err")"
[ -s "$T/err" ] && fail "rotate warned with {keyid} in crl_url: $(cat "$T/err")"
"$AMTCA" --home "$H3" issue --fqdn b.example.test --csr "$T/leaf.csr" --out "$T/cdp2.pem" >/dev/null
[ "$(cdp "$T/cdp1.pem")" = "http://ca.example.test:8080/crl/$(keyid "$H3/intermediate-retired.pem").crl" ] ||
    fail "G1 leaf CDP: $(cdp "$T/cdp1.pem")"
[ "$(cdp "$T/cdp2.pem")" = "http://ca.example.test:8080/crl/$(keyid "$H3/intermediate.pem").crl" ] ||
    fail "G2 leaf CDP: $(cdp "$T/cdp2.pem")"
sed -i 's|^crl_url = .*|crl_url = http://ca.example.test:8080/crl|' "$H3/amtca.conf"
"$AMTCA" --home "$H3" ca rotate >/dev/null 2>"$T/err" || fail "rotate with a fixed crl_url: $(cat "$T/err")"
grep -q "warning: crl_url has no {keyid}" "$T/err" || fail "no warning for a fixed crl_url: $(cat "$T/err")"
ok "crl_url with {keyid}: G1's and G2's leaves each name their issuer's /crl/<keyid>.crl; a fixed crl_url warns at rotate"

# Bad input changes nothing.
cp "$H/chain.pem" "$T/c0.pem"
expect_fail 2 "unknown --key-type" "$AMTCA" --home "$H" ca rotate --key-type rsa1024
expect_fail 2 "--days" "$AMTCA" --home "$H" ca rotate --days 0
expect_fail 2 "takes one KEYID" "$AMTCA" --home "$H" ca revoke-intermediate not-hex
expect_fail 1 "is for a CA under an external root" "$AMTCA" --home "$H" ca rotate --csr-out "$T/x.csr"
[ -e "$T/x.csr" ] && fail "--csr-out on an own-root CA wrote a request"
cmp -s "$T/c0.pem" "$H/chain.pem" || fail "a refused rotate changed chain.pem"
ok "option errors change nothing"
