# shellcheck shell=bash
# Sourced by the scripts that test a built binary from outside
# (schemathesis.sh, admin-browser.sh): starts it in production mode on a
# free loopback port, SQLite in a temporary directory, a random master key
# and no rate limit, waits until it is ready, and stops it (and removes
# the directory) when the calling script exits.
#
# usage: start_test_server BINARY [NAME=VALUE ...]   (extra settings)
# sets:  dir (the temporary directory), key, port, server (its pid)
start_test_server() {
  local binary=$1
  shift
  dir=$(mktemp -d)
  key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  env NOTES_ENV=production NOTES_MASTER_KEY="$key" NOTES_RATE_LIMIT=0 NOTES_DATA_DIR="$dir/data" \
    NOTES_LISTEN="127.0.0.1:$port" NOTES_LOG=warn "$@" "$binary" serve >"$dir/server.log" 2>&1 &
  server=$!
  trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not become ready:" >&2
  tail -n 30 "$dir/server.log" >&2
  return 1
}
