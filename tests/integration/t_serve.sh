#!/usr/bin/env bash
# amtca serve: the service core, the publication and the status page.
# Properties: "ready" once every listener accepts; TLS 1.2 and 1.3 verify
# under our root for --name, TLS 1.1 is refused, a client certificate is
# requested but not required; the front end runs as nobody, cannot read
# the keys and maps no PKCS#11 module; /chain.pem is byte-equal to `amtca
# chain` over HTTPS and plain HTTP, and the other publication paths serve
# what the home holds; a CLI revoke shows in /crl and `openssl verify
# -crl_check` then rejects the certificate; 404, 405, 413 (announced and
# chunked), oversized headers; headless Chromium renders the status page
# and its DOM shows the counts `amtca devices --json` reports; /metrics is
# Prometheus text with the same counts; SIGTERM exits 0 within 10 s; a
# restart reuses the stored service certificate; --tls-cert/--tls-key;
# --status-listen unix: (mode 0660); option errors.
# Addresses: 127.0.71.x (amtsim 1-4, serve at 200 and 201).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

[ "$(id -u)" = 0 ] || { echo "skip - needs root for --user nobody"; exit 0; }
for c in curl openssl chromium setpriv; do
	command -v $c >/dev/null || fail "$c is missing (scripts/deps.sh installs it)"
done

ca_setup
A=127.0.71.200
FQDN=svc.example.test
HTTPS=$A:8443
PUB=$A:8080
STATUS=$A:9193

# Devices for the status page: three enrolled, one whose password is
# wrong (auth_failed, not retried).
sim_key_pool_fill 8
start_sim "$T/sim.log" --devices 4 --address-base 127.0.71.1 \
    --fqdn-pattern 'sv%02d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL"
hosts_csv "$T/hosts.csv" 'sv%02d.example.test' 127.0.71.1 3
password_file "$T/wrong-pw" "not-the-password"
echo "sv03.example.test,127.0.71.4,admin,$T/wrong-pw" >>"$T/hosts.csv"
fleet --hosts "$T/hosts.csv" --json >"$T/fleet.json" 2>"$T/fleet.err" || true
"$AMTCA" --home "$HOME_CA" devices --json >"$T/devices.json"
python3 - "$T/devices.json" <<'PY' || fail "fleet did not leave 3 enrolled and 1 auth_failed: $(cat "$T/fleet.err")"
import collections, json, sys
c = collections.Counter(d["state"] for d in json.load(open(sys.argv[1]))["devices"])
assert c["enrolled"] == 3 and c["auth_failed"] == 1, c
PY

# start_serve LOG ARGS...: amtca serve in the background, wait for
# "ready" on stdout; sets SERVE_PID.
start_serve() {
	local log=$1
	shift
	"$AMTCA" --home "$HOME_CA" serve "$@" >"$log.out" 2>"$log.err" &
	SERVE_PID=$!
	on_exit "kill -TERM $SERVE_PID 2>/dev/null; wait $SERVE_PID 2>/dev/null"
	wait_ready "$SERVE_PID" "$log.out" "$log.err" serve
}

# stop_serve: SIGTERM, which must end it with status 0 within 10 s.
stop_serve() {
	local t0 t1 rc=0 i
	t0=$(date +%s%N)
	kill -TERM "$SERVE_PID"
	for ((i = 0; i < 200; i++)); do
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$SERVE_PID" 2>/dev/null && fail "serve still running 10 s after SIGTERM"
	wait "$SERVE_PID" || rc=$?
	t1=$(date +%s%N)
	[ "$rc" = 0 ] || fail "serve exited $rc on SIGTERM"
	STOP_MS=$(((t1 - t0) / 1000000))
}

start_serve "$T/s1" --listen "$HTTPS" --name "$FQDN" --publish-listen "$PUB" \
    --status-listen "$STATUS" --user nobody --reconcile-every 0
[ "$(cat "$T/s1.out")" = ready ] || fail "stdout is not just ready: $(cat "$T/s1.out")"
ok "serve prints ready once its listeners accept"

# --- privileges ---------------------------------------------------------
read -r _ ruid euid suid fsuid < <(grep '^Uid:' /proc/$SERVE_PID/status)
nobody=$(id -u nobody)
[ "$ruid $euid $suid $fsuid" = "$nobody $nobody $nobody $nobody" ] ||
    fail "front end uids are $ruid $euid $suid $fsuid, not nobody's"
grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$SERVE_PID/status || fail "no NoNewPrivs"
grep -q softhsm /proc/$SERVE_PID/maps && fail "the front end maps the PKCS#11 module"
KEYS="$HOME_CA/keys"
[ -d "$KEYS" ] || KEYS="$HOME_CA/softhsm"
setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups \
    ls "$KEYS" >/dev/null 2>&1 && fail "nobody can read $KEYS"
ok "front end runs as nobody (NoNewPrivs), maps no PKCS#11 module, cannot read ${KEYS##*/}/"

# --- TLS ----------------------------------------------------------------
for v in tls1_2 tls1_3; do
	openssl s_client -"$v" -connect "$HTTPS" -servername "$FQDN" \
	    -verify_hostname "$FQDN" -CAfile "$HOME_CA/root.pem" \
	    -verify_return_error </dev/null >"$T/$v.out" 2>&1 ||
	    fail "$v handshake does not verify: $(tail -5 "$T/$v.out")"
	want=TLSv1.2
	[ $v = tls1_3 ] && want=TLSv1.3
	grep -q "Protocol *: *$want" "$T/$v.out" || qgrep "New, $want," "$T/$v.out" ||
	    fail "$v: not $want: $(grep -i protocol "$T/$v.out")"
done
grep -q 'Acceptable client certificate CA names' "$T/tls1_2.out" ||
    fail "no client certificate requested"
grep -A3 'Acceptable client certificate CA names' "$T/tls1_2.out" | qgrep 'Issuing CA' ||
    fail "client certificates are not requested under our CA"
# The client is willing (SECLEVEL=0): the refusal is the server's.
openssl s_client -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -connect "$HTTPS" \
    -servername "$FQDN" </dev/null >"$T/tls1_1.out" 2>&1 && fail "TLS 1.1 handshake succeeded"
grep -q 'Cipher is (NONE)' "$T/tls1_1.out" || fail "TLS 1.1: $(tail -5 "$T/tls1_1.out")"
ok "TLS 1.2 and 1.3 verify for $FQDN under our root; TLS 1.1 refused; client certificate requested, not required"

# --- publication ----------------------------------------------------------
C=(curl -sS --max-time 20)
CS=("${C[@]}" --cacert "$HOME_CA/root.pem" --resolve "$FQDN:8443:$A")
"$AMTCA" --home "$HOME_CA" chain >"$T/chain.pem"
"${CS[@]}" "https://$FQDN:8443/chain.pem" -o "$T/https-chain.pem" || fail "GET /chain.pem over HTTPS"
"${C[@]}" "http://$PUB/chain.pem" -o "$T/http-chain.pem" || fail "GET /chain.pem over HTTP"
cmp -s "$T/chain.pem" "$T/https-chain.pem" || fail "/chain.pem (HTTPS) differs from amtca chain"
cmp -s "$T/chain.pem" "$T/http-chain.pem" || fail "/chain.pem (HTTP) differs from amtca chain"
"${C[@]}" "http://$PUB/root.pem" -o "$T/root.pem"
cmp -s "$T/root.pem" "$HOME_CA/root.pem" || fail "/root.pem is not the root"
"${C[@]}" "http://$PUB/chain.p7b" -o "$T/chain.p7b"
[ "$(openssl pkcs7 -inform DER -in "$T/chain.p7b" -print_certs | grep -c '^subject')" = 2 ] ||
    fail "/chain.p7b does not hold the two CA certificates"
ski=$(openssl x509 -in "$HOME_CA/intermediate.pem" -noout -ext subjectKeyIdentifier |
    tail -n 1 | tr -d ' :' | tr 'A-F' 'a-f')
rski=$(openssl x509 -in "$HOME_CA/root.pem" -noout -ext subjectKeyIdentifier |
    tail -n 1 | tr -d ' :' | tr 'A-F' 'a-f')
"${C[@]}" "http://$PUB/ca/$ski.cer" -o "$T/inter.cer"
openssl x509 -in "$HOME_CA/intermediate.pem" -outform DER -out "$T/inter.want"
cmp -s "$T/inter.cer" "$T/inter.want" || fail "/ca/$ski.cer is not the intermediate (DER)"
"${C[@]}" "http://$PUB/ca/$rski.cer" -o "$T/root.cer"
openssl x509 -in "$HOME_CA/root.pem" -outform DER | cmp -s - "$T/root.cer" ||
    fail "/ca/$rski.cer is not the root (DER)"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' "http://$PUB/ca/${ski^^}.cer")
[ "$code" = 404 ] || fail "an uppercase key id answered $code"
ctype=$("${C[@]}" -o "$T/crl0.der" -w '%{content_type}' "http://$PUB/crl")
[ "$ctype" = application/pkix-crl ] || fail "/crl content type $ctype"
"${C[@]}" "http://$PUB/crl/$ski.crl" -o "$T/crl1.der"
for f in crl0 crl1; do
	openssl crl -inform DER -in "$T/$f.der" -noout -issuer -nextupdate >"$T/$f.txt" ||
	    fail "$f is not a DER CRL"
	grep -q 'Issuing CA' "$T/$f.txt" && grep -q nextUpdate= "$T/$f.txt" ||
	    fail "$f: $(cat "$T/$f.txt")"
done
ok "publication over HTTPS and HTTP: chain.pem byte-equal to amtca chain, chain.p7b, root.pem, /ca/<id>.cer, /crl and /crl/<id>.crl (DER, nextUpdate)"

# A CLI revoke shows in /crl at once (the service caches a CRL 2 s at most).
make_csr "$T/leaf.csr" ec:prime256v1 leaf1.example.test
"$AMTCA" --home "$HOME_CA" issue --fqdn leaf1.example.test --csr "$T/leaf.csr" \
    --out "$T/leaf.pem" >/dev/null || fail "issue"
serial=$(openssl x509 -in "$T/leaf.pem" -noout -serial | cut -d= -f2)
"${C[@]}" "http://$PUB/crl" -o "$T/crl-a.der"
openssl crl -inform DER -in "$T/crl-a.der" -out "$T/crl-a.pem"
cat "$T/chain.pem" "$T/crl-a.pem" >"$T/vfy-a.pem"
openssl verify -crl_check -CAfile "$T/vfy-a.pem" "$T/leaf.pem" >/dev/null 2>&1 ||
    fail "the fresh certificate does not verify with the CRL"
"$AMTCA" --home "$HOME_CA" revoke "$serial" --reason keyCompromise >/dev/null || fail "revoke"
t0=$(date +%s%N)
for ((i = 0; i < 100; i++)); do
	"${CS[@]}" "https://$FQDN:8443/crl" -o "$T/crl-b.der"
	openssl crl -inform DER -in "$T/crl-b.der" -noout -text | qgrep "Serial Number: $serial" && break
	sleep 0.1
done
lag=$((($(date +%s%N) - t0) / 1000000))
openssl crl -inform DER -in "$T/crl-b.der" -noout -text | qgrep "Serial Number: $serial" ||
    fail "the revoked serial is not in /crl after 10 s"
openssl crl -inform DER -in "$T/crl-b.der" -out "$T/crl-b.pem"
cat "$T/chain.pem" "$T/crl-b.pem" >"$T/vfy-b.pem"
openssl verify -crl_check -CAfile "$T/vfy-b.pem" "$T/leaf.pem" >"$T/vfy.out" 2>&1 &&
    fail "openssl verify -crl_check accepts the revoked certificate"
grep -q 'certificate revoked' "$T/vfy.out" || fail "verify: $(cat "$T/vfy.out")"
ok "a CLI revoke is in /crl after ${lag} ms and openssl verify -crl_check rejects the certificate"

# --- errors ------------------------------------------------------------------
code=$("${C[@]}" -o "$T/e404" -w '%{http_code}' "http://$PUB/nothing")
[ "$code" = 404 ] && grep -qx '{"error":"no such resource"}' "$T/e404" ||
    fail "unknown path: $code $(cat "$T/e404")"
code=$("${C[@]}" -o "$T/e405" -w '%{http_code}' -X DELETE "http://$PUB/chain.pem")
[ "$code" = 405 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))["error"]' "$T/e405" ||
    fail "DELETE /chain.pem: $code $(cat "$T/e405")"
head -c $((64 * 1024)) /dev/zero >"$T/cap"
for te in "" "Transfer-Encoding: chunked"; do
	code=$("${CS[@]}" -o "$T/ecap" -w '%{http_code}' -H "$te" -H 'Content-Type: application/pkcs10' \
	    --data-binary @"$T/cap" "https://$FQDN:8443/.well-known/est/simpleenroll")
	[ "$code" != 413 ] || fail "a body of exactly 64 KiB${te:+ (chunked)} was refused as too large"
done
head -c $((64 * 1024 + 1)) /dev/zero >"$T/big"
code=$("${CS[@]}" -o "$T/e413" -w '%{http_code}' -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/big" "https://$FQDN:8443/.well-known/est/simpleenroll")
[ "$code" = 413 ] || fail "65537-byte EST body: $code $(cat "$T/e413")"
code=$("${CS[@]}" -o "$T/e413c" -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/big" \
    "https://$FQDN:8443/.well-known/est/simpleenroll")
[ "$code" = 413 ] || fail "chunked 65537-byte EST body: $code $(cat "$T/e413c")"
# A chunked body that goes on (10 MiB) is cut off, not read to its end.
head -c $((10 * 1024 * 1024)) /dev/zero >"$T/huge"
code=$("${CS[@]}" -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/huge" \
    "https://$FQDN:8443/.well-known/est/simpleenroll" 2>/dev/null || true)
case $code in 2*|4*|5*) fail "10 MiB chunked body answered $code, not cut off" ;; esac
grep -q 'status=413 peer=[^ ]* msg="body cut off"' "$T/s1.err" || fail "no cut-off logged"
head -c $((1024 * 1024 + 1)) /dev/zero >"$T/big2"
code=$("${CS[@]}" -o "$T/e413a" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$T/big2" "https://$FQDN:8443/api/v1/jobs")
[ "$code" = 413 ] || fail "1 MiB + 1 API body: $code $(cat "$T/e413a")"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' --data-binary 'x' "http://$PUB/crl")
[ "$code" = 413 ] || [ "$code" = 405 ] || fail "POST with a body to /crl: $code"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' a)" \
    "http://$PUB/root.pem" || true)
case $code in 4[0-9][0-9]) ;; *) fail "40 KB header answered $code" ;; esac
"${C[@]}" -o /dev/null "http://$PUB/root.pem" || fail "publication dead after the errors"
ok "404, 405, 413 (EST 64 KiB, API 1 MiB, announced and chunked; a long chunked body cut off), $code for oversized headers; one-line JSON errors"

# --- status page and metrics ---------------------------------------------
chromium --headless --no-sandbox --disable-gpu --window-size=390,844 \
    --screenshot="$T/status.png" "http://$STATUS/" >"$T/chr1.log" 2>&1 ||
    fail "chromium screenshot: $(tail -3 "$T/chr1.log")"
[ "$(head -c 8 "$T/status.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "no PNG screenshot"
chromium --headless --no-sandbox --disable-gpu --dump-dom "http://$STATUS/" \
    >"$T/dom.html" 2>"$T/chr2.log" || fail "chromium --dump-dom: $(tail -3 "$T/chr2.log")"
"${C[@]}" "http://$STATUS/metrics" -o "$T/metrics.txt"
"$AMTCA" --home "$HOME_CA" devices --json >"$T/devices.json"
# The same counts from the admin API.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/admin.key" 2>/dev/null
openssl req -new -key "$T/admin.key" -subj "/CN=ops" -out "$T/admin.csr"
"$AMTCA" --home "$HOME_CA" admin add ops --csr "$T/admin.csr" --out "$T/admin.pem" \
    >/dev/null || fail "admin add"
code=$("${CS[@]}" --cert "$T/admin.pem" --key "$T/admin.key" -o "$T/api-devices.json" \
    -w '%{http_code}' "https://$FQDN:8443/api/v1/devices")
[ "$code" = 200 ] || fail "GET /api/v1/devices: $code $(cat "$T/api-devices.json")"
python3 - "$T/dom.html" "$T/devices.json" "$T/metrics.txt" "$T/api-devices.json" <<'PY' || fail "status page or metrics disagree with amtca devices --json or the API"
import collections, json, re, sys
from html.parser import HTMLParser
dom, devs, met = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))["devices"], open(sys.argv[3]).read()
want = collections.Counter(d["state"] for d in devs)
api = json.load(open(sys.argv[4]))
api = api["devices"] if isinstance(api, dict) else api
assert collections.Counter(d["state"] for d in api) == want, (api, want)

class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.counts, self.viewport, self.ext = {}, False, []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if (a.get("id") or "").startswith("state-"):
            self.counts[a["id"][6:]] = int(a["data-count"])
        if tag == "meta" and a.get("name") == "viewport":
            self.viewport = True
        for k in ("src", "href"):
            if a.get(k) and re.match(r"(?i)(https?:)?//", a[k]):
                self.ext.append(a[k])
        if tag in ("script", "img", "link", "iframe"):
            self.ext.append(tag)
p = P()
p.feed(dom)
assert p.viewport, "no viewport meta"
assert not p.ext, "external assets or scripts: %r" % p.ext
for st in ("pending", "enrolling", "enrolled", "failed", "auth_failed", "compromised", "retired"):
    assert p.counts.get(st) == want.get(st, 0), (st, p.counts.get(st), want.get(st, 0))
assert p.counts["total"] == len(devs)
assert "sv03.example.test" in dom, "the failure is not listed"

# Prometheus text format 0.0.4, strictly: HELP/TYPE before samples of a
# metric family, names and labels by the grammar, float values.
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
lab = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
sample = re.compile(r"(%s)(\{%s(?:,%s)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$" % (name, lab, lab))
typed, vals = {}, {}
for line in met.splitlines():
    if line.startswith("# HELP "):
        assert re.match(r"# HELP %s .+" % name, line), line
    elif line.startswith("# TYPE "):
        m = re.match(r"# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % name, line)
        assert m and m.group(1) not in typed, line
        typed[m.group(1)] = m.group(2)
    else:
        m = sample.match(line)
        assert m, "not a sample: %r" % line
        assert m.group(1) in typed, "sample before its TYPE: %r" % line
        float(m.group(3))
        vals[m.group(1) + (m.group(2) or "")] = float(m.group(3))
for st in ("enrolled", "auth_failed", "pending"):
    assert vals['amtca_devices{state="%s"}' % st] == want.get(st, 0), st
assert vals["amtca_certificates_issued_total"] >= 5
assert vals['amtca_certificates{status="revoked"}'] == 1
assert vals["amtca_certificate_earliest_expiry_seconds"] > 0
assert vals["amtca_device_failures"] == 1
for k in ("amtca_job_total", "amtca_http_requests_total"):
    assert k in vals, k
PY
png=$(stat -c %s "$T/status.png")
ok "status page in headless Chromium (390x844 screenshot, $png bytes): DOM counts = amtca devices --json = GET /api/v1/devices; /metrics is Prometheus text with the same counts"

code=$("${C[@]}" -o /dev/null -w '%{http_code}' "http://$STATUS/api/v1/jobs")
[ "$code" = 404 ] || fail "the status listener answers /api/v1/ ($code)"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "http://$STATUS/")
[ "$code" = 405 ] || fail "POST / on the status listener: $code"
pin=$(cat "$HOME_CA/keys/softhsm/user.pin" 2>/dev/null || cat "$HOME_CA/softhsm/user.pin")
[ -n "$pin" ] || fail "no PIN file to look for"
for sec in "$(cat "$PW")" "$(cat "$T/wrong-pw")" "$pin"; do
	grep -qF -- "$sec" "$T/dom.html" "$T/metrics.txt" "$T/s1.err" && fail "a secret on the status page or in the log"
done
ok "status listener: read-only, nothing else routed there; no password or PIN on the page, in /metrics or in the log"

# --- logs, SIGTERM ---------------------------------------------------------
grep -q '^ts=[^ ]* event=request method=GET path=/chain.pem status=200 peer=' "$T/s1.err" ||
    fail "no key=value request log line: $(head -3 "$T/s1.err")"
signer=$(sed -n 's/.*event=signer pid=\([0-9]*\).*/\1/p' "$T/s1.err")
old=$(openssl s_client -connect "$HTTPS" -servername "$FQDN" </dev/null 2>/dev/null | openssl x509 -noout -serial)
stop_serve
[ -n "$signer" ] && ! kill -0 "$signer" 2>/dev/null || fail "the signer $signer outlived serve"
grep -v '^ts=[^ ]* event=[a-z_]*\( \|$\)' "$T/s1.err" | grep -v '^amtca-signer: ' | grep . &&
    fail "log lines that are not key=value events"
ok "SIGTERM: exit 0 in $STOP_MS ms (bound 10 s), signer gone; every log line is one key=value event"

# --- restart: stored certificate, unix status socket -----------------------
start_serve "$T/s2" --listen "$HTTPS" --name "$FQDN" --status-listen "unix:$T/st.sock" \
    --user nobody --reconcile-every 0
grep -q "event=service_cert fqdn=$FQDN reused=1" "$T/s2.err" || fail "service certificate not reused"
[ "$(stat -c '%a %U' "$T/st.sock")" = "660 nobody" ] || fail "status socket: $(stat -c '%a %U' "$T/st.sock")"
"${C[@]}" --unix-socket "$T/st.sock" http://x/metrics | qgrep '^amtca_devices{state="enrolled"} 3$' ||
    fail "metrics over the unix socket"
now=$(openssl s_client -connect "$HTTPS" -servername "$FQDN" </dev/null 2>/dev/null | openssl x509 -noout -serial)
[ -n "$old" ] && [ "$now" = "$old" ] || fail "restart serves $now, not the stored $old"
ok "restart reuses the stored certificate ($now); --status-listen unix: socket is 0660"

# SIGHUP renews now (the timer does it at 2/3 of the lifetime): a new key
# and certificate, swapped in on the same socket, stored for the next start.
kill -HUP "$SERVE_PID"
for ((i = 0; i < 200; i++)); do
	grep -q "event=service_cert fqdn=$FQDN renewed=1" "$T/s2.err" && break
	sleep 0.05
done
grep -q "event=service_cert fqdn=$FQDN renewed=1" "$T/s2.err" || fail "no renewal on SIGHUP: $(tail -3 "$T/s2.err")"
openssl s_client -connect "$HTTPS" -servername "$FQDN" -verify_hostname "$FQDN" \
    -CAfile "$HOME_CA/root.pem" -verify_return_error </dev/null >"$T/renew.out" 2>&1 ||
    fail "after renewal: $(tail -3 "$T/renew.out")"
new=$(openssl x509 -noout -serial <"$T/renew.out")
[ "$new" != "$now" ] || fail "SIGHUP: still $now"
"${C[@]}" --unix-socket "$T/st.sock" http://x/metrics >/dev/null || fail "status after renewal"
stop_serve
start_serve "$T/s2b" --listen "$HTTPS" --name "$FQDN" --status-listen "unix:$T/st.sock" \
    --user nobody --reconcile-every 0
again=$(openssl s_client -connect "$HTTPS" -servername "$FQDN" </dev/null 2>/dev/null | openssl x509 -noout -serial)
[ "$again" = "$new" ] || fail "the renewed certificate was not kept ($again, want $new)"
stop_serve
ok "SIGHUP renews the service certificate in place ($new), verified, kept for the next start"

# --- --tls-cert / --tls-key -------------------------------------------------
make_csr "$T/own.csr" ec:prime256v1 own.example.test
"$AMTCA" --home "$HOME_CA" issue --fqdn own.example.test --csr "$T/own.csr" --out "$T/own.pem" >/dev/null
cat "$T/own.pem" "$HOME_CA/intermediate.pem" >"$T/own-chain.pem"
start_serve "$T/s3" --listen 127.0.71.201:8443 --tls-cert "$T/own-chain.pem" \
    --tls-key "$T/own.csr.key" --status-listen 127.0.71.201:9193 --user nobody --reconcile-every 1s \
    --timeout 1
openssl s_client -connect 127.0.71.201:8443 -servername own.example.test \
    -verify_hostname own.example.test -CAfile "$HOME_CA/root.pem" -verify_return_error \
    </dev/null >"$T/own.out" 2>&1 || fail "--tls-cert handshake: $(tail -3 "$T/own.out")"
# --timeout 1: a body that trickles in (a byte every 0.3 s, never idle
# for 1 s) is cut off after 2 s, long before its 1000 bytes arrive.
python3 - 127.0.71.201 8443 <<'PY' || fail "a trickling body was not cut off"
import socket, ssl, sys, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2]))))
s.sendall(b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\n"
          b"Content-Type: application/pkcs10\r\nContent-Length: 1000\r\n\r\n")
t0 = time.time()
try:
    for i in range(1000):
        s.sendall(b"A")
        time.sleep(0.3)
        if time.time() - t0 > 15:
            sys.exit("still open after 15 s")
except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
    pass
print("cut off after %.1f s" % (time.time() - t0))
PY
grep -q 'status=408 peer=[^ ]* msg="body too slow"' "$T/s3.err" || fail "no slow-body log line"
for ((i = 0; i < 100; i++)); do
	[ "$(grep -c 'event=reconcile queued=' "$T/s3.err")" -ge 2 ] && break
	sleep 0.05
done
[ "$(grep -c 'event=reconcile queued=' "$T/s3.err")" -ge 2 ] ||
    fail "--reconcile-every 1s did not call the reconcile twice in 5 s: $(tail -3 "$T/s3.err")"
stop_serve
ok "--tls-cert/--tls-key serve a certificate from elsewhere; a trickling body is cut off at twice --timeout; --reconcile-every queues reconciles on its period"

# --- option errors ---------------------------------------------------------
expect_fail 2 'listen is required' "$AMTCA" --home "$HOME_CA" serve --name "$FQDN"
expect_fail 2 'give --name' "$AMTCA" --home "$HOME_CA" serve --listen "$HTTPS"
expect_fail 2 'give --name' "$AMTCA" --home "$HOME_CA" serve --listen "$HTTPS" \
    --name "$FQDN" --tls-cert "$T/own.pem" --tls-key "$T/own.csr.key"
expect_fail 2 'reconcile-every' "$AMTCA" --home "$HOME_CA" serve --listen "$HTTPS" \
    --name "$FQDN" --reconcile-every 5x
expect_fail 1 'no such user' "$AMTCA" --home "$HOME_CA" serve --listen "$HTTPS" \
    --name "$FQDN" --user no-such-user-amtca
expect_fail 1 'crl_url = http://pub.example.test/crl/'"$ski"'.crl' "$AMTCA" --home "$HOME_CA" \
    serve --listen "$HTTPS" --name "$FQDN" --publish-url http://pub.example.test/
expect_fail 1 'is not ADDR:PORT' "$AMTCA" --home "$HOME_CA" serve --listen nowhere \
    --name "$FQDN"
ok "usage errors exit 2; a bad user, --publish-url out of step with amtca.conf, a bad address exit 1 with one line"

# --- --publish-url with amtca.conf pointing there ---------------------------
BASE="http://$PUB"
printf 'crl_url = %s/crl/%s.crl\naia_url = %s/ca/%s.cer\n' "$BASE" "$ski" "$BASE" "$ski" \
    >>"$HOME_CA/amtca.conf"
start_serve "$T/s4" --listen "$HTTPS" --name "$FQDN" --publish-listen "$PUB" \
    --publish-url "$BASE/" --status-listen "$STATUS" --user nobody --reconcile-every 0
make_csr "$T/pub.csr" ec:prime256v1 pub1.example.test
"$AMTCA" --home "$HOME_CA" issue --fqdn pub1.example.test --csr "$T/pub.csr" \
    --out "$T/pub.pem" >/dev/null || fail "issue with crl_url/aia_url"
cdp=$(openssl x509 -in "$T/pub.pem" -noout -ext crlDistributionPoints | sed -n 's/.*URI://p' | tr -d ' ')
aia=$(openssl x509 -in "$T/pub.pem" -noout -ext authorityInfoAccess | sed -n 's/.*CA Issuers - URI://p' | tr -d ' ')
[ "$cdp" = "$BASE/crl/$ski.crl" ] && [ "$aia" = "$BASE/ca/$ski.cer" ] ||
    fail "CDP $cdp / AIA $aia, want under $BASE"
"${C[@]}" "$aia" -o "$T/aia.cer" && cmp -s "$T/aia.cer" "$T/inter.want" ||
    fail "the AIA URL does not serve the issuer"
# openssl fetches the CRL from the certificate's CDP itself.
openssl verify -crl_download -crl_check -CAfile "$T/chain.pem" "$T/pub.pem" >"$T/dl.out" 2>&1 ||
    fail "verify with the CRL from the CDP: $(cat "$T/dl.out")"
"$AMTCA" --home "$HOME_CA" revoke --fqdn pub1.example.test >/dev/null || fail "revoke pub1"
for ((i = 0; i < 50; i++)); do
	openssl verify -crl_download -crl_check -CAfile "$T/chain.pem" "$T/pub.pem" >"$T/dl.out" 2>&1 || break
	sleep 0.1
done
grep -q 'certificate revoked' "$T/dl.out" || fail "CDP CRL after revoke: $(cat "$T/dl.out")"
stop_serve
ok "--publish-url agrees with amtca.conf: issued certificates' CDP and AIA are served; openssl -crl_download sees the revoke"
