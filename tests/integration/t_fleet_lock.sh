#!/usr/bin/env bash
# The per-device lock lives in the store (a lease), so every process that
# shares a CA home honours it, and a holder that died does not keep the
# device: a live holder on this host refuses a second run with a one-line
# error naming it; a holder that is gone (this host) or whose lease lapsed
# (any host) is taken over; a finished run leaves no lease behind.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
addr=127.0.60.1
fqdn=amt-lock.example.test
sim_up "$T/sim.log" "$addr" "$fqdn"
db="$HOME_CA/state/state.db"
host=$(hostname | tr ':' '_')

lease() {	# lease OWNER EXPIRES_AT
	sqlite3 "$db" "PRAGMA busy_timeout=5000; INSERT OR REPLACE INTO leases \
	    (name, owner, expires_at) VALUES ('device:$fqdn', '$1', $2);"
}
start_of() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $20 }'; }
now=$(date +%s)

# A live process of this host holds it.
sleep 120 &
holder=$!
on_exit "kill $holder 2>/dev/null"
lease "$host:$holder:$(start_of $holder):00ff" $((now + 3600))
expect_fail 1 "another amtca is working on $fqdn" enroll "$addr" "$fqdn"
grep -q "process $holder on $host" "$T/err" || fail "the error does not name the holder: $(cat "$T/err")"
ok "a live holder's lease refuses enroll, naming the holder"

# The same pid with another start time is a reused pid: the holder is gone.
lease "$host:$holder:1:00ff" $((now + 3600))
enroll "$addr" "$fqdn" >"$T/e1.out" 2>"$T/e1.err" || fail "a reused pid's lease was not taken over: $(cat "$T/e1.err")"
ok "a lease whose pid was reused is taken over"

# The holder process is gone.
kill "$holder"; wait "$holder" 2>/dev/null || true
lease "$host:$holder:$(date +%s):00ff" $((now + 3600))
enroll "$addr" "$fqdn" >/dev/null 2>"$T/e2.err" || fail "a dead holder's lease was not taken over: $(cat "$T/e2.err")"
ok "a dead holder's lease is taken over"

# Another host: only the lease's expiry counts.
lease "other-host.example:4242:1:00ff" $((now + 3600))
expect_fail 1 "another amtca is working on $fqdn" enroll "$addr" "$fqdn"
lease "other-host.example:4242:1:00ff" $((now - 1))
enroll "$addr" "$fqdn" >/dev/null 2>"$T/e3.err" || fail "a lapsed lease was not taken over: $(cat "$T/e3.err")"
ok "another host's lease holds until it lapses"

n=$(sqlite3 "$db" "SELECT count(*) FROM leases")
[ "$n" = 0 ] || fail "a finished run left $n lease(s)"
assert_clean "$addr" "$fqdn"
ok "a finished run releases its lease"
