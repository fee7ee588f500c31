#!/usr/bin/env bash
# scripts/amtca-fleet.{service,timer}: installed by make install (PREFIX,
# DESTDIR), parse, run the installed amtca fleet, and keep their sandbox.
# systemd-analyze verify checks them when it exists (it warns, rather than
# fails, on a bad value: any output is a failure here).
. "$(dirname "$0")/lib.sh"

D="$T/dest"
# -o all: install the binaries under test as they are; never relink them
# here (under make asan that would drop the sanitizer flags).
make -s -o all -C "$top" install BUILD="$BUILD" DESTDIR="$D" PREFIX=/opt/amtca \
    >"$T/install.log" 2>&1 || fail "make install: $(tail -5 "$T/install.log")"
U="$D/opt/amtca/lib/systemd/system"
[ -f "$U/amtca-fleet.service" ] && [ -f "$U/amtca-fleet.timer" ] ||
    fail "units not installed under \$PREFIX/lib/systemd/system: $(find "$D" -type f)"
ok "make install puts the units under DESTDIR/PREFIX/lib/systemd/system"

python3 - "$U/amtca-fleet.service" "$U/amtca-fleet.timer" "$D" <<'PY' || fail "unit files"
import os, re, shlex, sys

def parse(path):
    """systemd's INI: sections, key=value, repeated keys kept in order."""
    sec, out = None, {}
    for n, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip()[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            sec = m.group(1)
            assert sec not in out, "%s:%d: section [%s] twice" % (path, n, sec)
            out[sec] = []
            continue
        assert sec is not None, "%s:%d: outside a section" % (path, n)
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", line)
        assert m, "%s:%d: not key=value: %r" % (path, n, line)
        out[sec].append((m.group(1), m.group(2)))
    return out

svc, tmr, dest = parse(sys.argv[1]), parse(sys.argv[2]), sys.argv[3]
assert set(svc) == {"Unit", "Service"}, svc.keys()
assert set(tmr) == {"Unit", "Timer", "Install"}, tmr.keys()
s = {}
for k, v in svc["Service"]:
    s.setdefault(k, []).append(v)
one = lambda k: (s.get(k) or [None])[-1]

argv = shlex.split(one("ExecStart"))
assert argv[0] == "/opt/amtca/bin/amtca", argv
exe = dest + argv[0]
assert os.path.isfile(exe) and os.access(exe, os.X_OK), exe
assert "fleet" in argv and "--hosts" in argv, argv

want = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
    "ProtectHome": "yes", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "UMask": "0077",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "CapabilityBoundingSet": "", "LimitCORE": "0",
}
for k, v in want.items():
    assert one(k) == v, "%s=%r, want %r" % (k, one(k), v)
assert int(one("LimitNOFILE")) >= 4096, one("LimitNOFILE")
home = argv[argv.index("--home") + 1]
rw = " ".join(s.get("ReadWritePaths", [])).split()
assert any(home == p or home.startswith(p.rstrip("/") + "/") for p in rw), (home, rw)
assert not home.startswith(("/home/", "/root/", "/run/user/")), home

t = dict(tmr["Timer"])
assert t.get("Unit", "amtca-fleet.service") == "amtca-fleet.service", t
assert t.get("OnCalendar") or t.get("OnUnitActiveSec"), t
assert ("WantedBy", "timers.target") in tmr["Install"], tmr["Install"]
PY
ok "the units parse, ExecStart is the installed amtca fleet, the sandbox is set"

# The installed binary runs (fleet itself lands on branch h-fleet; until
# then main answers "unknown command", which still proves it runs).
"$D/opt/amtca/bin/amtca" fleet --help >"$T/fleet.help" 2>&1 ||
    grep -q "unknown command" "$T/fleet.help" ||
    fail "installed amtca fleet --help: $(cat "$T/fleet.help")"

if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants ExecStart to exist where it says: point it into DESTDIR.
	mkdir -p "$T/v"
	sed "s|^ExecStart=/opt/amtca/bin/amtca|ExecStart=$D/opt/amtca/bin/amtca|" \
	    "$U/amtca-fleet.service" >"$T/v/amtca-fleet.service"
	cp "$U/amtca-fleet.timer" "$T/v/"
	(cd "$T/v" && systemd-analyze verify --man=no amtca-fleet.service \
	    amtca-fleet.timer) >"$T/verify.out" 2>&1 ||
	    fail "systemd-analyze verify: $(cat "$T/verify.out")"
	[ ! -s "$T/verify.out" ] || fail "systemd-analyze verify warns: $(cat "$T/verify.out")"
	ok "systemd-analyze verify accepts both units"
else
	ok "# skip: no systemd-analyze"
fi
