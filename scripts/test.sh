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

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked --no-fail-fast

echo
echo "all checks passed"
