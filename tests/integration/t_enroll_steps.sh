#!/usr/bin/env bash
# The step table (enroll_steps[] in enroll/enroll.h) as users see it: on a
# terminal, `amtca enroll` prints one "[n/7] title ... result" line per
# step, in table order:
#  - a fresh device: all seven steps, each ok (chain may say skipped);
#  - a rerun on the enrolled device: pre-flight ok, steps 2-5 skipped (not
#    needed), verify ok (proven in pre-flight), cleanup ok;
#  - --json names the same steps, in the same order, as the table.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ADDR=127.0.31.1
FQDN=amt-steps.example.test
ca_setup
sim_up "$T/sim.log" "$ADDR" "$FQDN"

# Run enroll under a pseudo-terminal (stdout a TTY: progress lines on).
tty_enroll() {
	local cmd
	cmd=$(printf '%q ' "$AMTCA" --home "$HOME_CA" enroll --host "$FQDN" \
	    --address "$ADDR" --user admin --password-file "$PW")
	script -qec "$cmd" /dev/null | tr -d '\r'
}

titles=(
	"pre-flight: authenticate, FQDN, DNS, transport"
	"setting AMT's clock"
	"installing root and intermediate"
	"key pair in AMT, CSR, certificate"
	"binding the certificate, TLS on, commit"
	"proving TLS on the TLS port"
	"removing old certificates and keys"
)

tty_enroll >"$T/e1.out" 2>&1 || fail "enroll on a TTY failed: $(cat "$T/e1.out")"
[ "$(grep -c '^\[[1-7]/7\] ' "$T/e1.out")" = 7 ] ||
    fail "not seven step lines: $(cat "$T/e1.out")"
for i in 1 2 3 4 5 6 7; do
	line=$(grep "^\[$i/7\] " "$T/e1.out")
	case $line in
	"[$i/7] ${titles[i-1]} ... ok"*) ;;
	*) fail "step $i line: '$line'" ;;
	esac
done
# Table order: the step lines appear 1..7.
[ "$(sed -n 's|^\[\([1-7]\)/7\] .*|\1|p' "$T/e1.out" | tr -d '\n')" = 1234567 ] ||
    fail "steps out of order: $(cat "$T/e1.out")"
grep -q "$FQDN: enrolled" "$T/e1.out" || fail "no summary: $(cat "$T/e1.out")"
ok "fresh device: seven step lines in table order, each ok"

tty_enroll >"$T/e2.out" 2>&1 || fail "rerun on a TTY failed: $(cat "$T/e2.out")"
[ "$(grep -c '^\[[1-7]/7\] ' "$T/e2.out")" = 7 ] ||
    fail "rerun: not seven step lines: $(cat "$T/e2.out")"
grep -q "^\[1/7\] ${titles[0]} ... ok (.*already enrolled)" "$T/e2.out" ||
    fail "rerun pre-flight: $(cat "$T/e2.out")"
for i in 2 3 4 5; do
	grep -qxF "[$i/7] ${titles[i-1]} ... skipped (not needed)" "$T/e2.out" ||
	    fail "rerun step $i not skipped: $(cat "$T/e2.out")"
done
grep -qF "[6/7] ${titles[5]} ... ok (served leaf verified under our chain" \
    "$T/e2.out" || fail "rerun verify: $(cat "$T/e2.out")"
grep -q "^\[7/7\] ${titles[6]} ... ok" "$T/e2.out" ||
    fail "rerun cleanup: $(cat "$T/e2.out")"
grep -q "$FQDN: already enrolled" "$T/e2.out" || fail "rerun summary: $(cat "$T/e2.out")"
ok "enrolled device: pre-flight ok, 2-5 skipped, verify ok from pre-flight, cleanup ok"

enroll "$ADDR" "$FQDN" --force --json >"$T/e3.json" 2>"$T/e3.err" ||
    fail "--force: $(cat "$T/e3.err")"
python3 - "$T/e3.json" <<'PY' || fail "JSON steps: $(cat "$T/e3.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["steps"] == ["preflight", "time", "chain", "leaf", "bind", "verify", "cleanup"], d["steps"]
assert d["status"] == "renewed", d["status"]
PY
ok "--json steps are the table's names, in order"
