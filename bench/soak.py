#!/usr/bin/env python3
"""Soak: a mixed load at 80 % of the capacity measured in the same run.

    python3 bench/soak.py --binary PATH [--seconds 600] [--threads 8]

Starts the service (development mode, SQLite, a fresh data directory),
seeds 2,000 notes, then
  1. capacity: the mix closed-loop on --threads threads for 20 s;
  2. soak: the same mix paced at 80 % of that rate for --seconds.
The mix: search (40 %), get a note (20 %), list notes (10 %), update a
note (10 %), create a note and delete it (5 %), upload a 4 KiB attachment
and delete it (5 %), upsert a 20-note batch by external id (5 %), submit a
ping job (5 %). Every write replaces or removes what it adds, so the data
stays the same size and a growing RSS means the process, not the data,
grows. An error is any status other than the expected 2xx, or a failed
connection. RSS (VmRSS, and its anonymous part RssAnon, from /proc) is
sampled every second. Pass: 0 errors, and the mean RSS of the last minute
within 10 % of the mean of the second minute. Results:
bench/results/soak.json (with the mean RSS of every minute), and the
server's log beside it (soak.server.log).
"""

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

WORDS = "platypus echidna wombat quokka numbat dingo kookaburra wallaby bilby possum".split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                res = self.conn.getresponse()
                data = res.read()
                return res.status, data
            except (ConnectionError, http.client.HTTPException, socket.timeout, OSError):
                # A keep-alive connection the server closed when idle: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    return None, b""
        return None, b""


def note_body(rng, i):
    words = " ".join(rng.choice(WORDS) for _ in range(60))
    return {"title": f"soak {i} {rng.choice(WORDS)}", "body": words, "tags": [rng.choice(WORDS)]}


SPANS = {
    None: (0.0, 1.0),
    "reads": (0.0, 0.70),
    "writes": (0.70, 1.0),
    "update": (0.70, 0.80),
    "create": (0.80, 0.85),
    "upload": (0.85, 0.90),
    "ingest": (0.90, 0.95),
    "job": (0.95, 1.0),
}


class Mix:
    def __init__(self, port, seed_ids, only=None):
        self.port = port
        self.ids = list(seed_ids)
        self.lock = threading.Lock()
        # --only reads / writes: the share of the mix to draw from, to tell
        # which half a finding belongs to.
        # One write alone (update, create, upload, ingest, job) tells which
        # write a finding belongs to.
        self.span = SPANS[only]

    def one(self, client, rng):
        lo, hi = self.span
        r = lo + rng.random() * (hi - lo)
        if r < 0.40:
            q = rng.choice(WORDS)
            return client.request("GET", f"/api/v1/search?q={q}&limit=10"), (200,)
        if r < 0.60:
            with self.lock:
                nid = rng.choice(self.ids)
            return client.request("GET", f"/api/v1/notes/{nid}"), (200,)
        if r < 0.70:
            return client.request("GET", "/api/v1/notes?limit=20"), (200,)
        if r < 0.80:
            with self.lock:
                nid = rng.choice(self.ids)
            body = json.dumps({"body": " ".join(rng.choice(WORDS) for _ in range(60))})
            return client.request("PATCH", f"/api/v1/notes/{nid}", body,
                                  {"content-type": "application/merge-patch+json"}), (200,)
        if r < 0.85:
            body = json.dumps(note_body(rng, rng.randrange(10**9)))
            (status, data) = client.request("POST", "/api/v1/notes", body, {"content-type": "application/json"})
            if status != 201:
                return (status, data), (201,)
            nid = json.loads(data)["id"]
            return client.request("DELETE", f"/api/v1/notes/{nid}"), (204,)
        if r < 0.90:
            with self.lock:
                nid = rng.choice(self.ids)
            (status, data) = client.request(
                "POST", f"/api/v1/notes/{nid}/attachments?filename=soak.bin", os.urandom(4096),
                {"content-type": "application/octet-stream"},
            )
            if status != 201:
                return (status, data), (201,)
            aid = json.loads(data)["id"]
            return client.request("DELETE", f"/api/v1/attachments/{aid}"), (204,)
        if r < 0.95:
            start = rng.randrange(0, 1980)
            lines = "".join(
                json.dumps(dict(note_body(rng, i), external_id=f"soak-{i}")) + "\n"
                for i in range(start, start + 20)
            )
            return client.request("POST", "/api/v1/ingest", lines, {"content-type": "application/x-ndjson"}), (200,)
        return client.request("POST", "/api/v1/jobs", json.dumps({"kind": "ping"}), {"content-type": "application/json"}), (202,)


def rss_kib(pid):
    """(VmRSS, RssAnon) in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                out[key] = int(value.split()[0])
    return out.get("VmRSS", 0), out.get("RssAnon", 0)


def run(mix, threads, seconds, rate=None):
    """Runs the mix; paced at `rate` requests/s in all when given."""
    stop = time.monotonic() + seconds
    counts = {"ok": 0, "errors": 0}
    errors = []
    lock = threading.Lock()

    def worker(n):
        rng = random.Random(n)
        client = Client(mix.port)
        interval = threads / rate if rate else 0
        next_at = time.monotonic() + rng.random() * interval
        while time.monotonic() < stop:
            if rate:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at += interval
            (status, data), expected = mix.one(client, rng)
            with lock:
                if status in expected:
                    counts["ok"] += 1
                else:
                    counts["errors"] += 1
                    if len(errors) < 20:
                        errors.append(f"{status}: {data[:200]!r}")

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--out", default="bench/results/soak.json")
    ap.add_argument("--only", choices=[k for k in SPANS if k], help="only this part of the mix")
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="notes-soak-")
    port = free_port()
    env = dict(os.environ, NOTES_LISTEN=f"127.0.0.1:{port}", NOTES_DATA_DIR=data, NOTES_LOG="warn")
    # The server's log (warnings and errors) is kept beside the results, so
    # an error the load saw can be traced to its cause.
    log_path = os.path.splitext(args.out)[0] + ".server.log"
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    log = open(log_path, "w")
    server = subprocess.Popen([args.binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = Client(port)
        for _ in range(200):
            status, _ = client.request("GET", "/readyz")
            if status == 200:
                break
            time.sleep(0.1)
        rng = random.Random(1)
        lines = "".join(json.dumps(dict(note_body(rng, i), external_id=f"soak-{i}")) + "\n" for i in range(2000))
        status, _ = client.request("POST", "/api/v1/ingest", lines, {"content-type": "application/x-ndjson"})
        assert status == 200, status
        status, page = client.request("GET", "/api/v1/notes?limit=100")
        ids = [n["id"] for n in json.loads(page)["items"]]
        mix = Mix(port, ids, args.only)

        counts, errors = run(mix, args.threads, 20)
        capacity = counts["ok"] / 20
        target = 0.8 * capacity
        print(f"capacity: {capacity:.0f} req/s closed-loop on {args.threads} threads "
              f"({counts['errors']} errors); soaking at {target:.0f} req/s for {args.seconds} s", flush=True)

        samples = []
        sampling = True

        def sample():
            start = time.monotonic()
            while sampling:
                samples.append((time.monotonic() - start, rss_kib(server.pid)))
                time.sleep(1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        soak, soak_errors = run(mix, args.threads, args.seconds, rate=target)
        elapsed = time.monotonic() - started
        sampling = False
        sampler.join()

        def mean(lo, hi, which=0):
            xs = [kib[which] for t, kib in samples if lo <= t < hi]
            return sum(xs) / len(xs) / 1024 if xs else 0.0

        second = mean(60, 120)
        last = mean(args.seconds - 60, args.seconds)
        anon_second = mean(60, 120, 1)
        anon_last = mean(args.seconds - 60, args.seconds, 1)
        result = {
            "binary": args.binary,
            "threads": args.threads,
            "capacity_rps": round(capacity, 1),
            "target_rps": round(target, 1),
            "achieved_rps": round(soak["ok"] / elapsed, 1),
            "seconds": args.seconds,
            "requests": soak["ok"] + soak["errors"],
            "errors": soak["errors"],
            "error_samples": soak_errors,
            "rss_mib_second_minute": round(second, 1),
            "rss_mib_last_minute": round(last, 1),
            "rss_mib_peak": round(max(k[0] for _, k in samples) / 1024, 1),
            "rss_anon_mib_second_minute": round(anon_second, 1),
            "rss_anon_mib_last_minute": round(anon_last, 1),
            "rss_ratio_last_to_second": round(last / second, 3) if second else None,
            # Mean RSS of each minute: whether a growth levels off.
            "rss_mib_by_minute": [round(mean(m * 60, (m + 1) * 60), 1) for m in range(args.seconds // 60)],
            "server_log": log_path,
        }
        result["pass"] = result["errors"] == 0 and second > 0 and abs(last / second - 1) <= 0.10
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result, indent=2))
        return 0 if result["pass"] else 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
