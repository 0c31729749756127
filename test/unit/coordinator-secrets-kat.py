#!/usr/bin/python3
# Independent known-answer vectors for coordinator/secrets.c (ATTESTATION.md 8), computed with
# hashlib/hmac only: HKDF-SHA256 (RFC 5869), det-keygen P-384 and the P-384 public point. The
# output is pasted into test/unit/test-coordinator-secrets.c; rerun to check it.
import hashlib
import hmac

P = 2**384 - 2**128 - 2**96 + 2**32 - 1
N = int("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16)
A = P - 3
GX = int("aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7", 16)
GY = int("3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f", 16)


def hkdf(ikm, salt, info, length=64):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def det_keygen(s):
    pers = b"det ECDSA key gen P-384"
    h = lambda k, m: hmac.new(k, m, hashlib.sha256).digest()
    k, v = b"\x00" * 32, b"\x01" * 32
    k = h(k, v + b"\x00" + s + pers)
    v = h(k, v)
    k = h(k, v + b"\x01" + s + pers)
    v = h(k, v)
    v1 = h(k, v)
    v2 = h(k, v1)
    d = int.from_bytes((v1 + v2)[:48], "big")
    assert 0 < d < N
    return d


def add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return (x3, (lam * (x1 - x3) - y1) % P)


def mul(d):
    r, q = None, (GX, GY)
    while d:
        if d & 1:
            r = add(r, q)
        q = add(q, q)
        d >>= 1
    return r


def hx(b):
    return b.hex()


seed = bytes(range(64))
salt = bytes(range(0x80, 0xA0))
print("seed", hx(seed))
print("salt", hx(salt))
pod = hkdf(seed, salt, b"POD STATE SECRET")
print("pod_state", hx(pod))
print("history", hx(hkdf(seed, salt, b"HISTORY SECRET")))
for label in ("TRANSACTION SIGNING SECRET", "ROOT CA SEED"):
    s = hkdf(seed, salt, label.encode())
    d = det_keygen(s)
    x, y = mul(d)
    print(label, "okm", hx(s))
    print(label, "d", "%096x" % d)
    print(label, "pub", "04%096x%096x" % (x, y))
print("workload web", hx(hkdf(pod, salt, b"WORKLOAD SECRET ID: apps/v1/Deployment/default/web")))
print("workload empty-id", hx(hkdf(pod, salt, b"WORKLOAD SECRET ID: ")))
s = bytes([0xA5] * 64)
print("detkeygen a5", "%096x" % det_keygen(s))
