#!/usr/bin/env bash
# Enrollment outcomes and admin job changes in the audit trail (issue 10,
# section 3; docs/audit.md, docs/PROTOCOL.signer AUDIT_NOTE):
#   - `amtca enroll` against amtsim: one enroll.outcome entry for the
#     device by the OS user@host, result and serial; a second run is
#     "unchanged"; a run that fails is "failed" with its error;
#   - an API job: job.create by the admin client, one enroll.outcome per
#     device of the job; DELETE of the finished job is job.cancel by the
#     admin (cancelling=0);
#   - the trail verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"
source "$(dirname "$0")/api_helpers.sh"

ca_setup
ME="$(id -un)@$(hostname)"
sim_key_pool_fill 6
start_sim "$T/sim.log" --devices 3 --address-base 127.0.152.1 \
    --fqdn-pattern 'ae%03d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL"
entries() { "$AMTCA" --home "$HOME_CA" audit show --json >"$1"; }

# --- the command line ---------------------------------------------------------
enroll 127.0.152.1 ae000.example.test >"$T/e1.out" 2>"$T/e1.err" || fail "enroll: $(cat "$T/e1.err")"
enroll 127.0.152.1 ae000.example.test >"$T/e2.out" 2>"$T/e2.err" || fail "enroll again: $(cat "$T/e2.err")"
password_file "$T/wrong" "not-the-password"
"$AMTCA" --home "$HOME_CA" enroll --host ae001.example.test --address 127.0.152.2 \
    --user admin --password-file "$T/wrong" >"$T/e3.out" 2>"$T/e3.err" && fail "enroll with a wrong password succeeded"
entries "$T/a.json"
python3 - "$T/a.json" "$ME" <<'PY' || fail "CLI outcomes: $(cat "$T/a.json")"
import json, sys
es, me = json.load(open(sys.argv[1]))["entries"], sys.argv[2]
o = [e for e in es if e["action"] == "enroll.outcome"]
assert [(e["subject"], e["actor"]) for e in o] == [("ae000.example.test", me)] * 2 + [("ae001.example.test", me)], o
d0, d1, d2 = (dict(w.split("=", 1) for w in e["detail"].split(" ")[:2]) for e in o)
assert d0["result"] == "enrolled" and d0["serial"], o[0]
assert d1["result"] == "unchanged" and d1["serial"] == d0["serial"], o[1]
assert d2["result"] == "failed" and " error=" in o[2]["detail"], o[2]
iss = [e for e in es if e["action"] == "cert.issue" and "fqdn=ae000.example.test" in e["detail"]]
assert iss and iss[0]["subject"] == d0["serial"], iss
PY
ok "enroll: one enroll.outcome per run by $ME (enrolled with its serial, then unchanged, failed with its error)"

# --- an API job -------------------------------------------------------------------
api_setup 127.0.152.254
serve_up
id=$(api_job "$(devices_json 'ae%03d.example.test' 127.0.152.1 1 2 site)" 2)
job_wait "$id" done 120
st=$(api DELETE "/api/v1/jobs/$id")
[ "$st" = 200 ] || fail "DELETE of a finished job: $st $(cat "$T/body")"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
entries "$T/b.json"
python3 - "$T/b.json" "$id" <<'PY' || fail "job entries: $(cat "$T/b.json")"
import json, sys
es, jid = json.load(open(sys.argv[1]))["entries"], sys.argv[2]
jc = [e for e in es if e["action"] == "job.create"]
assert len(jc) == 1 and jc[0]["actor"] == "ops" and jc[0]["subject"] == jid, jc
assert jc[0]["detail"] == "devices=2 concurrency=2", jc
jx = [e for e in es if e["action"] == "job.cancel"]
assert len(jx) == 1 and jx[0]["actor"] == "ops" and jx[0]["subject"] == jid and jx[0]["detail"] == "cancelling=0", jx
seq = jc[0]["seq"]
o = [e for e in es if e["action"] == "enroll.outcome" and e["seq"] > seq]
assert sorted(e["subject"] for e in o) == ["ae001.example.test", "ae002.example.test"], o
assert all(e["detail"].startswith("result=enrolled serial=") for e in o), o
PY
ok "an API job: job.create and job.cancel by the admin ops, one enroll.outcome per device"

"$AMTCA" --home "$HOME_CA" audit verify >"$T/v.out" 2>&1 || fail "audit verify: $(cat "$T/v.out")"
ok "the trail verifies"
