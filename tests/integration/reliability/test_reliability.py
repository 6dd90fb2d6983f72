"""Issue 9 (items 1-2, the fast part): crashes, lost connections, and lock waits leave nothing half-done.

Real subprocesses with the test-only fault hook (reconciler/util/faults.py); the full kill matrix over a
1,000-job manifest and the 32-way run are in test_reliability_stress.py (marked `stress`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler.engine.transaction import DEFAULT_LOCK_TIMEOUT, begin_locked, rollback
from reconciler.util import faults
from tests.fix_db import DbTarget
from tests.integration.apply_support import ROOT, assert_converged, assert_ok, execute, reconcile
from tests.integration.reliability_support import (
    InProcess,
    describe_difference,
    one_line,
    paused_at,
    reconciler_backends,
    reset_to_audited,
    run,
    state,
    trace_points,
    wait_backends_gone,
    wait_for,
)

# -- the hook itself -----------------------------------------------------------------------------------


def test_fault_hook_costs_nothing_when_unset() -> None:
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    code = "from reconciler.util import faults; print(faults.point is faults._noop)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("spec, expected", [
    ("kill-before-statement:7", [faults.Fault("kill", number=7)]),
    ("sleep-before-statement:3:1.5", [faults.Fault("sleep", number=3, seconds=1.5)]),
    ("trace,kill-at:commit", [faults.Fault("kill", name="commit")]),
    ("sleep-at:statement.job:2", [faults.Fault("sleep", name="statement.job", seconds=2.0)]),
    ("wait-at:verify:/tmp/go", [faults.Fault("wait", name="verify", resume_file="/tmp/go")]),
], ids=["kill-number", "sleep-number", "trace-and-name", "sleep-name", "wait-name"])
def test_fault_specs_parse(spec: str, expected: list[faults.Fault]) -> None:
    assert faults.parse(spec)[0] == expected


@pytest.mark.parametrize("spec", ["kill", "kill-before-statement:0", "sleep-before-statement:3",
                                  "explode-at:commit", "kill-before-statement:x", "wait-at:verify",
                                  "wait-before-statement:3:/tmp/go"])
def test_malformed_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="RECONCILER_FAULT"):
        faults.parse(spec)


# -- crash safety (a few points; the full matrix is in the stress file) ----------------------------------


def test_kill_at_statement_verify_and_commit_points_leaves_before_or_after(audited_db: DbTarget, _resetter) -> None:
    url, su = audited_db.url, audited_db.superuser_url
    before = state(su)
    code, _, stderr = run(url, "--apply", fault="trace")
    assert code == 0, stderr
    after = state(su)
    points = trace_points(stderr)
    wanted = ["statement.job", "record.history", "commit"]
    numbers = [next(n for n, name in points if name == w) for w in wanted]
    numbers.append(points[-2][0])  # inside the verification read
    assert points[-2][1] == "read.live" and points[-4][1] == "verify"
    library = InProcess(url, ROOT / "scheduler.yaml")
    for number in numbers:
        reset_to_audited(_resetter, url)
        code, _, stderr = run(url, "--apply", fault=f"kill-before-statement:{number}")
        assert code == -9, (number, stderr)
        wait_backends_gone(su)
        got = state(su)
        assert got == before, (number, describe_difference(got, before))
        library.apply()
        assert library.plan_is_empty()
        assert state(su) == after


# -- a lost connection ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["statement.job", "commit"])
def test_terminated_backend_fails_with_one_retryable_line(audited_db: DbTarget, where: str, tmp_path: Path) -> None:
    """pg_terminate_backend on the paused apply: exit 1, one line that says retry, nothing applied."""
    url, su = audited_db.url, audited_db.superuser_url
    before = state(su)
    proc = paused_at(url, where, tmp_path / "resume")
    pids = wait_for(lambda: [p for p, st, _ in reconciler_backends(su) if st == "idle in transaction"], 10, "the paused backend")
    assert len(pids) == 1
    execute(su, "SELECT pg_terminate_backend(%s)", (pids[0],))
    (tmp_path / "resume").touch()
    stdout, rest = proc.communicate(timeout=30)
    assert proc.returncode == 1, rest
    message = one_line(rest)
    assert "the database connection was lost" in message, message
    assert "retry" in message or "run reconcile again" in message, message
    assert "Traceback" not in rest
    wait_backends_gone(su)
    assert state(su) == before
    library = InProcess(url, ROOT / "scheduler.yaml")
    library.apply()
    assert library.plan_is_empty()


# -- locks and timeouts ---------------------------------------------------------------------------------


def _apply_while_locked(su: str, url: str, lock: str, *args: str) -> tuple[Any, float, int]:
    """`reconcile --apply ARGS` while another session holds `lock`: (result, seconds it took, holder pid)."""
    holder = psycopg.connect(su, autocommit=True, application_name="rel-blocker")
    try:
        holder.execute("BEGIN")
        holder.execute(lock)
        started = time.monotonic()
        result = reconcile(url, "--apply", *args)
        return result, time.monotonic() - started, holder.info.backend_pid
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_access_exclusive_on_scheduled_jobs_waits_lock_timeout_then_names_the_blocker(audited_db: DbTarget) -> None:
    url, su = audited_db.url, audited_db.superuser_url
    before = state(su)
    result, waited, holder_pid = _apply_while_locked(
        su, url, "LOCK TABLE public.scheduled_jobs IN ACCESS EXCLUSIVE MODE", "--lock-timeout", "1")
    assert result.exit_code == 1, result.output
    line = one_line(result.stderr)
    assert f"pid {holder_pid} (application_name rel-blocker" in line, line
    assert "holding AccessExclusiveLock on public.scheduled_jobs" in line, line
    assert "lock timeout" in line and "55P03" in line and "--lock-timeout" in line
    assert 1.0 <= waited < DEFAULT_LOCK_TIMEOUT - 1, waited  # --lock-timeout 1 was used, not the default
    assert state(su) == before
    assert_ok(reconcile(url, "--apply"))
    assert_converged(url)


@pytest.mark.parametrize("mode", ["SHARE", "ACCESS EXCLUSIVE"])
def test_lock_on_cron_job_mid_apply_rolls_back_everything(audited_db: DbTarget, mode: str) -> None:
    """The job row is fixed first, then the trigger waits on cron.job and times out: both roll back."""
    url, su = audited_db.url, audited_db.superuser_url
    assert_ok(reconcile(url, "--apply"))
    execute(su, "UPDATE public.scheduled_jobs SET schedule = '7 7 * * *' WHERE job_name = 'ttl_cleanup'")
    execute(su, "UPDATE cron.job SET active = false WHERE jobname = 'master-scheduler'")
    before = state(su)
    result, waited, holder_pid = _apply_while_locked(
        su, url, f"LOCK TABLE cron.job IN {mode} MODE", "--lock-timeout", "1")
    assert result.exit_code == 1, result.output
    line = one_line(result.stderr)
    assert f"pid {holder_pid} (application_name rel-blocker" in line and "on cron.job" in line, line
    assert 1.0 <= waited < DEFAULT_LOCK_TIMEOUT - 1, waited  # --lock-timeout 1 was used, not the default
    assert state(su) == before
    assert_ok(reconcile(url, "--apply"))
    assert_converged(url)


def test_statement_timeout_also_bounds_a_lock_wait_and_names_the_blocker(audited_db: DbTarget) -> None:
    url, su = audited_db.url, audited_db.superuser_url
    before = state(su)
    result, waited, holder_pid = _apply_while_locked(  # the in-transaction lock_timeout stays 10 s
        su, url, "LOCK TABLE public.scheduled_jobs IN ACCESS EXCLUSIVE MODE", "--statement-timeout", "1")
    assert result.exit_code == 1, result.output
    line = one_line(result.stderr)
    assert "statement timeout" in line and "57014" in line and f"pid {holder_pid}" in line, line
    assert 1.0 <= waited < DEFAULT_LOCK_TIMEOUT - 1, waited  # the 1 s statement timeout ended it, not the default lock timeout
    assert state(su) == before


@pytest.mark.parametrize("lock_timeout, expected", [(None, f"{int(DEFAULT_LOCK_TIMEOUT)}s"), (2.0, "2s"), (0.5, "500ms")])
def test_lock_timeout_inside_the_transaction(audited_db: DbTarget, lock_timeout: float | None, expected: str) -> None:
    with psycopg.connect(audited_db.url, autocommit=True) as conn:
        begin_locked(conn, lock_timeout, 5.0)
        assert conn.execute("SHOW lock_timeout").fetchone() == (expected,)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        rollback(conn)

