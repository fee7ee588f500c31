#!/usr/bin/env bash
# Every state change in the audit trail (issue 10, section 3; docs/audit.md
# "Actions"), beyond issuance, revocation, CRL and init (t_audit.sh):
#   - est-client add/remove and admin add/revoke are client.add/remove
#     entries by the OS user@host, in the record's own transaction;
#   - simplereenroll rebinds a client: client.rebind by the client itself;
#   - credential add/replace/remove: entries by user@host, never the password;
#   - a burst of failed Basic requests is auth.fail entries aggregated per
#     claimed name per minute: at most one per name per minute, the counts
#     adding up, never one per request;
#   - the trail still verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

for c in curl openssl sqlite3; do
	command -v $c >/dev/null || fail "$c is missing"
done
HOME_CA="$T/home"
PW="$T/amt-password"
new_ca "$HOME_CA" --domain example.test
password_file "$PW" "Adm1n-$RANDOM-pw"
ca() { "$AMTCA" --home "$HOME_CA" "$@"; }
ME="$(id -un)@$(hostname)"
A=127.0.151.200
SVC=svc.example.test
PORT=8443

# --- client records ------------------------------------------------------------
password_file "$T/pw" "est-$RANDOM-secret"
ca est-client add est1 --allow example.test --allow b.example.test --password-file "$T/pw" >/dev/null
make_csr "$T/gw.csr" ec:prime256v1 gw.example.test
ca est-client add gw.example.test --allow gw.example.test --csr "$T/gw.csr" --out "$T/gw.pem" >/dev/null
make_csr "$T/alice.csr" ec:prime256v1 alice
ca admin add alice --csr "$T/alice.csr" --out "$T/alice.pem" >/dev/null
ca admin revoke alice --reason keyCompromise >/dev/null
ca est-client remove est1 >/dev/null
ca est-client remove est1 >/dev/null 2>&1 || true
ca audit show --json >"$T/c.json"
python3 - "$T/c.json" "$ME" <<'PY' || fail "client entries: $(cat "$T/c.json")"
import json, sys
es, me = json.load(open(sys.argv[1]))["entries"], sys.argv[2]
def of(a, s): return [e for e in es if e["action"] == a and e["subject"] == s]
add = of("client.add", "est1")
assert len(add) == 1 and add[0]["actor"] == me, add
assert add[0]["detail"] == "role=est allow=example.test,b.example.test", add
gw = of("client.add", "gw.example.test")
assert len(gw) == 1 and gw[0]["detail"].startswith("role=est serial="), gw
al = of("client.add", "alice")
assert len(al) == 1 and al[0]["actor"] == me and al[0]["detail"].startswith("role=admin serial="), al
rm = of("client.remove", "alice")
assert len(rm) == 1 and rm[0]["actor"] == me and "role=admin" in rm[0]["detail"], rm
rm = of("client.remove", "est1")
assert len(rm) == 1 and rm[0]["actor"] == me, rm   # the repeat appended nothing
PY
ok "est-client add/remove and admin add/revoke are client.add/client.remove entries by $ME; a repeat removal is none"

# --- credentials ---------------------------------------------------------------------
password_file "$T/cpw" "Cred-$RANDOM-Secret"
ca credential add lab --user admin --password-file "$T/cpw" >/dev/null 2>"$T/e" || fail "credential add: $(cat "$T/e")"
ca credential add lab --user other --password-file "$T/cpw" >/dev/null 2>"$T/e" || fail "credential replace: $(cat "$T/e")"
ca credential remove lab >/dev/null 2>"$T/e" || fail "credential remove: $(cat "$T/e")"
ca credential remove lab >/dev/null 2>&1 && fail "removing a removed credential succeeded"
ca audit show --json >"$T/k.json"
grep -qF "$(cat "$T/cpw")" "$T/k.json" && fail "the AMT password is in the trail"
ca audit export | qgrep -F "$(cat "$T/cpw")" && fail "the AMT password is in the export"
python3 - "$T/k.json" "$ME" <<'PY' || fail "credential entries: $(cat "$T/k.json")"
import json, sys
es, me = json.load(open(sys.argv[1]))["entries"], sys.argv[2]
ks = [(e["action"], e["subject"], e["detail"], e["actor"]) for e in es if e["action"].startswith("credential.")]
assert ks == [("credential.add", "lab", "user=admin", me), ("credential.replace", "lab", "user=other", me),
              ("credential.remove", "lab", "user=other", me)], ks
PY
ok "credential add/replace/remove are entries by $ME naming the AMT user, never the password; a failed remove is none"

# --- the service: a rebind and a burst of failed Basic requests ------------------------
password_file "$T/pw2" "est-$RANDOM-secret2"
ca est-client add est2 --allow example.test --password-file "$T/pw2" >/dev/null
"$AMTCA" --home "$HOME_CA" serve --listen "$A:$PORT" --name "$SVC" --status-listen "$A:9194" \
    --reconcile-every 0 >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
on_exit "kill -TERM $SERVE_PID 2>/dev/null; wait $SERVE_PID 2>/dev/null"
wait_ready "$SERVE_PID" "$T/serve.out" "$T/serve.err" serve
URL="https://$SVC:$PORT/.well-known/est"
C=(curl -sS --max-time 30 --cacert "$HOME_CA/root.pem" --resolve "$SVC:$PORT:$A")
post() {
	local op=$1 csr=$2 out=$3
	shift 3
	openssl req -in "$csr" -outform DER | base64 >"$T/body.b64"
	"${C[@]}" -o "$out" -w '%{http_code}' -H 'Content-Type: application/pkcs10' \
	    --data-binary @"$T/body.b64" "$@" "$URL/$op"
}
s=$(post simplereenroll "$T/gw.csr" "$T/gw2.b64" --cert "$T/gw.pem" --key "$T/gw.csr.key")
[ "$s" = 200 ] || fail "simplereenroll: HTTP $s $(cat "$T/gw2.b64")"

make_csr "$T/www.csr" ec:prime256v1 www.example.test
start_min=$(( $(date +%s) / 60 ))
before=$(ca audit show --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
codes=""
for i in $(seq 1 24); do
	codes="$codes $(post simpleenroll "$T/www.csr" "$T/bad.out" -u "est2:wrong-$i")"
	codes="$codes $(post simpleenroll "$T/www.csr" "$T/bad.out" -u "ghost$((i % 2)):wrong")"
	codes="$codes $(post simpleenroll "$T/www.csr" "$T/bad.out" -u 'bad name!:x')"
done
mid=$(ca audit show --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
end_min=$(( $(date +%s) / 60 ))
echo "$codes" | tr ' ' '\n' | qgrep -x 401 || fail "no 401 in the burst: $codes"
echo "$codes" | tr ' ' '\n' | qgrep -x 200 && fail "a bad password was accepted: $codes"
ca audit show --json >"$T/s.json"
python3 - "$T/s.json" "$before" "$mid" "$start_min" "$end_min" <<'PY' || fail "service entries: $(cat "$T/s.json")"
import json, sys, collections
es = json.load(open(sys.argv[1]))["entries"]
before, mid, m0, m1 = map(int, sys.argv[2:])
rb = [e for e in es if e["action"] == "client.rebind"]
assert len(rb) == 1 and rb[0]["actor"] == "gw.example.test" and rb[0]["subject"] == "gw.example.test", rb
assert rb[0]["detail"].startswith("serial="), rb
af = [e for e in es if e["action"] == "auth.fail"]
minutes = m1 - m0 + 1
per = collections.Counter(e["subject"] for e in af)
total = collections.Counter()
for e in af:
    d = dict(w.split("=", 1) for w in e["detail"].split())
    assert m0 <= int(d["minute"]) <= m1 and e["actor"] == "signer", e
    total[e["subject"]] += int(d["count"])
for s, n in per.items():
    assert n <= minutes, ("more than one entry per name per minute", s, n, minutes)
assert per["est2"] >= 1 and total["est2"] >= 2, (per, total)
assert per["-"] >= 1, per       # names that are no client name
# 72 failed requests wrote at most (names x minutes) entries, and before the
# minute ended, none per request (the burst within one minute wrote nothing).
assert len(af) <= 4 * minutes, len(af)
if minutes == 1:
    assert mid == before, ("entries written during the burst", before, mid)
print("auth.fail entries:", len(af), "failures counted:", sum(total.values()), "minutes:", minutes)
PY
ok "simplereenroll is client.rebind by the client; 72 failed Basic requests are at most one auth.fail per name per minute, written when the minute ends"

ca audit verify >"$T/v.out" 2>&1 || fail "audit verify: $(cat "$T/v.out")"
ok "the trail verifies"
