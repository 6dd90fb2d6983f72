"""`reconcile verify --targets FILE`: one table of target x check, exit 2 when a target's check fails, 1 when a
target cannot be verified; no secret printed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from reconciler.cli.main import main
from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import MARKERS, SECRETS_ENV
from tests.integration.fleet_support import (
    databases,
    fleet_manifest,
    targets_yaml,
    unreachable_url,
    url_variable,
)

APPLIED, DRIFTED, DEAD = "verify-cli-applied", "verify-cli-drifted", "verify-cli-dead"


def cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    for marker in MARKERS:
        assert marker not in result.stdout + result.stderr
    return result


def test_a_table_of_targets_and_checks_and_its_exit_codes(empty_db: DbTarget, tmp_path: Path) -> None:
    manifest = fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml((APPLIED, DRIFTED)))
    with databases(empty_db.cluster, (APPLIED, DRIFTED)) as urls:
        env = {**SECRETS_ENV, **{url_variable(n): u for n, u in urls.items()}}
        applied = cli(env, "--targets", str(targets), "-f", str(manifest), "--apply", "--target", APPLIED)
        assert applied.exit_code == 0, applied.stderr

        result = cli(env, "verify", "--targets", str(targets), "-f", str(manifest))
        assert result.exit_code == 2, result.output
        table = result.stdout.split("\n\n")[0].splitlines()
        assert table[0].split() == ["TARGET", "preflight", "runs", "http", "executions", "jobs_freshness",
                                    "housekeeping", "secret_literals", "ERROR"]
        rows = {line.split()[0]: line.split() for line in table[1:]}
        assert rows[APPLIED][1] in ("pass", "warn") and rows[DRIFTED][1] == "fail"
        assert rows[APPLIED][2:4] == ["-", "-"]  # the fleet manifest declares no trigger
        assert "2 target(s): 1 with failing checks, 0 not verified." in result.stdout
        assert f"target {DRIFTED}: preflight: " in result.stdout and f"target {APPLIED}: preflight" not in result.stdout

        document = json.loads(cli(env, "verify", "--targets", str(targets), "-f", str(manifest), "--format",
                                  "json").stdout)
        checks = {c["name"]: c["status"] for c in document["targets"][DRIFTED]["checks"]}
        assert checks["preflight"] == "fail" and document["errors"] == []

        targets.write_text(targets_yaml((APPLIED, DRIFTED, DEAD)))
        env[url_variable(DEAD)] = unreachable_url(free_port())
        with_dead = cli(env, "verify", "--targets", str(targets), "-f", str(manifest))
        assert with_dead.exit_code == 1
        assert f"error: target {DEAD}: cannot connect to the database" in with_dead.stderr
        assert "3 target(s): 1 with failing checks, 1 not verified." in with_dead.stdout

        usage = cli(env, "verify", "--targets", str(targets), "--wait", "10s")
        assert usage.exit_code == 1 and "cannot be used with --targets" in usage.stderr


def test_a_targets_error_names_it_once(empty_db: DbTarget, tmp_path: Path) -> None:
    manifest = fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml((DEAD,)))
    result = cli(dict(SECRETS_ENV), "verify", "--targets", str(targets), "-f", str(manifest))  # its URL is not set
    assert result.exit_code == 1
    assert f"error: target {DEAD}: database URL: " in result.stderr
    assert f"target {DEAD}: target {DEAD}" not in result.stdout + result.stderr
