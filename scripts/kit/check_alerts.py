#!/usr/bin/env python3
"""Alerts on an idle cluster, with promtool: every alert of the
PrometheusRule stays silent on deploy/monitoring/tests/idle-probed.test.yaml
(no client request; the kubelet's probes and Prometheus' scrape only, while
one replica rebuilds its search index and its /readyz answers 503).

  1. every alert of the rules has a quiet case (exp_alerts: []) in that test,
     so a new alert cannot skip it;
  2. promtool test rules passes on it (run by scripts/verify-kit.sh with the
     other tests);
  3. planted: the same test against the rules with NotesApiHigh5xxRatio as
     at 81c028a (probes and scrapes counted) must fail, i.e. the series is
     one that pages without the exclusion.

usage: check_alerts.py RULES.yaml TESTDIR   (RULES: the PrometheusRule's spec,
       as scripts/verify-kit.sh writes it for promtool)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

IDLE = "idle-probed.test.yaml"
# The expressions of 81c028a: every route counted.
PLANTED = {
    "NotesApiHigh5xxRatio": """(
  sum by (namespace, job) (rate(http_requests_total{job="notes-api", status=~"5.."}[5m]))
  /
  sum by (namespace, job) (rate(http_requests_total{job="notes-api"}[5m]))
) > 0.05
and
sum by (namespace, job) (rate(http_requests_total{job="notes-api"}[5m])) > 0.05
""",
}


def main() -> int:
    rules_path, testdir = Path(sys.argv[1]), Path(sys.argv[2])
    rules = yaml.safe_load(rules_path.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    idle = yaml.safe_load((testdir / IDLE).read_text())
    quiet = {a["alertname"] for t in idle["tests"] for a in t.get("alert_rule_test", []) if not a.get("exp_alerts")}
    loud = {a["alertname"] for t in idle["tests"] for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    errors = [f"{IDLE}: no quiet case for {a}" for a in sorted(alerts - quiet)]
    errors += [f"{IDLE}: {a} is expected to fire on an idle cluster" for a in sorted(loud)]
    for e in errors:
        print(f"FAIL {e}")
    if errors:
        return 1
    print(f"  ok: {IDLE}: all {len(alerts)} alerts have a quiet case on an idle, probed cluster with one replica rebuilding")

    failures = 0
    for alert, expr in PLANTED.items():
        with tempfile.TemporaryDirectory(prefix="check-alerts-") as tmp:
            tmp = Path(tmp)
            planted = yaml.safe_load(rules_path.read_text())
            rule = next(r for g in planted["groups"] for r in g["rules"] if r.get("alert") == alert)
            rule["expr"] = expr
            (tmp / rules_path.name).write_text(yaml.safe_dump(planted, sort_keys=False))
            shutil.copy(testdir / IDLE, tmp / IDLE)
            res = subprocess.run(["promtool", "test", "rules", IDLE], cwd=tmp, capture_output=True, text=True)
            fired = res.returncode != 0 and alert in res.stdout + res.stderr
            if fired:
                print(f"  ok: planted: {alert} of 81c028a (probes counted) pages on the idle series: caught")
            else:
                failures += 1
                print(f"FAIL planted: {alert} of 81c028a stayed silent on {IDLE}: the series does not show the defect\n"
                      f"{res.stdout}{res.stderr}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
