#!/usr/bin/env bash
# Stopping the service's jobs (docs/api.md):
#  - SIGTERM while a job runs: `amtca serve` exits 0, the job is left
#    "running", and the next start resumes and completes it (one bound leaf
#    and one valid certificate per device);
#  - the reconcile timer (--reconcile-every) queues a job over every device
#    with a sealed credential, which finds them all healthy (unchanged);
#  - a credential AMT refuses leaves the device auth_failed and is not tried
#    again by the next job, until `amtca credential add` replaces it;
#  - a cancel aborts what is in flight: devices waiting 40 s for AMT to
#    bring TLS up after a commit stop within the grace period (5 s), end
#    failed (reconcilable, the reason says aborted), and the job is
#    cancelled long before those 40 s.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"
source "$(dirname "$0")/api_helpers.sh"

ca_setup
N=12
api_sims $((N + 1)) 127.0.93.1 'as%03d.example.test'
api_setup 127.0.93.254
serve_up

# --- SIGTERM mid-job --------------------------------------------------------
id=$(api_job "$(devices_json 'as%03d.example.test' 127.0.93.1 0 $N site)" 2)
job_wait_finished "$id" 2 || true
done1=$(job_finished "$id")
[ "$done1" -lt $N ] || fail "the job finished before SIGTERM"
t0=$(date +%s.%N)
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve did not exit 0 on SIGTERM mid-job"
secs=$(echo "$(date +%s.%N) - $t0" | bc)
[ "$(sqlite3 "$STATE_DB" "SELECT state FROM jobs WHERE id='$id'")" = running ] ||
    fail "the job stopped by SIGTERM is not left running"
sqlite3 "$STATE_DB" "SELECT fqdn, state FROM devices" >"$T/states"
grep -q '|enrolling$' "$T/states" && fail "SIGTERM left a device enrolling: $(grep enrolling "$T/states")"
ok "SIGTERM with $done1 of $N devices finished: exit 0 after $secs s, the job left running, no device left enrolling"
serve_up
job_wait "$id" done 120
grep -q "event=job_resume job=$id" "$T/serve.err" || fail "the next start did not resume $id"
python3 - "$T/body" $N <<'PY' || fail "the resumed job: $(head -c 600 "$T/body")"
import json, sys
d, n = json.load(open(sys.argv[1])), int(sys.argv[2])
c = d["counts"]
assert c["failed"] == 0 and c["pending"] == 0 and c["enrolled"] + c["unchanged"] == n, c
PY
check_devices 'as%03d.example.test' 127.0.93.1 $N
ok "the next start resumed the job and completed it; one bound leaf, one valid record per device"

# --- the reconcile timer ----------------------------------------------------
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve did not exit 0 on SIGTERM (idle)"
serve_up --reconcile-every 2s
recid=""
for i in $(seq 1 300); do
	api GET /api/v1/jobs >/dev/null
	recid=$(python3 -c 'import json,sys; j=[x for x in json.load(open(sys.argv[1]))["jobs"] if x["kind"]=="reconcile"]; print(j[-1]["id"] if j else "")' "$T/body")
	[ -n "$recid" ] && break
	sleep 0.1
done
[ -n "$recid" ] || fail "no reconcile job within 30 s of --reconcile-every 2s"
job_wait "$recid" done 120
python3 - "$T/body" $N <<'PY' || fail "the reconcile job: $(head -c 600 "$T/body")"
import json, sys
d, n = json.load(open(sys.argv[1])), int(sys.argv[2])
c = d["counts"]
assert d["kind"] == "reconcile" and d["total"] == n, (d["kind"], d["total"])
assert c["unchanged"] == n and c["failed"] == 0, c
PY
ok "the reconcile timer's job covered all $N devices: unchanged (healthy)"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve did not exit 0 on SIGTERM"
serve_up

# --- a refused credential is not tried again until replaced ---------------
password_file "$T/wrong-pw" "Wrong-$RANDOM-pw"
"$AMTCA" --home "$HOME_CA" credential add wrong --user admin \
    --password-file "$T/wrong-pw" >/dev/null || fail "credential add wrong"
one=$(devices_json 'as%03d.example.test' 127.0.93.1 $N 1 wrong)
dev=$(printf 'as%03d.example.test' $N)
id4=$(api_job "$one" 1)
job_wait "$id4" done 60
api GET "/api/v1/devices/$dev" >/dev/null
[ "$(json_get "$T/body" state)" = auth_failed ] || fail "a refused credential: $(cat "$T/body")"
id5=$(api_job "$one" 1)
job_wait "$id5" done 60
python3 - "$T/body" <<'PY' || fail "the refused credential was tried again: $(cat "$T/body")"
import json, sys
d = json.load(open(sys.argv[1]))["devices"][0]
assert d["result"] == "failed" and "not tried again until it is replaced" in d["error"], d
PY
"$AMTCA" --home "$HOME_CA" credential add wrong --user admin \
    --password-file "$PW" >/dev/null || fail "credential add (replace)"
id6=$(api_job "$one" 1)
job_wait "$id6" done 60
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["devices"][0]["result"])' "$T/body")" = enrolled ] ||
    fail "the replaced credential was not used: $(cat "$T/body")"
ok "a refused credential: auth_failed, not tried again, used again once replaced"

# --- a cancel aborts AMT work in flight -------------------------------------
# Two devices whose TLS comes up 40 s after the commit: the engine waits in
# its verify step; a cancel must not wait for that.
"$AMTSIM" --key-pool "$T/pool2.pem" --key-pool-size 4 >"$T/pool2.out" ||
    fail "cannot fill a second key pool"
start_sim "$T/sim2.log" --devices 2 --address-base 127.0.93.101 \
    --fqdn-pattern 'ass%03d.example.test' --user admin --password-file "$PW" \
    --key-pool "$T/pool2.pem" --commit-delay-ms 40000
id3=$(api_job "$(devices_json 'ass%03d.example.test' 127.0.93.101 0 2 site)" 2)
waiting() {
	local n=0 f
	for f in ass000 ass001; do
		api GET "/api/v1/devices/$f.example.test" >/dev/null || true
		[ "$(json_get "$T/body" last_step 2>/dev/null)" = bind ] && n=$((n + 1))
	done
	echo $n
}
for i in $(seq 1 300); do
	[ "$(waiting)" = 2 ] && break
	sleep 0.1
done
[ "$(waiting)" = 2 ] || fail "the devices never reached the wait after the commit"
t0=$(date +%s)
st=$(api DELETE "/api/v1/jobs/$id3")
[ "$st" = 202 ] || fail "DELETE with devices in flight: $st, want 202 $(cat "$T/body")"
[ "$(json_get "$T/body" cancelling)" = True ] || fail "not cancelling: $(cat "$T/body")"
job_wait "$id3" cancelled 25
ok "DELETE with 2 devices waiting on AMT: cancelled after $(($(date +%s) - t0)) s (their wait was 40 s)"
for f in ass000 ass001; do
	st=$(api GET "/api/v1/devices/$f.example.test")
	[ "$(json_get "$T/body" state)" = failed ] ||
	    fail "$f after the abort: $(cat "$T/body")"
	json_get "$T/body" error | qgrep aborted || fail "$f: not aborted: $(cat "$T/body")"
done
ok "the aborted devices are recorded failed (reconcilable), the reason says aborted"
