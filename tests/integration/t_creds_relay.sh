#!/usr/bin/env bash
# Credentials never go where they can be relayed (issue 7, section 1).
# After an enrollment, the device's pinned address is taken over by a fake
# AMT (auth_recorder.py) that answers 401 + Digest on the plain port, and
# records every Authorization header it receives:
#   (a) plain port only (TLS port closed): doctor, amt-info (without --tls)
#       and enroll --force send it nothing; doctor FAILs the TLS checks with
#       a fix and says the credentials were not sent;
#   (b) plain port, and the TLS port serving a certificate from this very CA
#       for the same FQDN, issued by hand (`amtca issue`): it verifies under
#       chain.pem with the hostname, but it is not the leaf the records say
#       is on the device, so doctor, amt-info and enroll send nothing over
#       either port (fail closed, with the fix);
#   the operator's --tls-pin of that certificate is the one explicit way to
#   send to it; a device with no records gets plain HTTP, and amt-info says
#   so on stderr (also the recorder's positive control).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
ADDR=127.0.23.1
FQDN=amt-r1.example.test
REC="$T/auth.log"
sim_up "$T/sim.log" "$ADDR" "$FQDN" --commit-delay-ms 100
enroll "$ADDR" "$FQDN" >/dev/null || fail "enrollment failed"
stop_sim

# start_rec LOGFILE args...: the recorder on $ADDR; sets REC_PID.
start_rec() {
	local out=$1
	shift
	: >"$REC"
	python3 "$(dirname "$0")/auth_recorder.py" "$REC" "$ADDR" 16992 "$@" >"$out" 2>&1 &
	REC_PID=$!
	on_exit "kill $REC_PID 2>/dev/null; wait $REC_PID 2>/dev/null"
	wait_ready "$REC_PID" "$out" "$out" recorder
}
stop_rec() {
	kill "$REC_PID" 2>/dev/null || true
	wait "$REC_PID" 2>/dev/null || true
}
nothing_sent() { # what
	[ ! -s "$REC" ] || fail "$1 sent credentials to the fake device: $(cat "$REC")"
}
verdict() { # check file: its verdict line
	grep -E "^(OK  |FAIL|SKIP) $1:" "$2" || fail "no '$1' line in: $(cat "$2")"
}
amt_info() {
	"$AMTCA" --home "$HOME_CA" amt-info --host "$FQDN" --address "$ADDR" \
	    --user admin --password-file "$PW" "$@"
}

# --- (a) only the plain port answers ------------------------------------
start_rec "$T/rec-a.out"
rc=0
"$AMTCA" --home "$HOME_CA" doctor --host "$FQDN" --address "$ADDR" \
    --user admin --password-file "$PW" >"$T/da.out" 2>"$T/da.err" || rc=$?
[ "$rc" = 1 ] || fail "doctor exit $rc: $(cat "$T/da.out")"
nothing_sent "doctor (TLS port closed)"
verdict "TLS handshake" "$T/da.out" | qgrep "^FAIL .* — fix: " ||
    fail "doctor does not FAIL the TLS handshake with a fix: $(cat "$T/da.out")"
verdict "WS-MAN login" "$T/da.out" | qgrep "^FAIL .*credentials not sent over plain HTTP.* — fix: fix the TLS failure" ||
    fail "doctor login line: $(verdict "WS-MAN login" "$T/da.out")"
ok "(a) doctor: TLS FAIL with the fix, login not attempted over plain HTTP, nothing sent"

expect_fail 1 "" amt_info
nothing_sent "amt-info (no --tls)"
ok "(a) amt-info without --tls: the records say enrolled, so TLS only; nothing sent ($(cat "$T/err"))"

expect_fail 1 "not downgrading to plain HTTP" enroll "$ADDR" "$FQDN" --force
nothing_sent "enroll --force"
ok "(a) enroll --force: refused, nothing sent"
stop_rec

# --- (b) TLS serves a hand-issued certificate of this CA for the FQDN ---
make_csr "$T/hand.csr" rsa:2048 "$FQDN"
"$AMTCA" --home "$HOME_CA" issue --fqdn "$FQDN" --csr "$T/hand.csr" \
    --out "$T/hand.pem" >/dev/null || fail "issue by hand failed"
openssl verify -CAfile "$HOME_CA/root.pem" -untrusted "$HOME_CA/intermediate.pem" \
    -verify_hostname "$FQDN" "$T/hand.pem" >/dev/null || fail "hand-issued certificate does not verify"
start_rec "$T/rec-b.out" 16993 "$T/hand.pem" "$T/hand.csr.key"

rc=0
"$AMTCA" --home "$HOME_CA" doctor --host "$FQDN" --address "$ADDR" \
    --user admin --password-file "$PW" >"$T/db.out" 2>"$T/db.err" || rc=$?
[ "$rc" = 1 ] || fail "doctor exit $rc: $(cat "$T/db.out")"
nothing_sent "doctor (hand-issued leaf on TLS)"
verdict "WS-MAN login" "$T/db.out" | qgrep "^FAIL .*credentials not sent.*records issued.* — fix: " ||
    fail "doctor login line: $(verdict "WS-MAN login" "$T/db.out")"
ok "(b) doctor: the hand-issued leaf verifies but is not the device's: login FAIL, nothing sent"

expect_fail 1 "records issued to the device" amt_info
nothing_sent "amt-info (hand-issued leaf)"
grep -q -- "--tls-pin" "$T/err" || fail "amt-info refusal gives no fix: $(cat "$T/err")"
expect_fail 1 "records issued to the device" amt_info --tls
nothing_sent "amt-info --tls (hand-issued leaf)"
ok "(b) amt-info with and without --tls: fails closed with the fix, nothing sent"

expect_fail 1 "records issued to the device" enroll "$ADDR" "$FQDN"
nothing_sent "enroll (hand-issued leaf)"
expect_fail 1 "records issued to the device" enroll "$ADDR" "$FQDN" --force
nothing_sent "enroll --force (hand-issued leaf)"
ok "(b) enroll, also --force: fails closed, nothing sent"

# The operator's explicit pin is the one way to that leaf (and it is only
# that leaf: the recorder sees the header on the TLS port, never on 16992).
PIN=$(openssl x509 -in "$T/hand.pem" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
amt_info --tls-pin "$PIN" >/dev/null 2>&1 || true
grep -q '^16993 Digest ' "$REC" || fail "--tls-pin did not send over the pinned TLS: $(cat "$REC")"
if grep -q '^16992 ' "$REC"; then fail "credentials went to the plain port: $(cat "$REC")"; fi
ok "--tls-pin SHA256: credentials go over TLS to exactly the pinned leaf"
: >"$REC"

# Positive control: a device with no records is asked over plain HTTP, and
# amt-info says so on stderr (the recorder does see that).
"$AMTCA" --home "$HOME_CA" amt-info --host amt-r9.example.test --address "$ADDR" \
    --user admin --password-file "$PW" >/dev/null 2>"$T/pc.err" || true
grep -q "^amtca: note: using plain HTTP" "$T/pc.err" || fail "no plain-HTTP note: $(cat "$T/pc.err")"
grep -q '^16992 Digest ' "$REC" || fail "the recorder saw nothing from a plain-HTTP login: $(cat "$REC")"
ok "control: an unrecorded device is asked over plain HTTP, said on stderr, and the recorder sees it"
stop_rec
