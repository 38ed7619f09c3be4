# SQLite commit cost of synchronous=NORMAL vs FULL in WAL mode, on this
# machine's disk: one-row transactions and 1,000-row batches of 2 KB rows.
# Run: python3 bench/sqlite_sync.py  (figures in docs/reliability.md)
import sqlite3, time, os, sys
def run(mode, n=2000, batch=1):
    path=f"/tmp/notes-sync-{mode}.db"
    for suffix in ("", "-wal", "-shm"):
        try: os.remove(path+suffix)
        except FileNotFoundError: pass
    c=sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL"); c.execute(f"PRAGMA synchronous={mode}")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT)")
    body="x"*2000
    t=time.perf_counter()
    for i in range(n//batch):
        c.execute("BEGIN")
        for j in range(batch): c.execute("INSERT INTO t(body) VALUES (?)",(body,))
        c.execute("COMMIT")
    dt=time.perf_counter()-t
    c.close()
    for suffix in ("", "-wal", "-shm"):
        try: os.remove(path+suffix)
        except FileNotFoundError: pass
    return (n//batch)/dt, n/dt
for batch in (1, 1000):
    for mode in ("NORMAL","FULL"):
        tx, rows = run(mode, n=4000 if batch==1 else 200000, batch=batch)
        print(f"batch={batch:5d} {mode:6s}: {tx:9.0f} commits/s {rows:10.0f} rows/s")
