"""`reconcile --targets targets.yaml`: a summary per target, one JSON document, exit codes, isolation, no secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.cli.main import main
from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import MARKERS, SECRETS_ENV
from tests.integration.fleet_support import databases, fleet_manifest, unreachable_url, url_variable

LIVE = ("fleet-cli-a", "fleet-cli-b", "fleet-cli-c")
DEAD = "fleet-cli-dead"
DEAD_PASSWORD = "dead-target-password"


@pytest.fixture
def fleet(empty_db: DbTarget, tmp_path: Path) -> Iterator[dict[str, Any]]:
    manifest = fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    entries = "".join(f"  - name: {name}\n    database_url: {{from_env: {url_variable(name)}}}\n"
                      for name in (*LIVE, DEAD))
    targets.write_text("version: 1\ntargets:\n" + entries)
    with databases(empty_db.cluster, LIVE) as urls:
        env = {**SECRETS_ENV, **{url_variable(n): u for n, u in urls.items()},
               url_variable(DEAD): unreachable_url(free_port())}
        yield {"manifest": manifest, "targets": targets, "env": env, "urls": urls}


def fleet_cli(fleet: dict[str, Any], *args: str) -> Result:
    argv = ["--targets", str(fleet["targets"]), "-f", str(fleet["manifest"]), *args]
    result = CliRunner().invoke(main, argv, env=fleet["env"], catch_exceptions=False)
    for marker in (*MARKERS, DEAD_PASSWORD):
        assert marker not in result.stdout + result.stderr
    return result


def _live(*args: str) -> list[str]:
    return [w for name in LIVE for w in ("--target", name)] + list(args)


def test_a_dry_run_summarises_every_target_and_one_dead_target_fails_the_run(fleet) -> None:  # type: ignore[no-untyped-def]
    result = fleet_cli(fleet, "--dry-run", "--detailed-exitcode", "--parallel", "4")
    assert result.exit_code == 1, result.stderr
    table = result.stdout.split("\n\n")[0].splitlines()
    assert table[0].split() == ["TARGET", "CHANGES", "FINDINGS", "RESULT"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert sorted(rows) == sorted((*LIVE, DEAD))
    assert "cannot connect to the database" in rows[DEAD]
    for name in LIVE:
        assert rows[name].split()[1] != "0" and rows[name].split()[3] == "ok"
        assert f"== target {name} ==" in result.stdout
    assert "4 target(s): 3 with changes, 1 failed." in result.stdout
    assert [line for line in result.stderr.splitlines() if line.startswith("error: target ")] == [
        line for line in result.stderr.splitlines() if DEAD in line]


def test_exit_codes_without_the_dead_target(fleet) -> None:  # type: ignore[no-untyped-def]
    assert fleet_cli(fleet, *_live("--dry-run", "--detailed-exitcode")).exit_code == 2
    assert fleet_cli(fleet, *_live("--dry-run")).exit_code == 0


def test_json_is_one_document_with_each_targets_plan(fleet) -> None:  # type: ignore[no-untyped-def]
    result = fleet_cli(fleet, "--dry-run", "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["format_version"] == "1" and document["mode"] == "plan" and document["errors"] == []
    assert sorted(document["targets"]) == sorted((*LIVE, DEAD))
    dead = document["targets"][DEAD]
    assert dead["plan"] is None and dead["retryable"] is True and "cannot connect" in dead["error"]
    live = document["targets"][LIVE[0]]
    assert live["error"] is None and live["changes"] == len([c for c in live["plan"]["changes"]
                                                             if c["action"] != "noop"]) > 0
    assert live["plan"]["format_version"] == "1"


def test_markdown_has_the_table_and_each_plan(fleet) -> None:  # type: ignore[no-untyped-def]
    result = fleet_cli(fleet, *_live("--dry-run", "--format", "markdown"))
    assert result.exit_code == 0
    assert "| target | changes | findings | result |" in result.stdout
    assert all(f"### Reconciler plan for `{fleet['manifest']}` on target `{name}`" in result.stdout for name in LIVE)


def test_apply_then_a_second_dry_run_finds_nothing_and_the_dead_target_does_not_stop_the_others(fleet) -> None:  # type: ignore[no-untyped-def]
    applied = fleet_cli(fleet, "--apply", "--parallel", "2")
    assert applied.exit_code == 1  # the dead one
    assert applied.stdout.count("Apply complete (history #1).") == len(LIVE)
    again = fleet_cli(fleet, *_live("--dry-run", "--detailed-exitcode"))
    assert again.exit_code == 0, again.stdout
    assert again.stdout.count("No changes.") == len(LIVE)


def test_target_selects_and_an_unknown_name_lists_the_known_ones(fleet) -> None:  # type: ignore[no-untyped-def]
    one = fleet_cli(fleet, "--dry-run", "--target", LIVE[1])
    assert one.exit_code == 0
    assert f"== target {LIVE[1]} ==" in one.stdout and LIVE[0] not in one.stdout
    unknown = fleet_cli(fleet, "--dry-run", "--target", "nope")
    assert unknown.exit_code == 1
    assert unknown.stderr.strip().startswith("error: --target nope: no such target (known: fleet-cli-a, fleet-cli-b")
    assert len(unknown.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [("--database-url", "postgresql://x@h/db"), ("--dry-run", "--out", "plan.json"),
                                  ("--rotate", "cron_secret"), ("--apply", "plan.json")])
def test_options_of_one_database_are_usage_errors(fleet, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    result = fleet_cli(fleet, *args)
    assert result.exit_code == 1
    assert "cannot be used with --targets" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_target_without_targets_is_a_usage_error(fleet) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["--target", "a", "--dry-run"], env=fleet["env"], catch_exceptions=False)
    assert result.exit_code == 1 and "--target goes with --targets FILE" in result.stderr


def test_a_broken_targets_file_is_one_line_per_problem(fleet) -> None:  # type: ignore[no-untyped-def]
    fleet["targets"].write_text("version: 1\ntargets:\n  - name: Bad Name\n    database_url: {from_env: X}\n")
    result = fleet_cli(fleet, "--dry-run")
    assert result.exit_code == 1 and result.stdout == ""
    assert all(line.startswith(f"error: {fleet['targets']}:3") for line in result.stderr.strip().splitlines())


def test_the_targets_file_from_the_environment(fleet) -> None:  # type: ignore[no-untyped-def]
    env = {**fleet["env"], "RECONCILE_TARGETS": str(fleet["targets"])}
    result = CliRunner().invoke(main, ["-f", str(fleet["manifest"]), "--dry-run", "--target", LIVE[0]], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0 and f"== target {LIVE[0]} ==" in result.stdout


def test_connect_timeout_bounds_a_target_that_never_answers(fleet) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.fleet_support import black_hole

    assert fleet_cli(fleet, "--dry-run", "--connect-timeout", "1").exit_code == 1  # below PostgreSQL's minimum
    with black_hole() as url:
        fleet["env"][url_variable(DEAD)] = url
        result = fleet_cli(fleet, "--dry-run", "--target", DEAD, "--connect-timeout", "2", "--format", "json")
    assert result.exit_code == 1
    dead = json.loads(result.stdout)["targets"][DEAD]
    assert "timeout expired" in dead["error"] and 1500 <= dead["duration_ms"] < 4500, dead


def test_a_refused_apply_shows_the_targets_blocking_findings_under_its_name(fleet) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    blocked, fine = LIVE[0], LIVE[1]
    with psycopg.connect(fleet["urls"][blocked], autocommit=True) as conn:
        conn.execute("ALTER TABLE public.scheduled_jobs DROP COLUMN endpoint")
    result = fleet_cli(fleet, "--apply", "--target", blocked, "--target", fine)
    assert result.exit_code == 1, result.stderr
    section = result.stdout.split(f"== target {blocked} ==\n", 1)[1].split("== target ", 1)[0]
    assert "error: public.scheduled_jobs lacks column(s): endpoint" in section
    assert "Apply complete" not in section
    assert f"error: target {blocked}: refusing to apply: public.scheduled_jobs lacks column(s): endpoint" in result.stderr
    assert f"== target {fine} ==" in result.stdout and result.stdout.count("Apply complete") == 1


def test_fleet_errors_name_the_target_once_in_full_below_the_table(fleet) -> None:  # type: ignore[no-untyped-def]
    del fleet["env"][url_variable(DEAD)]  # its database URL's variable is not set
    result = fleet_cli(fleet, "--dry-run", "--target", DEAD, "--target", LIVE[0])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: target {DEAD}: database URL: " + errors[0].split(": database URL: ", 1)[1]], errors
    assert f"target {DEAD}: target {DEAD}" not in result.stdout + result.stderr
    table, rest = result.stdout.split("\nErrors:\n", 1)
    row = next(line for line in table.splitlines() if line.startswith(DEAD))
    assert row.split(None, 3)[3].startswith("error: database URL: ")
    assert rest.splitlines()[0] == f"  {DEAD}: " + errors[0].removeprefix(f"error: target {DEAD}: ")


def test_a_fleet_apply_says_what_it_applied_per_target(fleet) -> None:  # type: ignore[no-untyped-def]
    applied = fleet_cli(fleet, *_live("--apply"))
    assert applied.exit_code == 0, applied.stderr
    table = applied.stdout.split("\n\n")[0].splitlines()
    rows = {line.split()[0]: line.split(None, 3) for line in table[1:]}
    for name in LIVE:
        assert rows[name][3] == "applied (history #1)" and int(rows[name][1]) > 0
    changes = sum(int(rows[name][1]) for name in LIVE)
    assert f"3 target(s): 3 applied ({changes} change(s)), 0 in sync, 0 failed." in applied.stdout
    again = fleet_cli(fleet, *_live("--apply", "--format", "json"))
    assert again.exit_code == 0
    assert {n: (t["status"], t["applied"]) for n, t in json.loads(again.stdout)["targets"].items()} == {
        n: ("in sync", False) for n in LIVE}


def test_each_targets_plan_names_its_database(fleet) -> None:  # type: ignore[no-untyped-def]
    from psycopg.conninfo import conninfo_to_dict

    as_json = fleet_cli(fleet, *_live("--dry-run", "--format", "json"))
    assert as_json.exit_code == 0
    targets = json.loads(as_json.stdout)["targets"]
    as_markdown = fleet_cli(fleet, *_live("--dry-run", "--format", "markdown"))
    for name in LIVE:
        params = conninfo_to_dict(fleet["urls"][name])
        assert targets[name]["plan"]["database"] == {"host": params["host"], "port": int(params["port"]),
                                                     "dbname": params["dbname"]}
        title = f"### Reconciler plan for `{fleet['manifest']}` on target `{name}`\n\n"
        assert (title + f"Made against database {params['dbname']} on the local socket (port {params['port']}).\n"
                in as_markdown.stdout)
