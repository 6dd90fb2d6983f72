"""A migration holding ACCESS EXCLUSIVE on scheduled_jobs blocks even a SELECT: a dry run, an apply and a
`--watch` cycle each give up within their lock (or statement) timeout, name the session that holds the
lock (pid, application_name, when its query started), change nothing, and the controller's next cycle
after the lock is released succeeds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.fix_db import DbTarget
from tests.integration.apply_support import assert_ok, reconcile
from tests.integration.controller_support import copy_manifest, wait_until, watcher

LOCK = "LOCK TABLE public.scheduled_jobs IN ACCESS EXCLUSIVE MODE"


@contextmanager
def migration_holding_the_lock(superuser_url: str) -> Iterator[int]:
    """A session in a transaction holding ACCESS EXCLUSIVE on scheduled_jobs, as a migration does; its pid."""
    holder = psycopg.connect(superuser_url, autocommit=True, application_name="migration-0042")
    try:
        holder.execute("BEGIN")
        holder.execute(LOCK)
        yield holder.info.backend_pid
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _jobs(superuser_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(superuser_url) as conn:
        return conn.execute("SELECT * FROM public.scheduled_jobs ORDER BY 1").fetchall()


@pytest.mark.parametrize("args, bound, role", [
    (("--dry-run", "--lock-timeout", "1"), "lock timeout", "postgres"),
    (("--dry-run", "--statement-timeout", "1"), "statement timeout", "postgres"),
    (("--dry-run", "--lock-timeout", "1"), "lock timeout", "superuser"),
    (("--apply", "--lock-timeout", "1"), "lock timeout", "superuser"),
], ids=["dry-run-lock-timeout", "dry-run-statement-timeout", "dry-run-as-superuser", "apply-as-superuser"])
def test_a_blocked_read_gives_up_in_time_and_names_the_blocker(audited_db: DbTarget, args: tuple[str, ...],
                                                               bound: str, role: str) -> None:
    su = audited_db.superuser_url
    before = _jobs(su)
    with migration_holding_the_lock(su) as pid:
        started = time.monotonic()
        result = reconcile(su if role == "superuser" else audited_db.url, *args)
        took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert f"pid {pid} (application_name migration-0042, user supabase_admin" in line, line
    if role == "superuser":  # the holder's query: when it started (the migration's LOCK a moment ago)
        assert "idle in transaction, query started 20" in line and " UTC, " in line and " s ago)" in line, line
    else:  # pg_stat_activity hides another role's query from a role without pg_read_all_stats
        assert "its query hidden from this role: pg_read_all_stats shows it" in line, line
    assert "holding AccessExclusiveLock on public.scheduled_jobs" in line and bound in line, line
    print(f"\n{' '.join(args)} as {role}: gave up after {took:.2f} s")
    assert 1.0 <= took < 6, took  # the 1 s bound ended it, not the 10 s default
    assert _jobs(su) == before


def test_a_controller_cycle_blocked_by_a_migration_fails_then_recovers(audited_db: DbTarget, tmp_path: Path) -> None:
    manifest = copy_manifest(tmp_path)
    assert_ok(reconcile(audited_db.url, "--apply", manifest=manifest))
    with watcher(audited_db.url, manifest, "--lock-timeout", "1", interval="0.3s", workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=15, result="success")
        with migration_holding_the_lock(audited_db.superuser_url) as pid:
            failed = w.wait_cycles(1, timeout=15, result="error")[0]
            assert f"pid {pid} (application_name migration-0042" in failed["error"], failed
            assert failed["retryable"] is True and failed["duration_ms"] < 5000, failed
            wait_until("/readyz 503 while blocked", lambda: w.status("/readyz") == 503, 5)
            assert w.status("/healthz") == 200
        ok_before = len(w.cycles("success"))
        w.wait_cycles(ok_before + 1, timeout=15, result="success")
        wait_until("/readyz 200 after the migration", lambda: w.status("/readyz") == 200, 5)
