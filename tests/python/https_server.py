"""A static HTTPS server on loopback for the MTA-STS tests (crates/caldicott-mail/tests/tls_policy.rs).

Usage: https_server.py ROOT --host IP --port N --cert PEM --key PEM

Serves the files under ROOT (GET only) over TLS with the given certificate chain: a file
ROOT/.well-known/mta-sts.txt is answered `200` as text/plain; a missing file `404`; a file
whose name ends in `.redirect` holding a URL answers the path without that suffix with a
`301` to it (to show redirects are refused). Prints "PORT <n>" once listening; runs until
killed.
"""

import argparse
import http.server
import os
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args()
    root = os.path.abspath(a.root)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = os.path.normpath(os.path.join(root, self.path.split("?")[0].lstrip("/")))
            if not path.startswith(root):
                return self.send_error(403)
            if os.path.isfile(path + ".redirect"):
                with open(path + ".redirect", encoding="utf-8") as f:
                    target = f.read().strip()
                self.send_response(301)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not os.path.isfile(path):
                return self.send_error(404)
            with open(path, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((a.host, a.port), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
