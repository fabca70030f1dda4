"""A next-hop SMTP server for the mail gateway tests (aiosmtpd).

Usage: smtp_sink.py OUT_DIR [--port N] [--host IP] [--fail CODE] [--reject-rcpt TEXT]
                   [--tls-cert PEM --tls-key PEM]

Stores each received message as OUT_DIR/<n>.eml (the bytes exactly as received, after
dot-unstuffing) with OUT_DIR/<n>.json (mail_from, rcpt_tos), each written under a temporary
name and renamed, so a test polling the directory never sees half a file. Prints
"PORT <n>" on stdout once listening. With --fail CODE every message is refused at the end of
DATA with that code (e.g. 550 for a permanent failure); with --reject-rcpt TEXT recipients
containing TEXT are refused at RCPT with 550 5.1.1. With --tls-cert and --tls-key it offers
STARTTLS with that certificate chain (the json then says "tls": true for mail received over
TLS). --host picks the loopback address (default 127.0.0.1). Runs until killed.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, out, fail, reject_rcpt):
        self.out = out
        self.fail = fail
        self.reject_rcpt = reject_rcpt
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_rcpt and self.reject_rcpt in address:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail:
            return f"{self.fail} 5.1.1 sink refuses this message"
        self.n += 1
        base = os.path.join(self.out, f"{self.n:04d}")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None}
        for ext, data in ((".eml", envelope.original_content),
                          (".json", json.dumps(meta).encode())):
            tmp = os.path.join(self.out, f".tmp{ext}")
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, base + ext)
        return "250 2.0.0 stored"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fail", type=int, default=0)
    p.add_argument("--reject-rcpt", default="")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls-cert", default="")
    p.add_argument("--tls-key", default="")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    asyncio.run(serve(a))


async def serve(a):
    sink = Sink(a.out, a.fail, a.reject_rcpt)
    tls = None
    if a.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.tls_cert, a.tls_key)
    # decode_data=False keeps the bytes; enable_SMTPUTF8 accepts UTF-8 addresses.
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(sink, hostname="sink.test", decode_data=False,
                     enable_SMTPUTF8=True, data_size_limit=64 * 1024 * 1024,
                     tls_context=tls),
        host=a.host, port=a.port)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
