#!/usr/bin/env bash
# Promote a released image to production: write DIGEST into the one
# `digest:` line of the production overlay that carries the Flux image
# automation marker, and the image's name (deploy/image.env, its one
# definition) into the `newName:` line right above it; nothing else.
#
#   scripts/promote.sh sha256:<64 hex> [FILE]
#
# FILE defaults to deploy/kustomize/overlays/production/kustomization.yaml.
# Two writers own that line: the promote workflow (.github/workflows/
# promote.yml, which runs this script) and Flux's image automation (which
# finds the line by its `$imagepolicy` marker). Both must touch only the
# value, so that either can run after the other and a review sees a
# one-line diff (two lines when deploy/image.env names another image than
# the overlay, e.g. in a fork that has not run scripts/set-image.sh). Running
# it again with the same digest changes nothing.
#
# Exit codes: 0 done (or already at DIGEST), 2 usage / malformed digest or
# image name, 1 the file does not have exactly one marked digest line with a
# `newName:` line above it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The policy name Flux's ImageUpdateAutomation resolves: namespace:policy:field.
policy=${PROMOTE_IMAGE_POLICY:-flux-system:notes-api:digest}
# It is spliced into a regex below: Kubernetes names and colons only.
[[ $policy =~ ^[a-z0-9-]+:[a-z0-9-]+:(digest|tag|name)$ ]] || { echo "promote: bad PROMOTE_IMAGE_POLICY '$policy'" >&2; exit 2; }

usage() {
  echo "usage: $0 sha256:<64 lowercase hex> [kustomization.yaml]" >&2
  exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
digest=$1
file=${2:-$repo/deploy/kustomize/overlays/production/kustomization.yaml}

# Registries name content by lowercase hex; anything else (a tag, a short
# or uppercase digest, an injected newline) must never reach the overlay.
if ! [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
  echo "promote: not an image digest: '$digest' (want sha256:<64 lowercase hex>)" >&2
  exit 2
fi
[ -f "$file" ] || { echo "promote: no such file: $file" >&2; exit 1; }
image=$(sed -n 's/^NOTES_IMAGE=//p' "$repo/deploy/image.env")
if ! [[ $image =~ ^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$ ]]; then
  echo "promote: deploy/image.env: NOTES_IMAGE '$image' is not a lower-case image name" >&2
  exit 2
fi

# The marked line, split into what is kept (indent + key, the marker
# comment) and the value that is replaced. Written as ERE for [[ =~ ]].
marker="{\"\\\$imagepolicy\": \"$policy\"}"
# shellcheck disable=SC2016  # `$imagepolicy` is the literal marker text
line_re='^([[:space:]]*(-[[:space:]]+)?digest:[[:space:]]*)([^[:space:]#]*)([[:space:]]+#[[:space:]]*\{"\$imagepolicy":[[:space:]]*"'"$policy"'"\}[[:space:]]*)$'

out=$(mktemp "$file.promote.XXXXXX")
trap 'rm -f "$out"' EXIT

mapfile -t lines < "$file"
marked=0 matched=0 current='' at=-1
for i in "${!lines[@]}"; do
  line=${lines[$i]}
  # shellcheck disable=SC2016  # literal marker text, not an expansion
  if [[ $line == *'"$imagepolicy"'* ]]; then
    marked=$((marked + 1))
  fi
  if [[ $line =~ $line_re ]]; then
    matched=$((matched + 1))
    current=${BASH_REMATCH[3]}
    lines[i]="${BASH_REMATCH[1]}$digest${BASH_REMATCH[4]}"
    at=$i
  fi
done
name_re='^([[:space:]]*newName:[[:space:]]*)([^[:space:]#]+)[[:space:]]*$'
if [ "$at" -ge 1 ] && [[ ${lines[$((at - 1))]} =~ $name_re ]]; then
  current_name=${BASH_REMATCH[2]}
  lines[at - 1]="${BASH_REMATCH[1]}$image"
else
  current_name=
fi
printf '%s\n' "${lines[@]}" > "$out"

# Exactly one marked line, and it is the digest line: anything else means
# the file is not what both writers expect, and guessing would be worse.
if [ "$marked" -ne 1 ] || [ "$matched" -ne 1 ]; then
  echo "promote: $file: want exactly one 'digest: sha256:... # $marker' line," \
    "found $matched such line(s) and $marked line(s) with an \$imagepolicy marker" >&2
  exit 1
fi
if [ -z "$current_name" ]; then
  echo "promote: $file: no 'newName:' line right above the marked digest line" >&2
  exit 1
fi

if [ "$current" = "$digest" ] && [ "$current_name" = "$image" ]; then
  echo "promote: $file already at $digest"
  exit 0
fi
# Same mode as the original, then an atomic rename: a reader never sees a
# half-written overlay.
chmod --reference="$file" "$out"
mv "$out" "$file"
trap - EXIT
echo "promote: $file: ${current_name}@${current:-<empty>} -> $image@$digest"
