#!/bin/sh
# Install the Debian 12 packages amtca needs to build, test and run the demo,
# but only when something is missing: a no-op on a prepared machine.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev libpq-dev postgresql
libssl-dev openssl libengine-pkcs11-openssl p11-kit libp11-kit-dev
softhsm2 opensc gnutls-bin libxml2-dev libcurl4-openssl-dev curl
libsqlite3-dev sqlite3 libmicrohttpd-dev libcmocka-dev valgrind iproute2 python3
gdb libcap2-bin groff-base bsdutils util-linux
libgnutls28-dev libjansson-dev libargon2-dev chromium"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
