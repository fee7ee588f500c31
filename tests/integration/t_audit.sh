#!/usr/bin/env bash
# The audit trail (issue 10, sections 3 and 7; docs/audit.md):
#   - init, issue, revoke and crl append entries naming the OS user@host;
#     show filters by action and time;
#   - a seal at least every 100 entries, each verifiable, the token anchored;
#   - an independent verifier (hashlib + openssl) accepts a clean export;
#   - editing, deleting, inserting or swapping one entry with sqlite3 is
#     found by `audit verify`, which names the entry; so is a chain rebuilt
#     with valid hashes (the seals), and a truncation back before the last
#     seal (the token's anchor), which the signer then also refuses to seal.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

H="$T/home"
new_ca "$H" --domain example.test
ca() { "$AMTCA" --home "$H" "$@"; }
db_of() { # the CA's records, wherever this layout keeps them
	if [ -f "$1/keys/ca.db" ]; then echo "$1/keys/ca.db"; else echo "$1/amtca.db"; fi
}
ME="$(id -un)@$(hostname)"
VERIFY_PY="$(dirname "$0")/audit_verify.py"

# --- entries and actors ----------------------------------------------------
make_csr "$T/a.csr" rsa:2048 a.example.test
ca issue --fqdn a.example.test --csr "$T/a.csr" --out "$T/a.pem" >/dev/null
SA=$(openssl x509 -in "$T/a.pem" -noout -serial | sed 's/serial=//')
ca revoke "$SA" --reason keyCompromise >/dev/null
ca crl --out "$T/crl.pem" >/dev/null
ca audit show --json >"$T/show.json"
python3 - "$T/show.json" "$ME" "$SA" <<'EOF' || fail "entries: $(cat "$T/show.json")"
import json, sys
es, me, sa = json.load(open(sys.argv[1]))["entries"], sys.argv[2], sys.argv[3]
acts = [e["action"] for e in es]
assert acts[:2] == ["ca.init", "audit.seal"], acts
assert [e["seq"] for e in es] == list(range(1, len(es) + 1)), es
by = {e["action"]: e for e in es}
for a in ("ca.init", "cert.issue", "cert.revoke", "crl.create"):
    assert by[a]["actor"] == me, (a, by[a], me)
assert by["cert.issue"]["subject"] == sa and "fqdn=a.example.test" in by["cert.issue"]["detail"], by
assert by["cert.revoke"]["subject"] == sa and "reason=1" in by["cert.revoke"]["detail"], by
assert "revoked=1" in by["crl.create"]["detail"], by
EOF
ok "init, issue, revoke and crl are entries by $ME, with serial and detail"

n=$(ca audit show --action cert.issue --json | python3 -c 'import json,sys; e=json.load(sys.stdin)["entries"]; assert all(x["action"]=="cert.issue" for x in e); print(len(e))')
[ "$n" = 1 ] || fail "show --action cert.issue listed $n entries"
n=$(ca audit show --since 2099-01-01T00:00:00Z --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
[ "$n" = 0 ] || fail "show --since in the future listed $n entries"
ca audit show | qgrep "cert.revoke" || fail "show (text) lacks cert.revoke"
ok "show filters by --action and --since"

# A repeated revocation changes nothing and appends nothing.
before=$(ca audit show --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
ca revoke "$SA" --reason superseded >/dev/null 2>&1
after=$(ca audit show --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
[ "$before" = "$after" ] || fail "an idempotent revoke appended an entry ($before -> $after)"
ok "a revoke that changes nothing is no entry"

# --- a seal at least every 100 entries -----------------------------------------
for i in $(seq 1 104); do
	ca issue --fqdn "h$i.example.test" --csr "$T/a.csr" --out /dev/null >/dev/null
done
ca audit export >"$T/export.jsonl"
python3 - "$T/export.jsonl" <<'EOF' || fail "seal spacing: $(grep seal "$T/export.jsonl" | cut -c1-60)"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
head = max(o["seq"] for o in lines if "seq" in o)
seals = [o["seal"] for o in lines if "seal" in o]
assert head > 105 and len(seals) >= 2, (head, seals)
# Never more than 100 entries unsealed: between seals, and at the head.
for a, b in zip([0] + seals, seals + [head]):
    assert b - a <= 101, (a, b, seals)
acts = {o["seq"]: o["action"] for o in lines if "seq" in o}
assert all(acts[s] == "audit.seal" for s in seals), seals
EOF
ok "sealed at least every 100 entries ($(grep -c '"seal"' "$T/export.jsonl") seals)"

# --- verify, and the independent verifier ------------------------------------
ca audit verify >"$T/v.out" || fail "verify of a clean trail failed: $(cat "$T/v.out")"
grep -q "audit trail verified" "$T/v.out" || fail "verify said: $(cat "$T/v.out")"
ca audit pubkey >"$T/audit.pub"
openssl pkey -pubin -in "$T/audit.pub" -noout || fail "audit pubkey is not a PEM public key"
python3 "$VERIFY_PY" "$T/export.jsonl" "$T/audit.pub" >"$T/iv.out" ||
	fail "independent verifier refused a clean export: $(cat "$T/iv.out")"
ok "audit verify and the independent verifier accept the clean trail ($(cat "$T/iv.out"))"
# The independent verifier is not a rubber stamp.
sed 's/"actor":"[^"]*","action":"cert.issue"/"actor":"mallory@x","action":"cert.issue"/' \
    "$T/export.jsonl" >"$T/bad.jsonl"
if python3 "$VERIFY_PY" "$T/bad.jsonl" "$T/audit.pub" >/dev/null; then
	fail "independent verifier accepted an edited export"
fi
sig_bad=$(python3 -c 'import json,sys,base64
out=[]
for l in open(sys.argv[1]):
    o=json.loads(l)
    if "seal" in o:
        s=bytearray(base64.b64decode(o["signature"])); s[-1]^=1; o["signature"]=base64.b64encode(bytes(s)).decode()
        l=json.dumps(o, separators=(",",":"))+"\n"
    out.append(l)
open(sys.argv[2],"w").writelines(out)' "$T/export.jsonl" "$T/badsig.jsonl"; python3 "$VERIFY_PY" "$T/badsig.jsonl" "$T/audit.pub" || true)
case $sig_bad in *"bad signature"*) ;; *) fail "independent verifier: bad seal signature not found: $sig_bad" ;; esac
ok "the independent verifier refuses an edited entry and a bad seal signature"

# --- tampering with single entries, each on its own copy of the home ---------
tamper() { # name sql... : a copy of the home with the SQL applied to its records
	local c="$T/$1"
	shift
	cp -a "$H" "$c"
	sqlite3 "$(db_of "$c")" "$@"
	echo "$c"
}
H17=$(sqlite3 "$(db_of "$H")" "SELECT hex(hash) FROM audit WHERE seq = 16")

c=$(tamper edit "UPDATE audit SET actor = 'mallory@elsewhere' WHERE seq = 17")
expect_fail 1 "entry 17: hash mismatch (edited)" "$AMTCA" --home "$c" audit verify
ok "an edited entry: $(cat "$T/err")"

c=$(tamper delete "DELETE FROM audit WHERE seq = 17")
expect_fail 1 "entry 17: missing (deleted)" "$AMTCA" --home "$c" audit verify
c=$(tamper delete-renumber "DELETE FROM audit WHERE seq = 17; UPDATE audit SET seq = seq - 1 WHERE seq > 17")
expect_fail 1 "entry 17: missing (deleted)" "$AMTCA" --home "$c" audit verify
ok "a deleted entry, with or without renumbering: $(cat "$T/err")"

# An inserted entry whose own hash and link are right: it still shows.
FAKE=$(python3 - "$H17" <<'EOF'
import hashlib, struct, sys
prev = bytes.fromhex(sys.argv[1])
f = lambda s: struct.pack(">I", len(s)) + s
h = hashlib.sha256(prev + struct.pack(">QQ", 17, 1800000000) + f(b"mallory@x")
                   + f(b"cert.revoke") + f(b"00") + f(b"")).hexdigest()
print(h)
EOF
)
c=$(tamper insert "UPDATE audit SET seq = -seq WHERE seq >= 17; UPDATE audit SET seq = 1 - seq WHERE seq < 0;
    INSERT INTO audit VALUES (17, 1800000000, 'mallory@x', 'cert.revoke', '00', '', x'$H17', x'$FAKE')")
expect_fail 1 "entry 17: not part of the chain (inserted" "$AMTCA" --home "$c" audit verify
ok "an inserted entry: $(cat "$T/err")"

c=$(tamper swap "UPDATE audit SET seq = -1 WHERE seq = 17; UPDATE audit SET seq = 17 WHERE seq = 18; UPDATE audit SET seq = 18 WHERE seq = -1")
expect_fail 1 "entry 17: out of order, swapped with entry 18 (reordered)" "$AMTCA" --home "$c" audit verify
ok "two swapped entries: $(cat "$T/err")"

# A chain rebuilt from entry 17 on with valid hashes: the seals catch it.
c=$(tamper rebuilt "UPDATE audit SET actor = 'mallory@elsewhere' WHERE seq = 17")
python3 - "$(db_of "$c")" <<'EOF'
import hashlib, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
f = lambda s: struct.pack(">I", len(s.encode())) + s.encode()
prev = db.execute("SELECT hash FROM audit WHERE seq = 16").fetchone()[0]
for seq, t, a, ac, s, d in db.execute("SELECT seq, time, actor, action, subject, detail FROM audit WHERE seq >= 17 ORDER BY seq").fetchall():
    h = hashlib.sha256(prev + struct.pack(">QQ", seq, t) + f(a) + f(ac) + f(s) + f(d)).digest()
    db.execute("UPDATE audit SET prev = ?, hash = ? WHERE seq = ?", (prev, h, seq))
    prev = h
db.commit()
EOF
expect_fail 1 "the entry's hash is not the sealed one" "$AMTCA" --home "$c" audit verify
ok "a chain rewritten with valid hashes: $(cat "$T/err")"

# --- truncation back before the last seal --------------------------------------
LAST=$(sqlite3 "$(db_of "$H")" "SELECT max(seq) FROM audit_seals")
c=$(tamper truncate "DELETE FROM audit WHERE seq >= $((LAST - 5)); DELETE FROM audit_seals WHERE seq >= $((LAST - 5))")
expect_fail 1 "truncated" "$AMTCA" --home "$c" audit verify
ok "a truncation that removed the last seal: $(cat "$T/err")"
# The signer does not seal over it (that would move the anchor past the evidence).
expect_fail 1 "refusing to seal" "$AMTCA" --home "$c" audit seal
expect_fail 1 "truncated" "$AMTCA" --home "$c" audit verify
ok "the signer refuses to seal a truncated trail, and verify still finds it"

# --- seal on demand -------------------------------------------------------------
ca audit seal >"$T/seal.out" || fail "audit seal failed"
s=$(sed -n 's/^sealed the audit trail at entry \([0-9]*\)$/\1/p' "$T/seal.out")
[ -n "$s" ] && [ "$s" = "$(sqlite3 "$(db_of "$H")" 'SELECT max(seq) FROM audit')" ] ||
	fail "audit seal: $(cat "$T/seal.out")"
ca audit verify --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"] and d["anchor"] == d["last_seal"] == '"$s"', d' ||
	fail "verify --json after a seal"
ok "audit seal seals the head ($s) and the token anchor follows"

# --- enrollment through the signer process ---------------------------------------
# `enroll` parses WS-MAN, so it issues through the signer in its own process:
# that process appends (and would seal); the actor is the operator's user@host.
HOME_CA="$H"
PW="$T/amt-password"
password_file "$PW" "Adm1n-$RANDOM-pw"
sim_up "$T/sim.log" 127.0.131.1 e1.example.test
enroll 127.0.131.1 e1.example.test >"$T/enroll.out" 2>&1 || fail "enroll failed: $(cat "$T/enroll.out")"
ca audit show --action cert.issue --json | python3 -c '
import json, sys
e = [x for x in json.load(sys.stdin)["entries"] if "device=e1.example.test" in x["detail"]]
assert len(e) == 1 and e[0]["actor"] == sys.argv[1], (e, sys.argv[1])' "$ME" ||
	fail "no cert.issue entry by $ME for the enrolled device"
ca audit seal >/dev/null || fail "audit seal after an enrollment failed"
ca audit verify >"$T/v2.out" || fail "verify after enrollment: $(cat "$T/v2.out")"
ok "an enrollment through the signer process is an entry by $ME; the trail still verifies"
