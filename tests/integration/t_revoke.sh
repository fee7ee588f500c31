#!/usr/bin/env bash
# Revocation is coherent (issue 7, section 7):
#   - a second revoke prints what is stored (the first reason), and the CRL
#     agrees; a later keyCompromise is recorded and the CRL shows it;
#   - revoke --fqdn revokes every valid certificate of the name (--json);
#   - list --json / show --json carry "reason" (null when valid);
#   - enroll --force marks the replaced leaf superseded once the new one is
#     proven: one valid serial per device;
#   - a bound leaf revoked as superseded is not "enrolled": doctor FAILs
#     with the fix, enroll replaces it (talking TLS pinned to it);
#   - a bound leaf revoked for keyCompromise: the device is marked
#     compromised, doctor FAILs and sends no credentials, enroll refuses
#     (no automatic re-enrollment) and says what the operator can do.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
ca() { "$AMTCA" --home "$HOME_CA" "$@"; }
reason_of() { # serial: "reason" from list --json ("None" when valid)
	ca list --json | python3 -c 'import json,sys
for c in json.load(sys.stdin)["certificates"]:
    if c["serial"] == sys.argv[1]: print(c["reason"])' "$1"
}
crl_reason() { # serial: the CRL entry's reason as openssl prints it
	ca crl | openssl crl -noout -text | python3 -c 'import sys,re
t = sys.stdin.read()
m = re.search(r"Serial Number: 0*" + sys.argv[1].lstrip("0") + r"\s*\n(.*?)(?=Serial Number:|Signature Algorithm:)", t, re.S)
r = re.search(r"CRL Reason Code:\s*\n\s*(.+)", m.group(1)) if m else None
print(r.group(1).strip() if r else ("listed" if m else "absent"))' "$1"
}

# --- a second revoke keeps what is stored; keyCompromise may follow ------
make_csr "$T/a.csr" rsa:2048 amt-x.example.test
ca issue --fqdn amt-x.example.test --csr "$T/a.csr" --out "$T/a.pem" >/dev/null
SA=$(openssl x509 -in "$T/a.pem" -noout -serial | sed 's/serial=//')
[ "$(reason_of "$SA")" = None ] || fail "valid certificate has reason $(reason_of "$SA")"
ca list --json | python3 -c 'import json,sys; c=json.load(sys.stdin)["certificates"][0]; assert "reason" in c and c["reason"] is None, c' ||
    fail "list --json lacks \"reason\": null for a valid certificate"
ca show "$SA" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["reason"] is None, d' ||
    fail "show --json lacks \"reason\": null"
ca revoke "$SA" --reason superseded >"$T/r1.out" || fail "revoke failed"
grep -q "superseded" "$T/r1.out" || fail "first revoke: $(cat "$T/r1.out")"
ca revoke "$SA" --reason cessationOfOperation >"$T/r2.out" 2>"$T/r2.err" || fail "second revoke failed"
grep -q "superseded" "$T/r2.out" || fail "second revoke prints the new reason, not the stored one: $(cat "$T/r2.out")"
if grep -q "cessationOfOperation" "$T/r2.out"; then fail "second revoke claims cessationOfOperation: $(cat "$T/r2.out")"; fi
grep -q "first reason stands" "$T/r2.err" || fail "no note about the kept reason: $(cat "$T/r2.err")"
[ "$(reason_of "$SA")" = superseded ] || fail "list says $(reason_of "$SA")"
ca show "$SA" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["reason"] == "superseded", d' ||
    fail "show --json reason"
[ "$(crl_reason "$SA")" = Superseded ] || fail "CRL says $(crl_reason "$SA")"
ok "second revoke prints the stored reason (superseded); list, show and the CRL agree"

ca revoke "$SA" --reason keyCompromise --json >"$T/r3.json" || fail "revoke to keyCompromise failed"
python3 - "$T/r3.json" "$SA" <<'EOF' || fail "revoke --json: $(cat "$T/r3.json")"
import json, sys
d = json.load(open(sys.argv[1]))
(r,) = d["revoked"]
assert r["serial"] == sys.argv[2] and r["reason"] == "keyCompromise" and r["already_revoked"] is True, r
assert r["fqdn"] == "amt-x.example.test" and r["revoked_at"], r
EOF
[ "$(reason_of "$SA")" = keyCompromise ] || fail "list says $(reason_of "$SA") after keyCompromise"
[ "$(crl_reason "$SA")" = "Key Compromise" ] || fail "CRL says $(crl_reason "$SA") after keyCompromise"
ca revoke "$SA" --reason superseded >"$T/r4.out" 2>/dev/null || fail "third revoke failed"
grep -q "keyCompromise" "$T/r4.out" || fail "keyCompromise was undone: $(cat "$T/r4.out")"
ok "a later keyCompromise is recorded and the CRL shows it; nothing changes it back"

# --- revoke --fqdn ----------------------------------------------------------
for i in 1 2; do
	make_csr "$T/y$i.csr" rsa:2048 amt-y.example.test
	ca issue --fqdn amt-y.example.test --csr "$T/y$i.csr" --out "$T/y$i.pem" >/dev/null
done
make_csr "$T/z.csr" rsa:2048 amt-z.example.test
ca issue --fqdn amt-z.example.test --csr "$T/z.csr" --out "$T/z.pem" >/dev/null
SZ=$(openssl x509 -in "$T/z.pem" -noout -serial | sed 's/serial=//')
ca revoke --fqdn AMT-Y.example.test --reason cessationOfOperation --json >"$T/ry.json" ||
    fail "revoke --fqdn failed"
python3 - "$T/ry.json" <<'EOF' || fail "revoke --fqdn --json: $(cat "$T/ry.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["revoked"]) == 2, d
assert all(r["fqdn"] == "amt-y.example.test" and r["reason"] == "cessationOfOperation" for r in d["revoked"]), d
EOF
for i in 1 2; do
	s=$(openssl x509 -in "$T/y$i.pem" -noout -serial | sed 's/serial=//')
	[ "$(reason_of "$s")" = cessationOfOperation ] || fail "amt-y #$i: $(reason_of "$s")"
done
[ "$(reason_of "$SZ")" = None ] || fail "revoke --fqdn touched another name"
expect_fail 1 "no certificate was issued for" ca revoke --fqdn amt-none.example.test
ok "revoke --fqdn revokes every valid certificate of the name, and only those"

# --- enrollment: superseded after --force; a revoked bound leaf ------------
ADDR=127.0.24.1
FQDN=amt-v1.example.test
sim_up "$T/sim.log" "$ADDR" "$FQDN" --commit-delay-ms 100
enroll "$ADDR" "$FQDN" >/dev/null || fail "enroll failed"
S1=$(served_serial "$ADDR" "$FQDN")
enroll "$ADDR" "$FQDN" --force --json >"$T/f.json" || fail "enroll --force failed"
S2=$(served_serial "$ADDR" "$FQDN")
[ "$S1" != "$S2" ] || fail "--force kept the serial"
[ "$(reason_of "$S1")" = superseded ] || fail "replaced leaf $S1 is $(reason_of "$S1"), not superseded"
[ "$(reason_of "$S2")" = None ] || fail "new leaf $S2 is $(reason_of "$S2")"
[ "$(json_get "$T/f.json" superseded_certificates)" = 1 ] || fail "enroll --json: $(cat "$T/f.json")"
ok "enroll --force: the replaced leaf $S1 is superseded after the proof; $S2 is the one valid serial"

doctor_out() { # file: doctor with credentials into file
	"$AMTCA" --home "$HOME_CA" doctor --host "$FQDN" --address "$ADDR" \
	    --user admin --password-file "$PW" >"$1" 2>&1 || true
}
ca revoke "$S2" --reason affiliationChanged >/dev/null
doctor_out "$T/d1.out"
grep -q "^FAIL TLS handshake: .*$S2, revoked (affiliationChanged).* — fix: replace it: amtca enroll" "$T/d1.out" ||
    fail "doctor does not FAIL the revoked leaf: $(cat "$T/d1.out")"
enroll "$ADDR" "$FQDN" --json >"$T/e2.json" 2>"$T/e2.err" || fail "enroll after revocation: $(cat "$T/e2.err")"
S3=$(served_serial "$ADDR" "$FQDN")
[ "$S3" != "$S2" ] || fail "enroll left the revoked leaf $S2 in service: $(cat "$T/e2.json")"
[ "$(json_get "$T/e2.json" status)" = renewed ] || fail "status: $(cat "$T/e2.json")"
[ "$(reason_of "$S2")" = affiliationChanged ] || fail "$S2 reason changed to $(reason_of "$S2")"
[ "$(reason_of "$S3")" = None ] || fail "new leaf $S3 is $(reason_of "$S3")"
s_client_ok "$ADDR" "$FQDN"
ok "bound leaf revoked (affiliationChanged): doctor FAILs with the fix, enroll replaces it ($S2 -> $S3)"

# keyCompromise of the bound leaf: compromised, never re-enrolled automatically.
ca revoke "$S3" --reason keyCompromise >/dev/null
python3 - "$HOME_CA/state/state.db" "$FQDN" <<'EOF' || fail "device not marked compromised by revoke"
import sqlite3, sys
(state,) = sqlite3.connect(sys.argv[1]).execute("SELECT state FROM devices WHERE fqdn = ?", (sys.argv[2],)).fetchone()
assert state == "compromised", state
EOF
doctor_out "$T/d2.out"
grep -q "^FAIL TLS handshake: .*$S3, revoked (keyCompromise).* — fix: .*--device-reset" "$T/d2.out" ||
    fail "doctor on a compromised device: $(cat "$T/d2.out")"
grep -q "^FAIL WS-MAN login: credentials not sent: .*compromised" "$T/d2.out" ||
    fail "doctor logged in to a compromised device: $(grep 'WS-MAN login' "$T/d2.out")"
expect_fail 1 "marked compromised" enroll "$ADDR" "$FQDN"
grep -q -- "--device-reset" "$T/err" || fail "no operator fix in: $(cat "$T/err")"
expect_fail 1 "marked compromised" enroll "$ADDR" "$FQDN" --force
[ "$(served_serial "$ADDR" "$FQDN")" = "$S3" ] || fail "enroll changed a compromised device"
expect_fail 1 "marked compromised" "$AMTCA" --home "$HOME_CA" amt-info --host "$FQDN" \
    --address "$ADDR" --user admin --password-file "$PW"
ok "bound leaf revoked for keyCompromise: device compromised; doctor FAILs, enroll and amt-info refuse"
stop_sim
