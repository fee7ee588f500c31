#!/bin/bash
# A CA home whose records live in PostgreSQL (issue 11 section 1):
# `init --store postgresql:///...?host=SOCKDIR` on a throwaway cluster, then
# issue, revoke, crl, audit verify and `amtca enroll` against amtsim through
# the signer process, every record in the database and none in the home's
# files; a URI with a password refused; a second init on the same store
# refused; `amtca store migrate`; a schema newer than this amtca refused
# with a clear one-line error.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_helpers.sh"
. "$(dirname "$0")/enroll_helpers.sh"

if ! pg_available; then
	echo "skip: no PostgreSQL server binaries (apt-get install postgresql)"
	exit 0
fi
pg_start
ok "throwaway cluster up in $PG_DIR"

URI="postgresql:///amtca_home?host=$PG_SOCK&user=amtca"
HOME_CA="$T/home"
PW="$T/amt-password"
password_file "$PW" "Adm1n-$RANDOM-pw"
ca() { "$AMTCA" --home "$HOME_CA" "$@"; }
q() { pg_psql amtca_home -c "$1"; }

# --- credentials never in the URI ------------------------------------------
expect_fail 1 "passfile" "$AMTCA" --home "$T/pwhome" init --softhsm \
    --domain example.test --store "postgresql://amtca:hunter2@/amtca_home?host=$PG_SOCK"
grep -q hunter2 "$T/err" && fail "password echoed: $(cat "$T/err")"
[ ! -e "$T/pwhome" ] || fail "a refused init left a home behind"
expect_fail 2 "--store takes" "$AMTCA" --home "$T/badhome" init --softhsm \
    --domain example.test --store "mysql://x/y"
ok "a URI with a password or an unknown scheme is refused before anything is made"

# --- init --store ------------------------------------------------------------
new_ca "$HOME_CA" --domain example.test --store "$URI"
grep -qxF "store = $URI" "$HOME_CA/amtca.conf" || fail "amtca.conf lacks the store line: $(cat "$HOME_CA/amtca.conf")"
[ ! -e "$HOME_CA/keys/ca.db" ] && [ ! -e "$HOME_CA/state/state.db" ] ||
	fail "SQLite files made beside a PostgreSQL store"
[ "$(q "SELECT max(version) FROM amtca.schema_version")" -ge 2 ] || fail "schema not migrated"
[ "$(q "SELECT count(*) FROM amtca.audit WHERE action LIKE 'ca.%'")" -ge 1 ] ||
	fail "init's audit entry is not in PostgreSQL"
ok "init --store records the store in amtca.conf and the records in PostgreSQL"

expect_fail 1 "already holds a CA" "$AMTCA" --home "$T/home2" init --softhsm \
    --domain example.test --store "$URI"
[ ! -e "$T/home2/amtca.conf" ] || fail "second init wrote a home"
ok "a second init on the same store is refused"

# --- issue, revoke, crl, audit ----------------------------------------------
make_csr "$T/a.csr" rsa:2048 web.example.test
ca issue --fqdn web.example.test --csr "$T/a.csr" --out "$T/a.pem" >/dev/null
SA=$(openssl x509 -in "$T/a.pem" -noout -serial | sed 's/serial=//')
[ "$(q "SELECT count(*) FROM amtca.certificates WHERE serial = '$SA'")" = 1 ] ||
	fail "issued certificate not recorded in PostgreSQL"
[ "$(cert_count "$HOME_CA")" = 1 ] || fail "list does not show the certificate"
ca revoke "$SA" --reason keyCompromise >/dev/null
[ "$(q "SELECT status FROM amtca.certificates WHERE serial = '$SA'")" = revoked ] ||
	fail "revocation not in PostgreSQL"
ca crl >"$T/crl.pem"
openssl crl -in "$T/crl.pem" -noout -text | qgrep -i "Serial Number: 0*${SA#0}" ||
	fail "CRL lacks $SA"
[ "$(q "SELECT count(*) FROM amtca.audit WHERE action IN ('cert.issue','cert.revoke') AND subject = '$SA'")" = 2 ] ||
	fail "audit entries for issue and revoke missing: $(q "SELECT seq, action, subject FROM amtca.audit")"
ca audit verify >"$T/v.out" || fail "audit verify: $(cat "$T/v.out")"
ok "issue, revoke, crl and audit verify with the records in PostgreSQL"

# --- enroll through the signer process ---------------------------------------
ADDR=127.0.111.1
FQDN=amt1.example.test
sim_up "$T/sim.log" "$ADDR" "$FQDN"
enroll "$ADDR" "$FQDN" >"$T/enroll.out" 2>"$T/enroll.err" ||
	fail "enroll: $(cat "$T/enroll.err")"
[ "$(q "SELECT state FROM amtca.devices WHERE fqdn = '$FQDN'")" = enrolled ] ||
	fail "device record not in PostgreSQL: $(q "SELECT fqdn, state FROM amtca.devices")"
[ "$(q "SELECT count(*) FROM amtca.certificates WHERE lower(fqdn) = '$FQDN' AND status = 'valid'")" = 1 ] ||
	fail "enrolled leaf not recorded in PostgreSQL"
assert_clean "$ADDR" "$FQDN"
ca audit verify >"$T/v.out" || fail "audit verify after enroll: $(cat "$T/v.out")"
ok "enroll against amtsim through the signer, records in PostgreSQL, trail verifies"

# --- store migrate ---------------------------------------------------------
ca store migrate >"$T/m.out" || fail "store migrate: $(cat "$T/m.out")"
grep -q "up to date" "$T/m.out" || fail "store migrate said: $(cat "$T/m.out")"
FRESH="postgresql:///amtca_fresh?host=$PG_SOCK&user=amtca"
"$AMTCA" --home "$T/nohome" store migrate --store "$FRESH" >/dev/null ||
	fail "store migrate --store on an empty database"
[ "$(pg_psql amtca_fresh -c "SELECT count(*) FROM amtca.schema_version")" -ge 2 ] ||
	fail "store migrate did not create the schema"
ok "store migrate: a no-op on a current store, creates one where none is"

# --- a newer schema is refused -----------------------------------------------
q "INSERT INTO amtca.schema_version VALUES (99, 0)"
expect_fail 1 "newer than this amtca" ca list
expect_fail 1 "newer than this amtca" ca store migrate
q "DELETE FROM amtca.schema_version WHERE version = 99"
[ "$(cert_count "$HOME_CA")" = 2 ] || fail "store unusable after the newer schema left"
ok "a schema newer than this amtca is refused with a one-line error"

# --- rotation with the records in PostgreSQL (issue 10 §2) -------------------
K1=$(openssl x509 -in "$HOME_CA/intermediate.pem" -noout -ext subjectKeyIdentifier | sed -n '2s/[ :]//gp' | tr 'A-F' 'a-f')
ca ca rotate >/dev/null 2>"$T/rot.err" || fail "ca rotate on PostgreSQL: $(cat "$T/rot.err")"
K2=$(openssl x509 -in "$HOME_CA/intermediate.pem" -noout -ext subjectKeyIdentifier | sed -n '2s/[ :]//gp' | tr 'A-F' 'a-f')
ca issue --fqdn web2.example.test --csr "$T/a.csr" --out "$T/b.pem" >/dev/null
SB=$(openssl x509 -in "$T/b.pem" -noout -serial | sed 's/serial=//')
[ "$(q "SELECT issuer FROM amtca.certificates WHERE serial = '$SB'")" = "$K2" ] ||
	fail "the new leaf's issuer is not G2's key id in PostgreSQL"
[ "$(q "SELECT state FROM amtca.ca_certs WHERE keyid = '$K1'")" = retired ] ||
	fail "ca_certs: $(q "SELECT keyid, generation, state FROM amtca.ca_certs")"
[ "$(q "SELECT state FROM amtca.ca_certs WHERE keyid = '$K2'")" = current ] ||
	fail "ca_certs: $(q "SELECT keyid, generation, state FROM amtca.ca_certs")"
ca crl --issuer "$K1" >"$T/old.pem"
openssl crl -in "$T/old.pem" -noout -text | qgrep -i "Serial Number: 0*${SA#0}" ||
	fail "G1's CRL lacks $SA after rotation"
ca crl >"$T/new.pem"
openssl crl -in "$T/new.pem" -noout -text | qgrep -i "Serial Number: 0*${SA#0}" &&
	fail "G2's CRL lists G1's $SA"
ca audit verify >"$T/v.out" || fail "audit verify after rotate: $(cat "$T/v.out")"
ok "ca rotate on PostgreSQL: issuer recorded, ca_certs current/retired, per-issuer CRLs, trail verifies"
