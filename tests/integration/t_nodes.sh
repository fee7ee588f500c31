#!/usr/bin/env bash
# Several nodes (issue 11, section 2): two `amtca serve` nodes on one
# PostgreSQL store (a throwaway cluster) and one SoftHSM token outside both
# homes (standing in for a network HSM):
#  - parallel issuance from both nodes: no duplicate serial, every
#    certificate listed from both;
#  - a revocation made on node B is in node A's /crl on the next fetch (the
#    CRL cache checks the store's revocation mark);
#  - a job of 100 simulated devices submitted to node A is worked by both
#    (job claims); A is killed with SIGKILL mid-job; its claims lapse
#    (--claim-ttl 5) and B finishes those devices: every device has one
#    valid and one bound certificate, one key in AMT, none is left
#    enrolling, no certificate was issued twice, the job ends "done";
#  - the reconcile leader lease: one leader; B takes over when A dies;
#  - `amtca audit verify` passes from either node;
#  - `amtca serve` refuses a store whose schema is newer than it knows.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg_helpers.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"
source "$(dirname "$0")/nodes_helpers.sh"

nodes_setup amtca_nodes 127.0.155.1 127.0.155.2
t_ok "node A on $URI with an external token; node B by init --join"
make_csr "$T/estc.csr" ec:prime256v1 gw.example.test
"$AMTCA" --home "$B" est-client add gw.example.test --allow gw.example.test --allow web.example.test \
    --csr "$T/estc.csr" --out "$T/estc.pem" >/dev/null || fail "est-client add on node B"

node_up a "$A" --reconcile-every 1h
node_up b "$B" --reconcile-every 1h
grep -q 'event=leader role=reconcile state=leader' "$T/a.log" ||
	fail "node A (first up) is not the reconcile leader: $(grep event=leader "$T/a.log")"
for i in $(seq 1 40); do
	grep -q 'event=leader role=reconcile state=follower' "$T/b.log" && break
	sleep 0.1
done
grep -q 'state=follower' "$T/b.log" || fail "node B does not follow: $(grep event=leader "$T/b.log")"
grep -q 'state=leader' "$T/b.log" && fail "two reconcile leaders"
curl -fsS "http://$ADDR_A:9193/metrics" | qgrep -x 'amtca_reconcile_leader 1' ||
	fail "A's /metrics does not say it leads"
curl -fsS "http://$ADDR_B:9193/metrics" | qgrep -x 'amtca_reconcile_leader 0' ||
	fail "B's /metrics does not say it follows"
t_ok "both nodes serve; A leads reconcile, B follows (logs and /metrics)"

# --- parallel issuance from both nodes --------------------------------------
make_csr "$T/leaf.csr" ec:prime256v1 web.example.test
openssl req -in "$T/leaf.csr" -outform DER | base64 >"$T/leaf.b64"
est_loop() { # tag count
	local i st
	for ((i = 0; i < $2; i++)); do
		st=$(curl -sS --max-time 30 --cacert "$A/chain.pem" \
		    --resolve "api-$1.example.test:8443:$(addr_of "$1")" \
		    --cert "$T/estc.pem" --key "$T/estc.csr.key" \
		    -H 'Content-Type: application/pkcs10' \
		    --data-binary @"$T/leaf.b64" -o "$T/$1-$i.p7" -w '%{http_code}' \
		    "https://api-$1.example.test:8443/.well-known/est/simpleenroll")
		[ "$st" = 200 ] || echo "$1-$i: HTTP $st $(head -c 200 "$T/$1-$i.p7")" >>"$T/$1.failed"
	done
}
est_loop a 12 &
pa=$!
est_loop b 12 &
pb=$!
wait $pa $pb
[ ! -s "$T/a.failed" ] && [ ! -s "$T/b.failed" ] ||
	fail "issuance failed: $(cat "$T/a.failed" "$T/b.failed" 2>/dev/null | head -n 3)"
for tag in a b; do
	st=$(api_at $tag GET "/api/v1/certificates?fqdn=web.example.test&limit=1000")
	[ "$st" = 200 ] || fail "GET certificates on $tag: $st $(cat "$T/body")"
	python3 - "$T/body" 24 <<'PY' || fail "certificates seen from node $tag: $(head -c 300 "$T/body")"
import json, sys
c = json.load(open(sys.argv[1]))["certificates"]
s = [x["serial"] for x in c]
assert len(s) == len(set(s)), "duplicate serial"
assert len(c) == int(sys.argv[2]), len(c)
PY
done
t_ok "24 certificates issued through both nodes at once (EST): no duplicate serial, all listed from both"

# --- a revocation on B is in A's CRL at the next fetch ------------------------
crl_has() { # addr serial
	curl -fsS --max-time 10 -o "$T/crl.der" "http://$1:8080/crl" || fail "GET /crl on $1"
	openssl crl -inform DER -in "$T/crl.der" -noout -text >"$T/crl.txt" || fail "bad CRL from $1"
	tr -d ' :' <"$T/crl.txt" | qgrep -i "SerialNumber0*${2#0}$"
}
base64 -d "$T/b-3.p7" | openssl pkcs7 -inform DER -print_certs >"$T/b-3.pem"
S=$(openssl x509 -in "$T/b-3.pem" -noout -serial | sed 's/serial=//')
crl_has $ADDR_A "$S" && fail "serial $S on the CRL before its revocation"
t0=$(date +%s.%N)
st=$(api_at b POST "/api/v1/certificates/$S/revoke" -H 'Content-Type: application/json' \
    --data-binary '{"reason":"keyCompromise"}')
[ "$st" = 200 ] || fail "revoke on node B: $st $(cat "$T/body")"
crl_has $ADDR_A "$S" || fail "node A's CRL lacks $S revoked on node B"
t_ok "revoked on node B, in node A's /crl at the next fetch ($(python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)") s after the revoke began; A's CRL was cached just before, its cache lasts 2 s)"

# --- a job of 100 devices: A killed mid-job, B finishes ---------------------
N=100
BASE=127.0.150.1
PAT='nd%03d.example.test'
sim_key_pool_fill $((N + 10))
start_sim "$T/sim.log" --devices $N --address-base $BASE --fqdn-pattern "$PAT" \
    --user admin --password-file "$PW" --key-pool "$SIM_KEY_POOL" --latency-ms 20 \
    --commit-delay-ms 200
JOB=$(nodes_job a "$PAT" $BASE $N 6)
# Both nodes work on it; kill A once it has finished some and holds claims.
for i in $(seq 1 600); do
	na=$(grep -c "event=job_device job=$JOB" "$T/a.log" || true)
	grep -q "event=claim job=$JOB" "$T/b.log" && [ "$na" -ge 8 ] && break
	sleep 0.1
done
grep -q "event=claim job=$JOB" "$T/b.log" || fail "node B never claimed a device of A's job"
[ "$na" -ge 8 ] || fail "node A finished only $na devices"
kill -KILL "$PID_a"
wait "$PID_a" 2>/dev/null || true
held=$(q "SELECT count(*) FROM amtca.job_devices WHERE job_id = '$JOB' AND result = 'pending' AND claimed_by LIKE '%:$PID_a:%'")
[ "$held" -ge 1 ] || fail "node A held no claim when it was killed"
nb0=$(grep -c "event=job_device job=$JOB" "$T/b.log" || true)
t_ok "job $JOB: A killed with SIGKILL after $na devices (B had done $nb0), holding $held claims"

for i in $(seq 1 1200); do
	[ "$(q "SELECT state FROM amtca.jobs WHERE id = '$JOB'")" = done ] && break
	sleep 0.1
done
st=$(api_at b GET "/api/v1/jobs/$JOB")
[ "$st" = 200 ] || fail "GET the job on B: $st $(cat "$T/body")"
python3 - "$T/body" $N <<'PY' || fail "the job after failover: $(head -c 600 "$T/body")"
import json, sys
d, n = json.load(open(sys.argv[1])), int(sys.argv[2])
c = d["counts"]
assert d["state"] == "done", d["state"]
assert c["failed"] == 0 and c["pending"] == 0, c
assert c["enrolled"] + c["unchanged"] + c["renewed"] == n, c
PY
tk=$(grep -c "event=claim job=$JOB fqdn=[^ ]* expired=1 taken_over_from=\"process $PID_a " "$T/b.log" || true)
[ "$tk" -ge "$held" ] || fail "B took over $tk of A's $held lapsed claims: $(grep expired=1 "$T/b.log" | head -n 3)"
grep -q "event=job_end job=$JOB state=done" "$T/b.log" || fail "B did not log the job done"
for i in $(seq 1 100); do
	grep -q 'event=leader role=reconcile state=leader' "$T/b.log" && break
	sleep 0.1
done
grep -q 'event=leader role=reconcile state=leader' "$T/b.log" ||
	fail "node B did not take the reconcile lead after A died"
t_ok "node B took the reconcile leader lease over from A"

# The other processes below log in to the token: node B stops first.
kill -TERM "$PID_b"
wait "$PID_b" 2>/dev/null || true
[ "$(q "SELECT count(*) FROM amtca.devices WHERE state = 'enrolling'")" = 0 ] ||
	fail "devices left enrolling: $(q "SELECT fqdn FROM amtca.devices WHERE state = 'enrolling'")"
HOME_CA=$B
nodes_check_devices "$PAT" $BASE $N
t_ok "node B finished the job after A died ($tk lapsed claims taken over): one bound leaf, one key, one valid record per device, none enrolling, none issued twice"

# --- the audit trail from either node ----------------------------------------
"$AMTCA" --home "$A" audit verify >"$T/va.out" 2>&1 || fail "audit verify on A: $(cat "$T/va.out")"
"$AMTCA" --home "$B" audit verify >"$T/vb.out" 2>&1 || fail "audit verify on B: $(cat "$T/vb.out")"
t_ok "audit verify passes from node A and from node B"

# --- a newer schema: serve refuses ------------------------------------------
q "INSERT INTO amtca.schema_version VALUES (99, 0)"
expect_fail 1 "newer than this amtca" "$AMTCA" --home "$B" serve --listen "$ADDR_B:8443" \
    --name api-b.example.test --status-listen "$ADDR_B:9193" --reconcile-every 0
q "DELETE FROM amtca.schema_version WHERE version = 99"
t_ok "serve refuses a store whose schema is newer than it knows"
