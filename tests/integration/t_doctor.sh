#!/usr/bin/env bash
# amtca doctor: each check prints "OK   <check>" or "FAIL <check>: ... —
# fix: ...", exit 0 only when all pass.  Covers: before TLS (16993 closed),
# after enrollment (TLS verifies, chain.pem complete and ordered, validity by
# both clocks, identity, the redirection TLS port), the redirection port
# before TLS is on (FAIL with a fix), an unresolvable FQDN, an FQDN mismatch, a chain.pem in the
# wrong order, a foreign certificate on 16993, --json.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup
ADDR=127.0.15.1
FQDN=amt-d1.example.test
sim_up "$T/sim.log" "$ADDR" "$FQDN" --commit-delay-ms 100

doctor() { "$AMTCA" --home "$HOME_CA" doctor "$@"; }
line() { # check-name file: the verdict line of that check
	local x found=""
	while IFS= read -r x; do
		case $x in "OK   $1:"* | "FAIL $1:"* | "SKIP $1:"*) found=$x; break ;; esac
	done <"$2"
	[ -n "$found" ] || fail "no line for check '$1' in: $(cat "$2")"
	printf '%s\n' "$found"
}
want() { # OK|FAIL|SKIP check file
	local l
	l=$(line "$2" "$3")
	case $1 in
	OK) [[ $l == "OK   $2:"* ]] ;;
	FAIL) [[ $l == "FAIL $2:"* ]] && [[ $l == *" — fix: "* ]] ;;
	SKIP) [[ $l == "SKIP $2:"* ]] ;;
	esac || fail "expected $1 for '$2', got: $l"
}

# Format: every line is a verdict.
rc=0
doctor --host "$FQDN" --address "$ADDR" >"$T/d0.out" 2>"$T/d0.err" || rc=$?
[ "$rc" = 1 ] || fail "doctor before TLS: exit $rc"
if grep -vE '^(OK   |FAIL |SKIP )[^:]+: ' "$T/d0.out"; then fail "lines not in the OK/FAIL/SKIP format"; fi
want FAIL "DNS" "$T/d0.out"
want FAIL "port 16993" "$T/d0.out"
want FAIL "TLS handshake" "$T/d0.out"
want OK "port 16992" "$T/d0.out"
want OK "chain.pem" "$T/d0.out"
want SKIP "WS-MAN login" "$T/d0.out"
want FAIL "redirection TLS" "$T/d0.out"
line "redirection TLS" "$T/d0.out" | qgrep "16995" || fail "redirection line lacks the port"
grep -q '^amtca: doctor: ' "$T/d0.err" || fail "no one-line summary on stderr: $(cat "$T/d0.err")"
ok "before enrollment: 16993 and TLS FAIL with fixes, chain.pem OK"

# FQDN mismatch before TLS: AMT itself says who it is.
rc=0
doctor --host amt-d9.example.test --address "$ADDR" --user admin --password-file "$PW" >"$T/dm.out" 2>&1 || rc=$?
want FAIL "AMT identity" "$T/dm.out"
line "AMT identity" "$T/dm.out" | qgrep "'amt-d1.example.test', not amt-d9.example.test" ||
    fail "identity line does not say what AMT reports: $(line "AMT identity" "$T/dm.out")"
want OK "WS-MAN login" "$T/dm.out"
ok "FQDN mismatch (plain device): FAIL AMT identity, says what AMT reports"

enroll "$ADDR" "$FQDN" >/dev/null || fail "enroll failed"

rc=0
doctor --host "$FQDN" --address "$ADDR" --user admin --password-file "$PW" >"$T/d1.out" 2>&1 || rc=$?
want OK "port 16993" "$T/d1.out"
want OK "TLS handshake" "$T/d1.out"
want OK "port 16992" "$T/d1.out"
want OK "certificate validity (our clock)" "$T/d1.out"
want OK "certificate validity (AMT clock)" "$T/d1.out"
want OK "chain.pem" "$T/d1.out"
want OK "WS-MAN login" "$T/d1.out"
want OK "AMT identity" "$T/d1.out"
want OK "redirection TLS" "$T/d1.out"
# example.test does not resolve outside a namespace (t_dns_netns.sh covers
# resolution, and the all-OK exit 0):
want FAIL "DNS" "$T/d1.out"
[ "$rc" = 1 ] || fail "doctor exit $rc with failing checks"
ok "after enrollment: TLS, chain, validity, login, identity, redirection OK; DNS FAIL with a fix"

# The JSON form of the same verdicts.
doctor --host "$FQDN" --address "$ADDR" --json >"$T/d.json" 2>/dev/null || true
python3 - "$T/d.json" <<'EOF' || fail "doctor --json: $(cat "$T/d.json")"
import json, sys
d = json.load(open(sys.argv[1]))
res = {c["check"]: c["result"] for c in d["checks"]}
assert res["TLS handshake"] == "ok" and res["redirection TLS"] == "ok", res
assert res["DNS"] == "fail", res
assert d["ok"] is False
assert all(c["fix"] for c in d["checks"] if c["result"] == "fail")
EOF
ok "--json: one document with per-check results and fixes"

# Unresolvable, no --address.
expect_fail 1 "does not resolve" doctor --host amt-nx.example.test
want FAIL "DNS" "$T/out"
ok "unresolvable FQDN: FAIL DNS"

# FQDN mismatch after enrollment: TLS fails the hostname check and says
# which name the served certificate carries; credentials are not sent over
# a TLS session that does not verify (16992 is closed).
rc=0
doctor --host amt-d9.example.test --address "$ADDR" --user admin --password-file "$PW" >"$T/d2.out" 2>&1 || rc=$?
want FAIL "TLS handshake" "$T/d2.out"
line "TLS handshake" "$T/d2.out" | qgrep "hostname mismatch.*CN=amt-d1.example.test" ||
    fail "TLS line does not say the served name: $(line "TLS handshake" "$T/d2.out")"
want FAIL "WS-MAN login" "$T/d2.out"
ok "FQDN mismatch (enrolled device): FAIL TLS handshake naming the served certificate"

# chain.pem in the wrong order (root first) in a copy of the home.
cp -a "$HOME_CA" "$T/home2"
python3 - "$T/home2/chain.pem" <<'EOF'
import re, sys
p = sys.argv[1]
certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", open(p).read(), re.S)
assert len(certs) == 2
open(p, "w").write("".join(reversed(certs)))
EOF
"$AMTCA" --home "$T/home2" doctor --host "$FQDN" --address "$ADDR" >"$T/d3.out" 2>&1 || true
want FAIL "chain.pem" "$T/d3.out"
# Incomplete: intermediate only.
head -n "$(grep -n 'END CERTIFICATE' "$HOME_CA/chain.pem" | head -n 1 | cut -d: -f1)" "$HOME_CA/chain.pem" >"$T/home2/chain.pem"
"$AMTCA" --home "$T/home2" doctor --host "$FQDN" --address "$ADDR" >"$T/d4.out" 2>&1 || true
want FAIL "chain.pem" "$T/d4.out"
ok "chain.pem reversed or incomplete: FAIL chain.pem"
stop_sim

# A foreign certificate on 16993.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/x.key" -out "$T/x.pem" \
    -subj "/CN=amt-d2.example.test" -addext "subjectAltName=DNS:amt-d2.example.test" -days 30 2>/dev/null
sim_up "$T/sim2.log" 127.0.15.2 amt-d2.example.test --commit-delay-ms 100 \
    --serve-cert "$T/x.pem" --serve-key "$T/x.key"
enroll 127.0.15.2 amt-d2.example.test >/dev/null 2>&1 || true	# fails closed
doctor --host amt-d2.example.test --address 127.0.15.2 >"$T/d5.out" 2>&1 || true
want FAIL "TLS handshake" "$T/d5.out"
line "TLS handshake" "$T/d5.out" | qgrep "served: subject CN=amt-d2.example.test" ||
    fail "TLS line does not say what is served: $(line "TLS handshake" "$T/d5.out")"
ok "foreign certificate on 16993: FAIL TLS handshake, says what is served"
