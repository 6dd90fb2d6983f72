"""The CLI and the controller run a fleet generated from a project's branches (Management API stand-in):
branches whose migrations have not passed are skipped, a failing generator fails the run but not the
declared targets, and no token, database password or service key shows in any output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from localdb.management_api import ManagementApiStandIn
from reconciler.cli.main import main
from tests.fix_db import DbTarget
from tests.integration.apply_support import MARKERS, SECRETS_ENV, wait_until
from tests.integration.controller_support import metric
from tests.integration.fleet_support import databases, fleet_manifest, fleet_watcher, url_variable

TOKEN = "sbp_fleet-run-token-MARKER-0b7e"
DECLARED = "fleet-gen-declared"


@pytest.fixture
def generated(audited_db: DbTarget, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A declared target (its own database) and a project whose branch `feature/login` is the cluster's
    `postgres` database; branch `wip` is still running its migrations."""
    cluster = audited_db.cluster
    manifest = fleet_manifest(tmp_path)
    with ManagementApiStandIn(token=TOKEN) as api, databases(cluster, [DECLARED]) as urls:
        project = api.add_project("signals")
        feature = api.add_branch(project.ref, "feature/login", url=cluster.url())
        api.add_branch(project.ref, "wip", status="RUNNING_MIGRATIONS", url=cluster.url())
        targets = tmp_path / "targets.yaml"
        targets.write_text(f"""\
version: 1
targets:
  - name: {DECLARED}
    database_url: {{from_env: {url_variable(DECLARED)}}}
generators:
  - supabase_branches:
      project_ref: {project.ref}
      api_url: {api.url}
      access_token_env: SUPABASE_ACCESS_TOKEN
      sslmode: disable
      secrets: {{project_url: url, service_role_key: service_role_key}}
""")
        env = {**SECRETS_ENV, "SUPABASE_ACCESS_TOKEN": TOKEN, url_variable(DECLARED): urls[DECLARED]}
        markers = (*MARKERS, TOKEN, feature.db_pass, feature.service_role_key, project.service_role_key)
        yield {"manifest": manifest, "targets": targets, "env": env, "feature": feature, "markers": markers,
               "cluster": cluster, "dir": tmp_path}


def _cli(g: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, ["--targets", str(g["targets"]), "-f", str(g["manifest"]), *args],
                                env=env or g["env"], catch_exceptions=False)
    for marker in g["markers"]:
        assert marker not in result.stdout + result.stderr
    return result


def _vault_project_url(g: dict[str, Any]) -> str:
    cluster = g["cluster"]
    with psycopg.connect(cluster.superuser_url()) as conn:
        return conn.execute("SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'project_url'"
                            ).fetchone()[0]


def test_the_cli_plans_and_applies_the_branches_of_a_project(generated) -> None:  # type: ignore[no-untyped-def]
    g = generated
    plan = _cli(g, "--dry-run", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.stdout + plan.stderr
    assert "== target feature-login ==" in plan.stdout and f"== target {DECLARED} ==" in plan.stdout
    assert "wip" not in plan.stdout and any(line.startswith("note: ") and '"wip"' in line
                                            for line in plan.stderr.splitlines())
    applied = _cli(g, "--apply")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    # the branch's own URL (from the generator) replaced the manifest's SUPABASE_URL
    assert _vault_project_url(g) == f"https://{g['feature'].ref}.supabase.co"
    assert _cli(g, "--dry-run", "--detailed-exitcode").exit_code == 0


def test_a_failing_generator_fails_the_run_but_not_the_declared_targets(generated) -> None:  # type: ignore[no-untyped-def]
    g = generated
    result = _cli(g, "--dry-run", "--format", "json", env={**g["env"], "SUPABASE_ACCESS_TOKEN": "wrong-token"})
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert list(document["targets"]) == [DECLARED] and document["targets"][DECLARED]["error"] is None
    assert len(document["errors"]) == 1 and "supabase_branches" in document["errors"][0]
    assert any(line.startswith("error: ") and "supabase_branches" in line for line in result.stderr.splitlines())


def test_the_controller_applies_the_generated_targets(generated) -> None:  # type: ignore[no-untyped-def]
    g = generated
    w = fleet_watcher(g["dir"], g["targets"], "--apply", env=g["env"], name="generated")
    try:
        w.wait_http()
        wait_until("ready", lambda: w.status("/readyz") == 200, 20)
        runs = {e["target"]: e for e in w.events("target_cycle_finished")}
        assert set(runs) == {DECLARED, "feature-login"}
        assert all(e["result"] == "success" and e["applied"] for e in runs.values()), runs
        samples = w.metrics()
        assert metric(samples, "reconciler_fleet_target_up", target="feature-login") == 1
        assert metric(samples, "reconciler_fleet_targets") == 2
        assert _vault_project_url(g) == f"https://{g['feature'].ref}.supabase.co"
        shown = w.stderr() + w.stdout() + w.get("/metrics").text
        for marker in g["markers"]:
            assert marker not in shown
    finally:
        w.close()
