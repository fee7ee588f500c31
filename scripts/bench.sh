#!/usr/bin/env bash
# make bench: a benchmark, not a test.  For RSA-2048 and P-256 issuing keys,
# on 1 and 2 threads, in one run each: the raw PKCS#11 signing rate of the
# issuing key, amtca's full issuance rate (CSR in, durable record,
# certificate out), and their ratio; then the per-certificate rate of
# `openssl x509 -req` through the pkcs11 engine (what an admin does by hand).
# Everything runs in throwaway SoftHSM tokens and scratch databases.
# Then the fleet benchmark, scripts/bench-fleet.sh, the EST benchmark,
# scripts/bench-est.sh, and the store benchmark, scripts/bench-store.sh
# (SQLite against PostgreSQL).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$top/$BUILD" ;; esac
AMTCA="$BUILD/amtca"
# Requests per round: enough for ~1.5 s of signing per round on one thread.
COUNT_RSA=${BENCH_COUNT_RSA:-3000}
COUNT_EC=${BENCH_COUNT_EC:-30000}
OPENSSL_N=${BENCH_OPENSSL_N:-40}
T=$(mktemp -d /tmp/amtca-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "amtca bench: $(nproc) cores; requests per round: rsa2048 $COUNT_RSA, p256 $COUNT_EC (3 rounds, medians)"
printf '%-8s %-7s %14s %12s %7s\n' key threads raw_sign_per_s issue_per_s ratio
for key in rsa2048 p256; do
	for threads in 1 2; do
		count=$COUNT_RSA
		[ "$key" = p256 ] && count=$COUNT_EC
		line=$(AMTCA_HOME="$T/nohome" "$AMTCA" bench issue --count "$count" --threads "$threads" --key-type "$key" | tail -n 1)
		raw=$(echo "$line" | sed -n 's/.*raw_sign_per_s=\([0-9.]*\).*/\1/p')
		iss=$(echo "$line" | sed -n 's/.*issue_per_s=\([0-9.]*\).*/\1/p')
		ratio=$(echo "$line" | sed -n 's/.*ratio=\([0-9.]*\).*/\1/p')
		printf '%-8s %-7s %14s %12s %7s\n' "$key" "$threads" "$raw" "$iss" "$ratio"
	done
done

# openssl x509 -req through the pkcs11 engine, one process per certificate.
echo
echo "openssl x509 -req -engine pkcs11 (one process per certificate, $OPENSSL_N certificates):"
openssl req -new -newkey rsa:2048 -nodes -keyout "$T/leaf.key" -subj /CN=bench.example.test \
	-out "$T/leaf.csr" 2>/dev/null
for key in rsa2048 p256; do
	home="$T/ca-$key"
	"$AMTCA" --home "$home" init --softhsm --domain example.test --key-type "$key" >/dev/null
	export SOFTHSM2_CONF="$home/keys/softhsm/softhsm2.conf"
	# libp11 0.4.12's engine ignores pin-source in URIs; -passin feeds its
	# PIN prompt from the file, keeping the PIN off the command line.
	uri="pkcs11:token=amtca;object=amtca-intermediate;type=private"
	start=$(date +%s.%N)
	for i in $(seq 1 "$OPENSSL_N"); do
		openssl x509 -req -in "$T/leaf.csr" -CA "$home/intermediate.pem" \
			-engine pkcs11 -CAkeyform engine -CAkey "$uri" \
			-passin "file:$home/keys/softhsm/user.pin" -set_serial "$i" -days 397 \
			-sha256 -out "$T/out.pem" 2>"$T/openssl.err" >/dev/null ||
			{ echo "openssl failed: $(tail -3 "$T/openssl.err")"; exit 1; }
	done
	end=$(date +%s.%N)
	unset SOFTHSM2_CONF
	python3 -c "import sys; n=$OPENSSL_N; s=$end-$start; print(f'  {sys.argv[1]:8s} openssl_per_s={n/s:.1f}')" "$key"
done

# The fleet benchmark: amtca fleet against amtsim (its own summary line last).
# BENCH_FLEET_ARGS passes options, e.g. "--devices 100" for a quick run.
echo
# shellcheck disable=SC2086
BUILD="$BUILD" bash "$top/scripts/bench-fleet.sh" ${BENCH_FLEET_ARGS:-}

# The EST benchmark: simpleenroll through amtca serve against bench issue
# (its own summary line last).  BENCH_EST_ARGS passes options.
echo
# shellcheck disable=SC2086
BUILD="$BUILD" bash "$top/scripts/bench-est.sh" ${BENCH_EST_ARGS:-}

# The store benchmark: issuance on SQLite and on PostgreSQL (its own line last).
echo
BUILD="$BUILD" bash "$top/scripts/bench-store.sh"
