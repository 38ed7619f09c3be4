#!/usr/bin/env bash
# Set the container image's name: deploy/image.env (its one definition) and
# every copy of it the engines read without a build step: the `newName:` of
# the notes-api entry in each overlay's `images:` and the `image:` of Flux's
# ImageRepository; and Renovate's rule that leaves the image alone. For a fork (docs/release.md, "A fork"):
#
#   scripts/set-image.sh ghcr.io/<owner>/<repository>
#
# GHCR refuses upper case: so does this script. Without an argument it only
# copies the name of deploy/image.env again. Exit 2 on a bad name.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
env_file=$repo/deploy/image.env
old=$(sed -n 's/^NOTES_IMAGE=//p' "$env_file")
name=${1:-$old}
if ! [[ $name =~ ^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$ ]]; then
  echo "set-image: not a lower-case image name: '$name' (want e.g. ghcr.io/owner/repo)" >&2
  exit 2
fi

sed -i "s#^NOTES_IMAGE=.*#NOTES_IMAGE=$name#" "$env_file"
changed=0
for f in "$repo"/deploy/kustomize/overlays/*/kustomization.yaml; do
  # The line after `- name: notes-api` in images:, whatever it held before.
  python3 - "$f" "$name" <<'PY' && changed=$((changed + 1))
import re, sys
path, name = sys.argv[1:]
text = open(path).read()
new, n = re.subn(r"(^  - name: notes-api\n    newName: )\S+$", lambda m: m.group(1) + name, text, flags=re.M)
if n != 1:
    sys.exit(f"set-image: {path}: no `- name: notes-api` / `newName:` pair in images:")
open(path, "w").write(new)
PY
done
for f in "$repo"/deploy/flux/clusters/*/imagerepository.yaml; do
  [ -f "$f" ] || continue
  sed -i "s#^  image: .*#  image: $name#" "$f"
  changed=$((changed + 1))
done
# Renovate leaves the image to the promote step: its rule names the image.
if [ -f "$repo/renovate.json" ] && [ -n "$old" ]; then
  sed -i "s#\"matchPackageNames\": \[\"$old\"\]#\"matchPackageNames\": [\"$name\"]#" "$repo/renovate.json"
  changed=$((changed + 1))
fi
echo "set-image: $name in deploy/image.env and $changed files (was ${old:-unset})"
