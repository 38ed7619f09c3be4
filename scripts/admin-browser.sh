#!/usr/bin/env bash
# The admin UI in a real browser: starts the built binary in production
# mode (SQLite in a temporary directory, a random master key, jobs with a
# single attempt so one dies at once), then runs tests/admin/browser.cjs in
# headless Chromium with playwright-core and axe-core. Screenshots of every
# page go to $ADMIN_SHOTS (default target/admin-screenshots), kept as CI
# artifacts. Used by scripts/test.sh after provisioning (ensure_browser).
#
# usage: scripts/admin-browser.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$1
: "${NODE_PATH:?run scripts/provision.sh ensure_browser first}"
shots=${ADMIN_SHOTS:-$PWD/target/admin-screenshots}
rm -rf "$shots"

dir=$(mktemp -d)
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NOTES_ENV=production NOTES_MASTER_KEY="$key" NOTES_RATE_LIMIT=0 NOTES_DATA_DIR="$dir/data" \
  NOTES_JOB_MAX_ATTEMPTS=1 NOTES_BACKUP_DESTINATIONS="$dir" \
  NOTES_LISTEN="127.0.0.1:$port" NOTES_LOG=warn "$binary" serve >"$dir/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
  sleep 0.1
done

# localhost, not 127.0.0.1: Chromium keeps a Secure cookie from
# http://localhost (a secure context), which is what production sends.
BASE="http://localhost:$port" MASTER="$key" BLOCKER="$dir/blocker" SHOTS="$shots" \
  CHROMIUM="${CHROMIUM:-/usr/bin/chromium}" node tests/admin/browser.cjs ||
  { echo "--- server log"; tail -n 50 "$dir/server.log"; exit 1; }
