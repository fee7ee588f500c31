# Two `amtca serve` nodes on one PostgreSQL store and one SoftHSM token
# outside both homes (the network HSM's stand-in), for t_nodes*.sh
# (sourced after lib.sh, pg_helpers.sh, enroll_helpers.sh).
#   nodes_setup DB ADDR_A ADDR_B
#                 skips the test without PostgreSQL; starts a throwaway
#                 cluster; makes the token ($HSM), node A's home ($A, init
#                 --store postgresql:///DB) and node B's ($B, init --join);
#                 an AMT credential "site" for $PW and an admin client
#                 ($T/admin.pem, .key); sets URI, A, B, ADDR_A, ADDR_B
#   q SQL         one query on the store's database
#   node_up TAG HOME [ARGS...]  start `amtca serve` (TAG a or b) on its
#                 address with --claim-ttl 5 and ARGS; log in $T/TAG.log;
#                 sets PID_TAG
#   api_at TAG METHOD PATH [curl args...]  an admin API request to node
#                 TAG; body in $T/body, prints the HTTP status
#   t_ok MSG      ok, with the seconds since the start
# SoftHSM rewrites its token file on every login, outside any lock another
# process honours (t_token_race.sh): amtca processes that log in are
# started one at a time here, never in parallel.
t_ok() { ok "$* [${SECONDS}s]"; }

nodes_setup() {
	local db=$1
	ADDR_A=$2
	ADDR_B=$3
	if ! pg_available; then
		echo "skip: no PostgreSQL server binaries (apt-get install postgresql)"
		exit 0
	fi
	pg_start
	NODES_DB=$db
	URI="postgresql:///$db?host=$PG_SOCK&user=amtca"
	HSM=$T/hsm
	mkdir -p "$HSM/tokens"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$HSM/tokens" >"$HSM/softhsm2.conf"
	SOFTHSM2_CONF="$HSM/softhsm2.conf" softhsm2-util --init-token --free --label nodes \
	    --so-pin 12345678 --pin 24681357 >/dev/null || fail "cannot make the shared token"
	printf '24681357\n' >"$HSM/pin"
	chmod 600 "$HSM/pin"
	A=$T/node-a
	B=$T/node-b
	SOFTHSM2_CONF="$HSM/softhsm2.conf" "$AMTCA" --home "$A" init --module "$SOFTHSM_MODULE" \
	    --token-uri pkcs11:token=nodes --pin-file "$HSM/pin" --domain example.test \
	    --store "$URI" >"$T/init.out" 2>"$T/init.err" || fail "init of node A: $(cat "$T/init.err")"
	[ ! -e "$A/keys/softhsm" ] || fail "node A made a token of its own"
	SOFTHSM2_CONF="$HSM/softhsm2.conf" "$AMTCA" --home "$B" init --join --store "$URI" \
	    --module "$SOFTHSM_MODULE" --token-uri pkcs11:token=nodes --pin-file "$HSM/pin" \
	    >"$T/join.out" 2>"$T/join.err" || fail "init --join: $(cat "$T/join.err")"
	PW="$T/amt-password"
	password_file "$PW" "Adm1n-$RANDOM-pw"
	"$AMTCA" --home "$A" credential add site --user admin --password-file "$PW" >/dev/null ||
		fail "credential add"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/admin.key" 2>/dev/null
	openssl req -new -key "$T/admin.key" -subj "/CN=ops" -out "$T/admin.csr"
	"$AMTCA" --home "$A" admin add ops --csr "$T/admin.csr" --out "$T/admin.pem" >/dev/null ||
		fail "admin add"
}

q() { pg_psql "$NODES_DB" -c "$1"; }

addr_of() { [ "$1" = a ] && echo "$ADDR_A" || echo "$ADDR_B"; }

node_up() { # tag home [args...]
	local tag=$1 home=$2 addr i
	shift 2
	addr=$(addr_of "$tag")
	: >"$T/$tag.out"
	"$AMTCA" --home "$home" serve --listen "$addr:8443" --name "api-$tag.example.test" \
	    --publish-listen "$addr:8080" --status-listen "$addr:9193" --claim-ttl 5 \
	    "$@" >>"$T/$tag.out" 2>>"$T/$tag.log" &
	eval "PID_$tag=$!"
	on_exit "kill -KILL $! 2>/dev/null; wait $! 2>/dev/null"
	for ((i = 0; i < 600; i++)); do
		grep -q '^ready' "$T/$tag.out" && return 0
		kill -0 "$(eval echo "\$PID_$tag")" 2>/dev/null ||
			fail "node $tag exited: $(tail -n 5 "$T/$tag.log")"
		sleep 0.05
	done
	fail "node $tag not ready: $(tail -n 5 "$T/$tag.log")"
}

api_at() { # tag method path [curl args...]
	curl -sS --max-time 30 --cacert "$A/chain.pem" \
	    --resolve "api-$1.example.test:8443:$(addr_of "$1")" --cert "$T/admin.pem" \
	    --key "$T/admin.key" -X "$2" -o "$T/body" -w '%{http_code}' "${@:4}" \
	    "https://api-$1.example.test:8443$3"
}

# nodes_job TAG PATTERN BASE N CONCURRENCY: POST a job of N amtsim devices
# to node TAG; prints its id.
nodes_job() {
	local devs st
	devs=$(python3 - "$2" "$3" "$4" <<'PY'
import json, sys
pat, base, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pre, last = base.rsplit(".", 1)
print(json.dumps([{"fqdn": pat % i, "address": "%s.%d" % (pre, int(last) + i),
                   "credential": "site"} for i in range(n)]))
PY
)
	st=$(api_at "$1" POST /api/v1/jobs -H 'Content-Type: application/json' \
	    --data-binary "{\"devices\":$devs,\"concurrency\":$5}")
	[ "$st" = 202 ] || fail "POST /api/v1/jobs on $1: $st $(cat "$T/body")"
	json_get "$T/body" id
}

# nodes_check_devices PATTERN BASE N (HOME_CA set, no node running):
# check_devices (fleet_helpers.sh), its amt-info runs retried when the
# shared SoftHSM token could not be read (another process's login was
# rewriting it), and no device certificate issued twice.
nodes_check_devices() {
	local ndev
	cat >"$T/amtca-retry" <<RETRY
#!/bin/bash
o=\$(mktemp) e=\$(mktemp) rc=1
for n in 1 2 3; do
	"$AMTCA" "\$@" >"\$o" 2>"\$e" && { rc=0; break; }
	grep -Eq 'PKCS#11 token|of token|CKR' "\$e" || break
	sleep 0.5
done
cat "\$o"; cat "\$e" >&2; rm -f "\$o" "\$e"; exit \$rc
RETRY
	chmod 755 "$T/amtca-retry"
	AMTCA=$T/amtca-retry check_devices "$1" "$2" "$3"
	ndev=$("$AMTCA" --home "$HOME_CA" list --json | python3 -c 'import json,sys; print(len([c for c in json.load(sys.stdin)["certificates"] if c.get("device")]))')
	[ "$ndev" = "$3" ] || fail "$ndev device certificates for $3 devices: one issued twice"
}
