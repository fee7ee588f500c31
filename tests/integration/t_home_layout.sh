#!/usr/bin/env bash
# The home's two stores (docs/architecture.md, "The home on disk"): init
# makes keys/ (the CA's records and the token) and state/ (devices, jobs,
# leases), both 0700; an enrollment puts its certificate in keys/ca.db and
# its device in state/state.db, never the other way round; the front end
# process opens nothing under keys/ (only its signer does); a home in the
# old layout (amtca.db and softhsm/ at the top) keeps working for issue,
# enroll through the signer, list and devices, with one file for both.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
H=$HOME_CA
for d in keys state; do
	[ "$(stat -c %a "$H/$d")" = 700 ] || fail "$d/ is not 0700"
done
[ -e "$H/amtca.db" ] && fail "a new home has the old amtca.db"
[ -d "$H/keys/softhsm" ] || fail "the token is not under keys/"
ok "init makes keys/ and state/, 0700"

sim_up "$T/sim.log" 127.0.142.1 hl1.example.test --latency-ms 20
# Only the front end is traced (no -f): its signer child may open keys/.
# (LeakSanitizer cannot run under ptrace: off for this one command.)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -qq -o "$T/fe.trace" -e trace=open,openat,stat,lstat,newfstatat,access \
    "$AMTCA" --home "$H" enroll --host hl1.example.test --address 127.0.142.1 \
    --user admin --password-file "$PW" >"$T/e.out" 2>"$T/e.err" ||
    fail "enroll failed: $(cat "$T/e.err")"
grep -q "$H/keys" "$T/fe.trace" && fail "the front end touched keys/: $(grep "$H/keys" "$T/fe.trace" | head -3)"
grep -q "$H/state/state.db" "$T/fe.trace" || fail "the trace did not see the state store (strace broken?)"
q() { sqlite3 "$1" "$2"; }
[ "$(q "$H/keys/ca.db" 'SELECT count(*) FROM certificates')" = 1 ] || fail "keys/ca.db lacks the certificate"
[ "$(q "$H/keys/ca.db" 'SELECT count(*) FROM devices')" = 0 ] || fail "keys/ca.db holds a device"
[ "$(q "$H/state/state.db" 'SELECT count(*) FROM devices')" = 1 ] || fail "state/state.db lacks the device"
[ "$(q "$H/state/state.db" 'SELECT count(*) FROM certificates')" = 0 ] || fail "state/state.db holds a certificate"
ok "certificates in keys/ca.db, devices in state/state.db; the front end never opens keys/"
stop_sim

# An old-layout home: what init made before the split.
O="$T/old"
new_ca "$O" --domain example.test
mv "$O/keys/softhsm" "$O/softhsm"
mv "$O/keys/ca.db" "$O/amtca.db"
rm -rf "$O/keys" "$O/state"
sed -i 's|keys/softhsm/|softhsm/|g' "$O/amtca.conf"
sed -i "s|$O/keys/softhsm/tokens|$O/softhsm/tokens|" "$O/softhsm/softhsm2.conf"
make_csr "$T/o.csr" ec:P-256
"$AMTCA" --home "$O" issue --fqdn web.example.test --csr "$T/o.csr" --out "$T/o.pem" >/dev/null 2>"$T/o.err" ||
    fail "issue in an old home: $(cat "$T/o.err")"
sim_up "$T/sim2.log" 127.0.142.2 hl2.example.test --latency-ms 20
"$AMTCA" --home "$O" enroll --host hl2.example.test --address 127.0.142.2 \
    --user admin --password-file "$PW" >"$T/o2.out" 2>"$T/o2.err" ||
    fail "enroll in an old home: $(cat "$T/o2.err")"
[ "$(cert_count "$O")" = 2 ] || fail "old home: list does not show both certificates"
"$AMTCA" --home "$O" devices --json | python3 -c '
import json, sys
d = json.load(sys.stdin)["devices"]
assert [x["fqdn"] for x in d] == ["hl2.example.test"] and d[0]["not_after"], d
' || fail "old home: devices does not show the enrolled device"
[ "$(q "$O/amtca.db" 'SELECT count(*) FROM devices')" = 1 ] || fail "old home: the device is not in amtca.db"
[ -e "$O/state" ] || [ -e "$O/keys" ] && fail "the old home was changed to the new layout"
ok "an old-layout home keeps working with one amtca.db"
stop_sim
