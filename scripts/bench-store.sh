#!/usr/bin/env bash
# The store benchmark (issue 11): `amtca bench issue`'s full issuance rate
# (CSR in, durable record, certificate out) with the SQLite store and with
# the PostgreSQL store, in one run, on the same key type and thread count.
# PostgreSQL is a throwaway local cluster (tests/integration/pg_helpers.sh:
# initdb as an unprivileged user, Unix socket only, fsync and
# synchronous_commit on), removed afterwards.  The two backends alternate
# (SQLite, PostgreSQL, SQLite, PostgreSQL) and each rate is the mean of its
# runs, so load from elsewhere lands on both alike.  Prints, last:
#   sqlite_issue_per_s=N postgres_issue_per_s=N ratio=postgres/sqlite key=TYPE
# Options: --count N (requests per round, default 1000), --threads T (2),
# --key-type TYPE (rsa2048), --runs R (runs per backend, 2).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$top/$BUILD" ;; esac
AMTCA="$BUILD/amtca"
count=1000
threads=2
key=rsa2048
runs=2
while [ $# -gt 0 ]; do
	case $1 in
	--count) count=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--key-type) key=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	*) echo "usage: $0 [--count N] [--threads T] [--key-type TYPE] [--runs R]" >&2; exit 2 ;;
	esac
done

T=$(mktemp -d /tmp/amtca-bench-store.XXXXXX)
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
	echo "bench-store: $*" >&2
	exit 1
}
. "$top/tests/integration/pg_helpers.sh"
pg_available || fail "no PostgreSQL server binaries (apt-get install postgresql)"
pg_start

rate() { # store-args...: issue_per_s of one `amtca bench issue`
	local line
	line=$(AMTCA_HOME="$T/nohome" "$AMTCA" bench issue --count "$count" \
	    --threads "$threads" --key-type "$key" "$@" | tail -n 1)
	echo "  $line" >&2
	echo "$line" | sed -n 's/.*issue_per_s=\([0-9.]*\).*/\1/p'
}

echo "amtca store bench: $(nproc) cores; $key, $threads threads, $count requests per round, $runs runs per store"
sq=()
pg=()
for ((i = 0; i < runs; i++)); do
	echo " sqlite:" >&2
	sq+=("$(rate)")
	echo " postgresql (local socket, synchronous_commit=on):" >&2
	pg+=("$(rate --store "postgresql:///amtca_bench?host=$PG_SOCK&user=amtca")")
done
python3 - "$key" "${#sq[@]}" "${sq[@]}" "${pg[@]}" <<'PY'
import sys
key, n = sys.argv[1], int(sys.argv[2])
v = [float(x) for x in sys.argv[3:]]
s, p = sum(v[:n]) / n, sum(v[n:]) / n
print(f"sqlite_issue_per_s={s:.0f} postgres_issue_per_s={p:.0f} ratio={p / s:.3f} key={key}")
PY
