#!/usr/bin/env bash
# The whole test suite. Provisions what it needs on a fresh Debian machine
# (idempotently), then runs format and lint checks and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/provision.sh
. scripts/provision.sh

step() { printf '\n==> %s\n' "$*"; }

step "provision"
ensure_rust
ensure_postgres

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test (SQLite)"
cargo test --locked --no-fail-fast

# The same API suite again, every test on a fresh PostgreSQL database.
step "cargo test --test api (PostgreSQL)"
TEST_DATABASE_URL="$PG_URL" cargo test --locked --no-fail-fast --test api

echo
echo "all checks passed"
