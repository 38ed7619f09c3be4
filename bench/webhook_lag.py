#!/usr/bin/env python3
"""Webhook delivery lag and memory under writes (issue #24).

Starts a receiver on loopback, creates a webhook for every event on a
running notes-api (development mode, NOTES_WEBHOOK_ALLOW_NETWORKS covering
127.0.0.0/8), makes N note writes from C client threads, and reports, for
each write, the time from its answer to its delivery's arrival (p50, p99,
max), and the server's RSS before and after (VmRSS, VmHWM). With --no-hook
the same writes run without a webhook: the RSS difference between the two
runs is what webhooks cost.

    NOTES_DATA_DIR=/tmp/wh NOTES_LISTEN=127.0.0.1:8932 \\
      NOTES_WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8 notes-api serve &
    python3 bench/webhook_lag.py http://127.0.0.1:8932 $! 1000 4
"""
import json
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = [a for a in sys.argv[1:] if not a.startswith("--")]
base, pid, n, clients = args[0], int(args[1]), int(args[2]), int(args[3])
hooked = "--no-hook" not in sys.argv

arrived = {}
lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        now = time.monotonic()
        event = json.loads(body)
        note = event.get("data", {}).get("note_id")
        with lock:
            arrived.setdefault(note, now)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def call(method, path, body):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def rss():
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields["VmRSS"], fields["VmHWM"]


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
if hooked:
    call("POST", "/api/v1/webhooks",
         {"url": f"http://127.0.0.1:{server.server_address[1]}/in", "events": ["note.created"]})
# Warm up: the first writes pay for pools, caches and the index writer.
for i in range(20):
    call("POST", "/api/v1/notes", {"title": f"warm {i}", "body": "warm-up"})
time.sleep(2)
before = rss()
returned = {}
sent = {}


def write(i):
    start = time.monotonic()
    note = call("POST", "/api/v1/notes", {"title": f"note {i}", "body": f"body of note {i} " * 20})
    returned[note["id"]] = time.monotonic()
    sent[note["id"]] = start


started = time.monotonic()
with ThreadPoolExecutor(clients) as pool:
    list(pool.map(write, range(n)))
elapsed = time.monotonic() - started
if hooked:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if all(k in arrived for k in returned):
                break
        time.sleep(0.05)
after = rss()
print(f"{n} writes from {clients} clients in {elapsed:.1f} s ({n / elapsed:.0f} writes/s)")
print(f"RSS before {before[0]}, after {after[0]}, peak {after[1]}")
if hooked:
    def report(label, since):
        lags = sorted((arrived[k] - t) * 1000 for k, t in since.items() if k in arrived)
        pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
        print(f"  lag from the write's {label}, ms: p50 {pick(0.5):.0f}, p99 {pick(0.99):.0f}, "
              f"max {lags[-1]:.0f}")
    missing = sum(1 for k in returned if k not in arrived)
    print(f"delivered {len(returned) - missing} of {len(returned)} (missing {missing})")
    # A write answers once it is searchable; its delivery often arrives
    # before that answer (a negative lag from the answer).
    report("request", sent)
    report("answer", returned)
