#!/usr/bin/env bash
# amtca fleet killed with SIGKILL while about half the devices are mid-
# enrollment (the rest not started or done), then run again with the same
# command: the rerun continues the same job (its finished devices are not
# contacted again), completes every device, and the per-device invariants
# hold: one bound leaf and one key in AMT, one valid certificate in the
# records, and no device got a certificate twice (the engine reuses a leaf
# an interrupted run had issued).  The killed run's leases do not block
# the rerun (their holder is gone).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

ca_setup
N=40
sim_key_pool_fill $((N + 10))
start_sim "$T/sim.log" --devices $N --address-base 127.0.64.1 \
    --fqdn-pattern 'fk%03d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL" --latency-ms 40 --commit-delay-ms 600
hosts_csv "$T/hosts.csv" 'fk%03d.example.test' 127.0.64.1 $N

# Not on a terminal: one line per finished device, which tells when to kill.
"$AMTCA" --home "$HOME_CA" fleet --hosts "$T/hosts.csv" --user admin \
    --password-file "$PW" --concurrency 20 >"$T/k.out" 2>"$T/k.err" &
fpid=$!
for i in $(seq 1 600); do
	[ "$(grep -c ': enrolled' "$T/k.out" || true)" -ge 4 ] && break
	kill -0 "$fpid" 2>/dev/null || break
	sleep 0.05
done
kill -KILL "$fpid" 2>/dev/null || fail "fleet finished before it could be killed: $(cat "$T/k.err")"
wait "$fpid" 2>/dev/null || true
done1=$(grep -c ': enrolled' "$T/k.out" || true)
# Started (a device record exists) but not reported finished.
started=$(sqlite3 "$HOME_CA/state/state.db" "SELECT count(*) FROM devices")
inflight=$((started - done1))
[ "$done1" -lt $N ] || fail "every device finished before the kill"
[ "$inflight" -ge 10 ] || fail "only $inflight devices were mid-enrollment at the kill"
# What the job recorded as finished (at least what was printed).
carried=$(sqlite3 "$HOME_CA/state/state.db" "SELECT count(*) FROM job_devices WHERE result != 'failed'")
[ "$carried" -ge "$done1" ] || fail "the job recorded $carried finished devices, $done1 were printed"
ok "killed with $done1 done and $inflight mid-enrollment"

fleet --hosts "$T/hosts.csv" --concurrency 20 >"$T/r.out" 2>"$T/r.err" ||
    fail "the rerun after SIGKILL failed: $(cat "$T/r.err"; tail -n 12 "$T/r.out")"
grep -q 'continued)$' "$T/r.out" || fail "the rerun did not continue the killed job: $(tail -n 2 "$T/r.out")"
ran=$(grep -c ': \(enrolled\|renewed\|unchanged\|failed\)' "$T/r.out" || true)
[ "$ran" = $((N - carried)) ] || fail "the rerun ran $ran devices, want $((N - carried)) (the unfinished ones)"
python3 - "$T/r.out" $N <<'PY' || fail "not every device ended enrolled"
import re, sys
counts = dict(re.findall(r"^(enrolled|renewed|unchanged|failed) +(\d+)$", open(sys.argv[1]).read(), re.M))
assert counts.get("failed") == "0" and int(counts["enrolled"]) + int(counts["unchanged"]) == int(sys.argv[2]), counts
PY
check_devices 'fk%03d.example.test' 127.0.64.1 $N
[ "$(cert_count "$HOME_CA")" = $N ] || fail "$(cert_count "$HOME_CA") certificates issued for $N devices: one issued twice"
ok "the rerun continued the job and completed all $N; one leaf, one key, one valid record each; none issued twice"
