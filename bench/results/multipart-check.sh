#!/usr/bin/env bash
# Multipart uploads against raw ones outside the benchmark (issue #20); the
# output is multipart-check.txt. Needs the release binaries `bench/run.sh`
# builds, the benchmark's blob files (bench/target/work/storage), curl,
# s3s-fs, perf and python3. Uses ports 18180 (service) and 18190 (s3s-fs).
#
# 1. The default upload limit (no NOTES_MAX_UPLOAD_BYTES, 100 MiB): a fresh
#    service per upload, one upload by curl, the service's VmRSS peak
#    sampled every 5 ms minus its idle RSS. `curl -F` (multipart) against
#    `curl -T` (the raw body, streamed as well), 100 MiB, on local files and
#    on S3; and 100 MiB + 1 byte, which must be refused.
# 2. The service's CPU for 5 x 200 MiB uploads of each form (perf stat on
#    the service's pid), and where it goes (perf record, by library).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$here/target/service/release"
blobs="$here/target/work/storage"
work="$(mktemp -d /tmp/multipart-check.XXXX)"
trap 'kill "$s3" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/s3/notes"
s3s-fs --host 127.0.0.1 --port 18190 --access-key k --secret-key s "$work/s3" >"$work/s3.log" 2>&1 &
s3=$!

# serve STORE [ENV...]: a fresh service in the background; sets $pid and $note.
serve() {
  local store=$1 d
  shift
  d="$(mktemp -d "$work/run.XXXX")"
  local env=(NOTES_LISTEN=127.0.0.1:18180 "NOTES_DATA_DIR=$d" NOTES_LOG=warn "$@")
  if [ "$store" = s3 ]; then
    env+=(NOTES_STORAGE_URL=s3://notes NOTES_S3_ENDPOINT=http://127.0.0.1:18190
      NOTES_S3_ACCESS_KEY_ID=k NOTES_S3_SECRET_ACCESS_KEY=s)
  else
    env+=("NOTES_STORAGE_URL=file://$d/files")
  fi
  env "${env[@]}" "$bin/notes-api" serve >"$d/log" 2>&1 &
  pid=$!
  until curl -sf 127.0.0.1:18180/readyz >/dev/null; do sleep 0.05; done
  note="$(curl -s -X POST 127.0.0.1:18180/api/v1/notes -H 'content-type: application/json' \
    -d '{"title":"multipart check"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
}

stop() {
  kill "$pid"
  wait "$pid" || true
}

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# upload FORM FILE: one upload by curl; prints the status and the body.
upload() {
  local url="127.0.0.1:18180/api/v1/notes/$note/attachments"
  if [ "$1" = multipart ]; then
    curl -s -w ' HTTP %{http_code}' -F "file=@$2" "$url"
  else
    curl -s -w ' HTTP %{http_code}' -X POST -T "$2" "$url?filename=$(basename "$2")"
  fi
}

# fresh FORM FILE STORE: one upload on a fresh service at the default limit.
fresh() {
  serve "$3"
  sleep 1
  local idle peak out t0 t1
  idle="$(rss "$pid")"
  : >"$work/sampling"
  python3 - "$pid" "$work/sampling" >"$work/peak" <<'PY' &
import os, sys, time
pid, flag = sys.argv[1], sys.argv[2]
peak = 0
while True:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            peak = max(peak, int(line.split()[1]))
    if not os.path.exists(flag + ".ready"):
        open(flag + ".ready", "w").close()
    if not os.path.exists(flag):
        break
    time.sleep(0.005)
print(peak)
PY
  local sampler=$!
  until [ -e "$work/sampling.ready" ]; do sleep 0.01; done
  t0="$(date +%s.%N)"
  out="$(upload "$1" "$2")"
  t1="$(date +%s.%N)"
  rm "$work/sampling"
  wait "$sampler"
  rm -f "$work/sampling.ready"
  peak="$(cat "$work/peak")"
  stop
  printf '%-9s %-5s %9s bytes: HTTP %s in %.2f s; RSS idle %6d kB, peak %6d kB, added %5.1f MB\n' \
    "$1" "$3" "$(stat -c %s "$2")" "${out##* HTTP }" "$(echo "$t1 - $t0" | bc)" \
    "$idle" "$peak" "$(echo "($peak - $idle) * 1024 / 1000000" | bc -l)"
}

big="$blobs/blob-200mib.bin"
mid="$blobs/blob-100mib.bin"
over="$work/over.bin"
{
  cat "$mid"
  printf x
} >"$over"

echo "== 1. default upload limit, a fresh service per upload (load: $(cut -d' ' -f1-3 /proc/loadavg))"
fresh multipart "$over" file
fresh raw "$over" file
for store in file s3; do
  for _ in 1 2 3 4; do
    fresh raw "$mid" "$store"
    fresh multipart "$mid" "$store"
  done
done

echo
echo "== 2. service CPU, 5 x 200 MiB per form, local files, NOTES_MAX_UPLOAD_BYTES=201 MiB (load: $(cut -d' ' -f1-3 /proc/loadavg))"
serve file NOTES_MAX_UPLOAD_BYTES=$((201 << 20))
export bin note
five() {
  for _ in 1 2 3 4 5; do
    id="$("$bin/notes-bench" storage-http --addr 127.0.0.1:18180 --op upload --note "$note" \
      --file "$1" --count 1 --form "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ids"][0])')"
    "$bin/notes-bench" storage-http --addr 127.0.0.1:18180 --op delete --ids "$id" >/dev/null
  done
}
export -f five
for round in 1 2; do
  for form in raw multipart; do
    perf stat -e task-clock,context-switches,page-faults -p "$pid" -o "$work/stat" -- bash -c "five $big $form"
    echo "round $round, $form: $(grep -E 'task-clock|context-switches|page-faults' "$work/stat" | awk '{printf "%s %s, ", $1, $2}')"
  done
done
for form in raw multipart; do
  perf record -q -F 999 -p "$pid" -o "$work/perf-$form" -- bash -c "five $big $form" 2>/dev/null
  echo "-- perf record, $form: share of samples by library, and memmove"
  perf report -q -i "$work/perf-$form" --sort dso --stdio 2>/dev/null | head -3
  perf report -q -i "$work/perf-$form" --sort sym --stdio 2>/dev/null | grep -E 'memmove|memcpy' | head -2 || true
done
stop
