# Shared by the kit's standalone checks (sourced, not run): the repository
# root as the working directory, and the tools scripts/verify-kit.sh
# installs (KIT_TOOLS_DIR, default ~/.cache/notes-api-kit) first on PATH.
# shellcheck shell=bash
# shellcheck disable=SC2034  # nodedir is for the scripts that source this
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo" || exit 1
tools=${KIT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/notes-api-kit}
nodedir=$tools/node
export PATH="$tools/venv/bin:$PATH"

ok() { printf '  ok: %s\n' "$*"; }
die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
