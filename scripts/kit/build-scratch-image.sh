#!/usr/bin/env bash
# Build the notes-api runtime image FROM scratch around a locally built static
# binary (Dockerfile.scratch), for machines that cannot pull base images.
#
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu
#   scripts/kit/build-scratch-image.sh \
#     --binary target/x86_64-unknown-linux-gnu/release/notes-api \
#     --tag localhost/notes-api:dev [--engine podman|docker]
#
# Prints the image size at the end.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binary="$repo/target/x86_64-unknown-linux-gnu/release/notes-api"
tag=localhost/notes-api:dev
engine=${KIT_CONTAINER_ENGINE:-podman}
version=${NOTES_VERSION:-0.0.0-dev}
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

[ -x "$binary" ] || { echo "no executable binary at $binary" >&2; exit 1; }
# A FROM-scratch image has no dynamic loader: refuse anything not static.
if file "$binary" | grep -q 'dynamically linked'; then
  echo "$binary is dynamically linked; build it with RUSTFLAGS='-C target-feature=+crt-static'" >&2
  exit 1
fi
ca_bundle=${KIT_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -r "$ca_bundle" ] || { echo "no CA bundle at $ca_bundle (apt-get install ca-certificates)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
install -d "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/data" "$ctx/rootfs/tmp"
install -m 0644 "$repo"/deploy/image/rootfs/etc/passwd "$repo"/deploy/image/rootfs/etc/group \
  "$repo"/deploy/image/rootfs/etc/nsswitch.conf "$ctx/rootfs/etc/"
install -m 0644 "$ca_bundle" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
install -m 0755 "$binary" "$ctx/notes-api"

build=("$engine")
if [ "$engine" = podman ]; then
  build+=(--runtime "${KIT_OCI_RUNTIME:-runc}" build --format docker)
else
  build+=(build)
fi
"${build[@]}" -f "$repo/Dockerfile.scratch" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  -t "$tag" "$ctx"

size=$("$engine" image inspect "$tag" --format '{{.Size}}')
echo "image $tag: $size bytes ($(numfmt --to=iec-i --suffix=B "$size"))"
