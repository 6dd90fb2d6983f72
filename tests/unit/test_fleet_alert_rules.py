"""Issue 28, point 3: the fleet's alert rules and Grafana panels, checked offline with promtool.

Every metric the rules and the dashboard name must be one the fleet controller exports: its registry is
built here as `reconcile --watch --targets --verify-interval` builds it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.tools import system_tool, venv_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/fleet-rules.yaml"
RULE_TESTS = ROOT / "deploy/prometheus/fleet-tests.yaml"
OPERATOR_RULE = ROOT / "deploy/prometheus/fleet-prometheusrule.yaml"
DASHBOARD = ROOT / "deploy/grafana/scheduler-reconciler-fleet.json"
DOC = ROOT / "docs/fleet-operations.md"
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$job": ".*"}
METRIC = re.compile(r"\breconciler_[a-z_]+\b")
REQUIRED = {"FleetTargetNotReconciled", "FleetTargetPipelineNotFiring", "FleetGeneratorFailing",
            "FleetShardWithoutReadyReplica"}


def promtool() -> str:
    return system_tool("/usr/bin/promtool", "prometheus")


def alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]


def test_the_rules_parse_and_pass_their_promtool_unit_tests() -> None:
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and f"SUCCESS: {len(alerts())} rules found" in checked.stdout, checked.stdout
    tested = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_alert_has_a_runbook_section_and_a_firing_and_a_quiet_case() -> None:
    found = alerts()
    assert REQUIRED <= found.keys()
    headings = {re.sub(r"[^a-z0-9 _-]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in DOC.read_text().splitlines() if line.startswith("#")}
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    for name, rule in found.items():
        assert re.fullmatch(r"\d+[smh]", rule["for"]) and rule["labels"]["severity"] in ("critical", "warning"), name
        doc, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert doc == "docs/fleet-operations.md" and anchor in headings, (name, anchor)
        assert any(c["alertname"] == name and c["exp_alerts"] for c in cases), f"{name}: no firing case"
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), f"{name}: no quiet case"


def test_the_prometheus_rule_holds_the_same_groups() -> None:
    doc = yaml.safe_load(OPERATOR_RULE.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["spec"] == yaml.safe_load(RULES.read_text())
    result = subprocess.run([venv_tool("kubernetes-validate"), "--strict", str(OPERATOR_RULE)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_promql_parses(tmp_path: Path) -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert {v["name"] for v in doc["templating"]["list"]} == {"datasource", "job"}
    rules = []
    for n, expr in enumerate(dashboard_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:expr_{n}", "expr": expr})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and f"SUCCESS: {len(rules)} rules found" in result.stdout, result.stdout


def exported_names() -> set[str]:
    """The sample names the fleet controller's /metrics can carry (with --verify-interval)."""
    from reconciler.fleet.controller import FleetController, FleetSettings

    controller = FleetController(FleetSettings(targets_file="targets.yaml", verify_interval=60.0))
    names: set[str] = set()
    for family in controller.metrics.registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_every_metric_named_by_the_rules_and_the_dashboard_is_exported() -> None:
    named = set(METRIC.findall(RULES.read_text() + " ".join(dashboard_exprs())))
    assert {"reconciler_fleet_target_pipeline_check", "reconciler_fleet_ready", "reconciler_fleet_shard_replicas",
            "reconciler_fleet_pipeline_failing_targets"} <= named
    assert named - exported_names() == set()
