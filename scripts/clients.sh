#!/usr/bin/env bash
# Client generation from the served spec: starts the built binary (as
# scripts/test-server.sh does for schemathesis), generates a Python client
# with openapi-python-client and TypeScript types with openapi-typescript
# from its /openapi.json, and fails when either generator leaves a schema or
# an operation out (tests/clients/generator_warnings.py). Then the Python
# client works against the server (tests/clients/python_client.py) and a
# TypeScript file written against the types compiles with `tsc --strict`
# (tests/clients/typescript/check.ts), the `eventsource` npm package
# follows the change stream (tests/clients/eventsource.mjs), and the
# `standardwebhooks` npm package verifies webhook deliveries
# (tests/clients/webhook.mjs). Generated code goes to $CLIENTS_OUT
# (default target/clients), never into the tree. Used by scripts/test.sh
# after provisioning (ensure_clients).
#
# usage: scripts/clients.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$1
: "${CLIENTS_VENV:?run scripts/provision.sh ensure_clients first}"
: "${CLIENTS_NPM:?run scripts/provision.sh ensure_clients first}"
out=${CLIENTS_OUT:-$PWD/target/clients}
rm -rf "$out"
mkdir -p "$out/python" "$out/typescript"
python=$CLIENTS_VENV/bin/python

# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
# Webhook receivers in these tests listen on loopback.
start_test_server "$binary" NOTES_WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8
curl -fsS "http://127.0.0.1:$port/openapi.json" -o "$out/openapi.json"

# The generator formats its output with ruff, which its venv carries.
echo "openapi-python-client: $out/python/notes_api_client"
PATH="$CLIENTS_VENV/bin:$PATH" openapi-python-client generate --path "$out/openapi.json" \
  --config tests/clients/python_generator.yaml \
  --output-path "$out/python/notes_api_client" --meta none >"$out/python.log" 2>&1 ||
  { cat "$out/python.log"; exit 1; }
"$python" tests/clients/generator_warnings.py python "$out/python.log"

echo "openapi-typescript: $out/typescript/notes-api.d.ts"
"$CLIENTS_NPM/node_modules/.bin/openapi-typescript" "$out/openapi.json" \
  -o "$out/typescript/notes-api.d.ts" >"$out/typescript.log" 2>&1 ||
  { cat "$out/typescript.log"; exit 1; }
"$python" tests/clients/generator_warnings.py typescript "$out/typescript.log"

BASE="http://127.0.0.1:$port" KEY=$key PYTHONPATH="$out/python" "$python" tests/clients/python_client.py ||
  { echo "--- server log"; tail -n 50 "$dir/server.log"; exit 1; }

# A real EventSource client follows the change stream.
BASE="http://127.0.0.1:$port" KEY=$key CLIENTS_NPM=$CLIENTS_NPM node tests/clients/eventsource.mjs ||
  { echo "--- server log"; tail -n 50 "$dir/server.log"; exit 1; }

# A webhook receiver verifies every delivery with the npm reference library.
BASE="http://127.0.0.1:$port" KEY=$key CLIENTS_NPM=$CLIENTS_NPM node tests/clients/webhook.mjs ||
  { echo "--- server log"; tail -n 50 "$dir/server.log"; exit 1; }

# The generated file and the one written against it, compiled together.
cp tests/clients/typescript/check.ts "$out/typescript/"
"$CLIENTS_NPM/node_modules/.bin/tsc" --noEmit --strict --target es2022 --module esnext \
  --moduleResolution bundler "$out/typescript/check.ts"
echo "typescript: the generated types compile with check.ts"
