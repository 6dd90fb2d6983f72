"""The alert rules and the Grafana dashboard the repository ships, for the offline checks
(tests/unit/test_alert_rules.py) and the live one against Prometheus (tests/integration/observability/)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy/prometheus/reconciler-rules.yaml"
DASHBOARD = ROOT / "deploy/grafana/scheduler-reconciler.json"


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
