#!/usr/bin/env bash
# Spec conformance: starts the built binary in production mode (SQLite in a
# temporary directory, a random master key, no rate limit) and runs
# schemathesis against its /openapi.json with every check. Fails on any
# failure. Used by scripts/test.sh after provisioning ($SCHEMATHESIS).
#
# usage: scripts/schemathesis.sh BINARY [EXAMPLES_PER_OPERATION]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$1
examples=${2:-30}
schemathesis=${SCHEMATHESIS:?run scripts/provision.sh ensure_schemathesis first}

dir=$(mktemp -d)
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NOTES_ENV=production NOTES_MASTER_KEY="$key" NOTES_RATE_LIMIT=0 NOTES_DATA_DIR="$dir" \
  NOTES_LISTEN="127.0.0.1:$port" NOTES_LOG=warn "$binary" serve >"$dir/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
  sleep 0.1
done

# The config file sits beside the tests; the key reaches schemathesis
# through the environment, never the command line.
export NOTES_SCHEMATHESIS_KEY=$key
# The NDJSON serializer for POST /api/v1/ingest (tests/schemathesis/hooks.py).
export PYTHONPATH=tests/schemathesis SCHEMATHESIS_HOOKS=hooks
"$schemathesis" --config-file tests/schemathesis/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
  --checks all -n "$examples" --workers 2 --seed "${SCHEMATHESIS_SEED:-1}" --no-color
