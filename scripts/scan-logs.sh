#!/usr/bin/env bash
# Fails when a log file holds a secret the API suite used: the master key,
# a whole API key, the S3 secret key, or a database URL with its password.
# scripts/test.sh runs the API suite at debug level into a file, then this.
set -euo pipefail
log=${1:?usage: scan-logs.sh LOGFILE}
cd "$(dirname "$0")/.."
[ -s "$log" ] || { echo "scan-logs: $log is empty: the suite wrote no log" >&2; exit 1; }
master=$(sed -n 's/^pub const MASTER: &str = "\(.*\)";$/\1/p' tests/api/common.rs)
[ -n "$master" ] || { echo "scan-logs: cannot read MASTER from tests/api/common.rs" >&2; exit 1; }
found=0
check() { # NAME PATTERN (grep -E)
  local n
  n=$(grep -cE -- "$2" "$log" || true)
  if [ "$n" -gt 0 ]; then
    echo "scan-logs: $1 appears on $n log line(s), e.g.:" >&2
    grep -m 3 -E -- "$2" "$log" | cut -c1-300 >&2
    found=1
  fi
}
check "the master key" "$(printf '%s' "$master" | sed 's/[.[\*^$()+?{|]/\\&/g')"
check "an API key" 'nk_[0-9a-f]{64}'
check "the S3 secret key" 'test-secret'
check "a database password in a URL" 'postgres://[^:/@ ]+:[^@ ]+@'
lines=$(wc -l < "$log")
if [ "$found" -ne 0 ]; then exit 1; fi
echo "scan-logs: $lines log lines, no secret found"
