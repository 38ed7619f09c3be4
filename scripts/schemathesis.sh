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

# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
start_test_server "$binary"

# The config file sits beside the tests; the key reaches schemathesis
# through the environment, never the command line.
export NOTES_SCHEMATHESIS_KEY=$key
# The NDJSON serializer for POST /api/v1/ingest (tests/schemathesis/hooks.py).
export PYTHONPATH=tests/schemathesis SCHEMATHESIS_HOOKS=hooks
"$schemathesis" --config-file tests/schemathesis/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
  --checks all -n "$examples" --workers 2 --seed "${SCHEMATHESIS_SEED:-1}" --no-color
