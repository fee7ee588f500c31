# Shared helpers for tests/integration/t_*.sh (sourced, bash).
# Env from tests/run.sh: AMTCA, AMTSIM (absolute binary paths), AMTCA_TOP.
set -euo pipefail

top=${AMTCA_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
AMTCA=${AMTCA:-$top/build/amtca}
AMTSIM=${AMTSIM:-$top/build/amtsim}
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so

T=$(mktemp -d /tmp/amtca-it.XXXXXX)

# VALGRIND=1: every amtca run goes through valgrind (make valgrind).
if [ "${VALGRIND:-0}" = 1 ]; then
	cat >"$T/amtca-vg" <<VG
#!/bin/sh
exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$AMTCA" "\$@"
VG
	chmod +x "$T/amtca-vg"
	AMTCA="$T/amtca-vg"
fi
# qgrep ARGS...: `grep -q ARGS` for the end of a pipe.  grep -q exits at
# the first match, the writer then dies of SIGPIPE and, under pipefail, the
# pipe fails although it matched; qgrep reads all of its input.
qgrep() { grep "$@" >/dev/null; }

_cleanups=()
_cleanup() {
	local i
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_cleanups[$i]}" || true
	done
	rm -rf "$T"
}
trap _cleanup EXIT
on_exit() { _cleanups+=("$*"); }

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
ok() { echo "ok - $*"; }

# expect_fail EXIT_CODE SUBSTRING cmd...: the command must exit with
# EXIT_CODE and say SUBSTRING in a one-line "amtca: " error on stderr.
expect_fail() {
	local want=$1 msg=$2 rc=0
	shift 2
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc: $* :: $(cat "$T/err")"
	grep -qi -- "$msg" "$T/err" || fail "expected '$msg' in stderr of $*, got: $(cat "$T/err")"
	if [ "$want" = 1 ]; then
		[ "$(wc -l <"$T/err")" = 1 ] || fail "error is not one line: $(cat "$T/err")"
		grep -q '^amtca: ' "$T/err" || fail "error does not start 'amtca: ': $(cat "$T/err")"
	fi
}

# new_ca HOME [init args...]: a CA in a throwaway embedded SoftHSM token.
new_ca() {
	local home=$1
	shift
	"$AMTCA" --home "$home" init --softhsm "$@" >"$T/init.out"
}

# cert_count HOME: number of issued certificates in the store.
cert_count() {
	"$AMTCA" --home "$1" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["certificates"]))'
}

# make_csr OUT KEYSPEC [CN]: a CSR from a fresh software key.
#   KEYSPEC: rsa:BITS | ec:CURVE
make_csr() {
	local out=$1 spec=$2 cn=${3:-test.example.test} key
	key="$out.key"
	case $spec in
	rsa:*) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:"${spec#rsa:}" -out "$key" 2>/dev/null ;;
	ec:*) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:"${spec#ec:}" -out "$key" 2>/dev/null ;;
	esac
	openssl req -new -key "$key" -subj "/CN=$cn" -out "$out" 2>/dev/null
}

# start_sim LOGFILE args...: start amtsim, wait for "ready", register SIGTERM.
# Sets SIM_PID.
start_sim() {
	local log=$1 i
	shift
	"$AMTSIM" "$@" >"$log" 2>&1 &
	SIM_PID=$!
	on_exit "kill -TERM $SIM_PID 2>/dev/null; wait $SIM_PID 2>/dev/null"
	local max=200
	for ((i = 0; i < max; i++)); do
		grep -q '^ready' "$log" 2>/dev/null && return 0
		kill -0 "$SIM_PID" 2>/dev/null || fail "amtsim exited: $(cat "$log")"
		# Filling a --key-pool the first time takes minutes, not seconds.
		grep -q '^amtsim: key pool .*: generating' "$log" 2>/dev/null && max=12000
		sleep 0.05
	done
	fail "amtsim not ready after $((max / 20)) s: $(cat "$log")"
}

# wait_ready PID OUT ERR WHAT: wait up to 30 s for a line starting "ready"
# in OUT, the stdout of the background process PID (amtca serve, a test
# recorder); fail naming WHAT, with the end of ERR, if it exits first or
# never says it.
wait_ready() {
	local pid=$1 out=$2 err=$3 what=$4 i
	for ((i = 0; i < 600; i++)); do
		grep -q '^ready' "$out" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || fail "$what exited: $(tail -n 5 "$err")"
		sleep 0.05
	done
	fail "$what not ready after 30 s: $(tail -n 5 "$err")"
}

# The amtsim key pool the fleet tests share (--key-pool "$SIM_KEY_POOL"):
# RSA keys generated once per build directory and reused by later runs.
# Unique per device within one amtsim run only: a second amtsim started
# without the first's --state hands out the same keys again, and two
# running at once on one pool is refused (use a second pool file).
SIM_KEY_POOL=${AMTSIM_KEY_POOL:-${BUILD:-$top/build}/amtsim-key-pool.pem}

# sim_key_pool_fill N: make $SIM_KEY_POOL hold at least N keys (only the
# first run of a build directory generates them).
sim_key_pool_fill() {
	"$AMTSIM" --key-pool "$SIM_KEY_POOL" --key-pool-size "$1" >"$T/key-pool.out" ||
	    fail "cannot fill the key pool $SIM_KEY_POOL"
}

# sim_clock_set LOG CLOCKFILE SECONDS: move the simulated clock of the
# amtsim started (start_sim LOG ...) with --clock-file CLOCKFILE to host
# time + SECONDS, and wait until it says so.
sim_clock_set() {
	local log=$1 file=$2 secs=$3 n i
	n=$(grep -c '^clock-offset ' "$log" || true)
	printf '%s\n' "$secs" >"$file"
	kill -HUP "$SIM_PID"
	for i in $(seq 1 200); do
		[ "$(grep -c '^clock-offset ' "$log" || true)" -gt "$n" ] && return 0
		sleep 0.05
	done
	fail "amtsim did not take clock offset $secs: $(tail -n 3 "$log")"
}

stop_sim() {
	kill -TERM "$SIM_PID" 2>/dev/null || true
	wait "$SIM_PID" 2>/dev/null || true
}

# A 0600 password file.
password_file() {
	local f=$1 pw=${2:-P@ssw0rd-$RANDOM}
	umask 077
	printf '%s\n' "$pw" >"$f"
}
