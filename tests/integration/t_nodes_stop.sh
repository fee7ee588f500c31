#!/usr/bin/env bash
# Several nodes, stopping a shared job (issue 11, section 2): two `amtca
# serve` nodes on one PostgreSQL store and one external SoftHSM token
# (nodes_helpers.sh):
#  - a job submitted to node A and worked by both, cancelled by a DELETE
#    on node B, ends "cancelled" and stops on both nodes (each logs its end
#    as cancelled); devices not reached stay pending, none is left
#    enrolling;
#  - SIGTERM of node A mid-job releases its claims at once (node B runs
#    with --claim-ttl 60 and takes no lapsed claim over): the devices A
#    had in hand are left pending, not failed, and B completes the job with
#    one bound leaf, one key and one valid record per device.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg_helpers.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"
source "$(dirname "$0")/nodes_helpers.sh"

nodes_setup amtca_nodes_stop 127.0.153.1 127.0.153.2
N=30
BASE=127.0.156.1
PAT='ns%03d.example.test'
sim_key_pool_fill $((N + 10))
start_sim "$T/sim.log" --devices $N --address-base $BASE --fqdn-pattern "$PAT" \
    --user admin --password-file "$PW" --key-pool "$SIM_KEY_POOL" --latency-ms 20 \
    --commit-delay-ms 400
node_up a "$A" --reconcile-every 0 --claim-ttl 60
node_up b "$B" --reconcile-every 0 --claim-ttl 60
t_ok "two nodes on $URI, node B by init --join"

# wait_both JOB MIN: until both nodes have finished devices of JOB and A
# has finished at least MIN.
wait_both() {
	local i na=0
	for i in $(seq 1 600); do
		na=$(grep -c "event=job_device job=$1" "$T/a.log" || true)
		grep -q "event=job_device job=$1" "$T/b.log" && [ "$na" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "job $1: not worked by both nodes (A finished $na)"
}
job_state() { q "SELECT state FROM amtca.jobs WHERE id = '$1'"; }

# --- a DELETE on B stops the job on both nodes --------------------------------
J1=$(nodes_job a "$PAT" $BASE 20 2)
wait_both "$J1" 2
st=$(api_at b DELETE "/api/v1/jobs/$J1")
[ "$st" = 200 ] || [ "$st" = 202 ] || fail "DELETE on B: $st $(cat "$T/body")"
for i in $(seq 1 300); do
	grep -q "event=job_end job=$J1 state=cancelled" "$T/a.log" &&
	    grep -q "event=job_end job=$J1 state=cancelled" "$T/b.log" && break
	sleep 0.1
done
grep -q "event=job_end job=$J1 state=cancelled" "$T/a.log" ||
	fail "node A did not stop the job cancelled on B: $(grep "job=$J1" "$T/a.log" | tail -n 2)"
grep -q "event=job_end job=$J1 state=cancelled" "$T/b.log" ||
	fail "node B did not stop the job: $(grep "job=$J1" "$T/b.log" | tail -n 2)"
[ "$(job_state "$J1")" = cancelled ] || fail "job $J1 is $(job_state "$J1")"
pend=$(q "SELECT count(*) FROM amtca.job_devices WHERE job_id = '$J1' AND result = 'pending'")
[ "$pend" -gt 0 ] || fail "the cancelled job reached every device"
[ "$(q "SELECT count(*) FROM amtca.devices WHERE state = 'enrolling'")" = 0 ] ||
	fail "devices left enrolling: $(q "SELECT fqdn FROM amtca.devices WHERE state = 'enrolling'")"
sleep 2
claims=$(grep -c "event=claim job=$J1" "$T/a.log" "$T/b.log" | awk -F: '{ s += $2 } END { print s }')
sleep 2
[ "$(grep -c "event=claim job=$J1" "$T/a.log" "$T/b.log" | awk -F: '{ s += $2 } END { print s }')" = "$claims" ] ||
	fail "devices of the cancelled job are still claimed"
t_ok "DELETE on node B: job $J1 cancelled on both nodes, $pend devices left pending, none enrolling"

# --- SIGTERM on A releases its claims; B completes the job ------------------
J2=$(nodes_job a "$PAT" $BASE $N 3)
wait_both "$J2" 3
kill -TERM "$PID_a"
wait "$PID_a" 2>/dev/null || true
held=$(q "SELECT count(*) FROM amtca.job_devices WHERE job_id = '$J2' AND claimed_by LIKE '%:$PID_a:%'")
[ "$held" = 0 ] || fail "node A left $held claims after SIGTERM"
grep -q "event=job_end job=$J2 state=running" "$T/a.log" ||
	fail "node A did not stop its part: $(grep "job=$J2" "$T/a.log" | tail -n 2)"
for i in $(seq 1 1200); do
	[ "$(job_state "$J2")" = done ] && break
	sleep 0.1
done
[ "$(job_state "$J2")" = done ] || fail "job $J2 is $(job_state "$J2") after node A stopped"
st=$(api_at b GET "/api/v1/jobs/$J2")
[ "$st" = 200 ] || fail "GET the job on B: $st $(cat "$T/body")"
python3 - "$T/body" $N <<'PY' || fail "the job after A stopped: $(head -c 600 "$T/body")"
import json, sys
d, n = json.load(open(sys.argv[1])), int(sys.argv[2])
c = d["counts"]
assert d["state"] == "done", d["state"]
assert c["failed"] == 0 and c["pending"] == 0, c
assert c["enrolled"] + c["unchanged"] + c["renewed"] == n, c
PY
grep -q "event=claim job=$J2 fqdn=[^ ]* expired=1" "$T/b.log" &&
	fail "node B waited for a lapsed claim: $(grep expired=1 "$T/b.log" | head -n 1)"
kill -TERM "$PID_b"
wait "$PID_b" 2>/dev/null || true
[ "$(q "SELECT count(*) FROM amtca.devices WHERE state = 'enrolling'")" = 0 ] ||
	fail "devices left enrolling: $(q "SELECT fqdn FROM amtca.devices WHERE state = 'enrolling'")"
HOME_CA=$B
nodes_check_devices "$PAT" $BASE $N
t_ok "SIGTERM on node A released its claims at once; node B completed job $J2: one bound leaf, one key, one valid record per device"
