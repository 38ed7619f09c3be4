#!/usr/bin/env python3
"""Checks that a rendered overlay works once delivered to a cluster.

Schemas and policy say an object is well formed; these say the objects work
together when Argo CD, Flux or `kubectl apply -k` creates them, in the order
they create them. One check per way the kit has failed before (issue #11):

  entrypoint        a container that gives `args` but no `command` runs an
                    image whose ENTRYPOINT is known (Garage's image has none:
                    `args: [server]` alone made the kubelet exec `server`)
  config            the effective notes-api configuration is exactly what the
                    overlay's expected-config.env promises, and no key is set
                    both by an overlay and by one of its components (the
                    component's merge runs later and silently wins)
  migration-order   a migrations Job runs after what it references exists and
                    before the Deployments: never a PreSync hook that needs
                    objects of the Sync phase; sync waves in that order
  migration-skip    with NOTES_MIGRATE_ON_START=false every notes-api
                    Deployment waits for the schema (`migrate --check`)
  egress            a configuration that reaches outside the cluster (an
                    error-tracking DSN, an off-site s3:// backup) has a
                    NetworkPolicy that lets it
  backup-order      no CloudNativePG backup starts at apply time
                    (`immediate`) when its credentials are not part of the
                    same apply
  data-retention    what holds data (PersistentVolumeClaims, StatefulSets
                    with claim templates, CloudNativePG Clusters), and the
                    Namespace containing it, is never deleted by a GitOps
                    prune or an Application's deletion (Argo CD
                    Prune=false,Delete=false; Flux prune: disabled)
  placement         a workload sharing a ReadWriteOnce claim with another one
                    has a podAffinity to that one's node (preferred is
                    enough: local-path volumes carry their node affinity); with avoid-arm64, no
                    workload (notes-api's, PostgreSQL, Garage, Valkey) can
                    land on a node that is not amd64
  client-address    a render with an Ingress to notes-api trusts a proxy
                    range (NOTES_TRUSTED_PROXIES, private CIDRs only), or
                    every anonymous client shares Traefik's rate-limit bucket
  public-ops        /metrics, /docs and /openapi.json are not served to
                    anyone through the Ingress: their own paths, with a
                    Traefik ipAllowList of private ranges
  backup-retention  a render with the backup CronJob sets NOTES_BACKUP_KEEP
                    (>= 1): nightly full snapshots otherwise fill the volume
  runbook-wait      (on the runbooks themselves) a `kubectl wait` on a pod
                    comes after a `--for=create` wait on it: the pod of a
                    StatefulSet does not exist yet right after the apply
  scheduling        no pod template has a required podAffinity to pods that
                    a runbook step scales to zero (`kubectl scale ...
                    --replicas=0` in the docs given with --runbook): a Job
                    made from it in that state (the restore) would stay
                    Pending

usage:
  delivery_check.py --tree deploy/kustomize RENDERED.yaml:EXPECTED.env...
      (EXPECTED.env: the configuration the docs promise for that render;
      a name ending +avoid-arm64.yaml also checks that component's effect)
  delivery_check.py --self-test scripts/kit/fixtures/delivery
      (each fixture names the check it must fail: `# expect: <check>`, and
      may name runbook steps: `# runbook: kubectl ... scale ...`)
  --runbook-script SCRIPT (repeated): scripts whose `kubectl wait`s are
      checked like the documents' (runbook-wait)
  --runbook DOC.md (repeated): the documents whose `kubectl ... scale` commands
      are runbook states the scheduling check plays
"""

from __future__ import annotations

import argparse
import ipaddress
import pathlib
import re
import sys

import yaml

# Images whose ENTRYPOINT is known, so `args` alone is meaningful.
# notes-api's image: its name in the base (notes-api), in deploy/image.env,
# and as the recorded renders of the fixtures name it.
_IMAGE_ENV = pathlib.Path(__file__).resolve().parents[2] / "deploy/image.env"
_NAMES = {"notes-api", "ghcr.io/notes-api/notes-api"} | set(
    re.findall(r"^NOTES_IMAGE=(\S+)$", _IMAGE_ENV.read_text(), re.M) if _IMAGE_ENV.is_file() else [])
ENTRYPOINT_IMAGES = (
    re.compile(r"^(" + "|".join(re.escape(n) for n in sorted(_NAMES)) + r")([:@].*)?$"),  # ENTRYPOINT notes-api
)
CONFIG = "notes-api-config"
# Inline env that overrides the shared ConfigMap on purpose: the worker
# Deployment runs the jobs that API pods (NOTES_WORKERS=0) leave to it.
INTENDED_OVERRIDES = {("notes-worker", "NOTES_WORKERS")}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
PUBLIC_PROBE = ipaddress.ip_address("1.1.1.1")


def pod_spec(d):
    if d["kind"] == "CronJob":
        return d["spec"]["jobTemplate"]["spec"]["template"]
    return d["spec"]["template"]


def containers(spec):
    return spec.get("initContainers", []) + spec.get("containers", [])


def wave(d):
    return int(d["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))


def runs_notes_api(d):
    return any(ENTRYPOINT_IMAGES[0].match(c["image"]) for c in pod_spec(d)["spec"]["containers"])


def amd64_only(e):
    """A node selector expression that admits amd64 nodes only, or unlabelled ones."""
    return (e["key"] == "kubernetes.io/arch" and e["operator"] == "In" and set(e.get("values", [])) == {"amd64"}) \
        or (e["key"] == "notes-api.io/no-workloads" and e["operator"] == "DoesNotExist")


def parse_env(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


class Rendered:
    def __init__(self, path, docs):
        self.path = pathlib.Path(path)
        self.docs = [d for d in docs if d]
        self.extras = set(self.path.name.removesuffix(".yaml").split("+")[1:])
        self.errors: list[tuple[str, str]] = []

    def fail(self, check, msg):
        self.errors.append((check, msg))

    def of_kind(self, *kinds):
        return [d for d in self.docs if d["kind"] in kinds]

    def config(self):
        cms = [d for d in self.of_kind("ConfigMap") if d["metadata"]["name"].startswith(CONFIG)]
        return (cms[0].get("data") or {}) if len(cms) == 1 else None

    def named(self, kind, name):
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    # -- entrypoint ------------------------------------------------------------
    def check_entrypoint(self):
        for d in self.of_kind(*WORKLOADS):
            for c in containers(pod_spec(d)["spec"]):
                if c.get("args") and not c.get("command") \
                        and not any(p.match(c["image"]) for p in ENTRYPOINT_IMAGES):
                    self.fail("entrypoint", f"{d['kind']}/{d['metadata']['name']} container {c['name']}: "
                              f"`args` without `command` on {c['image']}, whose entrypoint is not known "
                              "(an image with only a CMD would exec the first arg)")

    # -- config ----------------------------------------------------------------
    def check_config(self, expected_file):
        data = self.config()
        if data is None:
            self.fail("config", f"exactly one {CONFIG} ConfigMap")
            return
        if expected_file is None:
            self.fail("config", f"{self.path.name}: no expected configuration given (RENDERED:EXPECTED)")
            return
        expected = parse_env(pathlib.Path(expected_file).read_text())
        for key in sorted(set(expected) | set(data)):
            if expected.get(key) != data.get(key):
                self.fail("config", f"{CONFIG} {key}: rendered {data.get(key)!r}, "
                          f"{expected_file} promises {expected.get(key)!r}")
        # Every notes-api container reads that ConfigMap, and no inline env
        # shadows one of its keys.
        name = self.named_config()
        for d in self.of_kind(*WORKLOADS):
            for c in containers(pod_spec(d)["spec"]):
                if not ENTRYPOINT_IMAGES[0].match(c["image"]):
                    continue
                refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
                if name not in refs:
                    self.fail("config", f"{d['kind']}/{d['metadata']['name']} {c['name']}: envFrom {name}")
                for e in c.get("env", []):
                    if e["name"] in data and (d["metadata"]["name"], e["name"]) not in INTENDED_OVERRIDES:
                        self.fail("config", f"{d['kind']}/{d['metadata']['name']} {c['name']}: "
                                  f"env {e['name']} shadows the ConfigMap's value")

    def named_config(self):
        return next(d["metadata"]["name"] for d in self.of_kind("ConfigMap")
                    if d["metadata"]["name"].startswith(CONFIG))

    # -- migrations ------------------------------------------------------------
    def references(self, d):
        spec = pod_spec(d)["spec"]
        refs = set()
        if spec.get("serviceAccountName"):
            refs.add(("ServiceAccount", spec["serviceAccountName"]))
        for c in containers(spec):
            for e in c.get("envFrom", []):
                if "configMapRef" in e:
                    refs.add(("ConfigMap", e["configMapRef"]["name"]))
                if "secretRef" in e:
                    refs.add(("Secret", e["secretRef"]["name"]))
        for v in spec.get("volumes", []):
            if "configMap" in v:
                refs.add(("ConfigMap", v["configMap"]["name"]))
            if "persistentVolumeClaim" in v:
                refs.add(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
            for s in v.get("projected", {}).get("sources", []):
                if "secret" in s:
                    refs.add(("Secret", s["secret"]["name"]))
        return {r: self.named(*r) for r in refs if self.named(*r) is not None}

    def check_migrations(self):
        jobs = [j for j in self.of_kind("Job")
                if j["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "migrations"]
        apps = [d for d in self.of_kind("Deployment") if runs_notes_api(d)]
        for job in jobs:
            name = f"Job/{job['metadata']['name']}"
            ann = job["metadata"].get("annotations", {})
            hook = ann.get("argocd.argoproj.io/hook", "")
            refs = self.references(job)
            if "PreSync" in hook and refs:
                self.fail("migration-order", f"{name}: a PreSync hook runs before the Sync phase creates "
                          f"{sorted(f'{k}/{n}' for k, n in refs)}; it waits for them forever on a first sync")
            for (kind, ref), obj in sorted(refs.items()):
                if wave(obj) >= wave(job):
                    self.fail("migration-order", f"{name} (wave {wave(job)}) must come after {kind}/{ref} "
                              f"(wave {wave(obj)})")
            for app in apps:
                if wave(app) <= wave(job):
                    self.fail("migration-order", f"Deployment/{app['metadata']['name']} (wave {wave(app)}) "
                              f"must come after {name} (wave {wave(job)})")
        data = self.config() or {}
        if data.get("NOTES_MIGRATE_ON_START", "true") == "false":
            if not jobs:
                self.fail("migration-skip", "NOTES_MIGRATE_ON_START=false and no migrations Job")
            for app in apps:
                waits = any(c.get("args", [])[:2] == ["migrate", "--check"]
                            for c in pod_spec(app)["spec"].get("initContainers", []))
                if not waits:
                    self.fail("migration-skip", f"Deployment/{app['metadata']['name']}: no init container "
                              "waits for the schema (`migrate --check`); a skipped Job (plain kubectl "
                              "apply on a finished, immutable Job) would run new code on the old schema")

    # -- egress ----------------------------------------------------------------
    def needs_external_egress(self):
        data = self.config() or {}
        reasons = []
        if data.get("NOTES_SENTRY_DSN") or data.get("NOTES_SENTRY_DSN_FILE"):
            reasons.append("an error-tracking DSN")
        endpoint = data.get("AWS_ENDPOINT", "")
        in_cluster = bool(re.match(r"^https?://[a-z0-9-]+(\.[a-z0-9-]+\.svc(\.cluster\.local)?)?(:\d+)?/?$",
                                   endpoint))
        for key in ("NOTES_BACKUP_TO", "NOTES_STORAGE_URL"):
            if data.get(key, "").startswith("s3://") and not in_cluster:
                reasons.append(f"{key}={data[key]} (AWS_ENDPOINT {endpoint or 'unset: AWS'})")
        return reasons

    def allows_public_https(self, labels):
        for p in self.of_kind("NetworkPolicy"):
            sel = p["spec"].get("podSelector", {}).get("matchLabels", {})
            if not all(labels.get(k) == v for k, v in sel.items()):
                continue
            for rule in p["spec"].get("egress", []):
                ports = rule.get("ports")
                if ports and not any(pt.get("port") == 443 for pt in ports):
                    continue
                for peer in rule.get("to", []):
                    block = peer.get("ipBlock")
                    if block and PUBLIC_PROBE in ipaddress.ip_network(block["cidr"]) \
                            and not any(PUBLIC_PROBE in ipaddress.ip_network(e) for e in block.get("except", [])):
                        return True
        return False

    def check_egress(self):
        reasons = self.needs_external_egress()
        if not reasons:
            return
        for d in self.of_kind(*WORKLOADS):
            if not runs_notes_api(d):
                continue
            labels = pod_spec(d)["metadata"].get("labels", {})
            if not self.allows_public_https(labels):
                self.fail("egress", f"{d['kind']}/{d['metadata']['name']} needs HTTPS out of the cluster "
                          f"for {', '.join(reasons)}, and no NetworkPolicy allows it (components/egress-external)")

    # -- CloudNativePG backups -------------------------------------------------
    def check_backup_order(self):
        secrets = {d["metadata"]["name"] for d in self.of_kind("Secret")}
        stores = {d["metadata"]["name"]: d for d in self.of_kind("ObjectStore")}
        for sb in self.of_kind("ScheduledBackup"):
            if not sb["spec"].get("immediate"):
                continue
            store = next(iter(stores.values()), None)
            creds = set()
            if store:
                for v in store["spec"]["configuration"].get("s3Credentials", {}).values():
                    if isinstance(v, dict) and "name" in v:
                        creds.add(v["name"])
            missing = sorted(creds - secrets)
            if missing or not store:
                self.fail("backup-order", f"ScheduledBackup/{sb['metadata']['name']}: `immediate: true` starts "
                          f"a backup at apply time, before {missing or 'its object store'} exist(s)")

    # -- data retention --------------------------------------------------------
    def check_data_retention(self):
        holders = [d for d in self.docs if d["kind"] in ("PersistentVolumeClaim", "Cluster")
                   or (d["kind"] == "StatefulSet" and d["spec"].get("volumeClaimTemplates"))]
        # Deleting a Namespace deletes everything in it, protected or not.
        spaces = {d["metadata"].get("namespace") for d in holders}
        namespaces = [d for d in self.of_kind("Namespace") if d["metadata"]["name"] in spaces]
        for d in holders + namespaces:
            ann = d["metadata"].get("annotations", {})
            opts = {o.strip() for o in ann.get("argocd.argoproj.io/sync-options", "").split(",")}
            if not {"Prune=false", "Delete=false"} <= opts \
                    or ann.get("kustomize.toolkit.fluxcd.io/prune") != "disabled":
                what = "holds data" if d["kind"] != "Namespace" else "contains what holds data"
                self.fail("data-retention", f"{d['kind']}/{d['metadata']['name']} {what} and a GitOps prune "
                          "would delete it (argocd.argoproj.io/sync-options: Prune=false,Delete=false, "
                          "kustomize.toolkit.fluxcd.io/prune: disabled)")

    # -- placement -------------------------------------------------------------
    def check_placement(self):
        rwo = {d["metadata"]["name"] for d in self.of_kind("PersistentVolumeClaim")
               if "ReadWriteOnce" in d["spec"].get("accessModes", [])}
        users: dict[str, list] = {}
        for d in self.of_kind(*WORKLOADS):
            for v in pod_spec(d)["spec"].get("volumes", []):
                claim = v.get("persistentVolumeClaim", {}).get("claimName")
                if claim in rwo:
                    users.setdefault(claim, []).append(d)
        for claim, ds in users.items():
            owners = [d for d in ds if d["kind"] in ("Deployment", "StatefulSet")]
            for d in ds:
                if d in owners or not owners:
                    continue
                aff = pod_spec(d)["spec"].get("affinity", {}).get("podAffinity", {})
                terms = aff.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
                    w["podAffinityTerm"] for w in aff.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
                owner_labels = pod_spec(owners[0])["metadata"].get("labels", {})
                pinned = any(t.get("topologyKey") == "kubernetes.io/hostname"
                             and all(owner_labels.get(k) == v
                                     for k, v in t.get("labelSelector", {}).get("matchLabels", {}).items())
                             for t in terms)
                if not pinned:
                    self.fail("placement", f"{d['kind']}/{d['metadata']['name']} mounts the ReadWriteOnce claim "
                              f"{claim} of {owners[0]['kind']}/{owners[0]['metadata']['name']} without a podAffinity "
                              "to its node (preferred: required would block it while that pod is down): on another "
                              "node it waits for the volume forever")
        if "avoid-arm64" in self.extras:
            for d in self.of_kind(*WORKLOADS, "Cluster"):
                spec = d["spec"] if d["kind"] == "Cluster" else pod_spec(d)["spec"]
                terms = (spec.get("affinity", {}).get("nodeAffinity", {})
                         .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", []))
                if not terms or not all(any(amd64_only(e) for e in t.get("matchExpressions", [])) for t in terms):
                    self.fail("placement", f"{d['kind']}/{d['metadata']['name']}: avoid-arm64 did not reach it, or "
                              "it excludes by NotIn (a 32-bit Pi is `arm`): want kubernetes.io/arch In [amd64] "
                              "or notes-api.io/no-workloads DoesNotExist, required")

    # -- clients behind Traefik ------------------------------------------------
    def ingresses_to_api(self):
        return [i for i in self.of_kind("Ingress")
                if any(path.get("backend", {}).get("service", {}).get("name") == "notes-api"
                       for rule in i["spec"].get("rules", []) for path in rule.get("http", {}).get("paths", []))]

    def check_client_address(self):
        """Behind an Ingress every request comes from Traefik: unless its
        X-Forwarded-For is believed, every anonymous client shares one
        rate-limit bucket (Traefik's address)."""
        if not self.ingresses_to_api():
            return
        raw = (self.config() or {}).get("NOTES_TRUSTED_PROXIES", "")
        nets = []
        for part in filter(None, (x.strip() for x in raw.split(","))):
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                self.fail("client-address", f"NOTES_TRUSTED_PROXIES: {part!r} is not an address or CIDR block")
        if not nets:
            self.fail("client-address", "an Ingress sends every request through Traefik and NOTES_TRUSTED_PROXIES is "
                      "unset: every anonymous client is charged to Traefik's address (set it to the pod network, "
                      "k3s: 10.42.0.0/16)")
        for n in nets:
            if not n.is_private or n.prefixlen < 8:
                self.fail("client-address", f"NOTES_TRUSTED_PROXIES trusts {n}: anyone there can name any client in "
                          "X-Forwarded-For (trust the pod network only)")

    OPS_PATHS = ("/metrics", "/docs", "/openapi.json")

    def check_public_ops(self):
        """/metrics, /docs, /openapi.json through the Ingress: only on a path
        of their own whose router allow-lists private addresses."""
        mws = {f"{m['metadata'].get('namespace')}-{m['metadata']['name']}@kubernetescrd": m
               for m in self.of_kind("Middleware")}
        routes = []  # (path, pathType, allow-listed)
        for i in self.ingresses_to_api():
            names = [x.strip() for x in i["metadata"].get("annotations", {})
                     .get("traefik.ingress.kubernetes.io/router.middlewares", "").split(",") if x.strip()]
            ranges = [r for n in names for r in (mws.get(n, {}).get("spec", {}).get("ipAllowList") or {})
                      .get("sourceRange", [])]
            private = bool(ranges) and all(ipaddress.ip_network(r, strict=False).is_private for r in ranges)
            for rule in i["spec"].get("rules", []):
                for path in rule.get("http", {}).get("paths", []):
                    routes.append((path.get("path", "/"), path.get("pathType", "Prefix"), private))
        if not routes:
            return
        for ops in self.OPS_PATHS:
            # Traefik (like the Ingress spec) takes the longest matching path.
            match = [r for r in routes if (r[1] == "Exact" and r[0] == ops)
                     or (r[1] != "Exact" and (ops == r[0] or ops.startswith(r[0].rstrip("/") + "/")))]
            if not match:
                continue
            best = max(match, key=lambda r: (len(r[0]), r[1] == "Exact"))
            if not best[2]:
                self.fail("public-ops", f"{ops} is served to anyone through the Ingress path {best[0]!r}: give it "
                          "a path of its own with a Traefik ipAllowList of private ranges, or leave it out")

    # -- backup retention ------------------------------------------------------
    def check_backup_retention(self):
        """Nightly full snapshots pile up until their volume is full: every
        render with the backup CronJob says how many to keep."""
        backups = [d for d in self.of_kind("CronJob") if runs_notes_api(d)
                   and "backup" in pod_spec(d)["spec"]["containers"][0].get("args", [])[:1]]
        keep = (self.config() or {}).get("NOTES_BACKUP_KEEP", "")
        for d in backups:
            if not (keep.isdigit() and int(keep) >= 1):
                self.fail("backup-retention", f"CronJob/{d['metadata']['name']} writes a full snapshot every night "
                          f"and NOTES_BACKUP_KEEP is {keep or 'unset'}: snapshots never expire and fill their "
                          "volume (set it in the overlay's notes-api-config, >= 1)")

    # -- scheduling ------------------------------------------------------------
    def check_scheduling(self, runbook_steps):
        """No pod template requires affinity to pods a runbook step scales to
        zero: a Job made from it then (a restore) would stay Pending."""
        zero = []
        for step in runbook_steps:
            m = re.search(r"kubectl\s+(?:-n\s+(\S+)\s+)?scale\s+(.*?)--replicas[= ]0\b", step)
            if not m:
                continue
            target = m.group(2).split()
            for d in self.of_kind("Deployment", "StatefulSet"):
                kind = {"Deployment": ("deployment", "deploy", "deployments"),
                        "StatefulSet": ("statefulset", "sts", "statefulsets")}[d["kind"]]
                name = d["metadata"]["name"]
                if ("--all" in target and target[0] in kind) or any(
                        x in (f"{k}/{name}" for k in kind) for x in target) or (target[0] in kind and name in target[1:]):
                    zero.append((d, step.strip()))
        for d in self.of_kind(*WORKLOADS):
            aff = pod_spec(d)["spec"].get("affinity", {}).get("podAffinity", {})
            for term in aff.get("requiredDuringSchedulingIgnoredDuringExecution", []):
                sel = term.get("labelSelector", {}).get("matchLabels", {})
                for z, step in zero:
                    labels = pod_spec(z)["metadata"].get("labels", {})
                    if sel and all(labels.get(k) == v for k, v in sel.items()):
                        self.fail("scheduling", f"{d['kind']}/{d['metadata']['name']} requires a pod of "
                                  f"{z['kind']}/{z['metadata']['name']} on its node, which the runbook scales to "
                                  f"zero (`{step}`): a Job made from it then stays Pending forever")

    def run(self, expected_config, runbook_steps=()):
        self.check_entrypoint()
        self.check_config(expected_config)
        self.check_migrations()
        self.check_egress()
        self.check_backup_order()
        self.check_data_retention()
        self.check_placement()
        self.check_backup_retention()
        self.check_client_address()
        self.check_public_ops()
        self.check_scheduling(runbook_steps)
        return self.errors


def overlay_component_overlaps(tree: pathlib.Path):
    """Keys an overlay merges into notes-api-config that one of its own
    components also sets: the component's merge runs later and wins."""
    errors = []

    def literals(k):
        keys = {}
        for g in k.get("configMapGenerator", []) or []:
            if g.get("name") == CONFIG:
                for lit in g.get("literals", []):
                    keys[lit.partition("=")[0]] = lit
        return keys

    for kfile in sorted((tree / "overlays").glob("*/kustomization.yaml")):
        k = yaml.safe_load(kfile.read_text())
        own = literals(k)
        for comp in k.get("components", []) or []:
            cfile = (kfile.parent / comp / "kustomization.yaml").resolve()
            clash = sorted(set(own) & set(literals(yaml.safe_load(cfile.read_text()))))
            for key in clash:
                errors.append(("config", f"{kfile.parent.name}: {key} is set by the overlay and by "
                               f"{comp}, whose merge runs later and wins"))
    return errors


def racing_waits(text: str) -> list[str]:
    """`kubectl wait` on a pod that a controller creates after the apply fails
    at once with "not found" unless a `--for=create` wait on it comes first."""
    created, out = set(), []
    for line in text.splitlines():
        m = re.search(r"kubectl\s.*\bwait\b.*?\b(pods?/[a-z0-9.-]+)", line)
        if not m:
            continue
        if "--for=create" in line:
            created.add(m.group(1))
        elif m.group(1) not in created:
            out.append(line.strip())
    return out


def report(path, errors):
    for check, msg in errors:
        print(f"  FAIL [{check}] {path}: {msg}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", type=pathlib.Path)
    ap.add_argument("--self-test", type=pathlib.Path)
    ap.add_argument("--runbook", dest="runbooks", action="append", default=[], type=pathlib.Path)
    ap.add_argument("--runbook-script", dest="runbook_scripts", action="append", default=[], type=pathlib.Path)
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()

    if args.self_test:
        bad = 0
        fixtures = sorted(args.self_test.glob("*.yaml"))
        for f in fixtures:
            text = f.read_text()
            expect = re.search(r"^# expect: (\S+)", text, re.M).group(1)
            config = re.search(r"^# expected-config: (\S+)", text, re.M)
            steps = re.findall(r"^# runbook: (.+)$", text, re.M)
            got = {c for c, _ in Rendered(f, yaml.safe_load_all(text)).run(config and config.group(1), steps)}
            if expect not in got:
                print(f"  FAIL self-test {f.name}: the {expect} check did not catch it (got {sorted(got)})")
                bad += 1
        print(f"  ok: delivery checks catch {len(fixtures) - bad}/{len(fixtures)} recorded defects")
        return 1 if bad else 0

    # Commands may wrap across lines in prose: read each document as one line.
    steps = [m.group(0) for doc in args.runbooks
             for m in re.finditer(r"kubectl\s+(?:-n\s+\S+\s+)?scale\s+[^`]*?--replicas[= ]0\b",
                                  re.sub(r"\n\s*", " ", doc.read_text()))]
    if args.runbooks:
        print(f"  runbook states (scheduling): {len(steps)} `kubectl scale --replicas=0` steps in "
              f"{', '.join(str(d) for d in args.runbooks)}")
        if not steps:
            print("  FAIL [scheduling] no runbook step found: the docs' commands moved?")
            return 1
    bad_waits = [f"{doc}: {w}" for doc in args.runbooks + args.runbook_scripts for w in racing_waits(doc.read_text())]
    for w in bad_waits:
        print(f"  FAIL [runbook-wait] {w}")
    planted = "kubectl apply -k deploy/kustomize/overlays/production\n" \
        "kubectl -n notes wait --for=jsonpath='{.status.phase}'=Running pod/garage-0 --timeout=5m\n"
    if args.runbooks and not racing_waits(planted):
        print("  FAIL [runbook-wait] planted: 81c028a's `kubectl wait pod/garage-0` right after the apply went unnoticed")
        return 1
    if args.runbooks and not bad_waits:
        print(f"  ok: runbook-wait: every `kubectl wait` on a pod in {len(args.runbooks + args.runbook_scripts)} runbooks "
              "waits for it to exist first (81c028a's garage-0 wait, planted, is caught)")
    errors = len(bad_waits)
    if args.tree:
        overlaps = overlay_component_overlaps(args.tree)
        report(args.tree, overlaps)
        errors += len(overlaps)
    for arg in args.files:
        f, _, expected = arg.partition(":")
        r = Rendered(f, yaml.safe_load_all(open(f)))
        found = r.run(expected or None, steps)
        report(r.path.name, found)
        errors += len(found)
        if not found:
            print(f"  ok: delivery checks on {r.path.name}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
