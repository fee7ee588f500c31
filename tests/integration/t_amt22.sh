#!/usr/bin/env bash
# The AMT 22 profile (issue 10 §6).  amtsim --amt-version 22.x models what
# is public about AMT 22 (docs/amtsim.md: not verified on hardware): no
# RSA-2048 key generation, ECC-384 and RSA-3072 each switchable, SHA-384
# CSRs (SigningAlgorithm 2), RSA-2048/P-256 and SHA-256-signed leaves
# refused.  amtca's profile table asks such a device for ECC-384, else
# RSA-3072, with SHA-384 CSRs and a SHA-384-signed leaf; older firmware
# keeps today's RSA-2048/SHA-256 profile.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

V22=22.0.0.1000
PW="$T/amt-password"
password_file "$PW" "Adm1n-$RANDOM-pw"
P384="$T/home-p384"
RSA="$T/home-rsa"
new_ca "$P384" --domain example.test --key-type p384
new_ca "$RSA" --domain example.test

# served_text ADDR FQDN: `openssl x509 -text` of the leaf served on 16993.
served_text() {
	openssl s_client -connect "$1:16993" -servername "$2" </dev/null 2>/dev/null |
	    openssl x509 -noout -text
}

# amt_state ADDR FQDN: "certs=N keys=K" of AMT's store over plain HTTP.
amt_state() {
	"$AMTCA" --home "$HOME_CA" amt-info --host "$2" --address "$1" --user admin \
	    --password-file "$PW" --json 2>"$T/info.err" | python3 -c '
import json, sys
d = json.load(sys.stdin)
certs = [c for c in d["certificates"] if not c.get("read_only")]
print("certs=%d keys=%d tls=%s" % (len(certs), len(d["keys"]), d["tls"]["remote"]["enabled"]))'
}

# --- the simulator's facts, and their switches -----------------------------
"$AMTSIM" --amt-version "$V22" --list-quirks >"$T/q22"
"$AMTSIM" --amt-version 16.1.27.2225 --list-quirks >"$T/q16"
"$AMTSIM" --amt-version 22.1.5.77 --amt-quirk keygen-ecc384=off \
    --amt-quirk refuse-sha256-chain=on --list-quirks >"$T/q22b"
for q in "keygen-rsa2048 off" "keygen-ecc384 on" "keygen-rsa3072 on" "csr-sha256 off" \
    "csr-sha384 on" "refuse-weak-leaf-key on" "refuse-sha256-leaf on" "refuse-sha256-chain off"; do
	grep -Eq "^${q% *} +${q#* } " "$T/q22" || fail "AMT 22 default is not '$q': $(cat "$T/q22")"
done
for q in "keygen-rsa2048 on" "keygen-ecc384 off" "csr-sha256 on" "csr-sha384 off" "refuse-weak-leaf-key off"; do
	grep -Eq "^${q% *} +${q#* } " "$T/q16" || fail "AMT 16 default is not '$q': $(cat "$T/q16")"
done
grep -Eq "^keygen-ecc384 +off " "$T/q22b" && grep -Eq "^refuse-sha256-chain +on " "$T/q22b" ||
    fail "--amt-quirk did not switch: $(cat "$T/q22b")"
rc=0
"$AMTSIM" --amt-version "$V22" --amt-quirk no-such-fact=on --list-quirks 2>"$T/qerr" || rc=$?
[ "$rc" = 2 ] && grep -q "unknown --amt-quirk" "$T/qerr" || fail "unknown quirk accepted ($rc)"
ok "amtsim's AMT 22 facts by version, each switchable with --amt-quirk"

# --- the same facts on the wire (raw WS-MAN, curl with Digest) ---------------
# wsman ADDR METHOD INPUT_XML: call AMT_PublicKeyManagementService.METHOD,
# print its ReturnValue.
NETRC="$T/netrc"
( umask 077; printf 'default login admin password %s\n' "$(cat "$PW")" >"$NETRC" )
wsman() {
	local addr=$1 m=$2 input=$3 svc=http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService
	printf '<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns="http://www.w3.org/2003/05/soap-envelope"><Header><a:Action>%s/%s</a:Action><a:To>/wsman</a:To><w:ResourceURI>%s</w:ResourceURI><a:MessageID>1</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo></Header><Body><h:%s_INPUT xmlns:h="%s">%s</h:%s_INPUT></Body></Envelope>' \
	    "$svc" "$m" "$svc" "$m" "$svc" "$input" "$m" >"$T/req.xml"
	curl -s --digest --netrc-file "$NETRC" -H 'Content-Type: application/soap+xml;charset=UTF-8' \
	    --data-binary @"$T/req.xml" "http://$addr:16992/wsman" >"$T/resp.xml"
	sed -n 's/.*<g:ReturnValue>\([0-9]*\)<.*/\1/p' "$T/resp.xml"
}
# leaf_b64 KEYOPTS DIGEST: base64 DER of a self-signed non-CA certificate.
leaf_b64() {
	openssl req -x509 -newkey "$1" -keyout /dev/null -nodes -"$2" -days 30 \
	    -subj /CN=wire.example.test -addext "basicConstraints=critical,CA:FALSE" \
	    -outform DER 2>/dev/null | base64 -w0
}
ADDR=127.0.122.9
sim_up "$T/sim0.log" "$ADDR" wire.example.test --amt-version "$V22"
HOME_CA=$P384
gk() { wsman "$ADDR" GenerateKeyPair "<h:KeyAlgorithm>$1</h:KeyAlgorithm><h:KeyLength>$2</h:KeyLength>"; }
[ "$(gk 0 2048)" = 2066 ] || fail "AMT 22 generated an RSA-2048 key: $(cat "$T/resp.xml")"
[ "$(gk 1 384)" = 0 ] || fail "AMT 22 refused ECC-384: $(cat "$T/resp.xml")"
grep -q "Handle: 0<" "$T/resp.xml" || fail "no key handle: $(cat "$T/resp.xml")"
[ "$(gk 1 256)" = 2066 ] || fail "AMT 22 generated ECC-256: $(cat "$T/resp.xml")"
csr() { wsman "$ADDR" GeneratePKCS10RequestEx "<h:KeyPair><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicPrivateKeyPair</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT Key: Handle: 0</w:Selector></w:SelectorSet></a:ReferenceParameters></h:KeyPair><h:SigningAlgorithm>$1</h:SigningAlgorithm><h:NullSignedCertificateRequest>AAAA</h:NullSignedCertificateRequest>"; }
[ "$(csr 1)" = 2066 ] || fail "AMT 22 took SigningAlgorithm 1 (SHA-256): $(cat "$T/resp.xml")"
[ "$(csr 2)" = 36 ] || fail "SigningAlgorithm 2 did not reach the CSR check: $(cat "$T/resp.xml")"
add() { wsman "$ADDR" AddCertificate "<h:CertificateBlob>$1</h:CertificateBlob>"; }
[ "$(add "$(leaf_b64 rsa:2048 sha384)")" = 2062 ] || fail "AMT 22 stored an RSA-2048 leaf: $(cat "$T/resp.xml")"
[ "$(add "$(leaf_b64 ec:<(openssl ecparam -name prime256v1) sha384)")" = 2062 ] ||
    fail "AMT 22 stored a P-256 leaf: $(cat "$T/resp.xml")"
[ "$(add "$(leaf_b64 ec:<(openssl ecparam -name secp384r1) sha256)")" = 2063 ] ||
    fail "AMT 22 stored a SHA-256-signed leaf: $(cat "$T/resp.xml")"
[ "$(add "$(leaf_b64 ec:<(openssl ecparam -name secp384r1) sha384)")" = 0 ] ||
    fail "AMT 22 refused a P-384/SHA-384 leaf: $(cat "$T/resp.xml")"
st=$(amt_state "$ADDR" wire.example.test)
[ "$st" = "certs=1 keys=1 tls=False" ] || fail "refusals left something behind: $st"
ok "on the wire: RSA-2048/ECC-256 keygen 2066, SHA-256 CSR 2066, weak-key leaves 2062, SHA-256 leaf 2063"
stop_sim

# --- AMT 22 under a P-384 CA: ECC-384 key, SHA-384 CSR and leaf -------------
HOME_CA=$P384
ADDR=127.0.122.1
FQDN=amt22-a.example.test
sim_up "$T/sim1.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --amt-version "$V22" \
    --state "$T/sim1.state"
enroll "$ADDR" "$FQDN" >"$T/a.out" 2>"$T/a.err" || fail "AMT 22 enrollment failed: $(cat "$T/a.err")"
grep -q "warning" "$T/a.err" && fail "P-384 chain warned for AMT 22: $(cat "$T/a.err")"
s_client_ok "$ADDR" "$FQDN"
served_text "$ADDR" "$FQDN" >"$T/a.txt"
grep -q "Signature Algorithm: ecdsa-with-SHA384" "$T/a.txt" || fail "leaf not SHA-384-signed: $(cat "$T/a.txt")"
grep -q "id-ecPublicKey" "$T/a.txt" && grep -Eq "(secp384r1|P-384)" "$T/a.txt" ||
    fail "leaf key is not P-384: $(grep -A3 'Public Key Algorithm' "$T/a.txt")"
ok "AMT $V22 enrolls under a P-384 CA: served leaf P-384, ecdsa-with-SHA384"
stop_sim
# The device's ECC-384 key survives amtsim's --state (SEC1 in the file).
sim_up "$T/sim1b.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --amt-version "$V22" \
    --state "$T/sim1.state"
s_client_ok "$ADDR" "$FQDN"
served_text "$ADDR" "$FQDN" | qgrep "ecdsa-with-SHA384" || fail "restored device serves another leaf"
enroll "$ADDR" "$FQDN" >"$T/a2.out" 2>&1 || fail "re-run after restart failed: $(cat "$T/a2.out")"
grep -q "already enrolled" "$T/a2.out" || fail "restored AMT 22 device not seen as enrolled: $(cat "$T/a2.out")"
ok "an AMT 22 device restored from --state keeps its ECC-384 key and leaf"
stop_sim

# --- ECC-384 off: RSA-3072, under an RSA-2048 CA (leaf digest overridden) ----
HOME_CA=$RSA
ADDR=127.0.122.2
FQDN=amt22-b.example.test
sim_up "$T/sim2.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --amt-version "$V22" \
    --amt-quirk keygen-ecc384=off
enroll "$ADDR" "$FQDN" >"$T/b.out" 2>"$T/b.err" || fail "RSA-3072 fallback failed: $(cat "$T/b.err")"
s_client_ok "$ADDR" "$FQDN"
served_text "$ADDR" "$FQDN" >"$T/b.txt"
grep -q "Signature Algorithm: sha384WithRSAEncryption" "$T/b.txt" ||
    fail "leaf under an RSA CA not SHA-384-signed: $(grep 'Signature Algorithm' "$T/b.txt")"
grep -q "Public-Key: (3072 bit)" "$T/b.txt" || fail "leaf key is not RSA-3072: $(grep 'Public-Key' "$T/b.txt")"
ok "ECC-384 switched off: RSA-3072 leaf, sha384WithRSAEncryption from an RSA-2048 CA"
# Pre-flight named the weak chain and the way out.
grep -q "amtca: warning: .*chain is weaker than the leaf (intermediate RSA-2048, root RSA-2048).*amtca ca rotate --key-type rsa3072|p384" "$T/b.err" ||
    fail "no weak-chain warning: $(cat "$T/b.err")"
grep -q "may refuse chain certificates signed with SHA-256" "$T/b.err" ||
    fail "no SHA-256 chain warning: $(cat "$T/b.err")"
ok "pre-flight warns that an RSA-2048 chain is weaker than an AMT 22 leaf: $(head -c 160 "$T/b.err")..."
stop_sim

# --- both off: a clean one-line failure that leaves nothing on the device ----
HOME_CA=$P384
ADDR=127.0.122.3
FQDN=amt22-c.example.test
sim_up "$T/sim3.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --amt-version "$V22" \
    --amt-quirk keygen-ecc384=off --amt-quirk keygen-rsa3072=off
issued=$(cert_count "$P384")
expect_fail 1 "refused every device key type of its profile (AMT 22 and later: ECC-384: 2066 UNSUPPORTED, RSA-3072: 2066 UNSUPPORTED)" \
    enroll "$ADDR" "$FQDN"
st=$(amt_state "$ADDR" "$FQDN")
[ "$st" = "certs=0 keys=0 tls=False" ] || fail "a refused enrollment left something on AMT: $st"
[ "$(cert_count "$P384")" = "$issued" ] || fail "a refused enrollment issued a certificate"
ok "ECC-384 and RSA-3072 both off: $(cat "$T/err"); AMT's store: $st"
stop_sim

# --- SHA-256-signed chain refused (switch on): the error names the way out ---
HOME_CA=$RSA
ADDR=127.0.122.4
FQDN=amt22-d.example.test
sim_up "$T/sim4.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --amt-version "$V22" \
    --amt-quirk refuse-sha256-chain=on
expect_fail 1 "AddTrustedRootCertificate: AMT returned 2063 .*may refuse SHA-256-signed chain certificates: the root signs itself with SHA-384 only as P-384: make a new CA with 'amtca init --key-type p384'" \
    enroll "$ADDR" "$FQDN"
ok "SHA-256-signed chain refused by AMT 22 (switch on): $(cat "$T/err")"
stop_sim
# ... while a P-384 CA's chain (SHA-384 throughout) is taken.
HOME_CA=$P384
sim_up "$T/sim5.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --amt-version "$V22" \
    --amt-quirk refuse-sha256-chain=on
enroll "$ADDR" "$FQDN" >/dev/null 2>"$T/d.err" || fail "P-384 chain refused: $(cat "$T/d.err")"
s_client_ok "$ADDR" "$FQDN"
ok "a P-384 CA's chain passes AMT 22 with SHA-256 chains refused"
stop_sim

# --- older firmware keeps today's profile ------------------------------------
HOME_CA=$RSA
ADDR=127.0.122.5
FQDN=amt16.example.test
sim_up "$T/sim6.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --amt-version 16.1.27.2225 \
    --state "$T/sim6.state"
enroll "$ADDR" "$FQDN" --accept-non-secure >/dev/null 2>"$T/e.err" ||
    fail "AMT 16 enrollment failed: $(cat "$T/e.err")"
grep -q "warning" "$T/e.err" && fail "AMT 16 warned: $(cat "$T/e.err")"
s_client_ok "$ADDR" "$FQDN"
served_text "$ADDR" "$FQDN" >"$T/e.txt"
grep -q "Public-Key: (2048 bit)" "$T/e.txt" && grep -q "rsaEncryption" "$T/e.txt" ||
    fail "AMT 16 leaf is not RSA-2048: $(grep -A1 'Public Key Algorithm' "$T/e.txt")"
grep -q "Signature Algorithm: sha256WithRSAEncryption" "$T/e.txt" ||
    fail "AMT 16 leaf not sha256WithRSAEncryption: $(grep 'Signature Algorithm' "$T/e.txt")"
ok "AMT 16.1 keeps today's profile: RSA-2048 key, sha256WithRSAEncryption, no warning"

# A firmware update to 22 with that RSA-2048 leaf bound: AMT 22 refuses it
# in the handshake, so TLS stays down, and binding it again fails with
# HTTP 500 / status 1 (the field report's symptom).
bound=$("$AMTCA" --home "$HOME_CA" amt-info --tls --host "$FQDN" --address "$ADDR" --user admin \
    --password-file "$PW" --json 2>"$T/bound.err" | python3 -c '
import json, sys
print(json.load(sys.stdin)["bound_certificate"])') || fail "amt-info before the update: $(cat "$T/bound.err")"
stop_sim
sim_up "$T/sim7.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --amt-version "$V22" \
    --state "$T/sim6.state"
if openssl s_client -connect "$ADDR:16993" -servername "$FQDN" </dev/null >"$T/up.out" 2>&1; then
	fail "AMT 22 served an RSA-2048 leaf after the update: $(tail -n 3 "$T/up.out")"
fi
A=http://schemas.xmlsoap.org/ws/2004/08/addressing
W=http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd
C=http://intel.com/wbem/wscim/1/amt-schema/1
printf '<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:a="%s" xmlns:w="%s" xmlns="http://www.w3.org/2003/05/soap-envelope"><Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Put</a:Action><a:To>/wsman</a:To><w:ResourceURI>%s/AMT_TLSCredentialContext</w:ResourceURI><a:MessageID>1</a:MessageID><a:ReplyTo><a:Address>%s/role/anonymous</a:Address></a:ReplyTo></Header><Body><h:AMT_TLSCredentialContext xmlns:h="%s/AMT_TLSCredentialContext"><h:ElementInContext><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>%s/AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name="InstanceID">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ElementInContext><h:ElementProvidingContext><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>%s/AMT_TLSProtocolEndpointCollection</w:ResourceURI><w:SelectorSet><w:Selector Name="ElementName">TLSProtocolEndpointInstances Collection</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ElementProvidingContext></h:AMT_TLSCredentialContext></Body></Envelope>' \
    "$A" "$W" "$C" "$A" "$C" "$C" "$bound" "$C" >"$T/put.xml"
code=$(curl -s -o "$T/put.out" -w '%{http_code}' --digest --netrc-file "$NETRC" \
    -H 'Content-Type: application/soap+xml;charset=UTF-8' --data-binary @"$T/put.xml" \
    "http://$ADDR:16992/wsman")
[ "$code" = 500 ] && grep -q "AMT_STATUS_INTERNAL_ERROR (1)" "$T/put.out" ||
    fail "AMT 22 bound an RSA-2048 leaf: HTTP $code $(cat "$T/put.out")"
ok "after an update to AMT 22 the bound RSA-2048 leaf is not served, and binding it is HTTP 500 / status 1"
# The operator's way back: --device-reset (TLS is down, plain HTTP is up);
# the old profile's leaf is not reused, the device gets an ECC-384 leaf.
enroll "$ADDR" "$FQDN" --device-reset >"$T/up2.out" 2>"$T/up2.err" ||
    fail "re-enrollment after the update failed: $(cat "$T/up2.err")"
s_client_ok "$ADDR" "$FQDN"
served_text "$ADDR" "$FQDN" >"$T/f.txt"
grep -q "id-ecPublicKey" "$T/f.txt" && grep -q "Signature Algorithm: sha384WithRSAEncryption" "$T/f.txt" ||
    fail "after the update the leaf is not P-384/SHA-384: $(grep -E 'Signature Alg|Public Key Alg' "$T/f.txt")"
assert_clean "$ADDR" "$FQDN"
ok "--device-reset after the update: new ECC-384 leaf, the RSA-2048 one and its key removed"
stop_sim
