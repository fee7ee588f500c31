#!/usr/bin/env bash
# The service's jobs when they do not simply run to the end:
#  - cancel: DELETE /api/v1/jobs/{id} mid-run ends the job "cancelled"
#    within the grace period; devices not reached stay pending, none is
#    left "enrolling"; a finished job is left as it is by a DELETE;
#  - resume: `amtca serve` killed with SIGKILL mid-job; the restarted
#    service continues the job (its finished devices carried) and
#    completes it, which also completes the devices the cancelled job did
#    not reach; every device then has one bound leaf and one key in AMT,
#    one valid certificate in the records, and none was issued twice.
# (Stopping with SIGTERM, the reconcile timer and aborting AMT work in
# flight: t_api_stop.sh.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"
source "$(dirname "$0")/api_helpers.sh"

ca_setup
N=40
api_sims $N 127.0.92.1 'aj%03d.example.test'
api_setup 127.0.92.254
serve_up

# --- cancel ---------------------------------------------------------------
id=$(api_job "$(devices_json 'aj%03d.example.test' 127.0.92.1 0 20 site)" 2)
job_wait_finished "$id" 2 || true
[ "$(job_finished "$id")" -ge 2 ] || fail "the job did not get going: $(head -c 400 "$T/body")"
st=$(api DELETE "/api/v1/jobs/$id")
[ "$st" = 202 ] || [ "$st" = 200 ] || fail "DELETE: $st $(cat "$T/body")"
t0=$(date +%s)
job_wait "$id" cancelled 30
ok "DELETE mid-run: cancelled after $(($(date +%s) - t0)) s"
python3 - "$T/body" <<'PY' || fail "the cancelled job: $(head -c 600 "$T/body")"
import json, sys
d = json.load(open(sys.argv[1]))
c = d["counts"]
assert d["state"] == "cancelled" and d["finished_at"], d["state"]
assert c["pending"] > 0, c          # cut before its end
assert c["enrolled"] >= 2, c
PY
sqlite3 "$STATE_DB" "SELECT fqdn, state FROM devices" >"$T/states"
grep -q '|enrolling$' "$T/states" && fail "a device was left enrolling: $(grep enrolling "$T/states")"
grep -q 'event=job_cancel' "$T/serve.err" || fail "no job_cancel log line"
ok "the cancelled job: some devices enrolled, the rest pending or failed, none left enrolling"

# --- resume after SIGKILL --------------------------------------------------
id2=$(api_job "$(devices_json 'aj%03d.example.test' 127.0.92.1 0 $N site)" 4)
before=$(job_finished "$id2")
for i in $(seq 1 600); do
	[ "$(job_finished "$id2")" -ge $((before + 4)) ] && break
	sleep 0.1
done
done1=$(job_finished "$id2")
[ "$done1" -lt $N ] || fail "the job finished before it could be killed"
kill -KILL "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
[ "$(sqlite3 "$STATE_DB" "SELECT state FROM jobs WHERE id='$id2'")" = running ] ||
    fail "the killed job is not left running"
ok "serve killed with SIGKILL with $done1 of $N devices finished"
serve_up
job_wait "$id2" done 300
grep -q "event=job_resume job=$id2" "$T/serve.err" || fail "the restart did not resume $id2"
[ "$(grep -c "event=job_start job=$id2 devices=$N concurrency=4" "$T/serve.err")" = 2 ] ||
    fail "the resumed job did not keep its concurrency: $(grep "job_start job=$id2" "$T/serve.err")"
python3 - "$T/body" $N <<'PY' || fail "the resumed job's counts: $(head -c 600 "$T/body")"
import json, sys
d, n = json.load(open(sys.argv[1])), int(sys.argv[2])
c = d["counts"]
assert c["failed"] == 0 and c["pending"] == 0, c
assert c["enrolled"] + c["unchanged"] + c["renewed"] == n, c
PY
check_devices 'aj%03d.example.test' 127.0.92.1 $N
ndev=$("$AMTCA" --home "$HOME_CA" list --json | python3 -c 'import json,sys; print(len([c for c in json.load(sys.stdin)["certificates"] if c.get("device")]))')
[ "$ndev" = $N ] || fail "$ndev device certificates for $N devices: one issued twice"
ok "the restarted service completed the job: one bound leaf, one key, one valid record per device; none issued twice"

st=$(api DELETE "/api/v1/jobs/$id2")
[ "$st" = 200 ] && [ "$(json_get "$T/body" state)" = done ] ||
    fail "DELETE of a finished job: $st $(cat "$T/body")"
st=$(api DELETE /api/v1/jobs/0123456789ABCDEF0123456789ABCDEF)
[ "$st" = 404 ] || fail "DELETE of an unknown job: $st, want 404"
ok "DELETE leaves a finished job done; 404 for an unknown one"
