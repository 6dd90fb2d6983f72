"""Issue 5: eight applies started at once converge under the advisory lock (real processes, real database).

Each CLI process costs a couple of seconds of start-up on a busy machine, so real processes are used where
they prove something threads cannot (eight interpreters queued on the lock); the no-wait race uses threads,
each with its own connection, and the exit code 3 is checked through the CLI in-process.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg

from reconciler.engine.apply import ApplyResult, apply
from reconciler.engine.sources import resolve_secrets
from reconciler.engine.transaction import LOCK_KEY
from reconciler.errors import LockHeld
from reconciler.kinds.base import PlanOptions
from reconciler.manifest import load_manifest
from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    JOB_NAMES,
    MANIFEST,
    SECRET_NAMES,
    SECRETS_ENV,
    assert_converged,
    assert_no_markers,
    assert_ok,
    dump,
    history_rows,
    query,
    reconcile,
    spawn,
)

N = 8


def _wait_all(procs: list) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        out.append((proc.returncode, stdout, stderr))
    return out


def _assert_one_of_everything(su: str) -> None:
    assert query(su, "SELECT jobname::text, count(*) FROM cron.job GROUP BY 1") == [("master-scheduler", 1)]
    assert query(su, "SELECT count(*), count(DISTINCT job_name) FROM public.scheduled_jobs") \
        == [(len(JOB_NAMES), len(JOB_NAMES))]
    assert query(su, "SELECT name FROM vault.secrets ORDER BY name") == [(n,) for n in SECRET_NAMES]
    rows = history_rows(su)
    assert len(rows) == 1, rows


def test_eight_processes_waiting_for_the_lock_all_succeed(supabase_like: DbTarget) -> None:
    """8 real `reconcile --apply --lock-timeout 30` processes queue behind one lock; one applies, 7 find nothing."""
    su = supabase_like.superuser_url
    with psycopg.connect(su, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        waiters = [spawn(supabase_like.url, "--apply", "--lock-timeout", "30") for _ in range(N)]
        deadline = time.monotonic() + 45
        while True:  # every process is queued behind our lock before we let go
            waiting = query(su, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
                                " AND objid = %s AND NOT granted", LOCK_KEY)[0][0]
            if waiting == N or time.monotonic() > deadline or any(p.poll() is not None for p in waiters):
                break
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEY)
        results = _wait_all(waiters)
    assert waiting == N, results

    assert [code for code, _, _ in results] == [0] * N, results
    assert sum("Apply complete" in stdout for _, stdout, _ in results) == 1
    assert sum("No changes." in stdout for _, stdout, _ in results) == N - 1
    for _, stdout, stderr in results:
        assert_no_markers(stdout + stderr)
    _assert_one_of_everything(su)
    assert_converged(supabase_like.url)


def test_losers_exit_3_without_lock_timeout(supabase_like: DbTarget) -> None:
    su = supabase_like.superuser_url
    before = dump(su)
    with psycopg.connect(su, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        for _ in range(N):
            result = reconcile(supabase_like.url, "--apply")
            assert result.exit_code == 3, result.output
            assert result.stdout == ""
            line = result.stderr.rstrip("\n")
            assert line.startswith("error: another reconciler holds the lock (pid ")
            assert "--lock-timeout" in line and "\n" not in line
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEY)
    assert dump(su) == before

    # Now 8 at once, nobody waiting: whoever gets the lock applies, the others lose or find nothing to do.
    manifest = load_manifest([str(MANIFEST)])
    values = resolve_secrets(manifest, SECRETS_ENV)
    barrier = threading.Barrier(N)

    def one() -> ApplyResult | LockHeld:
        barrier.wait()
        try:
            return apply(supabase_like.url, manifest, values, PlanOptions())
        except LockHeld as e:
            return e

    with ThreadPoolExecutor(N) as pool:
        outcomes = list(pool.map(lambda _: one(), range(N)))
    applied = [o for o in outcomes if isinstance(o, ApplyResult) and o.history_id is not None]
    assert len(applied) == 1, outcomes
    assert all(isinstance(o, LockHeld) or o.plan.is_empty for o in outcomes if o is not applied[0])
    _assert_one_of_everything(su)
    assert_converged(supabase_like.url)


def test_lock_wait_is_bounded_by_lock_timeout_not_statement_timeout(supabase_like: DbTarget) -> None:
    """`--lock-timeout 2 --statement-timeout 1`: wait the full 2 s for the lock, then exit 3 (not 1)."""
    with psycopg.connect(supabase_like.superuser_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        started = time.monotonic()
        result = reconcile(supabase_like.url, "--apply", "--lock-timeout", "2", "--statement-timeout", "1")
        waited = time.monotonic() - started
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: another reconciler holds the lock")
    assert waited >= 1.9
    # Once the lock is taken, the statement timeout applies again (the apply itself is fast).
    assert_ok(reconcile(supabase_like.url, "--apply", "--lock-timeout", "2", "--statement-timeout", "1"))
