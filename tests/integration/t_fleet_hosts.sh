#!/usr/bin/env bash
# amtca fleet's front: a bad hosts file (missing column, duplicate FQDN,
# unreadable password file) is refused with an error naming the line
# before any device is contacted or recorded; per-row credentials; an
# authentication failure is never retried (amtsim --lockout 2 would lock
# the account at the second try), puts the device in auth_failed, and a
# later run skips it until its password file changes; on a terminal (a
# pseudo-terminal from script(1)) the progress bar shows done, failed, in
# flight and ETA.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

ca_setup
N=6
sim_key_pool_fill 16
start_sim "$T/sim.log" --devices $N --address-base 127.0.66.1 \
    --fqdn-pattern 'fh%03d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL" --latency-ms 30 --commit-delay-ms 200 \
    --lockout 2 --lockout-s 600
db="$HOME_CA/state/state.db"
nothing_ran() {
	[ "$(sqlite3 "$db" "SELECT (SELECT count(*) FROM devices) + (SELECT count(*) FROM jobs)")" = 0 ] ||
	    fail "$1: something ran before the hosts file was valid"
}

printf 'fqdn,address,user\nfh000.example.test,127.0.66.1,admin\n' >"$T/bad1.csv"
expect_fail 1 "password_file" fleet --hosts "$T/bad1.csv"
nothing_ran "missing column"
hosts_csv "$T/bad2.csv" 'fh%03d.example.test' 127.0.66.1 3
echo "FH001.example.test,127.0.66.9,," >>"$T/bad2.csv"
expect_fail 1 "line 5" fleet --hosts "$T/bad2.csv"
grep -qi "fh001.example.test is already on line 3" "$T/err" || fail "duplicate FQDN not named: $(cat "$T/err")"
nothing_ran "duplicate FQDN"
hosts_csv "$T/bad3.csv" 'fh%03d.example.test' 127.0.66.1 3
echo "fh003.example.test,127.0.66.4,admin,$T/no-such-password" >>"$T/bad3.csv"
expect_fail 1 "line 5" fleet --hosts "$T/bad3.csv"
nothing_ran "unreadable password file"
# "credential:NAME" (a record's sealed-credential reference) is not a file name.
hosts_csv "$T/bad4.csv" 'fh%03d.example.test' 127.0.66.1 3
echo "fh003.example.test,127.0.66.4,admin,credential:lab" >>"$T/bad4.csv"
expect_fail 1 "sealed credential" fleet --hosts "$T/bad4.csv"
grep -q "line 5" "$T/err" || fail "sealed credential: line not named: $(cat "$T/err")"
if grep -q "cannot open" "$T/err"; then fail "credential:lab opened as a file: $(cat "$T/err")"; fi
nothing_ran "sealed credential in password_file"
ok "missing column, duplicate FQDN, unreadable password file: refused naming the line, nothing ran"

# fh005 has its own (wrong) password in its row.
password_file "$T/wrong-pw" "not-the-password"
hosts_csv "$T/hosts.csv" 'fh%03d.example.test' 127.0.66.1 5
echo "fh005.example.test,127.0.66.6,admin,$T/wrong-pw" >>"$T/hosts.csv"
rc=0
script -q -e -c "'$AMTCA' --home '$HOME_CA' fleet --hosts '$T/hosts.csv' --user admin --password-file '$PW' --concurrency 2" \
    "$T/tty.log" >/dev/null 2>&1 </dev/null || rc=$?
[ "$rc" = 1 ] || fail "exit $rc with a failed device, want 1: $(tail -c 600 "$T/tty.log")"
tr '\r' '\n' <"$T/tty.log" >"$T/tty.lines"
grep -Eq '[0-9]+/6 done, [0-9]+ failed, [0-9]+ in flight, [0-9.]+/s, ETA ' "$T/tty.lines" ||
    fail "no progress bar on the terminal: $(head -c 600 "$T/tty.lines")"
grep -Eq '[0-9]+/6 done, [0-9]+ failed, [1-9][0-9]* in flight, .*ETA [0-9]+[smh]' "$T/tty.lines" ||
    fail "the bar never showed devices in flight with an ETA: $(head -c 600 "$T/tty.lines")"
grep -q '6/6 done, 1 failed, 0 in flight' "$T/tty.lines" || fail "final bar wrong: $(tail -n 15 "$T/tty.lines")"
grep -q '^ *fh005.example.test: .*rejected user' "$T/tty.lines" || fail "summary does not list fh005's error: $(tail -n 15 "$T/tty.lines")"
grep -q "Adm1n\|not-the-password" "$T/tty.log" && fail "a password was printed"
ok "progress bar on a terminal: done, failed, in flight, rate, ETA; summary lists the failed device"

[ "$(sqlite3 "$db" "SELECT state FROM devices WHERE fqdn = 'fh005.example.test'")" = auth_failed ] ||
    fail "fh005 is not auth_failed"
[ "$(sqlite3 "$db" "SELECT cred_ref FROM devices WHERE fqdn = 'fh005.example.test'")" = "$T/wrong-pw" ] ||
    fail "the device record does not name its credential's file"
sqlite3 "$db" "SELECT * FROM devices" | qgrep "not-the-password" && fail "the password is in the store"
rc=0
fleet --hosts "$T/hosts.csv" --json >"$T/f2.json" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "second run exit $rc, want 1"
python3 - "$T/f2.json" <<'PY' || fail "auth_failed device not skipped"
import json, sys
d = {x["fqdn"]: x for x in json.load(open(sys.argv[1]))["devices"]}
x = d["fh005.example.test"]
assert x["result"] == "failed" and "until that file changes" in x["error"], x
assert all(d[f]["result"] == "unchanged" for f in d if f != "fh005.example.test"), d
PY
ok "auth_failed: skipped by the next run, the credential and its file recorded, never the password"

# The operator fixes the password file: the next run tries it, and AMT
# did not lock the account (one failed attempt in all, under --lockout 2).
cp "$PW" "$T/wrong-pw"
fleet --hosts "$T/hosts.csv" --json >"$T/f3.json" 2>"$T/f3.err" ||
    fail "the fixed credential did not enroll fh005 (AMT account locked by retries?): $(cat "$T/f3.err"; cat "$T/f3.json")"
[ "$(sqlite3 "$db" "SELECT state FROM devices WHERE fqdn = 'fh005.example.test'")" = enrolled ] ||
    fail "fh005 not enrolled after its password file changed"
assert_clean 127.0.66.6 fh005.example.test
ok "a changed password file is tried again; one authentication failure in all (no lockout)"
