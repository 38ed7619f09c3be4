// Second, independent check of custom resources against the complete
// upstream schemas shipped by the @kubernetes-models npm packages (types,
// enums, patterns, required fields). Those validators accept unknown fields;
// validate_manifests.py is the strict (unknown-field) check.
//
// usage: node validate_crds.mjs objects.json   (a JSON array of objects)
// Run from a directory whose node_modules holds the packages below.
import { readFileSync } from "node:fs";

const packages = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "traefik.io": "@kubernetes-models/traefik",
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "acme.cert-manager.io": "@kubernetes-models/cert-manager",
  "argoproj.io": "@kubernetes-models/argo-cd",
  "source.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "kustomize.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "helm.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "image.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "notification.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "external-secrets.io": "@kubernetes-models/external-secrets",
};

const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failures = 0;
let checked = 0;
const without = new Set();
for (const obj of objects) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const pkg = packages[group];
  const name = `${obj.kind}/${obj.metadata?.namespace ? obj.metadata.namespace + "/" : ""}${obj.metadata?.name}`;
  if (!pkg) {
    without.add(`${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  const mod = await import(`${pkg}/${group}/${version}/${obj.kind}`);
  const Model = mod[obj.kind];
  try {
    new Model(obj).validate();
    checked++;
  } catch (err) {
    failures++;
    console.log(`FAIL ${name}: ${err.message}`);
  }
}
console.log(`  @kubernetes-models: ${checked} custom resources valid` +
  (without.size ? `; no npm model (vendored schema only): ${[...without].sort().join(", ")}` : ""));
process.exit(failures ? 1 : 0);
