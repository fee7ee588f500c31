#!/usr/bin/env bash
# The policy bounds everything the CA vouches for: init requires --domain
# (or an explicit, recorded --any-domain); IP SANs only inside the
# --ip-range networks, which the intermediate's name constraints also
# enforce (a family without a range is excluded whole); the certificate's
# SubjectPublicKeyInfo is the canonical encoding, whatever the CSR used.
. "$(dirname "$0")/lib.sh"

# Small DER tools: the SPKI of a certificate, and a CSR rewritten to drop
# the NULL from an RSA key's AlgorithmIdentifier (then re-signed).
cat >"$T/der.py" <<'PY'
import sys

def tlv(b, i):
    tag, l = b[i], b[i + 1]
    if l < 0x80:
        h = 2
    else:
        n = l & 0x7f
        l, h = int.from_bytes(b[i + 2:i + 2 + n], 'big'), 2 + n
    return tag, i + h, i + h + l          # tag, content start, end

def items(b, start, end):
    out, i = [], start
    while i < end:
        t, s, e = tlv(b, i)
        out.append((t, i, s, e))
        i = e
    return out

def enc(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    nb = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([tag, 0x80 | len(nb)]) + nb + body

cmd = sys.argv[1]
b = open(sys.argv[2], 'rb').read()
_, s, e = tlv(b, 0)
top = items(b, s, e)
if cmd == 'spki':                          # cert.der out.der
    t, i, s2, e2 = top[0]
    tbs = items(b, s2, e2)
    k = 1 if tbs[0][0] == 0xa0 else 0
    t, i, s3, e3 = tbs[k + 5]
    open(sys.argv[3], 'wb').write(b[i:e3])
elif cmd == 'cri-rsa-noparams':            # csr.der cri-out.der
    t, i, s2, e2 = top[0]
    cri = items(b, s2, e2)
    t, i, s3, e3 = cri[2]                  # the SPKI
    alg, bits = items(b, s3, e3)
    oid = items(b, alg[2], alg[3])[0]
    spki = enc(0x30, enc(0x30, b[oid[1]:oid[3]]) + b[bits[1]:bits[3]])
    body = b[cri[0][1]:cri[1][3]] + spki + b"".join(b[x[1]:x[3]] for x in cri[3:])
    open(sys.argv[3], 'wb').write(enc(0x30, body))
elif cmd == 'assemble':                    # csr.der cri.der sig out.der
    cri = open(sys.argv[3], 'rb').read()
    sig = open(sys.argv[4], 'rb').read()
    t, i, s2, e2 = top[1]
    out = enc(0x30, cri + b[i:e2] + enc(0x03, b'\0' + sig))
    open(sys.argv[5], 'wb').write(out)
PY
der() { python3 "$T/der.py" "$@"; }

# --- init: --domain is required ------------------------------------------------
expect_fail 2 "--domain SUFFIX is required" "$AMTCA" --home "$T/nodomain" init --softhsm
[ ! -e "$T/nodomain" ] || fail "init without --domain left a home behind"
expect_fail 2 "exclude each other" "$AMTCA" --home "$T/both" init --softhsm \
	--domain example.test --any-domain
ok "init without --domain (or with both) is a usage error"

expect_fail 2 "10.0.0.0/8" "$AMTCA" --home "$T/badrange" init --softhsm \
	--domain example.test --ip-range 10.0.0.1/8
expect_fail 2 "prefix must be 0-32" "$AMTCA" --home "$T/badrange" init --softhsm \
	--domain example.test --ip-range 10.0.0.0/33
expect_fail 2 "neither IPv4 nor IPv6" "$AMTCA" --home "$T/badrange" init --softhsm \
	--domain example.test --ip-range example.test/8
[ ! -e "$T/badrange" ] || fail "a refused --ip-range left a home behind"
ok "init refuses a range with host bits set, naming the network"

HA="$T/any"
"$AMTCA" --home "$HA" init --softhsm --any-domain >/dev/null 2>"$T/any.err" ||
	fail "init --any-domain: $(cat "$T/any.err")"
grep -q '^amtca: warning: --any-domain' "$T/any.err" || fail "--any-domain does not warn: $(cat "$T/any.err")"
grep -q '^any_domain = yes$' "$HA/amtca.conf" || fail "--any-domain not recorded in amtca.conf"
grep -q '^domain' "$HA/amtca.conf" && fail "--any-domain wrote a domain line"
make_csr "$T/rsa.csr" rsa:2048
"$AMTCA" --home "$HA" issue --fqdn host.anything.test --csr "$T/rsa.csr" >/dev/null ||
	fail "an --any-domain CA refuses a name"
expect_fail 1 "no IP ranges" "$AMTCA" --home "$HA" issue --fqdn host.anything.test \
	--csr "$T/rsa.csr" --ip 192.0.2.1
ok "--any-domain warns, is recorded in amtca.conf, and still issues no IP names"

# A conf that says neither (as from an older init) is refused with the fix.
sed -i '/^any_domain/d' "$HA/amtca.conf"
expect_fail 1 "any_domain = yes" "$AMTCA" --home "$HA" list
printf 'any_domain = yes\ndomain = example.test\n' >>"$HA/amtca.conf"
expect_fail 1 "contradicts" "$AMTCA" --home "$HA" list
ok "amtca.conf without domain or any_domain (or with both) is refused"

# --- no ranges: no IP names, and the intermediate excludes every address -------
H0="$T/noranges"
new_ca "$H0" --domain example.test
for ip in 8.8.8.8 0.0.0.0 :: 2001:db8::1; do
	expect_fail 1 "IP address $ip refused" "$AMTCA" --home "$H0" issue \
		--fqdn a.example.test --csr "$T/rsa.csr" --ip "$ip"
done
[ "$(cert_count "$H0")" = 0 ] || fail "a refused IP left a record"
openssl x509 -in "$H0/intermediate.pem" -noout -text >"$T/inter0.txt"
grep -A8 'Name Constraints: critical' "$T/inter0.txt" | tr -d ' ' >"$T/nc0.txt"
grep -qx 'Excluded:' "$T/nc0.txt" || fail "no excluded subtrees: $(cat "$T/nc0.txt")"
grep -qx 'IP:0.0.0.0/0.0.0.0' "$T/nc0.txt" || fail "0.0.0.0/0 not excluded: $(cat "$T/nc0.txt")"
grep -qx 'IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0' "$T/nc0.txt" || fail "::/0 not excluded: $(cat "$T/nc0.txt")"
# A policy looser than the intermediate (conf edited after init) gets a leaf
# signed, but no verifier accepts its IP name.
printf 'ip_range = 0.0.0.0/0\nip_range = ::/0\n' >>"$H0/amtca.conf"
for ip in 8.8.8.8 2001:db8::1; do
	"$AMTCA" --home "$H0" issue --fqdn a.example.test --csr "$T/rsa.csr" --ip "$ip" \
		--out "$T/loose.pem" || fail "loosened policy did not issue $ip"
	if openssl verify -verify_ip "$ip" -CAfile "$H0/root.pem" -untrusted "$H0/intermediate.pem" \
		"$T/loose.pem" >"$T/v.out" 2>&1; then
		fail "a leaf for $ip validates under an intermediate with no ranges"
	fi
	grep -q 'excluded subtree violation' "$T/v.out" || fail "$ip: not refused by the constraint: $(cat "$T/v.out")"
done
ok "without --ip-range, IP SANs are refused and the intermediate excludes 0.0.0.0/0 and ::/0"

# --- IPv4 ranges only ------------------------------------------------------------
H4="$T/v4"
new_ca "$H4" --domain example.test --ip-range 10.0.0.0/8 --ip-range 192.168.0.0/16
grep -q '^ip_range = 10.0.0.0/8$' "$H4/amtca.conf" || fail "ip_range not recorded"
"$AMTCA" --home "$H4" issue --fqdn a.example.test --csr "$T/rsa.csr" --ip 10.1.2.3 \
	--ip 192.168.255.1 --out "$T/in.pem"
for ip in 10.1.2.3 192.168.255.1; do
	openssl verify -x509_strict -verify_ip "$ip" -CAfile "$H4/root.pem" -untrusted "$H4/intermediate.pem" \
		"$T/in.pem" >/dev/null || fail "in-range leaf does not verify for $ip"
done
n=$(cert_count "$H4")
expect_fail 1 "IP address 11.0.0.1 is outside this CA's IP ranges (10.0.0.0/8, 192.168.0.0/16)" \
	"$AMTCA" --home "$H4" issue --fqdn a.example.test --csr "$T/rsa.csr" --ip 10.0.0.9 --ip 11.0.0.1
expect_fail 1 "IP address ::ffff:10.0.0.1 is outside" "$AMTCA" --home "$H4" issue \
	--fqdn a.example.test --csr "$T/rsa.csr" --ip ::ffff:10.0.0.1
[ "$(cert_count "$H4")" = "$n" ] || fail "a refused IP left a record"
openssl x509 -in "$H4/intermediate.pem" -noout -text >"$T/inter4.txt"
grep -A8 'Name Constraints: critical' "$T/inter4.txt" | tr -d ' ' >"$T/nc4.txt"
grep -qx 'IP:10.0.0.0/255.0.0.0' "$T/nc4.txt" || fail "10.0.0.0/8 not permitted: $(cat "$T/nc4.txt")"
grep -qx 'IP:192.168.0.0/255.255.0.0' "$T/nc4.txt" || fail "192.168.0.0/16 not permitted: $(cat "$T/nc4.txt")"
grep -qx 'IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0' "$T/nc4.txt" || fail "::/0 not excluded: $(cat "$T/nc4.txt")"
grep -qx 'IP:0.0.0.0/0.0.0.0' "$T/nc4.txt" && fail "IPv4 excluded although it has ranges"
printf 'ip_range = 0.0.0.0/0\nip_range = ::/0\n' >>"$H4/amtca.conf"
for ip in 8.8.8.8 2001:db8::1; do
	"$AMTCA" --home "$H4" issue --fqdn a.example.test --csr "$T/rsa.csr" --ip "$ip" \
		--out "$T/loose4.pem" || fail "loosened policy did not issue $ip"
	if openssl verify -verify_ip "$ip" -CAfile "$H4/root.pem" -untrusted "$H4/intermediate.pem" \
		"$T/loose4.pem" >/dev/null 2>&1; then
		fail "a leaf for $ip outside the ranges validates under the intermediate"
	fi
done
ok "with IPv4 ranges, only addresses inside them are issued or validate; IPv6 is excluded"

# --- the SubjectPublicKeyInfo is canonical ------------------------------------------
# RSA without the NULL parameter: rewrite openssl's CSR and sign it again.
openssl req -in "$T/rsa.csr" -outform DER -out "$T/rsa.der"
der cri-rsa-noparams "$T/rsa.der" "$T/cri.der"
openssl dgst -sha256 -sign "$T/rsa.csr.key" -out "$T/cri.sig" "$T/cri.der"
der assemble "$T/rsa.der" "$T/cri.der" "$T/cri.sig" "$T/rsa-noparams.der"
openssl req -inform DER -in "$T/rsa-noparams.der" -noout -verify 2>&1 | qgrep 'verify OK' ||
	fail "test CSR without RSA NULL parameters does not verify"
cmp -s "$T/rsa.der" "$T/rsa-noparams.der" && fail "test CSR was not rewritten"
"$AMTCA" --home "$H4" issue --fqdn rsa.example.test --csr "$T/rsa-noparams.der" --out "$T/rsa-np.pem"
openssl x509 -in "$T/rsa-np.pem" -outform DER -out "$T/rsa-np.cer"
der spki "$T/rsa-np.cer" "$T/rsa-np.spki"
openssl pkey -in "$T/rsa.csr.key" -pubout -outform DER -out "$T/rsa.spki"
cmp -s "$T/rsa-np.spki" "$T/rsa.spki" || fail "RSA SPKI without NULL parameters was not re-encoded"
ok "an RSA key without NULL parameters is issued with them"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/ec.key" 2>/dev/null
openssl pkey -in "$T/ec.key" -pubout -outform DER -out "$T/ec.spki"
for form in compressed hybrid; do
	openssl ec -in "$T/ec.key" -conv_form "$form" -out "$T/ec-$form.key" 2>/dev/null
	openssl req -new -key "$T/ec-$form.key" -subj /CN=x -outform DER -out "$T/ec-$form.csr"
	openssl req -inform DER -in "$T/ec-$form.csr" -noout -text | grep -A1 'pub:' | tail -1 |
		grep -Eq '^ *0[2367]:' || fail "test CSR does not carry a $form point"
	"$AMTCA" --home "$H4" issue --fqdn ec.example.test --csr "$T/ec-$form.csr" --out "$T/ec-$form.pem"
	openssl x509 -in "$T/ec-$form.pem" -outform DER -out "$T/ec-$form.cer"
	der spki "$T/ec-$form.cer" "$T/ec-$form.spki"
	cmp -s "$T/ec-$form.spki" "$T/ec.spki" || fail "$form EC point was not re-encoded uncompressed"
	openssl verify -x509_strict -CAfile "$H4/root.pem" -untrusted "$H4/intermediate.pem" \
		"$T/ec-$form.pem" >/dev/null || fail "$form EC leaf does not verify"
done
ok "compressed and hybrid EC points are issued uncompressed"

openssl ec -in "$T/ec.key" -param_enc explicit -out "$T/ec-explicit.key" 2>/dev/null
openssl req -new -key "$T/ec-explicit.key" -subj /CN=x -out "$T/ec-explicit.csr"
n=$(cert_count "$H4")
expect_fail 1 "explicit parameters" "$AMTCA" --home "$H4" issue --fqdn ec.example.test \
	--csr "$T/ec-explicit.csr"
[ "$(cert_count "$H4")" = "$n" ] || fail "a refused CSR left a record"
ok "an EC key with explicit curve parameters is refused"
echo "t_ca_policy: all passed"
