"""An authoritative DNS server on loopback for the sender-authentication tests (dnslib).

Usage: dns_server.py ZONES.json [--port N]

ZONES.json maps owner names to record lists, for example
    {"example.org": [{"type": "TXT", "data": "v=spf1 ip4:127.0.0.1 -all"},
                     {"type": "MX", "data": "mx.example.org", "preference": 10}],
     "mx.example.org": [{"type": "A", "data": "127.0.0.1"}]}
Types: TXT (data is the text; strings longer than 255 bytes are split into several
character-strings, as a zone file would), A, AAAA, MX, CNAME, TLSA (data as in a zone file:
"3 1 1 <hex>"). Names are case-insensitive and
may end with a dot. A name with no records of the asked type is NOERROR with no answer
(NODATA) if it has any records, NXDOMAIN otherwise.

The optional key "$signed" lists zones standing for DNSSEC-signed ones: answers for names in
them (or below) carry the AD flag when the query set DO or AD, as a validating resolver's
would; answers for other names never do. No signatures are served: the gateway trusts the
AD flag of its resolver (docs/mail.md, DANE).

Serves UDP and TCP on the same port (0: any free port) and prints "PORT <n>" on stdout once
both listen. The zone file is re-read on every query, so a test may rewrite it between
steps. Runs until killed.
"""

import argparse
import json
import socketserver
import struct
import sys
import threading

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TLSA, TXT, A, DNSRecord


def load(path):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    return {k.lower().rstrip("."): v for k, v in raw.items() if k != "$signed"}


def signed_zones(path):
    with open(path, encoding="utf-8") as f:
        return [z.lower().rstrip(".") for z in json.load(f).get("$signed", [])]


def rdata(rec):
    t = rec["type"].upper()
    d = rec["data"]
    if t == "TXT":
        b = d.encode("utf-8")
        return QTYPE.TXT, TXT([b[i : i + 255] for i in range(0, len(b), 255)] or [b""])
    if t == "A":
        return QTYPE.A, A(d)
    if t == "AAAA":
        return QTYPE.AAAA, AAAA(d)
    if t == "MX":
        return QTYPE.MX, MX(d, rec.get("preference", 10))
    if t == "CNAME":
        return QTYPE.CNAME, CNAME(d)
    if t == "TLSA":
        u, s, m, h = d.split()
        return QTYPE.TLSA, TLSA(int(u), int(s), int(m), bytes.fromhex(h))
    raise ValueError(f"unsupported record type {t}")


def answer(zones_path, data):
    request = DNSRecord.parse(data)
    reply = request.reply()
    reply.header.aa = 1
    # reply() copies the query's flags; AD is ours to decide (below), never an echo.
    reply.header.ad = 0
    zones = load(zones_path)
    signed = signed_zones(zones_path)
    edns_do = any(r.rtype == QTYPE.OPT and (r.ttl >> 15) & 1 for r in request.ar)
    asked = edns_do or request.header.ad
    for q in request.questions:
        name = str(q.qname).lower().rstrip(".")
        if asked and any(name == z or name.endswith("." + z) for z in signed):
            reply.header.ad = 1
        records = zones.get(name)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            continue
        for rec in records:
            qt, rd = rdata(rec)
            if qt == q.qtype or (qt == QTYPE.CNAME and q.qtype != QTYPE.CNAME):
                reply.add_answer(RR(q.qname, qt, rdata=rd, ttl=rec.get("ttl", 1)))
    return reply.pack()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("zones")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            try:
                sock.sendto(answer(args.zones, data), self.client_address)
            except Exception as e:  # a bad query must not stop the server
                print(f"query failed: {e}", file=sys.stderr, flush=True)

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                while True:
                    head = self.request.recv(2)
                    if len(head) < 2:
                        return
                    (n,) = struct.unpack("!H", head)
                    data = b""
                    while len(data) < n:
                        chunk = self.request.recv(n - len(data))
                        if not chunk:
                            return
                        data += chunk
                    out = answer(args.zones, data)
                    self.request.sendall(struct.pack("!H", len(out)) + out)
            except Exception as e:
                print(f"query failed: {e}", file=sys.stderr, flush=True)

    class ThreadingUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
        daemon_threads = True

    class ThreadingTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True

    # Bind UDP first (port 0 picks one), then TCP on the same number; retry if TCP's is taken.
    for _ in range(50):
        udp = ThreadingUdp(("127.0.0.1", args.port), Udp)
        port = udp.server_address[1]
        try:
            tcp = ThreadingTcp(("127.0.0.1", port), Tcp)
            break
        except OSError:
            udp.server_close()
            if args.port:
                raise
    else:
        raise SystemExit("no port free for both UDP and TCP")
    for s in (udp, tcp):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(f"PORT {port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
