#!/usr/bin/env bash
# amtca itself crashes (SIGKILL) at every point of an enrollment.  amtsim
# answers each call after --latency-ms, so killing amtca at increasing
# times lands on successive WS-MAN calls: after key generation, after the
# CSR, after issuance (recorded in the CA store, not yet in AMT), after
# AddCertificate, between the Puts, around the commit, during cleanup.
# Property for every kill point: the same command then completes; exactly
# one certificate was issued for the device in total (an issued leaf is
# reused, never issued twice); AMT's store holds exactly root +
# intermediate + one bound leaf + one key; openssl verifies chain and name.
# A --force renewal is killed the same way: the rerun (without --force)
# leaves one leaf and one key either way.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
LAT=60

# One undisturbed run measures how long a full enrollment takes here.
sim_up "$T/sim-0.log" 127.0.11.250 amt-k0.example.test --commit-delay-ms 100 --latency-ms $LAT
t0=$(date +%s%N)
enroll 127.0.11.250 amt-k0.example.test >/dev/null || fail "baseline enrollment failed"
full_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
stop_sim
ok "baseline enrollment with ${LAT} ms per call: ${full_ms} ms"

points=14
killed=0
for k in $(seq 1 $points); do
	at_ms=$(( full_ms * k / (points + 1) ))
	addr="127.0.11.$k"
	fqdn="amt-k$k.example.test"
	sim_up "$T/sim-$k.log" "$addr" "$fqdn" --commit-delay-ms 100 --latency-ms $LAT
	issued_before=$(cert_count "$HOME_CA")
	# amtca itself in the background (not a shell function: $! must be
	# the process that gets SIGKILL).
	"$AMTCA" --home "$HOME_CA" enroll --host "$fqdn" --address "$addr" \
	    --user admin --password-file "$PW" >"$T/k$k.out" 2>"$T/k$k.err" &
	epid=$!
	sleep "$(printf '%d.%03d' $((at_ms / 1000)) $((at_ms % 1000)))"
	if kill -KILL "$epid" 2>/dev/null; then
		killed=$((killed + 1))
		what="killed at ${at_ms} ms"
	else
		what="finished before ${at_ms} ms"
	fi
	wait "$epid" 2>/dev/null || true
	enroll "$addr" "$fqdn" >"$T/k$k.out2" 2>"$T/k$k.err2" ||
	    fail "rerun after amtca $what failed: $(cat "$T/k$k.err2")"
	issued=$(( $(cert_count "$HOME_CA") - issued_before ))
	[ "$issued" = 1 ] || fail "amtca $what: $issued certificates issued in total (want 1)"
	s_client_ok "$addr" "$fqdn"
	assert_clean "$addr" "$fqdn"
	stop_sim
	ok "amtca $what: rerun completed, 1 issuance, store clean"
done
[ "$killed" -ge $((points / 2)) ] || fail "only $killed of $points runs were interrupted"

# --force renewals killed part-way.
addr=127.0.11.200
fqdn=amt-kf.example.test
sim_up "$T/sim-f.log" "$addr" "$fqdn" --commit-delay-ms 100 --latency-ms $LAT
enroll "$addr" "$fqdn" >/dev/null || fail "enrollment before --force kills failed"
for k in 3 6 9 12; do
	at_ms=$(( full_ms * k / 14 ))
	"$AMTCA" --home "$HOME_CA" enroll --host "$fqdn" --address "$addr" \
	    --user admin --password-file "$PW" --force >/dev/null 2>&1 &
	epid=$!
	sleep "$(printf '%d.%03d' $((at_ms / 1000)) $((at_ms % 1000)))"
	kill -KILL "$epid" 2>/dev/null || true
	wait "$epid" 2>/dev/null || true
	enroll "$addr" "$fqdn" >"$T/kf$k.out" 2>"$T/kf$k.err" ||
	    fail "rerun after a killed --force ($at_ms ms): $(cat "$T/kf$k.err")"
	s_client_ok "$addr" "$fqdn"
	assert_clean "$addr" "$fqdn"
	ok "--force killed at ${at_ms} ms: rerun left one leaf, one key ($(sed 's/^[^:]*: \([a-z ]*\) (.*/\1/' "$T/kf$k.out"))"
done
stop_sim

# Two enrollments of one device at once: the second refuses cleanly.
addr=127.0.11.201
fqdn=amt-kc.example.test
sim_up "$T/sim-c.log" "$addr" "$fqdn" --commit-delay-ms 100 --latency-ms $LAT
"$AMTCA" --home "$HOME_CA" enroll --host "$fqdn" --address "$addr" \
    --user admin --password-file "$PW" >"$T/c1.out" 2>"$T/c1.err" &
epid=$!
sleep 0.3
expect_fail 1 "another amtca is working on $fqdn" enroll "$addr" "$fqdn"
wait "$epid" || fail "the first of two concurrent runs failed: $(cat "$T/c1.err")"
assert_clean "$addr" "$fqdn"
stop_sim
ok "a concurrent second enroll of the same device refuses; the first completes"
