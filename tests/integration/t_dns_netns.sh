#!/usr/bin/env bash
# Name resolution, the most common cause of broken AMT TLS, tested for real:
# a network namespace of our own whose /etc/hosts (ip netns binds
# /etc/netns/NAME/hosts over it) maps the device names, so amtca resolves
# them through the system resolver with no --address:
#   - pc5.example.test resolves to where the device answers: enroll
#     succeeds by name alone and every doctor check passes (exit 0),
#     including TLS on the redirection port;
#   - moved.example.test resolves to a stale address while the device
#     answers elsewhere: enroll's pre-flight and doctor both say so.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
	echo "SKIP: needs root and iproute2 for a network namespace"
	exit 0
fi
NS="amtca-dns-$$"
ip netns add "$NS"
on_exit "ip netns del $NS; rm -rf /etc/netns/$NS"
mkdir -p "/etc/netns/$NS"
cat >"/etc/netns/$NS/hosts" <<HOSTS
127.0.0.1 localhost
127.0.0.5 pc5.example.test
127.0.0.7 moved.example.test
HOSTS
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
in_ns getent hosts pc5.example.test | qgrep '^127.0.0.5 ' || fail "namespace hosts file not in effect"

H="$T/home"
new_ca "$H" --domain example.test
password_file "$T/pw"

# amtsim inside the namespace (its loopback is not the host's).
sim_in_ns() { # log, args...
	local log=$1 i pid
	shift
	# Not through the in_ns function: a backgrounded function is a subshell,
	# and killing it would leave amtsim running.  ip netns exec execs.
	ip netns exec "$NS" "$AMTSIM" "$@" >"$log" 2>&1 &
	pid=$!
	on_exit "kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null"
	for i in $(seq 1 200); do
		grep -q '^ready' "$log" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || fail "amtsim exited: $(cat "$log")"
		sleep 0.05
	done
	fail "amtsim not ready: $(cat "$log")"
}
sim_in_ns "$T/a.log" --listen 127.0.0.5 --fqdn pc5.example.test --user admin \
	--password-file "$T/pw" --commit-delay-ms 100

# --- resolves right: enroll by name, doctor all OK ---------------------------
in_ns "$AMTCA" --home "$H" enroll --host pc5.example.test --user admin \
	--password-file "$T/pw" >"$T/enroll.out" 2>&1 || fail "enroll by name: $(cat "$T/enroll.out")"
grep -q 'enrolled' "$T/enroll.out" || fail "enroll output: $(cat "$T/enroll.out")"
rc=0
in_ns "$AMTCA" --home "$H" doctor --host pc5.example.test --user admin \
	--password-file "$T/pw" >"$T/doctor.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "doctor on a healthy device exited $rc: $(cat "$T/doctor.out")"
grep -q '^FAIL' "$T/doctor.out" && fail "doctor printed a FAIL: $(cat "$T/doctor.out")"
grep -qi '^OK *DNS' "$T/doctor.out" || fail "no DNS check passed: $(cat "$T/doctor.out")"
grep -qi '^OK *redirection' "$T/doctor.out" || fail "redirection TLS not OK: $(cat "$T/doctor.out")"
# The redirection port serves the enrolled certificate, verifiable by openssl.
in_ns openssl s_client -connect 127.0.0.5:16995 -servername pc5.example.test \
	-verify_return_error -verify_hostname pc5.example.test -CAfile "$H/chain.pem" \
	</dev/null >"$T/redir.out" 2>&1 || fail "redirection TLS: $(tail -5 "$T/redir.out")"
ok "by name: enroll succeeds and every doctor check passes, 16995 serves the leaf"

# --- stale DNS: the device answers on another address --------------------------
sim_in_ns "$T/b.log" --listen 127.0.0.8 --fqdn moved.example.test --user admin \
	--password-file "$T/pw"
rc=0
in_ns "$AMTCA" --home "$H" enroll --host moved.example.test --user admin \
	--password-file "$T/pw" >"$T/stale.out" 2>"$T/stale.err" || rc=$?
[ "$rc" = 1 ] || fail "enroll with stale DNS exited $rc: $(cat "$T/stale.out" "$T/stale.err")"
grep -q '127.0.0.7' "$T/stale.err" || fail "pre-flight does not name the resolved address: $(cat "$T/stale.err")"
[ "$(cert_count "$H")" = 1 ] || fail "a failed pre-flight issued a certificate"
rc=0
in_ns "$AMTCA" --home "$H" doctor --host moved.example.test --address 127.0.0.8 \
	--user admin --password-file "$T/pw" >"$T/doc2.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "doctor with stale DNS exited $rc"
grep -E '^FAIL *DNS' "$T/doc2.out" | qgrep '127.0.0.7' ||
	fail "doctor does not report the DNS mismatch: $(cat "$T/doc2.out")"
ok "stale DNS: pre-flight and doctor name the mismatch, nothing issued"
echo "t_dns_netns: all passed"
