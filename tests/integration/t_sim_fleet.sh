#!/bin/bash
# amtsim for fleets, from the shell the fleet tests use: the shared key pool
# ($SIM_KEY_POOL) and moving the simulated clock of a running fleet
# (sim_clock_set), seen in every device's HTTP Date header.
. "$(dirname "$0")/lib.sh"

PW="$T/pw"
password_file "$PW"
BASE=127.0.61.1
N=3

# date_ahead ADDR: the device's Date header minus the host clock, seconds.
date_ahead() {
	local d
	d=$(curl -s -D - -o /dev/null -X POST "http://$1:16992/wsman" |
	    tr -d '\r' | sed -n 's/^Date: //p')
	[ -n "$d" ] || fail "no Date header from $1"
	echo $(($(date -u -d "$d" +%s) - $(date -u +%s)))
}

near() { # near VALUE WANT
	[ "$1" -ge $(($2 - 5)) ] && [ "$1" -le $(($2 + 5)) ]
}

sim_key_pool_fill 4
have=$(sed -n 's/^key-pool keys=\([0-9]*\) .*/\1/p' "$T/key-pool.out")
[ "${have:-0}" -ge 4 ] || fail "pool not filled: $(cat "$T/key-pool.out")"
start_sim "$T/sim.log" --devices "$N" --address-base "$BASE" \
    --fqdn-pattern 'sf%02d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL" --clock-offset 86400 --clock-file "$T/clock"
[ -s "$SIM_KEY_POOL" ] || fail "no key pool at $SIM_KEY_POOL"
[ "$(stat -c %a "$SIM_KEY_POOL")" = 600 ] || fail "key pool is not mode 0600"
[ "$(grep -c 'BEGIN PRIVATE KEY' "$SIM_KEY_POOL")" -ge "$N" ] ||
    fail "key pool holds fewer than $N keys"
for i in 0 1 2; do
	a=$(date_ahead "127.0.61.$((1 + i))")
	near "$a" 86400 || fail "device $i is $a s ahead, want 86400"
done
ok "--clock-offset shows in every device's clock"

sim_clock_set "$T/sim.log" "$T/clock" 3000000
for i in 0 1 2; do
	a=$(date_ahead "127.0.61.$((1 + i))")
	near "$a" 3000000 || fail "device $i is $a s ahead after the move, want 3000000"
done
ok "sim_clock_set moves the clock of a running fleet"

sim_clock_set "$T/sim.log" "$T/clock" -7200
a=$(date_ahead 127.0.61.2)
near "$a" -7200 || fail "device 1 is $a s ahead, want -7200"
ok "the clock moves backwards too"

stop_sim
grep -q '^key-pool keys=[0-9]* used=0 ' "$T/sim.log" ||
    fail "no key-pool report: $(tail -n 3 "$T/sim.log")"
ok "amtsim reports its key pool use at exit"
