# shellcheck shell=bash
# Sourced by the bench scripts: starts a notes-api binary on a data dir and
# waits until it is ready. The caller kills the pids in `pids` on exit.
#
# serve_ready BIN DATA PORT LOG: the server's log goes to LOG.
pids=()
serve_ready() {
  NOTES_LISTEN="127.0.0.1:$3" NOTES_DATA_DIR="$2" NOTES_LOG=warn "$1" serve >"$4" 2>&1 &
  pids+=("$!")
  local _
  for _ in $(seq 600); do
    if curl -fsS "http://127.0.0.1:$3/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "$1 on :$3 not ready (log: $4)" >&2
  exit 1
}
stop_servers() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
