#!/usr/bin/env python3
"""Strict schema validation of rendered Kubernetes manifests, offline.

Core kinds: kubernetes-validate's schemas, strict (unknown fields rejected),
for every Kubernetes version given. Every other kind: the CRD schema vendored
in deploy/schemas/crds/, made strict the way the API server's
fieldValidation=Strict is (an undeclared field is an error). A kind with
neither schema is an error: nothing is skipped.

usage: validate_manifests.py --versions 1.31,1.32 --crd-dir DIR FILE...
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

# ObjectMeta fields a manifest may carry (the server-populated ones, such as
# uid or resourceVersion, do not belong in a manifest).
OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253,
                 "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "namespace": {"type": "string", "maxLength": 63,
                      "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}


def go_regex_to_python(pattern: str) -> str:
    """Go's RE2 accepts a flag group anywhere (`^(?i)x`); Python only first."""
    if "(?i)" in pattern and not pattern.startswith("(?i)"):
        return "(?i)" + pattern.replace("(?i)", "")
    return pattern


def strictify(node):
    """Reject undeclared fields wherever a schema declares its properties."""
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            node["pattern"] = go_regex_to_python(node["pattern"])
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            strictify(value)
    elif isinstance(node, list):
        for value in node:
            strictify(value)
    return node


def load_crd_schemas(crd_dir: Path) -> dict:
    schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        schema = strictify(copy.deepcopy(doc["openAPIV3Schema"]))
        schema.setdefault("properties", {})["metadata"] = OBJECT_META
        if doc.get("definitions"):
            schema["definitions"] = strictify(copy.deepcopy(doc["definitions"]))
        jsonschema.Draft7Validator.check_schema(schema)
        schemas[(doc["apiVersion"], doc["kind"])] = (path.name, doc.get("scope", "Namespaced"), schema)
    return schemas


def describe(doc: dict) -> str:
    meta = doc.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{doc.get('kind')}/{(ns + '/') if ns else ''}{meta.get('name')}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", required=True, help="comma-separated, e.g. 1.31,1.32")
    ap.add_argument("--crd-dir", required=True, type=Path)
    ap.add_argument("--dump-custom-resources", type=Path,
                    help="write every custom resource seen to this JSON file")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()

    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    crds = load_crd_schemas(args.crd_dir)
    failures = 0
    custom = []
    for path in args.files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        core = crd = 0
        for doc in docs:
            name = describe(doc)
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in crds:
                schema_file, _scope, schema = crds[key]
                errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc),
                                key=lambda e: list(e.absolute_path))
                for err in errors:
                    failures += 1
                    where = "/".join(str(p) for p in err.absolute_path) or "(root)"
                    print(f"FAIL {path}: {name}: {where}: {err.message} [{schema_file}]")
                crd += 1
                custom.append(doc)
                continue
            for version in versions:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.SchemaNotFoundError:
                    failures += 1
                    print(f"FAIL {path}: {name}: no schema for {key[0]} {key[1]} "
                          f"in Kubernetes {version} nor in {args.crd_dir}")
                    break
                except kubernetes_validate.ValidationError as err:
                    failures += 1
                    where = "/".join(str(p) for p in err.path) or "(root)"
                    print(f"FAIL {path}: {name}: k8s {version}: {where}: {err.message}")
            else:
                core += 1
        print(f"  {path}: {core} core objects x {len(versions)} versions, "
              f"{crd} custom resources: {'ok' if not failures else 'errors above'}")
    if args.dump_custom_resources:
        args.dump_custom_resources.write_text(json.dumps(custom))
    if failures:
        print(f"{failures} schema error(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
