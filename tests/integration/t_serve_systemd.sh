#!/usr/bin/env bash
# scripts/amtca.service: installed by make install (PREFIX, DESTDIR),
# parses, runs the installed amtca serve as root with a drop to --user,
# keeps its sandbox (strict, the state directory writable, the capability
# set the drop needs and no more), and systemd-analyze verify accepts it.
. "$(dirname "$0")/lib.sh"

D="$T/dest"
make -s -o all -C "$top" install BUILD="$BUILD" DESTDIR="$D" PREFIX=/opt/amtca \
    >"$T/install.log" 2>&1 || fail "make install: $(tail -5 "$T/install.log")"
U="$D/opt/amtca/lib/systemd/system"
[ -f "$U/amtca.service" ] || fail "amtca.service not installed: $(find "$D" -name '*.service')"
ok "make install puts amtca.service under DESTDIR/PREFIX/lib/systemd/system"

python3 - "$U/amtca.service" "$D" <<'PY' || fail "amtca.service"
import os, re, shlex, sys

sec, units = None, {}
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    if not line.strip() or line.lstrip()[0] in "#;":
        continue
    m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
    if m:
        sec = m.group(1)
        assert sec not in units, "section [%s] twice" % sec
        units[sec] = []
        continue
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", line)
    assert sec and m, "line %d: %r" % (n, line)
    units[sec].append((m.group(1), m.group(2)))
assert set(units) == {"Unit", "Service", "Install"}, units.keys()
s = {}
for k, v in units["Service"]:
    s.setdefault(k, []).append(v)
one = lambda k: (s.get(k) or [None])[-1]

argv = shlex.split(one("ExecStart"))
assert argv[0] == "/opt/amtca/bin/amtca", argv
assert os.access(sys.argv[2] + argv[0], os.X_OK)
assert "serve" in argv and "--listen" in argv and "--user" in argv, argv
assert one("User") is None, "root and a drop: no User="
st = argv[argv.index("--status-listen") + 1]
assert st.startswith("unix:/run/amtca/") or st.startswith("127.0.0.1:"), st
want = {
    "Type": "simple", "KillMode": "mixed", "NoNewPrivileges": "yes",
    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "UMask": "0077",
    "LimitCORE": "0", "AmbientCapabilities": "", "RestrictSUIDSGID": "yes",
}
for k, v in want.items():
    assert one(k) == v, "%s=%r, want %r" % (k, one(k), v)
caps = set(one("CapabilityBoundingSet").split())
assert caps == {"CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER",
    "CAP_NET_BIND_SERVICE"}, caps
assert int(one("TimeoutStopSec")) > 10, "SIGTERM needs its 10 s"
assert int(one("LimitNOFILE")) >= 4096
home = argv[argv.index("--home") + 1]
rw = " ".join(s.get("ReadWritePaths", [])).split()
assert any(home == p or home.startswith(p.rstrip("/") + "/") for p in rw), (home, rw)
# The drop itself needs setuid/setgroups: ~@privileged would forbid it.
assert all("privileged" not in f for f in s.get("SystemCallFilter", [])), s["SystemCallFilter"]
assert ("WantedBy", "multi-user.target") in units["Install"]
PY
ok "amtca.service parses: installed amtca serve, root then --user, sandbox and capability set"

"$D/opt/amtca/bin/amtca" serve --help >"$T/help" 2>&1 || fail "installed serve --help: $(cat "$T/help")"
grep -q -- '--publish-listen' "$T/help" || fail "serve --help: $(cat "$T/help")"

if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$T/v"
	sed "s|^ExecStart=/opt/amtca/bin/amtca|ExecStart=$D/opt/amtca/bin/amtca|" \
	    "$U/amtca.service" >"$T/v/amtca.service"
	(cd "$T/v" && systemd-analyze verify --man=no amtca.service) >"$T/verify.out" 2>&1 ||
	    fail "systemd-analyze verify: $(cat "$T/verify.out")"
	[ ! -s "$T/verify.out" ] || fail "systemd-analyze verify warns: $(cat "$T/verify.out")"
	ok "systemd-analyze verify accepts amtca.service"
else
	ok "# skip: no systemd-analyze"
fi
