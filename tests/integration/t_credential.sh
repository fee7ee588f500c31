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

# The password is nowhere on disk or in any output.  The credentials are in
# the operational state (state/state.db; amtca.db in an older home).
dbs=$(find "$H" -name '*.db' -o -name '*.db-wal' -o -name '*.db-shm')
[ -n "$dbs" ] || fail "no database in $H"
state_db=$(find "$H" -name state.db -o -name amtca.db | head -n 1)
for f in $dbs; do
	if grep -a -q -F -- "$PW" "$f"; then fail "the password is in $f"; fi
done
if grep -r -a -l -F -- "$PW" "$H"; then fail "the password is in the home"; fi
if grep -a -q -F -- "$PW" "$outs"; then fail "the password was printed"; fi
# ...while the user names are (so the grep is looking at the right files).
# shellcheck disable=SC2086
grep -a -q -F operator $dbs || fail "no credential row in the database files"
ok "the password is in no file of the home (database, WAL, token) and no output"

# remove
run credential remove lab || fail "remove: $(cat "$T/e")"
run credential list --json
python3 -c 'import json,sys; assert [c["name"] for c in json.load(open(sys.argv[1]))["credentials"]] == ["fips"]' "$T/o" ||
	fail "remove: $(cat "$T/o")"
expect_fail 1 'no credential lab' ca credential remove lab
expect_fail 2 'subcommand' ca credential show lab
ok "remove forgets a credential; unknown names and subcommands fail"

# --- through the signer process, as a front end talks to it ---------------
# A device the operational state says has work pending, by hand (as the
# service's job runner would record it).
python3 - "$state_db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO devices (fqdn, state, updated_at, cred_ref) VALUES "
           "('pend.example.test', 'pending', 1, 'credential:fips'), "
           "('done.example.test', 'enrolled', 1, 'credential:fips')")
db.commit()
PY
python3 - "$AMTCA" "$H" "$PW" "$T/signer.err" <<'PY' || fail "the signer's credential requests"
import socket, struct, subprocess, sys

amtca, home, pw, err = sys.argv[1:5]

def u8(v): return bytes([v])
def u32(v): return struct.pack(">I", v & 0xffffffff)
def s(b):
    b = b.encode() if isinstance(b, str) else b
    return u32(len(b)) + b
def frame(t, i, body):
    b = u8(t) + u32(i) + body
    return u32(len(b)) + b
def recv_frame(sk):
    def exact(n):
        b = b""
        while len(b) < n:
            c = sk.recv(n - len(b))
            if not c:
                return None
            b += c
        return b
    h = exact(4)
    return None if h is None else exact(struct.unpack(">I", h)[0])
def result(body): return struct.unpack(">i", body[5:9])[0]
def strings(body, off, n):
    out = []
    for _ in range(n):
        l = struct.unpack(">I", body[off:off + 4])[0]
        out.append(body[off + 4:off + 4 + l].decode())
        off += 4 + l
    return out

mine, child = socket.socketpair()
proc = subprocess.Popen([amtca, "--home", home, "signer", "--fds", str(child.fileno())],
                        pass_fds=[child.fileno()], stdout=subprocess.DEVNULL,
                        stderr=open(err, "w"))
child.close()
mine.settimeout(60)
hello = recv_frame(mine)
assert hello is not None and hello[0] == 1 and result(hello) == 0, hello

def call(i, t, *fields):
    mine.sendall(frame(t, i, b"".join(s(f) for f in fields)))
    r = recv_frame(mine)
    assert r is not None and r[0] == 0x80 | t, r
    return r

# A front end may not add or replace a credential.
r = call(1, 8, "fips", "mallory", "known-to-the-front-end")
e_denied = result(r)
assert e_denied < 0, r
# Work pending: the sealed user and password come back.
r = call(2, 9, "fips", "pend.example.test")
assert result(r) == 0, r
assert strings(r, 9, 2) == ["admin", pw], "wrong credential returned"
# No work pending, no record: refused alike; a removed credential too.
for i, (name, fqdn, want) in enumerate([("fips", "done.example.test", e_denied),
                                        ("fips", "nobody.example.test", e_denied),
                                        ("lab", "pend.example.test", None)]):
    r = call(10 + i, 9, name, fqdn)
    assert result(r) < 0 and (want is None or result(r) == want), (name, fqdn, r)
    assert pw.encode() not in r
mine.close()
assert proc.wait(timeout=30) == 0, "signer exit status"
PY
if grep -a -q -F -- "$PW" "$T/signer.err"; then fail "the signer logged the password"; fi
grep -q 'cred_get' "$T/signer.err" || fail "the signer did not log cred_get: $(cat "$T/signer.err")"
run credential list
grep -Eq '^fips +admin ' "$T/o" || fail "a front end's put changed the credential: $(cat "$T/o")"
ok "through the signer process: a front end cannot put; get only with work pending"
