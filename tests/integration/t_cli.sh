#!/usr/bin/env bash
# A command line that scripts and people can rely on: every help form, the
# global --home after the command, exactly one JSON document on stdout with
# --json also on failure (error.code/message, exit status per the contract),
# enroll --json keys whatever the outcome, issue/crl --json, doctor check ids
# and --skip, chain format from the --out name, issue --out failing after
# the record is durable, and man page synopses without nested brackets.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/enroll_helpers.sh"

# one_doc FILE: stdout is exactly one JSON document; prints it compactly.
one_doc() {
	python3 - "$1" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
d, end = json.JSONDecoder().raw_decode(text.lstrip())
assert text.lstrip()[end:].strip() == "", "more than one document: %r" % text
print(json.dumps(d))
EOF
}

# json_fail WANT_RC CODE cmd...: exit WANT_RC, stdout one document
# {"error":{"code":CODE,"message":non-empty}}, stderr starts "amtca".
json_fail() {
	local want=$1 code=$2 rc=0
	shift 2
	"$@" >"$T/jout" 2>"$T/jerr" || rc=$?
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc: $* :: $(cat "$T/jerr")"
	one_doc "$T/jout" >/dev/null || fail "not one JSON document on stdout of $*: $(cat "$T/jout")"
	python3 - "$T/jout" "$code" <<'EOF' || fail "bad error document for $*: $(cat "$T/jout")"
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert e["code"] == sys.argv[2], e
assert isinstance(e["message"], str) and e["message"], e
EOF
	grep -q '^amtca' "$T/jerr" || fail "no 'amtca' message on stderr of $*"
}

H="$T/home"
new_ca "$H" --domain example.test

# --- help -----------------------------------------------------------------
for form in "-h" "--help" "help"; do
	"$AMTCA" $form >"$T/help" 2>&1 || fail "amtca $form exits non-zero"
	for c in init issue chain list show revoke crl bench amt-info enroll doctor; do
		grep -q "^  $c " "$T/help" || fail "amtca $form does not list $c"
	done
done
declare -A opts=(
	[init]="--softhsm --module --token-uri --pin-file --key-type --domain --any-domain --ip-range --root-cn --inter-cn --org --country --days"
	[issue]="--fqdn --csr --ip --days --out --json"
	[chain]="--format --out"
	[list]="--json"
	[show]="--json --pem"
	[revoke]="--reason"
	[crl]="--format --out --days --json"
	[bench]="--count --threads --key-type --store"
	[amt-info]="--host --address --port --tls --tls-port --user --password-file --ca-file --legacy-tls --json"
	[enroll]="--host --address --port --tls-port --user --password-file --force --json --accept-non-secure --allow-fqdn-mismatch --renew-days --legacy-tls --tls-wait-ms"
	[doctor]="--host --address --port --tls-port --user --password-file --redir-port --legacy-tls --skip --json"
	[backup]="--out --include-pin --json"
	[restore]="--from --pin-file --home --json"
	[audit]="--out --since --action --json"
)
for c in "${!opts[@]}"; do
	"$AMTCA" "$c" --help >"$T/h1" 2>&1 || fail "amtca $c --help exits non-zero"
	"$AMTCA" help "$c" >"$T/h2" 2>&1 || fail "amtca help $c exits non-zero"
	cmp -s "$T/h1" "$T/h2" || fail "amtca help $c differs from amtca $c --help"
	for o in ${opts[$c]}; do
		grep -qE -- "^ +$o( |$)" "$T/h1" || fail "amtca $c --help does not list $o: $(cat "$T/h1")"
	done
done
expect_fail 2 "unknown command" "$AMTCA" help frobnicate
ok "-h, --help, help, help COMMAND and COMMAND --help; each lists every option"

# --- --home after the command -------------------------------------------
make_csr "$T/a.csr" rsa:2048
"$AMTCA" issue --fqdn a.example.test --csr "$T/a.csr" --home "$H" >"$T/a.pem" ||
	fail "issue with --home after the command"
"$AMTCA" list --json --home="$H" >"$T/l.json" || fail "list with --home= after the command"
serial_a=$(openssl x509 -in "$T/a.pem" -noout -serial | cut -d= -f2)
grep -q "$serial_a" "$T/l.json" || fail "the home after the command is not the one used"
"$AMTCA" --json --home "$H" list >"$T/l2.json" || fail "--json before the command"
cmp -s "$T/l.json" "$T/l2.json" || fail "amtca --json list differs from amtca list --json"
ok "--home is accepted after the command; --json before it"

# --- --json failures: one error document, exit status per the contract ------
echo "not a csr" >"$T/junk.csr"
json_fail 1 CSR "$AMTCA" --home "$H" issue --fqdn b.example.test --csr "$T/junk.csr" --json
[ "$(wc -l <"$T/jerr")" = 1 ] || fail "the error on stderr is not one line: $(cat "$T/jerr")"
json_fail 1 NOT_FOUND "$AMTCA" --home "$H" show 0123ABCD --json
json_fail 1 CONFIG "$AMTCA" --home "$T/no-such-home" list --json
json_fail 2 USAGE "$AMTCA" --home "$H" issue --csr "$T/a.csr" --json
json_fail 2 USAGE "$AMTCA" --home "$H" show --json
json_fail 2 USAGE "$AMTCA" --json frobnicate
json_fail 2 USAGE "$AMTCA" --home "$H" crl --format der --json
# a --out that cannot be written: the failure is the error document, not a
# certificate document followed by an error
json_fail 1 IO "$AMTCA" --home "$H" crl --out "$T/nodir/crl.pem" --json
ok "--json failures print exactly one {\"error\":{code,message}} document"

# --- issue and crl --json ----------------------------------------------------
"$AMTCA" --home "$H" issue --fqdn c.example.test --csr "$T/a.csr" --json >"$T/i.json" ||
	fail "issue --json"
one_doc "$T/i.json" >/dev/null || fail "issue --json is not one document: $(cat "$T/i.json")"
python3 - "$T/i.json" "$T/c.pem" <<'EOF' || fail "issue --json document: $(cat "$T/i.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["fqdn"] == "c.example.test" and d["out"] is None, d
assert d["not_before"].endswith("Z") and d["not_after"].endswith("Z"), d
open(sys.argv[2], "w").write(d["pem"] + "\n")
EOF
[ "$(openssl x509 -in "$T/c.pem" -noout -serial | cut -d= -f2)" = "$(json_get "$T/i.json" serial)" ] ||
	fail "issue --json serial is not the certificate's"
"$AMTCA" --home "$H" revoke "$serial_a" >/dev/null
"$AMTCA" --home "$H" crl --json >"$T/c.json" || fail "crl --json"
python3 - "$T/c.json" "$T/crl.pem" <<'EOF' || fail "crl --json document: $(cat "$T/c.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "pem" and d["revoked"] == 1 and d["crl_number"], d
open(sys.argv[2], "w").write(d["pem"] + "\n")
EOF
openssl crl -in "$T/crl.pem" -noout -text | qgrep "$serial_a" || fail "crl --json pem does not list the revoked serial"
"$AMTCA" --home "$H" crl --format der --out "$T/crl.der" --json >"$T/c2.json" || fail "crl --format der --out --json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="der" and d["pem"] is None and d["out"], d' "$T/c2.json" ||
	fail "crl der --json: $(cat "$T/c2.json")"
openssl crl -inform DER -in "$T/crl.der" -noout || fail "crl --out with --json did not write the DER CRL"
ok "issue --json and crl --json print one document"

# --- crl: the format follows the --out name too -----------------------------
"$AMTCA" --home "$H" crl --out "$T/pub.crl"
openssl crl -inform DER -in "$T/pub.crl" -noout || fail "crl --out x.crl is not DER"
"$AMTCA" --home "$H" crl --out "$T/pub2.pem"
openssl crl -in "$T/pub2.pem" -noout || fail "crl --out x.pem is not PEM"
expect_fail 2 "contradicts" "$AMTCA" --home "$H" crl --format pem --out "$T/pub3.crl"
[ ! -e "$T/pub3.crl" ] || fail "a refused crl --out wrote a file"
ok "crl: .crl/.der are DER, .pem PEM, a contradicting --format refused"

# --- chain: the format follows the --out name --------------------------------
"$AMTCA" --home "$H" chain --out "$T/x.p7b"
openssl pkcs7 -inform DER -in "$T/x.p7b" -print_certs -noout >"$T/p7" || fail "chain --out x.p7b is not DER PKCS#7"
[ "$(grep -c '^subject' "$T/p7")" = 2 ] || fail "x.p7b does not hold both certificates"
"$AMTCA" --home "$H" chain --out "$T/x.pem"
cmp -s "$T/x.pem" "$H/chain.pem" || fail "chain --out x.pem is not the PEM chain"
mkdir "$T/derdir"
"$AMTCA" --home "$H" chain --out "$T/derdir"
[ "$(ls "$T/derdir"/*.cer | wc -l)" = 2 ] || fail "chain --out DIR did not write DER files"
expect_fail 2 "contradicts" "$AMTCA" --home "$H" chain --format pem --out "$T/y.p7b"
expect_fail 2 "contradicts" "$AMTCA" --home "$H" chain --format p7b --out "$T/y.pem"
expect_fail 2 "directory" "$AMTCA" --home "$H" chain --out "$T/y.der"
expect_fail 2 "--format" "$AMTCA" --home "$H" chain --out "$T/y.bin"
[ ! -e "$T/y.p7b" ] && [ ! -e "$T/y.pem" ] && [ ! -e "$T/y.der" ] && [ ! -e "$T/y.bin" ] ||
	fail "a refused chain export wrote a file"
"$AMTCA" --home "$H" chain --format p7b --out "$T/y.bin"
openssl pkcs7 -inform DER -in "$T/y.bin" -noout || fail "--format p7b with an unknown extension"
ok "chain: .p7b is PKCS#7, .pem PEM, a directory DER; contradictions refused"

# --- issue --out failing after the record is durable -------------------------
before=$(cert_count "$H")
rc=0
"$AMTCA" --home "$H" issue --fqdn d.example.test --csr "$T/a.csr" --out "$T/nodir/d.pem" \
	>"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] || fail "issue --out into a missing directory: exit $rc"
[ "$(wc -l <"$T/err")" = 1 ] || fail "not one line: $(cat "$T/err")"
grep -q '^amtca: certificate [0-9A-F]* for d.example.test is issued and recorded, but writing .*nodir/d.pem failed: ' "$T/err" ||
	fail "the failure does not say the certificate is issued: $(cat "$T/err")"
serial_d=$(sed -n 's/^amtca: certificate \([0-9A-F]*\) .*/\1/p' "$T/err")
grep -q "get it with: amtca --home $H show $serial_d --pem" "$T/err" || fail "no way to get it: $(cat "$T/err")"
[ "$(cert_count "$H")" = $((before + 1)) ] || fail "the certificate is not recorded"
"$AMTCA" --home "$H" show "$serial_d" --pem >"$T/d.pem" || fail "show --pem"
[ "$(openssl x509 -in "$T/d.pem" -noout -serial | cut -d= -f2)" = "$serial_d" ] || fail "show --pem serial"
openssl x509 -in "$T/d.pem" -noout -subject | qgrep 'CN *= *d.example.test' || fail "show --pem subject"
[ "$(openssl x509 -in "$T/d.pem" -noout -pubkey)" = "$(openssl req -in "$T/a.csr" -noout -pubkey)" ] ||
	fail "show --pem is not the certificate issued for the CSR"
openssl verify -CAfile "$H/root.pem" -untrusted "$H/intermediate.pem" "$T/d.pem" >/dev/null ||
	fail "show --pem does not verify"
ok "issue --out failure names the serial and 'show SERIAL --pem', which prints the certificate"

# --- enroll --json: every key whatever the outcome ---------------------------
PW="$T/amt-password"
password_file "$PW"
HOME_CA="$H"
ADDR=127.0.47.1
FQDN=amt-cli.example.test
keys='["host","address","amt_version","serial","not_after","chain_pem","steps","status","reused_certificate","non_secure_port_open","removed_certificates","removed_keys","failed_step","warning","error"]'
check_enroll_doc() { # FILE EXPECT(ok|fail) [FAILED_STEP]
	python3 - "$1" "$2" "${3:-}" "$keys" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k in json.loads(sys.argv[4]):
    assert k in d, "missing key %s: %r" % (k, d)
if sys.argv[2] == "ok":
    assert d["failed_step"] is None and d["error"] is None and d["status"] != "failed", d
else:
    assert d["status"] == "failed", d
    assert d["error"]["code"] and d["error"]["message"], d
    if sys.argv[3] == "null":
        assert d["failed_step"] is None, d
    elif sys.argv[3]:
        assert d["failed_step"] == sys.argv[3], d
EOF
}
rc=0
"$AMTCA" --home "$T/no-such-home" enroll --host "$FQDN" --address "$ADDR" --user admin \
	--password-file "$PW" --json >"$T/e0.json" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "enroll without a home: exit $rc"
one_doc "$T/e0.json" >/dev/null && check_enroll_doc "$T/e0.json" fail null ||
	fail "enroll --json without a home: $(cat "$T/e0.json")"
rc=0
enroll "$ADDR" "$FQDN" --json >"$T/e1.json" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "enroll with no device: exit $rc"
one_doc "$T/e1.json" >/dev/null && check_enroll_doc "$T/e1.json" fail preflight ||
	fail "enroll --json with no device: $(cat "$T/e1.json")"
sim_up "$T/sim.log" "$ADDR" "$FQDN"
enroll "$ADDR" "$FQDN" --json >"$T/e2.json" 2>"$T/e2.err" || fail "enroll: $(cat "$T/e2.err")"
one_doc "$T/e2.json" >/dev/null && check_enroll_doc "$T/e2.json" ok ||
	fail "enroll --json on success: $(cat "$T/e2.json")"
ok "enroll --json carries every key and failed_step, also on failure"

# --- doctor: stable ids, --skip ------------------------------------------------
"$AMTCA" --home "$H" doctor --host "$FQDN" --address "$ADDR" --user admin --password-file "$PW" \
	--json >"$T/d.json" 2>/dev/null || true
python3 - "$T/d.json" <<'EOF' || fail "doctor --json ids: $(cat "$T/d.json")"
import json, sys
d = json.load(open(sys.argv[1]))
ids = [c["id"] for c in d["checks"]]
want = ["dns", "port_tls", "tls_handshake", "port_plain", "validity_local",
        "chain_file", "login", "identity", "validity_amt", "redirection"]
assert sorted(ids) == sorted(want), ids
res = {c["id"]: c["result"] for c in d["checks"]}
assert res["tls_handshake"] == "ok" and res["login"] == "ok" and res["redirection"] == "ok", res
EOF
"$AMTCA" --home "$H" doctor --host "$FQDN" --address "$ADDR" --skip redirection --skip dns,validity_amt \
	--user admin --password-file "$PW" >"$T/d.txt" 2>/dev/null || true
grep -q '^SKIP redirection TLS: skipped (--skip redirection)' "$T/d.txt" || fail "--skip redirection not shown as SKIP: $(cat "$T/d.txt")"
grep -q '^SKIP DNS: ' "$T/d.txt" || fail "--skip dns not shown as SKIP"
grep -q '^SKIP certificate validity (AMT clock): ' "$T/d.txt" || fail "--skip validity_amt not shown as SKIP"
grep -q '^OK   TLS handshake: ' "$T/d.txt" || fail "an unskipped check did not run"
if grep -q '^FAIL ' "$T/d.txt"; then fail "failing checks left after skipping dns: $(grep '^FAIL ' "$T/d.txt")"; fi
"$AMTCA" --home "$H" doctor --host "$FQDN" --address "$ADDR" --skip redirection,dns --json \
	>"$T/d2.json" 2>/dev/null || fail "doctor with the failing checks skipped must exit 0"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
res = {c["id"]: c["result"] for c in d["checks"]}
assert res["redirection"] == "skip" and res["dns"] == "skip" and d["ok"] is True, res
' "$T/d2.json" || fail "doctor --skip in JSON: $(cat "$T/d2.json")"
expect_fail 2 "check ids" "$AMTCA" --home "$H" doctor --host "$FQDN" --address "$ADDR" --skip nonsense
expect_fail 2 "needs --address" "$AMTCA" --home "$H" doctor --host "$FQDN" --skip dns
ok "doctor: stable check ids; --skip ID shows SKIP and does not fail"

# --- man pages: optional arguments are not nested ------------------------------
for m in amtca.1 amtsim.1 amtca.conf.5; do
	groff -mandoc -Tascii -P-cbu -rLL=400n "$top/docs/man/$m" 2>/dev/null >"$T/man.txt"
	python3 - "$T/man.txt" "$m" <<'EOF' || fail "nested optional arguments in $m"
import sys
for line in open(sys.argv[1]):
    depth = 0
    for ch in line:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth > 1:
            sys.exit("%s: %s" % (sys.argv[2], line.strip()))
EOF
done
ok "man page synopses: no nested optional arguments"
# --- secret-file options only in full -------------------------------------------
# getopt_long takes any unambiguous prefix: "--password VALUE" would be read
# as --password-file VALUE and the value echoed as a missing file's name.
# Every command with a secret-file option refuses the abbreviation (exit 2)
# and never prints the value.
SECRET="s3cr3t-$RANDOM-value"
nohome="$T/no-such-home"
abbrev_refused() { # cmd...: each abbreviation form of --password-file
	local form
	for form in "--password $SECRET" "--pass $SECRET" "--password=$SECRET" "--pa=$SECRET"; do
		# shellcheck disable=SC2086
		expect_fail 2 'command line' "$AMTCA" --home "$nohome" "$@" $form
		if grep -a -q -F -- "$SECRET" "$T/err" "$T/out"; then
			fail "$* $form: the value was echoed: $(cat "$T/err")"
		fi
		grep -q -- '--password-file' "$T/err" || fail "$* $form: no hint of the full option"
	done
}
abbrev_refused enroll --host amt1.example.test --user admin
abbrev_refused fleet --hosts "$T/hosts"
abbrev_refused doctor --host amt1.example.test --user admin
abbrev_refused amt-info --host amt1.example.test --user admin
abbrev_refused devices retire amt1.example.test
abbrev_refused est-client add c1
abbrev_refused credential add lab --user admin
for form in "--pin $SECRET" "--pin=$SECRET" "--pi $SECRET"; do
	# shellcheck disable=SC2086
	expect_fail 2 'command line' "$AMTCA" --home "$nohome" init --domain example.test $form
	if grep -a -q -F -- "$SECRET" "$T/err" "$T/out"; then fail "init $form echoed the PIN"; fi
	grep -q -- '--pin-file' "$T/err" || fail "init $form: no hint of --pin-file"
done
# The full name is untouched: a missing file is still reported as such.
expect_fail 1 "$T/missing" "$AMTCA" --home "$nohome" doctor --host amt1.example.test \
    --user admin --password-file "$T/missing"
ok "secret-file options (--password-file, --pin-file) are refused abbreviated, value never echoed"
# --- test pipes end in qgrep, never grep -q -----------------------------------
# Under pipefail, a writer piped into grep -q fails when grep exits at the first
# match and the writer dies of SIGPIPE: `yes` always does.
g=grep
if (yes | $g -q y) 2>/dev/null; then fail "yes piped into grep -q succeeded: pipefail is not on"; fi
seq 1 200000 | qgrep '^1$' || fail "qgrep failed on a long matching input"
left=$(grep -rnE '\| *grep +-[a-zA-Z]*q' "$top/tests" "$top/scripts" --include='*.sh' |
    grep -v '/scripts/deps.sh:' || true)
[ -z "$left" ] || fail "pipes into grep -q under pipefail: $left"
ok "no test or script pipe ends in grep -q (qgrep reads all its input)"
echo "t_cli: all passed"
