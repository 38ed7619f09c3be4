#!/usr/bin/env bash
# The one place that knows which Secrets the kit needs, their keys and how
# their values are made. Writes them, with fresh random values, encrypted
# with sops by the rules of the repository's .sops.yaml (recipients
# replaced by the ones given), in both forms the kit deploys:
#
#   OUTDIR/<env>/          plain Secrets (*.sops.yaml) + kustomization.yaml,
#                          for Flux (kustomize-controller decrypts them)
#   OUTDIR/<env>-argocd/   the same Secrets as SopsSecret objects, for Argo CD
#                          (sops-secrets-operator decrypts them in the cluster)
#
# for env = single-node, production and dataset (in notes-dataset). Both forms of one run hold the same
# values. Plaintext is only ever written to a private temporary directory
# outside OUTDIR, removed on exit.
#
# usage: example-secrets.sh OUTDIR RECIPIENT[,RECIPIENT...]
#        example-secrets.sh --list    the secrets, keys and value formats (JSON)
#
# The committed examples (deploy/secrets/) were made with the example
# recipient of .sops.yaml; docs/secrets.md shows how to make your own.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools=${KIT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/notes-api-kit}
if [ -x "$tools/venv/bin/python" ]; then
  export PATH="$tools/venv/bin:$PATH"
fi

usage() { echo "usage: $0 OUTDIR RECIPIENT[,RECIPIENT...] | --list" >&2; exit 2; }

# The secrets. Python, because the same table drives the values, the two
# forms and --list (which scripts/kit/check_secrets.sh verifies against).
spec() {
  python3 - "$@" <<'EOF'
import base64, json, os, secrets, sys
import yaml

ENVS = ["single-node", "production", "dataset"]
# Where each layout runs: its Secrets must be there (overlays/dataset runs
# in notes-dataset).
NAMESPACES = {"single-node": "notes", "production": "notes", "dataset": "notes-dataset"}
NAMESPACE = NAMESPACES["production"]

def hex_bytes(n):
    return lambda: secrets.token_hex(n)

def b64_bytes(n):
    return lambda: base64.b64encode(secrets.token_bytes(n)).decode()

def garage_key_id():
    # Garage key IDs are GK + 24 hex digits (garage key import refuses others).
    return "GK" + secrets.token_hex(12)

HEX64 = "^[0-9a-f]{64}$"
B64_32 = "^[A-Za-z0-9+/]{43}=$"
GK = "^GK[0-9a-f]{24}$"

# name -> envs, consumer (app.kubernetes.io/name), why (file comment),
# keys: key -> (make value, pattern a valid value matches)
SECRETS = {
    "notes-api-secrets": {
        "envs": ["single-node", "production", "dataset"], "name": "notes-api",
        "why": ["The master key (NOTES_MASTER_KEY_FILE, >= 32 bytes): production",
                "mode refuses to start without it; it creates and revokes API keys."],
        "keys": {"master-key": (hex_bytes(32), HEX64)},
    },
    "notes-api-env": {
        "envs": ["production"], "name": "notes-api",
        "why": ["S3 credentials of notes-api (attachments, backups), read from the",
                "environment (envFrom): the S3 client takes them from there only.",
                "scripts/kit/garage-setup.sh imports this key into Garage."],
        "keys": {"AWS_ACCESS_KEY_ID": (garage_key_id, GK),
                 "AWS_SECRET_ACCESS_KEY": (hex_bytes(32), HEX64)},
    },
    "notes-db-backup-s3": {
        "envs": ["production"], "name": "notes-db",
        "why": ["S3 credentials CloudNativePG archives WAL and base backups with",
                "(ObjectStore notes-db-backups); imported into Garage by",
                "scripts/kit/garage-setup.sh."],
        "keys": {"ACCESS_KEY_ID": (garage_key_id, GK),
                 "ACCESS_SECRET_KEY": (hex_bytes(32), HEX64),
                 "REGION": (lambda: "garage", "^garage$")},
    },
    "garage-secrets": {
        "envs": ["production"], "name": "garage",
        "why": ["Garage's own secrets (GARAGE_RPC_SECRET, GARAGE_ADMIN_TOKEN,",
                "GARAGE_METRICS_TOKEN); the RPC secret is 32 bytes in hex."],
        "keys": {"rpc-secret": (hex_bytes(32), HEX64),
                 "admin-token": (b64_bytes(32), B64_32),
                 "metrics-token": (b64_bytes(32), B64_32)},
    },
    "notes-redis-auth": {
        "envs": ["production"], "name": "notes-redis",
        "why": ["A password for the optional Redis queue. Not used yet: the redis",
                "component runs without AUTH (NetworkPolicy only) and nothing",
                "mounts this Secret; it is here so enabling AUTH needs no new secret."],
        "keys": {"password": (hex_bytes(32), HEX64)},
    },
    "notes-api-sentry": {
        "envs": ["production"], "name": "notes-api",
        "why": ["The error-tracking DSN, for NOTES_SENTRY_DSN_FILE. The example value",
                "points nowhere: replace it with your Sentry/Bugsink project's DSN."],
        "keys": {"dsn": (lambda: f"https://{secrets.token_hex(16)}@errors.example.com/1",
                         "^https://[0-9a-f]{32}@[a-z0-9.-]+/[0-9]+$")},
    },
}

HEADER = ["Encrypted with sops (.sops.yaml); edit with `sops <this file>`.",
          "Made by scripts/kit/example-secrets.sh; docs/secrets.md.",
          # The MAC and the ciphertexts are longer than any sane line limit.
          "yamllint disable rule:line-length"]


def body(name, values):
    """The Secret both forms describe: the single definition of its content."""
    s = SECRETS[name]
    return {
        "name": name,
        "labels": {"app.kubernetes.io/name": s["name"],
                   "app.kubernetes.io/component": "secrets",
                   "app.kubernetes.io/part-of": "notes-api"},
        "type": "Opaque",
        # Sorted as kustomize and JSON sort them: the MAC hashes the values in
        # file order, so it still verifies after a build (Flux) or a round
        # trip through the API server (the operator).
        "stringData": dict(sorted(values.items())),
    }


def plain_secret(b, ns):
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": b["name"], "namespace": ns, "labels": b["labels"]},
            "type": b["type"], "stringData": b["stringData"]}


def sops_secret(b, ns):
    # The operator copies the template's name, labels, type and data into the
    # Secret it creates; no app.kubernetes.io/instance label, or Argo CD would
    # adopt (and prune) that Secret as its own.
    return {"apiVersion": "isindir.github.com/v1alpha3", "kind": "SopsSecret",
            "metadata": {"name": b["name"], "namespace": ns, "labels": b["labels"],
                         "annotations": {"argocd.argoproj.io/sync-wave": "0"}},
            "spec": {"secretTemplates": [{"name": b["name"], "labels": b["labels"],
                                          "type": b["type"], "stringData": b["stringData"]}]}}


def dump(doc, why):
    lines = ["# " + line for line in why + [""] + HEADER]
    return "\n".join(lines).replace("# \n", "#\n") + "\n" + yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=False, width=1000)


def kustomization(files, form, ns):
    return "".join(["# " + form + "\n# Generated by scripts/kit/example-secrets.sh.\n",
                    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
                    f"namespace: {ns}\nresources:\n"] + [f"  - {f}\n" for f in files])


cmd = sys.argv[1]
if cmd == "list":
    print(json.dumps({
        "namespace": NAMESPACE,
        "namespaces": NAMESPACES,
        "envs": {e: [n for n, s in SECRETS.items() if e in s["envs"]] for e in ENVS},
        "secrets": {n: {k: p for k, (_, p) in s["keys"].items()} for n, s in SECRETS.items()},
    }, indent=2))
elif cmd == "stage":
    stage = sys.argv[2]
    values = {n: {k: make() for k, (make, _) in s["keys"].items()} for n, s in SECRETS.items()}
    forms = {"": (plain_secret, "Flux: plain Secrets, decrypted by kustomize-controller (spec.decryption)."),
             "-argocd": (sops_secret, "Argo CD: SopsSecrets, decrypted in the cluster by sops-secrets-operator.")}
    for env in ENVS:
        names = [n for n, s in SECRETS.items() if env in s["envs"]]
        for suffix, (form, what) in forms.items():
            d = os.path.join(stage, env + suffix)
            os.makedirs(d)
            files = [n + ".sops.yaml" for n in names]
            for n in names:
                with open(os.path.join(d, n + ".sops.yaml"), "w") as f:
                    f.write(dump(form(body(n, values[n]), NAMESPACES[env]), SECRETS[n]["why"]))
            with open(os.path.join(d, "kustomization.yaml"), "w") as f:
                f.write(kustomization(files, what, NAMESPACES[env]))
elif cmd == "config":
    # The repository's rules with only the recipients replaced.
    src, dst, recipients = sys.argv[2:5]
    conf = yaml.safe_load(open(src))
    rules = [r for r in conf["creation_rules"] if r.get("path_regex") == r".*\.sops\.yaml$"]
    if len(rules) != 1:
        sys.exit(f"{src}: expected one creation rule for .*\\.sops\\.yaml$")
    rules[0]["age"] = recipients
    conf["creation_rules"] = rules
    yaml.safe_dump(conf, open(dst, "w"), sort_keys=False)
EOF
}

[ $# -ge 1 ] || usage
if [ "$1" = --list ]; then
  spec list
  exit 0
fi
[ $# -eq 2 ] || usage
out=$1 recipients=$2
IFS=, read -r -a list <<< "$recipients"
for r in "${list[@]}"; do
  [[ $r =~ ^age1[0-9a-z]{58}$ ]] || { echo "not an age recipient: $r" >&2; exit 2; }
done
command -v sops >/dev/null || { echo "sops not found (scripts/verify-kit.sh installs it)" >&2; exit 1; }

for env in single-node production dataset; do
  for d in "$out/$env" "$out/$env-argocd"; do
    if [ -e "$d" ] && [ -n "$(ls -A "$d")" ]; then
      # Never mix freshly generated values into a directory that may hold
      # real ones: the caller removes it first, on purpose.
      echo "$d exists and is not empty; remove it first" >&2
      exit 1
    fi
  done
done

stage=$(umask 077 && mktemp -d)
trap 'rm -rf "$stage"' EXIT
spec config "$repo/.sops.yaml" "$stage/sops.yaml" "$recipients"
spec stage "$stage/plain"

for d in "$stage"/plain/*/; do
  env=$(basename "$d")
  mkdir -p "$out/$env"
  cp "$d/kustomization.yaml" "$out/$env/"
  for f in "$d"/*.sops.yaml; do
    sops --config "$stage/sops.yaml" --encrypt --filename-override "$out/$env/$(basename "$f")" \
      --output "$out/$env/$(basename "$f")" "$f"
  done
  echo "$out/$env: $(find "$out/$env" -name '*.sops.yaml' | wc -l) encrypted secrets"
done
