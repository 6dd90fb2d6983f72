"""Issue 18, points 2 and 4: the alert rules and the Grafana dashboard, checked offline.

promtool (Debian package `prometheus`) parses the rules and runs their unit tests (deploy/prometheus/
tests.yaml); the dashboard's PromQL is parsed by promtool too, as recording rules generated here. Every
metric the rules and the dashboard name must be one the controller exports: its registry is built here
exactly as `reconcile --watch` builds it and judged once on verify's evidence (the live /metrics is
compared again in tests/integration/observability/test_prometheus.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.monitoring_support import DASHBOARD, RULES, dashboard_exprs
from tests.tools import system_tool, venv_tool

ROOT = Path(__file__).resolve().parents[2]
RULE_TESTS = ROOT / "deploy/prometheus/tests.yaml"
OPERATOR_RULE = ROOT / "deploy/prometheus/prometheusrule.yaml"
DOC = ROOT / "docs/observability.md"
#: Grafana's own variables, replaced by plain values so promtool can parse the expressions.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}
METRIC = re.compile(r"\breconciler_[a-z_]+\b")


def promtool() -> str:
    return system_tool("/usr/bin/promtool", "prometheus")


def alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


def test_rules_parse_with_promtool() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_rules_pass_their_promtool_unit_tests() -> None:
    result = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_for_severity_runbook_and_a_firing_unit_test() -> None:
    required = {"SchedulerNotFiring", "TriggerUnauthorized", "QueueStuck", "DriftNotCorrected", "ReconcileFailing",
                "ManifestInvalid"}
    found = alerts()
    assert required <= found.keys()
    headings = {_slug(line.lstrip("#").strip()) for line in DOC.read_text().splitlines() if line.startswith("#")}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {c["alertname"] for t in tests for c in t["alert_rule_test"] if c["exp_alerts"]}
    quiet = {c["alertname"] for t in tests for c in t["alert_rule_test"] if not c["exp_alerts"]}
    for name, rule in found.items():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), name
        doc, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert doc == "docs/observability.md" and anchor in headings, (name, anchor)
        assert name in firing and name in quiet, f"{name} needs a firing and a quiet case in tests.yaml"
    # the 401 alert carries the runbook's fix, not only the diagnosis
    assert "supabase secrets set CRON_SECRET" in found["TriggerUnauthorized"]["annotations"]["description"]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def test_prometheus_rule_holds_the_same_groups_and_is_well_formed() -> None:
    doc = yaml.safe_load(OPERATOR_RULE.read_text())
    assert doc["spec"] == yaml.safe_load(RULES.read_text())
    exe = venv_tool("kubernetes-validate")
    result = subprocess.run([exe, "--strict", str(OPERATOR_RULE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # kubernetes-validate ships no schema for the operator's CRD (it says so and passes), so the parts of
    # monitoring.coreos.com/v1 PrometheusRule that the operator requires are checked here
    if "Couldn't find schema for kind PrometheusRule" in result.stdout + result.stderr:
        jsonschema.validate(doc, PROMETHEUS_RULE_SCHEMA)


_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
#: The shape of the CRD's openAPIV3Schema (prometheus-operator, monitoring.coreos.com_prometheusrules.yaml).
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"],
                     "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                                    "labels": _STRINGS}},
        "spec": {"type": "object", "additionalProperties": False, "properties": {"groups": {
            "type": "array", "items": {
                "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                "properties": {"name": {"type": "string", "minLength": 1}, "interval": {"type": "string"},
                               "rules": {"type": "array", "items": {
                                   "type": "object", "required": ["expr"], "additionalProperties": False,
                                   "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                   "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                                                  "expr": {"type": ["string", "integer"]},
                                                  "for": {"type": "string", "pattern": _DURATION},
                                                  "labels": _STRINGS, "annotations": _STRINGS}}}}}}}},
    },
}


def test_dashboard_has_a_datasource_variable_and_covers_the_topics() -> None:
    doc = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in doc["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
    named = set(METRIC.findall(" ".join(dashboard_exprs())))
    # cycles, drift, applied changes, pipeline checks, last runs, HTTP outcomes
    assert {"reconciler_cycles_total", "reconciler_drifted_resources", "reconciler_changes_applied_total",
            "reconciler_pipeline_check", "reconciler_trigger_last_success_timestamp_seconds",
            "reconciler_trigger_http_responses_total"} <= named


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    rules = []
    for n, expr in enumerate(dashboard_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:expr_{n}", "expr": expr})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    # and promtool would have refused a broken one
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [{"record": "x:y", "expr": "sum(rate(a[5m]"}]}]}))
    broken = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert broken.returncode != 0


def exported_names() -> set[str]:
    """Sample names of the controller's /metrics after one verification (the registry `--watch` serves)."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from reconciler.watch.controller import Controller, Settings
    from tests.unit.verify_support import healthy

    controller = Controller(Settings(files=["scheduler.yaml"], url="postgresql://unused", http_port=-1))
    assert controller.pipeline is not None
    controller.pipeline.judge(healthy())
    text = generate_latest(controller.metrics.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_metric_named_is_exported(source: str) -> None:
    text = RULES.read_text() if source == "rules" else " ".join(dashboard_exprs())
    named = set(METRIC.findall(text))
    assert named
    assert named - exported_names() == set()
