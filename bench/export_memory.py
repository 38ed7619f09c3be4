#!/usr/bin/env python3
"""Export memory at size (issue #26): peak RSS of an export of N notes with
about 1 GiB of attachments, through the API and from the command line,
against the same process's idle RSS and a `backup` of the same data.

    python3 bench/export_memory.py BIN WORKDIR [--notes 100000] \\
        [--attachments 256] [--attachment-mib 4] [--port 18095]

Makes WORKDIR/data (reused when it already holds the notes), then:
1. the server's VmRSS idle, and its peak (VmHWM, reset through
   /proc/PID/clear_refs before each) while it streams GET /api/v1/export
   (markdown, then ndjson) to a client reading as fast as it can;
2. the peak RSS (wait4's ru_maxrss) of `notes-api export --to X.zip` in
   both formats, and of `notes-api backup` as the reference.
Prints one JSON object.
"""
import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("bin")
p.add_argument("workdir")
p.add_argument("--notes", type=int, default=100_000)
p.add_argument("--attachments", type=int, default=256)
p.add_argument("--attachment-mib", type=int, default=4)
p.add_argument("--port", type=int, default=18095)
a = p.parse_args()

data = os.path.join(a.workdir, "data")
os.makedirs(data, exist_ok=True)
base = f"http://127.0.0.1:{a.port}"
env = dict(os.environ, NOTES_DATA_DIR=data, NOTES_LISTEN=f"127.0.0.1:{a.port}",
           NOTES_LOG="warn", NOTES_MAX_UPLOAD_BYTES=str(64 << 20))
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
         "zulu wombat cube river stone cloud paper garden window").split()


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024  # MiB
    return out


def get_json(path):
    return json.load(urllib.request.urlopen(base + path))


def start():
    proc = subprocess.Popen([a.bin, "serve"], env=env, stdout=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if urllib.request.urlopen(base + "/readyz").status == 200:
                return proc
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("the server never became ready")


def fill():
    """N notes by ingest, then the attachments on the first notes; once
    (a marker file says it was done)."""
    marker = os.path.join(a.workdir, f"filled-{a.notes}-{a.attachments}x{a.attachment_mib}")
    if os.path.exists(marker):
        return
    rnd = random.Random(26)
    for start_at in range(0, a.notes, 5000):
        lines = []
        for i in range(start_at, min(start_at + 5000, a.notes)):
            body = " ".join(rnd.choice(WORDS) for _ in range(80))
            lines.append(json.dumps({
                "title": f"note {i} {rnd.choice(WORDS)}",
                "body": body,
                "tags": [rnd.choice(WORDS[:8])],
                "external_id": f"mem:{i}",
            }))
        req = urllib.request.Request(base + "/api/v1/ingest", method="POST",
                                     data=("\n".join(lines) + "\n").encode(),
                                     headers={"content-type": "application/x-ndjson"})
        urllib.request.urlopen(req).read()
    notes = get_json(f"/api/v1/notes?limit={min(a.attachments, 100)}")["items"]
    size = a.attachment_mib << 20
    blob = os.urandom(size)
    for i in range(a.attachments):
        note = notes[i % len(notes)]["id"]
        # Each object differs (its first bytes), so none is deduplicated.
        body = i.to_bytes(8, "big") + blob[8:]
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=120)
        conn.request("POST", f"/api/v1/notes/{note}/attachments?filename=blob{i}.bin", body=body,
                     headers={"content-type": "application/octet-stream"})
        res = conn.getresponse()
        res.read()
        if res.status != 201:
            raise SystemExit(f"upload {i}: {res.status}")
        conn.close()
    open(marker, "w").close()


def http_export(pid, fmt):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = status(pid)
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=600)
    conn.request("GET", f"/api/v1/export?format={fmt}")
    res = conn.getresponse()
    total = 0
    while chunk := res.read(1 << 20):
        total += len(chunk)
    took = time.monotonic() - t0
    after = status(pid)
    return {"format": fmt, "status": res.status, "bytes": total, "seconds": round(took, 1),
            "mib_per_s": round(total / (1 << 20) / took, 1),
            "rss_before_mib": before["VmRSS"], "peak_rss_mib": after["VmHWM"],
            "rss_after_mib": after["VmRSS"]}


def cli(args):
    t0 = time.monotonic()
    proc = subprocess.Popen([a.bin, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, code, usage = os.wait4(proc.pid, 0)
    if code != 0:
        raise SystemExit(f"{args}: exit {code}")
    return {"command": " ".join(["notes-api", *args]), "seconds": round(time.monotonic() - t0, 1),
            "peak_rss_mib": usage.ru_maxrss // 1024, "report": json.loads(out)}


server = start()
try:
    fill()
    time.sleep(2)
    idle = status(server.pid)
    http = [http_export(server.pid, f) for f in ("markdown", "ndjson")]
finally:
    server.terminate()
    server.wait()

out_dir = os.path.join(a.workdir, "out")
subprocess.run(["rm", "-rf", out_dir], check=True)
os.makedirs(out_dir)
cli_runs = []
for fmt in ("markdown", "ndjson"):
    r = cli(["export", "--format", fmt, "--to", os.path.join(out_dir, f"{fmt}.zip")])
    r["zip_bytes"] = os.path.getsize(os.path.join(out_dir, f"{fmt}.zip"))
    r["report"] = {k: r["report"][k] for k in ("notes", "attachments", "attachment_bytes")}
    cli_runs.append(r)
backup = cli(["backup", "--to", os.path.join(out_dir, "backups")])
backup["report"] = backup["report"].get("counts")
subprocess.run(["rm", "-rf", out_dir], check=True)

print(json.dumps({
    "binary": a.bin, "notes": a.notes,
    "attachments": a.attachments, "attachment_mib_each": a.attachment_mib,
    "server_idle_rss_mib": idle["VmRSS"], "http_exports": http,
    "cli_exports": cli_runs, "cli_backup_reference": backup,
    "load": os.getloadavg(),
}, indent=2))
