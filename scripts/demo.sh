#!/bin/sh
# make demo: the main job on embedded defaults, in ./demo-out (wiped first).
#   1. a fresh CA home with its own SoftHSM token (amtca init --softhsm)
#   2. an AMT device: amtsim on 127.0.0.2 answering as amt-demo.example.test
#   3. amtca enroll: plain HTTP -> TLS with a per-FQDN certificate
#   4. proof with a real peer: openssl s_client verifying chain and hostname
#   5. a second enroll: nothing to do (idempotent)
# Env: BUILD (default build).  No /etc/hosts edits: --address pins the name.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$top/$BUILD" ;; esac
AMTCA="$BUILD/amtca"
AMTSIM="$BUILD/amtsim"
ADDR=127.0.0.2
FQDN=amt-demo.example.test
out="$top/demo-out"
home="$out/amtca-home"
t0=$(date +%s.%N)

say() { printf '\n==> %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
elapsed() { echo "$(date +%s.%N) $1" | awk '{ printf "%.1f", $1 - $2 }'; }

[ -x "$AMTCA" ] && [ -x "$AMTSIM" ] || die "build first: make"
command -v openssl >/dev/null || die "openssl not installed (make deps)"

rm -rf "$out"
mkdir -p "$out"
chmod 700 "$out"

sim_pid=""
cleanup() {
	if [ -n "$sim_pid" ]; then
		kill -TERM "$sim_pid" 2>/dev/null || true
		wait "$sim_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "1. CA: root and intermediate in a fresh SoftHSM token ($home)"
"$AMTCA" --home "$home" init --softhsm --domain example.test

say "2. AMT device: amtsim on $ADDR as $FQDN"
(umask 077 && od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$out/amt-password" &&
    printf '\n' >>"$out/amt-password")
"$AMTSIM" --listen "$ADDR" --fqdn "$FQDN" --user admin \
    --password-file "$out/amt-password" >"$out/amtsim.log" 2>&1 &
sim_pid=$!
i=0
until grep -q '^ready' "$out/amtsim.log" 2>/dev/null; do
	kill -0 "$sim_pid" 2>/dev/null || die "amtsim exited: $(cat "$out/amtsim.log")"
	i=$((i + 1))
	[ $i -lt 200 ] || die "amtsim not ready after 10 s"
	sleep 0.05
done
echo "amtsim ready (pid $sim_pid, log $out/amtsim.log)"

say "3. Enroll: plain HTTP on 16992 -> TLS on 16993 with a certificate for $FQDN"
e0=$(date +%s.%N)
"$AMTCA" --home "$home" enroll --host "$FQDN" --address "$ADDR" \
    --user admin --password-file "$out/amt-password" --json >"$out/enroll.json"
enroll_s=$(elapsed "$e0")
cat "$out/enroll.json"
echo "enrollment took ${enroll_s}s"

say "4. Proof with openssl s_client: chain from this CA, hostname $FQDN"
# AMT serves only its leaf, so the verifier needs the intermediate too:
# chain.pem (intermediate, then root) is exactly what consoles are given.
openssl s_client -connect "$ADDR:16993" -servername "$FQDN" \
    -verify_return_error -verify_hostname "$FQDN" \
    -CAfile "$home/chain.pem" \
    </dev/null >"$out/s_client.txt" 2>&1 ||
    die "openssl s_client failed: $(tail -n 5 "$out/s_client.txt")"
grep -q 'Verify return code: 0 (ok)' "$out/s_client.txt" ||
    die "TLS did not verify: $(grep 'Verify return code' "$out/s_client.txt")"
grep -E '^(depth=| *[0-9] s:| *Verify return code)' "$out/s_client.txt" | head -n 8
openssl x509 -noout -subject -issuer -serial -enddate -ext subjectAltName \
    <"$out/s_client.txt" 2>/dev/null || true
echo "port 16992: $(python3 -c "import socket,sys
s=socket.socket(); s.settimeout(2)
try:
    s.connect(('$ADDR',16992)); print('open')
except Exception: print('closed (TLS only)')" 2>/dev/null || echo '?')"

say "5. Enroll again: must be a no-op"
"$AMTCA" --home "$home" enroll --host "$FQDN" --address "$ADDR" \
    --user admin --password-file "$out/amt-password" | tee "$out/enroll2.txt"
grep -q 'already enrolled' "$out/enroll2.txt" || die "second enroll was not a no-op"

say "Done in $(elapsed "$t0")s"
cat <<EOF
  CA home:          $home (SoftHSM token inside, PIN file mode 0600)
  device:           $FQDN at $ADDR (amtsim), TLS on 16993, 16992 closed
  certificate:      serial $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["serial"])' "$out/enroll.json"), issued by the HSM-backed intermediate
  chain for consoles (intermediate then root): $home/chain.pem
  enrollment time:  ${enroll_s}s
  try:  openssl s_client -connect $ADDR:16993 -servername $FQDN -verify_hostname $FQDN -CAfile $home/chain.pem
EOF
