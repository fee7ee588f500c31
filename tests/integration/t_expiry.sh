#!/usr/bin/env bash
# A device offline past its certificate's notAfter (issue 10, sections 5
# and 7).  The past is made honestly: the CA and the first enrollment run
# ten days ago (amtca under a small LD_PRELOAD that moves only its wall
# clock back, amtsim with --clock-offset of the same ten days), with
# one-day leaves.  Then the clock is moved to now (amtsim's by
# sim_clock_set; amtca runs with its own, honest clock), and:
#   (a) the leaf the device serves has expired, and a normal verified
#       handshake refuses it (openssl s_client);
#   (c) the records bind that expired leaf; an expired leaf of this CA for
#       the same name that is NOT byte-equal to it (issued by hand ten days
#       ago), served by a fake AMT that records Authorization headers:
#       enroll and fleet fail closed and send nothing;
#   (b) a fleet run renews the device: over TLS that verifies chain and
#       hostname forgiving only that leaf's expiry, because it is byte-equal
#       to the one the records bound there.  The new leaf verifies now, and
#       the old one is revoked as superseded;
#   (d) doctor and amt-info follow the same rule: they reach the device
#       serving its expired bound leaf over TLS (doctor then FAILs the
#       validity checks with a fix), and in (c) send nothing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

ADDR=127.0.87.1
FQDN=amt-x1.example.test
SHIFT=$((10 * 86400))
REC="$T/auth.log"

# The wall clock SHIFT seconds ago, for amtca (and the signer it spawns);
# the monotonic clock is untouched.
cat >"$T/shift.c" <<EOF
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <sys/time.h>
#include <time.h>
static int (*real_cg)(clockid_t, struct timespec *);
int clock_gettime(clockid_t c, struct timespec *ts)
{
	int r;
	if (real_cg == NULL)
		real_cg = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	r = real_cg(c, ts);
	if (r == 0 && (c == CLOCK_REALTIME || c == CLOCK_REALTIME_COARSE))
		ts->tv_sec -= $SHIFT;
	return r;
}
time_t time(time_t *t)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (t != NULL)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
int gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;
	(void)tz;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (tv != NULL) {
		tv->tv_sec = ts.tv_sec;
		tv->tv_usec = ts.tv_nsec / 1000;
	}
	return 0;
}
EOF
cc -shared -fPIC -O1 -o "$T/shift.so" "$T/shift.c" -ldl ||
    fail "cannot build the clock shim"
# (Sanitizer builds: the shim comes before libasan, which must be told.)
past() {
	LD_PRELOAD="$T/shift.so${LD_PRELOAD:+ $LD_PRELOAD}" \
	    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "$@"
}

# --- ten days ago: the CA, one-day leaves, an enrollment ------------------
HOME_CA="$T/home"
PW="$T/amt-password"
past "$AMTCA" --home "$HOME_CA" init --softhsm --domain example.test --days 1 \
    >"$T/init.out" || fail "init (ten days ago) failed"
password_file "$PW" "Adm1n-$RANDOM-pw"
sim_up "$T/sim.log" "$ADDR" "$FQDN" --clock-offset "-$SHIFT" \
    --clock-file "$T/clock"
past "$AMTCA" --home "$HOME_CA" enroll --host "$FQDN" --address "$ADDR" \
    --user admin --password-file "$PW" >"$T/e0.out" 2>"$T/e0.err" ||
    fail "enrollment ten days ago failed: $(cat "$T/e0.err")"
OLD=$(served_serial "$ADDR" "$FQDN")
[ -n "$OLD" ] || fail "no leaf served after the first enrollment"
# A hand-issued certificate of this CA for the same name, for (c).
make_csr "$T/hand.csr" rsa:2048 "$FQDN"
past "$AMTCA" --home "$HOME_CA" issue --fqdn "$FQDN" --csr "$T/hand.csr" \
    --out "$T/hand.pem" >/dev/null || fail "issue by hand failed"

# --- now -----------------------------------------------------------------
sim_clock_set "$T/sim.log" "$T/clock" 0
openssl s_client -connect "$ADDR:16993" -servername "$FQDN" </dev/null 2>/dev/null |
    openssl x509 -out "$T/old.pem" || fail "cannot read the served leaf"
openssl x509 -in "$T/old.pem" -noout -checkend 0 >/dev/null &&
    fail "the served leaf has not expired: $(openssl x509 -in "$T/old.pem" -noout -enddate)"
rc=0
openssl s_client -connect "$ADDR:16993" -servername "$FQDN" -verify_return_error \
    -verify_hostname "$FQDN" -CAfile "$HOME_CA/chain.pem" </dev/null >"$T/sc.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q 'certificate has expired' "$T/sc.out" ||
    fail "a normal verified handshake took the expired leaf: $(tail -n 3 "$T/sc.out")"
ok "(a) the device serves its bound leaf, expired $(openssl x509 -in "$T/old.pem" -noout -enddate | cut -d= -f2); a verified handshake refuses it"

# --- (d) doctor and amt-info follow enroll's expired-leaf rule ------------
# The served leaf is the bound one, expired: TLS verifies chain and hostname
# forgiving only its expiry, so doctor logs in over TLS and says it expired
# (validity FAIL, with the fix), and amt-info reads the device over TLS.
rc=0
"$AMTCA" --home "$HOME_CA" doctor --host "$FQDN" --address "$ADDR" --user admin \
    --password-file "$PW" --json >"$T/doc.json" 2>"$T/doc.err" || rc=$?
[ "$rc" = 1 ] || fail "doctor on the expired device: exit $rc: $(cat "$T/doc.err")"
python3 - "$T/doc.json" <<'PY' || fail "doctor does not use the expired-leaf rule: $(cat "$T/doc.json")"
import json, sys
d = json.load(open(sys.argv[1]))
res = {c["check"]: c for c in d["checks"]}
assert res["TLS handshake"]["result"] == "ok", res["TLS handshake"]
assert "expiry alone is forgiven" in res["TLS handshake"]["detail"], res["TLS handshake"]
assert res["WS-MAN login"]["result"] == "ok", res["WS-MAN login"]
assert res["AMT identity"]["result"] == "ok", res["AMT identity"]
for k in ("certificate validity (our clock)", "certificate validity (AMT clock)"):
    assert res[k]["result"] == "fail" and "expired" in res[k]["detail"] and res[k]["fix"], res[k]
PY
"$AMTCA" --home "$HOME_CA" amt-info --host "$FQDN" --address "$ADDR" --user admin \
    --password-file "$PW" --json >"$T/ai.json" 2>"$T/ai.err" ||
    fail "amt-info on the expired device failed: $(cat "$T/ai.err")"
python3 - "$T/ai.json" "$OLD" <<'PY' || fail "amt-info did not read the device: $(head -c 600 "$T/ai.json")"
import json, sys
d = json.load(open(sys.argv[1]))
b = [c for c in d["certificates"] if c["bound"]]
assert len(b) == 1 and b[0]["serial"].upper().lstrip("0") == sys.argv[2].upper().lstrip("0"), b
PY
ok "(d) doctor and amt-info reach the device over TLS that forgives only the bound leaf's expiry; doctor reports the expiry with a fix"

# --- (c) an expired leaf that is not the bound one ------------------------
# The records still bind the expired $OLD.  A fake AMT that records
# Authorization headers, on a second address given for the same name,
# serves the hand-issued leaf: same CA, same name, also expired, but not
# byte-equal to the bound one.  Nothing is forgiven, nothing is sent.
ADDR2=127.0.87.2
start_rec() {
	local out=$1 i
	shift
	: >"$REC"
	python3 "$(dirname "$0")/auth_recorder.py" "$REC" "$ADDR2" 16992 "$@" >"$out" 2>&1 &
	REC_PID=$!
	on_exit "kill $REC_PID 2>/dev/null; wait $REC_PID 2>/dev/null"
	for i in $(seq 1 200); do
		grep -q '^ready' "$out" 2>/dev/null && return 0
		kill -0 "$REC_PID" 2>/dev/null || fail "recorder exited: $(cat "$out")"
		sleep 0.05
	done
	fail "recorder not ready: $(cat "$out")"
}
nothing_sent() {
	[ ! -s "$REC" ] || fail "$1 sent credentials to the fake device: $(cat "$REC")"
}
openssl x509 -in "$T/hand.pem" -noout -checkend 0 >/dev/null &&
    fail "the hand-issued leaf has not expired"
start_rec "$T/rec.out" 16993 "$T/hand.pem" "$T/hand.csr.key"
rc=0
"$AMTCA" --home "$HOME_CA" enroll --host "$FQDN" --address "$ADDR2" \
    --user admin --password-file "$PW" >"$T/e1.out" 2>"$T/e1.err" || rc=$?
[ "$rc" = 1 ] || fail "enroll against an expired non-bound leaf: exit $rc: $(cat "$T/e1.err")"
grep -q 'fail closed' "$T/e1.err" || fail "enroll does not fail closed: $(cat "$T/e1.err")"
nothing_sent "enroll (expired hand-issued leaf)"
printf 'fqdn,address,user,password_file\n%s,%s,,\n' "$FQDN" "$ADDR2" >"$T/hosts2.csv"
fleet --hosts "$T/hosts2.csv" --renew-days 0 --json >"$T/f2.json" 2>"$T/f2.err" || true
[ "$(json_get "$T/f2.json" failed)" = 1 ] ||
    fail "fleet did not fail the device: $(head -c 800 "$T/f2.json") $(cat "$T/f2.err")"
nothing_sent "fleet (expired hand-issued leaf)"
rc=0
"$AMTCA" --home "$HOME_CA" doctor --host "$FQDN" --address "$ADDR2" --user admin \
    --password-file "$PW" --json >"$T/doc2.json" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "doctor against the non-bound expired leaf: exit $rc"
python3 - "$T/doc2.json" <<'PY' || fail "doctor forgave a leaf that is not the bound one: $(cat "$T/doc2.json")"
import json, sys
res = {c["check"]: c for c in json.load(open(sys.argv[1]))["checks"]}
assert res["TLS handshake"]["result"] == "fail" and "expired" in res["TLS handshake"]["detail"], res["TLS handshake"]
assert res["WS-MAN login"]["result"] != "ok", res["WS-MAN login"]
PY
nothing_sent "doctor (expired hand-issued leaf)"
rc=0
"$AMTCA" --home "$HOME_CA" amt-info --host "$FQDN" --address "$ADDR2" --user admin \
    --password-file "$PW" --json >/dev/null 2>"$T/ai2.err" || rc=$?
[ "$rc" = 1 ] || fail "amt-info against the non-bound expired leaf: exit $rc"
nothing_sent "amt-info (expired hand-issued leaf)"
kill "$REC_PID" 2>/dev/null || true
wait "$REC_PID" 2>/dev/null || true
ok "(c) the records bind an expired leaf, and another expired leaf of this CA for the name is served: enroll, fleet, doctor and amt-info fail closed, nothing sent"

printf 'fqdn,address,user,password_file\n%s,%s,,\n' "$FQDN" "$ADDR" >"$T/hosts.csv"
fleet --hosts "$T/hosts.csv" --renew-days 0 --json >"$T/f1.json" 2>"$T/f1.err" ||
    fail "fleet run failed: $(cat "$T/f1.err"; head -c 600 "$T/f1.json")"
[ "$(json_get "$T/f1.json" renewed)" = 1 ] ||
    fail "fleet did not renew the device: $(head -c 800 "$T/f1.json") $(cat "$T/f1.err")"
NEW=$(served_serial "$ADDR" "$FQDN")
[ -n "$NEW" ] && [ "$NEW" != "$OLD" ] || fail "the served leaf did not change ($OLD -> $NEW)"
s_client_ok "$ADDR" "$FQDN"
"$AMTCA" --home "$HOME_CA" list --json >"$T/list.json"
python3 - "$T/list.json" "$OLD" "$NEW" <<'PY' || fail "the old certificate is not superseded"
import json, sys
recs = {c["serial"].upper(): c for c in json.load(open(sys.argv[1]))["certificates"]}
old, new = recs[sys.argv[2].upper()], recs[sys.argv[3].upper()]
assert old["status"] == "revoked" and old["reason"] == "superseded", old
assert new["status"] == "valid", new
PY
assert_clean "$ADDR" "$FQDN"
ok "(b) fleet renews the device offline past expiry ($OLD -> $NEW): the new leaf verifies now, the old one is superseded, AMT holds one leaf"

