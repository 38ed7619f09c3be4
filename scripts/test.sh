#!/usr/bin/env bash
# The whole test suite. Provisions what it needs on a fresh Debian machine
# (idempotently), then runs format and lint checks, every test on SQLite
# (with the Store and Queue contract suites on every backend), the API
# suite on PostgreSQL + S3 and with the Redis queue, schemathesis against
# the served spec, clients generated from it, and the deployment kit's
# verification.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/provision.sh
. scripts/provision.sh

step() { printf '\n==> %s\n' "$*"; }

step "provision"
ensure_rust
ensure_postgres
ensure_redis
ensure_s3s_fs
ensure_bugsink
ensure_schemathesis
ensure_clients
ensure_webhook_receiver
ensure_browser

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

# Every test target: the API suite on SQLite, and the contract suites
# (tests/contract) on every backend, which need both servers.
# BUGSINK_* (from ensure_bugsink) point the error-tracking test at Bugsink.
step "cargo test (SQLite; contract suites on SQLite, PostgreSQL and Redis)"
TEST_REQUIRE_SERVERS=1 TEST_PG_URL="$PG_URL" TEST_REDIS_URL="$REDIS_URL" \
  cargo test --locked --no-fail-fast

# The same API suite again: every test on a fresh PostgreSQL database, with
# attachments on a real S3 server (s3s-fs) started per test.
# At debug level into one file, which is then scanned for every secret the
# suite uses (master key, API keys, S3 secret, database password).
step "cargo test --test api (PostgreSQL + S3), logs scanned for secrets"
api_log=$(mktemp)
TEST_LOG_FILE="$api_log" RUST_LOG="debug,tantivy=info" \
  TEST_DATABASE_URL="$PG_URL" TEST_STORAGE=s3 cargo test --locked --no-fail-fast --test api
./scripts/scan-logs.sh "$api_log"
rm -f "$api_log"

# And with jobs queued in Redis (the database stays SQLite): every queue
# semantics test runs on the third backend.
step "cargo test --test api (Redis queue)"
TEST_QUEUE=redis TEST_REDIS_URL="$REDIS_URL" cargo test --locked --no-fail-fast --test api

# Spec conformance: schemathesis with every check against the served
# /openapi.json, in production mode with a key (tests/schemathesis/).
step "schemathesis (production mode, every check)"
cargo build --locked --bin notes-api
./scripts/schemathesis.sh "${CARGO_TARGET_DIR:-target}/debug/notes-api"

# Client generation: a Python client and TypeScript types generated from
# the served /openapi.json, nothing left out, the client used against the
# server and the types compiled (tests/clients/).
step "client generation (openapi-python-client, openapi-typescript)"
./scripts/clients.sh "${CARGO_TARGET_DIR:-target}/debug/notes-api"

# The admin UI in headless Chromium (playwright-core), axe-core on every
# page; screenshots in target/admin-screenshots (tests/admin/).
step "admin UI in Chromium"
./scripts/admin-browser.sh "${CARGO_TARGET_DIR:-target}/debug/notes-api"

# The deployment kit: renders, schemas, policy, linters, and a live smoke
# test of the rendered dev overlay in podman (scripts/verify-kit.sh).
step "deployment kit"
./scripts/verify-kit.sh

echo
echo "all checks passed"
