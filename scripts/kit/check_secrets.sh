#!/usr/bin/env bash
# Secrets in git (docs/secrets.md), offline, with real sops, age and kubectl.
# Fails on any failure of:
#   1. plaintext   no Secret/SopsSecret value outside SOPS ciphertext, no
#                  *.sops.yaml without a sops MAC, no secretGenerator, no age
#                  private key, in any file git would commit (tracked +
#                  untracked not ignored); then the same scan must catch each
#                  kind of leak planted in a scratch git tree
#   2. round trip  with a throw-away age key: scripts/kit/example-secrets.sh
#                  -> sops --decrypt -> expected names/keys/formats; the
#                  Flux path (kustomize build, then decrypt) and the Argo CD
#                  path (SopsSecret as the API server returns it, decrypted
#                  as sops-secrets-operator does); mac_only_encrypted: metadata
#                  edits decrypt, ciphertext edits do not
#   3. examples    deploy/secrets: encrypted to exactly the .sops.yaml
#                  recipients, the generator's names and keys, both forms
#                  render; deploy/external-secrets: both providers render the
#                  production Secrets; the Secrets match what the overlays
#                  read; everything validates strictly (vendored CRD schemas,
#                  Kubernetes schemas, @kubernetes-models)
#   4. lint        yamllint --strict, shellcheck
#
# Uses the tools scripts/verify-kit.sh installs (KIT_TOOLS_DIR, default
# ~/.cache/notes-api-kit); installs nothing. KIT_K8S_VERSIONS as there.
set -euo pipefail

# shellcheck source=scripts/kit/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
read -r -a K8S_VERSIONS <<< "${KIT_K8S_VERSIONS:-1.31 1.32 1.33 1.34 1.35 1.36 1.37}"

work=$(umask 077 && mktemp -d)
trap 'rm -rf "$work"' EXIT

t0=$SECONDS
section() { printf '\n==== secrets: %s (%ss)\n' "$*" "$((SECONDS - t0))"; }

for tool in python sops age-keygen kubectl yamllint shellcheck node git; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/verify-kit.sh installs the kit's tools)"
done
[ -d "$nodedir/node_modules/@kubernetes-models/external-secrets" ] || die "no @kubernetes-models in $nodedir"

section "1. plaintext check (git files) and its negative test"
python scripts/kit/check_secrets.py scan --root "$repo" || die "plaintext secrets in the repository"
python scripts/kit/check_secrets.py scan-selftest || die "plaintext check self-test"

section "2. SOPS round trip with a throw-away age key"
python scripts/kit/check_secrets.py roundtrip "$work/roundtrip" || die "SOPS round trip"

section "3. committed examples, External Secrets, strict validation"
python scripts/kit/check_secrets.py examples "$work/examples" || die "committed examples"
versions=$(IFS=,; echo "${K8S_VERSIONS[*]}")
python scripts/kit/validate_manifests.py --versions "$versions" --crd-dir deploy/schemas/crds \
  --dump-custom-resources "$work/custom-resources.json" "$work"/examples/*.yaml || die "schema validation"
# The node models resolve from $nodedir, so the script runs from there (as
# in scripts/verify-kit.sh).
cp scripts/kit/validate_crds.mjs "$nodedir/"
(cd "$nodedir" && node validate_crds.mjs "$work/custom-resources.json") || die "@kubernetes-models validation"

section "4. lint"
yamllint --strict -c .yamllint.yaml .sops.yaml deploy/secrets deploy/external-secrets \
  deploy/schemas/crds/isindir.github.com_*.yaml deploy/schemas/crds/external-secrets.io_*.yaml || die yamllint
printf '  ok: yamllint --strict .sops.yaml deploy/secrets deploy/external-secrets (and their CRD schemas)\n'
shellcheck -x scripts/kit/check_secrets.sh scripts/kit/example-secrets.sh || die shellcheck
printf '  ok: shellcheck check_secrets.sh example-secrets.sh\n'

section "secrets verified in $((SECONDS - t0))s"
