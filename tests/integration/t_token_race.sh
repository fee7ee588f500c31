#!/usr/bin/env bash
# Several amtca processes on one embedded home never fail spuriously.
# SoftHSM 2.6 truncates and rewrites tokens/<uuid>/token.object on every
# C_Login, outside any lock another process honours; hsm/ serialises module
# start-up, login and the token-backup restore check of the embedded token
# with one lock file (keys/softhsm/amtca.lock).  Without it, parallel issues on
# one home failed with "no PKCS#11 token matches" or CKR 0x5, and the
# restore check "restored" token.object files that a live login was writing.
#  1. 8 processes x 50 issues: 0 failures, no "restored", 400 records.
#  2. 20 parallel enroll runs against an amtsim fleet: 0 failures.
#  3. An empty token.object that another process holds open is not
#     "restored" over; once it is closed (an interrupted write), it is.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
make_csr "$T/req.csr" rsa:2048

# --- 1. 8 x 50 issues on one home ------------------------------------------
P=8
N=50
worker() {
	local w=$1 i bad=0
	for i in $(seq 1 "$N"); do
		if ! "$AMTCA" --home "$HOME_CA" issue --fqdn "w$w-$i.example.test" \
		    --csr "$T/req.csr" >/dev/null 2>>"$T/issue-$w.err"; then
			bad=$((bad + 1))
		fi
	done
	echo "$bad" >"$T/issue-$w.bad"
}
for w in $(seq 1 "$P"); do
	worker "$w" &
done
wait
failed=0
for w in $(seq 1 "$P"); do
	failed=$((failed + $(cat "$T/issue-$w.bad")))
done
cat "$T"/issue-*.err >"$T/issue.err"
[ "$failed" = 0 ] || fail "$failed of $((P * N)) parallel issues failed: $(sort "$T/issue.err" | uniq -c | head -n 5)"
if grep -q restored "$T/issue.err"; then
	fail "a restore ran although no login was interrupted: $(grep restored "$T/issue.err" | head -n 2)"
fi
[ -s "$T/issue.err" ] && fail "parallel issues wrote to stderr: $(head -n 3 "$T/issue.err")"
"$AMTCA" --home "$HOME_CA" list --json >"$T/list.json"
recorded=$(python3 - "$T/list.json" "$P" "$N" <<'PY'
import json, sys
certs = json.load(open(sys.argv[1]))["certificates"]
p, n = int(sys.argv[2]), int(sys.argv[3])
want = {"w%d-%d.example.test" % (w, i) for w in range(1, p + 1) for i in range(1, n + 1)}
have = {c["fqdn"] for c in certs}
missing = sorted(want - have)
print(len(certs) if not missing else "missing " + " ".join(missing[:5]))
PY
)
[ "$recorded" = $((P * N)) ] || fail "not every certificate is recorded: $recorded (want $((P * N)))"
ok "$P processes x $N issues on one home: 0 failures, $recorded recorded"

# --- 2. 20 parallel enrollments against a fleet -----------------------------
D=20
BASE=127.0.73
# Device keys from the shared pool: the race is in the token, not amtsim's CPU.
sim_key_pool_fill "$D"
start_sim "$T/fleet.log" --devices "$D" --address-base "$BASE.1" \
    --fqdn-pattern 'race%02d.example.test' --user admin --password-file "$PW" \
    --commit-delay-ms 100 --key-pool "$SIM_KEY_POOL"
for i in $(seq 0 $((D - 1))); do
	fq=$(printf 'race%02d.example.test' "$i")
	enroll "$BASE.$((i + 1))" "$fq" >"$T/en-$i.out" 2>"$T/en-$i.err" &
done
efail=0
for job in $(jobs -p); do
	[ "$job" = "$SIM_PID" ] && continue
	wait "$job" || efail=$((efail + 1))
done
if [ "$efail" != 0 ] || cat "$T"/en-*.err | qgrep .; then
	fail "$efail of $D parallel enrollments failed (exit status), stderr: $(cat "$T"/en-*.err | sort | uniq -c | head -n 5)"
fi
n=$(cat "$T"/en-*.out | grep -c enrolled || true)
[ "$n" = "$D" ] || fail "$n of $D devices say enrolled: $(cat "$T"/en-*.out | head -n 3)"
stop_sim
ok "$D parallel enrollments on one home: 0 failures"

# --- 3. the restore never overwrites a file another process has open -------
tok=$(ls -d "$HOME_CA"/keys/softhsm/tokens/*/ | head -n 1)
: >"$tok/token.object"
# A writer in the middle of its write: the file is empty and open.
sleep 30 3>>"$tok/token.object" &
holder=$!
on_exit "kill $holder 2>/dev/null"
rc=0
"$AMTCA" --home "$HOME_CA" issue --fqdn held.example.test --csr "$T/req.csr" \
    >/dev/null 2>"$T/held.err" || rc=$?
if grep -q restored "$T/held.err"; then
	fail "token.object was restored while another process had it open: $(cat "$T/held.err")"
fi
[ "$rc" != 0 ] || fail "issue succeeded on an empty token.object"
grep -q 'open in another process' "$T/held.err" ||
    fail "the refusal does not say why: $(cat "$T/held.err")"
[ -s "$tok/token.object" ] && fail "token.object was written while held open"
kill "$holder"
wait "$holder" 2>/dev/null || true
"$AMTCA" --home "$HOME_CA" issue --fqdn after.example.test --csr "$T/req.csr" \
    >/dev/null 2>"$T/after.err" || fail "no repair once the file is closed: $(cat "$T/after.err")"
grep -q restored "$T/after.err" || fail "the repair is not reported: $(cat "$T/after.err")"
ok "an empty token.object held open elsewhere is left alone; restored once closed"
echo "t_token_race: all passed"
