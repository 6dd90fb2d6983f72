"""`reconcile export` round trips: every golden case's live state, exported, plans to nothing but adoption.

For each case folder: set up its live state as test_golden does, export as the case's role, set the
export's `from_env:` placeholders to the live values (read here as the superuser, never printed), and plan
the export. The plan may only adopt (record ownership); after one apply that adopts, a plan is empty.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fix_db import DbTarget
from tests.integration.export_support import placeholder_env
from tests.integration.golden_support import CASE_NAMES, ROOT, invoke, load_case, prepare, superuser_conn

#: Changes a plan of an export may hold: adoption only, plus the extra rows of a duplicated job
#: (the manifest declares one row per name; the export says so in a comment).
ALLOWED = {"adopt"}


def vault_values(target: DbTarget) -> dict[str, str]:
    with superuser_conn(target) as conn:
        rows = conn.execute("SELECT name, decrypted_secret FROM vault.decrypted_secrets WHERE name IS NOT NULL"
                            ).fetchall() if conn.execute("SELECT to_regclass('vault.decrypted_secrets')"
                                                         ).fetchone()[0] else []  # type: ignore[index]
    return {name: value for name, value in rows}


def export_and_plan(url: str, target: DbTarget, tmp_path: Path, *extra: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    out = tmp_path / "exported.yaml"
    run = invoke(["export", "-o", str(out), *extra], url, {})
    assert run.exit_code == 0, str(run)
    text = out.read_text()
    assert "yaml-language-server" not in text  # no scheduler.schema.json for it to point at from tmp_path
    values = vault_values(target)
    for value in values.values():
        assert value not in text and value not in run.stdout + run.stderr, "a secret value leaked into the export"
    env = placeholder_env(out, values)
    plan = invoke(["-f", str(out), "--dry-run", "--detailed-exitcode", "--format", "json"], url, env)
    parsed = json.loads(plan.stdout)
    # The round-trip guarantee: in sync (0) unless the plan holds more than adoption, which the callers judge.
    only_adoption = all(a == "adopt" for _, _, a in _mutating(parsed))
    blocked = any(f["severity"] == "error" for f in parsed["findings"])
    assert plan.exit_code == (0 if only_adoption and not blocked else 2), str(plan)
    return text, parsed, env


def _mutating(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["kind"], c["key"], c["action"]) for c in plan["changes"]
            if c["action"] not in ("no-op", "unmanaged")]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_export_of_every_golden_case_plans_only_adoption(name: str, empty_db: DbTarget, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    case = load_case(name)
    prepare(case, empty_db)
    url = case.url(empty_db)
    text, plan, env = export_and_plan(url, empty_db, tmp_path)
    again = invoke(["export"], url, {})
    assert again.exit_code == 0 and again.stdout == text, "export is not deterministic"
    duplicated = {line.split("'")[1] for line in text.splitlines() if "rows: the first is declared" in line}
    unexpected = [c for c in _mutating(plan) if c[2] not in ALLOWED
                  and not (c[0] == "job" and c[2] == "delete" and c[1] in duplicated)]
    assert unexpected == [], f"{text}\n{json.dumps(plan, indent=1)}"
    if any(f["severity"] == "error" for f in plan["findings"]):
        return  # the server itself blocks any apply (the same findings as the case's own plan)
    applied = invoke(["-f", str(tmp_path / "exported.yaml"), "--apply"], url, env)
    assert applied.exit_code == 0, str(applied)
    after = invoke(["-f", str(tmp_path / "exported.yaml"), "--dry-run", "--detailed-exitcode"], url, env)
    assert after.exit_code == 0, str(after)


def test_adoption_after_export_changes_nothing_but_ownership(empty_db: DbTarget, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The runbook's database: the export's first apply only adopts, history says so, a second plan is empty."""
    from tests.integration.golden_support import snapshot

    monkeypatch.chdir(ROOT)
    case = load_case("adopt_runbook")
    prepare(case, empty_db)
    text, plan, env = export_and_plan(empty_db.url, empty_db, tmp_path)
    actions = {c[2] for c in _mutating(plan)}
    assert actions == {"adopt"}, plan
    parsed = yaml.safe_load(text)
    assert [t.get("http_post") is not None for t in parsed["triggers"]] == [True]
    before = snapshot(empty_db)
    applied = invoke(["-f", str(tmp_path / "exported.yaml"), "--apply"], empty_db.url, env)
    assert applied.exit_code == 0, str(applied)
    after = snapshot(empty_db)
    for table in ("public.scheduled_jobs", "vault.secrets", "cron.job", "extensions"):
        assert after[table] == before[table], f"{table} changed by an adopting apply"
    with superuser_conn(empty_db) as conn:
        managed = conn.execute("SELECT count(*) FROM reconciler.managed"
                               " WHERE kind NOT IN ('extension', 'table')").fetchone()  # those are recorded, not adopted
        history = conn.execute("SELECT summary FROM reconciler.history ORDER BY id DESC LIMIT 1").fetchone()
    assert managed is not None and managed[0] == len(plan["changes"]) - plan["summary"]["unmanaged"]
    assert history is not None and "adopt" in str(history[0])
    second = invoke(["-f", str(tmp_path / "exported.yaml"), "--dry-run", "--detailed-exitcode"], empty_db.url, env)
    assert second.exit_code == 0, str(second)


def test_export_without_a_database_is_one_line(tmp_path: Path) -> None:
    run = invoke(["export"], None, {})
    assert run.exit_code == 1 and run.stderr.count("\n") == 1 and run.stderr.startswith("error: no database"), str(run)


def test_export_on_plain_postgresql_as_its_superuser(vanilla_db: DbTarget, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The vanilla profile: scheduler.yaml applied, then hand-made rows; the export adopts only those, then is empty."""
    from psycopg import sql

    from localdb import create_app_tables

    monkeypatch.chdir(ROOT)
    with superuser_conn(vanilla_db) as conn:
        create_app_tables(conn)
    applied = invoke(["--apply"], vanilla_db.url, None)
    assert applied.exit_code == 0, str(applied)
    other = "export_vanilla_other"
    with superuser_conn(vanilla_db) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (other,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))
        conn.execute("SELECT cron.schedule('hand-made', '0\t4 * * sun  # weekly', $$SELECT 'it''s \u2028 here'$$)")
        conn.execute("SELECT cron.schedule_in_database('other-owner', '@daily', 'SELECT 1', current_database(),"
                     " %s, false)", (other,))
        conn.execute("INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, description,"
                     " is_active) VALUES ('hand_job', 'by \"hand\"', '0 0 * * mon-fri', '/functions/v1/x', '', false)")
    text, plan, env = export_and_plan(vanilla_db.url, vanilla_db, tmp_path)
    adopted = {(c[0], c[1]) for c in _mutating(plan) if c[2] == "adopt"}
    assert [c for c in _mutating(plan) if c[2] != "adopt"] == [], f"{text}\n{json.dumps(plan, indent=1)}"
    assert adopted == {("trigger", "hand-made"), ("trigger", f"other-owner@{other}"), ("job", "hand_job")}, plan
    assert f"username: {other}" in text, text  # a superuser sees every role's cron jobs
    assert plan["findings"] == [], plan
    out = str(tmp_path / "exported.yaml")
    adopting = invoke(["-f", out, "--dry-run", "--detailed-exitcode"], vanilla_db.url, env)
    assert adopting.exit_code == 0, str(adopting)  # in sync: adopting records ownership, it changes nothing
    applied = invoke(["-f", out, "--apply"], vanilla_db.url, env)
    assert applied.exit_code == 0, str(applied)
    after = invoke(["-f", out, "--dry-run", "--detailed-exitcode"], vanilla_db.url, env)
    assert after.exit_code == 0, str(after)
    with superuser_conn(vanilla_db) as conn:
        row = conn.execute("SELECT schedule, active, username FROM cron.job WHERE jobname = 'other-owner'").fetchone()
    assert row == ("@daily", False, other)


def test_the_schema_comment_resolves_from_where_the_export_is_written(audited_db: DbTarget, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert invoke(["--apply"], audited_db.url).exit_code == 0
    repo = tmp_path / "repo"
    (repo / "deploy" / "prod").mkdir(parents=True)
    (repo / "scheduler.schema.json").write_text((ROOT / "scheduler.schema.json").read_text())
    for where, reference in (("scheduler.yaml", "./scheduler.schema.json"),
                             ("deploy/prod/scheduler.yaml", "../../scheduler.schema.json")):
        out = repo / where
        run = invoke(["export", "-o", str(out)], audited_db.url, {})
        assert run.exit_code == 0, str(run)
        first = out.read_text().splitlines()[0]
        assert first == f"# yaml-language-server: $schema={reference}"
        assert (out.parent / reference).resolve() == (repo / "scheduler.schema.json").resolve()
    printed = invoke(["export"], audited_db.url, {})
    assert printed.exit_code == 0 and "yaml-language-server" not in printed.stdout  # stdout: written who knows where
    schedules = [line.strip() for line in printed.stdout.splitlines() if line.strip().startswith("schedule:")]
    assert len(schedules) == 14  # 13 jobs and the master trigger
    assert all(line.startswith('schedule: "') and line.endswith('"') for line in schedules), schedules
    assert 'schedule: "0 5 * * 0"' in schedules and 'schedule: "*/5 * * * *"' in schedules
