#!/usr/bin/env python3
"""A third-party CloudEvents receiver for passport's end-to-end tests: the PyPI `cloudevents`
package (2.2.0) parses every POST (structured or binary mode, as any CloudEvents consumer would);
each event is appended to a file as one JSON line {"attributes": {...}, "data": ...}.

  receiver.py --port PORT --out events.jsonl [--expect-authorization VALUE]
              [--tls-cert server.pem --tls-key server.key] [--status-file PATH]
              [--refuse-file PATH]

Control: POST /control?status=503 makes it answer 503 to every event (nothing recorded) until
POST /control?status=200; GET /control tells the current mode. While --status-file exists, the
status code it holds overrides that (handy over TLS). While --refuse-file exists, events whose
`subject` is one of its lines get 500 (a record this sink chokes on). Anything it cannot parse gets 400; a wrong
Authorization header gets 401.
"""

import argparse
import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

try:  # cloudevents 2.x
    from cloudevents.v1.http import from_http
except ImportError:  # 1.x
    from cloudevents.http import from_http

STATE = {"status": 200}
LOCK = threading.Lock()


def current_status(status_file):
    if status_file and os.path.exists(status_file):
        try:
            with open(status_file, encoding="utf-8") as f:
                return int(f.read().strip() or "503")
        except (OSError, ValueError):
            return 503
    with LOCK:
        return STATE["status"]


def refused_subjects(refuse_file):
    if not refuse_file:
        return set()
    try:
        with open(refuse_file, encoding="utf-8") as f:
            return {line.strip() for line in f if line.strip()}
    except OSError:
        return set()


def make_handler(out_path, expect_authorization, status_file, refuse_file):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("receiver: " + (fmt % args) + "\n")

        def reply(self, code, body=b""):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if urlparse(self.path).path == "/control":
                self.reply(200, json.dumps(STATE).encode())
            else:
                self.reply(404)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            url = urlparse(self.path)
            if url.path == "/control":
                status = int(parse_qs(url.query).get("status", ["200"])[0])
                with LOCK:
                    STATE["status"] = status
                self.reply(200, json.dumps(STATE).encode())
                return
            status = current_status(status_file)
            if status != 200:
                self.reply(status, b"told to fail")
                return
            if expect_authorization is not None and self.headers.get("Authorization") != expect_authorization:
                self.reply(401, b"bad authorization")
                return
            try:
                event = from_http(dict(self.headers.items()), body)
            except Exception as err:  # noqa: BLE001 - any parse failure is the sender's fault
                self.reply(400, f"not a CloudEvent: {err}".encode())
                return
            if event["subject"] in refused_subjects(refuse_file):
                self.reply(500, b"refused subject")
                return
            record = {
                "attributes": dict(event.get_attributes()),
                "data": event.get_data(),
                "contentType": self.headers.get("Content-Type"),
            }
            line = json.dumps(record, sort_keys=True, default=str)
            with LOCK, open(out_path, "a", encoding="utf-8") as out:
                out.write(line + "\n")
                out.flush()
            self.reply(200)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--expect-authorization")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--status-file")
    parser.add_argument("--refuse-file")
    args = parser.parse_args()
    handler = make_handler(args.out, args.expect_authorization, args.status_file, args.refuse_file)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
