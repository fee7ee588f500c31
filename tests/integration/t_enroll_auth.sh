#!/usr/bin/env bash
# Wrong AMT password: a clear one-line error, and exactly one authentication
# attempt per run.  amtsim --lockout 2 locks the account after two failed
# digests, so: one wrong run followed by a right one must still succeed (at
# most one failed attempt was made), while two wrong runs do lock it (the
# lockout is real, so the first half of the test can fail).  The password
# never appears in output.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
WRONG="$T/wrong-password"
password_file "$WRONG" "Wr0ng-pass-$RANDOM"

ADDR=127.0.12.1
FQDN=amt-a1.example.test
sim_up "$T/sim1.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --lockout 2 --lockout-s 600

expect_fail 1 "rejected user 'admin'" "$AMTCA" --home "$HOME_CA" enroll --host "$FQDN" \
    --address "$ADDR" --user admin --password-file "$WRONG"
grep -q "password-file" "$T/err" || fail "auth error does not say what to do: $(cat "$T/err")"
grep -qF "$(cat "$WRONG")" "$T/err" "$T/out" && fail "the password appears in the output"
grep -qF "$(cat "$PW")" "$T/err" "$T/out" && fail "the real password appears in the output"
ok "wrong password: one clear line: $(cat "$T/err")"

expect_fail 1 "checks failed" "$AMTCA" --home "$HOME_CA" doctor --host "$FQDN" \
    --address "$ADDR" --user admin --password-file "$WRONG"
grep -q '^FAIL WS-MAN login: .*fix: check --user' "$T/out" || fail "doctor: $(cat "$T/out")"
ok "doctor reports the login failure"

# A fresh device for the attempt count: one wrong run, then the right one.
stop_sim
ADDR=127.0.12.2
FQDN=amt-a2.example.test
sim_up "$T/sim2.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --lockout 2 --lockout-s 600
expect_fail 1 "rejected" "$AMTCA" --home "$HOME_CA" enroll --host "$FQDN" \
    --address "$ADDR" --user admin --password-file "$WRONG"
enroll "$ADDR" "$FQDN" >"$T/ok.out" 2>"$T/ok.err" ||
    fail "a correct run after one wrong run failed (more than one attempt was made?): $(cat "$T/ok.err")"
s_client_ok "$ADDR" "$FQDN"
ok "after one wrong run the account is not locked: enrollment succeeds"

# Control: two failed attempts do lock (so the check above can fail).
stop_sim
ADDR=127.0.12.3
FQDN=amt-a3.example.test
sim_up "$T/sim3.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --lockout 2 --lockout-s 600
for i in 1 2; do
	expect_fail 1 "rejected" "$AMTCA" --home "$HOME_CA" enroll --host "$FQDN" \
	    --address "$ADDR" --user admin --password-file "$WRONG"
done
expect_fail 1 "rejected" enroll "$ADDR" "$FQDN"
ok "control: two wrong runs lock the account (lockout 2 is effective)"
