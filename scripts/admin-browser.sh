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

# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
# One attempt, so the backup the test blocks dies at once; backups may go
# anywhere under the temporary directories (the blocker is in one).
start_test_server "$binary" NOTES_JOB_MAX_ATTEMPTS=1 NOTES_BACKUP_DESTINATIONS="${TMPDIR:-/tmp}"

# localhost, not 127.0.0.1: Chromium keeps a Secure cookie from
# http://localhost (a secure context), which is what production sends.
BASE="http://localhost:$port" MASTER="$key" BLOCKER="$dir/blocker" SHOTS="$shots" \
  CHROMIUM="${CHROMIUM:-/usr/bin/chromium}" node tests/admin/browser.cjs ||
  { echo "--- server log"; tail -n 50 "$dir/server.log"; exit 1; }
