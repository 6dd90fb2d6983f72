"""Someone edits the database while an apply runs (the advisory lock keeps only reconcilers out).

An apply reads, plans, writes, then re-reads inside its transaction. A row deleted or a trigger edited
by a person between the read and the re-read is not "changes did not stick": the apply corrects it in
the same transaction and says so; a saved plan refuses instead (it was approved as it was). A change
this apply made that something rewrites still fails the apply, and nothing is committed.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fix_db import DbTarget
from tests.integration.apply_support import execute, query
from tests.integration.reliability_support import (
    describe_difference,
    one_line,
    paused_at,
    run,
    state,
)

DRIFTED_JOB = "compute_org_relevance"
SCHEDULE_DRIFT = "1 2 3 4 *"


def _converged_then_drifted(url: str, su: str) -> str:
    """Apply everything, then drift one job's schedule; returns another job's name for the mid-apply edit."""
    code, _, stderr = run(url, "--apply")
    assert code == 0, stderr
    execute(su, "UPDATE public.scheduled_jobs SET schedule = %s WHERE job_name = %s", (SCHEDULE_DRIFT, DRIFTED_JOB))
    other = query(su, "SELECT min(job_name) FROM public.scheduled_jobs WHERE job_name <> %s", (DRIFTED_JOB,))[0][0]
    assert other
    return str(other)


def _edit_behind_its_back(su: str, other_job: str) -> None:
    execute(su, "DELETE FROM public.scheduled_jobs WHERE job_name = %s", (other_job,))
    execute(su, "UPDATE cron.job SET active = false WHERE jobname = 'master-scheduler'")


def test_edits_made_during_an_apply_are_corrected_in_the_same_transaction(audited_db: DbTarget, tmp_path: Path) -> None:
    url, su = audited_db.url, audited_db.superuser_url
    other = _converged_then_drifted(url, su)
    proc = paused_at(url, "verify", tmp_path / "resume")
    _edit_behind_its_back(su, other)
    (tmp_path / "resume").touch()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "did not stick" not in stderr
    warning = next(line for line in stderr.splitlines() if line.startswith("warning: changed by someone else"))
    assert f"create job {other}" in warning and "update trigger master-scheduler" in warning, warning
    assert f"~ job {DRIFTED_JOB}: update" in stdout  # the plan it showed is the plan it was asked for
    assert f"job {other}" not in stdout and "1 to update, 0 to delete" in stdout
    code, out, err = run(url, "--dry-run", "--detailed-exitcode")
    assert code == 0, out + err
    history = query(su, "SELECT summary, changes FROM reconciler.history ORDER BY id DESC LIMIT 1")[0]
    recorded = {(c["action"], c["kind"], c["key"]) for c in history[1]}
    assert {("update", "job", DRIFTED_JOB), ("create", "job", other), ("update", "trigger", "master-scheduler")} \
        <= recorded, recorded


def test_a_saved_plan_refuses_edits_made_during_its_apply_and_commits_nothing(audited_db: DbTarget,
                                                                                tmp_path: Path) -> None:
    url, su = audited_db.url, audited_db.superuser_url
    other = _converged_then_drifted(url, su)
    saved = tmp_path / "plan.json"
    code, _, stderr = run(url, "--dry-run", "--out", str(saved))
    assert code == 0, stderr
    assert any(c["key"] == DRIFTED_JOB for c in json.loads(saved.read_text())["changes"])
    proc = paused_at(url, "verify", tmp_path / "resume", str(saved))
    _edit_behind_its_back(su, other)
    before = state(su)  # the edits are in; the apply must not add to them
    (tmp_path / "resume").touch()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    message = one_line(stderr)
    assert "the database changed while the saved plan was applied" in message, message
    assert f"create job {other}" in message and "nothing was changed" in message, message
    got = state(su)
    assert got == before, describe_difference(got, before)
    assert query(su, "SELECT schedule FROM public.scheduled_jobs WHERE job_name = %s", (DRIFTED_JOB,)) \
        == [(SCHEDULE_DRIFT,)]


def test_a_change_that_something_rewrites_fails_the_apply_and_commits_nothing(audited_db: DbTarget) -> None:
    url, su = audited_db.url, audited_db.superuser_url
    _converged_then_drifted(url, su)
    execute(su, f"""
        CREATE FUNCTION public.pin_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.schedule := '{SCHEDULE_DRIFT}'; RETURN NEW; END $$;
        CREATE TRIGGER pin_schedule BEFORE UPDATE ON public.scheduled_jobs
            FOR EACH ROW WHEN (NEW.job_name = '{DRIFTED_JOB}') EXECUTE FUNCTION public.pin_schedule();""")
    before = state(su)
    code, _, stderr = run(url, "--apply")
    assert code == 1, stderr
    message = one_line(stderr)
    assert f"changes did not stick, rolled back: update job {DRIFTED_JOB}" in message, message
    assert "a trigger or another tool" in message, message
    got = state(su)
    assert got == before, describe_difference(got, before)
