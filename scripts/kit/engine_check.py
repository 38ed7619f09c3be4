#!/usr/bin/env python3
"""What the engines will do with the kit, simulated offline on an empty cluster.

The other checks validate each object alone; this one plays the order in
which Argo CD and Flux create them, and the health each engine sees right
after, with the engines' own rules:

  argo-sync   every Git-sourced Application of deploy/argocd/apps, as
              gitops-engine syncs it (pkg/sync/sync_context.go): tasks by
              phase (PreSync, Sync, PostSync) then wave; after each step but
              the last, the step's resources must turn Healthy before the
              next one starts, and one Degraded resource fails the sync. The
              health right after apply follows Argo CD's rules:
                - an HPA whose target does not exist yet: Degraded
                  (AbleToScale=False FailedGetScale); a new HPA before the
                  metrics of its pods exist: Degraded (ScalingActive=False
                  FailedGetResourceMetric) for a minute;
                - a workload whose ConfigMap, Secret, ServiceAccount or claim
                  comes in a later step: never available (Progressing until
                  its deadline, then Degraded);
                - a claim of a WaitForFirstConsumer class (k3s local-path)
                  with no consumer pod yet: Pending, Progressing forever;
              and, on every later sync, resources that turn Degraded on their
              own schedule: a CronJob after a failed run, rated by the health
              check Argo CD will use, run for real (lua5.1) from
              deploy/argocd/install/argocd-cm.yaml or Argo CD's built-in
              rule. Such a resource must not be in a step that something
              waits behind: a later wave, a PostSync hook, or the prune step
              PruneLast adds after the last wave.
  flux-order  every Kustomization of deploy/flux/clusters/*: a custom
              resource is applied only after the HelmRelease that installs
              its CRD is Ready, i.e. in a Kustomization it dependsOn (directly
              or not) that waits; a Kustomization that waits (wait: true)
              finds every Secret, ConfigMap and claim its pods need in itself
              or in what it depends on; every namespace exists first.
  pruning     every object that holds data (claims, StatefulSets with claim
              templates, database Clusters) and every Namespace that contains
              one, as rendered by each engine, carries
              argocd.argoproj.io/sync-options Prune=false and Delete=false
              and kustomize.toolkit.fluxcd.io/prune: disabled.

Then each check runs on temporary copies of deploy/ with one defect planted
(the HPA of 81c028a in wave 0, the backup CronJob without its health rule,
argocd-cm without the CronJob check, ClusterIssuers applied before
cert-manager's CRDs, the notes Namespace without prune protection) and must
fail there.

usage: engine_check.py [--repo DIR] [--no-negative]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_gitops  # noqa: E402  (the same renders, cached)

WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
FLUX_PRUNE = "kustomize.toolkit.fluxcd.io/prune"
PHASES = {"PreSync": 0, "Sync": 1, "PostSync": 2}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
# Argo CD's built-in CronJob health (resource_customizations/batch/CronJob/
# health.lua), used when argocd-cm does not override it.
ARGO_CRONJOB_HEALTH = """\
hs = {}
lastScheduleTime = nil
lastSuccessfulTime = nil
if obj.status.lastScheduleTime ~= nil then
  local year, month, day, hour, min, sec = string.match(obj.status.lastScheduleTime, "(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z")
  lastScheduleTime = os.time({year=year, month=month, day=day, hour=hour, min=min, sec=sec})
end
if obj.status.lastSuccessfulTime ~= nil then
  local year, month, day, hour, min, sec = string.match(obj.status.lastSuccessfulTime, "(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z")
  lastSuccessfulTime = os.time({year=year, month=month, day=day, hour=hour, min=min, sec=sec})
end
if obj.status.active ~= nil and #obj.status.active > 0 then
  hs.status = "Progressing"
  hs.message = "CronJob has active jobs"
  return hs
elseif lastScheduleTime == nil then
  hs.status = "Healthy"
  hs.message = "CronJob has never run"
  return hs
elseif lastSuccessfulTime ~= nil and lastScheduleTime < lastSuccessfulTime then
  hs.status = "Healthy"
  hs.message = "CronJob has run successfully"
  return hs
else
  hs.status = "Degraded"
  hs.message = "CronJob has not run successfully"
end
return hs
"""
# The API groups whose CRDs a chart installs (Flux: HelmRelease spec.chart).
CHART_CRD_GROUPS = {
    "kube-prometheus-stack": {"monitoring.coreos.com"},
    "cert-manager": {"cert-manager.io", "acme.cert-manager.io"},
    "cloudnative-pg": {"postgresql.cnpg.io"},
    "plugin-barman-cloud": {"barmancloud.cnpg.io"},
    "external-secrets": {"external-secrets.io", "generators.external-secrets.io"},
}
# Groups a k3s cluster with Flux has before anything is applied.
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io",
                  "helm.cattle.io", "k3s.cattle.io", "traefik.io", "traefik.containo.us"}
BUILTIN_NAMESPACES = {"default", "kube-system", "flux-system"}


def group_of(o):
    api = o.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def ann(o):
    return (o.get("metadata") or {}).get("annotations") or {}


def oid(o, default_ns=None):
    md = o.get("metadata") or {}
    return (o.get("kind"), md.get("namespace") or default_ns, md.get("name"))


def pod_spec(o):
    if o["kind"] == "CronJob":
        return o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if o["kind"] == "Pod":
        return o["spec"]
    return o["spec"]["template"]["spec"]


def needs(o):
    """What a pod template cannot start without (optional references left out)."""
    spec, ns = pod_spec(o), o["metadata"].get("namespace")
    out = set()
    if spec.get("serviceAccountName"):
        out.add(("ServiceAccount", ns, spec["serviceAccountName"]))
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for e in c.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in e and not e[key].get("optional"):
                    out.add((kind, ns, e[key]["name"]))
        for e in c.get("env", []):
            vf = e.get("valueFrom") or {}
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in vf and not vf[key].get("optional"):
                    out.add((kind, ns, vf[key]["name"]))
    for v in spec.get("volumes", []):
        if "configMap" in v and not v["configMap"].get("optional"):
            out.add(("ConfigMap", ns, v["configMap"]["name"]))
        if "secret" in v and not v["secret"].get("optional"):
            out.add(("Secret", ns, v["secret"]["secretName"]))
        if "persistentVolumeClaim" in v:
            out.add(("PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"]))
        for s in (v.get("projected") or {}).get("sources", []):
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if key in s and not s[key].get("optional"):
                    out.add((kind, ns, s[key]["name"]))
    return out


def produced(o, default_ns):
    """The objects an object makes exist: itself, and the Secrets a SopsSecret
    or an ExternalSecret writes."""
    out = {oid(o, default_ns)}
    ns = o["metadata"].get("namespace") or default_ns
    if o["kind"] == "SopsSecret":
        out |= {("Secret", ns, t["name"]) for t in o["spec"].get("secretTemplates", [])}
    if o["kind"] == "ExternalSecret":
        out.add(("Secret", ns, (o["spec"].get("target") or {}).get("name") or o["metadata"]["name"]))
    return out


def lua_table(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"[{json.dumps(str(k))}] = {lua_table(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "{" + ", ".join(lua_table(x) for x in v) + "}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))


def run_health_lua(script: str, obj: dict) -> tuple[str, str]:
    """Runs an Argo CD health script (Lua 5.1, as gopher-lua) on obj."""
    prog = ("local function check(obj)\n" + script + "\nend\n"
            f"local hs = check({lua_table(obj)})\n"
            'io.write(tostring(hs.status), "\\t", tostring(hs.message))\n')
    res = subprocess.run(["lua5.1", "-"], input=prog, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"health script failed: {res.stderr.strip()}")
    status, _, message = res.stdout.partition("\t")
    return status, message


class Engines:
    def __init__(self, repo: Path, quiet: bool = False):
        self.repo = repo.resolve()
        self.quiet = quiet
        self.errors: list[str] = []
        self.g = check_gitops.Checks(self.repo, quiet=True)

    def fail(self, where, msg):
        self.errors.append(f"{where}: {msg}")

    def ok(self, msg):
        if not self.quiet:
            print(f"  ok: {msg}")

    # ---- Argo CD ----------------------------------------------------------------
    def argocd_cm(self) -> dict:
        return yaml.safe_load((self.repo / "deploy/argocd/install/argocd-cm.yaml").read_text()).get("data") or {}

    def cronjob_after_failed_run(self, cj: dict) -> tuple[str, str]:
        script = self.argocd_cm().get("resource.customizations.health.batch_CronJob", ARGO_CRONJOB_HEALTH)
        obj = json.loads(json.dumps(cj))
        obj["status"] = {"lastScheduleTime": "2026-12-05T02:15:00Z", "lastSuccessfulTime": "2026-12-04T02:16:40Z"}
        return run_health_lua(script, obj)

    def applications(self) -> list[dict]:
        apps = {}
        for d in sorted((self.repo / "deploy/argocd/apps").iterdir()):
            if (d / "kustomization.yaml").is_file():
                for o in self.g.try_render(f"deploy/argocd/apps/{d.name}", f"deploy/argocd/apps/{d.name}") or []:
                    if o.get("kind") == "Application":
                        apps[o["metadata"]["name"]] = o
        return sorted(apps.values(), key=lambda a: int(ann(a).get(WAVE, "0")))

    def argo(self) -> None:
        before = len(self.errors)
        apps = self.applications()
        external: set = set()  # what Applications of earlier root waves made exist
        simulated = []
        for wave in sorted({int(ann(a).get(WAVE, "0")) for a in apps}):
            made_now: set = set()
            for app in (a for a in apps if int(ann(a).get(WAVE, "0")) == wave):
                src = app["spec"].get("source") or {}
                if src.get("repoURL") != check_gitops.REPO_URL or not src.get("path"):
                    continue
                objs = self.g.try_render(f"Application {app['metadata']['name']}", src["path"])
                if objs is None:
                    continue
                ns = app["spec"]["destination"].get("namespace")
                for o in objs:
                    made_now |= produced(o, ns)
                self.argo_app(app, objs, ns, external)
                simulated.append(app["metadata"]["name"])
            external |= made_now
        if len(self.errors) == before:
            self.ok(f"Argo CD: first sync of {len(simulated)} Git Applications on an empty cluster, wave by wave: "
                    "nothing waits for what a later step creates, no HPA before its target or before the last wave, "
                    "and no resource that degrades on its own schedule (a CronJob after a failed run, rated by "
                    "argocd-cm's Lua through lua5.1) in a step that anything waits behind")

    def argo_app(self, app, objs, ns, external) -> None:
        name = app["metadata"]["name"]
        opts = (app["spec"].get("syncPolicy") or {}).get("syncOptions") or []
        tasks = []
        for o in objs:
            hook = ann(o).get(HOOK)
            if hook == "Skip":
                continue
            phases = [p.strip() for p in hook.split(",")] if hook else ["Sync"]
            for p in phases:
                if p in PHASES:
                    tasks.append(((PHASES[p], int(ann(o).get(WAVE, "0"))), o))
        steps = sorted({s for s, _ in tasks})
        if not steps:
            return
        index = {}
        for s, o in tasks:
            for p in produced(o, ns):
                index.setdefault(p, s)
        final = steps[-1]
        pruned_after = "PruneLast=true" in opts
        label = {s: f"{'PreSync Sync PostSync'.split()[s[0]]} wave {s[1]}" for s in steps}
        for s, o in tasks:
            where = f"Application {name}: {o['kind']} {o['metadata']['name']} ({label[s]})"
            later = s != final
            if o["kind"] in POD_KINDS:
                for need in sorted(needs(o), key=str):
                    need = (need[0], need[1] or ns, need[2])
                    if need in external:
                        continue
                    if need in index and index[need] > s:
                        self.fail(where, f"needs {need[0]} {need[2]}, created later ({label[index[need]]}): its pods "
                                  "cannot start before it exists, and the sync waits for them first (Progressing, "
                                  "then Degraded at the progress deadline)")
            if o["kind"] == "HorizontalPodAutoscaler":
                ref = o["spec"]["scaleTargetRef"]
                target = (ref["kind"], o["metadata"].get("namespace") or ns, ref["name"])
                ts = index.get(target)
                if ts is None or ts >= s:
                    self.fail(where, f"scales {ref['kind']} {ref['name']}, which is "
                              f"{'not created by this sync' if ts is None else 'created in ' + label[ts]}: the HPA "
                              "controller reports AbleToScale=False FailedGetScale, which Argo CD rates Degraded, and "
                              + ("the sync stops there on every retry" if later else "the first sync fails"))
                elif later:
                    self.fail(where, f"a new HPA is Degraded (ScalingActive=False FailedGetResourceMetric) until "
                              f"metrics of its pods exist, and {label[steps[steps.index(s) + 1]]} waits behind it: "
                              "put it in the last wave")
            if o["kind"] == "PersistentVolumeClaim" and later:
                consumers = [s2 for s2, o2 in tasks if o2["kind"] in POD_KINDS - {"CronJob"}
                             and any(n[0] == "PersistentVolumeClaim" and n[2] == o["metadata"]["name"] for n in needs(o2))]
                if not consumers or min(consumers) > s:
                    self.fail(where, "k3s' local-path class binds a claim when its first pod is scheduled "
                              "(WaitForFirstConsumer): Pending, so Progressing, and the next wave waits forever")
            if o["kind"] == "CronJob":
                status, message = self.cronjob_after_failed_run(o)
                if status == "Degraded" and (later or pruned_after or any(st[0] > PHASES["Sync"] for st in steps)):
                    behind = ("the prune step PruneLast=true adds after the last wave" if not later and pruned_after
                              else "a PostSync hook" if not later else label[steps[steps.index(s) + 1]])
                    self.fail(where, f"after one failed run Argo CD rates it {status} ({message!r}), and {behind} "
                              "waits for it: every deploy fails until a run succeeds. Put it last and give it a health "
                              "rule that does not gate (argocd-cm, notes-api.io/argocd-health: alert-only)")

    # ---- Flux -------------------------------------------------------------------------
    def flux(self) -> None:
        before = len(self.errors)
        summary = []
        for d in sorted((self.repo / "deploy/flux/clusters").iterdir()):
            if d.is_dir():
                self.flux_cluster(d.name)
                summary.append(d.name)
        if len(self.errors) == before:
            self.ok(f"Flux ({', '.join(summary)}): every custom resource applied after a Ready HelmRelease that "
                    "installs its CRD (dependsOn + wait), every waiting Kustomization finds what its pods need in "
                    "itself or what it depends on, every namespace exists first")

    def flux_cluster(self, env) -> None:
        rel = f"deploy/flux/clusters/{env}"
        objs = self.g.try_render(rel, rel, flux=True)
        if objs is None:
            return
        kss = {k["metadata"]["name"]: k for k in objs if k["kind"] == "Kustomization"}
        base = {oid(o) for o in objs}  # the cluster directory applies itself first
        base_ns = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"} | BUILTIN_NAMESPACES
        rendered, made, groups = {}, {}, {}
        for name, ks in kss.items():
            path = ks["spec"].get("path", "").removeprefix("./")
            if path == rel:
                continue
            r = self.g.try_render(f"{rel} Kustomization {name}", path, flux=True)
            if r is None:
                continue
            ns = ks["spec"].get("targetNamespace")
            rendered[name] = r
            made[name] = set().union(*(produced(o, ns) for o in r)) if r else set()
            groups[name] = set().union(*(CHART_CRD_GROUPS.get(o["spec"]["chart"]["spec"]["chart"], set())
                                         for o in r if o["kind"] == "HelmRelease")) if r else set()

        def closure(n, seen=None):
            seen = set() if seen is None else seen
            for d in kss[n]["spec"].get("dependsOn", []):
                if d["name"] in kss and d["name"] not in seen:
                    seen.add(d["name"])
                    closure(d["name"], seen)
            return seen

        everywhere = set().union(*made.values()) if made else set()
        for name, r in rendered.items():
            where = f"{rel} Kustomization {name}"
            deps = closure(name)
            have = base | made[name] | set().union(*(made.get(d, set()) for d in deps))
            ns_have = base_ns | {o[2] for o in have if o[0] == "Namespace"}
            crd_groups = set().union(*(groups.get(d, set()) for d in deps if kss[d]["spec"].get("wait") is True)) \
                if deps else set()
            for o in r:
                g = group_of(o)
                if g and g not in BUILTIN_GROUPS and not g.endswith(".toolkit.fluxcd.io") and g not in crd_groups:
                    src = sorted(d for d, gs in groups.items() if g in gs)
                    self.fail(where, f"applies {o['kind']} {o['metadata']['name']} ({g}) but "
                              + (f"the HelmRelease installing its CRD is in {', '.join(src)}, which it does not "
                                 "dependsOn (directly or not) with wait: true: the first apply fails its dry run"
                                 if src else "no Kustomization it depends on installs that CRD"))
                ons = o["metadata"].get("namespace") or kss[name]["spec"].get("targetNamespace")
                if ons and ons not in ns_have and o["kind"] != "Namespace":
                    self.fail(where, f"applies {o['kind']} {o['metadata']['name']} into namespace {ons}, "
                              "which neither it nor what it depends on creates")
                if kss[name]["spec"].get("wait") is True and o["kind"] in POD_KINDS - {"CronJob"}:
                    for need in sorted(needs(o), key=str):
                        if need in everywhere and need not in have:
                            src = sorted(n for n, m in made.items() if need in m)
                            self.fail(where, f"waits for {o['kind']} {o['metadata']['name']}, whose pods need "
                                      f"{need[0]} {need[2]} from {', '.join(src)}, which it does not depend on: the "
                                      "first reconciliation times out")

    # ---- pruning ------------------------------------------------------------------------
    def pruning(self) -> None:
        before = len(self.errors)
        paths = set()
        for app in self.applications():
            src = app["spec"].get("source") or {}
            if src.get("path", "").startswith("deploy/kustomize/overlays/"):
                paths.add(src["path"])
        for d in sorted((self.repo / "deploy/flux/clusters").iterdir()):
            for o in self.g.try_render(str(d), f"deploy/flux/clusters/{d.name}", flux=True) or []:
                p = (o.get("spec") or {}).get("path", "") if o["kind"] == "Kustomization" else ""
                if p.startswith("./deploy/kustomize/overlays/"):
                    paths.add(p.removeprefix("./"))
        for p in sorted(paths):
            objs = self.g.try_render(p, p) or []
            holders = [o for o in objs if o["kind"] in ("PersistentVolumeClaim", "Cluster")
                       or (o["kind"] == "StatefulSet" and o["spec"].get("volumeClaimTemplates"))]
            spaces = {o["metadata"].get("namespace") for o in holders}
            namespaces = [o for o in objs if o["kind"] == "Namespace" and o["metadata"]["name"] in spaces]
            for o in holders + namespaces:
                a = ann(o)
                opts = {x.strip() for x in a.get(SYNC_OPTIONS, "").split(",")}
                missing = [x for x in ("Prune=false", "Delete=false") if x not in opts]
                if a.get(FLUX_PRUNE) != "disabled":
                    missing.append(f"{FLUX_PRUNE}: disabled")
                if missing:
                    why = (f"holds {', '.join(sorted(h['kind'] + ' ' + h['metadata']['name'] for h in holders if h['metadata'].get('namespace') == o['metadata']['name']))}"
                           if o["kind"] == "Namespace" else "holds data")
                    self.fail(f"{p}: {o['kind']} {o['metadata']['name']}", f"{why}; removed from git or with its "
                              f"Application, an engine would delete it: missing {', '.join(missing)}")
        if len(self.errors) == before:
            self.ok(f"pruning: {len(paths)} delivered overlays: every claim, claim-template StatefulSet, database "
                    "Cluster and the Namespaces holding them carry Prune=false, Delete=false (Argo CD) and "
                    "prune: disabled (Flux)")


def run(repo: Path, quiet: bool = False) -> list[str]:
    e = Engines(repo, quiet)
    e.argo()
    e.flux()
    e.pruning()
    return e.errors


_edit = check_gitops._edit


NEGATIVE = [
    ("81c028a: the HPA in wave 0, its Deployment in wave 2",
     lambda r: _edit(r, "deploy/kustomize/base/horizontalpodautoscaler.yaml", 'argocd.argoproj.io/sync-wave: "3"',
                     'notes-api.io/planted: "wave 0"'),
     "HorizontalPodAutoscaler notes-api (Sync wave 0): scales Deployment notes-api"),
    ("81c028a: the backup CronJob in wave 0 without a non-gating health rule",
     lambda r: (_edit(r, "deploy/kustomize/components/backup/cronjob.yaml", 'argocd.argoproj.io/sync-wave: "3"',
                      'notes-api.io/planted: "wave 0"'),
                _edit(r, "deploy/kustomize/components/backup/cronjob.yaml", "notes-api.io/argocd-health: alert-only",
                      "notes-api.io/argocd-health: gate")),
     "CronJob notes-api-backup (Sync wave 0): after one failed run Argo CD rates it Degraded"),
    ("argocd-cm without the CronJob health check (the backup last, PruneLast after it)",
     lambda r: _edit(r, "deploy/argocd/install/argocd-cm.yaml", "resource.customizations.health.batch_CronJob",
                     "resource.customizations.health.batch_CronJobDisabled"),
     "the prune step PruneLast=true adds after the last wave"),
    ("a workload in a wave before its ConfigMap",
     lambda r: _edit(r, "deploy/kustomize/components/migrations/patch-wait-for-schema.yaml",
                     'argocd.argoproj.io/sync-wave: "2"', 'argocd.argoproj.io/sync-wave: "-1"'),
     "Deployment notes-api (Sync wave -1): needs ConfigMap"),
    ("Flux: the ClusterIssuers without waiting for cert-manager's CRDs",
     lambda r: _edit(r, "deploy/flux/clusters/production/infrastructure.yaml",
                     "  dependsOn:\n    - name: infrastructure-controllers\n", ""),
     "applies ClusterIssuer letsencrypt-prod (cert-manager.io) but the HelmRelease installing its CRD is in "
     "infrastructure-controllers"),
    ("Flux: the ExternalSecrets and their store before External Secrets Operator's CRDs",
     lambda r: _edit(r, "deploy/flux/clusters/production-external-secrets/patch-secrets.yaml",
                     "  dependsOn:\n    - name: external-secrets-controllers\n", ""),
     "applies ClusterSecretStore notes-api (external-secrets.io) but the HelmRelease installing its CRD is in "
     "external-secrets-controllers"),
    ("81c028a: the notes Namespace without prune protection",
     lambda r: _edit(r, "deploy/kustomize/overlays/production/namespace.yaml",
                     "    argocd.argoproj.io/sync-options: Prune=false,Delete=false\n", ""),
     "deploy/kustomize/overlays/production: Namespace notes"),
]


def negative(repo: Path) -> int:
    return check_gitops.run_planted(repo, NEGATIVE, lambda root: run(root, quiet=True), "engine-check")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("--no-negative", action="store_true")
    args = ap.parse_args()
    if not shutil.which("lua5.1"):
        print("FAIL lua5.1 not found (scripts/verify-kit.sh installs it): Argo CD's health scripts are Lua 5.1")
        return 1
    errors = run(args.repo)
    for e in errors:
        print(f"FAIL {e}")
    failures = len(errors)
    if not args.no_negative and not errors:
        failures += negative(args.repo)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
