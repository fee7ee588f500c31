# Helpers for t_api*.sh (sourced after lib.sh, enroll_helpers.sh and
# fleet_helpers.sh).
#   api_sims N BASE PATTERN [ARGS...]  a key pool and one amtsim for N
#                           devices at BASE (start_sim; admin/$PW, latency
#                           40 ms, commit delay 600 ms, then ARGS)
#   api_setup ADDR          sets STATE_DB (the operational state's file);
#                           a sealed credential "site" for $PW, an admin
#                           client certificate ($T/admin.pem, .key) and an
#                           EST client's ($T/estc.pem, .key); the service
#                           will listen on ADDR:8443 (HTTPS), ADDR:8080
#                           (publication) and ADDR:9193 (status)
#   serve_up [ARGS...]      start `amtca serve` (ARGS, default
#                           --reconcile-every 0) and wait for "ready"; sets
#                           SERVE_PID (registered for cleanup)
#   api [--anon|--est] METHOD PATH [curl args...]
#                           one request; the body in $T/body, prints the
#                           HTTP status
#   api_job DEVS_JSON [CONC] POST a job; prints its id
#   job_wait ID STATE [SECONDS]  poll GET /jobs/ID until its state is STATE
#   job_finished ID         how many devices of job ID have a result
#   job_wait_finished ID MIN  poll (60 s) until job_finished ID >= MIN
#   devices_json PATTERN BASE FIRST N CRED  the "devices" array for a job

api_sims() {
	local n=$1 base=$2 pattern=$3
	shift 3
	sim_key_pool_fill $((n + 10))
	start_sim "$T/sim.log" --devices "$n" --address-base "$base" \
	    --fqdn-pattern "$pattern" --user admin --password-file "$PW" \
	    --key-pool "$SIM_KEY_POOL" --latency-ms 40 --commit-delay-ms 600 "$@"
}

api_setup() {
	API_ADDR=$1
	API_NAME=api.example.test
	STATE_DB=$HOME_CA/amtca.db
	[ ! -f "$HOME_CA/state/state.db" ] || STATE_DB=$HOME_CA/state/state.db
	"$AMTCA" --home "$HOME_CA" credential add site --user admin \
	    --password-file "$PW" >"$T/cred.out" || fail "credential add failed"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$T/admin.key" 2>/dev/null
	openssl req -new -key "$T/admin.key" -subj "/CN=ops" -out "$T/admin.csr"
	"$AMTCA" --home "$HOME_CA" admin add ops --csr "$T/admin.csr" \
	    --out "$T/admin.pem" >"$T/admin.out" || fail "admin add failed"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$T/estc.key" 2>/dev/null
	openssl req -new -key "$T/estc.key" -subj "/CN=printers.example.test" \
	    -out "$T/estc.csr"
	"$AMTCA" --home "$HOME_CA" est-client add printers.example.test \
	    --allow printers.example.test --csr "$T/estc.csr" \
	    --out "$T/estc.pem" >"$T/estc.out" || fail "est-client add failed"
}

serve_up() {
	local st=()
	[ $# -gt 0 ] || set -- --reconcile-every 0
	# The status listener on this test's own address too: its default,
	# 127.0.0.1:9193, is shared by every test that runs serve.
	case " $* " in *" --status-listen "*) ;; *) st=(--status-listen "$API_ADDR:9193") ;; esac
	: >"$T/serve.out"
	"$AMTCA" --home "$HOME_CA" serve --listen "$API_ADDR:8443" \
	    --name "$API_NAME" --publish-listen "$API_ADDR:8080" "${st[@]}" \
	    "$@" >>"$T/serve.out" 2>>"$T/serve.err" &
	SERVE_PID=$!
	on_exit "kill -KILL $SERVE_PID 2>/dev/null; wait $SERVE_PID 2>/dev/null"
	wait_ready "$SERVE_PID" "$T/serve.out" "$T/serve.err" "amtca serve"
	[ ${#st[@]} = 0 ] || curl -fsS -o /dev/null "http://$API_ADDR:9193/metrics" ||
	    fail "the status listener is not on $API_ADDR:9193"
}

api() {
	local who=admin method path
	case $1 in
	--anon) who=anon; shift ;;
	--est) who=est; shift ;;
	esac
	method=$1 path=$2
	shift 2
	local auth=()
	case $who in
	admin) auth=(--cert "$T/admin.pem" --key "$T/admin.key") ;;
	est) auth=(--cert "$T/estc.pem" --key "$T/estc.key") ;;
	esac
	curl -sS --max-time 30 --cacert "$HOME_CA/chain.pem" \
	    --resolve "$API_NAME:8443:$API_ADDR" "${auth[@]}" -X "$method" \
	    -o "$T/body" -D "$T/headers" -w '%{http_code}' "$@" \
	    "https://$API_NAME:8443$path"
}

devices_json() {
	local pat=$1 base=$2 first=$3 n=$4 cred=$5 pre last i sep=""
	pre=${base%.*}
	last=${base##*.}
	printf '['
	for ((i = first; i < first + n; i++)); do
		printf "%s{\"fqdn\":\"$pat\",\"address\":\"%s.%d\",\"credential\":\"%s\"}" \
		    "$sep" "$i" "$pre" $((last + i)) "$cred"
		sep=,
	done
	printf ']'
}

api_job() {
	local devs=$1 conc=${2:-16} st
	st=$(api POST /api/v1/jobs -H 'Content-Type: application/json' \
	    --data-binary "{\"devices\":$devs,\"concurrency\":$conc}")
	[ "$st" = 202 ] || fail "POST /api/v1/jobs: $st $(cat "$T/body")"
	json_get "$T/body" id
}

job_wait() {
	local id=$1 want=$2 secs=${3:-240} i st
	for ((i = 0; i < secs * 4; i++)); do
		st=$(api GET "/api/v1/jobs/$id")
		[ "$st" = 200 ] || fail "GET /api/v1/jobs/$id: $st $(cat "$T/body")"
		[ "$(json_get "$T/body" state)" = "$want" ] && return 0
		sleep 0.25
	done
	fail "job $id not $want after $secs s: $(head -c 400 "$T/body")"
}

job_finished() {
	api GET "/api/v1/jobs/$1" >/dev/null
	python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["counts"]; print(c["enrolled"]+c["renewed"]+c["unchanged"]+c["failed"])' "$T/body"
}

job_wait_finished() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(job_finished "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
