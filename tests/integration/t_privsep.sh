#!/usr/bin/env bash
# Privilege separation (docs/PROTOCOL.signer): while `amtca enroll` and
# `amtca fleet` run against amtsim, the front end has no PKCS#11 module
# mapped and its signer child does; the signer refuses a malformed and an
# oversized frame by dropping that connection and keeps serving the
# others; a forged requester (a self-made chain claiming an admin's name,
# Basic credentials nobody registered, an EST or ADMIN issue from the
# front end itself) is refused and records nothing; a front end whose
# signer died says so and fails.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"
source "$(dirname "$0")/fleet_helpers.sh"

ca_setup
ADDR=127.0.141.1

# The signer is internal: not among the commands, but it says what it is.
"$AMTCA" --help | qgrep -w signer && fail "amtca --help lists the internal signer command"
"$AMTCA" signer --help | qgrep "^Internal" || fail "amtca signer --help does not say it is internal"
expect_fail 2 "internal" "$AMTCA" signer
ok "amtca signer is hidden and says it is internal"

# The front end under background job $1 (a subshell running a helper):
# the amtca process among its descendants that is not the signer.
kids() { cat /proc/"$1"/task/*/children 2>/dev/null; }
is_signer() { tr '\0' ' ' </proc/"$1"/cmdline 2>/dev/null | qgrep '^amtca signer'; }
frontend_of() {
	local pid=$1 c i
	for i in $(seq 1 200); do
		for c in $pid $(kids "$pid"); do
			if [ "$(readlink /proc/"$c"/exe 2>/dev/null)" = "$(readlink -f "$AMTCA")" ] &&
			    ! is_signer "$c"; then
				echo "$c"
				return 0
			fi
		done
		sleep 0.05
	done
	return 1
}

# The signer child of front end $1.
signer_of() {
	local pid=$1 c i
	for i in $(seq 1 200); do
		for c in $(kids "$pid"); do
			if is_signer "$c"; then
				echo "$c"
				return 0
			fi
		done
		sleep 0.05
	done
	return 1
}

# maps_check FRONTEND_PID WHAT: no libsofthsm2 in the front end, some in
# its signer (both looked at while the command runs).
maps_check() {
	local fe what=$2 sg
	fe=$(frontend_of "$1") || fail "$what: no amtca process under $1"
	sg=$(signer_of "$fe") || fail "$what: no signer child of $fe"
	grep -q 'amtca.signer' <(tr '\0' ' ' </proc/"$sg"/cmdline) ||
	    fail "$what: $sg is not the signer"
	# The signer logs in before it says hello; give it the moment.
	for i in $(seq 1 100); do
		grep -q libsofthsm2 /proc/"$sg"/maps 2>/dev/null && break
		sleep 0.05
	done
	grep -q libsofthsm2 /proc/"$sg"/maps || fail "$what: the signer has no PKCS#11 module mapped"
	grep -q libsofthsm2 /proc/"$fe"/maps && fail "$what: the front end maps the PKCS#11 module"
	echo "$sg"
}

# --- enroll: front end and signer, while it runs ---------------------------
sim_up "$T/sim.log" "$ADDR" pv1.example.test --latency-ms 150
enroll "$ADDR" pv1.example.test >"$T/e.out" 2>"$T/e.err" &
EPID=$!
SG=$(maps_check "$EPID" enroll)
# A SIGTERM to the group reaches the signer too: it stays for its front end.
kill -TERM "$SG"
wait "$EPID" || fail "enroll failed (after a SIGTERM to its signer): $(cat "$T/e.err")"
kill -0 "$SG" 2>/dev/null && { sleep 1; kill -0 "$SG" 2>/dev/null; } &&
    fail "the signer $SG outlived its front end"
grep -q 'enrolled' "$T/e.out" || fail "enroll did not enroll: $(cat "$T/e.out")"
# The record names the front end's user as requester, as SO_PEERCRED says.
"$AMTCA" --home "$HOME_CA" list --json >"$T/l.json"
python3 - "$T/l.json" "$(id -un)" <<'PY' || fail "requester is not user@host of the front end"
import json, sys
c = json.load(open(sys.argv[1]))["certificates"]
assert len(c) == 1, c
assert c[0]["requester"].startswith(sys.argv[2] + "@"), c[0]
PY
ok "enroll: the front end maps no PKCS#11 module, its signer does (and outlasts a SIGTERM)"
stop_sim

# --- fleet ------------------------------------------------------------------
sim_key_pool_fill 12
start_sim "$T/simf.log" --devices 6 --address-base 127.0.141.10 \
    --fqdn-pattern 'pvf%02d.example.test' --user admin --password-file "$PW" \
    --key-pool "$SIM_KEY_POOL" --latency-ms 100
hosts_csv "$T/hosts.csv" 'pvf%02d.example.test' 127.0.141.10 6
fleet --hosts "$T/hosts.csv" --concurrency 3 >"$T/f.out" 2>"$T/f.err" &
FPID=$!
maps_check "$FPID" fleet >/dev/null
wait "$FPID" || fail "fleet failed: $(cat "$T/f.err")"
check_devices 'pvf%02d.example.test' 127.0.141.10 6
ok "fleet: the front end maps no PKCS#11 module, its signer does"
stop_sim

# --- the signer's socket, from a peer that breaks the rules -----------------
N0=$(cert_count "$HOME_CA")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/forged.key" -subj "/CN=admin" -days 30 \
    -outform DER -out "$T/forged.der" 2>/dev/null
make_csr "$T/est.csr" ec:P-256 web.example.test
openssl req -in "$T/est.csr" -outform DER -out "$T/est.der"
python3 - "$AMTCA" "$HOME_CA" "$T/forged.der" "$T/est.der" "$T/signer.err" <<'PY' || fail "the signer's socket test failed"
import os, socket, struct, subprocess, sys

amtca, home, forged, csr = sys.argv[1:5]
forged = open(forged, "rb").read()
csr = open(csr, "rb").read()

def u8(v): return bytes([v])
def u32(v): return struct.pack(">I", v & 0xffffffff)
def s(b):
    b = b.encode() if isinstance(b, str) else b
    return u32(len(b)) + b
def opt(b): return u8(0) if b is None else u8(1) + s(b)
def who(kind, certs=(), user=None, pw=None):
    r = u8(kind) + u8(len(certs))
    for c in certs:
        r += s(c)
    return r + opt(user) + opt(pw) + opt(None)
def frame(t, i, body):
    b = u8(t) + u32(i) + body
    return u32(len(b)) + b
def issue(i, w, profile, fqdn):
    return frame(3, i, w + u8(profile) + s(fqdn) + opt(None) + u8(0) + s(csr)
                 + u32(0) + opt(None) + u8(0) + u8(0))  # reenroll, digest

def recv_frame(sk):
    def exact(n):
        b = b""
        while len(b) < n:
            try:
                c = sk.recv(n - len(b))
            except ConnectionResetError:	# closed with our bytes unread
                return None
            if not c:
                return None
            b += c
        return b
    h = exact(4)
    if h is None:
        return None
    return exact(struct.unpack(">I", h)[0])

def result(body):
    return struct.unpack(">i", body[5:9])[0]

pairs = [socket.socketpair() for _ in range(3)]
child = [p[1] for p in pairs]
mine = [p[0] for p in pairs]
fds = ",".join(str(c.fileno()) for c in child)
proc = subprocess.Popen([amtca, "--home", home, "signer", "--fds", fds],
                        pass_fds=[c.fileno() for c in child],
                        stdout=subprocess.DEVNULL, stderr=open(sys.argv[5], "w"))
for c in child:
    c.close()
for m in mine:
    m.settimeout(60)
hello = recv_frame(mine[0])
assert hello is not None and hello[0] == 1 and result(hello) == 0, hello

# Malformed: a valid length, an unknown type.  The signer drops it.
mine[0].sendall(frame(0x55, 1, b"junk"))
assert recv_frame(mine[0]) is None, "malformed frame answered"
# Oversized: a length over the request cap (nothing else is read).
mine[1].sendall(u32(0x7fffffff) + b"\x03")
assert recv_frame(mine[1]) is None, "oversized frame answered"
# Trailing bytes after a CRL request.
c2 = mine[2]
c2.sendall(frame(7, 1, opt(None)))
r = recv_frame(c2)
assert r is not None and r[0] == 0x87 and result(r) == 0, "signer stopped serving"

# A self-made chain that claims to be the admin.
c2.sendall(issue(2, who(1, [forged]), 1, "web.example.test"))
r = recv_frame(c2)
assert r is not None and r[0] == 0x83 and result(r) != 0, r
e_auth = result(r)
# Basic credentials nobody registered.
c2.sendall(issue(3, who(2, (), "admin", "guess"), 1, "web.example.test"))
r = recv_frame(c2)
assert r is not None and result(r) == e_auth, r
# The front end itself asking for an EST certificate, or an admin's.
c2.sendall(issue(4, who(0), 1, "web.example.test"))
r = recv_frame(c2)
assert r is not None and result(r) != 0 and result(r) != e_auth, r
e_denied = result(r)
c2.sendall(issue(5, who(0), 3, "ops.example.test"))
r = recv_frame(c2)
assert r is not None and result(r) == e_denied, r
# A revocation for a compromise reason, from the front end.
c2.sendall(frame(5, 6, opt(None) + opt(None) + opt(None) + opt(None) + u32(0) + u8(0)))
r = recv_frame(c2)
assert r is not None and result(r) == 0
n = struct.unpack(">I", r[9:13])[0]
if n:
    serial_len = struct.unpack(">I", r[13:17])[0]
    serial = r[17:17 + serial_len]
    c2.sendall(frame(6, 7, who(0) + s(serial) + u8(1)))
    r = recv_frame(c2)
    assert r is not None and result(r) == e_denied, r
print("codes", e_auth, e_denied)
for m in mine:
    m.close()
assert proc.wait(timeout=30) == 0, "signer exit status"
PY
grep -q 'event=drop' "$T/signer.err" || fail "the signer did not log the dropped connections: $(cat "$T/signer.err")"
[ "$(cert_count "$HOME_CA")" = "$N0" ] || fail "a refused request recorded a certificate"
"$AMTCA" --home "$HOME_CA" list --json | python3 -c '
import json, sys
c = json.load(sys.stdin)["certificates"]
assert all(x["status"] == "valid" for x in c), [x for x in c if x["status"] != "valid"]
' || fail "a refused revocation changed a record"
ok "the signer drops malformed and oversized frames, serves on, refuses forged requesters, records nothing"

# --- a signer that dies mid-run -------------------------------------------------
sim_up "$T/sim2.log" 127.0.141.2 pv2.example.test --latency-ms 300
enroll 127.0.141.2 pv2.example.test >"$T/e2.out" 2>"$T/e2.err" &
EPID=$!
FE=$(frontend_of "$EPID") || fail "no front end for the second enroll"
SG=$(signer_of "$FE") || fail "no signer for the second enroll"
kill -KILL "$SG"
rc=0
wait "$EPID" || rc=$?
[ "$rc" = 1 ] || fail "enroll with a dead signer exited $rc: $(cat "$T/e2.err")"
grep -q 'signer process' "$T/e2.err" || fail "no clear message for a dead signer: $(cat "$T/e2.err")"
ok "a dead signer fails the front end with a clear message"
stop_sim
