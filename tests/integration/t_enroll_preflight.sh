#!/usr/bin/env bash
# Pre-flight catches what breaks AMT TLS before anything is changed on the
# device: the FQDN AMT reports differs from --host (the address belongs to
# another machine), the FQDN does not resolve, the FQDN is outside the CA's
# domains.  Each error says what resolved/answered where; AMT's store is
# left untouched; nothing is issued.  --allow-fqdn-mismatch overrides.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
ADDR=127.0.14.1
REAL=amt-p1.example.test
sim_up "$T/sim.log" "$ADDR" "$REAL" --commit-delay-ms 100

issued=$(cert_count "$HOME_CA")

# FQDN mismatch: the device at ADDR is amt-p1, not amt-p2.
expect_fail 1 "says its FQDN is 'amt-p1.example.test', not amt-p2.example.test" \
    enroll "$ADDR" amt-p2.example.test
grep -q "allow-fqdn-mismatch" "$T/err" || fail "mismatch error lacks the override: $(cat "$T/err")"
grep -q "step 1/7 (preflight)" "$T/err" || fail "mismatch not caught in pre-flight: $(cat "$T/err")"
ok "FQDN mismatch caught: $(cat "$T/err")"

# Case differences are not a mismatch (DNS names are case-insensitive).
# (checked below by enrolling AMT-P1.Example.Test)

# Unresolvable FQDN without --address.
expect_fail 1 "amt-nx.example.test does not resolve" "$AMTCA" --home "$HOME_CA" enroll \
    --host amt-nx.example.test --user admin --password-file "$PW"
grep -q -- "--address" "$T/err" || fail "DNS error does not suggest --address: $(cat "$T/err")"
ok "unresolvable FQDN caught: $(cat "$T/err")"

# Outside the CA's domains: refused before talking to AMT.
expect_fail 1 "" enroll "$ADDR" amt-p1.other.test
ok "FQDN outside --domain refused: $(cat "$T/err")"

# Not an IP for --address.
expect_fail 1 "not an IP address" enroll amt-p1.example.test "$REAL"

[ "$(cert_count "$HOME_CA")" = "$issued" ] || fail "a refused pre-flight issued a certificate"
"$AMTCA" --home "$HOME_CA" amt-info --host "$REAL" --address "$ADDR" --user admin \
    --password-file "$PW" --json >"$T/info.json"
python3 - "$T/info.json" <<'EOF' || fail "refused runs changed AMT's store: $(cat "$T/info.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert not [c for c in d["certificates"] if not c.get("read_only")], d["certificates"]
assert not d["keys"], d["keys"]
assert not d["tls"]["remote"]["enabled"]
EOF
ok "nothing issued, AMT's store and TLS settings untouched"

# Case-insensitive match passes.
enroll "$ADDR" AMT-P1.Example.Test >"$T/ok.out" 2>"$T/ok.err" ||
    fail "mixed-case --host refused: $(cat "$T/ok.err")"
s_client_ok "$ADDR" "$REAL"
ok "mixed-case --host matches AMT's FQDN"
stop_sim

# --allow-fqdn-mismatch: enrolls for --host, warns.
ADDR=127.0.14.2
sim_up "$T/sim2.log" "$ADDR" amt-p3.example.test --commit-delay-ms 100
enroll "$ADDR" amt-p4.example.test --allow-fqdn-mismatch >"$T/m.out" 2>"$T/m.err" ||
    fail "--allow-fqdn-mismatch failed: $(cat "$T/m.err")"
grep -q "warning: .*amt-p3.example.test" "$T/m.err" || fail "no mismatch warning: $(cat "$T/m.err")"
s_client_ok "$ADDR" amt-p4.example.test
ok "--allow-fqdn-mismatch enrolls for --host and warns"
stop_sim

# No silent downgrade: a device we enrolled that now answers only on plain
# HTTP (reset, or 16993 blocked by someone) is refused, also with --force
# (credentials never go to an enrolled device in clear); only the explicit
# --device-reset accepts it.
ADDR=127.0.14.3
FQDN=amt-p5.example.test
sim_up "$T/sim3.log" "$ADDR" "$FQDN" --commit-delay-ms 100
enroll "$ADDR" "$FQDN" >/dev/null || fail "enrollment failed"
stop_sim
sim_up "$T/sim4.log" "$ADDR" "$FQDN" --commit-delay-ms 100	# factory state
expect_fail 1 "not downgrading to plain HTTP" enroll "$ADDR" "$FQDN"
grep -q -- "--device-reset" "$T/err" || fail "downgrade refusal does not mention --device-reset: $(cat "$T/err")"
# A failed pre-flight keeps the device's "enrolled" state: still refused.
expect_fail 1 "not downgrading to plain HTTP" enroll "$ADDR" "$FQDN"
expect_fail 1 "not downgrading to plain HTTP" enroll "$ADDR" "$FQDN" --force
enroll "$ADDR" "$FQDN" --device-reset >"$T/f.out" 2>"$T/f.err" || fail "--device-reset after reset: $(cat "$T/f.err")"
s_client_ok "$ADDR" "$FQDN"
assert_clean "$ADDR" "$FQDN"
ok "enrolled device back on plain HTTP only: refused (no downgrade, also with --force), --device-reset re-enrolls"
stop_sim

# AMT 12 and older (no RFC 5746 renegotiation): refused before TLS is turned
# on unless --legacy-tls; with it, enrolled and proven over legacy TLS.
ADDR=127.0.14.4
FQDN=amt-p6.example.test
sim_up "$T/sim5.log" "$ADDR" "$FQDN" --commit-delay-ms 100 --old-tls --amt-version 11.8.50.3425
expect_fail 1 "rerun with --legacy-tls" enroll "$ADDR" "$FQDN"
"$AMTCA" --home "$HOME_CA" amt-info --host "$FQDN" --address "$ADDR" --user admin \
    --password-file "$PW" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert not d["tls"]["remote"]["enabled"]' ||
    fail "refused old-AMT run changed TLS settings"
enroll "$ADDR" "$FQDN" --legacy-tls >"$T/l.out" 2>"$T/l.err" || fail "--legacy-tls: $(cat "$T/l.err")"
expect_fail 1 "need --legacy-tls" enroll "$ADDR" "$FQDN"
enroll "$ADDR" "$FQDN" --legacy-tls >"$T/l2.out" || fail "--legacy-tls rerun failed"
grep -q "already enrolled" "$T/l2.out" || fail "legacy rerun not a no-op: $(cat "$T/l2.out")"
ok "AMT 11.8: refused without --legacy-tls (nothing changed), enrolled with it"
