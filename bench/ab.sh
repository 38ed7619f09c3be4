#!/usr/bin/env bash
# A/B of two notes-api binaries on the same query files, interleaved.
#
#   bench/ab.sh A_BIN A_DATA B_BIN B_DATA FILE.paths...
#
# Starts A on 127.0.0.1:18081 and B on 127.0.0.1:18082 (each on its own
# data dir, which must already hold the notes: the data dirs `bench/run.sh`
# leaves, e.g. bench/target/work/data-real and data-real-old, copied so
# neither run rewrites them), then for each file runs wrk against A, B, A,
# B (BENCH_AB_ROUNDS rounds, BENCH_AB_SECS seconds each, 8 connections,
# bench/lua/search.lua) so both binaries see the same machine within the
# same minute. Prints one line per file: median q/s and p99 of each, and
# B/A. This machine is shared and noisy: only ratios of one run mean
# anything. Stops both servers on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ "$#" -ge 5 ] || {
  sed -n '2,14p' "$0"
  exit 2
}
a_bin=$1 a_data=$2 b_bin=$3 b_data=$4
shift 4
rounds=${BENCH_AB_ROUNDS:-2}
secs=${BENCH_AB_SECS:-6}
conns=${BENCH_AB_CONNECTIONS:-8}
# shellcheck source=bench/serve.sh
. "$here/serve.sh"
trap stop_servers EXIT
serve_ready "$a_bin" "$a_data" 18081 "$a_data.ab.log"
serve_ready "$b_bin" "$b_data" 18082 "$b_data.ab.log"

# run PORT FILE SECS: prints "q/s p99_ms"
run() {
  wrk -t2 -c"$conns" -d"$3"s --latency --timeout 10s -s "$here/lua/search.lua" \
    "http://127.0.0.1:$1/" -- "$2" | sed -n 's/^BENCH_JSON //p' |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.0f %.2f" % (j["requests"]/(j["duration_us"]/1e6), j["latency_us"]["p99"]/1000))'
}
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)  A=$a_bin  B=$b_bin  ${rounds}x${secs}s, $conns connections"
for file in "$@"; do
  run 18081 "$file" 2 >/dev/null
  run 18082 "$file" 2 >/dev/null
  : >/tmp/ab.$$.a
  : >/tmp/ab.$$.b
  for _ in $(seq "$rounds"); do
    run 18081 "$file" "$secs" >>/tmp/ab.$$.a
    run 18082 "$file" "$secs" >>/tmp/ab.$$.b
  done
  aq=$(cut -d' ' -f1 /tmp/ab.$$.a | median) ap=$(cut -d' ' -f2 /tmp/ab.$$.a | median)
  bq=$(cut -d' ' -f1 /tmp/ab.$$.b | median) bp=$(cut -d' ' -f2 /tmp/ab.$$.b | median)
  printf '%-40s A %6s q/s p99 %7s ms | B %6s q/s p99 %7s ms | B/A %s\n' "$(basename "$file")" \
    "$aq" "$ap" "$bq" "$bp" "$(awk -v a="$aq" -v b="$bq" 'BEGIN {printf "%.2f", b/a}')"
  rm -f /tmp/ab.$$.a /tmp/ab.$$.b
done
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
