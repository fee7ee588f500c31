#!/bin/sh
# Runs every test and prints one closing line "check: N passed, N failed".
#   unit:        $BUILD/tests/unit/*/test_*        (cmocka, no token, no network)
#   integration: $BUILD/tests/integration/test_*   (cmocka, real SoftHSM/amtsim)
#                tests/integration/t_*.sh          (CLI + openssl/certtool/curl)
#   fuzz replay: build-fuzz/fuzz_* over tests/fuzz/corpus/<name>/
# Env: BUILD (default build), VALGRIND=1 (unit tests under valgrind),
# VALGRIND_CLI=1 (the CA CLI test with amtca under valgrind), NO_FUZZ=1,
# UNIT_ONLY=1, ONLY=pattern.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$top/$BUILD" ;; esac
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
export AMTCA="$BUILD/amtca" AMTSIM="$BUILD/amtsim" AMTCA_TOP="$top" BUILD
export AMTCA_FIXTURES="$top/tests/fixtures"
logdir="$BUILD/test-logs"
rm -rf "$logdir"
mkdir -p "$logdir"
pass=0
fail=0
failed=""

vg=""
if [ "${VALGRIND:-0}" = 1 ]; then
	vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no"
fi

run() { # name, command...
	name=$1
	shift
	case $name in *${ONLY:-}*) ;; *) return 0 ;; esac
	log="$logdir/$(echo "$name" | tr '/' '_').log"
	start=$(date +%s)
	if "$@" >"$log" 2>&1; then
		pass=$((pass + 1))
		printf 'PASS  %-48s %3ss\n' "$name" "$(($(date +%s) - start))"
	else
		fail=$((fail + 1))
		failed="$failed $name"
		printf 'FAIL  %-48s %3ss  (log: %s)\n' "$name" "$(($(date +%s) - start))" "$log"
		tail -n 25 "$log" | sed 's/^/    | /'
	fi
}

for t in "$BUILD"/tests/unit/*/test_*; do
	[ -x "$t" ] || continue
	run "unit/${t#"$BUILD"/tests/unit/}" $vg "$t"
done

if [ "${VALGRIND_CLI:-0}" = 1 ]; then
	run "valgrind/t_ca_cli.sh" env VALGRIND=1 bash tests/integration/t_ca_cli.sh
fi

if [ "${UNIT_ONLY:-0}" != 1 ]; then
	for t in "$BUILD"/tests/integration/test_*; do
		[ -x "$t" ] || continue
		run "integration/${t##*/}" "$t"
	done
	for t in tests/integration/t_*.sh; do
		[ -f "$t" ] || continue
		run "integration/${t##*/}" bash "$t"
	done
fi

if [ "${NO_FUZZ:-0}" != 1 ] && [ "${UNIT_ONLY:-0}" != 1 ]; then
	for f in "$FUZZ_BUILD"/fuzz_*; do
		[ -x "$f" ] || continue
		n=${f##*/fuzz_}
		c="tests/fuzz/corpus/$n"
		[ -d "$c" ] || continue
		run "fuzz-replay/$n" "$f" -runs=0 "$c"
	done
fi

echo
echo "check: $pass passed, $fail failed"
[ "$fail" = 0 ] || { echo "failed:$failed"; exit 1; }
