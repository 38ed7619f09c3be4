#!/usr/bin/env bash
# One-time (and idempotent) Garage setup for the production overlay: the
# storage layout of the single node, the three buckets, and the two access
# keys, imported from the Secrets the pods already use (notes-api-env and
# notes-db-backup-s3), so the credentials live in one place (git, SOPS) and
# exist before anything starts using them. Re-running changes nothing.
#
# usage: scripts/kit/garage-setup.sh [NAMESPACE]     (default: notes)
#   GARAGE_CAPACITY   capacity given to the node in the layout (default 20G,
#                     the size of the data volume)
#
# Needs kubectl with access to the namespace. The Garage image has no shell,
# so every step is one `garage` command run in the pod.
set -euo pipefail

ns=${1:-notes}
capacity=${GARAGE_CAPACITY:-20G}

garage() { kubectl -n "$ns" exec garage-0 -- /garage "$@"; }
secret_value() {
  kubectl -n "$ns" get secret "$1" -o "jsonpath={.data.$2}" | base64 -d
}

# The StatefulSet controller creates the pod some time after the apply: a
# wait on a pod that does not exist yet fails at once, so wait for it to
# exist first (kubectl >= 1.31).
kubectl -n "$ns" wait --for=create pod/garage-0 --timeout=5m
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Running pod/garage-0 --timeout=5m

# A node without a role shows "NO ROLE ASSIGNED"; a fresh cluster has no
# layout yet, so the first one is version 1.
if garage status | grep -q 'NO ROLE ASSIGNED'; then
  node=$(garage node id -q | cut -d@ -f1)
  garage layout assign -z dc1 -c "$capacity" "$node"
  garage layout apply --version 1
fi

for bucket in notes-blobs notes-backups notes-pg-backups; do
  garage bucket info "$bucket" >/dev/null 2>&1 || garage bucket create "$bucket"
done

# import_key NAME KEY_ID SECRET BUCKET...
import_key() {
  local name=$1 id=$2 secret=$3 bucket
  shift 3
  garage key info "$id" >/dev/null 2>&1 || garage key import --yes -n "$name" "$id" "$secret"
  for bucket in "$@"; do
    garage bucket allow --read --write "$bucket" --key "$id"
  done
}
import_key notes-api "$(secret_value notes-api-env AWS_ACCESS_KEY_ID)" \
  "$(secret_value notes-api-env AWS_SECRET_ACCESS_KEY)" notes-blobs notes-backups
import_key notes-db-backup "$(secret_value notes-db-backup-s3 ACCESS_KEY_ID)" \
  "$(secret_value notes-db-backup-s3 ACCESS_SECRET_KEY)" notes-pg-backups

garage status
echo "garage-setup: layout, buckets and keys in place in namespace $ns"
