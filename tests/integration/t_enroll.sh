#!/usr/bin/env bash
# amtca enroll, the happy path and its idempotence:
#  - a fresh device ends on TLS with a leaf from this CA that openssl
#    verifies (chain + hostname), 16992 closed, the leaf recorded for the
#    device, the output naming chain.pem;
#  - a second run is a no-op: no new certificate in the CA, no new object
#    in AMT's store;
#  - --force renews: new serial served, old leaf and key gone from AMT;
#  - --accept-non-secure keeps 16992 open.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ADDR=127.0.9.1
FQDN=amt-e1.example.test
ca_setup
sim_up "$T/sim.log" "$ADDR" "$FQDN" --commit-delay-ms 200

# --- first enrollment ---------------------------------------------------
enroll "$ADDR" "$FQDN" --json >"$T/e1.json" 2>"$T/e1.err" ||
    fail "enroll failed: $(cat "$T/e1.err")"
[ "$(json_get "$T/e1.json" status)" = enrolled ] || fail "status: $(cat "$T/e1.json")"
[ "$(json_get "$T/e1.json" chain_pem)" = "$(cd "$HOME_CA" && pwd -P)/chain.pem" ] ||
    fail "chain_pem not the home's chain.pem: $(cat "$T/e1.json")"
serial1=$(json_get "$T/e1.json" serial)
[ -n "$serial1" ] || fail "no serial in $(cat "$T/e1.json")"
python3 - "$T/e1.json" <<'EOF' || fail "JSON document incomplete: $(cat "$T/e1.json")"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("host", "address", "amt_version", "serial", "not_after", "chain_pem", "steps", "status"):
    assert d.get(k) not in (None, ""), k
assert d["steps"] == ["preflight", "time", "chain", "leaf", "bind", "verify", "cleanup"], d["steps"]
assert d["host"] == "amt-e1.example.test" and d["address"] == "127.0.9.1"
EOF
ok "enrolled, serial $serial1"

s_client_ok "$ADDR" "$FQDN"
[ "$(served_serial "$ADDR" "$FQDN")" = "$serial1" ] || fail "served serial differs from issued"
ok "openssl s_client verifies chain and hostname; serves the issued leaf"

if timeout 2 bash -c "exec 3<>/dev/tcp/$ADDR/16992" 2>/dev/null; then
	fail "16992 still open after enrollment without --accept-non-secure"
fi
ok "16992 closed"

"$AMTCA" --home "$HOME_CA" show "$serial1" --json >"$T/show.json" ||
    fail "serial $serial1 not in the CA store"
grep -q "$FQDN" "$T/show.json" || fail "store record lacks the FQDN: $(cat "$T/show.json")"
assert_clean "$ADDR" "$FQDN"
ok "leaf recorded; AMT store is root+intermediate+leaf, one key"

# --- rerun: no-op ----------------------------------------------------------
n_before=$(cert_count "$HOME_CA")
st_before=$(store_state "$ADDR" "$FQDN")
enroll "$ADDR" "$FQDN" >"$T/e2.out" 2>"$T/e2.err" || fail "rerun failed: $(cat "$T/e2.err")"
grep -q "already enrolled" "$T/e2.out" || fail "rerun did not say already enrolled: $(cat "$T/e2.out")"
grep -q "$(cd "$HOME_CA" && pwd -P)/chain.pem" "$T/e2.out" || fail "summary lacks chain.pem path: $(cat "$T/e2.out")"
[ "$(wc -l <"$T/e2.out")" = 1 ] || fail "non-TTY output is not one summary line: $(cat "$T/e2.out")"
[ "$(cert_count "$HOME_CA")" = "$n_before" ] || fail "rerun issued a certificate"
[ "$(store_state "$ADDR" "$FQDN")" = "$st_before" ] || fail "rerun changed AMT's store"
[ "$(served_serial "$ADDR" "$FQDN")" = "$serial1" ] || fail "rerun changed the served leaf"
ok "rerun is a no-op (no new certificate, AMT store unchanged)"

# --- --force renews and removes the old leaf and key ----------------------
old_leaf_handle=$("$AMTCA" --home "$HOME_CA" amt-info --tls --host "$FQDN" --address "$ADDR" \
    --user admin --password-file "$PW" --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print([c["handle"] for c in d["certificates"] if c["bound"]][0])')
enroll "$ADDR" "$FQDN" --force --json >"$T/e3.json" 2>"$T/e3.err" ||
    fail "--force failed: $(cat "$T/e3.err")"
[ "$(json_get "$T/e3.json" status)" = renewed ] || fail "status: $(cat "$T/e3.json")"
serial2=$(json_get "$T/e3.json" serial)
[ "$serial2" != "$serial1" ] || fail "--force kept the serial"
[ "$(served_serial "$ADDR" "$FQDN")" = "$serial2" ] || fail "new leaf not served"
s_client_ok "$ADDR" "$FQDN"
assert_clean "$ADDR" "$FQDN"
"$AMTCA" --home "$HOME_CA" amt-info --tls --host "$FQDN" --address "$ADDR" \
    --user admin --password-file "$PW" --json >"$T/info.json"
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if any(c["handle"]==sys.argv[2] for c in d["certificates"]) else 1)' \
    "$T/info.json" "$old_leaf_handle"; then
	fail "old leaf $old_leaf_handle still in AMT after --force"
fi
[ "$(json_get "$T/e3.json" removed_certificates)" = 1 ] &&
    [ "$(json_get "$T/e3.json" removed_keys)" = 1 ] ||
    fail "--force did not report removing one cert and one key: $(cat "$T/e3.json")"
ok "--force renews ($serial1 -> $serial2), old leaf and key removed"

# --- inside the renewal window: renewed without --force --------------------
enroll "$ADDR" "$FQDN" --renew-days 500 --json >"$T/e7.json" 2>"$T/e7.err" ||
    fail "--renew-days 500 failed: $(cat "$T/e7.err")"
[ "$(json_get "$T/e7.json" status)" = renewed ] || fail "leaf inside the window not renewed: $(cat "$T/e7.json")"
serial3=$(json_get "$T/e7.json" serial)
[ "$serial3" != "$serial2" ] && [ "$(served_serial "$ADDR" "$FQDN")" = "$serial3" ] ||
    fail "renewal inside the window did not install a new leaf"
assert_clean "$ADDR" "$FQDN"
enroll "$ADDR" "$FQDN" --json >"$T/e8.json" || fail "rerun after renewal failed"
[ "$(json_get "$T/e8.json" status)" = "already enrolled" ] || fail "not a no-op after renewal: $(cat "$T/e8.json")"
ok "a leaf inside the renewal window (--renew-days 500) is renewed; the next run is a no-op"

# --- --accept-non-secure keeps 16992 ---------------------------------------
ADDR2=127.0.9.2
FQDN2=amt-e2.example.test
sim_up "$T/sim2.log" "$ADDR2" "$FQDN2" --commit-delay-ms 200
enroll "$ADDR2" "$FQDN2" --accept-non-secure --json >"$T/e4.json" 2>"$T/e4.err" ||
    fail "enroll --accept-non-secure failed: $(cat "$T/e4.err")"
[ "$(json_get "$T/e4.json" non_secure_port_open)" = True ] || fail "JSON: $(cat "$T/e4.json")"
timeout 2 bash -c "exec 3<>/dev/tcp/$ADDR2/16992" 2>/dev/null ||
    fail "16992 closed despite --accept-non-secure"
s_client_ok "$ADDR2" "$FQDN2"
enroll "$ADDR2" "$FQDN2" --accept-non-secure >"$T/e5.out" || fail "rerun failed"
grep -q "already enrolled" "$T/e5.out" || fail "rerun with --accept-non-secure not a no-op: $(cat "$T/e5.out")"
# Dropping the option closes 16992 without a new certificate.
n_before=$(cert_count "$HOME_CA")
enroll "$ADDR2" "$FQDN2" >"$T/e6.out" 2>"$T/e6.err" || fail "closing 16992 failed: $(cat "$T/e6.err")"
[ "$(cert_count "$HOME_CA")" = "$n_before" ] || fail "closing 16992 issued a certificate"
if timeout 2 bash -c "exec 3<>/dev/tcp/$ADDR2/16992" 2>/dev/null; then
	fail "16992 still open after rerun without --accept-non-secure"
fi
assert_clean "$ADDR2" "$FQDN2"
ok "--accept-non-secure keeps 16992; rerun without it closes 16992, same leaf"

# --- AMT's clock 10 days behind: step 2 sets it, or TLS would stay down ----
ADDR3=127.0.9.3
FQDN3=amt-e3.example.test
sim_up "$T/sim3.log" "$ADDR3" "$FQDN3" --commit-delay-ms 100 --clock-skew -864000
enroll "$ADDR3" "$FQDN3" --tls-wait-ms 10000 >"$T/e9.out" 2>"$T/e9.err" ||
    fail "enroll with AMT's clock 10 days behind: $(cat "$T/e9.err")"
s_client_ok "$ADDR3" "$FQDN3"
ok "AMT clock 10 days behind: synchronised, TLS up"

# --- CSME 16.1+ NonSecureConnectionsSupported=false -------------------------
ADDR4=127.0.9.4
FQDN4=amt-e4.example.test
sim_up "$T/sim4.log" "$ADDR4" "$FQDN4" --commit-delay-ms 100 --non-secure-unsupported
enroll "$ADDR4" "$FQDN4" --accept-non-secure >"$T/e10.out" 2>"$T/e10.err" ||
    fail "--accept-non-secure on 16.1+ failed: $(cat "$T/e10.err")"
grep -q "warning: this firmware does not support non-secure" "$T/e10.err" ||
    fail "no warning that 16992 closes anyway: $(cat "$T/e10.err")"
enroll "$ADDR4" "$FQDN4" --accept-non-secure >"$T/e11.out" || fail "rerun failed"
grep -q "already enrolled" "$T/e11.out" || fail "rerun not a no-op: $(cat "$T/e11.out")"
ok "NonSecureConnectionsSupported=false: AcceptNonSecure never sent true, warned, rerun no-op"

# --- usage errors ----------------------------------------------------------
expect_fail 2 "required" "$AMTCA" --home "$HOME_CA" enroll --host "$FQDN"
expect_fail 2 "renew-days" "$AMTCA" --home "$HOME_CA" enroll --host "$FQDN" \
    --user admin --password-file "$PW" --renew-days x
ok "usage errors exit 2"
