#!/usr/bin/env python3
"""Verify `amtca audit export` output with nothing of amtca's: hashlib for
the chain, the openssl command for the seals' signatures (docs/audit.md).

usage: audit_verify.py EXPORT.jsonl AUDIT-PUBKEY.pem
Exit 0 and "ok: N entries, M seals" when the chain and every seal verify;
else exit 1 with one line naming the first problem.
"""
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile


def field(s):
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def entry_hash(e, prev):
    return hashlib.sha256(
        prev + struct.pack(">QQ", e["seq"], e["time"] & (2**64 - 1))
        + field(e["actor"]) + field(e["action"])
        + field(e["subject"]) + field(e["detail"])).digest()


def seal_ok(pubkey, digest, sig):
    with tempfile.TemporaryDirectory() as d:
        msg, sgn = os.path.join(d, "msg"), os.path.join(d, "sig")
        open(msg, "wb").write(digest)
        open(sgn, "wb").write(sig)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pubkey,
                            "-signature", sgn, msg], capture_output=True)
        return r.returncode == 0


def main(export, pubkey):
    prev, want, hashes, seals = bytes(32), 1, {}, 0
    for n, line in enumerate(open(export, encoding="utf-8"), 1):
        o = json.loads(line)
        if "seal" in o:
            h = bytes.fromhex(o["hash"])
            if hashes.get(o["seal"]) != h:
                return "line %d: seal of entry %d names a hash the chain does not have" % (n, o["seal"])
            if not seal_ok(pubkey, h, base64.b64decode(o["signature"])):
                return "line %d: seal of entry %d: bad signature" % (n, o["seal"])
            seals += 1
            continue
        if o["seq"] != want:
            return "line %d: entry %d where %d was due" % (n, o["seq"], want)
        if bytes.fromhex(o["prev"]) != prev:
            return "entry %d: prev is not entry %d's hash" % (want, want - 1)
        h = entry_hash(o, prev)
        if h.hex() != o["hash"]:
            return "entry %d: hash mismatch" % want
        hashes[want], prev, want = h, h, want + 1
    return "ok: %d entries, %d seals" % (want - 1, seals)


if __name__ == "__main__":
    msg = main(sys.argv[1], sys.argv[2])
    print(msg)
    sys.exit(0 if msg.startswith("ok:") else 1)
