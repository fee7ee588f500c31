#!/usr/bin/env bash
# The TLS port serves a certificate other than the one enroll installed
# (amtsim --serve-cert/--serve-key): enrollment must fail closed and say so,
# for (a) a certificate from another CA, (b) a leaf from this CA for another
# name, (c) a leaf from this CA for this very name that is not the one just
# installed.  A rerun must also refuse (16992 is closed by then: no
# downgrade to plain HTTP).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

ca_setup

# (a) another CA
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/evil-ca.key" -out "$T/evil-ca.pem" \
    -subj "/CN=Evil CA" -days 30 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$T/evil.key" -out "$T/evil.csr" \
    -subj "/CN=amt-w1.example.test" 2>/dev/null
printf 'subjectAltName=DNS:amt-w1.example.test\nextendedKeyUsage=serverAuth\n' >"$T/ext"
openssl x509 -req -in "$T/evil.csr" -CA "$T/evil-ca.pem" -CAkey "$T/evil-ca.key" \
    -CAcreateserial -days 30 -extfile "$T/ext" -out "$T/evil.pem" 2>/dev/null

# (b) this CA, another name
make_csr "$T/other.csr" rsa:2048 amt-other.example.test
"$AMTCA" --home "$HOME_CA" issue --fqdn amt-other.example.test --csr "$T/other.csr" \
    --out "$T/other.pem" >/dev/null

# (c) this CA, this name, but not the installed leaf
make_csr "$T/same.csr" rsa:2048 amt-w3.example.test
"$AMTCA" --home "$HOME_CA" issue --fqdn amt-w3.example.test --csr "$T/same.csr" \
    --out "$T/same.pem" >/dev/null

check() { # n cert key why
	local n=$1 cert=$2 key=$3 why=$4 addr="127.0.13.$1" fqdn="amt-w$1.example.test"
	sim_up "$T/sim$n.log" "$addr" "$fqdn" --commit-delay-ms 100 \
	    --serve-cert "$cert" --serve-key "$key"
	expect_fail 1 "fail" enroll "$addr" "$fqdn" --tls-wait-ms 10000
	grep -qi "closed" "$T/err" || fail "($why) error does not say it failed closed: $(cat "$T/err")"
	ok "($why) enrollment fails closed: $(cat "$T/err")"
	expect_fail 1 "does not verify\|does not serve\|still serves" enroll "$addr" "$fqdn" --tls-wait-ms 10000
	ok "($why) rerun refuses too: $(cat "$T/err")"
	stop_sim
}
check 1 "$T/evil.pem" "$T/evil.key" "another CA"
check 2 "$T/other.pem" "$T/other.csr.key" "this CA, another name"
check 3 "$T/same.pem" "$T/same.csr.key" "this CA, same name, not the installed leaf"
