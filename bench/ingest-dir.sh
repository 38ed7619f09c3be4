#!/usr/bin/env bash
# Ingests a corpus over HTTP into a fresh data dir, as `notes-bench run`
# does on first use (same marker, so a later bench/run.sh reuses the dir):
#
#   bench/ingest-dir.sh BIN CORPUS_DIR DATA_DIR
#
# e.g. the old binary on the real-text corpus:
#   bench/ingest-dir.sh /work/old-target/release/notes-api \
#     bench/target/corpus-real bench/target/work/data-100k-real-old
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin=$1 corpus=$2 data=$3
tools="$here/target/service/release"
rm -rf "$data"
mkdir -p "$data"
NOTES_LISTEN=127.0.0.1:18080 NOTES_DATA_DIR="$data" NOTES_LOG=warn "$bin" serve >"$data.ingest.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  curl -fsS http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
"$tools/notes-bench" http-ingest --addr 127.0.0.1:18080 "$corpus"/batch-*.ndjson
# The marker notes-bench writes: the corpus's params as compact JSON.
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["params"], separators=(",", ":"), sort_keys=True), end="")' \
  "$corpus/corpus.json" >"$data/.complete"
