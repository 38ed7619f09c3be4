#!/usr/bin/env python3
"""What the Argo CD and Flux definitions (deploy/argocd, deploy/flux) promise,
checked offline against the tree they deliver.

Argo CD: every Application is admitted by its AppProject (source repositories,
destinations, and, for the Git sources, every rendered object's kind and
namespace); syncs automatically with prune + selfHeal, retries with backoff,
declares a sync wave (projects < operators < secrets < apps); Git paths exist
and render; Helm charts are pinned; no cascading deletion reaches data;
ignoreDifferences only where something else owns the field.

Flux: one GitRepository (the repo, main); every Kustomization prunes, has a
timeout, a path that exists and renders the way kustomize-controller renders
it; `apps` depends on the infrastructure and the secrets and waits; the
secrets decrypt with sops + the sops-age Secret; image automation follows the
tag contract of the release workflow and pushes to flux-image-updates, and
the setter marker in the production overlay resolves to that ImagePolicy.

Both engines: the same charts at the same versions with the same values, and
the same overlay paths.

Each check then runs on temporary copies of the tree with one defect planted
(an Application outside its project, a missing dependency, ...) and must fail
there: a check that cannot fail proves nothing.

usage: check_gitops.py [--repo DIR] [--render-dir DIR] [--no-negative]
  --render-dir: write every Argo CD / Flux object to DIR/*.yaml for the schema
  validation (validate_manifests.py, validate_crds.mjs) that follows.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO_URL = "https://github.com/notes-api/notes-api.git"
BRANCH = "main"
IN_CLUSTER = "https://kubernetes.default.svc"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
WAVE = "argocd.argoproj.io/sync-wave"
IMAGE_ENV = "deploy/image.env"  # NOTES_IMAGE=<the image's one name>
# The release workflow's tags (docs/release.md): sha-<commit>-<unix time>.
TAG_PATTERN = r"^sha-(?P<sha>[a-f0-9]{7,40})-(?P<ts>[0-9]{10,})$"
PUSH_BRANCH = "flux-image-updates"
PINNED = re.compile(r"^v?\d+\.\d+\.\d+$")
SETTER = re.compile(r'#\s*\{"\$imagepolicy":\s*"([^"]+)"\}')

# Cluster-scoped kinds of Kubernetes itself; custom kinds take their scope
# from the vendored schemas (deploy/schemas/crds/*.yaml, `scope:`).
CORE_CLUSTER_SCOPED = {
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("storage.k8s.io", "StorageClass"), ("storage.k8s.io", "CSIDriver"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
}
CORE_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}

# Cluster-scoped kinds that only the operator charts create (Helm sources are
# not rendered offline); a whitelist entry must be one of these or be used
# by a rendered Git source.
HELM_CLUSTER_KINDS = {
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
}
# Project destinations no Application names, only a chart writes into.
HELM_EXTRA_NAMESPACES = {
    "kube-system": "kube-prometheus-stack renders the CoreDNS metrics Service there",
}
# The only ignoreDifferences allowed: (application, group, kind, name,
# pointer) -> who owns that field.
IGNORE_DIFFERENCES = {
    ("notes-api-production", "apps", "Deployment", "notes-api", "/spec/replicas"):
        "the production overlay's HorizontalPodAutoscaler",
}
# Charts one engine installs and the other does not need.
ARGO_ONLY_CHARTS = {
    "sops-secrets-operator": "Flux decrypts SOPS in kustomize-controller itself",
}
# Deleting an Application with the resources finalizer deletes what it
# rendered: never any of these, nor anything in the namespace `notes`.
NO_CASCADE_KINDS = {
    ("apps", "StatefulSet"), ("", "PersistentVolume"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("postgresql.cnpg.io", "Cluster"), ("barmancloud.cnpg.io", "ObjectStore"),
}
NO_CASCADE_NAMESPACE = "notes"

_render_cache: dict = {}


class Checks:
    def __init__(self, repo: Path, quiet: bool = False):
        self.repo = repo.resolve()
        self.quiet = quiet
        self.errors: list[str] = []
        self.scopes = self._crd_scopes()
        env = self.repo / IMAGE_ENV
        found = re.findall(r"^NOTES_IMAGE=(\S+)$", env.read_text(), re.M) if env.is_file() else []
        self.image = found[0] if len(found) == 1 else f"<no single NOTES_IMAGE in {IMAGE_ENV}>"
        self._digests: dict = {}

    # ---- helpers -------------------------------------------------------------
    def fail(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}")

    def ok(self, msg: str) -> None:
        if not self.quiet:
            print(f"  ok: {msg}")

    def _crd_scopes(self) -> dict:
        scopes = {}
        for p in sorted((self.repo / "deploy/schemas/crds").glob("*.yaml")):
            doc = yaml.safe_load(p.read_text())
            group = doc["apiVersion"].split("/")[0]
            scopes[(group, doc["kind"])] = doc.get("scope", "Namespaced")
        return scopes

    def _digest(self, part: str) -> str:
        """Content hash of a part of deploy/, so renders of unchanged trees are
        shared between the real tree and the negative-test copies."""
        if part not in self._digests:
            h = hashlib.sha256()
            base = self.repo / "deploy"
            for p in sorted(base.rglob("*")):
                rel = p.relative_to(base).as_posix()
                top = rel.split("/")[0]
                inside = top == part if part in ("argocd", "flux") else top not in ("argocd", "flux")
                if inside and p.is_file():
                    h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
            self._digests[part] = h.hexdigest()
        return self._digests[part]

    def render(self, rel: str, flux: bool = False) -> list[dict]:
        """kubectl kustomize, as the engine does it: Argo CD with kustomize's
        default load restrictor, Flux with none (kustomize-controller confines
        file loads to the repository instead, checked by escaping_files)."""
        rel = rel.removeprefix("./").rstrip("/")
        parts = [self._digest("rest")]
        if rel.startswith("deploy/argocd"):
            parts.append(self._digest("argocd"))
        if rel.startswith("deploy/flux"):
            parts.append(self._digest("flux"))
        key = (rel, flux, tuple(parts))
        if key not in _render_cache:
            cmd = ["kubectl", "kustomize", str(self.repo / rel)]
            if flux:
                cmd[2:2] = ["--load-restrictor", "LoadRestrictionsNone"]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                _render_cache[key] = RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr else "failed")
            else:
                _render_cache[key] = [d for d in yaml.safe_load_all(res.stdout) if d]
        val = _render_cache[key]
        if isinstance(val, Exception):
            raise val
        return [dict(d) for d in val]

    def try_render(self, where: str, rel: str, flux: bool = False) -> list[dict] | None:
        if not (self.repo / rel.removeprefix("./")).is_dir():
            self.fail(where, f"path {rel} does not exist in the repository")
            return None
        try:
            return self.render(rel, flux)
        except RuntimeError as err:
            self.fail(where, f"path {rel} does not render with kubectl kustomize: {err}")
            return None

    def group_kind(self, obj: dict) -> tuple[str, str]:
        api = obj.get("apiVersion", "")
        return (api.split("/")[0] if "/" in api else "", obj.get("kind", ""))

    def cluster_scoped(self, obj: dict) -> bool:
        gk = self.group_kind(obj)
        if gk in self.scopes:
            return self.scopes[gk] == "Cluster"
        if gk in CORE_CLUSTER_SCOPED:
            return True
        if gk[0] in CORE_GROUPS or gk[0].endswith(".k8s.io"):
            return False
        raise KeyError(f"{gk[1]} ({gk[0]}): no vendored schema says its scope")

    def unlisted_files(self, top: Path, exempt: set[str]) -> list[str]:
        """YAML files no kustomization.yaml lists: the engine never applies them."""
        listed = set()
        for k in top.rglob("kustomization.yaml"):
            doc = yaml.safe_load(k.read_text()) or {}
            for r in doc.get("resources", []) + doc.get("components", []) + [
                    x["path"] for x in doc.get("patches", []) if "path" in x]:
                p = (k.parent / r).resolve()
                if p.is_file():
                    listed.add(p)
        return sorted(
            p.relative_to(self.repo).as_posix() for p in top.rglob("*.yaml")
            if p.name != "kustomization.yaml" and p.resolve() not in listed
            and p.relative_to(top).as_posix() not in exempt)

    def escaping_files(self, rel: str, seen: set | None = None) -> list[str]:
        """Files a kustomization tree reads from outside the repository."""
        seen = set() if seen is None else seen
        d = (self.repo / rel).resolve()
        if d in seen or not (d / "kustomization.yaml").is_file():
            return []
        seen.add(d)
        doc = yaml.safe_load((d / "kustomization.yaml").read_text()) or {}
        refs = []
        for gen in doc.get("configMapGenerator", []) + doc.get("secretGenerator", []):
            refs += [f.split("=", 1)[-1] for f in gen.get("files", [])] + gen.get("envs", [])
        refs += [p["path"] for p in doc.get("patches", []) if "path" in p]
        out = []
        for r in refs + doc.get("resources", []) + doc.get("components", []):
            p = (d / r).resolve()
            if not p.is_relative_to(self.repo):
                out.append(f"{(d / 'kustomization.yaml').relative_to(self.repo)} -> {r}")
            elif p.is_dir():
                out += self.escaping_files(p.relative_to(self.repo).as_posix(), seen)
        return out

    # ---- Argo CD -----------------------------------------------------------------
    def argo(self) -> list[dict]:
        top = self.repo / "deploy/argocd"
        objects: list[dict] = []
        for f in self.unlisted_files(top, {"root.yaml", "install/argocd-cm.yaml"}):
            self.fail(f, "listed by no kustomization.yaml: Argo CD never applies it")
        root = yaml.safe_load((top / "root.yaml").read_text())
        objects.append(root)
        objects.append(yaml.safe_load((top / "install/argocd-cm.yaml").read_text()))

        try:
            default = self.render("deploy/argocd/apps")
        except RuntimeError as err:
            self.fail("deploy/argocd/apps", f"does not render: {err}")
            return objects
        # Every layout directory, the ones the root lists and the alternatives.
        apps: dict[str, tuple[dict, str]] = {}
        for d in sorted((top / "apps").iterdir()):
            if (d / "kustomization.yaml").is_file():
                for o in self.try_render(f"deploy/argocd/apps/{d.name}", f"deploy/argocd/apps/{d.name}") or []:
                    if o.get("kind") == "Application":
                        apps[o["metadata"]["name"]] = (o, d.name)
                    objects.append(o)
        projects = {o["metadata"]["name"]: o for o in self.try_render("deploy/argocd/projects", "deploy/argocd/projects") or []
                    if o.get("kind") == "AppProject"}
        objects += projects.values()
        in_root = {o["metadata"]["name"] for o in default if o.get("kind") == "Application"}
        for name in sorted(in_root - set(apps)):
            self.fail(name, "rendered by deploy/argocd/apps but by none of its layout directories")

        # The root.
        src = root["spec"].get("source", {})
        if (src.get("repoURL"), src.get("path"), src.get("targetRevision")) != (REPO_URL, "deploy/argocd/apps", BRANCH):
            self.fail("deploy/argocd/root.yaml", f"must sync {REPO_URL} {BRANCH} deploy/argocd/apps")
        if root["spec"].get("project") not in projects:
            self.fail("deploy/argocd/root.yaml", f"project {root['spec'].get('project')} is not in deploy/argocd/projects")
        for p in projects.values():
            if p["metadata"]["name"] != root["spec"].get("project") and {"group": "argoproj.io", "kind": "Application"} not in p["spec"].get("namespaceResourceBlacklist", []):
                self.fail(f"AppProject {p['metadata']['name']}", "must blacklist argoproj.io Application: a nested Application could leave the project")

        every = dict(apps)
        every[root["metadata"]["name"]] = (root, "")
        used_cluster_kinds: set = set()
        used_namespaces: set = set()
        waves: dict[str, int] = {}
        tiers: dict[str, str] = {}
        for name, (app, layout) in sorted(every.items()):
            where = f"Application {name}"
            spec = app.get("spec", {})
            proj = projects.get(spec.get("project"))
            if proj is None:
                self.fail(where, f"project {spec.get('project')!r} is not defined in deploy/argocd/projects")
                continue
            self._argo_sync_policy(where, app)
            try:
                waves[name] = int(app["metadata"].get("annotations", {})[WAVE])
            except (KeyError, ValueError):
                self.fail(where, f"no integer {WAVE} annotation")
            dest = spec.get("destination", {})
            server, ns = dest.get("server"), dest.get("namespace")
            if not self._admits_destination(proj, server, ns):
                self.fail(where, f"destination {server} namespace {ns} not admitted by AppProject {proj['metadata']['name']}")
            used_namespaces.add(ns)
            sources = spec.get("sources") or [spec.get("source") or {}]
            refs = {s.get("ref"): s for s in sources if s.get("ref")}
            rendered: list[dict] = []
            helm = False
            for s in sources:
                url = s.get("repoURL", "")
                if not any(fnmatch.fnmatchcase(url, pat) for pat in proj["spec"].get("sourceRepos", [])):
                    self.fail(where, f"source repository {url} not admitted by AppProject {proj['metadata']['name']}")
                if s.get("chart"):
                    helm = True
                    if not PINNED.match(str(s.get("targetRevision", ""))):
                        self.fail(where, f"chart {s['chart']} not pinned to one version: {s.get('targetRevision')!r}")
                    for vf in s.get("helm", {}).get("valueFiles", []):
                        m = re.match(r"^\$([a-z]+)/(.+)$", vf)
                        if not m or m.group(1) not in refs or refs[m.group(1)].get("repoURL") != REPO_URL:
                            self.fail(where, f"value file {vf} is not a $ref into {REPO_URL}")
                        elif not (self.repo / m.group(2)).is_file():
                            self.fail(where, f"value file {m.group(2)} does not exist")
                    continue
                if url != REPO_URL:
                    self.fail(where, f"Git source {url} is not this repository: it cannot be checked offline")
                    continue
                if s.get("targetRevision") != BRANCH:
                    self.fail(where, f"{url} must follow {BRANCH}, not {s.get('targetRevision')!r}")
                if s.get("ref"):
                    continue
                objs = self.try_render(where, s.get("path", ""))
                if objs is None:
                    continue
                rendered += objs
                for o in objs:
                    self._argo_admit_object(where, proj, server, ns, o, used_cluster_kinds, used_namespaces)
            paths = [s.get("path", "") for s in sources if s.get("path")]
            tiers[name] = ("app" if any(p.startswith("deploy/kustomize/overlays/") for p in paths)
                           else "secrets" if any(p.startswith(("deploy/secrets/", "deploy/external-secrets/")) for p in paths)
                           else "root" if name == root["metadata"]["name"] else "infrastructure")
            self._argo_namespace_creation(where, app, helm, rendered)
            self._argo_finalizer(where, app, helm, rendered)
            self._argo_ignore_differences(where, name, app, rendered)

        self._argo_projects(projects, root, used_cluster_kinds, used_namespaces, apps)
        self._argo_waves(projects, waves, tiers)
        self._argo_layouts(apps, default)
        if not self.errors:
            self.ok(f"Argo CD: the root + {len(in_root)} Applications of its default layout + {len(apps) - len(in_root)} "
                    f"of the other layouts, {len(projects)} AppProjects: admitted, automated prune+selfHeal, retry "
                    "with backoff, waves projects < infrastructure < secrets < apps, Git paths render, charts pinned")
        return objects

    def _argo_sync_policy(self, where: str, app: dict) -> None:
        sp = app["spec"].get("syncPolicy") or {}
        auto = sp.get("automated") or {}
        if auto.get("prune") is not True or auto.get("selfHeal") is not True or auto.get("enabled") is False:
            self.fail(where, "syncPolicy.automated needs prune: true and selfHeal: true")
        retry = sp.get("retry") or {}
        backoff = retry.get("backoff") or {}
        if not (isinstance(retry.get("limit"), int) and retry["limit"] > 0
                and all(backoff.get(k) for k in ("duration", "factor", "maxDuration"))):
            self.fail(where, "syncPolicy.retry needs a positive limit and backoff duration, factor, maxDuration")

    @staticmethod
    def _admits_destination(proj: dict, server: str | None, ns: str | None) -> bool:
        return any(fnmatch.fnmatchcase(server or "", d.get("server", "*"))
                   and fnmatch.fnmatchcase(ns or "", d.get("namespace", "*"))
                   for d in proj["spec"].get("destinations", []))

    def _argo_admit_object(self, where, proj, server, dest_ns, o, used_kinds, used_namespaces) -> None:
        gk = self.group_kind(o)
        name = f"{gk[1]} {o.get('metadata', {}).get('name')}"
        blacklisted = [(b["group"], b["kind"]) for b in proj["spec"].get("namespaceResourceBlacklist", [])]
        whitelisted = [(w["group"], w["kind"]) for w in proj["spec"].get("namespaceResourceWhitelist", [])]
        try:
            cluster = self.cluster_scoped(o)
        except KeyError as err:
            self.fail(where, f"renders {name}: {err}")
            return
        if cluster:
            white = [(w["group"], w["kind"]) for w in proj["spec"].get("clusterResourceWhitelist", [])]
            if not any(fnmatch.fnmatchcase(gk[0], g) and fnmatch.fnmatchcase(gk[1], k) for g, k in white):
                self.fail(where, f"renders cluster-scoped {name}, not in the clusterResourceWhitelist of AppProject {proj['metadata']['name']}")
            used_kinds.add(gk)
            return
        ns = o.get("metadata", {}).get("namespace") or dest_ns
        used_namespaces.add(ns)
        if not self._admits_destination(proj, server, ns):
            self.fail(where, f"renders {name} into namespace {ns}, not admitted by AppProject {proj['metadata']['name']}")
        if any(fnmatch.fnmatchcase(gk[0], g) and fnmatch.fnmatchcase(gk[1], k) for g, k in blacklisted):
            self.fail(where, f"renders {name}, blacklisted by AppProject {proj['metadata']['name']}")
        if "namespaceResourceWhitelist" in proj["spec"] and not any(
                fnmatch.fnmatchcase(gk[0], g) and fnmatch.fnmatchcase(gk[1], k) for g, k in whitelisted):
            self.fail(where, f"renders {name}, not in the namespaceResourceWhitelist of AppProject {proj['metadata']['name']}")

    def _argo_namespace_creation(self, where, app, helm, rendered) -> None:
        ns = app["spec"].get("destination", {}).get("namespace")
        if ns in (None, "", "argocd"):
            return
        writes_ns = helm or any(not self._safe_cluster_scoped(o) and (o["metadata"].get("namespace") or ns) == ns for o in rendered)
        opts = (app["spec"].get("syncPolicy") or {}).get("syncOptions") or []
        if writes_ns and "CreateNamespace=true" not in opts:
            self.fail(where, f"deploys into namespace {ns} without syncOptions CreateNamespace=true")

    def _safe_cluster_scoped(self, o) -> bool:
        try:
            return self.cluster_scoped(o)
        except KeyError:
            return False

    def _argo_finalizer(self, where, app, helm, rendered) -> None:
        if FINALIZER not in app["metadata"].get("finalizers", []):
            return
        if helm:
            self.fail(where, "a chart with the resources finalizer: deleting the Application deletes its CRDs and every object of their kinds")
        ns = app["spec"].get("destination", {}).get("namespace")
        for o in rendered:
            gk = self.group_kind(o)
            ons = None if self._safe_cluster_scoped(o) else (o["metadata"].get("namespace") or ns)
            if gk in NO_CASCADE_KINDS or ons == NO_CASCADE_NAMESPACE:
                self.fail(where, f"the resources finalizer would delete {gk[1]} {o['metadata']['name']} with the Application")
                return

    def _argo_ignore_differences(self, where, name, app, rendered) -> None:
        entries = app["spec"].get("ignoreDifferences", [])
        for e in entries:
            for ptr in e.get("jsonPointers", []) + e.get("jqPathExpressions", []):
                key = (name, e.get("group", ""), e.get("kind"), e.get("name"), ptr)
                if key not in IGNORE_DIFFERENCES:
                    self.fail(where, f"ignoreDifferences {key[1:]}: no owner of that field is known (add it to IGNORE_DIFFERENCES with the reason)")
                    continue
                target = [o for o in rendered if self.group_kind(o) == (key[1], key[2]) and o["metadata"]["name"] == key[3]]
                hpa = [o for o in rendered if o.get("kind") == "HorizontalPodAutoscaler"
                       and o["spec"]["scaleTargetRef"].get("kind") == key[2] and o["spec"]["scaleTargetRef"].get("name") == key[3]]
                if not target or (key[4] == "/spec/replicas" and not hpa):
                    self.fail(where, f"ignoreDifferences {key[1:]}: the object or the HorizontalPodAutoscaler owning the field is not rendered")
        opts = (app["spec"].get("syncPolicy") or {}).get("syncOptions") or []
        if entries and "RespectIgnoreDifferences=true" not in opts:
            self.fail(where, "ignoreDifferences without RespectIgnoreDifferences=true: a sync would still reset the field")

    def _argo_projects(self, projects, root, used_kinds, used_namespaces, apps) -> None:
        for pname, p in projects.items():
            where = f"AppProject {pname}"
            spec = p["spec"]
            for r in spec.get("sourceRepos", []):
                if "*" in r:
                    self.fail(where, f"sourceRepos entry {r!r} is a wildcard")
            for d in spec.get("destinations", []):
                if "*" in d.get("server", "*") or "*" in d.get("namespace", "*"):
                    self.fail(where, f"destination {d} is a wildcard")
            if pname == root["spec"].get("project"):
                continue
            for w in spec.get("clusterResourceWhitelist", []):
                gk = (w["group"], w["kind"])
                if "*" in gk[0] or "*" in gk[1]:
                    self.fail(where, f"clusterResourceWhitelist entry {gk} is a wildcard")
                elif gk not in used_kinds and gk not in HELM_CLUSTER_KINDS:
                    self.fail(where, f"clusterResourceWhitelist entry {gk} is used by no Application")
            names = {d.get("namespace") for d in spec.get("destinations", [])}
            for ns in sorted(names - used_namespaces - set(HELM_EXTRA_NAMESPACES)):
                self.fail(where, f"destination namespace {ns} is used by no Application")

    def _argo_waves(self, projects, waves, tiers) -> None:
        proj_waves = []
        for p in projects.values():
            try:
                proj_waves.append(int(p["metadata"].get("annotations", {})[WAVE]))
            except (KeyError, ValueError):
                self.fail(f"AppProject {p['metadata']['name']}", f"no integer {WAVE} annotation")
        by_tier: dict[str, list[int]] = {}
        for name, tier in tiers.items():
            if name in waves and tier != "root":
                by_tier.setdefault(tier, []).append(waves[name])
        order = [("projects", proj_waves)] + [(t, by_tier.get(t, [])) for t in ("infrastructure", "secrets", "app")]
        for (a, wa), (b, wb) in zip(order, order[1:]):
            if wa and wb and max(wa) >= min(wb):
                self.fail("deploy/argocd/apps", f"sync waves: every {a} wave must come before every {b} wave ({max(wa)} >= {min(wb)})")

    def _argo_layouts(self, apps, default) -> None:
        # Each environment's secrets travel with its app, in the same layout.
        for name, (app, layout) in apps.items():
            for s in app["spec"].get("sources") or [app["spec"].get("source", {})]:
                m = re.match(r"^deploy/kustomize/overlays/([a-z-]+)$", s.get("path", ""))
                # dev runs in development mode: no master key, no secrets.
                if m and m.group(1) != "dev":
                    want = f"deploy/secrets/{m.group(1)}-argocd"
                    # Or, production with the opt-in External Secrets listed
                    # in the root: its store and ExternalSecrets.
                    eso = m.group(1) == "production" and any(
                        s2.get("path", "").startswith("deploy/external-secrets/") for a2 in default
                        if a2.get("kind") == "Application"
                        for s2 in a2["spec"].get("sources") or [a2["spec"].get("source", {})])
                    if not eso and not any(s2.get("path") == want for a2, l2 in apps.values() if l2 == layout
                                           for s2 in a2["spec"].get("sources") or [a2["spec"].get("source", {})]):
                        self.fail(f"Application {name}", f"no Application in layout {layout} syncs {want}")
        # Two overlays in one namespace would fight over the same objects.
        seen: dict[str, str] = {}
        for o in default:
            if o.get("kind") != "Application":
                continue
            for s in o["spec"].get("sources") or [o["spec"].get("source", {})]:
                if s.get("path", "").startswith("deploy/kustomize/overlays/"):
                    ns = o["spec"]["destination"].get("namespace")
                    if ns in seen:
                        self.fail("deploy/argocd/apps/kustomization.yaml", f"{seen[ns]} and {s['path']} both deploy into namespace {ns}: list one layout")
                    seen[ns] = s["path"]

    # ---- Flux ----------------------------------------------------------------------
    def flux(self) -> list[dict]:
        top = self.repo / "deploy/flux"
        objects: list[dict] = []
        for f in self.unlisted_files(top, set()):
            self.fail(f, "listed by no kustomization.yaml: Flux never applies it")
        clusters = sorted(d.name for d in (top / "clusters").iterdir() if d.is_dir())
        if "production" not in clusters:
            self.fail("deploy/flux/clusters", "no production cluster")
        summary = []
        for env in clusters:
            before = len(self.errors)
            objs = self._flux_cluster(env)
            objects += objs
            if len(self.errors) == before:
                summary.append(env)
        if not self.errors:
            self.ok(f"Flux: clusters {', '.join(summary)}: one GitRepository ({BRANCH}); Kustomizations prune, "
                    "time out, render as kustomize-controller renders them; apps depend on infrastructure + "
                    "secrets and wait; secrets decrypt with sops + sops-age; image automation per the tag contract")
        return objects

    def _flux_cluster(self, env: str) -> list[dict]:
        rel = f"deploy/flux/clusters/{env}"
        where0 = rel
        objs = self.try_render(where0, rel, flux=True)
        if objs is None:
            return []
        out = list(objs)
        by_kind: dict[str, list[dict]] = {}
        for o in objs:
            by_kind.setdefault(o["kind"], []).append(o)
        repos = by_kind.get("GitRepository", [])
        if len(repos) != 1:
            self.fail(where0, f"expected one GitRepository, found {len(repos)}")
            return out
        repo = repos[0]
        if (repo["spec"].get("url"), (repo["spec"].get("ref") or {}).get("branch")) != (REPO_URL, BRANCH) or not repo["spec"].get("interval"):
            self.fail(f"{where0} GitRepository", f"must follow {REPO_URL} branch {BRANCH} with an interval")
        kss = {k["metadata"]["name"]: k for k in by_kind.get("Kustomization", [])}
        rendered: dict[str, list[dict]] = {}
        for name, ks in kss.items():
            where = f"{where0} Kustomization {name}"
            spec = ks["spec"]
            if spec.get("prune") is not True:
                self.fail(where, "prune must be true")
            if not spec.get("timeout"):
                self.fail(where, "no timeout")
            sref = spec.get("sourceRef", {})
            if sref.get("kind") != "GitRepository" or sref.get("name") != repo["metadata"]["name"]:
                self.fail(where, f"sourceRef must be GitRepository {repo['metadata']['name']}")
            path = spec.get("path", "")
            if not path.startswith("./"):
                self.fail(where, f"path {path!r} must be relative to the repository root (./...)")
            for d in spec.get("dependsOn", []):
                if d["name"] not in kss:
                    self.fail(where, f"dependsOn {d['name']}: no such Kustomization in {rel}")
            if path.removeprefix("./") == rel:
                continue
            r = self.try_render(where, path, flux=True)
            if r is None:
                continue
            for e in self.escaping_files(path.removeprefix("./")):
                self.fail(where, f"reads a file outside the repository ({e}): Flux refuses it")
            rendered[name] = r
            if not path.startswith(("./deploy/secrets/", "./deploy/kustomize/")):
                out += r
        self._flux_cycles(where0, kss)

        # A variant directory (production-external-secrets) delivers the
        # layout its name starts with, its Secrets from External Secrets.
        layout = env.removesuffix("-external-secrets")
        eso = layout != env
        infra = [n for n, k in kss.items() if k["spec"].get("path", "").startswith("./deploy/cluster/")]
        want_secrets = "./deploy/external-secrets/" if eso else f"./deploy/secrets/{layout}"
        secrets = [n for n, k in kss.items() if (k["spec"].get("path", "").startswith(want_secrets) if eso
                                                 else k["spec"].get("path") == want_secrets)]
        apps = [n for n, k in kss.items() if k["spec"].get("path") == f"./deploy/kustomize/overlays/{layout}"]
        for label, names in (("infrastructure (./deploy/cluster/...)", infra), (f"secrets ({want_secrets})", secrets),
                             (f"apps (./deploy/kustomize/overlays/{layout})", apps)):
            if not names:
                self.fail(where0, f"no {label} Kustomization")
        for n in infra + [n for n, r in rendered.items() if any(o["kind"] == "HelmRelease" for o in r)]:
            if kss[n]["spec"].get("wait") is not True:
                self.fail(f"{where0} Kustomization {n}", "infrastructure must wait: true (what depends on it needs it Ready)")
        for n in secrets:
            dec = kss[n]["spec"].get("decryption") or {}
            if not eso and (dec.get("provider") != "sops" or (dec.get("secretRef") or {}).get("name") != "sops-age"):
                self.fail(f"{where0} Kustomization {n}", "must decrypt with provider sops and secretRef sops-age")
            self._flux_secret_namespaces(where0, n, kss, rendered, objs)
        for n in apps:
            spec = kss[n]["spec"]
            deps = {d["name"] for d in spec.get("dependsOn", [])}
            for need, label in ((infra, "infrastructure"), (secrets, "secrets")):
                missing = sorted(set(need) - deps)
                if missing:
                    self.fail(f"{where0} Kustomization {n}", f"must dependsOn the {label} Kustomization ({', '.join(missing)})")
            deployments = {o["metadata"]["name"] for o in rendered.get(n, []) if o["kind"] == "Deployment"}
            checked = {h["name"] for h in spec.get("healthChecks", []) if h.get("kind") == "Deployment"}
            if spec.get("wait") is not True and not deployments <= checked:
                self.fail(f"{where0} Kustomization {n}", f"must wait: true or healthCheck every Deployment ({', '.join(sorted(deployments - checked))})")
        self._flux_helm(where0, [o for r in rendered.values() for o in r])
        if layout == "production" and not by_kind.get("ImageUpdateAutomation"):
            self.fail(where0, "production has no image automation")
        for iua in by_kind.get("ImageUpdateAutomation", []):
            self._flux_image_automation(where0, iua, repo, by_kind)
        return out

    def _flux_cycles(self, where, kss) -> None:
        state: dict[str, int] = {}

        def visit(n, trail):
            if state.get(n) == 1:
                self.fail(where, f"dependsOn cycle: {' -> '.join(trail + [n])}")
                return
            if state.get(n) == 2 or n not in kss:
                return
            state[n] = 1
            for d in kss[n]["spec"].get("dependsOn", []):
                visit(d["name"], trail + [n])
            state[n] = 2
        for n in kss:
            visit(n, [])

    def _flux_secret_namespaces(self, where0, name, kss, rendered, cluster_objs) -> None:
        spec = kss[name]["spec"]
        target = spec.get("targetNamespace")
        namespaces = set()
        for o in rendered.get(name, []):
            ns = o["metadata"].get("namespace") or target
            if not ns and not self._safe_cluster_scoped(o):
                self.fail(f"{where0} Kustomization {name}", f"{o['kind']} {o['metadata']['name']} has no namespace: it would land in flux-system")
            namespaces.add(ns)
        deps = {d["name"] for d in spec.get("dependsOn", [])}
        for ns in sorted(n for n in namespaces if n):
            here = [o for o in cluster_objs if o["kind"] == "Namespace" and o["metadata"]["name"] == ns]
            creators = [n for n, r in rendered.items() if n != name and any(o["kind"] == "Namespace" and o["metadata"]["name"] == ns for o in r)]
            if here:
                ann = here[0]["metadata"].get("annotations", {})
                if creators and (ann.get("kustomize.toolkit.fluxcd.io/ssa") != "IfNotPresent"
                                 or ann.get("kustomize.toolkit.fluxcd.io/prune") != "disabled"):
                    self.fail(f"{where0} Namespace {ns}", f"also applied by {', '.join(creators)}: annotate ssa IfNotPresent and prune disabled")
            elif not deps & set(creators):
                self.fail(f"{where0} Kustomization {name}", f"applies into namespace {ns}, which nothing creates before it")

    def _flux_helm(self, where0, objs) -> None:
        releases = [o for o in objs if o["kind"] == "HelmRelease"]
        sources = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs if o["kind"] == "HelmRepository"}
        names = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in releases}
        maps = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs if o["kind"] == "ConfigMap"}
        for hr in releases:
            ns = hr["metadata"].get("namespace")
            where = f"{where0} HelmRelease {ns}/{hr['metadata']['name']}"
            cs = hr["spec"]["chart"]["spec"]
            if not PINNED.match(str(cs.get("version", ""))):
                self.fail(where, f"chart {cs['chart']} not pinned to one version: {cs.get('version')!r}")
            sref = cs["sourceRef"]
            if (sref.get("namespace", ns), sref["name"]) not in sources:
                self.fail(where, f"{sref['kind']} {sref['name']} is not rendered next to it")
            for d in hr["spec"].get("dependsOn", []):
                if (d.get("namespace", ns), d["name"]) not in names:
                    self.fail(where, f"dependsOn {d['name']}: no such HelmRelease")
            for v in hr["spec"].get("valuesFrom", []):
                if v["kind"] == "ConfigMap" and (ns, v["name"]) not in maps and not v.get("optional"):
                    self.fail(where, f"valuesFrom ConfigMap {v['name']} is not rendered next to it")

    def _flux_image_automation(self, where0, iua, repo, by_kind) -> None:
        where = f"{where0} ImageUpdateAutomation {iua['metadata']['name']}"
        spec = iua["spec"]
        git = spec.get("git") or {}
        if spec.get("sourceRef", {}).get("name") != repo["metadata"]["name"]:
            self.fail(where, f"sourceRef must be GitRepository {repo['metadata']['name']}")
        if not repo["spec"].get("secretRef"):
            self.fail(where, f"GitRepository {repo['metadata']['name']} has no secretRef: the automation cannot push")
        if ((git.get("checkout") or {}).get("ref") or {}).get("branch") != BRANCH:
            self.fail(where, f"git.checkout.ref.branch must be {BRANCH}")
        if (git.get("push") or {}).get("branch") != PUSH_BRANCH:
            self.fail(where, f"git.push.branch must be {PUSH_BRANCH} (never {BRANCH}: CI and the release workflow would loop)")
        if "[skip ci]" not in (git.get("commit") or {}).get("messageTemplate", ""):
            self.fail(where, "the commit messageTemplate must contain [skip ci]")
        if ".Updated" in (git.get("commit") or {}).get("messageTemplate", ""):
            self.fail(where, "messageTemplate uses .Updated, removed from image.toolkit.fluxcd.io/v1 (use .Changed)")
        upd = spec.get("update") or {}
        path = upd.get("path", "")
        if upd.get("strategy") != "Setters" or path != "./deploy/kustomize/overlays/production" or not (self.repo / path).is_dir():
            self.fail(where, "update must be {path: ./deploy/kustomize/overlays/production, strategy: Setters}")
            return
        policies = {(p["metadata"].get("namespace"), p["metadata"]["name"]): p for p in by_kind.get("ImagePolicy", [])}
        imagerepos = {(r["metadata"].get("namespace"), r["metadata"]["name"]): r for r in by_kind.get("ImageRepository", [])}
        for key, pol in policies.items():
            self._flux_image_policy(f"{where0} ImagePolicy {key[1]}", pol, imagerepos)
        markers = []
        for f in sorted((self.repo / path).rglob("*.y*ml")):
            for i, line in enumerate(f.read_text().splitlines(), 1):
                m = SETTER.search(line)
                if m:
                    markers.append((f"{f.relative_to(self.repo)}:{i}", line, m.group(1)))
        used = set()
        for loc, line, ref in markers:
            parts = ref.split(":")
            key = (parts[0], parts[1]) if len(parts) >= 2 else None
            if key not in policies:
                self.fail(loc, f"setter {ref!r} names no ImagePolicy of {where0}")
                continue
            used.add(key)
            field = parts[2] if len(parts) > 2 else ""
            if field == "digest":
                if not re.match(r"^\s*digest:\s*sha256:[0-9a-f]{64}\s+#", line):
                    self.fail(loc, "a :digest setter must sit on a `digest: sha256:<64 hex>` line")
                if policies[key]["spec"].get("digestReflectionPolicy") not in ("Always", "IfNotPresent"):
                    self.fail(loc, f"ImagePolicy {key[1]} reflects no digest (digestReflectionPolicy)")
        for key in sorted(set(policies) - used):
            self.fail(where, f"no setter in {path} uses ImagePolicy {key[0]}:{key[1]}")
        self._production_image_contract(where0)

    def _flux_image_policy(self, where, pol, imagerepos) -> None:
        spec = pol["spec"]
        ref = spec.get("imageRepositoryRef", {})
        repo = imagerepos.get((ref.get("namespace", pol["metadata"].get("namespace")), ref.get("name")))
        if repo is None:
            self.fail(where, f"imageRepositoryRef {ref.get('name')}: no such ImageRepository")
        elif repo["spec"].get("image") != self.image:
            self.fail(where, f"ImageRepository scans {repo['spec'].get('image')}, not {self.image} ({IMAGE_ENV})")
        ft = spec.get("filterTags") or {}
        if ft.get("pattern") != TAG_PATTERN or ft.get("extract") != "$ts":
            self.fail(where, f"filterTags must be pattern {TAG_PATTERN} extract $ts (the release workflow's tags)")
        if (spec.get("policy") or {}).get("numerical", {}).get("order") != "asc":
            self.fail(where, "policy must be numerical, order asc (newest commit time wins)")
        if spec.get("digestReflectionPolicy") != "Always":
            self.fail(where, "digestReflectionPolicy must be Always")
        try:
            rx = re.compile(ft.get("pattern", ""))
        except re.error as err:
            self.fail(where, f"filterTags pattern does not compile: {err}")
            return
        good = ["sha-0123abc-1767225600", "sha-" + "a" * 40 + "-1767225600"]
        bad = ["0.1.0", "0.1", "latest", "sha-0123abc", "sha-0123abc-176722", "sha-XYZ1234-1767225600", "main-0123abc-1767225600"]
        if not all(rx.match(t) for t in good) or any(rx.match(t) for t in bad):
            self.fail(where, "filterTags pattern does not separate sha-<commit>-<time> tags from the others")

    def _production_image_contract(self, where0) -> None:
        """The line the promote workflow and Flux both rewrite."""
        k = self.repo / "deploy/kustomize/overlays/production/kustomization.yaml"
        doc = yaml.safe_load(k.read_text())
        images = doc.get("images", [])
        want = {"name": "notes-api", "newName": self.image}
        entry = next((i for i in images if i.get("name") == "notes-api"), None)
        if entry is None or {x: entry.get(x) for x in want} != want or "newTag" in entry or not re.match(r"^sha256:[0-9a-f]{64}$", str(entry.get("digest", ""))):
            self.fail(str(k.relative_to(self.repo)), f"images: must be name notes-api, newName {self.image}, digest sha256:<64 hex> and no newTag")
        lines = [ln for ln in k.read_text().splitlines() if SETTER.search(ln)]
        if len(lines) != 1 or '"flux-system:notes-api:digest"' not in lines[0]:
            self.fail(str(k.relative_to(self.repo)), 'exactly one setter line, {"$imagepolicy": "flux-system:notes-api:digest"}, on the digest')

    # ---- both engines ------------------------------------------------------------
    def parity(self, argo_objs: list[dict], flux_objs: list[dict]) -> None:
        argo = {}
        for app in (o for o in argo_objs if o.get("kind") == "Application"):
            sources = app["spec"].get("sources") or [app["spec"].get("source", {})]
            refs = {s.get("ref"): s for s in sources if s.get("ref")}
            for s in sources:
                if s.get("chart"):
                    helm = s.get("helm", {})
                    values = helm.get("valuesObject")
                    for vf in helm.get("valueFiles", []):
                        m = re.match(r"^\$([a-z]+)/(.+)$", vf)
                        if m and m.group(1) in refs and (self.repo / m.group(2)).is_file():
                            values = yaml.safe_load((self.repo / m.group(2)).read_text())
                    argo[s["chart"]] = (s["repoURL"].rstrip("/"), str(s.get("targetRevision")), helm.get("releaseName"), values or None)
        flux = {}
        repos = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o["spec"]["url"].rstrip("/") for o in flux_objs if o.get("kind") == "HelmRepository"}
        maps = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in flux_objs if o.get("kind") == "ConfigMap"}
        for hr in (o for o in flux_objs if o.get("kind") == "HelmRelease"):
            ns = hr["metadata"].get("namespace")
            cs = hr["spec"]["chart"]["spec"]
            values = hr["spec"].get("values")
            for v in hr["spec"].get("valuesFrom", []):
                cm = maps.get((ns, v["name"]))
                if v["kind"] == "ConfigMap" and cm:
                    values = yaml.safe_load(cm.get("data", {}).get(v.get("valuesKey", "values.yaml"), "")) or None
            flux[cs["chart"]] = (repos.get((cs["sourceRef"].get("namespace", ns), cs["sourceRef"]["name"])), str(cs.get("version")),
                                 hr["spec"].get("releaseName"), values or None)
        before = len(self.errors)
        for chart in sorted(set(argo) | set(flux)):
            if chart not in flux and chart in ARGO_ONLY_CHARTS:
                continue
            if chart not in argo or chart not in flux:
                self.fail(f"chart {chart}", f"installed by {'Argo CD' if chart in argo else 'Flux'} only")
                continue
            for i, what in enumerate(("repository", "version", "release name", "values")):
                if argo[chart][i] != flux[chart][i]:
                    self.fail(f"chart {chart}", f"{what} differs: Argo CD {argo[chart][i]!r}, Flux {flux[chart][i]!r}")
        argo_paths = {s.get("path") for o in argo_objs if o.get("kind") == "Application"
                      for s in o["spec"].get("sources") or [o["spec"].get("source", {})]}
        flux_paths = {o["spec"]["path"].removeprefix("./") for o in flux_objs if o.get("kind") == "Kustomization"}
        for p in sorted(flux_paths):
            if p.startswith(("deploy/kustomize/", "deploy/cluster/")) and p not in argo_paths:
                self.fail(f"Flux path {p}", "no Argo CD Application syncs it: the engines must deliver the same tree")
        if len(self.errors) == before:
            self.ok(f"Argo CD and Flux: the same {len(flux)} charts (versions, repositories, release names, values) "
                    "and the same overlay and cluster paths")


def run(repo: Path, render_dir: Path | None = None, quiet: bool = False) -> list[str]:
    c = Checks(repo, quiet)
    argo_objs = c.argo()
    flux_objs = c.flux()
    c.parity(argo_objs, flux_objs)
    if render_dir:
        render_dir.mkdir(parents=True, exist_ok=True)
        for name, objs in (("argocd", argo_objs), ("flux", flux_objs)):
            seen, unique = set(), []
            for o in objs:
                key = (o.get("apiVersion"), o.get("kind"), o.get("metadata", {}).get("namespace"), o.get("metadata", {}).get("name"))
                if key not in seen:
                    seen.add(key)
                    unique.append(o)
            (render_dir / f"{name}.yaml").write_text(yaml.safe_dump_all(unique, sort_keys=False))
    return c.errors


# ---- negative tests: one planted defect each, the checks must catch it --------------
ROGUE_APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: rogue
  namespace: argocd
  annotations:
    argocd.argoproj.io/sync-wave: "-3"
spec:
  project: notes-api
  source: {{repoURL: {repo}, targetRevision: main, path: {path}}}
  destination: {{server: https://kubernetes.default.svc, namespace: {ns}}}
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
    retry: {{limit: 3, backoff: {{duration: 10s, factor: 2, maxDuration: 1m}}}}
"""


def _add_app(root: Path, text: str) -> None:
    layout = root / "deploy/argocd/apps/common"
    (layout / "rogue.yaml").write_text(text)
    k = layout / "kustomization.yaml"
    k.write_text(k.read_text() + "  - rogue.yaml\n")


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    p = root / rel
    text = p.read_text()
    assert old in text, f"negative test setup: {old!r} not in {rel}"
    p.write_text(text.replace(old, new, 1))


def _rogue_cluster_role(root: Path) -> None:
    d = root / "deploy/cluster/rogue"
    d.mkdir()
    (d / "kustomization.yaml").write_text("resources: [clusterrole.yaml]\n")
    (d / "clusterrole.yaml").write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: rogue}\nrules: []\n"
        "---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: rogue}\nprovisioner: rancher.io/local-path\n")
    _add_app(root, ROGUE_APP.format(repo="https://github.com/notes-api/notes-api.git", path="deploy/cluster/rogue", ns="cert-manager"))


NEGATIVE = [
    ("an Application whose repository the project does not admit",
     lambda r: _add_app(r, ROGUE_APP.format(repo="https://github.com/someone/else.git", path="deploy", ns="notes")),
     "source repository https://github.com/someone/else.git not admitted by AppProject notes-api"),
    ("an Application deploying into a namespace the project does not admit",
     lambda r: _add_app(r, ROGUE_APP.format(repo="https://github.com/notes-api/notes-api.git", path="deploy/kustomize/base", ns="default")),
     "not admitted by AppProject notes-api"),
    ("an Application rendering a cluster-scoped kind outside the whitelist",
     _rogue_cluster_role, "renders cluster-scoped StorageClass rogue, not in the clusterResourceWhitelist"),
    ("an Application without selfHeal",
     lambda r: _edit(r, "deploy/argocd/apps/production/secrets-production.yaml", "selfHeal: true", "selfHeal: false"),
     "Application secrets-production: syncPolicy.automated needs prune: true and selfHeal: true"),
    ("the production app with the cascading finalizer",
     lambda r: _edit(r, "deploy/argocd/apps/production/notes-api-production.yaml", "  annotations:\n",
                     "  finalizers: [resources-finalizer.argocd.argoproj.io]\n  annotations:\n"),
     "the resources finalizer would delete"),
    ("an unexplained ignoreDifferences",
     lambda r: _edit(r, "deploy/argocd/apps/production/notes-api-production.yaml", "/spec/replicas", "/spec/template"),
     "no owner of that field is known"),
    ("Flux apps not depending on the secrets",
     lambda r: _edit(r, "deploy/flux/clusters/production/apps.yaml", "    - name: secrets\n", ""),
     "Kustomization apps: must dependsOn the secrets Kustomization"),
    ("Flux secrets without SOPS decryption",
     lambda r: _edit(r, "deploy/flux/clusters/production/secrets.yaml", "name: sops-age", "name: age-key"),
     "must decrypt with provider sops and secretRef sops-age"),
    ("image automation pushing to main",
     lambda r: _edit(r, "deploy/flux/clusters/production/imageupdateautomation.yaml", "branch: flux-image-updates", "branch: main"),
     "git.push.branch must be flux-image-updates"),
    ("a setter naming a policy that does not exist",
     lambda r: _edit(r, "deploy/kustomize/overlays/production/kustomization.yaml", "flux-system:notes-api:digest", "flux-system:notes:digest"),
     "names no ImagePolicy"),
    ("81c028a: the AppProject without ClusterSecretStore (External Secrets path)",
     lambda r: _edit(r, "deploy/argocd/projects/notes-api.yaml", "    - group: external-secrets.io\n      kind: ClusterSecretStore\n", ""),
     "renders cluster-scoped ClusterSecretStore notes-api, not in the clusterResourceWhitelist"),
    ("81c028a: the AppProject without the external-secrets namespace",
     lambda r: _edit(r, "deploy/argocd/projects/notes-api.yaml", "      namespace: external-secrets\n", "      namespace: external-secret\n"),
     "into namespace external-secrets, not admitted by AppProject notes-api"),
    ("a chart version that differs between the engines",
     lambda r: _edit(r, "deploy/flux/infrastructure/cert-manager/helmrelease.yaml", "version: v1.20.2", "version: v1.20.1"),
     "chart cert-manager: version differs"),
]


def run_planted(repo: Path, planted, check, prefix: str) -> int:
    """Runs `check` on a copy of the kit with each planted defect in it; a
    defect it does not report (by the expected text) is a failure. Shared
    by the kit's checks (engine_check.py uses it too)."""
    failures = 0
    for what, plant, expect in planted:
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
            root = Path(tmp)
            shutil.copytree(repo / "deploy", root / "deploy")
            plant(root)
            errors = check(root)
            if any(expect in e for e in errors):
                print(f"  ok: planted: {what}: caught")
            else:
                failures += 1
                print(f"FAIL planted: {what} was not caught (expected {expect!r}); got: {errors or 'no error'}")
    return failures


def negative(repo: Path) -> int:
    return run_planted(repo, NEGATIVE, lambda root: run(root, quiet=True), "check-gitops")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("--render-dir", type=Path)
    ap.add_argument("--no-negative", action="store_true")
    args = ap.parse_args()
    errors = run(args.repo, args.render_dir)
    for e in errors:
        print(f"FAIL {e}")
    failures = len(errors)
    if not args.no_negative and not errors:
        failures += negative(args.repo)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
