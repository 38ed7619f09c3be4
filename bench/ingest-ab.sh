#!/usr/bin/env bash
# Ingest A/B of two or more notes-api binaries, interleaved.
#
#   bench/ingest-ab.sh sqlite|pg CORPUS_DIR BIN...
#
# For each of BENCH_AB_ROUNDS rounds (default 3), each binary in turn
# ingests the corpus's batch-*.ndjson over HTTP (`notes-bench
# http-ingest`, searchable on return) into an empty service: a fresh data
# dir, and with `pg` a freshly created database (BENCH_AB_PG, default
# postgres://postgres@127.0.0.1:5432, database notes_ingest_ab). So every
# binary sees the machine of the same minute. Prints notes/s per run, then
# each binary's median and its ratio to the first binary's median.
# BENCH_AB_PG_LOG=1 also logs every statement's duration in that database
# (log_min_duration_statement = 0) into PostgreSQL's own log, to compare
# where the time goes; the server's log is then read by the caller.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ "$#" -ge 3 ] || {
  sed -n '2,15p' "$0"
  exit 2
}
backend=$1 corpus=$2
shift 2
bins=("$@")
rounds=${BENCH_AB_ROUNDS:-3}
pg=${BENCH_AB_PG:-postgres://postgres@127.0.0.1:5432}
db=notes_ingest_ab
work=$(mktemp -d "${TMPDIR:-/tmp}/ingest-ab.XXXXXX")
tools="$here/target/service/release"
# shellcheck source=bench/serve.sh
. "$here/serve.sh"
trap 'stop_servers; rm -rf "$work"' EXIT

# one BIN: sets `rate` to the notes/s of one ingest into an empty service.
# Not in a subshell, so that stop_servers sees the server it started.
one() {
  local data="$work/data"
  rm -rf "$data"
  mkdir -p "$data"
  if [ "$backend" = pg ]; then
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    if [ "${BENCH_AB_PG_LOG:-0}" = 1 ]; then
      psql -q "$pg/postgres" -c "ALTER DATABASE $db SET log_min_duration_statement = 0"
    fi
    export NOTES_DATABASE_URL="$pg/$db"
  fi
  serve_ready "$1" "$data" 18083 "$work/serve.log"
  "$tools/notes-bench" http-ingest --addr 127.0.0.1:18083 "$corpus"/batch-*.ndjson >"$work/out.json"
  rate=$(python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["notes_per_s"])' "$work/out.json")
  stop_servers
  pids=()
}

declare -A runs
for r in $(seq "$rounds"); do
  for i in "${!bins[@]}"; do
    one "${bins[$i]}"
    runs[$i]="${runs[$i]:-} $rate"
    echo "round $r ${bins[$i]}: $rate notes/s"
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
first=$(echo "${runs[0]}" | median)
for i in "${!bins[@]}"; do
  m=$(echo "${runs[$i]}" | median)
  awk -v b="${bins[$i]}" -v m="$m" -v f="$first" -v r="${runs[$i]}" \
    'BEGIN { printf "%s: median %s notes/s (runs:%s), %.3f of the first\n", b, m, r, m / f }'
done
