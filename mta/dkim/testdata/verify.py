"""Verifies the DKIM signatures of a message with dkimpy, asking the DNS
server at 127.0.0.1:PORT for keys. Used by interop_test.go.

usage: python3 verify.py PORT FILE
prints one "signature a=ALGO d=DOMAIN s=SELECTOR result=pass|fail detail=..."
line per signature.
"""
import sys

import dkim
import dns.resolver

port, path = int(sys.argv[1]), sys.argv[2]
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = port


def lookup_txt(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode("ascii")
    try:
        answer = resolver.resolve(name, "TXT", lifetime=timeout)
    except dns.resolver.NXDOMAIN:
        return None
    return b"".join(answer[0].strings)


with open(path, "rb") as f:
    message = f.read()

d = dkim.DKIM(message, minkey=1024)
count = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
for i in range(count):
    detail = ""
    try:
        ok = d.verify(idx=i, dnsfunc=lookup_txt)
    except dkim.DKIMException as e:  # dkimpy raises on some failures
        ok, detail = False, str(e)
    f = d.signature_fields
    print("signature a=%s d=%s s=%s result=%s detail=%s" % (
        f.get(b"a", b"").decode(), f.get(b"d", b"").decode(),
        f.get(b"s", b"").decode(), "pass" if ok else "fail", detail))
