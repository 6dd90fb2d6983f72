"""Issue 6, "Done when": `reconcile --watch` as a real process against the real throwaway database.

Every test starts the controller with `[python, -c, main()] --watch ...` (secrets from the environment,
a copy of scheduler.yaml in tmp_path, its own HTTP port), injects drift or trouble from the outside, and
watches the database, the JSON log lines on stderr and /healthz /readyz /metrics. The processes are
always killed at the end; the test that stops PostgreSQL always starts it again.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    JOB_NAMES,
    MARKERS,
    SECRET_NAMES,
    assert_converged,
    assert_ok,
    history_rows,
    reconcile,
)
from tests.integration.controller_support import (
    copy_manifest,
    disable_trigger,
    hold_reconciler_lock,
    lock_waiters,
    metric,
    object_counts,
    schedule_of,
    set_schedule,
    tamper_secret,
    trigger_active,
    wait_until,
    watcher,
    write_atomically,
)

JOB = "fetch_google_news"          # declared "*/5 * * * *"
OTHER_JOB = "fetch_rss_feeds"      # declared "*/15 * * * *"
CONVERGED_COUNTS = {"cron.job": 1, "cron.job names": 1, "scheduled_jobs": len(JOB_NAMES),
                    "scheduled_jobs names": len(JOB_NAMES), "vault.secrets": len(SECRET_NAMES),
                    "vault.secrets names": len(SECRET_NAMES)}


@pytest.fixture
def converged(audited_db: DbTarget, tmp_path: Path) -> DbTarget:
    """The runbook applied once (through the CLI), so every cycle starts from an empty plan."""
    manifest = copy_manifest(tmp_path)
    assert_ok(reconcile(audited_db.url, "--apply", manifest=manifest))
    return audited_db


def _inject_drift(su: str) -> None:
    set_schedule(su, JOB, "*/7 * * * *")
    disable_trigger(su)


def _drift_corrected(su: str) -> bool:
    return schedule_of(su, JOB) == "*/5 * * * *" and trigger_active(su) is True


# --- 1 + 5: --apply corrects drift; /metrics parses and its counters move -----------------------------------


def test_apply_corrects_injected_drift_and_counts_it(audited_db: DbTarget, tmp_path: Path) -> None:
    su = audited_db.superuser_url
    manifest = copy_manifest(tmp_path)
    with watcher(audited_db.url, manifest, "--apply", workdir=tmp_path) as w:
        first = w.wait_cycles(1, timeout=15)[0]  # from the audited state: the first cycle applies everything
        assert first["result"] == "success" and first["applied"] is True, first
        assert first["counts"]["job"] == {"create": len(JOB_NAMES)}
        assert object_counts(su) == CONVERGED_COUNTS
        w.wait_http()
        wait_until("readyz 200", lambda: w.status("/readyz") == 200, 3)
        before = w.metrics()
        cycles_before = metric(before, "reconciler_cycles_total", result="success")
        drift_before = metric(before, "reconciler_cycles_total", result="drift")
        assert cycles_before >= 1
        assert metric(before, "reconciler_changes_applied_total", kind="job", action="create") == len(JOB_NAMES)

        _inject_drift(su)
        injected = time.monotonic()
        wait_until("the drift corrected", lambda: _drift_corrected(su), timeout=10.0)
        assert time.monotonic() - injected <= 10.0  # a few 1 s cycles; the product promise is within a minute
        fixes = w.wait_event("change_applied", 3, where=lambda e: e.get("key") in (JOB, "master-scheduler")
                             and e.get("action") == "update", count=2)
        assert {e["kind"] for e in fixes} == {"job", "trigger"}
        assert all(e.get("cycle_id") for e in fixes)
        assert_converged(audited_db.url, manifest)

        after = w.metrics()
        assert metric(after, "reconciler_cycles_total", result="drift") > drift_before
        assert metric(after, "reconciler_changes_applied_total", kind="job", action="update") \
            - metric(before, "reconciler_changes_applied_total", kind="job", action="update") == 1
        assert metric(after, "reconciler_changes_applied_total", kind="trigger", action="update") \
            - metric(before, "reconciler_changes_applied_total", kind="trigger", action="update") == 1
        assert metric(after, "reconciler_cycles_total", result="error") == 0
        assert 0 <= time.time() - metric(after, "reconciler_last_success_timestamp_seconds") < 5
        assert metric(after, "reconciler_drifted_resources", kind="job") == 0
        # every kind is exported, Edge Function secrets included, even while it is in sync
        assert {dict(labels)["kind"] for (name, labels) in after if name == "reconciler_drifted_resources"} \
            == {"extension", "table", "secret", "job", "trigger", "edge_secret"}
        assert metric(after, "reconciler_manifest_valid") == 1
        assert metric(after, "reconciler_cycle_duration_seconds_count") >= 2
        assert object_counts(su) == CONVERGED_COUNTS
    finished = w.cycles()
    assert {e["result"] for e in finished} == {"success", "drift"}  # the roll-out, then the corrected drift
    for event in finished:
        assert {"cycle_id", "result", "duration_ms", "counts", "drift_found", "applied", "error"} <= event.keys()
    assert len({e["cycle_id"] for e in finished}) == len(finished)
    assert w.events("controller_started")
    assert w.non_json_lines() == []


# --- 2: without --apply drift is reported, never changed ---------------------------------------------------


def test_without_apply_drift_is_reported_not_changed_and_sigint_exits_zero(converged: DbTarget, tmp_path: Path) -> None:
    su = converged.superuser_url
    with watcher(converged.url, copy_manifest(tmp_path, "watch.yaml"), workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=10, result="success")
        _inject_drift(su)
        drifted = w.wait_cycles(2, timeout=5, result="drift")
        assert all(e["drift_found"] is True and e["applied"] is False for e in drifted)
        assert drifted[-1]["counts"] == {"job": {"update": 1}, "trigger": {"update": 1}}
        reported = {(e["kind"], e["key"], e["action"]) for e in w.events("drift_detected")}
        assert reported == {("job", JOB, "update"), ("trigger", "master-scheduler", "update")}
        samples = w.metrics()
        assert metric(samples, "reconciler_drifted_resources", kind="job") == 1
        assert metric(samples, "reconciler_drifted_resources", kind="trigger") == 1
        assert metric(samples, "reconciler_cycles_total", result="drift") >= 2
        assert sum(v for (name, _), v in samples.items() if name == "reconciler_changes_applied_total") == 0
        assert w.status("/readyz") == 200  # reporting drift is this mode's job, not a failure
        # 6 (SIGINT): exits 0 like SIGTERM, without a KeyboardInterrupt traceback
        sent = time.monotonic()
        w.send(signal.SIGINT)
        assert w.proc.wait(5) == 0
        assert time.monotonic() - sent < 5
    assert w.events()[-1]["event"] == "controller_stopped"
    assert "Traceback" not in w.stderr()
    assert schedule_of(su, JOB) == "*/7 * * * *"
    assert trigger_active(su) is False
    assert history_rows(su) and len(history_rows(su)) == 1  # only the fixture's apply
    assert not w.events("change_applied")


# --- 3: PostgreSQL stopped mid-run ------------------------------------------------------------------------


def test_database_outage_backs_off_and_recovers(converged: DbTarget, tmp_path: Path) -> None:
    su, cluster = converged.superuser_url, converged.cluster
    port = cluster.port
    counts_before = object_counts(su)
    assert counts_before == CONVERGED_COUNTS
    # a longer interval than 1 s, or backoff (capped at the interval) could not be seen to grow
    with watcher(converged.url, copy_manifest(tmp_path), "--apply", interval="4s", workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=10, result="success")
        w.wait_http()
        wait_until("readyz 200", lambda: w.status("/readyz") == 200, 3)
        try:
            cluster.down()
            assert not cluster.is_running()
            w.send(signal.SIGHUP)  # the first failing cycle now rather than up to one interval later
            backoffs = w.wait_event("backoff", timeout=12, count=3)
            assert w.alive()
            assert w.status("/readyz") == 503
            assert w.status("/healthz") == 200
            errors = w.cycles("error")
            assert errors and all("cannot connect" in e["error"] and e["retryable"] is True for e in errors)
            assert [e["failures"] for e in backoffs[:3]] == [1, 2, 3]
            delays = [e["seconds"] for e in backoffs[:3]]
            assert delays == sorted(delays) and delays[-1] > delays[0], delays
            assert delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0, delays
        finally:
            if not cluster.is_running():
                cluster.up()
        assert cluster.port == port and cluster.running_port() == port
        wait_until("readyz 200 after PostgreSQL returned", lambda: w.status("/readyz") == 200, 8)
        assert w.alive()
        assert w.cycles()[-1]["result"] == "success"
        assert w.status("/healthz") == 200
        samples = w.metrics()
        assert metric(samples, "reconciler_cycles_total", result="error") >= 3
    assert object_counts(su) == counts_before
    assert_converged(converged.url)


# --- 4: two controllers, one database -----------------------------------------------------------------------


def test_two_controllers_take_turns(converged: DbTarget, tmp_path: Path) -> None:
    su = converged.superuser_url
    manifest = copy_manifest(tmp_path)
    history_before = len(history_rows(su))
    with watcher(converged.url, manifest, "--apply", workdir=tmp_path, name="a") as a, \
            watcher(converged.url, manifest, "--apply", workdir=tmp_path, name="b") as b:
        a.wait_cycles(1, timeout=10)
        b.wait_cycles(1, timeout=10)
        # the apply's lock held elsewhere: both skip their cycles instead of waiting or failing
        with hold_reconciler_lock(su):
            _inject_drift(su)
            a.wait_event("cycle_skipped_lock_held", timeout=4)
            b.wait_event("cycle_skipped_lock_held", timeout=4)
            assert schedule_of(su, JOB) == "*/7 * * * *"
        wait_until("the drift corrected", lambda: _drift_corrected(su), timeout=3.0)
        for w in (a, b):
            samples = w.metrics()
            assert metric(samples, "reconciler_lock_contention_total") >= 1
            assert metric(samples, "reconciler_cycles_total", result="skipped") >= 1
            assert w.cycles("skipped")
        # repeated drift: each injection is corrected by exactly one of them, once
        for n in range(2):
            set_schedule(su, OTHER_JOB, f"*/{20 + n} * * * *")
            wait_until("the job schedule corrected", lambda: schedule_of(su, OTHER_JOB) == "*/15 * * * *", 3.0)
        assert a.alive() and b.alive()
        assert not a.cycles("error") and not b.cycles("error")
        # the COMMIT is visible before the cycle logs what it applied: wait for the lines, not only the rows
        wait_until("every correction logged",
                   lambda: len(a.events("change_applied") + b.events("change_applied")) >= 4, timeout=5.0)
    rows = history_rows(su)[history_before:]
    assert len(rows) == 3, [r[2] for r in rows]  # one per injection, never a second apply of the same fix
    applied = a.events("change_applied") + b.events("change_applied")
    assert sorted((e["kind"], e["key"]) for e in applied) == sorted(
        [("job", JOB), ("trigger", "master-scheduler")] + [("job", OTHER_JOB)] * 2)
    assert object_counts(su) == CONVERGED_COUNTS


# --- 6: signals ---------------------------------------------------------------------------------------------


def test_sighup_runs_a_cycle_now_and_sigterm_finishes_the_cycle(converged: DbTarget, tmp_path: Path) -> None:
    su = converged.superuser_url
    with watcher(converged.url, copy_manifest(tmp_path), "--apply", "--lock-timeout", "10", interval="30s",
                 workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=10)
        sent = time.monotonic()
        w.send(signal.SIGHUP)
        w.wait_cycles(2, timeout=2)
        assert time.monotonic() - sent < 2

        # a SIGHUP that arrives while a cycle runs is not lost: another cycle follows right after it
        with hold_reconciler_lock(su):
            w.send(signal.SIGHUP)
            wait_until("the controller waiting for the lock", lambda: lock_waiters(su) == 1, 3)
            w.send(signal.SIGHUP)
            w.wait_event("signal_handled", 3, lambda e: e.get("signal") == "SIGHUP", count=3)
            assert len(w.cycles()) == 2
        w.wait_cycles(4, timeout=2)

        # SIGTERM while a cycle waits for the lock: the cycle completes, then the process exits 0
        with hold_reconciler_lock(su):
            _inject_drift(su)
            w.send(signal.SIGHUP)
            wait_until("the controller waiting for the lock", lambda: lock_waiters(su) == 1, 3)
            w.send(signal.SIGTERM)
            w.wait_event("signal_handled", 3, lambda e: e.get("signal") == "SIGTERM")
            assert w.alive(), "exited before the running cycle finished"
            assert len(w.cycles()) == 4
        released = time.monotonic()
        assert w.proc.wait(5) == 0
        assert time.monotonic() - released < 5
    last = w.cycles()[-1]
    assert len(w.cycles()) == 5
    assert last["result"] == "drift" and last["applied"] is True  # it corrected what was changed outside git
    assert _drift_corrected(su)
    assert w.events()[-1]["event"] == "controller_stopped"


# --- 7: manifest edits on disk ------------------------------------------------------------------------------


def test_manifest_edit_is_picked_up_and_invalid_edit_keeps_the_last_valid(converged: DbTarget,
                                                                          tmp_path: Path) -> None:
    su = converged.superuser_url
    manifest = copy_manifest(tmp_path)
    data = yaml.safe_load(manifest.read_text())
    job = next(j for j in data["jobs"] if j["name"] == JOB)
    with watcher(converged.url, manifest, "--apply", workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=10, result="success")
        w.wait_http()

        job["schedule"] = "*/7 * * * *"
        write_atomically(manifest, data)
        wait_until("the DB following the edited manifest", lambda: schedule_of(su, JOB) == "*/7 * * * *", 3.0)
        w.wait_event("manifest_reloaded", timeout=2)
        assert w.status("/readyz") == 200

        job["schedule"] = "*/7 * * *"  # four fields
        write_atomically(manifest, data)
        invalid = w.wait_event("manifest_invalid", timeout=3)[0]
        assert any("schedule" in p for p in invalid["problems"]), invalid
        wait_until("readyz 503", lambda: w.status("/readyz") == 503, 3)
        assert "manifest invalid" in w.get("/readyz").text
        assert metric(w.metrics(), "reconciler_manifest_valid") == 0
        # cycles go on with the last valid manifest: drift is still corrected against it
        seen = len(w.cycles())
        set_schedule(su, OTHER_JOB, "*/30 * * * *")
        wait_until("drift corrected by the kept manifest", lambda: schedule_of(su, OTHER_JOB) == "*/15 * * * *", 3)
        w.wait_cycles(seen + 1, timeout=3)
        assert schedule_of(su, JOB) == "*/7 * * * *"
        assert w.status("/readyz") == 503
        assert len(w.events("manifest_invalid")) == 1  # reported once, not every cycle
        # a cycle on the kept manifest is not a success while the file on disk is invalid
        assert w.cycles()[-1]["result"] == "manifest_invalid"
        assert metric(w.metrics(), "reconciler_cycles_total", result="manifest_invalid") >= 1

        job["schedule"] = "*/9 * * * *"
        write_atomically(manifest, data)
        wait_until("readyz 200 again", lambda: w.status("/readyz") == 200, 3)
        wait_until("the DB following the fixed manifest", lambda: schedule_of(su, JOB) == "*/9 * * * *", 3.0)
        assert len(w.events("manifest_reloaded")) == 2
        assert metric(w.metrics(), "reconciler_manifest_valid") == 1
    assert not w.cycles("error")


# --- 8: secret values never logged --------------------------------------------------------------------------


def test_secret_values_never_appear_in_logs(converged: DbTarget, tmp_path: Path) -> None:
    su = converged.superuser_url
    with watcher(converged.url, copy_manifest(tmp_path), "--apply", interval="0.2s", workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=10)
        for n in range(2):
            for name in SECRET_NAMES:
                tamper_secret(su, name, f"tampered-{n}-{name}")
            w.wait_event("change_applied", timeout=3, where=lambda e: e.get("kind") == "secret",
                         count=(n + 1) * len(SECRET_NAMES))
        w.wait_cycles(15, timeout=10)
        _inject_drift(su)  # a non-secret change too, so a trigger command with its headers is rendered
        wait_until("the drift corrected", lambda: _drift_corrected(su), timeout=3.0)
        w.wait_cycles(len(w.cycles()) + 2, timeout=3)
        text = w.get("/metrics").text + w.get("/readyz").text + w.get("/healthz").text
    out = w.stderr() + w.stdout() + text
    assert len(w.cycles()) >= 15
    assert len(w.events("change_applied")) >= 2 * len(SECRET_NAMES)
    for marker in MARKERS:
        assert marker not in out
    assert "tampered-" not in out
    with psycopg.connect(su, autocommit=True) as conn:
        plain = conn.execute("SELECT string_agg(plan_text || changes::text, '') FROM reconciler.history").fetchone()
    for marker in MARKERS:
        assert marker not in plain[0]


# --- issue 25: a manifest roll-out is not drift; a change in the database is ---------------------------------


def test_a_manifest_roll_out_is_success_and_a_database_edit_is_drift(converged: DbTarget, tmp_path: Path) -> None:
    su = converged.superuser_url
    manifest = copy_manifest(tmp_path)
    data = yaml.safe_load(manifest.read_text())
    with watcher(converged.url, manifest, "--apply", workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=10, result="success")
        w.wait_http()
        next(j for j in data["jobs"] if j["name"] == JOB)["schedule"] = "*/7 * * * *"
        write_atomically(manifest, data)
        wait_until("the manifest rolled out", lambda: schedule_of(su, JOB) == "*/7 * * * *", 5.0)
        rolled = w.wait_event("manifest_rolled_out", timeout=3)[0]
        assert rolled["objects"] == [f"job {JOB}"]
        samples = w.metrics()
        assert metric(samples, "reconciler_cycles_total", result="drift") == 0
        assert metric(samples, "reconciler_drift_corrected_total", kind="job") == 0
        assert not w.events("drift_detected")
        assert w.cycles("success")

        set_schedule(su, OTHER_JOB, "*/30 * * * *")  # by hand, outside git
        wait_until("the drift corrected", lambda: schedule_of(su, OTHER_JOB) == "*/15 * * * *", 5.0)
        (detected,) = w.wait_event("drift_detected", timeout=3)
        assert (detected["kind"], detected["key"], detected["corrected"]) == ("job", OTHER_JOB, True)
        assert detected["reason"].startswith("changed outside git since apply #")
        drifted = w.wait_cycles(1, timeout=3, result="drift")
        assert drifted[0]["applied"] is True
        samples = w.metrics()
        assert metric(samples, "reconciler_cycles_total", result="drift") == 1
        assert metric(samples, "reconciler_drift_corrected_total", kind="job") == 1
        assert metric(samples, "reconciler_drift_corrected_total", kind="trigger") == 0
        assert len(w.events("manifest_rolled_out")) == 1
    assert not w.cycles("error")
