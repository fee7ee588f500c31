# Helpers for t_enroll*.sh and t_doctor*.sh (sourced after lib.sh).
#   ca_setup                 a CA home ($HOME_CA) in a throwaway SoftHSM token
#                            and an AMT password file ($PW)
#   sim_up LOG ADDR FQDN ... amtsim on ADDR answering as FQDN (extra args
#                            passed on); sets SIM_PID
#   enroll ADDR FQDN ...     amtca enroll against it (extra args passed on)
#   store_state ADDR FQDN    "certs=N keys=K roots=R bound=B leaves=L" of AMT's
#                            store as amtca amt-info --tls --json reports it
#                            (read-only certificates not counted)
#   assert_clean ADDR FQDN   exactly root + intermediate + bound leaf, one key
#   served_serial ADDR FQDN  serial of the leaf served on 16993 (openssl)
#   s_client_ok ADDR FQDN    openssl s_client -verify_return_error
#                            -verify_hostname with our root (+chain untrusted)

ca_setup() {
	HOME_CA="$T/home"
	PW="$T/amt-password"
	new_ca "$HOME_CA" --domain example.test
	password_file "$PW" "Adm1n-$RANDOM-pw"
}

sim_up() {
	local log=$1 addr=$2 fqdn=$3
	shift 3
	start_sim "$log" --listen "$addr" --fqdn "$fqdn" --user admin \
	    --password-file "$PW" "$@"
}

enroll() {
	local addr=$1 fqdn=$2
	shift 2
	"$AMTCA" --home "$HOME_CA" enroll --host "$fqdn" --address "$addr" \
	    --user admin --password-file "$PW" "$@"
}

store_state() {
	"$AMTCA" --home "$HOME_CA" amt-info --tls --host "$2" --address "$1" \
	    --user admin --password-file "$PW" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
certs = [c for c in d["certificates"] if not c.get("read_only")]
roots = [c for c in certs if c.get("trusted_root")]
bound = [c for c in certs if c.get("bound")]
leaves = [c for c in certs if not c.get("trusted_root") and "CN=" + sys.argv[1] in (c.get("subject") or "")]
print("certs=%d keys=%d roots=%d bound=%d leaves=%d" % (len(certs), len(d["keys"]), len(roots), len(bound), len(leaves)))
' "$2"
}

assert_clean() {
	local st
	st=$(store_state "$1" "$2") || fail "amt-info over TLS failed for $2"
	[ "$st" = "certs=3 keys=1 roots=1 bound=1 leaves=1" ] ||
	    fail "AMT store of $2 is not root+intermediate+leaf+1 key: $st"
}

served_serial() {
	openssl s_client -connect "$1:16993" -servername "$2" </dev/null 2>/dev/null |
	    openssl x509 -noout -serial | sed 's/^serial=//'
}

s_client_ok() {
	local out
	out=$(openssl s_client -connect "$1:16993" -servername "$2" \
	    -verify_return_error -verify_hostname "$2" \
	    -CAfile "$HOME_CA/chain.pem" </dev/null 2>&1) ||
	    fail "openssl s_client failed for $2: $(echo "$out" | tail -n 3)"
	echo "$out" | qgrep 'Verify return code: 0 (ok)' ||
	    fail "s_client: $(echo "$out" | grep 'Verify return code')"
}

# json_get FILE KEY: a top-level value of a JSON document.
json_get() {
	python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}
