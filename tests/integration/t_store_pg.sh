#!/bin/bash
# The store conformance suite against PostgreSQL: a throwaway cluster (as an
# unprivileged user, Unix socket only, removed afterwards), then
# build/tests/unit/ca/test_store with AMTCA_TEST_PG_URI pointing at it, so
# every conformance case runs on SQLite and PostgreSQL, plus the
# PostgreSQL-only cases (concurrent creation, synchronous_commit refused,
# credentials from a passfile).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_helpers.sh"

BUILD=${BUILD:-$top/build}
case $BUILD in /*) ;; *) BUILD="$top/$BUILD" ;; esac
suite="$BUILD/tests/unit/ca/test_store"
[ -x "$suite" ] || fail "$suite not built (make unit)"
if ! pg_available; then
	echo "skip: no PostgreSQL server binaries (apt-get install postgresql)"
	exit 0
fi

PG_HBA_FIRST="local all amtca_pw scram-sha-256"
pg_start
ok "throwaway cluster up in $PG_DIR"
pg_psql postgres -c "CREATE ROLE amtca_pw LOGIN"

# Only the socket: no TCP listener.
[ "$(pg_psql postgres -c "SHOW listen_addresses")" = "" ] || fail "listens on TCP"
[ -S "$PG_SOCK/.s.PGSQL.5432" ] || fail "no socket in $PG_SOCK"
[ "$(pg_psql postgres -c "SHOW fsync")" = on ] || fail "fsync is off"

AMTCA_TEST_PG_URI="$PG_URI" AMTCA_TEST_PG_PWUSER=amtca_pw "$suite" >"$T/suite.log" 2>&1 ||
	{ cat "$T/suite.log"; fail "conformance suite failed"; }
cat "$T/suite.log"
grep -q "store conformance: postgresql" "$T/suite.log" || fail "PostgreSQL group did not run"
grep -q "postgresql skipped" "$T/suite.log" && fail "PostgreSQL group skipped"
ok "conformance suite passes on SQLite and PostgreSQL"

# The whole issuance path on PostgreSQL: `bench issue --store` signs,
# records through the group commit and releases on COMMIT.
bench_uri="postgresql:///amtca_bench?host=$PG_SOCK&user=amtca"
AMTCA_HOME="$T/nohome" "$AMTCA" bench issue --count 10 --threads 2 \
    --store "$bench_uri" >"$T/bench.out" 2>"$T/bench.err" ||
	fail "bench on PostgreSQL: $(cat "$T/bench.err")"
grep -q '^raw_sign_per_s=[0-9]* issue_per_s=[0-9]* ' "$T/bench.out" ||
	fail "bench line: $(cat "$T/bench.out")"
[ "$(pg_psql amtca_bench -c "SELECT to_regnamespace('amtca') IS NULL")" = t ] ||
	fail "bench left its scratch store behind"
ok "issuance through the CA on PostgreSQL; scratch store removed"

# A store that exists is never a scratch store (the bench would drop it).
AMTCA_HOME="$T/nohome" "$AMTCA" store migrate --store "$bench_uri" >/dev/null ||
	fail "store migrate --store could not create a store"
pg_psql amtca_bench -c "INSERT INTO amtca.leases VALUES ('mine', 'x', 0)"
expect_fail 1 "scratch store" env AMTCA_HOME="$T/nohome" "$AMTCA" bench issue \
    --count 5 --store "$bench_uri"
[ "$(pg_psql amtca_bench -c "SELECT count(*) FROM amtca.leases")" = 1 ] ||
	fail "existing store touched"
ok "bench refuses an existing store and leaves it alone"

# Passwords never on the command line: one-line error, password not echoed.
expect_fail 1 "passfile" env AMTCA_HOME="$T/nohome" "$AMTCA" bench issue \
    --count 5 --store "postgresql://amtca:hunter2@localhost/amtca"
grep -q hunter2 "$T/err" && fail "password echoed: $(cat "$T/err")"
ok "a URI with a password is refused without repeating it"

dir=$PG_DIR
pg_stop
[ ! -e "$dir" ] || fail "cluster directory left behind"
ok "cluster removed"
