#!/usr/bin/env bash
# The fleet benchmark (make bench runs it after the issuance bench; a
# benchmark, not a test).  Against amtsim devices, in one run:
#   1. one device's critical path: `amtca enroll` of a device alone, the
#      median of 3 (each a new device);
#   2. `amtca fleet` of N devices with C in flight: wall time, and amtca's
#      CPU time (user + system) per device;
#   3. a second fleet of N new devices with R in flight: amtca's peak RSS.
# Prints, last, one line:
#   fleet_devices=N concurrency=C one_device_s=X fleet_s=Y ideal_s=Z
#   ratio=Y/Z rss_concurrency=R peak_rss_mb=M amtca_cpu_ms_per_device=P
#   failed=F
# where ideal = ceil(N/C) x one_device_s and F counts both fleets' failures.
#
# amtsim takes device keys from a key pool ($AMTSIM_KEY_POOL, default
# $BUILD/amtsim-key-pool.pem, filled once: minutes of CPU the first time) so
# that simulated key generation costs --keygen-ms and no host CPU.
#
# --thread-model N: instead, the measurement behind the engine's concurrency
# choice: N devices enrolled at once by N threads in one process
# (tests/bench/threads.c), with the default stack, with 256 KB stacks, and
# with 256 KB stacks but no parse gate.
#
# Environment: BUILD (default build), AMTSIM (default $BUILD/amtsim),
# AMTSIM_KEY_POOL, BENCH_ADDR (first loopback address, default 127.77.0.1;
# devices take consecutive addresses, the second fleet 127.78.0.1 on).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$top/$BUILD" ;; esac
AMTCA=${AMTCA:-$BUILD/amtca}
AMTSIM=${AMTSIM:-$BUILD/amtsim}
POOL=${AMTSIM_KEY_POOL:-$BUILD/amtsim-key-pool.pem}
ADDR1=${BENCH_ADDR:-127.77.0.1}
ADDR2=${BENCH_ADDR2:-127.78.0.1}
ADDR0=${BENCH_ADDR0:-127.76.0.1}

N=1000 C=200 R=1000 L=50 K=2000 M=3000 THREADS=0
usage() {
	echo "usage: bench-fleet.sh [--devices N] [--concurrency C] [--rss-concurrency R]" >&2
	echo "       [--latency-ms L] [--keygen-ms K] [--commit-delay-ms M] [--thread-model N]" >&2
	exit 2
}
num() { case $2 in '' | *[!0-9]*) echo "bench-fleet: $1 needs a number" >&2; usage ;; esac; }
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	num "$1" "$2"
	case $1 in
	--devices) N=$2 ;;
	--concurrency) C=$2 ;;
	--rss-concurrency) R=$2 ;;
	--latency-ms) L=$2 ;;
	--keygen-ms) K=$2 ;;
	--commit-delay-ms) M=$2 ;;
	--thread-model) THREADS=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[ "$N" -ge 1 ] && [ "$C" -ge 1 ] && [ "$R" -ge 1 ] || usage

T=$(mktemp -d /tmp/amtca-bench-fleet.XXXXXX)
SIM_PID=
cleanup() {
	[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

# The sum of user and system seconds, and max RSS in KB, of one command
# (GNU time); the command's stdout goes to $1.
timed() { # out, command...
	local out=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$T/time" "$@" >"$out" 2>>"$T/stderr"
}
t_wall() { awk '{print $1}' "$T/time"; }
t_cpu() { awk '{print $2 + $3}' "$T/time"; }
t_rss_kb() { awk '{print $4}' "$T/time"; }

sim_up() { # name, devices, address, fqdn pattern
	local log="$T/sim-$1.log" i
	"$AMTSIM" --devices "$2" --address-base "$3" --fqdn-pattern "$4" \
	    --user admin --password-file "$T/pw" --latency-ms "$L" \
	    --keygen-ms "$K" --commit-delay-ms "$M" --key-pool "$POOL" \
	    >"$log" 2>&1 &
	SIM_PID=$!
	for i in $(seq 1 12000); do
		grep -q '^ready' "$log" 2>/dev/null && return 0
		kill -0 "$SIM_PID" 2>/dev/null || { echo "bench-fleet: amtsim exited: $(tail -3 "$log")" >&2; exit 1; }
		sleep 0.05
	done
	echo "bench-fleet: amtsim not ready after 10 minutes" >&2
	exit 1
}
sim_down() {
	# amtsim's own CPU seconds (user + system), for the report.
	awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' \
	    "/proc/$SIM_PID/stat" >"$T/sim-cpu" 2>/dev/null || echo 0 >"$T/sim-cpu"
	kill "$SIM_PID" 2>/dev/null || true
	wait "$SIM_PID" 2>/dev/null || true
	SIM_PID=
}

# addr BASE I: BASE + I as a dotted quad.
addr() { python3 -c 'import ipaddress, sys; print(ipaddress.IPv4Address(sys.argv[1]) + int(sys.argv[2]))' "$1" "$2"; }

hosts_file() { # file, devices, address, pattern
	python3 - "$@" "$T/pw" <<'EOF'
import ipaddress, sys
path, n, base, pat, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
with open(path, "w") as f:
    f.write("fqdn,address,user,password_file\n")
    for i in range(n):
        f.write("%s,%s,admin,%s\n" % (pat % i, ipaddress.IPv4Address(base) + i, pw))
EOF
}

umask 077
printf 'Bench-%s-pw\n' "$RANDOM$RANDOM" >"$T/pw"
HOME_CA="$T/home"
"$AMTCA" --home "$HOME_CA" init --softhsm --domain fleet.test >/dev/null

# Fill the key pool first (a no-op once it holds enough keys).
need=$N
[ "$THREADS" -gt "$need" ] && need=$THREADS
echo "bench-fleet: key pool $POOL ($need keys; generated once)" >&2
"$AMTSIM" --key-pool "$POOL" --key-pool-size "$need" >"$T/pool.log" 2>&1 ||
	{ echo "bench-fleet: key pool: $(tail -3 "$T/pool.log")" >&2; exit 1; }

if [ "$THREADS" -gt 0 ]; then
	make -C "$top" --no-print-directory BUILD="$BUILD" "$BUILD/tests/bench/threads" >/dev/null
	echo "thread model: $THREADS devices, each on its own thread, latency ${L} ms, keygen ${K} ms, commit ${M} ms"
	# Default stacks, 256 KB stacks, and 256 KB stacks without the parse
	# gate (as many permits as threads).
	for run in 0:0 256:0 256:$THREADS; do
		stack=${run%%:*} gate=${run#*:}
		pat="t${stack}g${gate}d%05d.fleet.test"
		sim_up "threads-$stack-$gate" "$THREADS" "$ADDR1" "$pat"
		BENCH_PARSE_GATE=$gate "$BUILD/tests/bench/threads" "$HOME_CA" "$T/pw" \
		    "$THREADS" "$stack" "$ADDR1" "$pat" 2>>"$T/stderr" | tail -n 1 || true
		sim_down
	done
	exit 0
fi

"$AMTCA" fleet --help >/dev/null 2>&1 ||
	{ echo "bench-fleet: this amtca has no fleet command" >&2; exit 1; }

echo "amtca fleet bench: $(nproc) cores; $N devices, $C in flight (RSS: $R in flight);" \
    "latency ${L} ms, keygen ${K} ms, commit ${M} ms"

# 1. One device alone, three times, each a new device: the median.
sim_up one 3 "$ADDR0" 'one%d.fleet.test'
: >"$T/one"
for i in 0 1 2; do
	timed "$T/enroll.out" "$AMTCA" --home "$HOME_CA" enroll --host "one$i.fleet.test" \
	    --address "$(addr "$ADDR0" "$i")" --user admin --password-file "$T/pw" ||
		{ echo "bench-fleet: enroll one$i failed: $(tail -3 "$T/stderr")" >&2; exit 1; }
	echo "$(t_wall) $(t_cpu)" >>"$T/one"
	printf '  one device %d: %s s, amtca CPU %s ms\n' "$i" "$(t_wall)" \
	    "$(awk '{printf "%.0f", ($2 + $3) * 1000}' "$T/time")"
done
sim_down
one_s=$(sort -n "$T/one" | sed -n 2p | awk '{print $1}')

# A fleet run; $T/result-NAME: wall seconds, CPU seconds, max RSS KB, failures.
fleet_run() { # name, devices, address, pattern, concurrency
	local f
	hosts_file "$T/hosts-$1.csv" "$2" "$3" "$4"
	sim_up "$1" "$2" "$3" "$4"
	timed "$T/fleet-$1.json" "$AMTCA" --home "$HOME_CA" fleet --hosts "$T/hosts-$1.csv" \
	    --concurrency "$5" --json || true
	sim_down
	f=$(python3 -c 'import json, sys
try:
    d = json.load(open(sys.argv[1]))
    print(d["failed"] + (int(sys.argv[2]) - d["total"]))
except Exception:
    print(sys.argv[2])' "$T/fleet-$1.json" "$2")
	echo "$(t_wall) $(t_cpu) $(t_rss_kb) $f $(cat "$T/sim-cpu")" >"$T/result-$1"
}

# 2. The fleet at C in flight.
fleet_run fleet "$N" "$ADDR1" 'dev%05d.fleet.test' "$C"
read -r fleet_s fleet_cpu fleet_rss failed1 sim_cpu <"$T/result-fleet"
printf '  fleet of %d at %d in flight: %s s, amtca CPU %s s, peak RSS %d MB, failed %d; amtsim CPU %s s\n' \
    "$N" "$C" "$fleet_s" "$fleet_cpu" "$((fleet_rss / 1024))" "$failed1" "$sim_cpu"

# 3. New devices at R in flight, for peak RSS.
fleet_run rss "$N" "$ADDR2" 'rss%05d.fleet.test' "$R"
read -r rss_s rss_cpu rss_kb failed2 sim_cpu <"$T/result-rss"
printf '  fleet of %d at %d in flight: %s s, amtca CPU %s s, peak RSS %d MB, failed %d; amtsim CPU %s s\n' \
    "$N" "$R" "$rss_s" "$rss_cpu" "$((rss_kb / 1024))" "$failed2" "$sim_cpu"

python3 - "$N" "$C" "$one_s" "$fleet_s" "$R" "$rss_kb" "$fleet_cpu" "$((failed1 + failed2))" <<'EOF'
import math, sys
n, c, one, fleet, r, rss_kb, cpu, failed = sys.argv[1:]
n, c, one, fleet, r = int(n), int(c), float(one), float(fleet), int(r)
ideal = math.ceil(n / c) * one
print("fleet_devices=%d concurrency=%d one_device_s=%.2f fleet_s=%.2f ideal_s=%.2f "
      "ratio=%.3f rss_concurrency=%d peak_rss_mb=%.1f amtca_cpu_ms_per_device=%.1f "
      "failed=%d" % (n, c, one, fleet, ideal, fleet / ideal, r, int(rss_kb) / 1024,
                     float(cpu) * 1000 / n, int(failed)))
EOF
