#!/usr/bin/env python3
"""The checks behind scripts/kit/check_secrets.sh (docs/secrets.md), offline.

  scan [--root DIR]   plaintext check over DIR's git files (tracked, plus
                      untracked files that are not ignored)
  scan-selftest       the scan must fail on each kind of planted plaintext
  roundtrip WORK      a throw-away age key: generator -> sops -> the paths
                      Flux and Argo CD take; what mac_only_encrypted allows
  examples WORK       the committed examples and External Secrets; writes
                      the objects to validate to WORK/*.yaml

Every failure is printed as `FAIL ...`; the exit status is 1 if any.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts/kit/example-secrets.sh"

ENC = re.compile(r"^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,"
                 r"tag:[A-Za-z0-9+/=]+,type:[a-z]+\]$")
# age identities (X25519 and the post-quantum hybrid). Built from parts so
# that this file does not match itself.
AGE_IDENTITY = re.compile(("AGE-SECRET-KEY-" + "(?:PQ-)?1").encode())

# Files allowed to hold what the scan refuses, each with the reason. None is
# needed: no test fixture of the repository holds a Secret-like manifest
# (the Rust tests' secrets are strings in code, not YAML manifests).
EXCEPTIONS: dict[str, str] = {}

# Secrets the workloads read that an operator creates, not the kit.
OPERATOR_MADE = {"notes-db-app": "CloudNativePG (Cluster notes-db)",
                 "notes-api-tls": "cert-manager (Ingress TLS)"}

failures = 0


def ok(msg: str) -> None:
    print(f"  ok: {msg}")


def fail(msg: str) -> None:
    global failures
    failures += 1
    print(f"FAIL {msg}")


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ---- scan ----------------------------------------------------------------------

def git_files(root: Path) -> list[str]:
    out = run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    if out.returncode:
        sys.exit(f"git ls-files in {root}: {out.stderr.strip()}")
    return sorted(p for p in out.stdout.split("\0") if p and (root / p).is_file())


def manifests(docs):
    """Every object, including the items of a v1 List."""
    for doc in docs:
        if isinstance(doc, dict):
            yield doc
            if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
                yield from manifests(doc["items"])


def plaintext_values(where: str, obj: dict) -> list[str]:
    found = []
    for field in ("data", "stringData"):
        values = obj.get(field)
        if values in (None, {}):
            continue
        if not isinstance(values, dict):
            found.append(f"{where}: {field} is not a map")
            continue
        found += [f"{where}: {field}.{k} is not SOPS ciphertext"
                  for k, v in values.items() if not (isinstance(v, str) and ENC.match(v))]
    return found


def scan_file(root: Path, rel: str) -> list[str]:
    raw = (root / rel).read_bytes()
    problems = ["an age private key (identity)"] if AGE_IDENTITY.search(raw) else []
    name = os.path.basename(rel)
    if not name.endswith((".yaml", ".yml")):
        return problems
    try:
        docs = [d for d in yaml.safe_load_all(raw.decode("utf-8")) if d is not None]
    except (UnicodeDecodeError, yaml.YAMLError):
        if b"Secret" in raw or name.endswith(".sops.yaml"):
            problems.append("unparsable YAML that may hold a Secret")
        return problems
    for obj in manifests(docs):
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        what = f"{kind} {meta.get('name') if isinstance(meta, dict) else '?'}"
        if kind == "Secret":
            problems += plaintext_values(what, obj)
        elif kind == "SopsSecret":
            templates = (obj.get("spec") or {}).get("secretTemplates") or []
            for i, t in enumerate(templates if isinstance(templates, list) else []):
                if isinstance(t, dict):
                    problems += plaintext_values(f"{what}: secretTemplates[{i}]", t)
        elif kind in ("Kustomization", "Component"):
            for g in obj.get("secretGenerator") or []:
                if isinstance(g, dict) and (g.get("literals") or g.get("files") or g.get("envs")):
                    problems.append(f"{kind}: secretGenerator {g.get('name')} makes a Secret from plaintext")
    # `.sops.yaml` itself is sops's configuration, not a secret.
    if name.endswith(".sops.yaml") and name != ".sops.yaml":
        for i, doc in enumerate(docs):
            meta = doc.get("sops") if isinstance(doc, dict) else None
            mac = meta.get("mac") if isinstance(meta, dict) else None
            if not (isinstance(mac, str) and ENC.match(mac)):
                problems.append(f"document {i}: *.sops.yaml without a sops block with a mac")
    return problems


def scan(root: Path) -> int:
    files = git_files(root)
    bad = 0
    for rel in files:
        for problem in scan_file(root, rel):
            if rel in EXCEPTIONS:
                print(f"  allowed: {rel}: {problem} ({EXCEPTIONS[rel]})")
            else:
                bad += 1
                print(f"FAIL {rel}: {problem}")
    if not bad:
        ok(f"no plaintext secret in {len(files)} files (git: tracked + untracked not ignored)")
    return 1 if bad else 0


def scan_selftest() -> None:
    """Plant each kind of leak in a fresh git tree; the scan must catch it."""
    fake_enc = "ENC[AES256_GCM,data:AAAA,iv:" + "A" * 43 + "=,tag:" + "A" * 22 + "==,type:str]"
    secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\n"
    cases = {
        "plain stringData": ("deploy/x/secret.yaml", secret + "stringData:\n  password: hunter2\n"),
        "base64 data": ("deploy/x/secret.yaml", secret + "data:\n  token: aHVudGVyMg==\n"),
        "one key added in clear to an encrypted Secret":
            ("deploy/x/secret.yaml", secret + f"stringData:\n  a: {fake_enc}\n  b: hunter2\n"),
        "second document of a multi-document file":
            ("deploy/x/all.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\n"
             + secret + "stringData:\n  password: hunter2\n"),
        "Secret inside a List":
            ("deploy/x/list.yml", "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n"
             "    kind: Secret\n    metadata:\n      name: leak\n    stringData:\n      password: hunter2\n"),
        "SopsSecret with a plaintext template":
            ("deploy/x/s.sops.yaml", "apiVersion: isindir.github.com/v1alpha3\nkind: SopsSecret\n"
             "metadata:\n  name: leak\nspec:\n  secretTemplates:\n    - name: leak\n"
             f"      stringData:\n        password: hunter2\nsops:\n  mac: {fake_enc}\n"),
        "*.sops.yaml without sops metadata":
            ("deploy/x/y.sops.yaml", secret + f"stringData:\n  password: {fake_enc}\n"),
        "secretGenerator literals":
            ("deploy/x/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\n"
             "kind: Kustomization\nsecretGenerator:\n  - name: leak\n    literals:\n      - password=hunter2\n"),
        "age private key": ("keys.txt", None),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for label, (rel, text) in cases.items():
            root = Path(tmp) / re.sub(r"\W+", "-", label)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            run(["git", "init", "-q", str(root)])
            if text is None:
                # A real (throw-away) key, as age-keygen writes it.
                if run(["age-keygen", "-o", str(root / rel)]).returncode:
                    fail("age-keygen")
                    continue
            else:
                (root / rel).write_text(text)
            out = run([sys.executable, __file__, "scan", "--root", str(root)])
            if out.returncode != 1 or f"FAIL {rel}:" not in out.stdout:
                fail(f"scan did not catch: {label} (exit {out.returncode})\n{out.stdout}{out.stderr}")
            else:
                ok(f"scan catches: {label}")
        # Controls: the scan is not just failing on everything.
        root = Path(tmp) / "controls"
        (root / "deploy").mkdir(parents=True)
        run(["git", "init", "-q", str(root)])
        (root / ".gitignore").write_text("local/\n")
        (root / "local").mkdir()
        (root / "local/secret.yaml").write_text(secret + "stringData:\n  password: hunter2\n")
        (root / "deploy/s.sops.yaml").write_text(
            secret + f"stringData:\n  password: {fake_enc}\nsops:\n  mac: {fake_enc}\n")
        (root / "deploy/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
                                             "data:\n  password-file: /run/secrets/x\n")
        out = run([sys.executable, __file__, "scan", "--root", str(root)])
        if out.returncode != 0:
            fail(f"scan refuses clean files (encrypted Secret, ConfigMap, git-ignored file):\n{out.stdout}")
        else:
            ok("scan passes an encrypted Secret and a ConfigMap, and skips git-ignored files")


# ---- round trip -------------------------------------------------------------------

def spec() -> dict:
    out = run([str(GENERATOR), "--list"])
    if out.returncode:
        sys.exit(f"{GENERATOR} --list: {out.stderr}")
    return json.loads(out.stdout)


def sops_decrypt(path: Path, key: Path, fmt: str = "yaml") -> subprocess.CompletedProcess:
    return run(["sops", "--decrypt", "--input-type", fmt, "--output-type", fmt, str(path)],
               env={**os.environ, "SOPS_AGE_KEY_FILE": str(key)})


def load_decrypted(path: Path, key: Path, fmt: str = "yaml"):
    out = sops_decrypt(path, key, fmt)
    if out.returncode:
        fail(f"sops --decrypt {path}: {out.stderr.strip()}")
        return None
    return json.loads(out.stdout) if fmt == "json" else yaml.safe_load(out.stdout)


def as_secret(doc: dict) -> dict:
    """A Secret as the API server stores it: data merged from both maps."""
    meta = doc.get("metadata", {})
    data = dict(doc.get("stringData") or {})
    data.update({k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()})
    return {"name": meta.get("name"), "namespace": meta.get("namespace"),
            "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {},
            "type": doc.get("type") or "Opaque", "data": data}


def operator_secrets(sops_secret: dict) -> list[dict]:
    """What sops-secrets-operator creates from a decrypted SopsSecret
    (internal/controllers/sopssecret_controller.go, createKubeSecretFromTemplate):
    the template's name, labels, annotations and type (default Opaque), in the
    SopsSecret's namespace, stringData plus base64-decoded data."""
    ns = sops_secret["metadata"].get("namespace")
    return [as_secret({"metadata": {"name": t["name"], "namespace": ns, "labels": t.get("labels"),
                                    "annotations": t.get("annotations")},
                       "type": t.get("type"), "stringData": t.get("stringData"), "data": t.get("data")})
            for t in sops_secret["spec"]["secretTemplates"]]


def render(path: Path) -> list[dict] | None:
    out = run(["kubectl", "kustomize", str(path)])
    if out.returncode:
        fail(f"kubectl kustomize {path}: {out.stderr.strip()}")
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def check_layout(s: dict, base: Path) -> bool:
    good = True
    for env, names in s["envs"].items():
        for form in ("", "-argocd"):
            d = base / (env + form)
            want = {f"{n}.sops.yaml" for n in names}
            have = {p.name for p in d.glob("*.sops.yaml")} if d.is_dir() else set()
            k = yaml.safe_load((d / "kustomization.yaml").read_text()) if (d / "kustomization.yaml").is_file() else {}
            if have != want or set(k.get("resources") or []) != want or k.get("namespace") != s["namespaces"][env]:
                fail(f"{d}: files {sorted(have)}, kustomization {k.get('resources')}, expected {sorted(want)}"
                     f" in namespace {s['namespaces'][env]}")
                good = False
    return good


def secrets_namespace_mismatch(docs: list, ns: str) -> str | None:
    """The namespace(s) an overlay's workloads run in, if not ns."""
    spaces = sorted({d["metadata"].get("namespace") for d in docs
                     if d["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")} - {ns})
    return ", ".join(spaces) or None


def check_values(s: dict, name: str, secret: dict, where: str, ns: str) -> bool:
    keys = s["secrets"][name]
    problems = []
    if secret["name"] != name or secret["namespace"] != ns:
        problems.append(f"is {secret['namespace']}/{secret['name']}")
    if set(secret["data"]) != set(keys):
        problems.append(f"keys {sorted(secret['data'])}, expected {sorted(keys)}")
    problems += [f"{k} does not match {p}" for k, p in keys.items()
                 if k in secret["data"] and not re.match(p, secret["data"][k])]
    for p in problems:
        fail(f"{where}: {p}")
    return not problems


def server_side(doc: dict) -> dict:
    """The SopsSecret as the operator reads it back from the API server."""
    doc = copy.deepcopy(doc)
    meta = doc["metadata"]
    meta.update({"uid": "0b7ac0c3-7a4e-4c55-9bd1-1f0c5f5d2c11", "resourceVersion": "4711",
                 "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"})
    meta.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(doc)
    meta.setdefault("labels", {})["app.kubernetes.io/instance"] = "notes-api-secrets"
    doc["status"] = {"message": "Healthy"}
    return doc


def roundtrip(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    key = work / "key.txt"
    if run(["age-keygen", "-o", str(key)]).returncode:
        return fail("age-keygen")
    recipient = run(["age-keygen", "-y", str(key)]).stdout.strip()
    gen = work / "gen"
    out = run([str(GENERATOR), str(gen), recipient])
    if out.returncode:
        return fail(f"generator: {out.stderr}{out.stdout}")
    s = spec()
    if not check_layout(s, gen):
        return
    ok(f"generator wrote {sum(len(n) for n in s['envs'].values())} secrets x 2 forms for "
       f"{', '.join(s['envs'])} (throw-away key)")

    count, mark = 0, failures
    for env, names in s["envs"].items():
        flux, argo = gen / env, gen / f"{env}-argocd"
        expected = {}
        for n in names:
            plain = load_decrypted(flux / f"{n}.sops.yaml", key)
            sops_secret = load_decrypted(argo / f"{n}.sops.yaml", key)
            if plain is None or sops_secret is None:
                continue
            if plain.get("kind") != "Secret" or "sops" in plain or sops_secret.get("kind") != "SopsSecret":
                fail(f"{env}/{n}: decrypted kinds {plain.get('kind')}, {sops_secret.get('kind')}")
                continue
            expected[n] = as_secret(plain)
            check_values(s, n, expected[n], f"{env}/{n}.sops.yaml (decrypted)", s["namespaces"][env])
            made = operator_secrets(sops_secret)
            if made != [expected[n]]:
                fail(f"{env}-argocd/{n}: the operator would create {made}, the Flux form is {expected[n]}")
            count += 1
        # Flux: kustomize-controller builds the directory, then decrypts each
        # encrypted Secret of the output, as JSON (DecryptResource). It skips
        # the MAC check; sops --decrypt here does not, which is stricter.
        built = render(flux) or []
        got = {}
        for i, doc in enumerate(built):
            f = work / f"flux-{env}-{i}.json"
            f.write_text(json.dumps(doc))
            dec = load_decrypted(f, key, "json")
            if dec is not None:
                got[dec["metadata"]["name"]] = as_secret(dec)
        if got != expected:
            fail(f"Flux path {env}: build + decrypt gives {sorted(got)}, differs from the files")
        # Argo CD: the repo server only builds (ciphertext); the operator
        # decrypts what the API server returns, metadata and status added
        # (as JSON, MAC ignored; checked here, again stricter).
        built = render(argo) or []
        got = {}
        for i, doc in enumerate(built):
            f = work / f"argo-{env}-{i}.json"
            f.write_text(json.dumps(server_side(doc)))
            dec = load_decrypted(f, key, "json")
            if dec is not None:
                for made in operator_secrets(dec):
                    got[made["name"]] = made
        if got != expected:
            fail(f"Argo CD path {env}: SopsSecrets as stored by the API server give {sorted(got)}, "
                 "differ from the Flux form")
    if failures == mark:
        ok(f"{count} secrets: decrypted with the throw-away key; names, keys and value formats as "
           "example-secrets.sh --list; SopsSecret templates = the Secrets the Flux form makes")
        ok("Flux path: kubectl kustomize <env>/, then each Secret decrypted (MAC verified) = the "
           "expected Secrets")
        ok("Argo CD path: kubectl kustomize <env>-argocd/, API-server metadata/status added, "
           "decrypted (MAC verified) = what the operator creates = the expected Secrets")
    mac_only_encrypted(work, key, gen / "production" / "notes-api-env.sops.yaml", recipient)


def mac_only_encrypted(work: Path, key: Path, path: Path, recipient: str) -> None:
    original = yaml.safe_load(path.read_text())
    clear = load_decrypted(path, key)

    def attempt(label: str, doc: dict) -> subprocess.CompletedProcess:
        f = work / ("mac-" + re.sub(r"\W+", "-", label) + ".sops.yaml")
        f.write_text(yaml.safe_dump(doc, sort_keys=False))
        return sops_decrypt(f, key)

    doc = copy.deepcopy(original)
    doc["metadata"]["labels"]["app.kubernetes.io/component"] = "changed"
    doc["metadata"]["namespace"] = "elsewhere"
    out = attempt("label", doc)
    if out.returncode or yaml.safe_load(out.stdout)["stringData"] != clear["stringData"]:
        fail(f"mac_only_encrypted: a changed label/namespace broke decryption: {out.stderr.strip()}")
    else:
        ok("mac_only_encrypted: a changed label and namespace still decrypt")

    keys = list(original["stringData"])
    value = original["stringData"][keys[0]]
    data = value.split("data:", 1)[1]
    flipped = ("B" if data[0] != "B" else "C") + data[1:]
    doc = copy.deepcopy(original)
    doc["stringData"][keys[0]] = value.split("data:", 1)[0] + "data:" + flipped
    tampered = {"a changed ciphertext": doc}
    doc = copy.deepcopy(original)
    doc["stringData"][keys[0]], doc["stringData"][keys[1]] = original["stringData"][keys[1]], value
    tampered["two ciphertexts swapped"] = doc
    doc = copy.deepcopy(original)
    del doc["stringData"][keys[1]]
    tampered["an encrypted value removed"] = doc
    for label, doc in tampered.items():
        out = attempt(label, doc)
        if out.returncode == 0:
            fail(f"sops decrypted a file with {label}")
        else:
            why = "MAC mismatch" if "MAC mismatch" in out.stderr else \
                "the value does not authenticate" if "Could not decrypt value" in out.stderr else \
                out.stderr.strip().splitlines()[-1]
            ok(f"decryption refuses {label}: {why}")

    # Control: without mac_only_encrypted the same label change is refused,
    # so the success above is the setting's doing.
    conf = work / "full-mac.yaml"
    conf.write_text(yaml.safe_dump({"creation_rules": [{"path_regex": r".*\.sops\.yaml$",
                                                        "encrypted_regex": "^(data|stringData)$",
                                                        "age": recipient}]}))
    plain = work / "control.sops.yaml"
    plain.write_text(yaml.safe_dump(clear, sort_keys=False))
    enc = run(["sops", "--config", str(conf), "--encrypt", "--in-place", str(plain)])
    if enc.returncode:
        return fail(f"control encryption: {enc.stderr}")
    doc = yaml.safe_load(plain.read_text())
    doc["metadata"]["labels"]["app.kubernetes.io/component"] = "changed"
    out = attempt("control", doc)
    if out.returncode == 0 or "MAC mismatch" not in out.stderr:
        fail("control: without mac_only_encrypted a changed label should be a MAC mismatch")
    else:
        ok("control: without mac_only_encrypted the same label change is a MAC mismatch")


# ---- committed examples --------------------------------------------------------------

def sops_rule() -> dict:
    conf = yaml.safe_load((REPO / ".sops.yaml").read_text())
    rules = [r for r in conf.get("creation_rules", []) if r.get("path_regex") == r".*\.sops\.yaml$"]
    if len(rules) != 1:
        sys.exit(".sops.yaml: expected exactly one creation rule with path_regex .*\\.sops\\.yaml$")
    return rules[0]


def secret_refs(docs: list[dict]) -> dict[str, set]:
    """Secret name -> keys the workloads read (None: the whole Secret)."""
    refs: dict[str, set] = {}

    def add(name, key=None):
        refs.setdefault(name, set()).add(key)

    def walk(node, parent=None):
        if isinstance(node, dict):
            if parent == "secretKeyRef" or (parent in ("accessKeyId", "secretAccessKey", "region",
                                                        "sessionToken") and "key" in node):
                add(node.get("name"), node.get("key"))
            elif parent == "secretRef" and "key" not in node:
                add(node.get("name"))
            elif parent == "secret" and ("secretName" in node or "items" in node or "name" in node):
                name = node.get("secretName") or node.get("name")
                for item in node.get("items") or [None]:
                    add(name, item and item.get("key"))
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, parent)
    for doc in docs:
        if doc.get("kind") not in ("Secret", "SopsSecret", "ExternalSecret"):
            walk(doc)
    return refs


def examples(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    s, rule = spec(), sops_rule()
    recipients = {r.strip() for r in str(rule.get("age", "")).split(",") if r.strip()}
    base = REPO / "deploy/secrets"
    if not recipients:
        return fail(".sops.yaml: no age recipient")
    if not check_layout(s, base):
        return
    n = 0
    for env, names in s["envs"].items():
        for form in ("", "-argocd"):
            for name in names:
                path = base / f"{env}{form}" / f"{name}.sops.yaml"
                rel = path.relative_to(REPO)
                doc = yaml.safe_load(path.read_text())
                meta = doc.get("sops") or {}
                got = {a.get("recipient") for a in meta.get("age") or []}
                others = [k for k in ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "key_groups") if meta.get(k)]
                if got != recipients or others:
                    fail(f"{rel}: encrypted to {sorted(got)} {others or ''}, .sops.yaml has {sorted(recipients)}")
                if meta.get("encrypted_regex") != rule.get("encrypted_regex") or \
                        meta.get("mac_only_encrypted") is not rule.get("mac_only_encrypted"):
                    fail(f"{rel}: not encrypted by the .sops.yaml rule "
                         f"({meta.get('encrypted_regex')}, mac_only_encrypted={meta.get('mac_only_encrypted')})")
                # Keys are not encrypted: names and keys can be checked without the key.
                body = doc if form == "" else (doc.get("spec", {}).get("secretTemplates") or [{}])[0]
                keys = [*(body.get("stringData") or {}), *(body.get("data") or {})]
                secret = as_secret({"metadata": {"name": body.get("name") or doc["metadata"].get("name"),
                                                 "namespace": doc["metadata"].get("namespace")},
                                    "stringData": dict.fromkeys(keys, "")})
                if doc.get("kind") != ("Secret" if form == "" else "SopsSecret") or \
                        doc["metadata"].get("name") != name or \
                        set(secret["data"]) != set(s["secrets"][name]) or secret["name"] != name:
                    fail(f"{rel}: {doc.get('kind')} {doc['metadata'].get('name')} with keys "
                         f"{sorted(secret['data'])}, expected {name} {sorted(s['secrets'][name])}")
                n += 1
    ok(f"{n} committed examples: encrypted to exactly the .sops.yaml recipients "
       f"({', '.join(sorted(recipients))}) by its rule; names and keys as example-secrets.sh --list")

    # What each engine applies, for strict schema validation.
    for env in s["envs"]:
        docs = render(base / env)
        if docs is not None:
            # kustomize-controller removes the sops metadata when it decrypts.
            for d in docs:
                d.pop("sops", None)
            (work / f"secrets-{env}.yaml").write_text(yaml.safe_dump_all(docs))
        docs = render(base / f"{env}-argocd")
        if docs is not None:
            (work / f"secrets-{env}-argocd.yaml").write_text(yaml.safe_dump_all(docs))
    ok(f"kubectl kustomize deploy/secrets/{{{','.join(s['envs'])}}}{{,-argocd}} renders")

    # External Secrets: one kustomization per provider, the production set.
    production = s["envs"]["production"]
    for provider in ("azure-key-vault", "vault"):
        docs = render(REPO / "deploy/external-secrets" / provider)
        if docs is None:
            continue
        (work / f"external-secrets-{provider}.yaml").write_text(yaml.safe_dump_all(docs))
        stores = [d for d in docs if d["kind"] == "ClusterSecretStore"]
        es = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ExternalSecret"}
        if len(stores) != 1 or s["namespace"] not in [ns for c in stores[0]["spec"].get("conditions", [])
                                                      for ns in c.get("namespaces", [])]:
            fail(f"external-secrets/{provider}: expected one ClusterSecretStore limited to {s['namespace']}")
            continue
        if sorted(es) != sorted(production):
            fail(f"external-secrets/{provider}: ExternalSecrets {sorted(es)}, expected {sorted(production)}")
        for name, d in es.items():
            spec_, target = d["spec"], d["spec"].get("target", {})
            keys = [x["secretKey"] for x in spec_.get("data", [])]
            problems = []
            if d["metadata"].get("namespace") != s["namespace"] or target.get("name") != name:
                problems.append(f"makes {d['metadata'].get('namespace')}/{target.get('name')}")
            if sorted(keys) != sorted(s["secrets"].get(name, {})):
                problems.append(f"keys {keys}, expected {sorted(s['secrets'].get(name, {}))}")
            if not spec_.get("refreshInterval") or target.get("creationPolicy") != "Owner" \
                    or not target.get("deletionPolicy"):
                problems.append("needs refreshInterval, creationPolicy Owner and a deletionPolicy")
            if spec_.get("secretStoreRef") != {"kind": "ClusterSecretStore", "name": stores[0]["metadata"]["name"]}:
                problems.append(f"reads from {spec_.get('secretStoreRef')}")
            for p in problems:
                fail(f"external-secrets/{provider}: ExternalSecret {name}: {p}")
        ok(f"external-secrets/{provider}: {len(es)} ExternalSecrets make exactly the production Secrets "
           f"(names, keys) through ClusterSecretStore {stores[0]['metadata']['name']}")

    # The secrets match what the workloads read.
    for env, names in s["envs"].items():
        docs = render(REPO / "deploy/kustomize/overlays" / env)
        if docs is None:
            continue
        refs = secret_refs(docs)
        # The Secrets must be where the pods are: an overlay in another
        # namespace than its secrets source would wait for them forever.
        where = secrets_namespace_mismatch(docs, s["namespaces"][env])
        if where:
            fail(f"overlays/{env} runs in {where}, deploy/secrets/{env} puts its Secrets in {s['namespaces'][env]}")
        if not secrets_namespace_mismatch(docs, "notes") and env == "dataset":
            fail("planted: the dataset's Secrets in notes (as at 81c028a) went unnoticed")
        for name, keys in sorted(refs.items()):
            if name in OPERATOR_MADE:
                continue
            if name not in names:
                # Production must ship every Secret it reads; single-node only
                # what it cannot start without (the rest is optional there).
                if env == "production":
                    fail(f"overlays/{env} reads Secret {name}, which deploy/secrets/{env} lacks")
                continue
            missing = sorted(k for k in keys if k and k not in s["secrets"][name])
            if missing:
                fail(f"overlays/{env} reads {name} keys {missing}, which the secret lacks")
        unread = sorted(set(names) - set(refs))
        ok(f"overlays/{env}: every Secret it reads ({', '.join(sorted(set(refs) - set(OPERATOR_MADE)))}) "
           f"is shipped with the keys read" + (f"; not read by any workload yet: {', '.join(unread)}"
                                              if unread else ""))


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("scan")
    p.add_argument("--root", type=Path, default=REPO)
    sub.add_parser("scan-selftest")
    for name in ("roundtrip", "examples"):
        sub.add_parser(name).add_argument("work", type=Path)
    args = ap.parse_args()
    if args.cmd == "scan":
        return scan(args.root)
    {"scan-selftest": scan_selftest, "roundtrip": lambda: roundtrip(args.work),
     "examples": lambda: examples(args.work)}[args.cmd]()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
