#!/usr/bin/env bash
# amtca fleet over 100 simulated devices, 25 in flight, a third of them
# behind a simulator that injects faults (AMT busy at key generation, a
# connection dropped after AddCertificate took effect: the engine's retry
# with backoff and its reconciler absorb both).  Properties: every device
# ends enrolled; each holds exactly root + intermediate + one bound leaf
# (ours) + one key; the records hold exactly one valid certificate per
# device and no device got a second one; the JSON document is the
# contract's; a rerun changes nothing; with a renewal window covering every
# certificate a run renews all, and every old serial is superseded and gone
# from AMT.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

ca_setup
NA=70 NB=30
POOL_B="${SIM_KEY_POOL%.pem}-fleet-b.pem"
sim_key_pool_fill $((NA + 10))
AMTSIM_KEY_POOL_SAVE=$SIM_KEY_POOL
start_sim "$T/sim-a.log" --devices $NA --address-base 127.0.62.1 \
    --fqdn-pattern 'fa%03d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL" --latency-ms 5 --commit-delay-ms 200
"$AMTSIM" --key-pool "$POOL_B" --key-pool-size $((NB + 10)) >/dev/null ||
    fail "cannot fill the second key pool"
start_sim "$T/sim-b.log" --devices $NB --address-base 127.0.63.1 \
    --fqdn-pattern 'fb%03d.example.test' --user admin --password-file "$PW" \
    --key-pool "$POOL_B" --latency-ms 5 --commit-delay-ms 200 \
    --keygen-busy 1 --drop-at AddCertificate+

hosts_csv "$T/a.csv" 'fa%03d.example.test' 127.0.62.1 $NA
hosts_csv "$T/b.csv" 'fb%03d.example.test' 127.0.63.1 $NB
{ cat "$T/a.csv"; tail -n +2 "$T/b.csv"; } >"$T/hosts.csv"

fleet --hosts "$T/hosts.csv" --concurrency 25 --json >"$T/f1.json" 2>"$T/f1.err" ||
    fail "fleet over 100 devices failed: $(cat "$T/f1.err"; head -c 600 "$T/f1.json")"
python3 - "$T/f1.json" <<'PY' || fail "fleet --json is not the contract's document"
import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) == {"total", "enrolled", "renewed", "unchanged", "failed", "seconds", "devices"}, d.keys()
assert d["total"] == 100 and d["enrolled"] == 100 and d["failed"] == 0, {k: d[k] for k in d if k != "devices"}
assert len(d["devices"]) == 100
for x in d["devices"]:
    assert set(x) == {"fqdn", "result", "serial", "error"}, x
    assert x["result"] == "enrolled" and x["serial"] and x["error"] is None, x
PY
ok "100 devices, 25 in flight, 30 with faults: all enrolled (JSON; $(json_get "$T/f1.json" seconds) s)"
check_devices 'fa%03d.example.test' 127.0.62.1 $NA
check_devices 'fb%03d.example.test' 127.0.63.1 $NB
[ "$(cert_count "$HOME_CA")" = 100 ] || fail "$(cert_count "$HOME_CA") certificates issued for 100 devices"
ok "each device: one bound leaf and one key in AMT, one valid certificate in the records, none issued twice"

fleet --hosts "$T/hosts.csv" --concurrency 25 >"$T/f2.out" 2>"$T/f2.err" ||
    fail "rerun failed: $(cat "$T/f2.err")"
grep -q '^unchanged *100$' "$T/f2.out" || fail "rerun was not a no-op: $(tail -n 12 "$T/f2.out")"
[ "$(grep -c ': unchanged' "$T/f2.out")" = 100 ] || fail "not one line per device without a terminal"
[ "$(cert_count "$HOME_CA")" = 100 ] || fail "the rerun issued certificates"
ok "a rerun leaves every device unchanged and prints one line per device"

"$AMTCA" --home "$HOME_CA" list --json >"$T/old.json"
fleet --hosts "$T/hosts.csv" --concurrency 25 --renew-days 800 --json >"$T/f3.json" 2>"$T/f3.err" ||
    fail "renewal run failed: $(cat "$T/f3.err")"
[ "$(json_get "$T/f3.json" renewed)" = 100 ] || fail "renewed $(json_get "$T/f3.json" renewed) of 100"
check_devices 'fa%03d.example.test' 127.0.62.1 $NA
check_devices 'fb%03d.example.test' 127.0.63.1 $NB
"$AMTCA" --home "$HOME_CA" list --json >"$T/new.json"
python3 - "$T/old.json" "$T/new.json" "$T" <<'PY' || fail "old serials not superseded or still in AMT"
import json, sys, glob
old = {c["serial"] for c in json.load(open(sys.argv[1]))["certificates"]}
new = {c["serial"]: c for c in json.load(open(sys.argv[2]))["certificates"]}
for s in old:
    assert new[s]["status"] == "revoked" and new[s]["reason"] == "superseded", new[s]
in_amt = set()
for f in glob.glob(sys.argv[3] + "/ai-*.json"):
    for c in json.load(open(f))["certificates"]:
        if c.get("serial"):
            in_amt.add(c["serial"].upper().lstrip("0"))
left = [s for s in old if s.lstrip("0") in in_amt]
assert not left, left[:3]
PY
ok "a window covering every certificate renews all 100 ($(json_get "$T/f3.json" seconds) s); old serials superseded and gone from AMT"
