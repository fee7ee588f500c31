#!/usr/bin/env bash
# Rotation, the device side (issue 10 section 2): a fleet enrolled under the
# first intermediate, then `amtca ca rotate`.
#   (a) a plain fleet run leaves every device "unchanged": its leaf, under
#       the retired intermediate, is still ours and valid (openssl verifies
#       it with chain.pem, which carries both intermediates); AMT keeps the
#       old intermediate; devices --json says "not current";
#   (b) fleet --reissue-older-than-intermediate renews every device outside
#       its renewal window: each served leaf's AKI is the new intermediate's
#       SKI and verifies with -verify_hostname against chain.pem; AMT's store
#       holds the root, the new intermediate and the one bound leaf (the old
#       intermediate and leaf are gone, one key); the records hold one valid
#       certificate per device and the old ones are superseded (and listed in
#       the old intermediate's CRL); devices --json says "current";
#   (c) a second run is all "unchanged" and issues nothing; the audit trail
#       verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

N=6
BASE=127.0.148.1
PAT='rf%02d.example.test'

ca_setup
sim_key_pool_fill $((2 * N + 2))
start_sim "$T/sim.log" --devices $N --address-base $BASE --fqdn-pattern "$PAT" \
    --user admin --password-file "$PW" --key-pool "$SIM_KEY_POOL"
hosts_csv "$T/hosts.csv" "$PAT" $BASE $N

fleet --hosts "$T/hosts.csv" --json >"$T/f0.json" 2>"$T/f0.err" ||
    fail "first enrollment failed: $(cat "$T/f0.err"; head -c 600 "$T/f0.json")"
[ "$(json_get "$T/f0.json" enrolled)" = $N ] || fail "enrolled $(json_get "$T/f0.json" enrolled) of $N"
check_devices "$PAT" $BASE $N
"$AMTCA" --home "$HOME_CA" list --json >"$T/old.json"
cp "$HOME_CA/intermediate.pem" "$T/g1.pem"

# The key id of a CA certificate as the records spell it, and the AKI of a
# leaf: lowercase hex without colons.
ski() { openssl x509 -in "$1" -noout -ext subjectKeyIdentifier | sed -n '2p' | tr -d ' :\n' | tr A-F a-f; }
aki() { openssl x509 -in "$1" -noout -ext authorityKeyIdentifier | sed -n '2p' | sed 's/keyid://' | tr -d ' :\n' | tr A-F a-f; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=0*//' | tr a-f A-F; }
G1=$(ski "$T/g1.pem")
[ -n "$G1" ] || fail "no SKI in the first intermediate"

"$AMTCA" --home "$HOME_CA" ca rotate >"$T/rot.out" 2>"$T/rot.err" ||
    fail "ca rotate failed: $(cat "$T/rot.err")"
cp "$HOME_CA/intermediate.pem" "$T/g2.pem"
G2=$(ski "$T/g2.pem")
[ -n "$G2" ] && [ "$G2" != "$G1" ] || fail "rotation did not change the intermediate ($G1 -> $G2)"
[ "$(grep -c 'BEGIN CERTIFICATE' "$HOME_CA/chain.pem")" = 3 ] ||
    fail "chain.pem does not carry both intermediates and the root"
ok "ca rotate: new intermediate $G2, the old one $G1 retired, chain.pem carries both"

# devices --json: FQDN -> (issuer, issuer_current)
issuers() {
	"$AMTCA" --home "$HOME_CA" devices --json | python3 -c '
import json, sys
for d in json.load(sys.stdin)["devices"]:
    print(d["fqdn"], d["issuer"], d["issuer_current"])'
}
# served FQDN ADDR -> the served leaf in $T/served-FQDN.pem
served() {
	openssl s_client -connect "$2:16993" -servername "$1" </dev/null 2>/dev/null |
	    openssl x509 -out "$T/served-$1.pem" || fail "no leaf served by $1"
}
# amt_cas: per device, the serials of the CA certificates in AMT's store
# (from check_devices' amt-info --json files), "FQDN SERIAL SERIAL ..."
amt_cas() {
	python3 - "$T" "$PAT" $N <<'PY'
import json, sys
t, pat, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    fq = pat % i
    d = json.load(open("%s/ai-%s.json" % (t, fq)))
    cas = [c["serial"].upper().lstrip("0") for c in d["certificates"]
           if "CN=" + fq not in (c.get("subject") or "")]
    print(fq, " ".join(sorted(cas)))
PY
}
G1S=$(serial_of "$T/g1.pem")
G2S=$(serial_of "$T/g2.pem")
RS=$(serial_of "$HOME_CA/root.pem")

# --- (a) a plain run leaves them alone ---------------------------------------
fleet --hosts "$T/hosts.csv" --json >"$T/f1.json" 2>"$T/f1.err" ||
    fail "fleet after the rotation failed: $(cat "$T/f1.err"; head -c 600 "$T/f1.json")"
[ "$(json_get "$T/f1.json" unchanged)" = $N ] ||
    fail "a plain run after the rotation changed devices: $(head -c 800 "$T/f1.json")"
[ "$(cert_count "$HOME_CA")" = $N ] || fail "a plain run issued certificates"
for ((i = 0; i < N; i++)); do
	fq=$(printf "$PAT" $i)
	s_client_ok "127.0.148.$((1 + i))" "$fq"
	served "$fq" "127.0.148.$((1 + i))"
	[ "$(aki "$T/served-$fq.pem")" = "$G1" ] || fail "$fq does not serve its leaf under the old intermediate"
done
check_devices "$PAT" $BASE $N
amt_cas >"$T/cas1.txt"
want=$(printf '%s\n' "$G1S" "$RS" | sort | tr '\n' ' ' | sed 's/ $//')
while read -r fq cas; do
	[ "$cas" = "$want" ] ||
	    fail "$fq: AMT's CA certificates changed without a re-issue: [$cas], want [$want]"
done <"$T/cas1.txt"
issuers >"$T/iss1.txt"
[ "$(grep -c " $G1 False$" "$T/iss1.txt")" = $N ] ||
    fail "devices --json does not say the leaves are under the retired intermediate: $(cat "$T/iss1.txt")"
ok "(a) a plain fleet run leaves all $N unchanged: leaves under the retired intermediate verify with chain.pem, AMT keeps it, devices says not current"

# --- (b) --reissue-older-than-intermediate moves them ---------------------------
fleet --hosts "$T/hosts.csv" --reissue-older-than-intermediate --json >"$T/f2.json" 2>"$T/f2.err" ||
    fail "fleet --reissue-older-than-intermediate failed: $(cat "$T/f2.err"; head -c 800 "$T/f2.json")"
[ "$(json_get "$T/f2.json" renewed)" = $N ] ||
    fail "renewed $(json_get "$T/f2.json" renewed) of $N: $(head -c 800 "$T/f2.json")"
for ((i = 0; i < N; i++)); do
	fq=$(printf "$PAT" $i)
	served "$fq" "127.0.148.$((1 + i))"
	[ "$(aki "$T/served-$fq.pem")" = "$G2" ] ||
	    fail "$fq serves a leaf whose AKI is $(aki "$T/served-$fq.pem"), not the new intermediate's $G2"
	s_client_ok "127.0.148.$((1 + i))" "$fq"
done
check_devices "$PAT" $BASE $N
amt_cas >"$T/cas.txt"
want=$(printf '%s\n' "$G2S" "$RS" | sort | tr '\n' ' ' | sed 's/ $//')
while read -r fq cas; do
	[ "$cas" = "$want" ] ||
	    fail "$fq: AMT's CA certificates are [$cas], want the new intermediate and the root [$want] (old: $G1S)"
done <"$T/cas.txt"
"$AMTCA" --home "$HOME_CA" list --json >"$T/new.json"
"$AMTCA" --home "$HOME_CA" crl --issuer "$G1" --out "$T/g1.crl" ||
    fail "no CRL for the retired intermediate"
openssl crl -in "$T/g1.crl" -inform DER -noout -text >"$T/g1.crl.txt" 2>/dev/null ||
    openssl crl -in "$T/g1.crl" -noout -text >"$T/g1.crl.txt" || fail "cannot read the old intermediate's CRL"
python3 - "$T/old.json" "$T/new.json" "$T/g1.crl.txt" <<'PY' || fail "the replaced leaves are not superseded"
import json, sys
old = {c["serial"] for c in json.load(open(sys.argv[1]))["certificates"]}
new = {c["serial"]: c for c in json.load(open(sys.argv[2]))["certificates"]}
crl = open(sys.argv[3]).read().upper()
for s in old:
    assert new[s]["status"] == "revoked" and new[s]["reason"] == "superseded", new[s]
    assert s.upper().lstrip("0") in crl.replace(" ", ""), "%s not in the old intermediate's CRL" % s
assert len(new) == 2 * len(old)
PY
issuers >"$T/iss2.txt"
[ "$(grep -c " $G2 True$" "$T/iss2.txt")" = $N ] ||
    fail "devices --json does not say the leaves are under the current intermediate: $(cat "$T/iss2.txt")"
ok "(b) --reissue-older-than-intermediate renews all $N: leaves under $G2 verify, AMT holds root + new intermediate + one leaf + one key, old leaves superseded and in the old CRL"

# --- (c) converged ----------------------------------------------------------------
fleet --hosts "$T/hosts.csv" --reissue-older-than-intermediate --json >"$T/f3.json" 2>"$T/f3.err" ||
    fail "second run failed: $(cat "$T/f3.err")"
[ "$(json_get "$T/f3.json" unchanged)" = $N ] || fail "second run changed devices: $(head -c 800 "$T/f3.json")"
[ "$(cert_count "$HOME_CA")" = $((2 * N)) ] || fail "the second run issued certificates"
"$AMTCA" --home "$HOME_CA" audit verify >"$T/av.out" 2>&1 || fail "audit verify: $(cat "$T/av.out")"
ok "(c) a second run is all unchanged and issues nothing; the audit trail verifies"
