"""The action's step end to end: the real `reconcile` against the test database, GitHub faked over HTTP.

A pull request's plan becomes one sticky comment (secrets redacted), the job summary and a saved plan;
the merge applies exactly that plan, refuses a stale one, or (opt-in) applies a fresh plan with the same
changes.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import psycopg
import pytest

from action.sticky_comment import marker
from tests.fix_db import DbTarget
from tests.gitops.action_support import RECONCILE, ROOT, SECRETS_ENV, WORKFLOW_ID, run_action
from tests.gitops.fake_github import serve

ARTIFACT = "reconcile-plan-scheduler.yaml"


@pytest.fixture
def fake():
    with serve() as fake:
        yield fake


@pytest.fixture
def work(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(ROOT / "scheduler.yaml", checkout / "scheduler.yaml")
    return checkout


def _zip_dir(directory: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in directory.iterdir():
            archive.write(path, path.name)
    return out.getvalue()


def _review(fake, plan_dir: Path, *, pull: int, head: str, merge: str) -> int:
    """What GitHub holds after the merge: the PR's plan run with its artifact, and this push's run."""
    fake.add_merged_pull(merge, pull, head)
    fake.add_run(WORKFLOW_ID, head, artifacts={ARTIFACT: _zip_dir(plan_dir)})
    return fake.add_run(WORKFLOW_ID, merge, event="push")


def _plan_is_empty(db: DbTarget, work: Path) -> bool:
    import subprocess

    result = subprocess.run([RECONCILE, "--dry-run", "--detailed-exitcode"], cwd=work, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url, **SECRETS_ENV})
    assert result.returncode in (0, 2), result.stderr
    return result.returncode == 0


def test_a_pull_requests_plan_is_one_sticky_comment_without_secrets(fake, audited_db: DbTarget, work: Path):
    first = run_action(fake, work, audited_db.url, {"command": "plan"}, pull_request=7, run_id=1)
    assert first.code == 0, first.stdout
    assert first.outputs["exit-code"] == "2" and first.outputs["has-changes"] == "true"
    assert first.outputs["artifact-name"] == ARTIFACT
    (comment,) = fake.state.comments[7]
    assert comment["body"].startswith("<!-- scheduler-reconciler:plan:scheduler.yaml -->\n")
    assert "cron_secret" in comment["body"] and "master-scheduler" in comment["body"]
    assert "master-scheduler" in first.summary
    saved = Path(first.outputs["plan-json"]).read_text()
    for text in (comment["body"], first.summary, first.stdout, saved,
                 Path(first.outputs["plan-markdown"]).read_text()):
        for value in SECRETS_ENV.values():
            assert value not in text
    second = run_action(fake, work, audited_db.url, {"command": "plan"}, pull_request=7, run_id=2)
    assert second.code == 0 and "updated the plan comment" in second.stdout
    assert len(fake.state.comments[7]) == 1 and "run 2" in fake.state.comments[7][0]["body"]
    assert "commit head70000000" in fake.state.comments[7][0]["body"]  # the pull request's head, not the merge ref


def test_a_failed_plan_is_shown_in_the_comment_and_fails_the_step(fake, audited_db: DbTarget, work: Path):
    (work / "scheduler.yaml").write_text("version: 1\njobs: [{name: x}]\n")
    step = run_action(fake, work, audited_db.url, {"command": "plan"}, pull_request=8)
    assert step.code == 1 and step.outputs["exit-code"] == "1" and "plan-json" not in step.outputs
    body = fake.state.comments[8][0]["body"]
    assert "The plan failed" in body and "scheduler.yaml" in body


def test_the_merge_applies_exactly_the_reviewed_plan(fake, audited_db: DbTarget, work: Path):
    plan = run_action(fake, work, audited_db.url, {"command": "plan"}, pull_request=7, run_id=1)
    push_run = _review(fake, Path(plan.outputs["plan-dir"]), pull=7, head="head7", merge="merge7")
    applied = run_action(fake, work, audited_db.url, {"command": "apply"}, sha="merge7", run_id=push_run)
    assert applied.code == 0, applied.stdout
    assert "applying the plan reviewed on pull request #7" in applied.stdout
    assert "--lock-timeout 300" in applied.stdout
    assert _plan_is_empty(audited_db, work)


def test_a_stale_reviewed_plan_is_refused_and_asks_for_a_new_plan(fake, audited_db: DbTarget, work: Path):
    plan = run_action(fake, work, audited_db.url, {"command": "plan"}, pull_request=7, run_id=1)
    push_run = _review(fake, Path(plan.outputs["plan-dir"]), pull=7, head="head7", merge="merge7")
    with psycopg.connect(audited_db.url, autocommit=True) as conn:  # another change landed first
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    for opt_in in ("false", "true"):  # the fresh plan no longer creates pg_cron: not the same changes
        step = run_action(fake, work, audited_db.url, {"command": "apply", "apply-fresh-if-same": opt_in},
                          sha="merge7", run_id=push_run)
        assert step.code == 1, step.stdout
        assert "saved plan is stale" in step.stdout
        assert "::error::the plan reviewed on pull request #7" in step.stdout and "Make a new plan" in step.stdout
        if opt_in == "true":
            assert "a fresh plan makes other changes" in step.stdout
    assert not _plan_is_empty(audited_db, work)


def test_opt_in_applies_a_fresh_plan_with_the_reviewed_changes(fake, audited_db: DbTarget, work: Path):
    import subprocess

    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": audited_db.url, **SECRETS_ENV}
    subprocess.run([RECONCILE, "--apply"], cwd=work, env=env, check=True, capture_output=True)
    with psycopg.connect(audited_db.url, autocommit=True) as conn:  # drift: one change to review
        conn.execute("UPDATE public.scheduled_jobs SET schedule = '1 2 3 4 5' WHERE job_name = 'ttl_cleanup'")
    plan = run_action(fake, work, audited_db.url, {"command": "plan"}, pull_request=9, run_id=1)
    assert plan.outputs["has-changes"] == "true"
    push_run = _review(fake, Path(plan.outputs["plan-dir"]), pull=9, head="head9", merge="merge9")
    with psycopg.connect(audited_db.url, autocommit=True) as conn:  # the live state moves, the plan does not
        row = conn.execute("SELECT schedule FROM public.scheduled_jobs WHERE job_name = 'cleanup_old_cache'").fetchone()
        conn.execute("UPDATE public.scheduled_jobs SET schedule = %s WHERE job_name = 'cleanup_old_cache'",
                     (row[0].replace(" ", "  "),))
    refused = run_action(fake, work, audited_db.url, {"command": "apply"}, sha="merge9", run_id=push_run)
    assert refused.code == 1 and "saved plan is stale" in refused.stdout
    step = run_action(fake, work, audited_db.url, {"command": "apply", "apply-fresh-if-same": "true"},
                      sha="merge9", run_id=push_run)
    assert step.code == 0, step.stdout
    assert "a fresh plan makes the same changes: applying it" in step.stdout
    assert _plan_is_empty(audited_db, work)


def test_a_push_that_is_not_a_merge_applies_nothing(fake, audited_db: DbTarget, work: Path):
    push_run = fake.add_run(WORKFLOW_ID, "lonely", event="push")
    step = run_action(fake, work, audited_db.url, {"command": "apply"}, sha="lonely", run_id=push_run)
    assert step.code == 1 and "::error::commit lonely is not the merge of a pull request" in step.stdout
    assert not _plan_is_empty(audited_db, work)


def test_validate_puts_its_result_in_the_summary(fake, audited_db: DbTarget, work: Path):
    step = run_action(fake, work, audited_db.url, {"command": "validate"})
    assert step.code == 0 and "scheduler.yaml: " in step.summary and ": valid" in step.summary
    assert step.outputs["exit-code"] == "0"
    _fleet(work)
    fleet = run_action(fake, work, audited_db.url, {"command": "validate", "targets": "targets.yaml"})
    assert fleet.code == 0 and "targets.yaml: 1 target, 0 generators: valid" in fleet.summary


FLEET_ARTIFACT = "reconcile-plan-fleet_targets.yaml"


def _fleet(work: Path) -> None:
    (work / "targets.yaml").write_text("version: 1\ntargets:\n  - name: alpha\n    database_url: {from_env: ALPHA_URL}\n")


def test_a_fleets_plan_is_one_comment_and_its_merge_applies_the_same_changes(fake, audited_db: DbTarget, work: Path):
    _fleet(work)
    inputs = {"command": "plan", "targets": "targets.yaml"}
    env = {"ALPHA_URL": audited_db.url}
    plan = run_action(fake, work, audited_db.url, inputs, pull_request=11, run_id=1, env=env)
    assert plan.code == 0, plan.stdout
    assert plan.outputs["has-changes"] == "true" and plan.outputs["artifact-name"] == FLEET_ARTIFACT
    (comment,) = fake.state.comments[11]
    assert comment["body"].startswith(marker("fleet:targets.yaml") + "\n") and "alpha" in comment["body"]
    assert not any(v in comment["body"] + Path(plan.outputs["plan-json"]).read_text() for v in SECRETS_ENV.values())
    fake.add_merged_pull("merge11", 11, "head11")
    fake.add_run(WORKFLOW_ID, "head11", artifacts={FLEET_ARTIFACT: _zip_dir(Path(plan.outputs["plan-dir"]))})
    push_run = fake.add_run(WORKFLOW_ID, "merge11", event="push")
    applied = run_action(fake, work, audited_db.url, {"command": "apply", "targets": "targets.yaml"},
                         sha="merge11", run_id=push_run, env=env)
    assert applied.code == 0, applied.stdout
    assert _plan_is_empty(audited_db, work)
    again = run_action(fake, work, audited_db.url, {"command": "apply", "targets": "targets.yaml"},
                       sha="merge11", run_id=push_run, env=env)  # the reviewed changes are no longer the plan
    assert again.code == 1 and "::error::the fleet plan reviewed on pull request #11" in again.stdout
    assert "is stale: a target's plan differs now. Nothing was applied." in again.stdout


def test_verify_passes_its_exit_code_and_report_through(fake, audited_db: DbTarget, work: Path):
    step = run_action(fake, work, audited_db.url, {"command": "verify"})  # nothing applied: checks fail
    assert step.code == 2 and step.outputs["exit-code"] == "2"
    assert "### reconcile verify: scheduler.yaml" in step.summary and "FAIL" in step.summary.upper()
    fleet = run_action(fake, work, audited_db.url, {"command": "verify", "targets": "targets.yaml"})
    assert fleet.code == 1 and "::error::input targets: verify checks one database" in fleet.stdout
