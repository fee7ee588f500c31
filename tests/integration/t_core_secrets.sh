#!/usr/bin/env bash
# Secrets out of memory dumps.  amtca holds the CA PIN and AMT passwords:
#  1. while it runs, its core limit is 0 (soft and hard) and it is not
#     dumpable: gcore, run as root but without CAP_SYS_PTRACE (what any
#     other process of the same user has), cannot attach to it;
#  2. once a command is done with the password, no copy is left in the
#     process's memory, in amtca's buffers or in what libcurl freed: gdb
#     stops amtca at exit() (after everything is freed, before the
#     process goes) and every writable mapping is searched for it.
# What 2 does not cover: while a WS-MAN handle is open, libcurl keeps its
# own live copies (documented in docs/architecture.md).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/enroll_helpers.sh"

command -v gdb >/dev/null || fail "gdb is needed for this test"
command -v gcore >/dev/null || fail "gcore (gdb) is needed for this test"
command -v capsh >/dev/null || fail "capsh (libcap2-bin) is needed for this test"

BASE=127.0.75
ca_setup
SECRET="Zk9-core-$RANDOM$RANDOM-not-in-dumps"
password_file "$PW" "$SECRET"
start_sim "$T/sim.log" --devices 2 --address-base "$BASE.1" \
    --fqdn-pattern 'core%d.example.test' --user admin --password-file "$PW" \
    --latency-ms 250 --commit-delay-ms 100

# --- 1. no core file, no ptrace by the same user ---------------------------
"$AMTCA" --home "$HOME_CA" enroll --host core0.example.test --address "$BASE.1" \
    --user admin --password-file "$PW" >"$T/e0.out" 2>"$T/e0.err" &
pid=$!
# Wait until it talks to the device: well past start-up, password in use.
for i in $(seq 1 200); do
	ls -l "/proc/$pid/fd" 2>/dev/null | qgrep 'socket:' && break
	kill -0 "$pid" 2>/dev/null || fail "enroll ended early: $(cat "$T/e0.err")"
	sleep 0.05
done
core=$(awk '/^Max core file size/ { print $5 "/" $6 }' "/proc/$pid/limits")
[ "$core" = 0/0 ] || fail "core file size limit of a running enroll is $core, want 0/0"
rc=0
capsh --drop=cap_sys_ptrace -- -c "exec gcore -o '$T/core' $pid" \
    >"$T/gcore.out" 2>&1 || rc=$?
if ls "$T"/core.* >/dev/null 2>&1; then
	fail "gcore without CAP_SYS_PTRACE dumped a running enroll (the dump holds the AMT password)"
fi
[ "$rc" != 0 ] || fail "gcore without CAP_SYS_PTRACE did not fail: $(tail -n 2 "$T/gcore.out")"
wait "$pid" || fail "enroll failed: $(cat "$T/e0.err")"
ok "a running enroll has core limit 0/0 and is not dumpable (gcore refused)"

# --- 2. nothing left after use ---------------------------------------------
cat >"$T/scan.py" <<'PY'
import gdb, os, re
# From the files, not the environment: amtca inherits gdb's environment.
# glibc reuses the first 16 bytes of a freed block for its lists, so look
# for either half of a secret, not only the whole of it.
pieces = []
for path in os.environ["SCAN_FILES"].split(":"):
    secret = open(path, "rb").read().rstrip(b"\r\n")
    assert len(secret) >= 24
    pieces += [(secret, 0, path), (secret[:16], 0, path), (secret[16:], 16, path)]
inf = gdb.selected_inferior()
found = []
skipped = []
for line in open("/proc/%d/maps" % inf.pid):
    f = line.split()
    lo, hi = (int(x, 16) for x in f[0].split("-"))
    if not f[1].startswith("rw"):
        continue
    # Sanitizer shadow memory: terabytes reserved, never a heap of ours.
    if hi - lo > 1 << 34:
        skipped.append("%#x-%#x" % (lo, hi))
        continue
    try:
        mem = bytes(inf.read_memory(lo, hi - lo))
    except gdb.MemoryError:
        continue
    hits = set()
    for p, off, path in pieces:
        for m in re.finditer(re.escape(p), mem):
            hits.add((lo + m.start() - off, path))
    for a, path in sorted(hits):
        found.append("%#x %s (%s)" % (a, f[5] if len(f) > 5 else "anon", path))
with open(os.environ["SCAN_OUT"], "w") as out:
    out.write("scanned\n")
    for x in skipped:
        out.write("skipped %s\n" % x)
    for x in found:
        out.write("copy at %s\n" % x)
PY
# Only the password copies matter here, not the stdout of the run.
SCAN_FILES="$PW:$HOME_CA/keys/softhsm/user.pin" SCAN_OUT="$T/scan.out" gdb -q -batch \
    -ex 'set breakpoint pending on' -ex 'break exit' -ex run \
    -ex "source $T/scan.py" -ex kill \
    --args "$AMTCA" --home "$HOME_CA" enroll --host core1.example.test \
    --address "$BASE.2" --user admin --password-file "$PW" \
    >"$T/gdb.out" 2>&1 || true
# stdout is still unflushed at exit(); the exit status says it enrolled.
grep -q 'exit (status=0)' "$T/gdb.out" || fail "enroll under gdb failed: $(tail -n 5 "$T/gdb.out")"
grep -q '^scanned' "$T/scan.out" 2>/dev/null || fail "gdb did not scan: $(tail -n 5 "$T/gdb.out")"
n=$(grep -c '^copy at' "$T/scan.out" || true)
[ "$n" = 0 ] || fail "$n copies of the AMT password or PIN left in memory at exit: $(head -n 3 "$T/scan.out")"
ok "no copy of the AMT password or the token PIN left in memory after enroll (gdb at exit)"
echo "t_core_secrets: all passed"
