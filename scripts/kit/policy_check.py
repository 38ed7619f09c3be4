#!/usr/bin/env python3
"""Policy assertions on a rendered overlay (complements checkov).

Checks what a generic scanner cannot know about this kit: labels on every
object, probes/resources/security context on every container, pinned images,
no `replicas` where an HPA owns it, a PDB per Deployment, default-deny
NetworkPolicy covering every pod, references that resolve (Services,
ServiceMonitor ports, Traefik middlewares, ConfigMaps), the data volume on
every workload of a single-node install, and a grace period longer than the
service's drain time.

usage: policy_check.py [--production] FILE
"""

from __future__ import annotations

import argparse
import re
import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component",
                   "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")
# Our own image: a release tag (x.y.z), an immutable sha-<commit>[-<unix time>]
# tag (what the release workflow pushes) or a digest.
OWN_IMAGE_PINNED = re.compile(
    r"(@sha256:[0-9a-f]{64}$)|(:(v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?|sha-[0-9a-f]{7,40}(-\d{10,})?)$)")
THIRD_PARTY_PINNED = re.compile(r"(@sha256:[0-9a-f]{64}$)|(:v?\d+(\.\d+)+[0-9A-Za-z.-]*$)")


class Checker:
    def __init__(self, docs, production):
        self.docs = docs
        self.production = production
        self.errors: list[str] = []
        self.passed = 0

    def check(self, cond, msg):
        if cond:
            self.passed += 1
        else:
            self.errors.append(msg)

    def of_kind(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    @staticmethod
    def name(d):
        m = d["metadata"]
        return f"{d['kind']}/{m.get('namespace', '-')}/{m['name']}"

    @staticmethod
    def pod_template(d):
        if d["kind"] == "CronJob":
            return d["spec"]["jobTemplate"]["spec"]["template"]
        return d["spec"]["template"]

    @staticmethod
    def selects(selector, labels):
        ml = (selector or {}).get("matchLabels") or {}
        if (selector or {}).get("matchExpressions"):
            return False  # not used by this kit
        return all(labels.get(k) == v for k, v in ml.items())

    def run(self):
        ns_objects = [d for d in self.docs if d["kind"] not in ("Namespace", "ClusterIssuer")]
        namespaces = {d["metadata"].get("namespace") for d in ns_objects}
        self.check(len(namespaces) == 1 and None not in namespaces,
                   f"every namespaced object in one explicit namespace (got {sorted(map(str, namespaces))})")
        namespace = next(iter(namespaces))
        for ns in self.of_kind("Namespace"):
            labels = ns["metadata"].get("labels", {})
            self.check(labels.get("pod-security.kubernetes.io/enforce") == "restricted",
                       f"{self.name(ns)}: pod-security.kubernetes.io/enforce=restricted")

        # Labels everywhere, including pod templates and generated ConfigMaps.
        for d in self.docs:
            labels = d["metadata"].get("labels", {})
            for key in REQUIRED_LABELS + (("app.kubernetes.io/instance",) if d["kind"] != "ClusterIssuer" else ()):
                self.check(key in labels, f"{self.name(d)}: label {key}")
            if d["kind"] in WORKLOADS:
                tlabels = self.pod_template(d)["metadata"].get("labels", {})
                for key in REQUIRED_LABELS:
                    self.check(key in tlabels, f"{self.name(d)}: pod template label {key}")

        configmaps = {d["metadata"]["name"]: d for d in self.of_kind("ConfigMap")}
        pvcs = {d["metadata"]["name"] for d in self.of_kind("PersistentVolumeClaim")}
        hpa_targets = {(h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"])
                       for h in self.of_kind("HorizontalPodAutoscaler")}
        for h in self.of_kind("HorizontalPodAutoscaler"):
            ref = h["spec"]["scaleTargetRef"]
            self.check(any(d["kind"] == ref["kind"] and d["metadata"]["name"] == ref["name"] for d in self.docs),
                       f"{self.name(h)}: scale target {ref['kind']}/{ref['name']} exists")
            self.check(any(m.get("resource", {}).get("name") == "cpu" for m in h["spec"].get("metrics", [])),
                       f"{self.name(h)}: CPU metric")

        netpols = self.of_kind("NetworkPolicy")
        default_deny = [n for n in netpols if n["spec"].get("podSelector") == {}
                        and "Ingress" in n["spec"].get("policyTypes", []) and not n["spec"].get("ingress")]
        self.check(bool(default_deny), "a default-deny ingress NetworkPolicy (podSelector: {})")

        for d in self.docs:
            if d["kind"] not in WORKLOADS:
                continue
            n = self.name(d)
            tpl = self.pod_template(d)
            spec = tpl["spec"]
            own = tpl["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "notes-api"
            if d["kind"] in ("Deployment",):
                if (d["kind"], d["metadata"]["name"]) in hpa_targets:
                    self.check("replicas" not in d["spec"], f"{n}: no spec.replicas (an HPA owns it)")
                pdbs = [p for p in self.of_kind("PodDisruptionBudget")
                        if self.selects(p["spec"].get("selector"), tpl["metadata"].get("labels", {}))]
                self.check(bool(pdbs), f"{n}: a PodDisruptionBudget selects its pods")
                if self.production:
                    self.check(bool(spec.get("topologySpreadConstraints")), f"{n}: topology spread")
            self.check(spec.get("automountServiceAccountToken") is False, f"{n}: automountServiceAccountToken: false")
            for flag in ("hostNetwork", "hostPID", "hostIPC"):
                self.check(not spec.get(flag), f"{n}: no {flag}")
            psc = spec.get("securityContext", {})
            self.check(psc.get("runAsNonRoot") is True, f"{n}: pod runAsNonRoot")
            self.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{n}: seccomp RuntimeDefault")
            for vol in spec.get("volumes", []):
                self.check("hostPath" not in vol, f"{n}: volume {vol['name']} is not a hostPath")
                claim = vol.get("persistentVolumeClaim", {}).get("claimName")
                if claim:
                    self.check(claim in pvcs or d["kind"] == "StatefulSet",
                               f"{n}: PVC {claim} is part of the overlay")
            # With a single-node data PVC, every notes-api workload that has a
            # data volume must mount that PVC (component order mistake guard).
            if own and "notes-api-data" in pvcs:
                for vol in spec.get("volumes", []):
                    if vol["name"] == "data":
                        self.check(vol.get("persistentVolumeClaim", {}).get("claimName") == "notes-api-data",
                                   f"{n}: data volume is the notes-api-data PVC (list sqlite-single-node after backup)")
            covered = [p for p in netpols if "Ingress" in p["spec"].get("policyTypes", [])
                       and self.selects(p["spec"].get("podSelector"), tpl["metadata"].get("labels", {}))]
            self.check(bool(covered), f"{n}: pods covered by an ingress NetworkPolicy")
            if own:
                egress = [p for p in netpols if "Egress" in p["spec"].get("policyTypes", [])
                          and self.selects(p["spec"].get("podSelector"), tpl["metadata"].get("labels", {}))]
                self.check(bool(egress), f"{n}: egress restricted by a NetworkPolicy")
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                cn = f"{n} container {c['name']}"
                # Init containers run to completion: no probes, no listener.
                serving = d["kind"] in LONG_RUNNING and c not in spec.get("initContainers", [])
                res = c.get("resources", {})
                for kind in ("requests", "limits"):
                    for r in ("cpu", "memory"):
                        self.check(r in res.get(kind, {}), f"{cn}: resources.{kind}.{r}")
                sc = c.get("securityContext", {})
                self.check(sc.get("allowPrivilegeEscalation") is False, f"{cn}: allowPrivilegeEscalation: false")
                self.check(sc.get("readOnlyRootFilesystem") is True, f"{cn}: readOnlyRootFilesystem: true")
                self.check(sc.get("privileged") is not True, f"{cn}: not privileged")
                self.check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{cn}: capabilities drop ALL")
                self.check(not sc.get("capabilities", {}).get("add"), f"{cn}: no added capabilities")
                image = c.get("image", "")
                if own:
                    self.check(bool(OWN_IMAGE_PINNED.search(image)) or not self.production,
                               f"{cn}: image {image!r} pinned (x.y.z, sha-<commit> or @sha256 digest)")
                    self.check(not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1] or "@" in image,
                               f"{cn}: image {image!r} has an explicit tag, not latest")
                else:
                    self.check(bool(THIRD_PARTY_PINNED.search(image)), f"{cn}: image {image!r} pinned to a version")
                if serving:
                    self.check("livenessProbe" in c, f"{cn}: livenessProbe")
                    self.check("readinessProbe" in c, f"{cn}: readinessProbe")
                for ef in c.get("envFrom", []):
                    ref = ef.get("configMapRef")
                    if ref and not ref.get("optional"):
                        self.check(ref["name"] in configmaps, f"{cn}: ConfigMap {ref['name']} exists")
                if own and serving:
                    cfg = {}
                    for ef in c.get("envFrom", []):
                        ref = ef.get("configMapRef")
                        if ref and ref["name"] in configmaps:
                            cfg.update(configmaps[ref["name"]].get("data", {}))
                    shutdown = int(cfg.get("NOTES_SHUTDOWN_TIMEOUT", 25))
                    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                    grace = spec.get("terminationGracePeriodSeconds", 30)
                    self.check(grace > shutdown + pre_stop,
                               f"{cn}: terminationGracePeriodSeconds {grace} > NOTES_SHUTDOWN_TIMEOUT {shutdown} + preStop {pre_stop}")
                    port = cfg.get("NOTES_LISTEN", "").rsplit(":", 1)[-1]
                    self.check(any(str(p.get("containerPort")) == port for p in c.get("ports", [])),
                               f"{cn}: NOTES_LISTEN port {port!r} is a containerPort")
                    self.check(cfg.get("NOTES_DATA_DIR") == "/data" and any(
                        m["mountPath"] == "/data" for m in c.get("volumeMounts", [])), f"{cn}: /data is a volume")
                    self.check(any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts", [])), f"{cn}: /tmp is a volume")
                    keyed = "NOTES_MASTER_KEY_FILE" in cfg or "NOTES_MASTER_KEY" in cfg
                    loopback = cfg.get("NOTES_LISTEN", "").startswith(("127.", "[::1]", "localhost"))
                    open_api = cfg.get("NOTES_ALLOW_UNAUTHENTICATED", "false").lower() in ("true", "1", "yes", "on")
                    if d["kind"] == "Deployment" and "serve" in (c.get("args") or ["serve"]):
                        # The binary refuses this combination; catch it before a cluster does.
                        self.check(keyed or loopback or open_api,
                                   f"{cn}: serves without keys beyond loopback only with NOTES_ALLOW_UNAUTHENTICATED=true")
                    if self.production:
                        self.check(not open_api, f"{cn}: production never sets NOTES_ALLOW_UNAUTHENTICATED")
                        self.check(cfg.get("NOTES_ENV") == "production", f"{cn}: NOTES_ENV=production")
                        self.check("NOTES_MASTER_KEY_FILE" in cfg or "NOTES_MASTER_KEY" in cfg,
                                   f"{cn}: a master key is configured (NOTES_MASTER_KEY_FILE)")

        # Services select pods; Ingress backends and ServiceMonitor ports resolve.
        pod_labels = [self.pod_template(d)["metadata"].get("labels", {}) for d in self.docs if d["kind"] in WORKLOADS]
        services = {s["metadata"]["name"]: s for s in self.of_kind("Service")}
        for s in services.values():
            sel = s["spec"].get("selector", {})
            self.check(any(all(l.get(k) == v for k, v in sel.items()) for l in pod_labels),
                       f"{self.name(s)}: selector {sel} matches a workload's pods")
        middlewares = {f"{m['metadata']['namespace']}-{m['metadata']['name']}@kubernetescrd" for m in self.of_kind("Middleware")}
        for ing in self.of_kind("Ingress"):
            for rule in ing["spec"].get("rules", []):
                for path in rule.get("http", {}).get("paths", []):
                    svc = path["backend"]["service"]
                    target = services.get(svc["name"])
                    self.check(target is not None and any(p.get("name") == svc["port"].get("name") or p.get("port") == svc["port"].get("number")
                                                          for p in target["spec"]["ports"]),
                               f"{self.name(ing)}: backend {svc} exists")
            refs = ing["metadata"].get("annotations", {}).get("traefik.ingress.kubernetes.io/router.middlewares", "")
            for ref in filter(None, (r.strip() for r in refs.split(","))):
                self.check(ref in middlewares, f"{self.name(ing)}: middleware {ref} exists in namespace {namespace}")
            ann = ing["metadata"].get("annotations", {})
            if ing["spec"].get("tls"):
                self.check("cert-manager.io/cluster-issuer" in ann or "cert-manager.io/issuer" in ann,
                           f"{self.name(ing)}: TLS certificate from cert-manager")
                if default_deny:
                    solver = {"acme.cert-manager.io/http01-solver": "true"}
                    self.check(any("Ingress" in p["spec"].get("policyTypes", []) and p["spec"].get("ingress")
                                   and self.selects(p["spec"].get("podSelector"), solver) for p in netpols),
                               f"{self.name(ing)}: a NetworkPolicy lets the ingress controller reach cert-manager's HTTP-01 solver pods")
        for sm in self.of_kind("ServiceMonitor"):
            matched = [s for s in services.values() if self.selects(sm["spec"]["selector"], s["metadata"].get("labels", {}))]
            self.check(bool(matched), f"{self.name(sm)}: selects a Service")
            for ep in sm["spec"]["endpoints"]:
                self.check(all(any(p.get("name") == ep.get("port") for p in s["spec"]["ports"]) for s in matched),
                           f"{self.name(sm)}: every selected Service has port {ep.get('port')!r}")

        if self.production:
            self.check(bool(self.of_kind("PodDisruptionBudget")), "production: a PodDisruptionBudget")
            self.check(bool(netpols), "production: NetworkPolicies")
            self.check(bool(self.of_kind("PrometheusRule")), "production: a PrometheusRule")
            self.check(bool(self.of_kind("ServiceMonitor")), "production: a ServiceMonitor")
            tls = [i for i in self.of_kind("Ingress") if i["spec"].get("tls")]
            self.check(bool(tls), "production: an Ingress with TLS")
            self.check(any(m["spec"].get("headers", {}).get("stsSeconds", 0) >= 15552000 for m in self.of_kind("Middleware")),
                       "production: HSTS (stsSeconds >= 180 days)")
            self.check(any(m["spec"].get("redirectScheme", {}).get("scheme") == "https" for m in self.of_kind("Middleware")),
                       "production: HTTP -> HTTPS redirect")
        return self.errors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--production", action="store_true", help="also require production-only properties")
    ap.add_argument("file")
    args = ap.parse_args()
    docs = [d for d in yaml.safe_load_all(open(args.file)) if d]
    checker = Checker(docs, args.production)
    errors = checker.run()
    for e in errors:
        print(f"FAIL {args.file}: {e}")
    print(f"  {args.file}: {checker.passed} policy assertions passed, {len(errors)} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
