"""Golden plans: one folder per case under tests/integration/apply/cases/, run against the real database.

A case folder holds `case.yaml` (setup, optional manifest, args, role, steps), `live.sql` (run as the
superuser after the setup to build the live state), and the exact expected plans `expected.txt` /
`expected.json` / `expected.md` (the time an apply was recorded reads `<applied_at>`).
Each case: reset the database, set up, run live.sql, compare `reconcile --dry-run` in both formats with the
expected files, then `--apply` with the same arguments and check that a new plan is empty; a case whose
plan has blocking findings instead checks that apply refuses in one line and changes nothing.

`UPDATE_GOLDEN=1 pytest tests/integration/apply/test_golden.py` rewrites the expected files (read them all
before keeping them). The helpers are in tests/integration/golden_support.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fix_db import DbTarget
from tests.integration.golden_support import (
    APPLIED_AT,
    CASE_NAMES,
    CLUSTER_PORT,
    ROOT,
    SOCKET_DIRECTORY,
    Case,
    invoke,
    load_case,
    prepare_applied,
    run_case,
    superuser_conn,
)

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifest paths in the output are relative to the repository root, so plans do not depend on it."""
    monkeypatch.chdir(ROOT)


def _compare(path: Path, actual: str) -> None:
    actual = APPLIED_AT.sub("<applied_at>", actual)
    actual = SOCKET_DIRECTORY.sub('"host": "<socket directory>"', CLUSTER_PORT.sub(r"\1<port>", actual))
    if UPDATE:
        path.write_text(actual)
        return
    assert path.is_file(), f"{path} missing: run with UPDATE_GOLDEN=1 and review the result"
    assert actual == path.read_text(), f"{path.relative_to(ROOT)} differs (UPDATE_GOLDEN=1 to regenerate)"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden(name: str, empty_db: DbTarget) -> None:
    case = load_case(name)
    runs = run_case(case, empty_db, formats=("text", "json", "markdown"))
    _compare(case.dir / "expected.txt", runs.plans["text"].stdout)
    _compare(case.dir / "expected.json", runs.plans["json"].stdout)
    _compare(case.dir / "expected.md", runs.plans["markdown"].stdout)
    for run in runs.all():
        assert "Traceback" not in run.stderr


# -- dedicated checks on particular starting points --------------------------------------------------


def _plan_json(case: Case, target: DbTarget, *extra: str) -> dict[str, Any]:
    run = invoke(["--dry-run", "--format", "json", *case.cli_args, *extra], case.url(target))
    assert run.exit_code == 0, str(run)
    return json.loads(run.stdout)


def test_audited_start_creates_the_whole_stack(audited_db: DbTarget) -> None:
    run = invoke(["--dry-run", "--format", "json", "--detailed-exitcode"], audited_db.url)
    assert run.exit_code == 2, str(run)
    plan = json.loads(run.stdout)
    creates: dict[str, int] = {}
    for change in plan["changes"]:
        assert change["action"] == "create", change
        creates[change["kind"]] = creates.get(change["kind"], 0) + 1
    assert creates == {"extension": 3, "secret": 3, "job": 13, "trigger": 1}
    assert plan["summary"]["create"] == 20 and not plan["empty"]
    assert plan["findings"] == []


def _alter_trigger(target: DbTarget, **assignments: str) -> None:
    setters = ", ".join(f"{k} := %({k})s" for k in assignments)
    with superuser_conn(target) as conn:
        conn.execute(f"SELECT cron.alter_job(jobid, {setters}) FROM cron.job WHERE jobname = 'master-scheduler'",
                     assignments)


def _trigger_command(target: DbTarget) -> str:
    with superuser_conn(target) as conn:
        row = conn.execute("SELECT command FROM cron.job WHERE jobname = 'master-scheduler'").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("rewrite", [
    pytest.param(lambda c: "\n\n   " + "\n".join("\t" + line + "   " for line in c.splitlines()) + "\n\n",
                 id="whitespace"),
    pytest.param(lambda c: "-- edited by hand\n" + c.replace(",\n", ", /* same */\n") + " -- trailing", id="comments"),
    pytest.param(lambda c: c.replace(":=", "=>").replace("SELECT", "select").replace("now()", "NOW()") + ";",
                 id="keyword-case-and-arrows"),
])
def test_trigger_command_formatting_is_not_drift(audited_db: DbTarget, rewrite: Any) -> None:
    case = Case("inline", "applied")
    prepare_applied(case, audited_db)
    original = _trigger_command(audited_db)
    edited = rewrite(original)
    assert edited != original
    _alter_trigger(audited_db, command=edited)
    assert _trigger_command(audited_db) == edited
    plan = _plan_json(case, audited_db, "-v")
    trigger = [c for c in plan["changes"] if c["kind"] == "trigger"]
    assert trigger == [{"kind": "trigger", "key": "master-scheduler", "action": "no-op", "reason": "", "fields": [],
                        "origin": None, "kept": False, "last_applied": None}]
    assert plan["empty"] is True
    run = invoke(["--dry-run", "--detailed-exitcode"], audited_db.url)
    assert run.exit_code == 0, str(run)


def test_trigger_schedule_edit_is_exactly_one_field_change(audited_db: DbTarget) -> None:
    case = Case("inline", "applied")
    prepare_applied(case, audited_db)
    _alter_trigger(audited_db, schedule="*/2 * * * *")
    plan = _plan_json(case, audited_db)
    (change,) = plan["changes"]
    assert change.pop("last_applied")["history_id"] == 1
    assert change == {
        "kind": "trigger", "key": "master-scheduler", "action": "update",
        "reason": "changed outside git since apply #1: schedule", "origin": "drift", "kept": False,
        "fields": [{"path": "schedule", "old": "*/2 * * * *", "new": "* * * * *", "sensitive": False,
                    "origin": "drift"}],
    }
    assert {a: n for a, n in plan["summary"].items() if n and a != "no-op"} == {"update": 1}


def test_job_schedule_edit_is_exactly_one_field_change(audited_db: DbTarget) -> None:
    case = Case("inline", "applied")
    prepare_applied(case, audited_db)
    with superuser_conn(audited_db) as conn:
        conn.execute("UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = 'ttl_cleanup'")
    plan = _plan_json(case, audited_db)
    (change,) = plan["changes"]
    assert change.pop("last_applied")["history_id"] == 1
    assert change == {
        "kind": "job", "key": "ttl_cleanup", "action": "update", "reason": "changed outside git since apply #1: schedule",
        "origin": "drift", "kept": False,
        "fields": [{"path": "schedule", "old": "*/7 * * * *", "new": "0 3 * * *", "sensitive": False,
                    "origin": "drift"}],
    }


