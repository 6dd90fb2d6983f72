"""Issue 7, "Done when": `reconcile verify` against real pg_cron firings, the pg_net stand-in and the edge stand-in.

pg_cron 1.4 fires once a minute, so every scenario that needs a firing shares ONE minute boundary: three
clusters (the session's supabase and vanilla clusters, and one started here) are set up side by side
and their `reconcile verify --wait 90s` run in parallel:

    healthy     supabase cluster, edge stand-in with the vault's cron secret      → exit 0
    mismatch    vanilla cluster, edge stand-in with another secret                → 401 diagnosis, exit 2
    down        third cluster, project_url names a port nobody listens on         → unreachable, exit 2

The scenarios that need no firing then reuse those databases: the trigger disabled behind our back
(supabase cluster) and a literal token pasted into a cron command (third cluster).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from localdb import Cluster, create_app_tables
from localdb.edge import EdgeFunction
from reconciler.cli.main import main
from tests.fix_db import Resetter, free_port, start_cluster

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT / "scheduler.yaml"
CRON_SECRET = "e2e-vault-cron-secret-7f3a91c2"
OTHER_SECRET = "e2e-edge-other-secret-0b5d44e8"
SERVICE_KEY = "e2e-service-role-key-c1d2e3"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnopqrstuvwxyz012345"

pytestmark = pytest.mark.slow


@dataclass
class Scenario:
    name: str
    url: str  # role postgres
    superuser_url: str
    env: dict[str, str]
    edge: EdgeFunction | None = None
    verify: subprocess.CompletedProcess[str] | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.env["SUPABASE_URL"], self.env["CRON_SECRET"], self.env["SUPABASE_SERVICE_ROLE_KEY"])

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), env={**self.env, "DATABASE_URL": self.url},
                                  catch_exceptions=False)

    def checks(self, result_stdout: str | None = None) -> dict[str, dict[str, Any]]:
        assert self.verify is not None
        doc = json.loads(result_stdout if result_stdout is not None else self.verify.stdout)
        return {c["name"]: c for c in doc["checks"]}


def _prepare(name: str, target_url: str, superuser_url: str, project_url: str) -> Scenario:
    with psycopg.connect(target_url, autocommit=True) as conn:
        create_app_tables(conn)
    env = {"SUPABASE_URL": project_url, "CRON_SECRET": CRON_SECRET, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY}
    scenario = Scenario(name, target_url, superuser_url, env)
    applied = scenario.cli("-f", str(MANIFEST), "--apply")
    assert applied.exit_code == 0, applied.output
    return scenario


def _spawn_verify(s: Scenario) -> subprocess.Popen[str]:
    env = {**os.environ, **s.env, "DATABASE_URL": s.url}
    return subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli.main import main; main()", "verify", "-f", str(MANIFEST),
         "--wait", "90s", "--format", "json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def window(_resetter: Resetter, _vanilla_resetter: Resetter, localdb_base: Path) -> Iterator[dict[str, Scenario]]:
    """All three firing scenarios, set up and verified against the same minute boundary."""
    third: Cluster = start_cluster(localdb_base / "verify-e2e", "vanilla")
    edges: list[EdgeFunction] = []
    try:
        _resetter.reset()
        _vanilla_resetter.reset()
        supa, vanilla = _resetter.cluster, _vanilla_resetter.cluster
        good = EdgeFunction(supa.url(), CRON_SECRET, port=0).start()
        other = EdgeFunction(vanilla.url(), OTHER_SECRET, port=0).start()
        edges += [good, other]
        scenarios = {
            "healthy": _prepare("healthy", supa.url(), supa.superuser_url(), good.url),
            "mismatch": _prepare("mismatch", vanilla.url(), vanilla.superuser_url(), other.url),
            "down": _prepare("down", third.url(), third.superuser_url(), f"http://127.0.0.1:{free_port()}"),
        }
        scenarios["healthy"].edge, scenarios["mismatch"].edge = good, other
        procs = {name: _spawn_verify(s) for name, s in scenarios.items()}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=150)
            scenarios[name].verify = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        yield scenarios
    finally:
        for edge in edges:
            edge.stop()
        third.down()


def _no_secrets(s: Scenario, *texts: str) -> None:
    for text in texts:
        for secret in s.secrets:
            assert secret not in text


def test_healthy_pipeline_verifies(window: dict[str, Scenario]) -> None:
    s = window["healthy"]
    assert s.verify is not None
    assert s.verify.returncode == 0, s.verify.stdout + s.verify.stderr
    checks = s.checks()
    assert {name: c["status"] for name, c in checks.items()} == {
        "preflight": "pass", "master-scheduler: runs": "pass", "master-scheduler: http": "pass",
        "master-scheduler: executions": "pass", "scheduled jobs: freshness": "pass", "housekeeping": "pass",
        "secret literals": "pass"}
    assert checks["master-scheduler: http"]["summary"] == (
        "{project_url}/functions/v1/run-scheduled-jobs answered HTTP 200")
    assert s.edge is not None and 200 in s.edge.statuses
    _no_secrets(s, s.verify.stdout, s.verify.stderr)


def test_secret_mismatch_is_diagnosed(window: dict[str, Scenario]) -> None:
    s = window["mismatch"]
    assert s.verify is not None
    assert s.verify.returncode == 2, s.verify.stdout + s.verify.stderr
    checks = s.checks()
    http = checks["master-scheduler: http"]
    assert http["status"] == "fail"
    assert http["summary"] == ("the endpoint rejected x-cron-secret: the vault secret cron_secret differs from "
                               "the Edge Function's CRON_SECRET (HTTP 401)")
    assert checks["master-scheduler: runs"]["status"] == "pass"  # pg_cron only queued the request: succeeded
    assert checks["master-scheduler: executions"]["status"] == "skip"
    assert s.edge is not None and set(s.edge.statuses) == {401}
    _no_secrets(s, s.verify.stdout, s.verify.stderr)
    assert OTHER_SECRET not in s.verify.stdout


def test_endpoint_down_is_unreachable(window: dict[str, Scenario]) -> None:
    s = window["down"]
    assert s.verify is not None
    assert s.verify.returncode == 2, s.verify.stdout + s.verify.stderr
    http = s.checks()["master-scheduler: http"]
    assert http["status"] == "fail"
    assert http["summary"] == "unreachable: {project_url}/functions/v1/run-scheduled-jobs: Couldn't connect to server"
    _no_secrets(s, s.verify.stdout, s.verify.stderr)
    port = s.env["SUPABASE_URL"].rsplit(":", 1)[1]
    assert port not in s.verify.stdout


def test_trigger_disabled_behind_our_back(window: dict[str, Scenario]) -> None:
    s = window["healthy"]
    with psycopg.connect(s.url, autocommit=True) as conn:
        conn.execute("SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'),"
                     " active := false)")
    verified = s.cli("verify", "-f", str(MANIFEST))
    assert verified.exit_code == 2, verified.output
    assert ("FAIL  master-scheduler: runs: trigger master-scheduler is disabled (cron.job.active = false)"
            in verified.stdout)
    assert "FAIL  preflight: the database differs from" in verified.stdout
    assert "trigger master-scheduler: update (disabled outside git since apply #" in verified.stdout
    assert ": active): active false → true" in verified.stdout
    plan = s.cli("-f", str(MANIFEST), "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "master-scheduler" in plan.stdout and "active" in plan.stdout and "disabled" in plan.stdout
    fixed = s.cli("-f", str(MANIFEST), "--apply")
    assert fixed.exit_code == 0, fixed.output
    again = s.cli("verify", "-f", str(MANIFEST), "--format", "json")
    checks = {c["name"]: c["status"] for c in json.loads(again.stdout)["checks"]}
    assert checks["preflight"] == "pass" and checks["master-scheduler: runs"] == "pass"
    _no_secrets(s, verified.output, plan.output, again.output)


def test_literal_token_is_flagged_without_being_printed(window: dict[str, Scenario]) -> None:
    s = window["down"]
    with psycopg.connect(s.url, autocommit=True) as conn:
        conn.execute(f"SELECT cron.schedule('leaky', '0 0 * * *', 'select ''{JWT}''')")
    outputs = []
    for fmt in ("text", "json", "markdown"):
        result = s.cli("verify", "-f", str(MANIFEST), "--format", fmt)
        assert result.exit_code == 2, result.output
        outputs.append(result.output)
    assert "cron.job 'leaky' column command: a JWT-shaped token at character 9" in outputs[0]
    secrets = {c["name"]: c for c in json.loads(outputs[1])["checks"]}["secret literals"]
    assert secrets["status"] == "fail"
    for text in outputs:
        assert "eyJ" not in text
        for part in JWT.split("."):
            assert part[:6] not in text
