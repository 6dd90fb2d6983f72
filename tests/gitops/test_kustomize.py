"""The Kustomize bases and overlays, rendered by Debian's kubectl 1.20 (kustomize v2.0.3, what a fresh
Debian machine installs) and validated offline; the Argo CD and Flux examples validated the same way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from reconciler.fleet.targets_file import load_targets_file
from reconciler.manifest import load_manifest
from tests.gitops.kube_support import by_kind, problems, render
from tests.gitops.tool_paths import ROOT

RENDERED = ["deploy/kubernetes", "deploy/kubernetes/fleet", "deploy/kustomize/production", "deploy/kustomize/fleet",
            "examples/argocd/apply-on-sync"]


@pytest.mark.parametrize("directory", RENDERED)
def test_every_rendered_object_is_valid(directory, tmp_path):
    docs = render(ROOT / directory)
    assert docs
    assert problems(docs, tmp_path) == []


def _container(workload: dict) -> dict:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def _shards(statefulset: dict) -> int:
    env = {e["name"]: e.get("value") for e in _container(statefulset)["env"]}
    return int(env["RECONCILE_SHARD_REPLICAS"])


def test_the_production_overlay_sets_image_manifest_secret_resources_probes_and_monitoring(tmp_path):
    docs = render(ROOT / "deploy/kustomize/production")
    assert {d["metadata"]["namespace"] for d in docs} == {"scheduler"}
    (deployment,) = by_kind(docs, "Deployment")
    container = _container(deployment)
    assert container["image"] == "ghcr.io/acme/scheduler-reconciler:0.1.0"
    assert container["envFrom"] == [{"secretRef": {"name": "scheduler-reconciler-production"}}]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "384Mi"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" and container["livenessProbe"]["periodSeconds"] == 20
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["replicas"] == 2
    assert not by_kind(docs, "Secret")  # referenced, never rendered with values
    (configmap,) = by_kind(docs, "ConfigMap")
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    (tmp_path / "scheduler.yaml").write_text(configmap["data"]["scheduler.yaml"])
    assert len(load_manifest([str(tmp_path / "scheduler.yaml")]).jobs) == 13
    (service,) = by_kind(docs, "Service")
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert by_kind(docs, "PrometheusRule")[0]["spec"]["groups"]


def test_the_fleet_overlay_keeps_replicas_and_shards_equal(tmp_path):
    docs = render(ROOT / "deploy/kustomize/fleet")
    (statefulset,) = by_kind(docs, "StatefulSet")
    assert statefulset["spec"]["replicas"] == _shards(statefulset) == 3
    assert _container(statefulset)["envFrom"] == [{"secretRef": {"name": "reconciler-fleet-production"}}]
    env = {e["name"]: e for e in _container(statefulset)["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # kept from the base
    (configmap,) = by_kind(docs, "ConfigMap")
    (tmp_path / "targets.yaml").write_text(configmap["data"]["targets.yaml"])
    (tmp_path / "scheduler.yaml").write_text(configmap["data"]["scheduler.yaml"])
    assert [t.name for t in load_targets_file(tmp_path / "targets.yaml").targets] == ["production"]
    load_manifest([str(tmp_path / "scheduler.yaml")])
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (service,) = by_kind(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def _scaled_overlay(tmp_path: Path, replicas: int, shards: int) -> Path:
    """A team's overlay on top of deploy/kustomize/fleet that scales it."""
    overlay = tmp_path / "scaled"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(
        {"bases": [os.path.relpath(ROOT / "deploy/kustomize/fleet", overlay)], "patchesStrategicMerge": ["scale.yaml"]}))
    (overlay / "scale.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "reconciler-fleet"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "reconciler", "env": [{"name": "RECONCILE_SHARD_REPLICAS", "value": str(shards)}]}]}}}}))
    return overlay


def test_scaling_the_fleet_both_numbers_together_renders_equal_and_valid(tmp_path):
    docs = render(_scaled_overlay(tmp_path, 5, 5))
    (statefulset,) = by_kind(docs, "StatefulSet")
    assert statefulset["spec"]["replicas"] == _shards(statefulset) == 5
    assert problems(docs, tmp_path) == []


def test_scaling_only_the_replicas_is_caught(tmp_path):
    (statefulset,) = by_kind(render(_scaled_overlay(tmp_path, 5, 3)), "StatefulSet")
    assert statefulset["spec"]["replicas"] != _shards(statefulset)


@pytest.mark.parametrize("path", ["examples/argocd/application.yaml", "examples/flux/kustomization.yaml"])
def test_the_gitops_controller_examples_are_valid(path, tmp_path):
    docs = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]
    assert problems(docs, tmp_path) == []


def test_the_controller_examples_point_at_an_overlay_that_renders():
    application = yaml.safe_load((ROOT / "examples/argocd/application.yaml").read_text())
    flux = yaml.safe_load((ROOT / "examples/flux/kustomization.yaml").read_text())
    for path in (application["spec"]["source"]["path"], flux["spec"]["path"].removeprefix("./")):
        assert by_kind(render(ROOT / path), "Deployment")


def _wave(doc: dict) -> int:
    return int(doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def test_apply_on_sync_applies_the_synced_manifest_in_presync_and_the_controller_only_reports():
    docs = render(ROOT / "examples/argocd/apply-on-sync")
    (job,) = by_kind(docs, "Job")
    (configmap,) = by_kind(docs, "ConfigMap")
    (deployment,) = by_kind(docs, "Deployment")
    for hook in (job, configmap):
        assert hook["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    assert _wave(configmap) < _wave(job)  # the manifest of the commit being synced is there first
    assert job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == configmap["metadata"]["name"]
    args = _container(job)["args"]
    assert args[0] == "--apply" and args[args.index("--lock-timeout") + 1] == "300"
    assert _container(job)["envFrom"] == _container(deployment)["envFrom"]
    assert _container(job)["image"] == _container(deployment)["image"]
    assert "--watch" in _container(deployment)["args"] and "--apply" not in _container(deployment)["args"]


@pytest.mark.parametrize(("kind", "break_it", "error"), [
    ("ServiceMonitor", lambda d: d["spec"]["endpoints"][0].update(port=8080), "8080 is not of type 'string'"),
    ("ServiceMonitor", lambda d: d["spec"].pop("selector"), "'selector' is a required property"),
    ("PrometheusRule", lambda d: d["spec"]["groups"][0]["rules"][0].update(expr=None), "expr"),
    ("PrometheusRule", lambda d: d["spec"]["groups"][0]["rules"][0].update(four="5m"), "'four' was unexpected"),
    ("Deployment", lambda d: d["spec"].update(replicas="two"), "replicas"),
], ids=["servicemonitor-port-number", "servicemonitor-no-selector", "rule-without-expr", "rule-misspelt-for",
        "deployment-replicas-string"])
def test_a_broken_rendered_object_is_rejected(tmp_path, kind, break_it, error):
    (doc,) = by_kind(render(ROOT / "deploy/kustomize/production"), kind)
    break_it(doc)
    found = problems([doc], tmp_path)
    assert found and error in "\n".join(found)


@pytest.mark.parametrize(("path", "break_it", "error"), [
    ("examples/argocd/application.yaml", lambda d: d["spec"].pop("destination"), "'destination' is a required"),
    ("examples/argocd/application.yaml", lambda d: d["spec"]["syncPolicy"]["automated"].update(prune="yes"),
     "'yes' is not of type 'boolean'"),
    ("examples/flux/kustomization.yaml", lambda d: d["spec"].update(interval="ten minutes"), "does not match"),
    ("examples/flux/kustomization.yaml", lambda d: d["spec"]["sourceRef"].update(kind="HelmRepository"),
     "is not one of"),
], ids=["application-no-destination", "application-prune-string", "flux-interval", "flux-source-kind"])
def test_a_broken_controller_resource_is_rejected(tmp_path, path, break_it, error):
    doc = yaml.safe_load((ROOT / path).read_text())
    break_it(doc)
    found = problems([doc], tmp_path)
    assert found and error in "\n".join(found)


def test_a_kind_without_a_schema_is_not_passed_silently(tmp_path):
    found = problems([{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}], tmp_path)
    assert found == ["Widget example.com/v1: no CRD schema in tests/gitops/crds/"]


def test_the_overlays_are_kustomize_v2_syntax():
    """No components or replacements: Debian's kustomize v2.0.3 knows neither (render() would fail too)."""
    for path in (ROOT / "deploy").glob("**/kustomization.yaml"):
        assert not {"components", "replacements"} & set(yaml.safe_load(path.read_text())), path
