"""Issue 12, point 4: the reconciler through a connection pooler (real PgBouncer 1.18, tests/fix_pooler.py).

Every test that takes `pooled` runs twice: through PgBouncer in transaction mode (Supabase's pooler port
6543) and in session mode (the pooler's port 5432), with `default_pool_size = 2`. The code under test
connects through the pooler; the test inspects and injects drift straight into the cluster as the
superuser. docs/poolers.md names these tests for each claim it makes.

Transaction mode hands each transaction (each statement, in autocommit) to whichever server connection
is free, so what one client leaves in a server session (a `SET`, a prepared statement) is what the next
client finds there: the tests below look into every server connection of the pool afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from localdb import Cluster
from reconciler.engine import db
from reconciler.engine.transaction import LOCK_KEY
from reconciler.manifest import load_manifest
from reconciler.verify.read import Reader, declared_triggers
from tests import fix_pooler
from tests.fix_pooler import Pooled
from tests.integration.apply_support import (
    JOB_NAMES,
    MANIFEST,
    ROOT,
    SECRETS_ENV,
    assert_converged,
    assert_no_markers,
    assert_ok,
    dump,
    history_rows,
    one_line_error,
    query,
    reconcile,
    reconcile_sub,
)
from tests.integration.controller_support import (
    copy_manifest,
    disable_trigger,
    lock_waiters,
    metric,
    schedule_of,
    set_schedule,
    trigger_active,
    wait_until,
    watcher,
)

JOB = "fetch_google_news"  # declared "*/5 * * * *"
IN_SYNC = "No changes. The database matches"
POOL_SIZE = 2  # tests/fix_pooler.py: default_pool_size


def _drift(su: str) -> None:
    set_schedule(su, JOB, "*/7 * * * *")
    disable_trigger(su)


def _drift_corrected(su: str) -> bool:
    return schedule_of(su, JOB) == "*/5 * * * *" and trigger_active(su) is True


@contextmanager
def _holding_servers(url: str, count: int = POOL_SIZE) -> Iterator[list[psycopg.Connection[Any]]]:
    """`count` clients through the pooler, each inside a transaction at once, so each holds a server
    connection of the pool until the block ends (all POOL_SIZE of them: every server session is seen)."""
    with ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(url, prepare_threshold=None)) for _ in range(count)]
        for conn in conns:
            conn.execute("SELECT 1")  # opens the transaction: this client now holds a server connection
        yield conns


def _session_settings(url: str) -> list[tuple[Any, ...]]:
    """Settings a client may have left in the pooled server sessions, one row per server connection."""
    with _holding_servers(url) as conns:
        return [conn.execute("SELECT current_setting('default_transaction_read_only'),"
                             " current_setting('statement_timeout'), current_setting('lock_timeout'),"
                             " (SELECT count(*) FROM pg_prepared_statements),"
                             " (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())"
                             ).fetchone() for conn in conns]


#: read-write, no statement or lock timeout, no prepared statement, no temporary table left behind
CLEAN_SESSION = ("off", "0", "0", 0, 0)


# --- plan, apply, plan again, drift, history ----------------------------------------------------------


def test_plan_apply_and_drift_through_the_pooler(pooled: Pooled) -> None:
    plan = reconcile(pooled.url, "--dry-run", "--detailed-exitcode")
    assert (plan.exit_code, plan.stderr) == (2, ""), plan.output
    assert plan.stdout.endswith("Plan: 20 to create, 0 to update, 0 to delete.\n")

    applied = reconcile(pooled.url, "--apply")
    assert_ok(applied)
    assert applied.stdout.endswith("Apply complete (history #1).\n")
    assert_converged(pooled.url)
    assert len(query(pooled.superuser_url, "SELECT 1 FROM public.scheduled_jobs")) == len(JOB_NAMES)

    _drift(pooled.superuser_url)
    drifted = reconcile(pooled.url, "--dry-run", "--detailed-exitcode")
    assert drifted.exit_code == 2 and "Plan: 0 to create, 2 to update, 0 to delete; 2 drifted outside git." in drifted.stdout, drifted.output
    assert_ok(reconcile(pooled.url, "--apply"))
    assert _drift_corrected(pooled.superuser_url)
    assert_converged(pooled.url)

    listing = reconcile_sub(pooled.url, "history", manifest=None)
    assert_ok(listing)
    assert [line.split()[0] for line in listing.stdout.splitlines()] == ["#2", "#1"]
    shown = reconcile_sub(pooled.url, "history", "--show", "1", manifest=None)
    assert_ok(shown)
    assert shown.stdout.startswith("Apply #1 at ") and "Plan: 20 to create" in shown.stdout
    assert pooled.pooler is not None
    for text in (plan.stdout, applied.stdout, drifted.stdout, listing.stdout, shown.stdout, pooled.pooler.log()):
        assert_no_markers(text)
    # the secrets went in as COPY data into a temporary table dropped at commit: they arrived whole
    assert query(pooled.superuser_url, "SELECT count(*) FROM vault.decrypted_secrets WHERE decrypted_secret = %s",
                 (SECRETS_ENV["CRON_SECRET"],)) == [(1,)]
    assert _session_settings(pooled.url) == [CLEAN_SESSION] * POOL_SIZE


def test_saved_plan_through_the_pooler(pooled: Pooled, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    made = reconcile(pooled.url, "--dry-run", "--out", str(saved))
    assert_ok(made)
    assert json.loads(saved.read_text())["changes"]
    assert_ok(reconcile(pooled.url, "--apply", str(saved)))
    assert_converged(pooled.url)
    stale = one_line_error(reconcile(pooled.url, "--apply", str(saved)))  # the database moved on
    assert stale.startswith("error: saved plan is stale"), stale


# --- two applies at once: the advisory transaction lock ------------------------------------------------


def _spawn(url: str, *args: str, fault: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, **SECRETS_ENV, "DATABASE_URL": url}
    env.pop("RECONCILER_FAULT", None)
    if fault:
        env["RECONCILER_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-c", "from reconciler.cli.main import main; main()", "-f", str(MANIFEST),
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lock_granted(su: str) -> bool:
    return bool(query(su, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
                          " AND objid = %s AND granted", LOCK_KEY)[0][0])


def test_two_applies_at_once_through_the_pooler(pooled: Pooled, tmp_path: Path) -> None:
    """One apply holds the lock (paused before COMMIT); a second exits 3 at once, a third waits for it."""
    su = pooled.superuser_url
    resume = tmp_path / "resume"
    first = _spawn(pooled.url, "--apply", fault=f"wait-at:commit:{resume}")
    waiting = None
    try:
        wait_until("the first apply holding the advisory lock", lambda: first.poll() is None and _lock_granted(su), 30)
        line = one_line_error(reconcile(pooled.url, "--apply"), 3)
        assert re.fullmatch(r"error: another reconciler holds the lock \(pid \d+, application_name reconcile, "
                            r"client [^)]+\) \(wait for it, or pass --lock-timeout SECONDS to wait\)", line), line
        waiting = _spawn(pooled.url, "--apply", "--lock-timeout", "30")
        # the pooler passes application_name on: the waiting session is visible as the reconciler's
        wait_until("the second apply waiting for the lock", lambda: lock_waiters(su) == 1, 30)
        assert history_rows(su) == []  # nothing committed while the first one holds the lock
    finally:
        resume.touch()
        out, err = first.communicate(timeout=60)
        if waiting is not None:
            late_out, late_err = waiting.communicate(timeout=60)
    assert (first.returncode, err) == (0, ""), out + err
    assert "Apply complete (history #1)." in out
    assert waiting is not None and (waiting.returncode, late_err) == (0, ""), late_out + late_err
    assert late_out.startswith(IN_SYNC)  # it waited, then found everything already done
    assert [row[0] for row in history_rows(su)] == [1]
    assert query(su, "SELECT count(*), count(DISTINCT job_name) FROM public.scheduled_jobs") \
        == [(len(JOB_NAMES), len(JOB_NAMES))]
    assert query(su, "SELECT count(*) FROM cron.job") == [(1,)]


# --- the controller ---------------------------------------------------------------------------------------


def test_watch_apply_corrects_drift_through_the_pooler(pooled: Pooled, tmp_path: Path) -> None:
    su = pooled.superuser_url
    manifest = copy_manifest(tmp_path)
    with watcher(pooled.url, manifest, "--apply", interval="0.5s", workdir=tmp_path) as w:
        first = w.wait_cycles(1, timeout=30)[0]
        assert first["result"] == "success" and first["applied"] is True, first
        for _ in range(2):  # drift twice: later cycles reuse what earlier ones left in the pooled sessions
            _drift(su)
            wait_until("the drift corrected", lambda: _drift_corrected(su), timeout=20)
        done = len(w.cycles())
        w.wait_cycles(done + 3, timeout=20)  # more cycles than psycopg's prepare threshold would need
        w.wait_http()
        samples = w.metrics()
        assert metric(samples, "reconciler_cycles_total", result="error") == 0, w.stderr()[-3000:]
        assert metric(samples, "reconciler_changes_applied_total", kind="trigger", action="update") == 2
    assert {e["result"] for e in w.cycles()} == {"success", "drift"}  # the two drifts were corrected
    assert len(w.cycles("drift")) == 2
    assert_no_markers(w.stderr() + w.stdout())
    assert_converged(pooled.url, manifest)


# --- verify -----------------------------------------------------------------------------------------------


def test_verify_runs_its_checks_through_the_pooler(pooled: Pooled) -> None:
    assert_ok(reconcile(pooled.url, "--apply"))
    run = reconcile_sub(pooled.url, "verify", "--wait", "1s", "--format", "json")
    # 2 unless pg_cron's minute boundary fell just before (the checks then judge a real firing): never 1
    assert run.exit_code in (0, 2) and run.stderr in ("", "waiting up to 1s for a run of trigger master-scheduler since "
                                                    "the check began (and its HTTP answer)...\n"), run.output
    checks = {c["name"]: c["status"] for c in json.loads(run.stdout)["checks"]}
    assert list(checks) == ["preflight", "master-scheduler: runs", "master-scheduler: http",
                            "master-scheduler: executions", "scheduled jobs: freshness", "housekeeping",
                            "secret literals"], checks
    assert (checks["preflight"], checks["housekeeping"], checks["secret literals"]) == ("pass", "pass", "pass")
    assert run.exit_code == (2 if "fail" in checks.values() else 0)
    assert_no_markers(run.stdout)
    # verify is read-only, but only for its own transactions: the next client's apply still writes
    assert _session_settings(pooled.url) == [CLEAN_SESSION] * POOL_SIZE
    _drift(pooled.superuser_url)
    assert_ok(reconcile(pooled.url, "--apply"))
    assert _drift_corrected(pooled.superuser_url)


# --- session state: SET, prepared statements ---------------------------------------------------------------


def test_a_lock_wait_names_the_blocker_and_leaves_no_timeout_behind(pooled: Pooled) -> None:
    """The apply's lock timeout ends it; the second connection asking pg_locks (lock_blockers) finds the
    holder through the pooler and leaves no statement_timeout in the pooled session."""
    assert_ok(reconcile(pooled.url, "--apply"))
    set_schedule(pooled.superuser_url, JOB, "*/7 * * * *")
    before = dump(pooled.superuser_url)
    with psycopg.connect(pooled.superuser_url, application_name="pooler test holder") as holder:
        holder.execute("LOCK TABLE public.scheduled_jobs IN ACCESS EXCLUSIVE MODE")
        line = one_line_error(reconcile(pooled.url, "--apply", "--lock-timeout", "1"))
    assert "canceling statement due to lock timeout" in line, line
    assert re.search(r"blocked by pid \d+ \(application_name pooler test holder, user supabase_admin, [^)]*\) holding "
                     r"AccessExclusiveLock on public\.scheduled_jobs; rolled back, nothing changed", line), line
    assert dump(pooled.superuser_url) == before
    assert _session_settings(pooled.url) == [CLEAN_SESSION] * POOL_SIZE


def _interleave(conns: list[psycopg.Connection[Any]], rounds: int = 7) -> str | None:
    """The same query, `rounds` times on each connection in turn; the SQLSTATE of the first error."""
    try:
        for _ in range(rounds):
            for conn in conns:
                conn.execute("SELECT count(*) FROM pg_class WHERE relkind = %s", ("r",)).fetchone()
    except psycopg.Error as e:
        return e.sqlstate
    return None


def test_psycopgs_automatic_prepared_statements_break_in_transaction_mode_only(pooled: Pooled) -> None:
    """The hazard the reconciler avoids: psycopg prepares a query after 5 executions on a connection
    (`_pg3_0`, `_pg3_1`, ... per connection). PgBouncer < 1.21 does not track them: in transaction mode
    two clients on one server session collide (42P05 "already exists") and a client handed another server
    session misses its own (26000 "does not exist"). Session mode gives each client its own server session."""
    with psycopg.connect(pooled.url, autocommit=True) as a:
        assert a.prepare_threshold == 5  # psycopg's default
        _interleave([a])  # prepared in the one server session there is so far
        with _holding_servers(pooled.url, 1):  # in transaction mode that session is busy now: `a` gets another
            missing = _interleave([a], rounds=1)
    with psycopg.connect(pooled.url, autocommit=True) as a, psycopg.connect(pooled.url, autocommit=True) as b:
        collided = _interleave([a, b])
    if pooled.mode == "transaction":
        assert (collided, missing) == ("42P05", "26000")
    else:
        assert (collided, missing) == (None, None)


def test_the_reconcilers_connections_never_prepare(pooled: Pooled) -> None:
    """`verify --wait` polls on one connection once a second and an apply re-reads on its connection: the
    same queries, more than 5 times. db.connect turns psycopg's automatic prepared statements off, so this
    works through a transaction-mode PgBouncer too (the test above shows what happens otherwise)."""
    assert_ok(reconcile(pooled.url, "--apply"))
    declared = declared_triggers(load_manifest([str(MANIFEST)]))
    with closing(db.connect(pooled.url, autocommit=True)) as a:
        assert a.prepare_threshold is None
        readers = [Reader(a, declared)]
        with closing(db.connect(pooled.url, autocommit=True)) as b:
            readers.append(Reader(b, declared))
            for _ in range(7):
                for reader in readers:
                    assert reader.read(full=False).cron_jobs
                for conn in (a, b):  # the apply's and the plan's reading: capabilities, then one pipeline
                    with conn.transaction():
                        assert db.read_live(conn).capabilities.database == "postgres"
        with _holding_servers(pooled.url, 1):
            evidence = readers[0].read()  # in transaction mode: on another server session than before
        assert evidence.cron_jobs and evidence.unavailable == {}
    assert _session_settings(pooled.url) == [CLEAN_SESSION] * POOL_SIZE


# --- connection strings the pooler refuses ------------------------------------------------------------------


def test_a_startup_option_the_pooler_rejects_is_one_line_with_the_fix(pooled: Pooled) -> None:
    url = pooled.url + "?options=-c%20statement_timeout%3D5s"
    line = one_line_error(reconcile(url, "--dry-run"))
    assert "unsupported startup parameter: options" in line, line
    assert "ignore_startup_parameters" in line, line


# --- the harness and the documentation -------------------------------------------------------------------


def test_a_missing_pgbouncer_fails_the_test_naming_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fix_pooler, "PGBOUNCER", tmp_path / "no-pgbouncer")
    never_started = Cluster(tmp_path / "cluster")
    with pytest.raises(pytest.fail.Exception, match=r"^/\S+ is missing: install the Debian package pgbouncer"):
        fix_pooler.PgBouncer(tmp_path / "bouncer", never_started, "transaction").start()


def test_every_test_named_in_docs_poolers_exists() -> None:
    named = set(re.findall(r"`(test_\w+)`", (ROOT / "docs" / "poolers.md").read_text()))
    assert named, "docs/poolers.md names no test"
    assert named <= set(globals()), named - set(globals())
