#!/usr/bin/env bash
# Live smoke test of the rendered dev overlay in a real container engine:
# static binary -> FROM-scratch image -> `kubectl kustomize overlays/dev` with
# that image -> `podman kube play` -> /readyz through the published port ->
# create a note -> find it with search -> restart the pod (kube down + play:
# a new pod on the same PVC-backed volume) -> the note is still there ->
# `podman kube down`. Then the readonly-dataset component: `notes-api
# dataset pack` into a volume, the base + component played with that volume
# mounted read-only -> search finds the dataset's marker, writes get 405,
# and the volume is byte for byte as packed afterwards.
#
# Called by scripts/verify-kit.sh (which installs the tools); runnable alone
# once kubectl (kustomize), podman, runc and promtool are on PATH.
#
# Environment:
#   CARGO_TARGET_DIR       where cargo builds (default: <repo>/target)
#   KIT_SMOKE_PORT         host port published on 127.0.0.1 (default 18080)
#   KIT_SMOKE_SKIP_BUILD=1 reuse the already built static binary
#   KIT_OCI_RUNTIME        podman --runtime (default runc)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
port=${KIT_SMOKE_PORT:-18080}
runtime=${KIT_OCI_RUNTIME:-runc}
image_name=localhost/notes-api
image_tag=smoke
target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$repo/target}
binary=$target_dir/$target/release/notes-api
base=http://127.0.0.1:$port

step() { printf '\n== smoke: %s\n' "$*"; }
fail() { printf 'SMOKE FAILED: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d)
# This sandbox (and many CI containers) cannot apply podman's default
# ulimits; an explicit containers.conf without them is harmless elsewhere.
if [ -z "${CONTAINERS_CONF:-}" ]; then
  printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
  export CONTAINERS_CONF=$work/containers.conf
fi
pod() { podman --runtime "$runtime" "$@"; }
# Run a podman command, indenting its output and dropping the noise this
# sandbox produces (no systemd for healthcheck timers, no syslog).
quiet() { "$@" 2>&1 | { grep -v -e 'systemd' -e 'syslog' || true; } | sed 's/^/   /'; }

rendered=$work/rendered.yaml
rendered_restart=$work/rendered-restart.yaml
rendered_dataset=$work/rendered-dataset.yaml
volume=notes-api-data-smoke
dataset_volume=notes-dataset-smoke

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "---- pod state and logs (failure) ----" >&2
    pod ps -a --format '{{.Names}} {{.Status}} {{.Ports}}' >&2 || true
    for c in $(pod ps -a --format '{{.Names}}' | grep '^notes-api-smoke-pod' || true); do
      echo "---- logs of $c ----" >&2
      pod logs --tail 60 "$c" >&2 || true
    done
  fi
  if [ -f "$rendered" ]; then pod kube down "$rendered" >/dev/null 2>&1 || true; fi
  if [ -f "$rendered_dataset" ]; then pod kube down "$rendered_dataset" >/dev/null 2>&1 || true; fi
  pod volume rm -f "$volume" "$dataset_volume" >/dev/null 2>&1 || true
  pod rmi -f "$image_name:$image_tag" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

wait_ready() {
  local deadline=$((SECONDS + ${1:-90})) code
  while [ $SECONDS -lt $deadline ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$base/readyz" || true)
    if [ "$code" = 200 ]; then
      echo "   GET /readyz -> 200 after $((SECONDS - start))s: $(curl -s -m 2 "$base/readyz")"
      return 0
    fi
    sleep 0.5
  done
  fail "/readyz did not answer 200 within ${1:-90}s (last: $code)"
}

if [ "${KIT_SMOKE_SKIP_BUILD:-0}" != 1 ]; then
  step "build the static binary ($target, crt-static, CARGO_TARGET_DIR=$target_dir)"
  (cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target "$target" --bin notes-api)
fi
[ -x "$binary" ] || fail "no binary at $binary"
file "$binary" | grep -Eq 'statically linked|static-pie linked' || fail "$binary is not statically linked: $(file "$binary")"
echo "   $binary: $(du -h "$binary" | cut -f1), $(file -b "$binary" | cut -d, -f1-2)"

step "build the FROM-scratch image $image_name:$image_tag (Dockerfile.scratch)"
"$repo/scripts/kit/build-scratch-image.sh" --binary "$binary" --tag "$image_name:$image_tag" --engine podman \
  | tail -n 1 | tee "$work/image-size.txt"

# podman kube play has no projected volumes: both renders drop the secrets
# volume (development mode needs no key).
# shellcheck disable=SC2016  # $patch is kustomize syntax, not a shell expansion
no_secrets_volume='  - target:
      kind: Deployment
      name: notes-api
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: notes-api
      spec:
        template:
          spec:
            containers:
              - name: notes-api
                volumeMounts:
                  - mountPath: /run/secrets/notes-api
                    $patch: delete
            volumes:
              - name: secrets
                $patch: delete'

# Both renders: the API's port published on loopback, and no secrets volume.
smoke_patches="  - target:
      kind: Deployment
      name: notes-api
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/ports/0/hostPort
        value: $port
      - op: add
        path: /spec/template/spec/containers/0/ports/0/hostIP
        value: 127.0.0.1
$no_secrets_volume"

step "render overlays/dev with that image"
# A throw-away kustomization on top of the dev overlay: the smoke image, a
# `-smoke` suffix so nothing collides with a developer's own podman objects,
# a hostPort on loopback (podman 4.3 publishes container ports, not Service
# ports), and without the projected secrets volume (podman 4.3 supports only
# hostPath/configMap/emptyDir/PVC volumes; dev mode needs no secret).
mkdir -p "$work/kustomize"
rel=$(realpath --relative-to="$work/kustomize" "$repo/deploy/kustomize/overlays/dev")
cat > "$work/kustomize/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel
nameSuffix: -smoke
images:
  - name: $(sed -n 's/^NOTES_IMAGE=//p' "$repo/deploy/image.env")
    newName: $image_name
    newTag: "$image_tag"
patches:
$smoke_patches
EOF
kubectl kustomize "$work/kustomize" > "$rendered"
grep -E '^kind:' "$rendered" | sort | uniq -c | sed 's/^/   /'
# podman 4.3 refuses to play a PVC whose volume exists; the restart replays
# the same objects minus the PVC, so the pod must find the data it left.
python3 - "$rendered" "$rendered_restart" <<'EOF'
import sys
docs = open(sys.argv[1]).read().split("\n---\n")
open(sys.argv[2], "w").write("\n---\n".join(d for d in docs if "kind: PersistentVolumeClaim" not in d))
EOF

step "podman kube play"
pod kube down "$rendered" >/dev/null 2>&1 || true
pod volume rm -f "$volume" >/dev/null 2>&1 || true
start=$SECONDS
quiet pod kube play "$rendered"
ctr=$(pod ps --format '{{.Names}}' | grep '^notes-api-smoke-pod.*-notes-api$' | head -n1)
[ -n "$ctr" ] || fail "no notes-api container running"
echo "   container $ctr: $(pod inspect "$ctr" --format 'user={{.Config.User}} read-only-rootfs={{.HostConfig.ReadonlyRootfs}} ports={{.NetworkSettings.Ports}}')"

step "wait for /readyz on $base"
wait_ready 90
curl -sf -m 5 "$base/healthz" > /dev/null || fail "/healthz"
echo "   GET /healthz -> 200"

step "notes-api healthcheck inside the container (the image's HEALTHCHECK)"
pod exec "$ctr" /usr/local/bin/notes-api healthcheck && echo "   notes-api healthcheck -> exit 0"

step "create a note"
word="smoke$(date +%s)$RANDOM"
body=$(printf '{"title":"Smoke test %s","body":"kustomize rendered, podman played: %s survives a restart","tags":["smoke"]}' "$word" "$word")
resp=$(curl -s -m 10 -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$body" "$base/api/v1/notes")
code=${resp##*$'\n'}
json=${resp%$'\n'*}
[ "$code" = 201 ] || fail "POST /api/v1/notes -> $code: $json"
id=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "   POST /api/v1/notes -> 201, id=$id"

search_finds() {
  curl -sf -m 10 "$base/api/v1/search?q=$word" | python3 -c '
import json, sys
hits = json.load(sys.stdin)["hits"]
sys.exit(0 if any(h["id"] == sys.argv[1] for h in hits) else 1)' "$id"
}
step "find it with search"
search_finds || fail "GET /api/v1/search?q=$word does not return $id"
echo "   GET /api/v1/search?q=$word -> hit $id"

step "metrics contract (promtool check metrics)"
curl -sf -m 5 "$base/metrics" > "$work/metrics.txt" || fail "GET /metrics"
promtool check metrics < "$work/metrics.txt" 2>&1 | sed 's/^/   promtool: /' || true
for m in http_requests_total http_request_duration_seconds_bucket notes_build_info; do
  grep -q "^$m" "$work/metrics.txt" || fail "/metrics lacks $m"
done
echo "   /metrics exposes http_requests_total, http_request_duration_seconds_bucket, notes_build_info"

step "restart the pod (kube down, then play again on the same volume)"
quiet pod kube down "$rendered"
pod volume exists "$volume" || fail "volume $volume was removed by kube down"
start=$SECONDS
quiet pod kube play "$rendered_restart"
wait_ready 90

step "the note is still there"
search_finds || fail "after the restart, search no longer finds $id"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$base/api/v1/notes/$id")
[ "$code" = 200 ] || fail "GET /api/v1/notes/$id -> $code after restart"
echo "   GET /api/v1/search?q=$word -> hit $id; GET /api/v1/notes/$id -> 200"

step "podman kube down"
quiet pod kube down "$rendered_restart"
pod volume rm -f "$volume" >/dev/null
echo "   removed pod and volume $volume"

# ---- the readonly-dataset component, the dataset volume mounted :ro ----
step "pack a dataset (notes-api dataset pack) into the volume $dataset_volume"
python3 - "$work/dataset.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(500):
        title = "the dataset marker" if i == 42 else f"dataset note {i}"
        f.write(json.dumps({"title": title, "body": "read only " * 20, "external_id": f"d{i}"}) + "\n")
PY
"$binary" dataset pack --from "$work/dataset.ndjson" --to "$work/notes.db" | sed 's/^/   /'
pod volume rm -f "$dataset_volume" >/dev/null 2>&1 || true
pod volume create "$dataset_volume" >/dev/null
dataset_dir=$(pod volume inspect "$dataset_volume" --format '{{.Mountpoint}}')
cp "$work/notes.db" "$dataset_dir/notes.db"
before=$(cd "$dataset_dir" && ls -A && sha256sum notes.db)

step "render base + components/readonly-dataset (development mode, no key) with that image"
mkdir -p "$work/dataset"
rel=$(realpath --relative-to="$work/dataset" "$repo/deploy/kustomize")
cat > "$work/dataset/kustomization.yaml" <<KUST
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel/base
components:
  - $rel/components/readonly-dataset
nameSuffix: -smoke
configMapGenerator:
  - name: notes-api-config
    behavior: merge
    literals:
      - NOTES_ENV=development
      - NOTES_ALLOW_UNAUTHENTICATED=true
images:
  - name: notes-api
    newName: $image_name
    newTag: "$image_tag"
patches:
$smoke_patches
KUST
# The claim's volume exists already (it holds the dataset): play the
# workload without the PersistentVolumeClaim, as on a restart.
kubectl kustomize "$work/dataset" | python3 -c '
import sys
docs = sys.stdin.read().split("\n---\n")
print("\n---\n".join(d for d in docs if "kind: PersistentVolumeClaim" not in d))' > "$rendered_dataset"
grep -q "claimName: $dataset_volume" "$rendered_dataset" || fail "the render does not mount $dataset_volume"

step "podman kube play: the dataset served read-only"
start=$SECONDS
quiet pod kube play "$rendered_dataset"
ctr=$(pod ps --format '{{.Names}}' | grep '^notes-api-smoke-pod.*-notes-api$' | head -n1)
[ -n "$ctr" ] || fail "no notes-api container running"
rw=$(pod inspect "$ctr" --format '{{range .Mounts}}{{if eq .Destination "/dataset"}}{{.RW}}{{end}}{{end}}')
[ "$rw" = false ] || fail "/dataset is not mounted read-only (RW=$rw)"
echo "   container $ctr: /dataset mounted read-only"
wait_ready 90
total=$(curl -sf -m 10 "$base/api/v1/search?q=marker" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
[ "$total" = 1 ] || fail "search for the marker found $total notes, not 1"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H 'Content-Type: application/json' -d '{"title":"no"}' "$base/api/v1/notes")
[ "$code" = 405 ] || fail "POST /api/v1/notes on a read-only dataset -> $code, not 405"
echo "   search finds the marker; POST /api/v1/notes -> 405"
quiet pod kube down "$rendered_dataset"
after=$(cd "$dataset_dir" && ls -A && sha256sum notes.db)
[ "$before" = "$after" ] || fail "serving changed the dataset volume: before [$before] after [$after]"
echo "   the dataset volume holds exactly notes.db, byte for byte as packed"
pod volume rm -f "$dataset_volume" >/dev/null
echo
echo "smoke test passed; $(cat "$work/image-size.txt")"
