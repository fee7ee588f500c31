#!/usr/bin/env bash
# EST (RFC 7030) on amtca serve, with curl and openssl as the client:
# cacerts is the chain; simpleenroll with Basic and with a client
# certificate issues an EST certificate (serverAuth+clientAuth) for the
# CSR's name; simplereenroll keeps the name and moves the client to the
# new certificate; csrattrs parses.  Refused: no credentials 401 (with a
# Basic challenge), wrong password 401, a name outside the allow list 403,
# the label boundary (badexample.test vs example.test) 403, an AMT device's
# name 403, a CSR with one foreign name among others 403 (and one with two
# allowed names 400: one name per certificate), an oversized body 413, bad
# base64 400, a wrong content type 415; each refusal leaves the
# certificate count unchanged.
# Addresses: 127.0.83.x (amtsim .1, serve .200).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

for c in curl openssl sqlite3; do
	command -v $c >/dev/null || fail "$c is missing"
done

# A CA over two domains, so that badexample.test is within its policy and
# only the client's allow list (example.test) can refuse it.
HOME_CA="$T/home"
PW="$T/amt-password"
new_ca "$HOME_CA" --domain example.test --domain badexample.test
password_file "$PW" "Adm1n-$RANDOM-pw"
A=127.0.83.200
SVC=svc.example.test
DEV=amt-est.example.test
PORT=8443

# An AMT device in the inventory, enrolled against amtsim.
sim_up "$T/sim.log" 127.0.83.1 "$DEV"
enroll 127.0.83.1 "$DEV" >"$T/enroll.out" 2>"$T/enroll.err" || fail "enroll: $(cat "$T/enroll.err")"

# Clients: est1 by password; gw.example.test by certificate.
password_file "$T/pw" "est-$RANDOM-secret"
"$AMTCA" --home "$HOME_CA" est-client add est1 --allow example.test \
    --password-file "$T/pw" >/dev/null
make_csr "$T/gw.csr" ec:prime256v1 gw.example.test
"$AMTCA" --home "$HOME_CA" est-client add gw.example.test --allow gw.example.test \
    --allow web.example.test --csr "$T/gw.csr" --out "$T/gw.pem" >/dev/null

"$AMTCA" --home "$HOME_CA" serve --listen "$A:$PORT" --name "$SVC" --status-listen "$A:9193" \
    --reconcile-every 0 >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
on_exit "kill -TERM $SERVE_PID 2>/dev/null; wait $SERVE_PID 2>/dev/null"
wait_ready "$SERVE_PID" "$T/serve.out" "$T/serve.err" serve

URL="https://$SVC:$PORT/.well-known/est"
C=(curl -sS --max-time 30 --cacert "$HOME_CA/root.pem" --resolve "$SVC:$PORT:$A")
count() { cert_count "$HOME_CA"; }

# post OP CSR-FILE OUT [curl args...]: POST the CSR as base64 DER;
# prints the HTTP status.
post() {
	local op=$1 csr=$2 out=$3
	shift 3
	openssl req -in "$csr" -outform DER | base64 >"$T/body.b64"
	"${C[@]}" -o "$out" -w '%{http_code}' -H 'Content-Type: application/pkcs10' \
	    --data-binary @"$T/body.b64" "$@" "$URL/$op"
}

# p7_to_pem IN OUT: the first certificate of a base64 PKCS#7 reply.
p7_to_pem() {
	base64 -d "$1" | openssl pkcs7 -inform DER -print_certs >"$2" ||
	    fail "reply is not base64 PKCS#7: $(head -c 200 "$1")"
}

# --- cacerts -------------------------------------------------------------
"${C[@]}" -D "$T/ca.hdr" -o "$T/cacerts.b64" "$URL/cacerts" || fail "GET cacerts"
grep -qi '^content-type: application/pkcs7-mime' "$T/ca.hdr" || fail "cacerts content type: $(cat "$T/ca.hdr")"
grep -qi '^content-transfer-encoding: base64' "$T/ca.hdr" || fail "cacerts lacks Content-Transfer-Encoding"
base64 -d "$T/cacerts.b64" | openssl pkcs7 -inform DER -print_certs |
    openssl x509 -noout -fingerprint -sha256 >/dev/null || fail "cacerts does not decode"
base64 -d "$T/cacerts.b64" | openssl pkcs7 -inform DER -print_certs >"$T/cacerts.pem"
want=$(for f in intermediate.pem root.pem; do openssl x509 -in "$HOME_CA/$f" -noout -fingerprint -sha256; done | sort)
got=$(awk '/BEGIN/{n++} {print > "'"$T"'/ca" n ".pem"}' "$T/cacerts.pem"
    for f in "$T"/ca[0-9]*.pem; do openssl x509 -in "$f" -noout -fingerprint -sha256; done | sort)
[ "$want" = "$got" ] || fail "cacerts is not the chain: $got"
ok "cacerts: base64 PKCS#7 certs-only holding the intermediate and the root"

# --- csrattrs ------------------------------------------------------------
"${C[@]}" -D "$T/attrs.hdr" -o "$T/attrs.b64" "$URL/csrattrs" || fail "GET csrattrs"
grep -qi '^content-type: application/csrattrs' "$T/attrs.hdr" || fail "csrattrs content type"
base64 -d "$T/attrs.b64" | openssl asn1parse -inform DER >"$T/attrs.txt" || fail "csrattrs is not DER"
grep -q 'id-ecPublicKey' "$T/attrs.txt" && grep -q secp384r1 "$T/attrs.txt" &&
    grep -q 'ecdsa-with-SHA384' "$T/attrs.txt" || fail "csrattrs: $(cat "$T/attrs.txt")"
ok "csrattrs: base64 DER CsrAttrs (key types and signature algorithms)"

# --- simpleenroll with Basic -------------------------------------------------
make_csr "$T/www.csr" rsa:2048 www.example.test
n0=$(count)
s=$(post simpleenroll "$T/www.csr" "$T/www.b64" -u "est1:$(cat "$T/pw")")
[ "$s" = 200 ] || fail "simpleenroll (Basic): HTTP $s $(cat "$T/www.b64")"
p7_to_pem "$T/www.b64" "$T/www.pem"
openssl verify -x509_strict -purpose sslserver -verify_hostname www.example.test \
    -CAfile "$HOME_CA/root.pem" -untrusted "$HOME_CA/intermediate.pem" "$T/www.pem" >/dev/null ||
    fail "EST certificate does not verify as a server"
openssl verify -x509_strict -purpose sslclient -CAfile "$HOME_CA/root.pem" \
    -untrusted "$HOME_CA/intermediate.pem" "$T/www.pem" >/dev/null || fail "EST certificate is not a TLS client certificate"
[ "$(count)" = $((n0 + 1)) ] || fail "simpleenroll did not record one certificate"
serial=$(openssl x509 -in "$T/www.pem" -noout -serial | cut -d= -f2)
"$AMTCA" --home "$HOME_CA" show "$serial" --json | qgrep '"requester":"est1"' ||
    fail "the record does not name the EST client as requester"
ok "simpleenroll with Basic: serverAuth+clientAuth for www.example.test, recorded with requester est1"

# --- refusals, each leaving no record -----------------------------------------
refused() { # WANT-STATUS WHAT OP CSR [curl args...]
	local want=$1 what=$2 op=$3 csr=$4 n s
	shift 4
	n=$(count)
	s=$(post "$op" "$csr" "$T/refused.out" "$@")
	[ "$s" = "$want" ] || fail "$what: HTTP $s, expected $want: $(cat "$T/refused.out")"
	[ "$(count)" = "$n" ] || fail "$what left a record"
}
refused 401 "no credentials" simpleenroll "$T/www.csr"
"${C[@]}" -D - -o /dev/null -H 'Content-Type: application/pkcs10' --data-binary @"$T/body.b64" \
    "$URL/simpleenroll" | qgrep -i '^www-authenticate: Basic' || fail "401 without a Basic challenge"
refused 401 "wrong password" simpleenroll "$T/www.csr" -u "est1:not-the-password"
refused 401 "unknown client" simpleenroll "$T/www.csr" -u "nobody:$(cat "$T/pw")"
make_csr "$T/other.csr" ec:prime256v1 host.badexample.test
refused 403 "a name outside the allow list" simpleenroll "$T/other.csr" -u "est1:$(cat "$T/pw")"
make_csr "$T/bad.csr" ec:prime256v1 badexample.test
refused 403 "badexample.test under allow example.test" simpleenroll "$T/bad.csr" -u "est1:$(cat "$T/pw")"
make_csr "$T/dev.csr" ec:prime256v1 "$DEV"
refused 403 "an AMT device's name" simpleenroll "$T/dev.csr" -u "est1:$(cat "$T/pw")"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$T/two.key" 2>/dev/null
openssl req -new -key "$T/two.key" -subj /CN=a.example.test \
    -addext "subjectAltName=DNS:a.example.test,DNS:x.badexample.test" -out "$T/two.csr" 2>/dev/null
refused 403 "a CSR with one name outside the allow list" simpleenroll "$T/two.csr" -u "est1:$(cat "$T/pw")"
openssl req -new -key "$T/two.key" -subj /CN=a.example.test \
    -addext "subjectAltName=DNS:a.example.test,DNS:b.example.test" -out "$T/two-ok.csr" 2>/dev/null
refused 400 "a CSR naming two allowed hosts (one name per certificate)" simpleenroll "$T/two-ok.csr" -u "est1:$(cat "$T/pw")"
ok "401 without credentials (Basic challenge) and for a wrong password; 403 outside the allow list, at the label boundary, for an AMT device and for a CSR with one foreign name; nothing recorded"

n=$(count)
head -c 70000 /dev/zero | tr '\0' 'A' >"$T/big"
s=$("${C[@]}" -o "$T/big.out" -w '%{http_code}' -u "est1:$(cat "$T/pw")" \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/big" "$URL/simpleenroll")
[ "$s" = 413 ] || fail "oversized body: HTTP $s"
printf 'this is not base64!\n' >"$T/junk"
s=$("${C[@]}" -o "$T/junk.out" -w '%{http_code}' -u "est1:$(cat "$T/pw")" \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/junk" "$URL/simpleenroll")
[ "$s" = 400 ] || fail "bad base64: HTTP $s"
printf 'aGVsbG8gd29ybGQ=\n' >"$T/notcsr"
s=$("${C[@]}" -o "$T/notcsr.out" -w '%{http_code}' -u "est1:$(cat "$T/pw")" \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/notcsr" "$URL/simpleenroll")
[ "$s" = 400 ] || fail "base64 that is no CSR: HTTP $s"
s=$("${C[@]}" -o "$T/ct.out" -w '%{http_code}' -u "est1:$(cat "$T/pw")" \
    -H 'Content-Type: application/json' --data-binary @"$T/body.b64" "$URL/simpleenroll")
[ "$s" = 415 ] || fail "wrong content type: HTTP $s"
[ "$(count)" = "$n" ] || fail "a malformed request left a record"
ok "413 for an oversized body, 400 for bad base64 and a non-CSR, 415 for a wrong content type; nothing recorded"

# --- simpleenroll with a client certificate -----------------------------------
CC=(--cert "$T/gw.pem" --key "$T/gw.csr.key")
make_csr "$T/web.csr" ec:prime256v1 web.example.test
n0=$(count)
s=$(post simpleenroll "$T/web.csr" "$T/web.b64" "${CC[@]}")
[ "$s" = 200 ] || fail "simpleenroll (certificate): HTTP $s $(cat "$T/web.b64")"
p7_to_pem "$T/web.b64" "$T/web.pem"
openssl x509 -in "$T/web.pem" -noout -ext subjectAltName | qgrep 'DNS:web.example.test' ||
    fail "certificate-authenticated simpleenroll: wrong name"
[ "$(count)" = $((n0 + 1)) ] || fail "simpleenroll (certificate) did not record one certificate"
refused 403 "a certificate client outside its allow list" simpleenroll "$T/www.csr" "${CC[@]}"
ok "simpleenroll with a client certificate, within its allow list only"

# --- simplereenroll ----------------------------------------------------------------
refused 401 "simplereenroll with Basic" simplereenroll "$T/gw.csr" -u "est1:$(cat "$T/pw")"
refused 403 "simplereenroll for another name" simplereenroll "$T/web.csr" "${CC[@]}"
old=$(openssl x509 -in "$T/gw.pem" -noout -serial | cut -d= -f2)
s=$(post simplereenroll "$T/gw.csr" "$T/gw2.b64" "${CC[@]}")
[ "$s" = 200 ] || fail "simplereenroll: HTTP $s $(cat "$T/gw2.b64")"
p7_to_pem "$T/gw2.b64" "$T/gw2.pem"
new=$(openssl x509 -in "$T/gw2.pem" -noout -serial | cut -d= -f2)
[ "$new" != "$old" ] || fail "simplereenroll returned the same certificate"
openssl x509 -in "$T/gw2.pem" -noout -ext subjectAltName | qgrep 'DNS:gw.example.test' ||
    fail "simplereenroll changed the names"
"$AMTCA" --home "$HOME_CA" est-client list --json | qgrep "\"serial\":\"$new\"" ||
    fail "the client is not bound to its renewed certificate"
# The renewed certificate authenticates; the old one no longer does.
s=$(post simpleenroll "$T/web.csr" "$T/web2.b64" --cert "$T/gw2.pem" --key "$T/gw.csr.key")
[ "$s" = 200 ] || fail "the renewed certificate does not authenticate: HTTP $s"
refused 401 "the superseded client certificate" simpleenroll "$T/web.csr" "${CC[@]}"
ok "simplereenroll keeps the name, issues a new certificate and moves the client to it"

# --- a removed client -------------------------------------------------------------
"$AMTCA" --home "$HOME_CA" est-client remove est1 >/dev/null
refused 401 "a removed client" simpleenroll "$T/www.csr" -u "est1:$(cat "$T/pw")"
"$AMTCA" --home "$HOME_CA" est-client remove gw.example.test >/dev/null
refused 401 "a removed certificate client" simpleenroll "$T/web.csr" --cert "$T/gw2.pem" --key "$T/gw.csr.key"
ok "removed clients are refused at once"

kill -TERM "$SERVE_PID"
rc=0
wait "$SERVE_PID" || rc=$?
[ "$rc" = 0 ] || fail "serve exited $rc on SIGTERM: $(tail -20 "$T/serve.err")"
grep -q 'event=auth_fail client=est1' "$T/serve.err" || fail "no aggregated auth_fail line for est1: $(grep auth_fail "$T/serve.err" | head)"
grep -q "$(cat "$T/pw")" "$T/serve.err" && fail "a password appears in the log"
ok "failed authentications are logged aggregated, without passwords"
