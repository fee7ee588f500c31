#!/usr/bin/env bash
# Faults at every step of an enrollment: AMT drops the connection before
# (STEP) or after (STEP+, the reply is lost) processing each WS-MAN call of
# the flow; AMT busy generating keys; a slow commit; the device killed and
# restarted from its state file mid-way.  Property: a first run that fails
# fails cleanly (exit 1, one "amtca: " line naming the step), the same
# command then completes, exactly one certificate is issued, and AMT's store
# ends with exactly root + intermediate + one bound leaf + one key, with
# openssl verifying the served chain and hostname.  (t_enroll_crash.sh
# kills amtca itself at every point.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup

# Every WS-MAN call a fresh enrollment makes (amtsim step names, see
# amtsim(1) --drop-at): the drop fires on the first occurrence.
STEPS="Get-GeneralSettings GetLowAccuracyTimeSynch SetHighAccuracyTimeSynch
Enumerate-PublicKeyCertificate Pull-PublicKeyCertificate
AddTrustedRootCertificate AddCertificate
Enumerate-PublicPrivateKeyPair Pull-PublicPrivateKeyPair
GenerateKeyPair GeneratePKCS10RequestEx
Create-TLSCredentialContext Enumerate-TLSSettingData Pull-TLSSettingData
Put-TLSSettingData CommitChanges"

n=0
failed=0
for step in $STEPS; do
	for variant in "$step" "$step+"; do
		n=$((n + 1))
		addr="127.0.10.$n"
		fqdn="amt-f$n.example.test"
		sim_up "$T/sim-$n.log" "$addr" "$fqdn" --commit-delay-ms 100 --drop-at "$variant" --verbose
		issued_before=$(cert_count "$HOME_CA")
		rc=0
		enroll "$addr" "$fqdn" --tls-wait-ms 8000 >"$T/f$n.out" 2>"$T/f$n.err" || rc=$?
		grep -q ': 0 (0 bytes)' "$T/sim-$n.log" || fail "--drop-at $variant never fired"
		# The first run fails cleanly, or the client absorbed the drop
		# (libcurl resends a read whose kept-alive connection died
		# before any reply): both must end in the same clean state.
		# A call that changes AMT's state goes on a fresh connection and
		# is never resent, so its drop must surface; CommitChanges is
		# the exception by design (AMT drops connections as it applies
		# a commit, so the engine goes on to prove TLS).
		[ "$rc" = 0 ] || [ "$rc" = 1 ] || fail "--drop-at $variant: exit $rc"
		case $step in
		Get-* | Enumerate-* | Pull-* | CommitChanges) ;;
		*) [ "$rc" = 1 ] || fail "--drop-at $variant: a dropped state-changing call did not surface (resent?)" ;;
		esac
		if [ "$rc" = 1 ]; then
			[ "$(wc -l <"$T/f$n.err")" = 1 ] && grep -q '^amtca: enroll .*step [1-7]/7' "$T/f$n.err" ||
			    fail "--drop-at $variant: error not one 'amtca: ... step N/7' line: $(cat "$T/f$n.err")"
			failed=$((failed + 1))
		fi
		enroll "$addr" "$fqdn" --tls-wait-ms 8000 >"$T/f$n.out2" 2>"$T/f$n.err2" ||
		    fail "--drop-at $variant: rerun failed: $(cat "$T/f$n.err2")"
		grep -Eq ': (enrolled|already enrolled) ' "$T/f$n.out2" ||
		    fail "--drop-at $variant: rerun output: $(cat "$T/f$n.out2")"
		s_client_ok "$addr" "$fqdn"
		assert_clean "$addr" "$fqdn"
		issued=$(( $(cert_count "$HOME_CA") - issued_before ))
		[ "$issued" = 1 ] || fail "--drop-at $variant: $issued certificates issued (want 1)"
		stop_sim
		ok "--drop-at $variant: $( [ $rc = 1 ] && sed 's/.*step \([1-7]\/7 ([a-z]*)\).*/failed at \1/' "$T/f$n.err" || echo 'absorbed by the client, succeeded'), rerun completed, store clean, 1 issuance"
	done
done

[ "$failed" -gt 0 ] || fail "no injected drop made a first run fail"
ok "$failed of $n injected drops surfaced as a failed first run; all reruns completed"

# --- AMT busy generating keys (2061): retried with backoff -----------------
n=$((n + 1))
sim_up "$T/sim-$n.log" "127.0.10.$n" "amt-f$n.example.test" --commit-delay-ms 100 --keygen-busy 3
enroll "127.0.10.$n" "amt-f$n.example.test" >"$T/b.out" 2>"$T/b.err" || fail "keygen-busy 3: $(cat "$T/b.err")"
assert_clean "127.0.10.$n" "amt-f$n.example.test"
stop_sim
ok "--keygen-busy 3: retried, enrolled, one key"

# --- slow commit: TLS comes up seconds later -------------------------------
n=$((n + 1))
sim_up "$T/sim-$n.log" "127.0.10.$n" "amt-f$n.example.test" --commit-delay-ms 3000
enroll "127.0.10.$n" "amt-f$n.example.test" >"$T/c.out" 2>"$T/c.err" || fail "commit-delay 3000: $(cat "$T/c.err")"
s_client_ok "127.0.10.$n" "amt-f$n.example.test"
assert_clean "127.0.10.$n" "amt-f$n.example.test"
stop_sim
ok "--commit-delay-ms 3000: verify waited for TLS"

# --- the device restarts mid-way (killed during key generation) ------------
n=$((n + 1))
addr="127.0.10.$n"
fqdn="amt-f$n.example.test"
state="$T/state-$n"
sim_up "$T/sim-$n-a.log" "$addr" "$fqdn" --commit-delay-ms 100 --state "$state" --keygen-ms 3000
enroll "$addr" "$fqdn" >"$T/k.out" 2>"$T/k.err" &
epid=$!
sleep 1.5
kill -KILL "$SIM_PID"
wait "$SIM_PID" 2>/dev/null || true
rc=0
wait "$epid" || rc=$?
[ "$rc" = 1 ] || fail "enroll against a device killed mid-keygen: exit $rc: $(cat "$T/k.err")"
grep -q 'step 4/7' "$T/k.err" || fail "expected a step 4 failure: $(cat "$T/k.err")"
sim_up "$T/sim-$n-b.log" "$addr" "$fqdn" --commit-delay-ms 100 --state "$state" --keygen-ms 200
enroll "$addr" "$fqdn" >"$T/k2.out" 2>"$T/k2.err" || fail "rerun after restart: $(cat "$T/k2.err")"
s_client_ok "$addr" "$fqdn"
assert_clean "$addr" "$fqdn"
stop_sim
ok "device killed during keygen and restarted from --state: rerun completed, store clean"

# --- the device restarts between commit and TLS coming up ------------------
n=$((n + 1))
addr="127.0.10.$n"
fqdn="amt-f$n.example.test"
state="$T/state-$n"
sim_up "$T/sim-$n-a.log" "$addr" "$fqdn" --commit-delay-ms 4000 --state "$state"
enroll "$addr" "$fqdn" --tls-wait-ms 20000 >"$T/m.out" 2>"$T/m.err" &
epid=$!
sleep 1.5	# the commit is sent within ~0.5 s; TLS comes up after 4 s
kill -KILL "$SIM_PID"
wait "$SIM_PID" 2>/dev/null || true
sim_up "$T/sim-$n-b.log" "$addr" "$fqdn" --commit-delay-ms 100 --state "$state"
rc=0
wait "$epid" || rc=$?
# The first run either saw TLS come up on the restarted device or failed.
[ "$rc" = 0 ] || [ "$rc" = 1 ] || fail "enroll across restart: exit $rc"
enroll "$addr" "$fqdn" >"$T/m2.out" 2>"$T/m2.err" || fail "rerun after restart: $(cat "$T/m2.err")"
s_client_ok "$addr" "$fqdn"
assert_clean "$addr" "$fqdn"
stop_sim
ok "device killed after the commit and restarted: (first run exit $rc) rerun completed, store clean"
