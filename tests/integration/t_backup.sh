#!/usr/bin/env bash
# amtca backup / restore (docs/backup.md).  A backup taken while a fleet
# job is writing (amtsim) is a consistent snapshot of both stores, holds no
# PIN unless --include-pin, and its manifest checks with sha256sum -c.
# After the home is wiped, restore with the PIN makes a new home with its
# own identity (restored_from: the old one) that logs in, issues under the
# same chain (openssl verify against the original root) and still holds
# the records.  Restore refuses an existing home, and a backup with a
# changed, missing or unlisted file, naming it; nothing of the new home is
# left then.  With --include-pin the restore needs no --pin-file.  The
# restored audit trail verifies, and ca.restore in it names both identities.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

ca_setup
H=$HOME_CA
PIN="$T/pin"
cp "$H/keys/softhsm/user.pin" "$PIN"
cp "$H/root.pem" "$T/root-orig.pem"
id0=$(sed -n 's/^home_id = //p' "$H/amtca.conf")
[ ${#id0} = 32 ] || fail "init recorded no home_id: $(cat "$H/amtca.conf")"

# A fleet job that takes a while (slow commits), backed up mid-run.
N=10
start_sim "$T/sim.log" --devices $N --address-base 127.0.104.1 \
    --fqdn-pattern 'bk%03d.example.test' --user admin --password-file "$PW" \
    --latency-ms 40 --commit-delay-ms 700
hosts_csv "$T/hosts.csv" 'bk%03d.example.test' 127.0.104.1 $N
"$AMTCA" --home "$H" fleet --hosts "$T/hosts.csv" --user admin \
    --password-file "$PW" --concurrency 3 >"$T/f.out" 2>"$T/f.err" &
fpid=$!
for i in $(seq 1 1200); do
	[ "$(grep -c ': enrolled' "$T/f.out" || true)" -ge 2 ] && break
	kill -0 "$fpid" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$fpid" 2>/dev/null || fail "the fleet job ended before the backup: $(cat "$T/f.err")"
"$AMTCA" --home "$H" backup --out "$T/bk" >"$T/b.out" 2>"$T/b.err" ||
    fail "backup during the fleet job: $(cat "$T/b.err")"
kill -0 "$fpid" 2>/dev/null || fail "the fleet job was not running through the backup"
wait "$fpid" || fail "the fleet job failed beside the backup: $(cat "$T/f.err")"
grep -q "token copied and checked" "$T/b.out" || fail "backup did not check the token: $(cat "$T/b.out")"
[ -s "$T/b.err" ] && fail "a backup without --include-pin warned: $(cat "$T/b.err")"
total=$(cert_count "$H")
[ "$total" = $N ] || fail "the fleet job issued $total certificates for $N devices"
for db in keys/ca.db state/state.db; do
	[ "$(sqlite3 "$T/bk/$db" 'PRAGMA integrity_check')" = ok ] || fail "$db in the backup is not a sound database"
done
inbk=$(sqlite3 "$T/bk/keys/ca.db" 'SELECT count(*) FROM certificates')
devbk=$(sqlite3 "$T/bk/state/state.db" 'SELECT count(*) FROM devices')
[ "$inbk" -ge 2 ] && [ "$inbk" -lt "$total" ] || fail "the backup holds $inbk of $total certificates: not a mid-job snapshot"
[ "$devbk" -ge 2 ] || fail "the backup holds $devbk devices"
[ "$(sqlite3 "$T/bk/keys/ca.db" 'SELECT count(*) FROM devices')" = 0 ] || fail "the backup's ca.db holds devices"
ok "backup while a fleet job writes: $inbk of $total certificates, $devbk devices, both stores sound"

# No PIN anywhere in it; the manifest is sha256sum's format and holds.
[ -z "$(find "$T/bk" -name user.pin)" ] || fail "a backup without --include-pin has user.pin"
grep -rqF "$(head -n 1 "$PIN")" "$T/bk" && fail "the PIN's text is in the backup"
(cd "$T/bk" && sha256sum --strict --quiet -c BACKUP_MANIFEST) || fail "sha256sum -c does not accept the manifest"
[ "$(wc -l <"$T/bk/BACKUP_MANIFEST")" = "$(($(find "$T/bk" -type f | wc -l) - 1))" ] ||
    fail "the manifest does not list every file of the backup"
[ "$(stat -c %a "$T/bk")" = 700 ] || fail "the backup directory is not 0700"
grep -q "^home_id = $id0$" "$T/bk/BACKUP_INFO" || fail "BACKUP_INFO lacks the home's identity"
ok "no PIN in the backup; sha256sum -c accepts its manifest of every file"

# Refusals of backup: an existing, non-empty --out.
expect_fail 1 "already exists" "$AMTCA" --home "$H" backup --out "$T/bk"

# The token is copied under the token lock: while another process holds
# it, the backup waits and writes no manifest; then it completes.
flock "$H/keys/softhsm/amtca.lock" sh -c "touch '$T/locked'; while [ ! -e '$T/release' ]; do sleep 0.05; done" &
lpid=$!
for i in $(seq 1 200); do [ -e "$T/locked" ] && break; sleep 0.05; done
[ -e "$T/locked" ] || fail "could not take the token lock"
"$AMTCA" --home "$H" backup --out "$T/bkl" --json >"$T/bl.out" 2>"$T/bl.err" &
bpid=$!
sleep 1
kill -0 "$bpid" 2>/dev/null || fail "backup finished while the token lock was held: $(cat "$T/bl.out" "$T/bl.err")"
[ -e "$T/bkl/BACKUP_MANIFEST" ] && fail "backup wrote its manifest while the token lock was held"
touch "$T/release"
wait "$lpid"
wait "$bpid" || fail "backup after the lock was released: $(cat "$T/bl.err")"
[ -s "$T/bkl/BACKUP_MANIFEST" ] || fail "no manifest after the lock was released"
python3 - "$T/bl.out" "$id0" "$(wc -l <"$T/bkl/BACKUP_MANIFEST")" <<'PY' || fail "backup --json: $(cat "$T/bl.out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["home_id"] == sys.argv[2] and d["token"] is True and d["pin"] is False, d
assert d["files"] == int(sys.argv[3]), d
PY
ok "the token copy waits for the token lock"

# Wipe, restore with the PIN, issue, verify the chain.
stop_sim
rm -rf "$H"
"$AMTCA" restore --from "$T/bk" --home "$H" --pin-file "$PIN" >"$T/r.out" 2>"$T/r.err" ||
    fail "restore: $(cat "$T/r.err")"
grep -q "token login and issuing key checked" "$T/r.out" || fail "restore did not check the token: $(cat "$T/r.out")"
grep -q "beside the original" "$T/r.err" || fail "restore does not warn about running beside the original"
id1=$(sed -n 's/^home_id = //p' "$H/amtca.conf")
[ ${#id1} = 32 ] && [ "$id1" != "$id0" ] || fail "the restored home has identity '$id1' (original $id0)"
grep -q "^restored_from = $id0$" "$H/amtca.conf" || fail "the restored home does not name its origin"
[ "$(grep -c '^home_id' "$H/amtca.conf")" = 1 ] || fail "two home_id lines"
cmp -s "$H/root.pem" "$T/root-orig.pem" || fail "the restored root differs"
for d in "$H" "$H/keys" "$H/state"; do
	[ "$(stat -c %a "$d")" = 700 ] || fail "$d is not 0700 after restore"
done
[ "$(stat -c %a "$H/keys/softhsm/user.pin")" = 600 ] || fail "the restored PIN file is not 0600"
[ "$(cert_count "$H")" = "$inbk" ] || fail "the restored home lists $(cert_count "$H") certificates, the backup had $inbk"
grep -q "directories.tokendir = $H/keys/softhsm/tokens" "$H/keys/softhsm/softhsm2.conf" ||
    fail "the restored token config does not name its own token store"
make_csr "$T/w.csr" ec:P-256
"$AMTCA" --home "$H" issue --fqdn web.example.test --csr "$T/w.csr" --out "$T/w.pem" >/dev/null 2>"$T/i.err" ||
    fail "issue in the restored home: $(cat "$T/i.err")"
openssl verify -CAfile "$T/root-orig.pem" -untrusted "$H/intermediate.pem" "$T/w.pem" >/dev/null ||
    fail "a certificate of the restored CA does not verify to the original root"
"$AMTCA" --home "$H" crl --out "$T/c.pem" >/dev/null 2>"$T/c.err" || fail "crl in the restored home: $(cat "$T/c.err")"
openssl crl -in "$T/c.pem" -noout -verify -CAfile "$H/intermediate.pem" 2>&1 | qgrep 'verify OK' ||
    fail "the restored CA's CRL does not verify"
"$AMTCA" --home "$H" audit verify >"$T/a.out" 2>&1 || fail "audit verify on the restored home: $(cat "$T/a.out")"
"$AMTCA" --home "$H" audit show --json >"$T/a.json" || fail "audit show on the restored home"
python3 - "$T/a.json" "$id0" "$id1" "$inbk" <<'PY' || fail "the restored audit trail does not show the restore: $(cat "$T/a.json")"
import json, sys
e = json.load(open(sys.argv[1]))["entries"]
init = [x for x in e if x["action"] == "ca.init"]
rest = [x for x in e if x["action"] == "ca.restore"]
assert len(init) == 1 and init[0]["detail"].endswith("home=" + sys.argv[2]), init
assert len(rest) == 1 and rest[0]["subject"] == sys.argv[3], rest
assert rest[0]["detail"] == "restored_from=" + sys.argv[2], rest
# The restore follows the backup's entries; the issue after it follows it.
issued = [x for x in e if x["action"] == "cert.issue"]
assert len([x for x in issued if x["seq"] < rest[0]["seq"]]) == int(sys.argv[4]), issued
assert len([x for x in issued if x["seq"] > rest[0]["seq"]]) == 1, issued
PY
ok "wiped and restored with the PIN: new identity, same chain, records kept; issue and CRL verify; the audit trail verifies and records the restore"

# Restore refuses an existing home, and leaves it alone.
expect_fail 1 "already exists" "$AMTCA" restore --from "$T/bk" --home "$H" --pin-file "$PIN"
grep -q "^home_id = $id1$" "$H/amtca.conf" || fail "a refused restore changed the existing home"
ok "restore refuses an existing home"

# A changed, a missing and an unlisted file: refused, named; no home left.
tamper() {
	rm -rf "$T/bk2" "$T/h2"
	cp -a "$T/bk" "$T/bk2"
}
tamper
printf 'x' >>"$T/bk2/keys/ca.db"
expect_fail 1 "keys/ca.db in the backup .* has changed" "$AMTCA" restore --from "$T/bk2" --home "$T/h2" --pin-file "$PIN"
[ -e "$T/h2" ] && fail "a refused restore left a home"
tamper
tok=$(cd "$T/bk2" && ls keys/softhsm/tokens/*/token.object)
printf 'y' | dd of="$T/bk2/$tok" bs=1 seek=40 conv=notrunc 2>/dev/null
expect_fail 1 "$tok in the backup .* has changed" "$AMTCA" restore --from "$T/bk2" --home "$T/h2" --pin-file "$PIN"
tamper
rm "$T/bk2/intermediate.pem"
expect_fail 1 "intermediate.pem is missing" "$AMTCA" restore --from "$T/bk2" --home "$T/h2" --pin-file "$PIN"
tamper
echo evil >"$T/bk2/keys/extra.conf"
expect_fail 1 "keys/extra.conf in the backup .* is not in its manifest" "$AMTCA" restore --from "$T/bk2" --home "$T/h2" --pin-file "$PIN"
tamper
# One hex digit of the first line's hash, flipped.
c=$(head -c 1 "$T/bk2/BACKUP_MANIFEST")
[ "$c" = 0 ] && c=1 || c=0
sed -i "1s/^./$c/" "$T/bk2/BACKUP_MANIFEST"
expect_fail 1 "has changed" "$AMTCA" restore --from "$T/bk2" --home "$T/h2" --pin-file "$PIN"
[ -e "$T/h2" ] && fail "a refused restore left a home"
ok "a changed, missing or unlisted file is refused, named, and leaves no home"

# --include-pin: a warning, the PIN in the backup, a restore without --pin-file.
"$AMTCA" --home "$H" backup --out "$T/bkp" --include-pin >"$T/p.out" 2>"$T/p.err" ||
    fail "backup --include-pin: $(cat "$T/p.err")"
grep -q "warning: .*PIN" "$T/p.err" || fail "--include-pin did not warn: $(cat "$T/p.err")"
[ -f "$T/bkp/keys/softhsm/user.pin" ] && [ "$(head -n 1 "$T/bkp/keys/softhsm/user.pin")" = "$(head -n 1 "$PIN")" ] ||
    fail "--include-pin did not copy the PIN"
"$AMTCA" restore --from "$T/bkp" --home "$T/h3" --json >"$T/r3.out" 2>"$T/r3.err" ||
    fail "restore of a backup with the PIN: $(cat "$T/r3.err")"
python3 - "$T/r3.out" "$id1" <<'PY' || fail "restore with the backup's PIN did not log in: $(cat "$T/r3.out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["token_checked"] is True and d["restored_from"] == sys.argv[2], d
assert len(d["home_id"]) == 32 and d["home_id"] != sys.argv[2], d
PY
grep -q "^restored_from = $id1$" "$T/h3/amtca.conf" || fail "the second restore does not name the first as origin"
"$AMTCA" --home "$T/h3" audit verify >"$T/a3.out" 2>&1 || fail "audit verify after the second restore: $(cat "$T/a3.out")"
[ "$("$AMTCA" --home "$T/h3" audit show --action ca.restore --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')" = 2 ] ||
    fail "the second restore's trail does not hold both restores"
ok "--include-pin warns and carries the PIN; its restore logs in without --pin-file"

# A home of the old layout (amtca.db and softhsm/ at the top) backs up
# and restores as it is.
O="$T/old"
new_ca "$O" --domain example.test
mv "$O/keys/softhsm" "$O/softhsm"
mv "$O/keys/ca.db" "$O/amtca.db"
rm -rf "$O/keys" "$O/state"
sed -i 's|keys/softhsm/|softhsm/|g' "$O/amtca.conf"
sed -i "s|$O/keys/softhsm/tokens|$O/softhsm/tokens|" "$O/softhsm/softhsm2.conf"
"$AMTCA" --home "$O" issue --fqdn old.example.test --csr "$T/w.csr" --out "$T/o.pem" >/dev/null 2>"$T/o.err" ||
    fail "issue in an old home: $(cat "$T/o.err")"
cp "$O/softhsm/user.pin" "$T/opin"
"$AMTCA" --home "$O" backup --out "$T/bko" >/dev/null 2>"$T/bo.err" || fail "backup of an old home: $(cat "$T/bo.err")"
[ -f "$T/bko/amtca.db" ] && [ ! -e "$T/bko/keys" ] && [ ! -e "$T/bko/softhsm/user.pin" ] ||
    fail "the old home's backup is not in its layout: $(cd "$T/bko" && find . -maxdepth 2 | sort | tr '\n' ' ')"
"$AMTCA" restore --from "$T/bko" --home "$T/ho" --pin-file "$T/opin" >"$T/ro.out" 2>"$T/ro.err" ||
    fail "restore of an old home: $(cat "$T/ro.err")"
grep -q "token login and issuing key checked" "$T/ro.out" || fail "the old home's restore did not log in"
[ "$(cert_count "$T/ho")" = 1 ] || fail "the restored old home lost its record"
"$AMTCA" --home "$T/ho" issue --fqdn old2.example.test --csr "$T/w.csr" --out "$T/o2.pem" >/dev/null 2>"$T/o2.err" ||
    fail "issue in the restored old home: $(cat "$T/o2.err")"
openssl verify -CAfile "$O/root.pem" -untrusted "$O/intermediate.pem" "$T/o2.pem" >/dev/null ||
    fail "the restored old home's certificate does not verify"
ok "a home of the old layout backs up and restores as it is"
