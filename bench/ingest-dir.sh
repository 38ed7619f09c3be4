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
# shellcheck source=bench/serve.sh
. "$here/serve.sh"
trap stop_servers EXIT
serve_ready "$bin" "$data" 18080 "$data.ingest.log"
"$tools/notes-bench" http-ingest --addr 127.0.0.1:18080 "$corpus"/batch-*.ndjson
# The marker notes-bench writes: the corpus's params as compact JSON.
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["params"], separators=(",", ":"), sort_keys=True), end="")' \
  "$corpus/corpus.json" >"$data/.complete"
