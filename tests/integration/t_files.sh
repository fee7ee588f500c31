#!/usr/bin/env bash
# Files amtca writes and reads as root on a shared host (issue 7, section 2):
# temp files nobody can guess, --out that never replaces a device, FIFO or
# symlink, and a CA home (conf, PIN, token, module) used only when it is ours.
. "$(dirname "$0")/lib.sh"

H="$T/home"
new_ca "$H" --domain example.test
make_csr "$T/csr" ec:prime256v1 a.example.test
issue() { "$AMTCA" --home "$H" issue --fqdn a.example.test --csr "$T/csr" "$@"; }
is_cert() { openssl x509 -in "$1" -noout 2>/dev/null; }

# --- --out: what a user expects from openssl and curl ----------------------
(cd "$T" && issue --out - >"$T/stdout.pem")
is_cert "$T/stdout.pem" || fail "--out - did not write the certificate to stdout"
[ ! -e "$T/-" ] || fail "--out - created a file named '-'"
ok "--out - is standard output"

# A character device is written through (a private /dev/null: a regression
# must not replace the real one).
if mknod "$T/null" c 1 3 2>/dev/null; then
	issue --out "$T/null"
	[ -c "$T/null" ] || fail "issue --out replaced a character device with a regular file"
	"$AMTCA" --home "$H" crl --out "$T/null"
	[ -c "$T/null" ] || fail "crl --out replaced a character device"
	"$AMTCA" --home "$H" chain --format p7b --out "$T/null"
	[ -c "$T/null" ] || fail "chain --out replaced a character device"
	ok "--out to a character device writes through it"
else
	echo "SKIP: mknod not permitted; character-device case not run"
fi

mkfifo "$T/fifo"
timeout 20 cat "$T/fifo" >"$T/fifo.out" &
reader=$!
issue --out "$T/fifo" || true
wait "$reader" || true
[ -p "$T/fifo" ] || fail "--out replaced a FIFO with a regular file"
is_cert "$T/fifo.out" || fail "nothing came out of the FIFO"
ok "--out to a FIFO writes through it"

# /dev/stdout-style paths, here behind a symlink of ours so that a
# regression cannot replace the system's /dev/stdout.
ln -s /dev/stdout "$T/so"
"$AMTCA" --home "$H" chain --out "$T/so" >"$T/chain.out"
[ -L "$T/so" ] || fail "chain --out replaced a symlink to /dev/stdout"
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/chain.out")" = 2 ] || fail "chain via /dev/stdout did not reach stdout"
"$AMTCA" --home "$H" crl --out "$T/so" | openssl crl -noout 2>/dev/null || fail "crl via /dev/stdout did not reach stdout"
ok "--out /dev/stdout writes to standard output"

echo old >"$T/real.pem"
ln -s real.pem "$T/link.pem"
issue --out "$T/link.pem"
[ -L "$T/link.pem" ] || fail "--out replaced a symlink with a regular file"
is_cert "$T/real.pem" || fail "--out did not follow the symlink to its regular file"
"$AMTCA" --home "$H" crl --out "$T/link.pem"
[ -L "$T/link.pem" ] || fail "crl --out replaced a symlink"
openssl crl -in "$T/real.pem" -noout 2>/dev/null || fail "crl --out did not follow the symlink"
ln -s missing.pem "$T/dangling.pem"
expect_fail 1 "does not exist" issue --out "$T/dangling.pem"
[ -L "$T/dangling.pem" ] || fail "a dangling --out symlink was replaced"
[ ! -e "$T/missing.pem" ] || fail "a dangling --out symlink was written through"
expect_fail 1 "is a directory" issue --out "$T"
ok "--out follows our symlink to a regular file, never replaces it"

# --- the attacker's view: as nobody, plant symlinks, root writes ------------
if [ "$(id -u)" != 0 ] || ! id nobody >/dev/null 2>&1; then
	echo "SKIP: not root (or no user nobody); planted-symlink cases not run"
else
	asnobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
	# A directory nobody owns (no sticky bit, so the kernel's
	# protected_symlinks does not step in): only amtca's care protects root.
	P=$(mktemp -d /tmp/amtca-pub.XXXXXX)
	on_exit "rm -rf '$P'"
	chmod 0755 "$P"
	chown nobody:nogroup "$P"
	echo precious >"$T/victim"
	# Every PATH.tmp.<pid> the next few thousand processes could get.
	last=$(cat /proc/sys/kernel/ns_last_pid)
	max=$(cat /proc/sys/kernel/pid_max)
	asnobody /usr/bin/python3 -c '
import os, sys
d, last, pmax, victim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for name in ("out.pem", "crl.pem", "chain.pem"):
    for i in range(1, 4000):
        pid = (last + i) % pmax
        if pid > 1:
            os.symlink(victim, "%s/%s.tmp.%d" % (d, name, pid))
' "$P" "$last" "$max" "$T/victim"
	issue --out "$P/out.pem"
	"$AMTCA" --home "$H" crl --out "$P/crl.pem"
	"$AMTCA" --home "$H" chain --out "$P/chain.pem"
	[ "$(cat "$T/victim")" = precious ] || fail "root wrote through a symlink planted at a temp name"
	[ ! -L "$P/out.pem" ] && is_cert "$P/out.pem" || fail "issue --out did not write a regular file"
	ok "temp files cannot be guessed: planted symlinks are not written through"

	asnobody ln -s "$T/victim" "$P/planted.pem"
	expect_fail 1 "owned by uid" issue --out "$P/planted.pem"
	[ "$(cat "$T/victim")" = precious ] || fail "root followed a symlink planted by nobody"
	[ -L "$P/planted.pem" ] || fail "a planted symlink was replaced"
	ok "--out refuses a symlink planted by another user"
fi

# --- a home that is really ours ----------------------------------------------
mkdir -m 0777 "$T/loose"
chmod 0777 "$T/loose"
expect_fail 1 "$T/loose" "$AMTCA" --home "$T/loose" init --softhsm --domain example.test
grep -q "writable by group or others" "$T/err" || fail "the loose-home error does not say why: $(cat "$T/err")"
[ -z "$(ls -A "$T/loose")" ] || fail "init into a loose home left files behind"
mkdir -m 0700 "$T/full"
echo x >"$T/full/notes.txt"
expect_fail 1 "not empty" "$AMTCA" --home "$T/full" init --softhsm --domain example.test
[ ! -e "$T/full/amtca.conf" ] || fail "init wrote into a non-empty directory"
mkdir -m 0700 "$T/empty"
"$AMTCA" --home "$T/empty" init --softhsm --domain example.test >/dev/null || fail "init into an empty 0700 directory"
"$AMTCA" --home "$T/new/deeper" init --softhsm --domain example.test >/dev/null
[ "$(stat -c %a "$T/new/deeper")" = 700 ] || fail "init did not create the home 0700"
ok "init creates the home 0700 and refuses a loose or non-empty directory"

# Each loose path is refused on use, with one line naming it.
loose_refused() { # path mode-to-set what
	local path=$1 mode=$2 what=$3 old
	old=$(stat -c %a "$path")
	chmod "$mode" "$path"
	expect_fail 1 "$path" issue
	grep -q "$what" "$T/err" || fail "error for $path does not name the $what: $(cat "$T/err")"
	chmod "$old" "$path"
}
loose_refused "$H" 0777 "CA home"
loose_refused "$H" 0770 "CA home"
loose_refused "$H/amtca.conf" 0666 "CA configuration"
loose_refused "$H/keys/softhsm/user.pin" 0622 "PIN file"
loose_refused "$H/keys/softhsm/softhsm2.conf" 0646 "SoftHSM config"
loose_refused "$H/keys/softhsm/tokens" 0777 "token directory"
issue >/dev/null || fail "issue after the modes were restored"
# list and chain read the home too: a loose home is refused there as well.
chmod 0777 "$H"
expect_fail 1 "CA home" "$AMTCA" --home "$H" list
chmod 0700 "$H"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	chown nobody "$H/amtca.conf"
	expect_fail 1 "owned by uid" issue
	chown root "$H/amtca.conf"
	chown nobody "$H/keys/softhsm/user.pin"
	expect_fail 1 "PIN file" issue
	chown root "$H/keys/softhsm/user.pin"
fi
ok "a loose or foreign home, conf, PIN file, SoftHSM config or token dir is refused"

# A module, or the directory it is in, that others can write.
mkdir -p "$T/mods"
cp "$SOFTHSM_MODULE" "$T/mods/libsofthsm2.so"
mkdir -p "$T/ext/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$T/ext/tokens" >"$T/ext/softhsm2.conf"
SOFTHSM2_CONF="$T/ext/softhsm2.conf" softhsm2-util --init-token --free --label ext \
	--so-pin 12345678 --pin 87654321 >/dev/null
echo 87654321 >"$T/ext/pin"
chmod 0777 "$T/mods"
expect_fail 1 "PKCS#11 module" env SOFTHSM2_CONF="$T/ext/softhsm2.conf" "$AMTCA" --home "$T/modhome" \
	init --module "$T/mods/libsofthsm2.so" --token-uri pkcs11:token=ext --pin-file "$T/ext/pin" --domain example.test
chmod 0755 "$T/mods"
chmod 0666 "$T/mods/libsofthsm2.so"
expect_fail 1 "PKCS#11 module" env SOFTHSM2_CONF="$T/ext/softhsm2.conf" "$AMTCA" --home "$T/modhome2" \
	init --module "$T/mods/libsofthsm2.so" --token-uri pkcs11:token=ext --pin-file "$T/ext/pin" --domain example.test
chmod 0755 "$T/mods/libsofthsm2.so"
SOFTHSM2_CONF="$T/ext/softhsm2.conf" "$AMTCA" --home "$T/modhome3" init --module "$T/mods/libsofthsm2.so" \
	--token-uri pkcs11:token=ext --pin-file "$T/ext/pin" --domain example.test >/dev/null
chmod 0777 "$T/mods"
expect_fail 1 "PKCS#11 module" "$AMTCA" --home "$T/modhome3" issue --fqdn a.example.test --csr "$T/csr"
chmod 0755 "$T/mods"
"$AMTCA" --home "$T/modhome3" issue --fqdn a.example.test --csr "$T/csr" >/dev/null || fail "issue with a sound module"
ok "a module writable by others (file or directory) is refused"
