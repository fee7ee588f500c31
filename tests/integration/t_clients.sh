#!/usr/bin/env bash
# amtca est-client and amtca admin: client records and their certificates
# (EST and ADMIN profiles), checked with openssl; removal and revocation
# keep the record but disable it and revoke its certificate; refusals
# record nothing.
. "$(dirname "$0")/lib.sh"

H="$T/home"
new_ca "$H" --domain example.test

clients() { # ROLE: the JSON list
	"$AMTCA" --home "$H" "$1" list --json
}
field() { # JSON NAME KEY
	python3 -c 'import json,sys
d=json.loads(sys.argv[1])
for c in d["clients"]:
    if c["name"]==sys.argv[2]:
        v=c.get(sys.argv[3]); print("" if v is None else v)' "$1" "$2" "$3"
}

# --- EST client with a password -------------------------------------------
printf 'correct horse battery\n' >"$T/pw"
chmod 600 "$T/pw"
"$AMTCA" --home "$H" est-client add est1 --allow Example.Test --allow b.example.test --password-file "$T/pw" >/dev/null
j=$(clients est-client)
[ "$(field "$j" est1 state)" = active ] || fail "est1 not active: $j"
[ "$(field "$j" est1 auth)" = password ] || fail "est1 auth: $j"
[ "$(field "$j" est1 allow)" = "example.test b.example.test" ] || fail "allow list not normalised: $j"
# The hash, never the password, is stored.
DB="$H/keys/ca.db"	# the CA's records (older homes: amtca.db)
[ -f "$DB" ] || DB="$H/amtca.db"
sqlite3 "$DB" "select pwhash from clients where name='est1'" >"$T/hash"
grep -q '^\$argon2id\$v=19\$m=19456,t=2,p=1\$' "$T/hash" || fail "not an Argon2id PHC string: $(cat "$T/hash")"
grep -rqa 'correct horse' "$H" && fail "the password is in the home"
ok "est-client add --password-file records an Argon2id hash and the allow list"

n0=$(cert_count "$H")
expect_fail 1 "already recorded" "$AMTCA" --home "$H" est-client add est1 --allow example.test --password-file "$T/pw"
expect_fail 1 "allow entry" "$AMTCA" --home "$H" est-client add est2 --allow other.org --password-file "$T/pw"
expect_fail 1 "wildcard" "$AMTCA" --home "$H" est-client add est2 --allow '*.example.test' --password-file "$T/pw"
expect_fail 2 "at least one --allow" "$AMTCA" --home "$H" est-client add est2 --password-file "$T/pw"
expect_fail 2 "either --password-file" "$AMTCA" --home "$H" est-client add est2 --allow example.test
make_csr "$T/c.csr" ec:prime256v1
expect_fail 1 "FQDN its --allow covers" "$AMTCA" --home "$H" est-client add est2 --allow example.test --csr "$T/c.csr" --out "$T/c.pem"
expect_fail 1 "FQDN its --allow covers" "$AMTCA" --home "$H" est-client add gw.other.example.test --allow b.example.test --csr "$T/c.csr" --out "$T/c.pem"
[ "$(cert_count "$H")" = "$n0" ] || fail "a refused add issued a certificate"
[ "$(clients est-client | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["clients"]))')" = 1 ] || fail "a refused add recorded a client"
ok "refused adds record nothing"

# --- EST client with a certificate -----------------------------------------
"$AMTCA" --home "$H" est-client add gw.example.test --allow example.test --csr "$T/c.csr" --out "$T/gw.pem" >/dev/null
openssl verify -x509_strict -purpose sslclient -CAfile "$H/root.pem" -untrusted "$H/intermediate.pem" "$T/gw.pem" >/dev/null || fail "EST client cert does not verify as a TLS client"
openssl verify -x509_strict -purpose sslserver -verify_hostname gw.example.test -CAfile "$H/root.pem" -untrusted "$H/intermediate.pem" "$T/gw.pem" >/dev/null || fail "EST client cert does not verify as a server"
serial=$(openssl x509 -in "$T/gw.pem" -noout -serial | cut -d= -f2)
j=$(clients est-client)
[ "$(field "$j" gw.example.test serial)" = "$serial" ] || fail "client not bound to its serial: $j"
[ "$(field "$j" gw.example.test auth)" = certificate ] || fail "auth kind: $j"
ok "est-client add --csr issues an EST certificate for its name and binds the record to it"

"$AMTCA" --home "$H" est-client remove gw.example.test >/dev/null
j=$(clients est-client)
[ "$(field "$j" gw.example.test state)" = removed ] || fail "not removed: $j"
"$AMTCA" --home "$H" show "$serial" --json | qgrep '"status":"revoked"' || fail "removed client's certificate not revoked"
"$AMTCA" --home "$H" est-client remove est1 >/dev/null
expect_fail 1 "already recorded" "$AMTCA" --home "$H" est-client add est1 --allow example.test --password-file "$T/pw"
expect_fail 1 "no client" "$AMTCA" --home "$H" est-client remove nobody
ok "est-client remove keeps the record, disables it and revokes its certificate"

# --- admins ------------------------------------------------------------------
make_csr "$T/a.csr" rsa:2048 "ignored.evil.test"
"$AMTCA" --home "$H" admin add alice --csr "$T/a.csr" --out "$T/alice.pem" >/dev/null
openssl x509 -in "$T/alice.pem" -noout -text >"$T/alice.txt"
grep -q 'Subject: .*CN = alice' "$T/alice.txt" || fail "admin CN"
grep -q 'evil' "$T/alice.txt" && fail "a name from the CSR leaked into the admin certificate"
grep -q 'Subject Alternative Name' "$T/alice.txt" && fail "a plain admin name got a SAN"
grep -A1 'Extended Key Usage' "$T/alice.txt" | qgrep '^ *TLS Web Client Authentication$' || fail "admin EKU is not clientAuth only"
grep -q 'Policy: 2.25.230505298089611763819222273082359297452' "$T/alice.txt" || fail "admin marker missing"
openssl verify -x509_strict -purpose sslclient -CAfile "$H/root.pem" -untrusted "$H/intermediate.pem" "$T/alice.pem" >/dev/null || fail "admin cert does not verify as a TLS client"
aserial=$(openssl x509 -in "$T/alice.pem" -noout -serial | cut -d= -f2)
j=$(clients admin)
[ "$(field "$j" alice serial)" = "$aserial" ] || fail "admin not bound: $j"
"$AMTCA" --home "$H" show "$aserial" --json | qgrep '"requester":"[^"]*@' || fail "admin cert requester is not the operator"
[ "$(clients est-client | grep -c alice || true)" = 0 ] || fail "admin listed as EST client"
ok "admin add issues clientAuth + the admin marker, bound and recorded"

expect_fail 1 "already recorded" "$AMTCA" --home "$H" admin add alice --csr "$T/a.csr" --out "$T/x.pem"
expect_fail 1 "client name" "$AMTCA" --home "$H" admin add 'bad name' --csr "$T/a.csr" --out "$T/x.pem"
"$AMTCA" --home "$H" admin revoke alice --reason keyCompromise >/dev/null
"$AMTCA" --home "$H" show "$aserial" --json | qgrep '"reason":"keyCompromise"' || fail "admin revoke did not revoke"
[ "$(field "$(clients admin)" alice state)" = removed ] || fail "admin revoke did not disable"
expect_fail 1 "not an admin" "$AMTCA" --home "$H" admin revoke est1
ok "admin revoke revokes the certificate and disables the record"
