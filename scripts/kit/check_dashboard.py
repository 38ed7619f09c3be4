#!/usr/bin/env python3
"""Check the Grafana dashboard: valid JSON, the panels the kit promises, and
PromQL that Prometheus parses (each query becomes a recording rule that
`promtool check rules` compiles; Grafana variables are substituted first).

usage: check_dashboard.py DASHBOARD.json OUT_RULES.yaml
"""

import json
import re
import sys

import yaml

REQUIRED_PANELS = ["Requests / s", "p95 latency", "5xx ratio", "Jobs by status / s", "Queue depth", "Pod restarts (1h)"]
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "${namespace}": "notes", "$namespace": "notes"}


def main() -> int:
    dash = json.load(open(sys.argv[1]))
    errors = []
    titles = [p.get("title") for p in dash.get("panels", [])]
    for t in REQUIRED_PANELS:
        if t not in titles:
            errors.append(f"missing panel {t!r}")
    ids = [p.get("id") for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        errors.append("duplicate panel ids")
    rules = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"]
            for k, v in VARIABLES.items():
                expr = expr.replace(k, v)
            if "$" in expr:
                errors.append(f"panel {p['title']!r}: unknown variable in {t['expr']!r}")
            name = re.sub(r"[^a-zA-Z0-9_]", "_", f"dashboard:{p['title']}:{t['refId']}")
            rules.append({"record": name, "expr": expr})
    yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, open(sys.argv[2], "w"), sort_keys=False)
    for e in errors:
        print(f"FAIL {sys.argv[1]}: {e}")
    print(f"  {sys.argv[1]}: {len(dash['panels'])} panels, {len(rules)} queries written for promtool")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
