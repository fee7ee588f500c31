#!/usr/bin/env bash
# Rotation, the service side (issue 10 section 2; docs/api.md): four
# devices enrolled by an API job, then `amtca ca rotate`.
#   - an API job without "reissue_older_than_intermediate" leaves them
#     unchanged; with it true, the devices it names are renewed under the
#     current intermediate, and GET shows the flag;
#   - the reconcile timer always moves devices: the ones still under the
#     retired intermediate are renewed, the moved ones are unchanged;
#   - afterwards every device holds root + new intermediate + one bound leaf
#     + one key, one valid record each, and GET /api/v1/devices says every
#     bound leaf is under the current intermediate.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"
source "$(dirname "$0")/api_helpers.sh"

N=4
PAT='rs%02d.example.test'
BASE=127.0.149.1
ca_setup
api_sims $N $BASE "$PAT"
api_setup 127.0.149.254
serve_up

# job DEVS_JSON [EXTRA_JSON_MEMBERS]: POST a job, wait for it, leave it in $T/body
job() {
	local st id
	st=$(api POST /api/v1/jobs -H 'Content-Type: application/json' \
	    --data-binary "{\"devices\":$1,\"concurrency\":4${2:+,$2}}")
	[ "$st" = 202 ] || fail "POST /api/v1/jobs: $st $(cat "$T/body")"
	id=$(json_get "$T/body" id)
	job_wait "$id" done 120
}
# counts KEY...: the job's counts in $T/body, space-separated
counts() {
	python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["counts"]; print(" ".join(str(c[k]) for k in sys.argv[2:]))' "$T/body" "$@"
}

job "$(devices_json "$PAT" $BASE 0 $N site)"
[ "$(counts enrolled failed)" = "$N 0" ] || fail "enrollment job: $(head -c 600 "$T/body")"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve did not exit 0 on SIGTERM"
"$AMTCA" --home "$HOME_CA" ca rotate >"$T/rot.out" 2>"$T/rot.err" ||
    fail "ca rotate failed: $(cat "$T/rot.err")"
# The admin certificate issued before the rotation (under the retired
# intermediate) keeps working through the overlap.
serve_up
ok "$N devices enrolled by an API job; ca rotate with the service stopped; the admin certificate from before the rotation still authenticates"

job "$(devices_json "$PAT" $BASE 0 2 site)"
[ "$(counts unchanged failed)" = "2 0" ] || fail "a job without the flag changed devices: $(head -c 600 "$T/body")"
[ "$(json_get "$T/body" reissue_older_than_intermediate)" = False ] ||
    fail "GET shows the flag on a job that did not ask: $(head -c 300 "$T/body")"
job "$(devices_json "$PAT" $BASE 0 2 site)" '"reissue_older_than_intermediate":true'
[ "$(counts renewed failed)" = "2 0" ] || fail "the job with the flag: $(head -c 600 "$T/body")"
[ "$(json_get "$T/body" reissue_older_than_intermediate)" = True ] ||
    fail "GET does not show the flag: $(head -c 300 "$T/body")"
ok "an API job leaves devices under the retired intermediate alone; with reissue_older_than_intermediate it renews them"

kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve did not exit 0 on SIGTERM"
serve_up --reconcile-every 2s
recid=""
for i in $(seq 1 300); do
	api GET /api/v1/jobs >/dev/null
	recid=$(python3 -c 'import json,sys; j=[x for x in json.load(open(sys.argv[1]))["jobs"] if x["kind"]=="reconcile"]; print(j[-1]["id"] if j else "")' "$T/body")
	[ -n "$recid" ] && break
	sleep 0.1
done
[ -n "$recid" ] || fail "no reconcile job within 30 s of --reconcile-every 2s"
job_wait "$recid" done 120
[ "$(counts renewed unchanged failed)" = "2 2 0" ] ||
    fail "the reconcile did not move the two devices left under the retired intermediate: $(head -c 800 "$T/body")"
[ "$(json_get "$T/body" reissue_older_than_intermediate)" = True ] || fail "a reconcile job does not show the flag"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve did not exit 0 on SIGTERM"
serve_up
ok "the reconcile renewed the 2 devices still under the retired intermediate and left the moved ones unchanged"

check_devices "$PAT" $BASE $N
OLD=$(openssl x509 -in "$HOME_CA/intermediate-retired.pem" -noout -serial | sed 's/^serial=0*//')
for f in "$T"/ai-*.json; do
	python3 - "$f" "$OLD" <<'PY' || fail "AMT still holds the retired intermediate ($f)"
import json, sys
d = json.load(open(sys.argv[1]))
assert all((c.get("serial") or "").upper().lstrip("0") != sys.argv[2].upper() for c in d["certificates"]), d["certificates"]
PY
done
[ "$(api GET /api/v1/devices)" = 200 ] || fail "GET /api/v1/devices: $(cat "$T/body")"
python3 - "$T/body" $N <<'PY' || fail "GET /api/v1/devices: $(head -c 800 "$T/body")"
import json, sys
devs = json.load(open(sys.argv[1]))["devices"]
assert len(devs) == int(sys.argv[2])
for d in devs:
    assert d["issuer_current"] is True and len(d["issuer"]) == 40, d
PY
ok "every device: root + new intermediate + one bound leaf + one key, one valid record; GET /api/v1/devices says current"

# Revoking the retired intermediate ends its clients' access: the signer
# no longer accepts the admin certificate it issued.
KOLD=$(openssl x509 -in "$HOME_CA/intermediate-retired.pem" -noout -ext subjectKeyIdentifier |
    sed -n '2s/[: ]//gp' | tr 'A-F' 'a-f')
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve did not exit 0 on SIGTERM"
"$AMTCA" --home "$HOME_CA" ca revoke-intermediate "$KOLD" --reason superseded >"$T/rv.out" 2>&1 ||
    fail "revoke-intermediate: $(cat "$T/rv.out")"
serve_up
[ "$(api GET /api/v1/devices)" = 401 ] ||
    fail "an admin certificate under a revoked intermediate was accepted: $(head -c 300 "$T/body")"
ok "after ca revoke-intermediate the admin certificate it issued gets 401"
