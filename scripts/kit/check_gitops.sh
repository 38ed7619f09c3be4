#!/usr/bin/env bash
# Offline checks of the GitOps delivery (deploy/argocd, deploy/flux); fails on
# any failure of:
#   1. yamllint --strict of deploy/argocd and deploy/flux
#   2. scripts/kit/check_gitops.py: every Application admitted by its
#      AppProject (repositories, destinations, every rendered kind and
#      namespace), automated prune+selfHeal, retry, sync waves in order, Git
#      paths that exist and render (kubectl kustomize), pinned charts; Flux
#      Kustomizations that prune, time out and render as kustomize-controller
#      renders them, apps after infrastructure and secrets, SOPS decryption,
#      image automation and the setter line of overlays/production; the same
#      charts, versions and values in both engines. Then the same checks on
#      temporary copies with one planted defect each, which must fail.
#   3. scripts/kit/engine_check.py: what the engines will do on an empty
#      cluster: Argo CD's sync steps (phases, waves, hooks, PruneLast) with
#      its health rules (the HPA's, the CronJob's through argocd-cm's Lua run
#      by lua5.1, a workload's), Flux's dependsOn, wait and CRD order, and
#      prune protection of data and of the Namespaces holding it; then the
#      same with one planted defect each, which must fail.
#   4. every Argo CD and Flux object strictly against the vendored CRD
#      schemas (validate_manifests.py) and the @kubernetes-models validators
#      (validate_crds.mjs).
# Uses the tools scripts/verify-kit.sh installs (KIT_TOOLS_DIR, default
# ~/.cache/notes-api-kit); installs nothing. Usage: scripts/kit/check_gitops.sh
set -euo pipefail

# shellcheck source=scripts/kit/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT


for t in kubectl yamllint python node lua5.1; do
  command -v "$t" >/dev/null || die "$t not found (scripts/verify-kit.sh installs the kit's tools into $tools)"
done
for m in argo-cd flux-cd; do
  [ -d "$nodedir/node_modules/@kubernetes-models/$m" ] \
    || die "@kubernetes-models/$m not in $nodedir (scripts/verify-kit.sh installs it)"
done

yamllint --strict -c .yamllint.yaml deploy/argocd deploy/flux || die "yamllint"
ok "yamllint --strict deploy/argocd deploy/flux"

python scripts/kit/check_gitops.py --repo "$repo" --render-dir "$work/rendered" || die "GitOps checks"
python scripts/kit/engine_check.py --repo "$repo" || die "what the engines will do (engine_check.py)"

python scripts/kit/validate_manifests.py --versions 1.33,1.37 --crd-dir deploy/schemas/crds \
  --dump-custom-resources "$work/custom-resources.json" "$work"/rendered/*.yaml || die "schema validation"
# The validator resolves its packages from the node_modules next to it.
cp scripts/kit/validate_crds.mjs "$work/"
ln -s "$nodedir/node_modules" "$work/node_modules"
node "$work/validate_crds.mjs" "$work/custom-resources.json" || die "@kubernetes-models validation"
ok "every Argo CD and Flux object valid against the vendored CRD schemas and @kubernetes-models"
