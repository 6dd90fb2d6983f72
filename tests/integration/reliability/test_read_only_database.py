"""A read-only database: Supabase's disk-full mode (default_transaction_read_only = on) and a hot standby
(pg_is_in_recovery()). The plan works; --apply refuses up front with one line saying why and what to do,
changes nothing and never overrides the setting; the controller stays up, not ready with that reason,
and recovers once the setting is lifted."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fix_db import DbTarget
from tests.integration.apply_support import assert_ok, reconcile
from tests.integration.controller_support import copy_manifest, wait_until, watcher
from tests.integration.fleet_support import fleet_manifest
from tests.integration.standby_support import hot_standby

#: A connection that is not read-only whatever the database says: the test's own, to lift the setting.
WRITABLE = "-c default_transaction_read_only=off"


@contextlib.contextmanager
def read_only(superuser_url: str, scope: str) -> Iterator[None]:
    """default_transaction_read_only = on for the database `postgres` or the role `postgres` (new sessions),
    with every statement logged; both lifted afterwards, however the test ends."""
    target = "DATABASE postgres" if scope == "database" else "ROLE postgres"
    with psycopg.connect(superuser_url, autocommit=True, options=WRITABLE) as conn:
        conn.execute(f"ALTER {target} SET default_transaction_read_only = on")
        conn.execute("ALTER DATABASE postgres SET log_statement = 'all'")
    try:
        yield
    finally:
        lift(superuser_url, scope)
        with psycopg.connect(superuser_url, autocommit=True, options=WRITABLE) as conn:
            conn.execute("ALTER DATABASE postgres RESET log_statement")


def lift(superuser_url: str, scope: str) -> None:
    target = "DATABASE postgres" if scope == "database" else "ROLE postgres"
    with psycopg.connect(superuser_url, autocommit=True, options=WRITABLE) as conn:
        conn.execute(f"ALTER {target} RESET default_transaction_read_only")


def _objects(superuser_url: str) -> tuple[object, ...]:
    with psycopg.connect(superuser_url) as conn:
        return conn.execute("""SELECT (SELECT count(*) FROM public.scheduled_jobs),
                                      to_regclass('reconciler.history'), to_regnamespace('vault')""").fetchone() or ()


@pytest.mark.parametrize("scope, where", [("database", "set for the database"), ("role", "set for the role")])
def test_disk_full_mode_plans_and_refuses_to_apply(audited_db: DbTarget, scope: str, where: str) -> None:
    su, log = audited_db.superuser_url, audited_db.cluster.log_file
    before = _objects(su)
    offset = log.stat().st_size
    with read_only(su, scope):
        planned = reconcile(audited_db.url, "--dry-run")
        assert planned.exit_code == 0, planned.stderr
        assert "fetch_google_news" in planned.stdout and "Plan: 20 to create" in planned.stdout  # all of it
        applied = reconcile(audited_db.url, "--apply")
        server_log = log.read_bytes()[offset:].decode(errors="replace")
    assert applied.exit_code == 1
    assert applied.stdout == ""
    lines = applied.stderr.strip().splitlines()
    assert len(lines) == 1, applied.stderr
    assert lines[0].startswith("error: refusing to apply: the database is read-only "
                               f"(default_transaction_read_only = on, {where}); nothing was changed"), lines[0]
    assert "disk is full" in lines[0] and "--dry-run" in lines[0]
    assert _objects(su) == before
    # statements were logged (a pipelined BEGIN is logged as "execute <unnamed>: BEGIN"): the search below can
    # find things
    assert "statement: BEGIN" in server_log or "execute <unnamed>: BEGIN" in server_log
    for override in ("READ WRITE", "transaction_read_only = off", "transaction_read_only TO off",
                     "set_config('transaction_read_only'", "set_config('default_transaction_read_only'"):
        assert override not in server_log, override
    assert_ok(reconcile(audited_db.url, "--apply"))  # lifted: the same apply goes through


def test_a_hot_standby_plans_and_refuses_to_apply(localdb_base: Path, tmp_path: Path) -> None:
    manifest = fleet_manifest(tmp_path)  # no pg_cron on this plain server
    started = time.monotonic()
    with hot_standby(localdb_base / "replica") as url:
        print(f"\nhot standby (primary, pg_basebackup, start) ready after {time.monotonic() - started:.2f} s")
        planned = reconcile(url, "--dry-run", manifest=manifest)
        assert planned.exit_code == 0 and "to create" in planned.stdout, planned.stderr
        applied = reconcile(url, "--apply", manifest=manifest)
    assert applied.exit_code == 1
    lines = applied.stderr.strip().splitlines()
    assert len(lines) == 1, applied.stderr
    assert lines[0].startswith("error: refusing to apply: the database is a read-only replica "
                               "(pg_is_in_recovery() is true); nothing was changed"), lines[0]
    assert "point --database-url / DATABASE_URL at the primary" in lines[0]


def test_the_controller_is_not_ready_while_read_only_and_recovers(audited_db: DbTarget, tmp_path: Path) -> None:
    su = audited_db.superuser_url
    manifest = copy_manifest(tmp_path)
    with watcher(audited_db.url, manifest, "--apply", interval="0.3s", workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=20, result="success")
        with read_only(su, "database"):
            failed = w.wait_cycles(2, timeout=20, result="error")[-1]
            assert failed["error"].startswith("refusing to apply: the database is read-only"), failed
            assert failed["retryable"] is True
            wait_until("/readyz 503 saying why", lambda: w.status("/readyz") == 503, 5)
            body = w.get("/readyz").text
            assert "last cycle did not succeed: refusing to apply: the database is read-only" in body, body
            assert w.status("/healthz") == 200 and w.alive()
        ok = len(w.cycles("success"))
        w.wait_cycles(ok + 1, timeout=20, result="success")
        wait_until("/readyz 200 once lifted", lambda: w.status("/readyz") == 200, 5)
