#!/usr/bin/env bash
# Known-item relevance of one notes-api binary on a data dir holding the
# real-text corpus (the service only: no tantivy or Meilisearch reference),
# for checking a change before a full `bench/run.sh relevance`:
#
#   bench/relevance-one.sh BIN DATA_DIR
#
# Prints success@10 / MRR per kind (exact, typo, as-you-type), 300 targets.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin=$1 data=$2
NOTES_LISTEN=127.0.0.1:18083 NOTES_DATA_DIR="$data" NOTES_LOG=warn "$bin" serve >"$data.rel.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  curl -fsS http://127.0.0.1:18083/readyz >/dev/null 2>&1 && break
  sleep 0.5
done
"$here/target/service/release/notes-bench" relevance --corpus "$here/target/corpus-real" \
  --addr 127.0.0.1:18083 --targets 300 |
  python3 -c '
import json, sys
j = json.load(sys.stdin)
for name, e in j["engines"].items():
    print(name, " ".join("%s %.3f/%.3f" % (k, e[k]["success_at_10"], e[k]["mrr"]) for k in ("exact", "typo", "typing") if k in e))
' 2>/dev/null || true
