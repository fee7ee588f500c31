#!/usr/bin/env bash
# amtca fleet reconciles, not just enrolls.  Four enrolled devices, then:
#   fd000: its certificate replaced behind our back (another CA enrolled
#          it, as an operator with a second CA home would): the run fails
#          it closed, naming the served certificate's SHA-256 and the
#          hosts file's tls_pin_sha256 column; with that pin given, the
#          next run re-enrolls it over TLS pinned to it;
#   fd001: its certificate revoked (cessationOfOperation): re-enrolled;
#   fd002: revoked for keyCompromise: compromised, left alone (failed);
#   fd003: healthy: unchanged.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

ca_setup
N=4
sim_key_pool_fill 12
start_sim "$T/sim.log" --devices $N --address-base 127.0.65.1 \
    --fqdn-pattern 'fd%03d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL" --commit-delay-ms 200
hosts_csv "$T/hosts.csv" 'fd%03d.example.test' 127.0.65.1 $N
fleet --hosts "$T/hosts.csv" --json >"$T/f0.json" || fail "first fleet run failed"
serial() { sqlite3 "$HOME_CA/state/state.db" "SELECT cert_serial FROM devices WHERE fqdn = '$1'"; }
s1=$(serial fd001.example.test)
s2=$(serial fd002.example.test)
s3=$(serial fd003.example.test)

# Drift: a second CA takes fd000 over (pinned to what it serves now).
new_ca "$T/other" --domain example.test
pin0=$(served_pin 127.0.65.1 fd000.example.test)
"$AMTCA" --home "$T/other" enroll --host fd000.example.test --address 127.0.65.1 \
    --user admin --password-file "$PW" --tls-pin "$pin0" --device-reset --force >"$T/other.out" 2>&1 ||
    fail "the second CA could not take the device over: $(cat "$T/other.out")"
drift=$(served_pin 127.0.65.1 fd000.example.test)
[ "$drift" != "$pin0" ] || fail "the device still serves our certificate"
"$AMTCA" --home "$HOME_CA" revoke "$s1" --reason cessationOfOperation >/dev/null
"$AMTCA" --home "$HOME_CA" revoke "$s2" --reason keyCompromise >/dev/null

rc=0
fleet --hosts "$T/hosts.csv" --json >"$T/f1.json" 2>"$T/f1.err" || rc=$?
[ "$rc" = 1 ] || fail "exit $rc with a failed device, want 1"
python3 - "$T/f1.json" "$drift" "$s1" "$s3" <<'PY' || fail "first reconcile: wrong results"
import json, sys
d = {x["fqdn"]: x for x in json.load(open(sys.argv[1]))["devices"]}
drift, s1, s3 = sys.argv[2:5]
x = d["fd000.example.test"]
assert x["result"] == "failed" and drift in x["error"] and "tls_pin_sha256" in x["error"], x
x = d["fd001.example.test"]
assert x["result"] in ("enrolled", "renewed") and x["serial"] != s1, x
x = d["fd002.example.test"]
assert x["result"] == "failed" and "compromised" in x["error"].lower(), x
x = d["fd003.example.test"]
assert x["result"] == "unchanged" and x["serial"] == s3, x
PY
ok "drift fails closed naming the served certificate; revoked re-enrolled; keyCompromise left alone; healthy unchanged"
assert_clean 127.0.65.2 fd001.example.test
s_client_ok 127.0.65.2 fd001.example.test
[ "$(served_serial 127.0.65.3 fd002.example.test)" = "$s2" ] || fail "the compromised device was touched"
[ "$(sqlite3 "$HOME_CA/state/state.db" "SELECT state FROM devices WHERE fqdn = 'fd002.example.test'")" = compromised ] ||
    fail "fd002 is not recorded compromised"
ok "the revoked device holds one new leaf and one key; the compromised one is untouched"

# The operator checked the drifted certificate and pins it.
{
	echo "fqdn,address,user,password_file,tls_pin_sha256"
	tail -n +2 "$T/hosts.csv" | sed "s/,\$/,/; s/\$/,/" |
	    sed "s/^\(fd000[^,]*,[^,]*,,\),\$/\1,$drift/"
} >"$T/pinned.csv"
grep -q "$drift" "$T/pinned.csv" || fail "test bug: pin not in hosts file: $(cat "$T/pinned.csv")"
rc=0
fleet --hosts "$T/pinned.csv" --json >"$T/f2.json" 2>"$T/f2.err" || rc=$?
python3 - "$T/f2.json" <<'PY' || fail "pinned rerun: wrong results"
import json, sys
d = {x["fqdn"]: x for x in json.load(open(sys.argv[1]))["devices"]}
assert d["fd000.example.test"]["result"] in ("enrolled", "renewed"), d["fd000.example.test"]
assert d["fd001.example.test"]["result"] == "unchanged", d["fd001.example.test"]
assert d["fd002.example.test"]["result"] == "failed", d["fd002.example.test"]
PY
s_client_ok 127.0.65.1 fd000.example.test
st=$(store_state 127.0.65.1 fd000.example.test)
case $st in *"keys=1 "*"bound=1 leaves=1") ;; *) fail "fd000 after re-enrollment: $st" ;; esac
ok "with tls_pin_sha256 the drifted device is re-enrolled: our leaf, one key, one leaf ($st)"
