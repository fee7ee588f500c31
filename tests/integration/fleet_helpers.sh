# Helpers for t_fleet*.sh (sourced after lib.sh and enroll_helpers.sh).
#   hosts_csv FILE PATTERN BASE N [EXTRA]  a hosts file for N devices named
#                          printf PATTERN i at BASE+i (last octet), with the
#                          default user and password (empty columns)
#   fleet ARGS...          amtca fleet on $HOME_CA with --user/--password-file
#   check_devices PATTERN BASE N   every device: AMT holds root +
#                          intermediate + one bound leaf (ours) + one key, and
#                          the records hold exactly one valid certificate
#                          for it
#   served_pin ADDR FQDN   SHA-256 (hex) of the leaf served on 16993

hosts_csv() {
	local f=$1 pat=$2 base=$3 n=$4 i pre last
	pre=${base%.*}
	last=${base##*.}
	{
		echo "fqdn,address,user,password_file"
		for ((i = 0; i < n; i++)); do
			printf "$pat,%s.%d,,\n" "$i" "$pre" $((last + i))
		done
	} >"$f"
}

fleet() {
	"$AMTCA" --home "$HOME_CA" fleet --user admin --password-file "$PW" "$@"
}

check_devices() {
	local pat=$1 base=$2 n=$3 pre last i
	pre=${base%.*}
	last=${base##*.}
	for ((i = 0; i < n; i++)); do
		printf "%s $pat\n" "$pre.$((last + i))" "$i"
	done >"$T/check.list"
	# amt-info over TLS, four at a time: AMT's own view of its store.
	# ($0..$3 fixed, xargs appends $4 = address, $5 = FQDN.)
	xargs -P 4 -L 1 sh -c '"$0" --home "$1" amt-info --tls --host "$5" \
	    --address "$4" --user admin --password-file "$2" --json \
	    >"$3/ai-$5.json" 2>"$3/ai-$5.err" ||
	    echo "$5: amt-info failed: $(cat "$3/ai-$5.err")"' \
	    "$AMTCA" "$HOME_CA" "$PW" "$T" <"$T/check.list" >"$T/check.err" || true
	[ -s "$T/check.err" ] && fail "$(head -n 3 "$T/check.err")"
	"$AMTCA" --home "$HOME_CA" list --json >"$T/list.json"
	python3 - "$T" "$T/check.list" "$T/list.json" <<'PY' || fail "per-device invariants do not hold"
import json, sys
t, lst, recs = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))["certificates"]
bad = []
for line in open(lst):
    addr, fqdn = line.split()
    d = json.load(open("%s/ai-%s.json" % (t, fqdn)))
    certs = [c for c in d["certificates"] if not c.get("read_only")]
    roots = [c for c in certs if c.get("trusted_root")]
    bound = [c for c in certs if c.get("bound")]
    leaves = [c for c in certs if not c.get("trusted_root") and "CN=" + fqdn in (c.get("subject") or "")]
    valid = [r for r in recs if (r.get("device") or "").lower() == fqdn and r["status"] == "valid"]
    st = (len(certs), len(d["keys"]), len(roots), len(bound), len(leaves), len(valid))
    if st != (3, 1, 1, 1, 1, 1):
        bad.append("%s: certs=%d keys=%d roots=%d bound=%d leaves=%d valid_records=%d" % ((fqdn,) + st))
for b in bad[:5]:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

served_pin() {
	openssl s_client -connect "$1:16993" -servername "$2" </dev/null 2>/dev/null |
	    openssl x509 -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1
}
