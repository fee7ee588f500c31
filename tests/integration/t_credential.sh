#!/usr/bin/env bash
# amtca credential add/list/remove (issue 9, section 1, AMT credentials):
#   - add seals the password under a token key: the password appears in no
#     file of the home (the SQLite database, its WAL and shared memory, the
#     token) and in no output; list shows names, users, mechanism, dates;
#   - the password file is checked like a PIN file; no option takes a
#     password on the command line;
#   - add replaces (created_at kept), remove forgets, unknown names fail;
#   - credential_mechanism in amtca.conf forces the AES-CBC + HMAC
#     fallback, and a bad value is a configuration error.
source "$(dirname "$0")/lib.sh"

H="$T/ca"
PW='Cr3d-t3st-pa55word-QWXZ'
new_ca "$H" --domain example.test
ca() { "$AMTCA" --home "$H" "$@"; }
# Every output of every command below, for the final check.
outs="$T/outputs"
: >"$outs"
run() { # args...: run ca, keep its stdout and stderr
	local rc=0
	ca "$@" >"$T/o" 2>"$T/e" || rc=$?
	cat "$T/o" "$T/e" >>"$outs"
	return $rc
}

printf '%s\n' "$PW" >"$T/pw"
chmod 600 "$T/pw"

# add, then list (text and JSON).
run credential add lab --user admin --password-file "$T/pw" ||
	fail "credential add: $(cat "$T/e")"
grep -q 'credential lab added' "$T/o" || fail "add said: $(cat "$T/o")"
run credential list || fail "list: $(cat "$T/e")"
grep -Eq '^lab +admin +aes-256-gcm ' "$T/o" || fail "list: $(cat "$T/o")"
run credential list --json || fail "list --json: $(cat "$T/e")"
python3 - "$T/o" <<'PY' || fail "list --json: $(cat "$T/o")"
import json, sys
d = json.load(open(sys.argv[1]))
c = d["credentials"]
assert len(c) == 1, c
assert c[0]["name"] == "lab" and c[0]["user"] == "admin", c
assert c[0]["mechanism"] == "aes-256-gcm", c
assert set(c[0]) == {"name", "user", "mechanism", "created_at", "updated_at"}, c
PY
created=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["credentials"][0]["created_at"])' "$T/o")
ok "add seals with AES-GCM; list shows name, user, mechanism and dates"

# The password file is vetted like a PIN file; no password in argv.
cp "$T/pw" "$T/loose"
chmod 666 "$T/loose"
expect_fail 1 'password file' ca credential add lab2 --user admin --password-file "$T/loose"
# getopt would take "--password" for --password-file and echo the value.
expect_fail 2 'command line' ca credential add lab2 --user admin --password "$PW"
expect_fail 2 'command line' ca credential add lab2 --user admin --pass="$PW"
if grep -a -q -F -- "$PW" "$T/err"; then fail "a password in argv was echoed"; fi
expect_fail 2 'password-file' ca credential add lab2 --user admin
expect_fail 1 'credential name' ca credential add ../lab --user admin --password-file "$T/pw"
expect_fail 1 'AMT user' ca credential add lab2 --user 'a:b' --password-file "$T/pw"
run credential list --json
python3 -c 'import json,sys; assert [c["name"] for c in json.load(open(sys.argv[1]))["credentials"]] == ["lab"]' "$T/o" ||
	fail "a refused add left a record: $(cat "$T/o")"
ok "loose password files, argv passwords, bad names and users are refused"

# Replace: the user changes, created_at stays.
sleep 1
run credential add lab --user operator --password-file "$T/pw" || fail "replace: $(cat "$T/e")"
run credential list --json
python3 - "$T/o" "$created" <<'PY' || fail "replace: $(cat "$T/o")"
import json, sys
c = json.load(open(sys.argv[1]))["credentials"]
assert len(c) == 1 and c[0]["user"] == "operator", c
assert c[0]["created_at"] == sys.argv[2], c
assert c[0]["updated_at"] > c[0]["created_at"], c
PY
ok "add replaces a credential of the same name and keeps its creation date"

# The fallback mechanism, forced from amtca.conf.
cp "$H/amtca.conf" "$T/conf.orig"
echo 'credential_mechanism = aes-256-cbc-hmac-sha256' >>"$H/amtca.conf"
run credential add fips --user admin --password-file "$T/pw" || fail "fallback add: $(cat "$T/e")"
run credential list
grep -Eq '^fips +admin +aes-256-cbc-hmac-sha256 ' "$T/o" || fail "fallback list: $(cat "$T/o")"
cp "$T/conf.orig" "$H/amtca.conf"
echo 'credential_mechanism = rot13' >>"$H/amtca.conf"
expect_fail 1 'credential_mechanism' ca credential add x --user admin --password-file "$T/pw"
cp "$T/conf.orig" "$H/amtca.conf"
ok "credential_mechanism forces AES-CBC + HMAC-SHA-256; a bad value is refused"

# The password is nowhere on disk or in any output.
ls "$H"/amtca.db* >/dev/null || fail "no database in $H"
for f in "$H"/amtca.db*; do
	if grep -a -q -F -- "$PW" "$f"; then fail "the password is in $f"; fi
done
if grep -r -a -l -F -- "$PW" "$H"; then fail "the password is in the home"; fi
if grep -a -q -F -- "$PW" "$outs"; then fail "the password was printed"; fi
# ...while the user names are (so the grep is looking at the right files).
grep -a -q -F operator "$H"/amtca.db* || fail "no credential row in the database files"
ok "the password is in no file of the home (database, WAL, token) and no output"

# remove
run credential remove lab || fail "remove: $(cat "$T/e")"
run credential list --json
python3 -c 'import json,sys; assert [c["name"] for c in json.load(open(sys.argv[1]))["credentials"]] == ["fips"]' "$T/o" ||
	fail "remove: $(cat "$T/o")"
expect_fail 1 'no credential lab' ca credential remove lab
expect_fail 2 'subcommand' ca credential show lab
ok "remove forgets a credential; unknown names and subcommands fail"
