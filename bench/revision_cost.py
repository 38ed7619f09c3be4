#!/usr/bin/env python3
"""What a revision costs on SQLite: PATCH one 10 KB note N times through a
running dev server and compare the database's used pages before and after.

    NOTES_DATA_DIR=/tmp/revcost NOTES_LISTEN=127.0.0.1:8931 notes-api serve &
    python3 bench/revision_cost.py http://127.0.0.1:8931 /tmp/revcost/notes.db 200
"""
import json
import random
import sqlite3
import string
import sys
import urllib.request

base, db, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(25)
words = ["".join(random.choice(string.ascii_lowercase) for _ in range(random.randint(2, 9)))
         for _ in range(3000)]


def text(n=10240):
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(random.choice(words))
    return " ".join(out)[:n]


def call(method, path, body):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def used_bytes():
    c = sqlite3.connect(db)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = c.execute("PRAGMA page_size").fetchone()[0]
    used = (c.execute("PRAGMA page_count").fetchone()[0]
            - c.execute("PRAGMA freelist_count").fetchone()[0]) * page
    c.close()
    return used


note = call("POST", "/api/v1/notes", {"title": "cost", "body": text()})
before = used_bytes()
for _ in range(rounds):
    call("PATCH", "/api/v1/notes/" + note["id"], {"body": text()})
after = used_bytes()
print(json.dumps({"revisions": rounds, "body_bytes": 10240,
                  "bytes_per_revision": round((after - before) / rounds)}))
