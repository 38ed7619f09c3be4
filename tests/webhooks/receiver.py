"""A webhook receiver for the tests: verifies every delivery with the
`standardwebhooks` library (the specification's reference implementation)
and records it, one JSON line per request, to the file named on the
command line. Prints its port on the first line of stdout.

Paths choose how it answers:
  /ok              200
  /fail/N/KEY      500 for the first N deliveries of KEY, then 200
  /redirect?to=U   302 to U
  /slow            sleeps 3 s, then 200
  /big             200 with a 1 MiB body
Every request is verified with the secret in WEBHOOK_SECRET (and, when
set, WEBHOOK_OLD_SECRET, whose result is recorded as `verified_old`).

usage: WEBHOOK_SECRET=whsec_… python receiver.py RECORD_FILE
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

record_file = sys.argv[1]
counts = {}


def verify(secret, body, headers):
    if not secret:
        return None
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        url = urlparse(self.path)
        entry = {
            "path": url.path,
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signature": headers.get("webhook-signature"),
            "verified": verify(os.environ.get("WEBHOOK_SECRET"), body, headers),
            "verified_old": verify(os.environ.get("WEBHOOK_OLD_SECRET"), body, headers),
            "body": body.decode("utf-8", "replace"),
        }
        with open(record_file, "a") as f:
            f.write(json.dumps(entry) + "\n")
        parts = url.path.strip("/").split("/")
        if parts[0] == "fail":
            key = parts[2] if len(parts) > 2 else ""
            counts[key] = counts.get(key, 0) + 1
            status = 500 if counts[key] <= int(parts[1]) else 200
            self.answer(status, b"nope" if status == 500 else b"ok")
        elif parts[0] == "redirect":
            self.send_response(302)
            self.send_header("location", parse_qs(url.query)["to"][0])
            self.send_header("content-length", "0")
            self.end_headers()
        elif parts[0] == "slow":
            time.sleep(3)
            self.answer(200, b"late")
        elif parts[0] == "big":
            self.answer(200, b"x" * (1024 * 1024))
        else:
            self.answer(200, b"ok")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
