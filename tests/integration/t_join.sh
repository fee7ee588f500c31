#!/bin/bash
# Another node of one CA (issue 11 section 2): node A `init --store
# postgresql://...` with a token outside its home (the stand-in for a
# network HSM), node B `init --join` from the database through its own
# module settings.  B's certificate files equal A's, its amtca.conf holds
# no PIN and its own home_id; B issues through the token and A lists it;
# the trail verifies from B and shows "ca.join".  Refused, each with a
# one-line error and nothing left behind: a database without a CA (missing
# or empty), a password in the URI, a token without the CA's keys, a
# non-empty home, a schema newer than this amtca.  Keeping in step: a
# shared setting edited on A, and a new certificate set in the database (a
# rotation elsewhere), reach B at its next command.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_helpers.sh"

if ! pg_available; then
	echo "skip: no PostgreSQL server binaries (apt-get install postgresql)"
	exit 0
fi
pg_start
ok "throwaway cluster up in $PG_DIR"

# One SoftHSM, outside both homes: the CA's token and an unrelated one.
S="$T/hsm"
mkdir -p "$S/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$S/tokens" >"$S/softhsm2.conf"
export SOFTHSM2_CONF="$S/softhsm2.conf"
softhsm2-util --init-token --free --label ca --so-pin 12345678 --pin 11112222 >/dev/null
softhsm2-util --init-token --free --label other --so-pin 12345678 --pin 55556666 >/dev/null
softhsm2-util --init-token --free --label ext --so-pin 12345678 --pin 77778888 >/dev/null
echo 11112222 >"$S/ca.pin"
echo 55556666 >"$S/other.pin"
echo 77778888 >"$S/ext.pin"
chmod 600 "$S/ca.pin" "$S/other.pin" "$S/ext.pin"

URI="postgresql:///amtca_join?host=$PG_SOCK&user=amtca"
A="$T/a"
B="$T/b"
q() { pg_psql amtca_join -c "$1"; }
join_b() { # HOME [extra args...]
	local home=$1
	shift
	"$AMTCA" --home "$home" init --join --store "$URI" --module "$SOFTHSM_MODULE" \
	    --token-uri pkcs11:token=ca --pin-file "$S/ca.pin" "$@"
}
gone() { [ ! -e "$1" ] || fail "a refused join left $1 behind: $(ls -la "$1")"; }
said() { echo "  said: $(cat "$T/err")"; }

# --- no CA to join yet -------------------------------------------------------
expect_fail 1 "holds no CA" join_b "$T/b0"
said
gone "$T/b0"
pg_psql postgres -c "CREATE DATABASE amtca_empty"
expect_fail 1 "" "$AMTCA" --home "$T/b0" init --join --module "$SOFTHSM_MODULE" \
    --store "postgresql:///amtca_empty?host=$PG_SOCK&user=amtca" \
    --token-uri pkcs11:token=ca --pin-file "$S/ca.pin"
said
gone "$T/b0"
ok "a missing or empty database is refused, nothing made"

# --- node A ------------------------------------------------------------------
"$AMTCA" --home "$A" init --module "$SOFTHSM_MODULE" --token-uri pkcs11:token=ca \
    --pin-file "$S/ca.pin" --domain example.test --ip-range 10.9.0.0/16 \
    --org "Join Test" --store "$URI" >"$T/a.out" 2>"$T/a.err" ||
	fail "init A: $(cat "$T/a.err")"
[ "$(q "SELECT count(*) FROM amtca.meta WHERE name IN ('conf', 'root.pem', 'intermediate.pem', 'chain.pem')")" = 4 ] ||
	fail "init --store did not publish the shared set: $(q "SELECT name FROM amtca.meta")"
q "SELECT convert_from(value, 'UTF8') FROM amtca.meta WHERE name = 'conf'" >"$T/shared.conf"
grep -q "^domain = example.test" "$T/shared.conf" || fail "shared conf lacks the policy: $(cat "$T/shared.conf")"
if grep -Eq "^(module|token_uri|pin_file|home_id|store|module_env) " "$T/shared.conf"; then
	fail "node-local settings in the shared conf: $(cat "$T/shared.conf")"
fi
ok "init --store publishes the certificates and the shared settings only"

# --- refusals ------------------------------------------------------------------
expect_fail 1 "passfile" "$AMTCA" --home "$T/b1" init --join --module "$SOFTHSM_MODULE" \
    --store "postgresql://amtca:hunter2@/amtca_join?host=$PG_SOCK" \
    --token-uri pkcs11:token=ca --pin-file "$S/ca.pin"
grep -q hunter2 "$T/err" && fail "password echoed: $(cat "$T/err")"
said
gone "$T/b1"
expect_fail 1 "wrong token" "$AMTCA" --home "$T/b2" init --join --store "$URI" \
    --module "$SOFTHSM_MODULE" --token-uri pkcs11:token=other --pin-file "$S/other.pin"
said
gone "$T/b2"
mkdir -m 700 "$T/b3"
echo x >"$T/b3/junk"
expect_fail 1 "not empty" join_b "$T/b3"
said
[ "$(ls -A "$T/b3")" = junk ] || fail "a refused join touched a non-empty home: $(ls -A "$T/b3")"
q "INSERT INTO amtca.schema_version VALUES (99, 0)"
expect_fail 1 "newer than this amtca" join_b "$T/b4"
q "DELETE FROM amtca.schema_version WHERE version = 99"
said
gone "$T/b4"
expect_fail 2 "--join takes only" join_b "$T/b5" --domain example.test
said
gone "$T/b5"
[ "$(q "SELECT count(*) FROM amtca.audit WHERE action = 'ca.join'")" = 0 ] ||
	fail "a refused join left an audit entry"
ok "password in the URI, wrong token, non-empty home, newer schema, stray options: refused, nothing left"

# --- node B ------------------------------------------------------------------
mkdir -m 700 "$B"		# an empty, pre-made home is fine
join_b "$B" >"$T/b.out" 2>"$T/b.err" || fail "init --join: $(cat "$T/b.err")"
for f in root.pem intermediate.pem chain.pem; do
	cmp -s "$A/$f" "$B/$f" || fail "B's $f differs from A's"
done
[ ! -e "$B/intermediate-retired.pem" ] || fail "B has retired intermediates A lacks"
[ "$(stat -c %a "$B")" = 700 ] || fail "B's home is not 0700"
grep -q 11112222 "$B/amtca.conf" && fail "B's amtca.conf holds the PIN"
ida=$(sed -n 's/^home_id = //p' "$A/amtca.conf")
idb=$(sed -n 's/^home_id = //p' "$B/amtca.conf")
[ -n "$idb" ] && [ "$idb" != "$ida" ] || fail "B's home_id '$idb' is not its own (A: '$ida')"
grep -qxF "store = $URI" "$B/amtca.conf" || fail "B's amtca.conf lacks the store"
grep -qxF "pin_file = $S/ca.pin" "$B/amtca.conf" || fail "B's amtca.conf lacks its pin_file"
grep -qxF "org = Join Test" "$B/amtca.conf" || fail "B's amtca.conf lacks the shared org"
grep -qxF "ip_range = 10.9.0.0/16" "$B/amtca.conf" || fail "B's amtca.conf lacks the shared ip_range"
grep -q "$idb" "$T/b.out" || fail "init --join does not print the home_id: $(cat "$T/b.out")"
ok "init --join: B's certificates equal A's; its conf has the shared policy, its own home_id, no PIN"

# B issues through the token; A sees it.
openssl req -new -newkey rsa:2048 -nodes -keyout "$T/k.pem" -subj "/CN=web.example.test" \
    -out "$T/b.csr" 2>/dev/null
"$AMTCA" --home "$B" issue --fqdn web.example.test --csr "$T/b.csr" --out "$T/b.pem" \
    2>"$T/err" || fail "issue on B: $(cat "$T/err")"
SB=$(openssl x509 -in "$T/b.pem" -noout -serial | sed 's/serial=//')
openssl verify -CAfile "$A/root.pem" -untrusted "$A/intermediate.pem" "$T/b.pem" >/dev/null ||
	fail "B's certificate does not chain to A's CA"
"$AMTCA" --home "$A" list --json | qgrep -i "\"$SB\"" || fail "A does not list B's certificate $SB"
ok "B issues through the shared token; A lists the certificate"

"$AMTCA" --home "$B" audit verify >"$T/v.out" 2>&1 || fail "audit verify on B: $(cat "$T/v.out")"
"$AMTCA" --home "$B" audit show --action ca.join --json >"$T/j.json" ||
	fail "audit show on B"
python3 - "$T/j.json" "$idb" <<'PY' || fail "no ca.join entry for B: $(cat "$T/j.json")"
import json, socket, sys
doc = json.load(open(sys.argv[1]))
ents = doc["entries"] if isinstance(doc, dict) else doc
hits = [e for e in ents if e["action"] == "ca.join" and e["subject"] == sys.argv[2]]
assert len(hits) == 1, ents
assert hits[0]["detail"] == "host=" + socket.gethostname(), hits[0]
PY
"$AMTCA" --home "$A" audit verify >"$T/v.out" 2>&1 || fail "audit verify on A: $(cat "$T/v.out")"
ok "the trail verifies from both nodes and names B's join (home_id, host)"

# --- keeping in step -----------------------------------------------------------
# A shared setting edited on A goes to the store at A's next command, and
# from there to B at its next.
echo "crl_url = http://pki.example.test/amtca.crl" >>"$A/amtca.conf"
"$AMTCA" --home "$A" list >/dev/null
q "SELECT convert_from(value, 'UTF8') FROM amtca.meta WHERE name = 'conf'" |
	qgrep -xF "crl_url = http://pki.example.test/amtca.crl" ||
	fail "A's edit did not reach the store"
"$AMTCA" --home "$B" list >/dev/null
grep -qxF "crl_url = http://pki.example.test/amtca.crl" "$B/amtca.conf" ||
	fail "A's edit did not reach B: $(cat "$B/amtca.conf")"
grep -qxF "home_id = $idb" "$B/amtca.conf" || fail "B lost its own home_id"
grep -qxF "pin_file = $S/ca.pin" "$B/amtca.conf" || fail "B lost its pin_file"
ok "a shared setting edited on one node reaches the other"

# A rotation elsewhere: the store gets a new set (here: A's intermediate
# retired beside itself, a longer chain); B's next command takes it.
hexof() { od -An -v -tx1 "$1" | tr -d ' \n'; }
cat "$A/intermediate.pem" "$A/root.pem" "$A/root.pem" >"$T/chain2.pem"
q "BEGIN; INSERT INTO amtca.meta VALUES ('intermediate-retired.pem', decode('$(hexof "$A/intermediate.pem")', 'hex'), extract(epoch FROM now())::bigint); UPDATE amtca.meta SET value = decode('$(hexof "$T/chain2.pem")', 'hex'), updated_at = extract(epoch FROM now())::bigint WHERE name = 'chain.pem'; COMMIT"
"$AMTCA" --home "$B" list >/dev/null
cmp -s "$T/chain2.pem" "$B/chain.pem" || fail "B did not take the store's new chain.pem"
cmp -s "$A/intermediate.pem" "$B/intermediate-retired.pem" ||
	fail "B did not take the store's intermediate-retired.pem"
"$AMTCA" --home "$A" list >/dev/null
cmp -s "$T/chain2.pem" "$A/chain.pem" || fail "A did not take the store's new chain.pem"
# The overlap ends: the retired set leaves the store, and the nodes.
q "DELETE FROM amtca.meta WHERE name = 'intermediate-retired.pem'"
"$AMTCA" --home "$B" issue --fqdn web2.example.test --csr "$T/b.csr" --out "$T/b2.pem" \
    2>"$T/err" || fail "issue on B after the new set: $(cat "$T/err")"
[ ! -e "$B/intermediate-retired.pem" ] || fail "B kept a retired set the store dropped"
ok "a new certificate set in the store reaches each node at its next command"

# A real rotation on A (ca rotate): published, B takes it at its next
# command and issues with the new intermediate key.
"$AMTCA" --home "$A" ca rotate >/dev/null 2>"$T/err" || fail "ca rotate on A: $(cat "$T/err")"
cmp -s "$A/intermediate.pem" "$B/intermediate.pem" && fail "rotation did not change A's intermediate"
"$AMTCA" --home "$A" list >/dev/null	# (published by A's next command at the latest)
"$AMTCA" --home "$A" chain >"$T/chain-a.pem"
"$AMTCA" --home "$B" chain >"$T/chain-b.pem" || fail "chain on B after A's rotation"
cmp -s "$T/chain-a.pem" "$T/chain-b.pem" || fail "B's chain output is not A's after the rotation"
[ "$(grep -c "BEGIN CERTIFICATE" "$T/chain-b.pem")" = 3 ] ||
	fail "B's chain does not list current, retired and root"
"$AMTCA" --home "$B" issue --fqdn web3.example.test --csr "$T/b.csr" --out "$T/b3.pem" \
    2>"$T/err" || fail "issue on B after A's rotation: $(cat "$T/err")"
for f in root.pem intermediate.pem chain.pem intermediate-retired.pem; do
	cmp -s "$A/$f" "$B/$f" || fail "B's $f differs from A's after the rotation"
done
grep -qx "intermediate_key = amtca-intermediate-g2" "$B/amtca.conf" ||
	fail "B's amtca.conf does not name the new key: $(cat "$B/amtca.conf")"
openssl verify -CAfile "$A/root.pem" -untrusted "$A/intermediate.pem" "$T/b3.pem" >/dev/null ||
	fail "B's certificate after the rotation is not under A's new intermediate"
"$AMTCA" --home "$B" audit verify >"$T/v.out" 2>&1 || fail "audit verify on B after the rotation: $(cat "$T/v.out")"
ok "ca rotate on A reaches B: same files, the new key's label, issuance under the new intermediate"

# --- backup ------------------------------------------------------------------
expect_fail 1 "pg_dump" "$AMTCA" --home "$B" backup --out "$T/bk"
said
[ ! -e "$T/bk" ] || fail "a refused backup made $T/bk"
ok "amtca backup on a PostgreSQL home refuses and names pg_dump"

# --- an external root: the set is shared once it is imported ------------------
XURI="postgresql:///amtca_ext?host=$PG_SOCK&user=amtca"
X="$T/x"
xjoin() { # HOME
	"$AMTCA" --home "$1" init --join --store "$XURI" --module "$SOFTHSM_MODULE" \
	    --token-uri pkcs11:token=ext --pin-file "$S/ext.pin"
}
"$AMTCA" --home "$X" init --module "$SOFTHSM_MODULE" --token-uri pkcs11:token=ext \
    --pin-file "$S/ext.pin" --domain example.test --external-root \
    --csr-out "$T/x.csr" --store "$XURI" >/dev/null 2>"$T/err" ||
	fail "init --external-root --store: $(cat "$T/err")"
expect_fail 1 "holds no CA to join" xjoin "$T/x2"
said
gone "$T/x2"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/eroot.key" \
    -subj "/O=Enterprise/CN=Enterprise root CA" -days 3650 -out "$T/eroot.pem" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" \
    "keyUsage=critical,keyCertSign,cRLSign" \
    "nameConstraints=critical,permitted;DNS:example.test,excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0" >"$T/ca.ext"
openssl x509 -req -in "$T/x.csr" -CA "$T/eroot.pem" -CAkey "$T/eroot.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 1000 -out "$T/xinter.pem" \
    -extfile "$T/ca.ext" 2>/dev/null
"$AMTCA" --home "$X" ca import-intermediate --cert "$T/xinter.pem" --root "$T/eroot.pem" \
    >/dev/null 2>"$T/err" || fail "import-intermediate: $(cat "$T/err")"
xjoin "$T/x2" >/dev/null 2>"$T/err" || fail "join after the import: $(cat "$T/err")"
for f in root.pem intermediate.pem chain.pem; do
	cmp -s "$X/$f" "$T/x2/$f" || fail "the joined node's $f differs after the import"
done
ok "a CA waiting for its external root cannot be joined; after ca import-intermediate it can"
