#!/usr/bin/env bash
# The admin API of `amtca serve` (docs/serve.md, docs/openapi.json):
#  - only admin client certificates: none 401, an EST client's 403; a POST
#    without the JSON type 415, bad JSON and unknown fields 400, a wrong
#    method 405 with Allow; none of them stores a job;
#  - GET /api/v1/openapi.json is docs/openapi.json byte for byte;
#  - a job of 50 simulated devices, each naming a sealed credential, runs
#    to completion: GET /jobs/{id} counts 50 enrolled, and every device has
#    one bound leaf in AMT and one valid certificate in the records;
#    /devices shows what `amtca devices --json` shows;
#  - /certificates pages by serial with a `next` cursor, every record once;
#  - a revoke through the API: /crl lists the serial, `openssl verify
#    -crl_check` rejects the certificate, the device is compromised;
#  - the service's log never holds the AMT password.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"
source "$(dirname "$0")/api_helpers.sh"

ca_setup
N=50
sim_key_pool_fill $((N + 10))
start_sim "$T/sim.log" --devices $N --address-base 127.0.91.1 \
    --fqdn-pattern 'api%03d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL" --latency-ms 20
api_setup 127.0.91.254
serve_up
jobs_count() {
	sqlite3 "$1" "SELECT count(*) FROM jobs" 2>/dev/null || echo 0
}

# --- who may ask ----------------------------------------------------------
jobs0=$(jobs_count "$STATE_DB")
st=$(api --anon GET /api/v1/jobs)
[ "$st" = 401 ] || fail "no client certificate: $st, want 401"
grep -q '"error"' "$T/body" || fail "401 without a JSON reason: $(cat "$T/body")"
st=$(api --anon POST /api/v1/jobs -H 'Content-Type: application/json' \
    --data-binary "{\"devices\":$(devices_json 'api%03d.example.test' 127.0.91.1 0 1 site)}")
[ "$st" = 401 ] || fail "anonymous POST: $st, want 401"
st=$(api --est GET /api/v1/devices)
[ "$st" = 403 ] || fail "an EST client's certificate: $st, want 403"
st=$(api --est POST /api/v1/jobs -H 'Content-Type: application/json' \
    --data-binary "{\"devices\":$(devices_json 'api%03d.example.test' 127.0.91.1 0 1 site)}")
[ "$st" = 403 ] || fail "an EST client's POST: $st, want 403"
ok "no client certificate 401, an EST client's certificate 403"

# --- what a request must look like ---------------------------------------
good="{\"devices\":$(devices_json 'api%03d.example.test' 127.0.91.1 0 1 site)}"
st=$(api POST /api/v1/jobs -H 'Content-Type: text/plain' --data-binary "$good")
[ "$st" = 415 ] || fail "POST as text/plain: $st, want 415"
st=$(api POST /api/v1/jobs -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-binary "$good")
[ "$st" = 415 ] || fail "POST as a form: $st, want 415"
st=$(api POST /api/v1/jobs --data-binary "$good" -H 'Content-Type:')
[ "$st" = 415 ] || fail "POST without a type: $st, want 415"
ok "a POST without Content-Type: application/json is 415"
st=$(api POST /api/v1/jobs -H 'Content-Type: application/json' --data-binary '{"devices":[')
[ "$st" = 400 ] || fail "truncated JSON: $st, want 400"
st=$(api POST /api/v1/jobs -H 'Content-Type: application/json' \
    --data-binary '{"devices":[{"fqdn":"api000.example.test","credential":"site","password":"x"}]}')
[ "$st" = 400 ] || fail "an unknown field: $st, want 400"
grep -q 'unknown field' "$T/body" || fail "400 does not name the field: $(cat "$T/body")"
st=$(api POST /api/v1/jobs -H 'Content-Type: application/json' \
    --data-binary '{"devices":[{"fqdn":"x.elsewhere.test","credential":"site"}]}')
[ "$st" = 400 ] || fail "an FQDN outside the CA's domains: $st, want 400"
st=$(api POST /api/v1/certificates/01/revoke -H 'Content-Type: application/json' \
    --data-binary '{"reason":"bogus"}')
[ "$st" = 400 ] || fail "an unknown revocation reason: $st, want 400"
st=$(api PUT /api/v1/jobs -H 'Content-Type: application/json' --data-binary "$good")
[ "$st" = 405 ] || fail "PUT /api/v1/jobs: $st, want 405"
grep -qi '^Allow: GET, POST' "$T/headers" || fail "405 without Allow: $(cat "$T/headers")"
st=$(api GET /api/v1/nothing)
[ "$st" = 404 ] || fail "an unknown path: $st, want 404"
[ "$(jobs_count "$STATE_DB")" = "$jobs0" ] || fail "a refused request stored a job"
ok "bad JSON and unknown fields 400, a wrong method 405 with Allow; nothing stored"

# A reason that quotes what the client sent (a quote, a backslash, a line
# break, a stray byte; a multi-byte name cut by the reason's bound) is still
# one line of valid JSON (UTF-8) that says it.
reason_json() { # WHAT
	python3 - "$T/body" "$1" <<'PY' || fail "$1: the reason is not one line of JSON: $(od -c "$T/body" | head -5)"
import json, sys
raw = open(sys.argv[1], "rb").read()
assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw
d = json.loads(raw.decode("utf-8"))
assert list(d) == ["error"] and isinstance(d["error"], str), d
if sys.argv[2] == "device":
    assert 'no device a"b\\\nc' in d["error"], d
PY
}
st=$(api GET '/api/v1/devices/a%22b%5C%0Ac%FF.example.test')
[ "$st" = 404 ] || fail "an odd device name: $st, want 404"
reason_json device
st=$(api GET "/api/v1/certificates?x$(for i in $(seq 30); do printf %%C3%%A9; done)=1")
[ "$st" = 400 ] || fail "a long multi-byte query parameter: $st, want 400"
reason_json parameter
ok "an error reason quoting the client's bytes is one line of valid JSON"

st=$(api GET /api/v1/openapi.json)
[ "$st" = 200 ] || fail "GET openapi.json: $st"
cmp -s "$T/body" "$AMTCA_TOP/docs/openapi.json" ||
    fail "the served openapi.json differs from docs/openapi.json (scripts/gen-openapi.sh)"
python3 - "$T/body" <<'PY' || fail "openapi.json does not describe every endpoint"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["openapi"].startswith("3."), d["openapi"]
want = {"/jobs": {"get", "post"}, "/jobs/{id}": {"get", "delete"},
        "/devices": {"get"}, "/devices/{fqdn}": {"get"}, "/certificates": {"get"},
        "/certificates/{serial}/revoke": {"post"}, "/openapi.json": {"get"}}
for p, ms in want.items():
    assert ms <= set(d["paths"][p]), (p, ms)
PY
ok "openapi.json is docs/openapi.json and describes every endpoint"

# --- a job of 50 devices --------------------------------------------------
id=$(api_job "$(devices_json 'api%03d.example.test' 127.0.91.1 0 $N site)" 16)
job_wait "$id" done 300
python3 - "$T/body" $N <<'PY' || fail "the job's counts are wrong: $(head -c 600 "$T/body")"
import json, sys
d, n = json.load(open(sys.argv[1])), int(sys.argv[2])
c = d["counts"]
assert c["enrolled"] == n and c["failed"] == 0 and c["pending"] == 0, c
assert d["total"] == n and len(d["devices"]) == n, d["total"]
assert all(x["result"] == "enrolled" and x["serial"] for x in d["devices"])
PY
check_devices 'api%03d.example.test' 127.0.91.1 $N
st=$(api GET /api/v1/jobs)
python3 - "$T/body" "$id" <<'PY' || fail "GET /api/v1/jobs does not list the job: $(head -c 400 "$T/body")"
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
assert [j for j in jobs if j["id"] == sys.argv[2] and j["state"] == "done"]
PY
ok "a job of $N devices by credential name: counts $N enrolled; one bound leaf and one valid record each"

st=$(api GET /api/v1/devices)
[ "$st" = 200 ] || fail "GET /api/v1/devices: $st"
cp "$T/body" "$T/api-devices.json"
"$AMTCA" --home "$HOME_CA" devices --json >"$T/cli-devices.json"
python3 - "$T/api-devices.json" "$T/cli-devices.json" $N <<'PY' || fail "/api/v1/devices differs from amtca devices --json"
import json, sys
a = json.load(open(sys.argv[1]))["devices"]
c = json.load(open(sys.argv[2]))["devices"]
assert a == c, (a[:1], c[:1])
assert len(a) == int(sys.argv[3]) and all(d["state"] == "enrolled" for d in a)
PY
st=$(api GET /api/v1/devices/API007.example.test)
[ "$st" = 200 ] || fail "GET /api/v1/devices/FQDN: $st"
[ "$(json_get "$T/body" fqdn)" = api007.example.test ] || fail "wrong device: $(cat "$T/body")"
st=$(api GET /api/v1/devices/nope.example.test)
[ "$st" = 404 ] || fail "an unknown device: $st, want 404"
ok "/devices is amtca devices --json; one device by FQDN; 404 for an unknown one"

# --- certificates, paged --------------------------------------------------
: >"$T/serials"
after=""
pages=0
while :; do
	st=$(api GET "/api/v1/certificates?limit=7${after:+&after=$after}")
	[ "$st" = 200 ] || fail "GET /certificates: $st $(cat "$T/body")"
	python3 -c 'import json,sys; [print(c["serial"]) for c in json.load(open(sys.argv[1]))["certificates"]]' \
	    "$T/body" >>"$T/serials"
	after=$(json_get "$T/body" next)
	pages=$((pages + 1))
	[ -n "$after" ] || break
	[ $pages -lt 100 ] || fail "paging does not end"
done
"$AMTCA" --home "$HOME_CA" list --json | python3 -c 'import json,sys; [print(c["serial"]) for c in json.load(sys.stdin)["certificates"]]' |
    sort >"$T/serials.cli"
sort "$T/serials" >"$T/serials.api"
[ "$(sort -u "$T/serials" | wc -l)" = "$(wc -l <"$T/serials")" ] || fail "a serial on two pages"
cmp -s "$T/serials.api" "$T/serials.cli" || fail "the pages do not hold every certificate once"
st=$(api GET "/api/v1/certificates?fqdn=api003.example.test&status=valid")
cp "$T/body" "$T/filter.json"
python3 - "$T/body" <<'PY' || fail "the fqdn/status filter: $(cat "$T/body")"
import json, sys
c = json.load(open(sys.argv[1]))["certificates"]
assert len(c) == 1 and c[0]["fqdn"] == "api003.example.test" and c[0]["status"] == "valid", c
PY
st=$(api GET "/api/v1/certificates?colour=red")
[ "$st" = 400 ] || fail "an unknown query parameter: $st, want 400"
ok "/certificates in $pages pages of 7: every record once, by serial; filters"

# --- revoke through the API -----------------------------------------------
serial=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["certificates"][0]["serial"])' "$T/filter.json")
st=$(api POST "/api/v1/certificates/$serial/revoke" -H 'Content-Type: application/json' \
    --data-binary '{"reason":"keyCompromise"}')
[ "$st" = 200 ] || fail "revoke through the API: $st $(cat "$T/body")"
[ "$(json_get "$T/body" status)" = revoked ] || fail "not revoked: $(cat "$T/body")"
[ "$(json_get "$T/body" revoke_reason)" = keyCompromise ] || fail "reason: $(cat "$T/body")"
curl -sS --max-time 10 -o "$T/crl.der" "http://$API_ADDR:8080/crl" || fail "GET /crl failed"
openssl crl -inform DER -in "$T/crl.der" -out "$T/crl.pem" || fail "/crl is not a DER CRL"
openssl crl -in "$T/crl.pem" -noout -text | tr -d ' :' | qgrep -i "SerialNumber$serial" ||
    fail "/crl does not list $serial"
"$AMTCA" --home "$HOME_CA" show "$serial" --pem >"$T/leaf.pem" || fail "amtca show $serial failed"
openssl x509 -in "$T/leaf.pem" -noout -serial | qgrep -i "=$serial$" ||
    fail "the leaf fetched is not $serial"
awk 'BEGIN{n=0} /BEGIN CERT/{n++} n==1' "$HOME_CA/chain.pem" >"$T/inter.pem"
vout=$(openssl verify -crl_check -CAfile "$HOME_CA/root.pem" -untrusted "$T/inter.pem" \
    -CRLfile "$T/crl.pem" "$T/leaf.pem" 2>&1) && fail "openssl verify -crl_check accepted a revoked certificate: $vout"
echo "$vout" | qgrep 'certificate revoked' || fail "verify failed for another reason: $vout"
st=$(api GET /api/v1/devices/api003.example.test)
[ "$(json_get "$T/body" state)" = compromised ] ||
    fail "the device of a keyCompromise-revoked bound leaf is not compromised: $(cat "$T/body")"
st=$(api POST "/api/v1/certificates/$serial/revoke" -H 'Content-Type: application/json' \
    --data-binary '{"reason":"superseded"}')
[ "$st" = 200 ] && [ "$(json_get "$T/body" already_revoked)" = True ] ||
    fail "a second revoke: $st $(cat "$T/body")"
ok "revoke through the API: /crl lists $serial, openssl verify -crl_check rejects it, the device is compromised"

grep -qF "$(cat "$PW")" "$T/serve.err" "$T/serve.out" && fail "the AMT password is in the service's log"
ok "the service's log does not hold the AMT password"

# Under ASan (make asan) a leak in any request path makes this exit non-zero.
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve did not exit 0 on SIGTERM after the requests above"
ok "SIGTERM: serve exits 0"
