#!/usr/bin/env bash
# amtca devices (the inventory) and amtca devices retire, against two
# simulated devices enrolled with amtca enroll.  Addresses 127.0.70.x.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/enroll_helpers.sh"

A1=127.0.70.1 F1=dev1.example.test
A2=127.0.70.2 F2=dev2.example.test
ca_setup
sim_up "$T/sim1.log" "$A1" "$F1"
sim_up "$T/sim2.log" "$A2" "$F2"
enroll "$A1" "$F1" >"$T/e1.out" 2>&1 || fail "enroll $F1: $(tail -3 "$T/e1.out")"
enroll "$A2" "$F2" >"$T/e2.out" 2>&1 || fail "enroll $F2: $(tail -3 "$T/e2.out")"
S1=$(served_serial "$A1" "$F1")
S2=$(served_serial "$A2" "$F2")
[ -n "$S1" ] && [ -n "$S2" ] || fail "no served serials"

dev() { "$AMTCA" --home "$HOME_CA" devices "$@"; }

# The inventory, with the contract's fields and formats.
dev --json >"$T/d.json" || fail "devices --json failed"
python3 - "$T/d.json" "$F1" "$A1" "$S1" "$F2" "$A2" "$S2" <<'PY' || fail "devices --json is wrong"
import json, re, sys
doc = json.load(open(sys.argv[1]))
assert list(doc) == ["devices"], doc
devs = doc["devices"]
assert len(devs) == 2, devs
keys = ["fqdn", "address", "amt_version", "state", "serial", "not_after",
        "last_step", "error", "updated_at", "issuer", "issuer_current"]
ts = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
for d, (f, a, s) in zip(devs, [sys.argv[2:5], sys.argv[5:8]]):
    assert list(d) == keys, list(d)
    assert d["fqdn"] == f and d["address"] == a, d
    assert d["state"] == "enrolled", d
    assert d["serial"].upper() == s.upper(), (d["serial"], s)
    assert d["error"] is None, d
    assert d["amt_version"], d
    assert d["last_step"] == "cleanup", d
    assert ts.match(d["not_after"]) and ts.match(d["updated_at"]), d
    # No rotation yet: under the one (current) intermediate.
    assert re.match(r"^[0-9a-f]{40}$", d["issuer"]) and d["issuer_current"] is True, d
PY
ok "devices --json lists both devices with the contract's fields"

count() { dev --json "$@" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["devices"]))'; }
[ "$(count --state enrolled)" = 2 ] || fail "--state enrolled"
[ "$(count --state failed)" = 0 ] || fail "--state failed"
[ "$(count --expiring-days 0)" = 0 ] || fail "--expiring-days 0 lists fresh certificates"
[ "$(count --expiring-days 400)" = 2 ] || fail "--expiring-days 400 misses them"
expect_fail 2 "state" dev --state bogus
dev >"$T/table" || fail "devices (table) failed"
grep -q "^FQDN" "$T/table" && grep -q "$F1 .*enrolled" "$T/table" ||
    fail "table: $(cat "$T/table")"
ok "--state and --expiring-days filter; the table prints"

# Retire dev2 and take its certificate and key out of AMT.
n_before=$(cert_count "$HOME_CA")
dev retire "$F2" --remove-from-device --user admin --password-file "$PW" \
    >"$T/r2.out" 2>&1 || fail "retire $F2: $(cat "$T/r2.out")"
grep -q "device-reset" "$T/r2.out" || fail "retire does not say how to undo it"
"$AMTCA" --home "$HOME_CA" list --json | python3 -c '
import json, sys
c = [x for x in json.load(sys.stdin)["certificates"] if x["serial"].upper() == sys.argv[1].upper()]
assert len(c) == 1 and c[0]["status"] == "revoked" and c[0]["reason"] == "cessationOfOperation", c
' "$S2" || fail "the retired certificate is not revoked for cessationOfOperation"
[ "$(dev --json --state retired | python3 -c 'import json,sys; print(",".join(d["fqdn"] for d in json.load(sys.stdin)["devices"]))')" = "$F2" ] ||
    fail "dev2 is not in state retired"
ok "retire revokes with cessationOfOperation and records state retired"

# AMT now holds no leaf of ours and no key; TLS is off, plain HTTP answers.
# (A home without records: amt-info would refuse a retired device.)
"$AMTCA" --home "$T/no-home" amt-info --host "$F2" --address "$A2" \
    --user admin --password-file "$PW" --json >"$T/info2.json" 2>"$T/info2.err" ||
    fail "amt-info over plain HTTP after retire: $(cat "$T/info2.err")"
python3 - "$T/info2.json" "$F2" <<'PY' || fail "AMT still holds the retired leaf, its key or TLS"
import json, sys
d = json.load(open(sys.argv[1]))
leaves = [c for c in d["certificates"] if "CN=" + sys.argv[2] in (c.get("subject") or "")]
assert leaves == [], leaves
assert d["keys"] == [], d["keys"]
assert d["bound_certificate"] is None, d
assert not d["tls"]["remote"]["enabled"], d["tls"]
PY
if openssl s_client -connect "$A2:16993" -servername "$F2" </dev/null >/dev/null 2>&1; then
	fail "16993 still serves TLS after retire --remove-from-device"
fi
[ "$(dev --json --state retired | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["serial"])')" = None ] ||
    fail "a device with TLS off and its leaf removed still lists a bound serial"
ok "retire --remove-from-device removed the leaf and key and turned TLS off"

# A retired device is skipped by enroll, and the records do not change.
expect_fail 1 "retired" enroll "$A2" "$F2"
grep -q -- "--device-reset" "$T/err" || fail "enroll does not name --device-reset: $(cat "$T/err")"
[ "$(cert_count "$HOME_CA")" = "$n_before" ] || fail "enroll of a retired device issued a certificate"
[ "$(count --state retired)" = 1 ] || fail "enroll changed the retired state"
ok "enroll skips a retired device without --device-reset"

# Retire without removal: records only; the device keeps serving.
dev retire "$F1" >"$T/r1.out" 2>&1 || fail "retire $F1: $(cat "$T/r1.out")"
[ "$(served_serial "$A1" "$F1")" = "$S1" ] || fail "retire without --remove-from-device touched AMT"
[ "$(count --state retired)" = 2 ] || fail "dev1 not retired"
dev --json --state retired | python3 -c '
import json, sys
d = {x["fqdn"]: x for x in json.load(sys.stdin)["devices"]}[sys.argv[1]]
assert d["serial"].upper() == sys.argv[2].upper(), d
' "$F1" "$S1" || fail "retire without removal dropped the serial AMT still serves"
dev retire "$F1" >"$T/r1b.out" 2>&1 || fail "a second retire fails: $(cat "$T/r1b.out")"
grep -q "already revoked" "$T/r1b.out" || fail "second retire: $(cat "$T/r1b.out")"
expect_fail 1 "no device" dev retire nosuch.example.test
expect_fail 1 "password-file" dev retire "$F1" --remove-from-device
expect_fail 2 "go together" dev retire "$F1" --remove-from-device --user admin
ok "retire without removal, twice; unknown devices and missing credentials refused"

# A record naming a sealed credential (cred_ref "credential:NAME", as the
# API's jobs set it) is never opened as a password file: the signer is asked,
# and it does not open a credential for a device without work pending.
state_db="$HOME_CA/state/state.db"
[ -f "$state_db" ] || state_db="$HOME_CA/amtca.db"
sqlite3 "$state_db" "UPDATE devices SET cred_ref='credential:lab', amt_user='admin' WHERE fqdn='$F1'"
expect_fail 1 "sealed credential lab" dev retire "$F1" --remove-from-device
if grep -q "cannot open" "$T/err"; then fail "credential:lab was opened as a file: $(cat "$T/err")"; fi
sqlite3 "$state_db" "UPDATE devices SET cred_ref=NULL WHERE fqdn='$F1'"
ok "retire of a device with a sealed credential asks the signer, never opens a file of that name"

# Retired in the records, TLS still on (as an interrupted retire leaves
# it): retire --remove-from-device finishes over TLS pinned to the revoked
# leaf, and only retire may talk to the device.
expect_fail 1 "retired" "$AMTCA" --home "$HOME_CA" amt-info --host "$F1" \
    --address "$A1" --user admin --password-file "$PW"
dev retire "$F1" --remove-from-device --user admin --password-file "$PW" \
    --json >"$T/r1c.json" 2>"$T/r1c.err" || fail "retire again with removal: $(cat "$T/r1c.err")"
python3 - "$T/r1c.json" "$S1" <<'PY' || fail "retire --json: $(cat "$T/r1c.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["state"] == "retired" and d["serial"].upper() == sys.argv[2].upper(), d
assert d["was_revoked"] is True and d["tls_disabled"] is True, d
assert d["removed_certificates"] == 1 and d["removed_keys"] == 1, d
PY
"$AMTCA" --home "$T/no-home" amt-info --host "$F1" --address "$A1" \
    --user admin --password-file "$PW" --json >"$T/info1.json" ||
    fail "amt-info over plain HTTP after the second retire"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert not [c for c in d["certificates"] if "CN=" + sys.argv[2] in (c.get("subject") or "")], d
assert d["keys"] == [] and not d["tls"]["remote"]["enabled"], d
' "$T/info1.json" "$F1" || fail "AMT of $F1 still holds its leaf, key or TLS"
ok "a rerun of retire with removal finishes over TLS pinned to the revoked leaf"

# The documented way back.
enroll "$A2" "$F2" --device-reset >"$T/e2b.out" 2>&1 ||
    fail "enroll --device-reset after retire: $(tail -3 "$T/e2b.out")"
[ "$(dev --json --state enrolled | python3 -c 'import json,sys; print(",".join(d["fqdn"] for d in json.load(sys.stdin)["devices"]))')" = "$F2" ] ||
    fail "dev2 not enrolled again after --device-reset"
assert_clean "$A2" "$F2"
ok "enroll --device-reset brings a retired device back"
