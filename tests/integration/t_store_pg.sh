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

dir=$PG_DIR
pg_stop
[ ! -e "$dir" ] || fail "cluster directory left behind"
ok "cluster removed"
