#!/usr/bin/env python3
"""Check the Grafana dashboard: valid JSON, the panels the kit promises, and
PromQL that Prometheus parses (each query becomes a recording rule that
`promtool check rules` compiles; Grafana variables are substituted first).
What the queries mean, too: request rates and latencies leave out the
probes and the scrape (OPS_ROUTES, the service's route labels of its
operational endpoints), as the alerts do; the queue depth, a global gauge
every process reports, is aggregated with max, not summed. Then the same on
copies with one defect planted each (81c028a's queries), which must fail.

usage: check_dashboard.py DASHBOARD.json OUT_RULES.yaml
"""

import copy
import json
import re
import sys

import yaml

REQUIRED_PANELS = ["Requests / s", "p95 latency", "5xx ratio", "Jobs by status / s", "Queue depth", "Pod restarts (1h)"]
# The route labels of the probes and the scrape (src/http/ops.rs).
OPS_ROUTES = "/healthz|/health|/readyz|/ready|/livez|/metrics"
# Gauges that every process reports with the same, deployment-wide value.
GLOBAL_GAUGES = ("jobs_queued",)
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "${namespace}": "notes", "$namespace": "notes"}


def meaning(dash) -> list[str]:
    errors = []
    for p in dash.get("panels", []):
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            for sel in re.findall(r"(?:http_requests_total|http_request_duration_seconds_bucket)\{([^}]*)\}", expr):
                if f'route!~"{OPS_ROUTES}"' not in sel:
                    errors.append(f"panel {p['title']!r}: {sel!r} counts the probes and the scrape "
                                  f'(want route!~"{OPS_ROUTES}")')
            for g in GLOBAL_GAUGES:
                if re.search(rf"\b(sum|avg)\b[^(]*\(\s*{g}\b", expr):
                    errors.append(f"panel {p['title']!r}: {g} is one value every process reports: max, not sum")
    return errors


def self_test(dash) -> int:
    cases = {
        "81c028a: requests per second with the probes": (f', route!~"{OPS_ROUTES}"', ""),
        "81c028a: the queue depth summed over the processes": ("max(jobs_queued", "sum(jobs_queued"),
    }
    failed = 0
    for name, (old, new) in cases.items():
        planted = copy.deepcopy(dash)
        target = next(t for p in planted["panels"] for t in p.get("targets", []) if old in t.get("expr", ""))
        target["expr"] = target["expr"].replace(old, new, 1)
        if meaning(planted):
            print(f"  ok: planted: {name}: caught")
        else:
            failed += 1
            print(f"FAIL planted: {name} was not caught")
    return failed


def main() -> int:
    dash = json.load(open(sys.argv[1]))
    errors = meaning(dash)
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
    print(f"  {sys.argv[1]}: {len(dash['panels'])} panels, {len(rules)} queries written for promtool; "
          "request panels without probes and scrapes, the queue depth by max")
    if errors:
        return 1
    return 1 if self_test(dash) else 0


if __name__ == "__main__":
    sys.exit(main())
