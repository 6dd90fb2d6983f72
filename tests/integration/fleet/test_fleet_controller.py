"""`reconcile --watch --targets`: a dead target never delays the others; readiness, metrics by target, and
targets added or removed by editing the file, without a restart."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import MARKERS, SECRETS_ENV, wait_until
from tests.integration.controller_support import metric, write_atomically
from tests.integration.fleet_support import (
    black_hole,
    databases,
    fleet_manifest,
    fleet_watcher,
    targets_yaml,
    unreachable_url,
    url_variable,
)

LIVE = ("fleet-ctl-a", "fleet-ctl-b")
DEAD = "fleet-ctl-dead"


def _cycles(watcher, target: str, result: str | None = None) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in watcher.events("target_cycle_finished")
            if e.get("target") == target and (result is None or e.get("result") == result)]


def test_a_dead_target_does_not_delay_the_others(empty_db: DbTarget, tmp_path: Path) -> None:
    fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml((*LIVE, DEAD)))
    with databases(empty_db.cluster, LIVE) as urls, black_hole() as dead_url:
        env = {url_variable(n): u for n, u in urls.items()} | {url_variable(DEAD): dead_url}
        w = fleet_watcher(tmp_path, targets, "--apply", "--parallel", "2", env=env, name="dead")
        try:
            w.wait_http()
            # the dead target holds one worker until its 5 s connect timeout; meanwhile the live ones cycle
            wait_until("3 runs of each live target", lambda: all(len(_cycles(w, n, "success")) >= 3 for n in LIVE), 20)
            assert _cycles(w, DEAD) == [] and w.status("/readyz") == 503
            assert "1 of 3 target(s) not attempted yet" in w.get("/readyz").text
            failed = w.wait_event("target_cycle_finished", 20, lambda e: e.get("target") == DEAD)[0]
            assert failed["result"] == "error" and failed["retryable"] is True and failed["duration_ms"] >= 1500
            wait_until("/readyz 200 once every target was attempted", lambda: w.status("/readyz") == 200, 10)
            samples = w.metrics()
            for name in LIVE:
                assert metric(samples, "reconciler_fleet_target_cycles_total", target=name, result="success") >= 3
                assert metric(samples, "reconciler_fleet_target_up", target=name) == 1
                assert metric(samples, "reconciler_fleet_target_last_success_timestamp_seconds", target=name) > 0
            assert metric(samples, "reconciler_fleet_target_up", target=DEAD) == 0
            assert metric(samples, "reconciler_fleet_target_cycles_total", target=DEAD, result="error") >= 1
            assert metric(samples, "reconciler_fleet_targets") == 3
            assert metric(samples, "reconciler_fleet_target_changes_applied_total", target=LIVE[0]) > 0
            text = w.stderr() + w.get("/metrics").text
            for marker in (*MARKERS, "dead-target-password"):
                assert marker not in text
            assert w.non_json_lines() == []
        finally:
            w.close()


def test_targets_added_and_removed_by_editing_the_file(empty_db: DbTarget, tmp_path: Path) -> None:
    names = ("fleet-edit-a", "fleet-edit-b", "fleet-edit-c")
    fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml(names[:2]))
    with databases(empty_db.cluster, names) as urls:
        env = {url_variable(n): u for n, u in urls.items()}
        w = fleet_watcher(tmp_path, targets, env=env, name="edit")
        try:
            w.wait_http()
            wait_until("ready", lambda: w.status("/readyz") == 200, 20)
            before = w.metrics()
            # new databases: everything is still to create from the manifest, which is not drift (issue 25)
            assert metric(before, "reconciler_fleet_target_cycles_total", target=names[0], result="success") >= 1
            assert metric(before, "reconciler_fleet_target_cycles_total", target=names[0], result="drift") == 0
            assert metric(before, "reconciler_fleet_target_drifted_resources", target=names[0]) > 0
            write_atomically(targets, targets_yaml(names[1:]))
            w.wait_event("target_added", 10, lambda e: e.get("target") == names[2])
            w.wait_event("target_removed", 10, lambda e: e.get("target") == names[0])
            wait_until(f"a run of {names[2]}", lambda: _cycles(w, names[2]), 10)
            after = w.metrics()
            assert not [k for k in after if dict(k[1]).get("target") == names[0]]
            assert metric(after, "reconciler_fleet_targets") == 2
            # an invalid edit keeps the last valid targets and flips readiness
            write_atomically(targets, "version: 1\ntargets: [{name: Bad}]\n")
            w.wait_event("targets_invalid", 10)
            wait_until("not ready", lambda: w.status("/readyz") == 503, 5)
            assert metric(w.metrics(), "reconciler_fleet_targets") == 2
            assert w.alive()
        finally:
            w.close()


@pytest.mark.parametrize("args", [("--notify", "http://127.0.0.1:9/hook")])
def test_single_database_watch_options_are_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    from click.testing import CliRunner

    from reconciler.cli.main import main

    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml(LIVE))
    result = CliRunner().invoke(main, ["--watch", "--targets", str(targets), *args], env=SECRETS_ENV)
    assert result.exit_code == 1 and "cannot be used with --targets" in result.stderr


def _reconcile_sessions(superuser_url: str, database: str) -> int:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = "
                            "'reconcile'", (database,)).fetchone()[0]


def test_each_target_backs_off_on_its_own_holds_no_connection_and_sigterm_stops_cleanly(
        empty_db: DbTarget, tmp_path: Path) -> None:
    live, refused = "fleet-backoff-live", "fleet-backoff-refused"
    fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml((live, refused)))
    with databases(empty_db.cluster, [live]) as urls:
        env = {url_variable(live): urls[live], url_variable(refused): unreachable_url(free_port())}
        w = fleet_watcher(tmp_path, targets, "--apply", env=env, name="backoff", interval="30s")
        try:
            w.wait_http()
            # the refused target retries after about 1, 2, 4 s; the live one waits for its 30 s interval
            wait_until("3 retries of the refused target", lambda: len(_cycles(w, refused, "error")) >= 3, 15)
            assert len(_cycles(w, live)) == 1 and _cycles(w, live)[0]["result"] == "success"
            backoffs = [e for e in w.events("target_cycle_finished") if e["target"] == refused]
            assert all(e["retryable"] for e in backoffs)
            assert _reconcile_sessions(empty_db.superuser_url, live) == 0  # nothing held between runs
            w.send(signal.SIGTERM)
            assert w.proc.wait(10) == 0
            assert w.events("fleet_controller_stopped")
        finally:
            w.close()


def test_sigterm_ends_a_stuck_target_run_within_the_grace_period(empty_db: DbTarget, tmp_path: Path) -> None:
    """A target's apply goes silent at its INSERT; the deadline is long (60 s): only the shutdown grace
    (1 s) can end it, and the process exits 0 soon after SIGTERM with nothing of the apply committed."""
    from localdb.faultproxy import FaultProxy, on_query

    name = "fleet-stuck"
    fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml([name]))
    with databases(empty_db.cluster, [name]), FaultProxy(empty_db.cluster.port) as proxy:
        fault = proxy.arm("silent", on_query(r'INSERT INTO "public"\."scheduled_jobs"'))
        env = {url_variable(name): proxy.url(database=name), "RECONCILER_ANSWER_TIMEOUT": "60",
               "RECONCILER_SHUTDOWN_GRACE": "1"}
        w = fleet_watcher(tmp_path, targets, "--apply", env=env, name="stuck")
        try:
            assert fault.fired.wait(30), w.stderr()[-2000:]
            started = time.monotonic()
            w.send(signal.SIGTERM)
            assert w.proc.wait(15) == 0, w.stderr()[-2000:]
            assert time.monotonic() - started < 1 + 4
            assert w.events("shutdown_grace_expired") and w.events("fleet_controller_stopped")
        finally:
            w.close()
        target_url = empty_db.cluster.url(empty_db.cluster.superuser, name)
        wait_until("the cut session to end", lambda: _reconcile_sessions(empty_db.superuser_url, name) == 0, 30)
        with psycopg.connect(target_url) as conn:
            has_history = conn.execute("SELECT to_regclass('reconciler.history') IS NOT NULL").fetchone()
            history = conn.execute("SELECT count(*) > 0 FROM reconciler.history").fetchone() \
                if has_history == (True,) else (False,)
            jobs = conn.execute("SELECT count(*) FROM public.scheduled_jobs").fetchone()
    assert history is not None and history[0] is not True
    assert jobs == (0,)
