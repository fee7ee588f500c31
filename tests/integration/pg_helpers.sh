# A throwaway PostgreSQL cluster for tests (sourced after lib.sh, bash).
#   pg_available          the server binaries are installed (else skip)
#   pg_start              initdb + pg_ctl start as an unprivileged user
#                         (nobody when run as root), listening only on a
#                         Unix socket in a fresh directory; sets PG_DIR,
#                         PG_SOCK, PG_URI (postgresql:///amtca?host=...) and
#                         registers pg_stop with on_exit
#   pg_stop               stop the server (immediate: no shutdown checkpoint
#                         of a cluster about to be deleted) and remove it
#   pg_psql DB SQL...     run SQL as the cluster's superuser "amtca"
# PG_HBA_FIRST (set before pg_start): pg_hba.conf lines put before the
# cluster's "trust" ones, e.g. to make one role log in with a password.
# fsync and synchronous_commit stay on: the store's tests are about
# durability semantics.  wal_level=minimal (no replication) halves the cost
# of the CREATE DATABASE every test store needs.
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_DIR=""

pg_available() {
	[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]
}

# Run as the cluster's owner, with a clean environment.
pg_as() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		    env -i PATH=/usr/bin:/bin HOME="$PG_DIR" LC_ALL=C "$@"
	else
		env -i PATH=/usr/bin:/bin HOME="$PG_DIR" LC_ALL=C "$@"
	fi
}

pg_start() {
	PG_DIR=$(mktemp -d /tmp/amtca-pg.XXXXXX)
	on_exit pg_stop
	chmod 700 "$PG_DIR"
	[ "$(id -u)" != 0 ] || chown nobody:nogroup "$PG_DIR"
	PG_SOCK=$PG_DIR/sock
	pg_as mkdir -m 700 "$PG_SOCK"
	pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U amtca --auth=trust -E UTF8 \
	    --no-locale --no-instructions >"$PG_DIR/initdb.log" 2>&1 ||
	    fail "initdb: $(tail -n 5 "$PG_DIR/initdb.log")"
	if [ -n "${PG_HBA_FIRST:-}" ]; then
		{ printf '%s\n' "$PG_HBA_FIRST"; cat "$PG_DIR/data/pg_hba.conf"; } >"$PG_DIR/hba.new"
		cat "$PG_DIR/hba.new" >"$PG_DIR/data/pg_hba.conf"
		rm -f "$PG_DIR/hba.new"
	fi
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
	    -o "-c listen_addresses='' -c unix_socket_directories='$PG_SOCK' -c shared_buffers=16MB -c max_connections=60 -c wal_level=minimal -c max_wal_senders=0" \
	    start >/dev/null || fail "pg_ctl start: $(tail -n 5 "$PG_DIR/server.log")"
	PG_URI="postgresql:///amtca?host=$PG_SOCK&user=amtca"
}

pg_stop() {
	[ -n "$PG_DIR" ] || return 0
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
	rm -rf "$PG_DIR"
	PG_DIR=""
}

pg_psql() {
	local db=$1
	shift
	psql -X -q -v ON_ERROR_STOP=1 -At "postgresql:///$db?host=$PG_SOCK&user=amtca" "$@"
}
