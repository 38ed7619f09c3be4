#!/usr/bin/env bash
# Fuzzes the query parser (with snippets) and the ingest reader for
# FUZZ_SECONDS each (default 600), both at once, in the debug build of the
# test (tests/fuzz.rs: overflow checks and debug assertions on). A panic
# fails the run and prints the seed to replay
# it with FUZZ_SEED=<seed>. Figures: docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_SECONDS="${FUZZ_SECONDS:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/notes-api/target}"
cargo test --locked --test fuzz -- --nocapture --test-threads 2
