#!/usr/bin/env bash
# The EST benchmark (make bench runs it; a benchmark, not a test).  In one
# run, for an RSA-2048 CA in a throwaway SoftHSM token:
#   1. EST simpleenroll over HTTPS against `amtca serve` (the signer in its
#      own process, as in production) from C concurrent clients, each with
#      its own TLS client certificate (an est-client added with --csr) on a
#      kept-alive connection, for S seconds: tests/bench/estload.c, a
#      libcurl-multi load generator; the CSRs are made before the clock;
#   2. `amtca bench issue --threads 2` for the same key type, before and
#      after 1., averaged: amtca's full in-process issuance rate (CSR in,
#      durable record, certificate out).
# Prints, last:
#   est_per_s=N issue_per_s=N ratio=N clients=C key=TYPE
# ratio = est_per_s / issue_per_s: what HTTPS, EST parsing, the signer
# round trip and client authentication leave of the CA's own rate.
#
# Environment: BUILD (default build), BENCH_EST_ADDR (default 127.0.84.1),
# BENCH_EST_COUNT (certificates per `bench issue` round, default 1000).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$top/$BUILD" ;; esac
AMTCA=${AMTCA:-$BUILD/amtca}
ADDR=${BENCH_EST_ADDR:-127.0.84.1}
COUNT=${BENCH_EST_COUNT:-1000}
PORT=8443
KEY=rsa2048
SVC=est-bench.example.test

C=8 S=20
usage() {
	echo "usage: bench-est.sh [--clients C] [--seconds S]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case $2 in '' | *[!0-9]*) usage ;; esac
	case $1 in
	--clients) C=$2 ;;
	--seconds) S=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[ "$C" -ge 1 ] && [ "$S" -ge 1 ] || usage

make -C "$top" --no-print-directory BUILD="$BUILD" "$BUILD/amtca" \
    "$BUILD/tests/bench/estload" >/dev/null
T=$(mktemp -d /tmp/amtca-bench-est.XXXXXX)
SERVE_PID=
cleanup() {
	if [ -n "$SERVE_PID" ]; then
		kill -TERM "$SERVE_PID" 2>/dev/null || true
		wait "$SERVE_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

H="$T/home"
"$AMTCA" --home "$H" init --softhsm --domain example.test --key-type "$KEY" >/dev/null
mkdir -p "$T/certs"
for ((i = 1; i <= C; i++)); do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 \
	    -out "$T/certs/c$i.key" 2>/dev/null
	openssl req -new -key "$T/certs/c$i.key" -subj "/CN=c$i.example.test" \
	    -out "$T/certs/c$i.csr" 2>/dev/null
	"$AMTCA" --home "$H" est-client add "c$i.example.test" --allow example.test \
	    --csr "$T/certs/c$i.csr" --out "$T/certs/c$i.pem" >/dev/null
done

"$AMTCA" --home "$H" serve --listen "$ADDR:$PORT" --name "$SVC" --status-listen "$ADDR:9193" \
    --reconcile-every 0 >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
for ((i = 0; i < 600; i++)); do
	grep -qx ready "$T/serve.out" 2>/dev/null && break
	kill -0 "$SERVE_PID" 2>/dev/null || { echo "serve exited: $(cat "$T/serve.err")" >&2; exit 1; }
	sleep 0.05
done
grep -qx ready "$T/serve.out" || { echo "serve not ready" >&2; exit 1; }

issue_rate() { # bench issue at 2 threads: its issue_per_s
	AMTCA_HOME="$T/nohome" "$AMTCA" bench issue --count "$COUNT" --threads 2 \
	    --key-type "$KEY" | tail -n 1 | sed -n 's/.*issue_per_s=\([0-9.]*\).*/\1/p'
}

echo "EST benchmark: $(nproc) cores, $KEY CA, $C clients with TLS client certificates, ${S}s"
# bench issue before and after the EST run, the mean taken: the machine's
# other load drifts less between the two rates that way.
iss1=$(issue_rate)
echo "  amtca bench issue --threads 2 (before): issue_per_s=$iss1"
est_line=$("$BUILD/tests/bench/estload" --url "https://$SVC:$PORT/.well-known/est/simpleenroll" \
    --cacert "$H/root.pem" --resolve "$SVC:$PORT:$ADDR" --certs "$T/certs" \
    --clients "$C" --seconds "$S" --domain example.test | tail -n 1)
echo "  $est_line"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=

iss2=$(issue_rate)
echo "  amtca bench issue --threads 2 (after): issue_per_s=$iss2"

est=$(echo "$est_line" | sed -n 's/.*est_per_s=\([0-9.]*\).*/\1/p')
[ -n "$est" ] && [ -n "$iss1" ] && [ -n "$iss2" ] || { echo "bench-est: could not read the rates" >&2; exit 1; }
iss=$(python3 -c 'import sys; print((float(sys.argv[1]) + float(sys.argv[2])) / 2)' "$iss1" "$iss2")
python3 -c 'import sys
e, i = float(sys.argv[1]), float(sys.argv[2])
print("est_per_s=%.1f issue_per_s=%.1f ratio=%.2f clients=%s key=%s" % (e, i, e / i if i else 0, sys.argv[3], sys.argv[4]))' \
    "$est" "$iss" "$C" "$KEY"
