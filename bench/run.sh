#!/usr/bin/env bash
# notes-api benchmarks: the single entry point.
#
#   bench/run.sh                 # every benchmark (about 30 minutes once built)
#   bench/run.sh search          # one of: healthz ingest search memory startup
#                                #   writes ingest-pg search-pg storage jobs
#                                #   relevance search-tolerant
#   bench/run.sh healthz,startup # several
#   bench/run.sh search-1m       # not in the default set: 1,000,000 notes
#   BENCH_ONLY=memory bench/run.sh
#
# search runs on two corpora: the seeded synthetic one and a real-text one
# made from documents Debian ships (linux-doc, python3-doc, man pages; the
# packages are installed here), split into ~2.5 KB notes
# (bench/target/corpus-real). Its reference is raw tantivy in-process on
# the same notes and queries. search-1m generates 1,000,000 synthetic notes
# (bench/target/corpus-1m, ~1 GB) and ingests them once (data-1m is reused),
# then runs the exact-word mixes and the known-item ones of search-tolerant
# (exact, typo, as-you-type, mixed, suggest; drawn from the 1M notes' own
# titles) against raw tantivy on the service's index files.
#
# ingest-pg and search-pg are ingest and search with the service on the local
# PostgreSQL server (127.0.0.1:5432, databases notes_bench_100k and
# notes_bench_ref, dropped and created by the run). storage uploads and
# downloads attachments through the API and with plain object_store to the
# same store, local files and a real S3 server (s3s-fs on 127.0.0.1:18090);
# every upload goes both as a raw body and as multipart/form-data.
#
# Installs what it needs (wrk; taskset; PostgreSQL and s3s-fs through
# scripts/provision.sh when those benchmarks run), builds the service binary in release
# (into bench/target/service, so the main target dir is never locked) and the
# bench tools (into the same target dir), generates the seeded 100k-note corpus
# (bench/target/corpus, reused when unchanged), then runs the benchmarks with
# a reference measured in the same run for each figure. Everything listens on
# and talks to 127.0.0.1 only; every load run is bounded in time.
#
# Results: bench/results/latest.json (machine-readable, with the exact
# commands) and bench/results/summary.md (the table, also printed).
#
# Knobs (env): BENCH_PIN=0 (no CPU pinning for /healthz), BENCH_HEALTHZ_DURATION,
# BENCH_SEARCH_DURATION, BENCH_SEARCH_AUX_DURATION, BENCH_INGEST_REPS, BENCH_INGEST_PG_REPS (2),
# BENCH_STARTUP_RUNS, BENCH_NOTES_LOG (default warn), BENCH_SKIP_BUILD=1,
# BENCH_TIMEOUT (seconds for the benchmark run, default 2400),
# BENCH_SEARCH_REAL (1: also the real-text corpus), BENCH_WRITES_DURATION (10),
# BENCH_WRITES_SEARCH_CONNECTIONS (4), BENCH_1M_NOTES (1000000),
# BENCH_PG_URL (admin URL, default postgres://postgres:postgres@127.0.0.1:5432/postgres),
# BENCH_STORAGE_BIG_MIB (200), BENCH_STORAGE_MID_MIB (100, uploads only),
# BENCH_STORAGE_SMALL_MIB (16), BENCH_STORAGE_SMALL_COUNT (8), BENCH_STORAGE_REPS (3).
# Each knob is also an option of `notes-bench run` (`notes-bench run --help`
# lists them with their variables and defaults), and every one is recorded
# under "settings" in latest.json.
#
# relevance (issue #22) asks the service (over HTTP, its defaults) and raw
# tantivy (plain BM25; fuzzy/prefix automata) for 300 known items of the
# real-text corpus, their title's two rarest words as typed, with one typo
# and as-you-type: success@10 and MRR per kind. search-tolerant: q/s and
# latency of typo, as-you-type, mixed and suggest queries against raw
# tantivy's FuzzyTermQuery/prefix in-process, and the exact-word search
# mixes on this binary and on BENCH_OLD_SERVICE_BIN (a notes-api binary of
# an earlier commit, e.g. e3e91a1, built by hand from its own worktree).
# BENCH_MEILI_BIN (a Meilisearch binary built outside this repository; see
# docs/performance.md) adds Meilisearch to both as the reference, on
# 127.0.0.1:18700 with its data under bench/target/work/meili-real.
# Knobs: BENCH_RELEVANCE_TARGETS (300), BENCH_TOLERANT_QUERIES (2000).
#
# `jobs` (6–8 minutes on a busy 2 vCPU) needs PostgreSQL and Redis on loopback: it creates
# and drops the database notes_bench_jobs (BENCH_JOBS_PG, default
# postgres://postgres@127.0.0.1:5432, trust auth) and flushes Redis db
# BENCH_JOBS_REDIS_DB (13) of BENCH_JOBS_REDIS (redis://127.0.0.1:6379), and
# uses strace for the SQLite idle count. Knobs: BENCH_JOBS_BACKENDS
# (sqlite,postgres,redis), BENCH_JOBS_COUNT (10000), BENCH_JOBS_CONCURRENCY
# (16), BENCH_JOBS_WORKERS (per worker process, 4), BENCH_JOBS_PACED_RATE
# (50), BENCH_JOBS_PACED_SECS (10), BENCH_JOBS_IDLE_SECS (30).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
only="${1:-${BENCH_ONLY:-all}}"
budget="${BENCH_TIMEOUT:-2400}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: installs the packages that are missing, once.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "bench: installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

apt_install wrk util-linux strace
case "$only" in
  # The real-text corpus: kernel and Python documentation (man pages are
  # already on the machine, under /usr/share/man).
  all | *search* | *relevance*) apt_install linux-doc python3-doc ;;
esac
# shellcheck source=../scripts/provision.sh
source "$root/scripts/provision.sh"
case "$only" in
  all | *-pg* | *jobs*) ensure_postgres ;;
esac
case "$only" in
  all | *jobs*) ensure_redis ;;
esac
case "$only" in
  all | *storage*) ensure_s3s_fs ;;
esac
command -v cargo >/dev/null || {
  echo "bench: cargo is required (rustup); see scripts/provision.sh" >&2
  exit 1
}

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  echo "bench: building notes-api (release) into $here/target/service"
  # The commit goes into the binary (/version), so results name what they measured.
  NOTES_GIT_SHA="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || true)"
  export NOTES_GIT_SHA
  CARGO_TARGET_DIR="$here/target/service" cargo build --release --quiet \
    --manifest-path "$root/Cargo.toml" --bin notes-api
  echo "bench: building the bench tools (release)"
  # The same target dir as the service: the bench links the service's crate
  # and the same dependencies (tantivy, sqlx, ...), which are then built
  # once (the same NOTES_GIT_SHA, or build.rs would rebuild the crate).
  CARGO_TARGET_DIR="$here/target/service" cargo build --release --quiet --manifest-path "$here/Cargo.toml"
fi
tools="$here/target/service/release"

mkdir -p "$here/results" "$here/target/work"
# `timeout` signals its whole process group, so servers started by the run
# are stopped with it if the budget runs out.
timeout --kill-after=30 "$budget" "$tools/notes-bench" run \
  --only "$only" \
  --service-bin "$here/target/service/release/notes-api" \
  --hello-bin "$tools/hello" \
  --corpus "$here/target/corpus" \
  --work "$here/target/work" \
  --lua "$here/lua" \
  --results "$here/results" \
  --source "$root" \
  --timeout "$budget" \
  --skip-build "$([ "${BENCH_SKIP_BUILD:-0}" = 1 ] && echo true || echo false)"
echo "bench: results in $here/results/latest.json and $here/results/summary.md"
