#!/usr/bin/env python3
"""Latency of each query alone, one connection, no concurrency: the first
time the server sees it (cold: nothing about it remembered) and again.

    python3 bench/one_at_a_time.py HOST:PORT FILE.paths [--slowest N]

FILE.paths holds one request path per line (the files `bench/run.sh`
writes for wrk). The server should have answered some other queries first
(its lexicon is built on the first search): e.g. run the script once on
another mix. Prints p50/p90/p99/max of the first pass and of the second,
then the N slowest queries of the first pass.
"""

import argparse
import http.client
import json
import time
import urllib.parse


def percentiles(ms):
    ms = sorted(ms)
    n = len(ms)
    at = lambda q: ms[min(n - 1, int(n * q))]
    return "p50 %.2f p90 %.2f p99 %.2f max %.2f ms" % (at(0.5), at(0.9), at(0.99), ms[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("paths")
    ap.add_argument("--slowest", type=int, default=10)
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    paths = [l.strip() for l in open(a.paths) if l.strip()]
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    passes = []
    for _ in range(2):
        took = []
        for p in paths:
            t = time.perf_counter()
            conn.request("GET", p)
            r = conn.getresponse()
            body = r.read()
            took.append(((time.perf_counter() - t) * 1000, p, r.status, body))
        passes.append(took)
    for name, took in zip(["cold", "again"], passes):
        bad = sum(1 for t in took if t[2] != 200)
        print("%-5s %s (%d queries, %d not 200)" % (name, percentiles([t[0] for t in took]), len(took), bad))
    for ms, p, status, body in sorted(passes[0], key=lambda t: t[0])[-a.slowest:]:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(p).query).get("q", [""])[0]
        total = json.loads(body).get("total") if status == 200 else None
        print("  %.2f ms  total=%s  %s" % (ms, total, q))


if __name__ == "__main__":
    main()
