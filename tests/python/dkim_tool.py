"""An independent DKIM implementation (dkimpy) for the sender-authentication tests.

Usage:
    dkim_tool.py sign KEY.pem DOMAIN SELECTOR < message > signed
    dkim_tool.py verify DNS_PORT [INDEX] < message
    dkim_tool.py arc-seal KEY.pem DOMAIN SELECTOR SRV_ID < message > sealed

`sign` adds a DKIM-Signature (relaxed/relaxed; From, To, Subject, Date, Message-ID) made with
KEY.pem: an RSA key (PKCS#1 or PKCS#8 PEM) signs rsa-sha256, an Ed25519 key (PKCS#8 PEM)
ed25519-sha256. `verify` checks the signature number INDEX (default 0, the topmost) with
`dkim.verify`'s machinery, looking the key up over UDP at 127.0.0.1:DNS_PORT (the test DNS
server), and prints "PASS" (exit 0) or "FAIL <reason>" (exit 1). `arc-seal` adds the next
ARC set (RSA-SHA256) as a forwarder would, its ARC-Authentication-Results copied from the
message's Authentication-Results of SRV_ID.
"""

import base64
import sys

import dkim
import dns.resolver

HEADERS = [b"From", b"To", b"Subject", b"Date", b"Message-ID"]


def pem_der(pem):
    lines = [l for l in pem.strip().splitlines() if not l.startswith(b"-----")]
    return base64.b64decode(b"".join(lines))


def sign(key_path, domain, selector):
    pem = open(key_path, "rb").read()
    msg = sys.stdin.buffer.read()
    if b"RSA PRIVATE KEY" in pem:
        key, alg = pem, b"rsa-sha256"
    else:
        der = pem_der(pem)
        # PKCS#8 Ed25519: OID 1.3.101.112 (06 03 2B 65 70), the 32-byte seed at the end.
        if b"\x06\x03\x2b\x65\x70" in der[:20]:
            key, alg = base64.b64encode(der[-32:]), b"ed25519-sha256"
        else:
            key, alg = pem, b"rsa-sha256"
    sig = dkim.sign(
        msg,
        selector.encode(),
        domain.encode(),
        key,
        include_headers=HEADERS,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=alg,
    )
    sys.stdout.buffer.write(sig + msg)


def arc_seal(key_path, domain, selector, srv_id):
    pem = open(key_path, "rb").read()
    msg = sys.stdin.buffer.read()
    sealed = dkim.arc_sign(msg, selector.encode(), domain.encode(), pem, srv_id.encode())
    sys.stdout.buffer.write(b"".join(sealed) + msg)


def verify(port, index):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = int(port)

    def txt(name, timeout=5):
        try:
            ans = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except Exception:
            return None
        return b"".join(list(ans.rrset.items)[0].strings)

    msg = sys.stdin.buffer.read()
    d = dkim.DKIM(msg)
    try:
        ok = d.verify(idx=index, dnsfunc=txt)
    except dkim.DKIMException as e:
        print(f"FAIL {e}")
        sys.exit(1)
    if ok:
        print("PASS")
    else:
        print("FAIL signature did not verify")
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "sign":
        sign(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 6 and sys.argv[1] == "arc-seal":
        arc_seal(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif len(sys.argv) >= 3 and sys.argv[1] == "verify":
        verify(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    else:
        sys.exit(__doc__)
