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
# shellcheck source=bench/serve.sh
. "$here/serve.sh"
trap stop_servers EXIT
serve_ready "$bin" "$data" 18083 "$data.rel.log"
"$here/target/service/release/notes-bench" relevance --corpus "$here/target/corpus-real" \
  --addr 127.0.0.1:18083 --targets 300 |
  python3 -c '
import json, sys
j = json.load(sys.stdin)
for name, e in j["engines"].items():
    print(name, " ".join("%s %.3f/%.3f" % (k, e[k]["success_at_10"], e[k]["mrr"]) for k in ("exact", "typo", "typing") if k in e))
' 2>/dev/null || true
