#!/usr/bin/env python3
"""LUKS1 and LUKS2 headers with the cheapest key derivation there is (PBKDF2 with one
iteration, Argon2 with one pass over 8 KiB) that the passphrase "fuzz" unlocks, for the
luks_header fuzz target: cryptsetup refuses to write costs this low, and with them a
mutated header reaches the anti-forensic merge and the digest check in microseconds.

    luks_seeds.py OUTDIR

Needs python3 with the `cryptography` package (AES-XTS). Python has no Argon2, so the
area of the Argon2id key slot is random bytes: it is derived, decrypted and merged, and
then fails the digest check.
"""
import base64
import hashlib
import json
import os
import struct
import sys
import uuid

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PASS = b"fuzz"
SECTOR = 512


def rand(n, seed):
    # Reproducible "random" bytes: seeds stay the same from run to run.
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
        i += 1
    return out[:n]


def diffuse(h, d):
    n = hashlib.new(h).digest_size
    out = b""
    for i in range(0, len(d), n):
        chunk = d[i:i + n]
        out += hashlib.new(h, (i // n).to_bytes(4, "big") + chunk).digest()[:len(chunk)]
    return out


def af_split(h, key, stripes, seed):
    d = bytes(len(key))
    split = b""
    for i in range(stripes - 1):
        s = rand(len(key), seed + b"stripe" + i.to_bytes(4, "big"))
        d = bytes(a ^ b for a, b in zip(d, s))
        d = diffuse(h, d)
        split += s
    return split + bytes(a ^ b for a, b in zip(d, key))


def xts_encrypt(key, data):
    data += bytes(-len(data) % SECTOR)
    out = b""
    for n in range(len(data) // SECTOR):
        tweak = n.to_bytes(8, "little") + bytes(8)
        enc = Cipher(algorithms.AES(key), modes.XTS(tweak)).encryptor()
        out += enc.update(data[n * SECTOR:(n + 1) * SECTOR]) + enc.finalize()
    return out


def pbkdf2(h, pw, salt, it, n):
    return hashlib.pbkdf2_hmac(h, pw, salt, it, n)


def luks1(path, key_bytes=32, h="sha256", iterations=1):
    """LUKS1 (aes-xts-plain64): slot 0 opens with PASS; slot 1 is active with a cost
    above the target's limit (skipped)."""
    volume_key = rand(key_bytes, b"luks1 vk")
    salt0 = rand(32, b"luks1 salt0")
    mk_salt = rand(32, b"luks1 mk salt")
    stripes = 4000
    # Key slot areas start on 4 KiB boundaries, as cryptsetup lays them out.
    km_sectors = (key_bytes * stripes + 4095) // 4096 * 8
    km0 = 8
    km1 = km0 + km_sectors
    payload = km1 + km_sectors
    derived = pbkdf2(h, PASS, salt0, iterations, key_bytes)
    area = xts_encrypt(derived, af_split(h, volume_key, stripes, b"luks1"))
    hdr = bytearray(592)
    hdr[0:8] = b"LUKS\xba\xbe\x00\x01"
    hdr[8:40] = b"aes".ljust(32, b"\0")
    hdr[40:72] = b"xts-plain64".ljust(32, b"\0")
    hdr[72:104] = h.encode().ljust(32, b"\0")
    struct.pack_into(">II", hdr, 104, payload, key_bytes)
    hdr[112:132] = pbkdf2(h, volume_key, mk_salt, iterations, 20)
    hdr[132:164] = mk_salt
    struct.pack_into(">I", hdr, 164, iterations)
    hdr[168:208] = str(uuid.UUID(bytes=rand(16, b"luks1 uuid"))).encode().ljust(40, b"\0")
    for i in range(8):
        s = 208 + 48 * i
        active = 0x00AC71F3 if i < 2 else 0x0000DEAD
        it = iterations if i == 0 else 1_000_000
        struct.pack_into(">II", hdr, s, active, it)
        hdr[s + 8:s + 40] = salt0 if i == 0 else rand(32, b"salt%d" % i)
        struct.pack_into(">II", hdr, s + 40, km0 if i == 0 else km1, stripes)
    img = bytearray(payload * SECTOR)
    img[:592] = hdr
    img[km0 * SECTOR:km0 * SECTOR + len(area)] = area
    with open(path, "wb") as f:
        f.write(img)


def luks2(path, stripes=1, key_size=64, kdf="pbkdf2"):
    """LUKS2 with 16 KiB header copies: key slot 0 opens with PASS (`kdf`: pbkdf2 with
    one iteration); key slot 1 is Argon2id at 8 KiB, one pass (derived, then no match);
    the digest uses one PBKDF2 iteration."""
    hdr_size = 0x4000
    area_off = 2 * hdr_size
    volume_key = rand(key_size, b"luks2 vk")
    salt0 = rand(32, b"luks2 salt0")
    split = af_split("sha256", volume_key, stripes, b"luks2")
    derived = pbkdf2("sha256", PASS, salt0, 1, key_size)
    area0 = xts_encrypt(derived, split)
    area1 = rand(len(area0), b"luks2 area1")
    dsalt = rand(32, b"luks2 dsalt")
    b64 = lambda b: base64.b64encode(b).decode()
    area_size = (len(area0) + 4095) // 4096 * 4096
    keyslots_size = 2 * area_size
    data_off = area_off + keyslots_size

    def slot(off, kdf_obj):
        return {
            "type": "luks2", "key_size": key_size,
            "af": {"type": "luks1", "stripes": stripes, "hash": "sha256"},
            "area": {"type": "raw", "offset": str(off), "size": str(area_size),
                     "encryption": "aes-xts-plain64", "key_size": key_size},
            "kdf": kdf_obj,
        }

    meta = {
        "keyslots": {
            "0": slot(area_off, {"type": "pbkdf2", "hash": "sha256", "iterations": 1,
                                 "salt": b64(salt0)}),
            "1": slot(area_off + area_size, {"type": "argon2id", "time": 1, "memory": 8,
                                             "cpus": 1, "salt": b64(rand(32, b"a2"))}),
        },
        "tokens": {},
        "segments": {"0": {"type": "crypt", "offset": str(data_off), "size": "dynamic",
                           "iv_tweak": "0", "encryption": "aes-xts-plain64",
                           "sector_size": 512}},
        "digests": {"0": {"type": "pbkdf2", "keyslots": ["0", "1"], "segments": ["0"],
                          "hash": "sha256", "iterations": 1, "salt": b64(dsalt),
                          "digest": b64(pbkdf2("sha256", volume_key, dsalt, 1, 32))}},
        "config": {"json_size": str(hdr_size - 4096), "keyslots_size": str(keyslots_size)},
    }
    text = json.dumps(meta, separators=(",", ":")).encode()
    img = bytearray(data_off)
    u = str(uuid.UUID(bytes=rand(16, b"luks2 uuid"))).encode()
    for copy, (magic, at) in enumerate([(b"LUKS\xba\xbe", 0), (b"SKUL\xba\xbe", hdr_size)]):
        a = bytearray(hdr_size)
        a[0:8] = magic + b"\x00\x02"
        struct.pack_into(">QQ", a, 8, hdr_size, 1)
        a[72:104] = b"sha256".ljust(32, b"\0")
        a[104:168] = rand(64, b"salt copy %d" % copy)
        a[168:208] = u.ljust(40, b"\0")
        struct.pack_into(">Q", a, 256, at)
        a[4096:4096 + len(text)] = text
        a[448:512] = hashlib.sha256(bytes(a)).digest().ljust(64, b"\0")
        img[at:at + hdr_size] = a
    img[area_off:area_off + len(area0)] = area0
    img[area_off + area_size:area_off + area_size + len(area1)] = area1
    with open(path, "wb") as f:
        f.write(img)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    luks1(os.path.join(out, "cheap-luks1-xts256"), key_bytes=64)
    luks1(os.path.join(out, "cheap-luks1-xts128-sha1"), key_bytes=32, h="sha1")
    luks2(os.path.join(out, "cheap-luks2-1stripe"), stripes=1)
    luks2(os.path.join(out, "cheap-luks2-40stripes"), stripes=40, key_size=32)


if __name__ == "__main__":
    main()
