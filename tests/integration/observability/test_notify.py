"""Issue 18, point 5: `reconcile --watch --notify URL` against a local receiver, without waiting for pg_cron.

Drift corrected (one message per apply), the database gone for several cycles (one "failing" message, not
one per cycle) and back (one "recovered"), a receiver that is down never slowing the cycles, and user
mistakes with --notify as one-line errors.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import MARKERS, assert_ok, reconcile
from tests.integration.controller_support import (
    copy_manifest,
    disable_trigger,
    set_schedule,
    trigger_active,
    wait_until,
    watcher,
)
from tests.integration.observability_support import Receiver


def test_drift_corrected_failing_and_recovered_each_notified_once(audited_db: DbTarget, tmp_path: Path) -> None:
    su, cluster = audited_db.superuser_url, audited_db.cluster
    manifest = copy_manifest(tmp_path)
    assert_ok(reconcile(audited_db.url, "--apply", manifest=manifest))
    receiver = Receiver()
    try:
        with watcher(audited_db.url, manifest, "--apply", "--notify", receiver.url, "--notify-after", "2",
                     workdir=tmp_path) as w:
            w.wait_cycles(2, timeout=15, result="success")
            set_schedule(su, "fetch_google_news", "*/7 * * * *")
            disable_trigger(su)
            wait_until("the drift corrected", lambda: trigger_active(su) is True, 10)
            wait_until("the drift_corrected message", lambda: receiver.events("drift_corrected"), 10)
            try:
                cluster.down()
                w.send(signal.SIGHUP)
                w.wait_cycles(5, timeout=20, result="error")
                wait_until("the cycle_failing message", lambda: receiver.events("cycle_failing"), 10)
            finally:
                if not cluster.is_running():
                    cluster.up()
            wait_until("the cycle_recovered message", lambda: receiver.events("cycle_recovered"), 20)
            w.wait_cycles(len(w.cycles("success")) + 3, timeout=10, result="success")
        events = [b["event"] for b in receiver.bodies if not b["event"].startswith("pipeline_check_")]
        assert events == ["drift_corrected", "cycle_failing", "cycle_recovered"], events
        corrected = receiver.events("drift_corrected")[0]
        assert "update job fetch_google_news" in corrected["text"] and "update trigger master-scheduler" in corrected["text"]
        failing = receiver.events("cycle_failing")[0]
        assert failing["text"].startswith("reconcile --watch: 2 cycles in a row failed: cannot connect")
        assert failing["severity"] == "critical" and failing["source"] == "reconcile --watch"
        raw = b"".join(receiver.raw).decode()
        for marker in MARKERS:
            assert marker not in raw
        assert "receiver-token-4f1c" not in w.stderr()
    finally:
        receiver.close()


def test_a_receiver_that_is_down_never_slows_the_cycles(audited_db: DbTarget, tmp_path: Path) -> None:
    manifest = copy_manifest(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    with watcher(audited_db.url, manifest, "--apply", "--notify", dead, interval="0.2s", workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=15)  # the first cycle applies everything: a drift_corrected message to send
        started = time.monotonic()
        w.wait_cycles(6, timeout=10)
        assert time.monotonic() - started < 5  # retries with backoff run in the sender thread, not the cycle
        failed = w.wait_event("notification_failed", timeout=15)[0]
        assert failed["attempts"] == 4 and failed["target"] == dead.rsplit("/", 1)[0]
        assert w.alive()


@pytest.mark.parametrize(("args", "message"), [
    (["--watch", "--notify", "hooks.slack.com/services/x"], "error: --notify: the URL's scheme must be http or https"),
    (["--watch", "--notify", "http://host:port/x"], "error: --notify: not a URL"),
    (["--notify", "https://example.test/hook"], "error: --notify and --verify-interval go with --watch"),
    (["--watch", "--verify-interval", "0"], "error: Invalid value for '--verify-interval'"),
], ids=["no-scheme", "bad-port", "without-watch", "zero-interval"])
def test_notify_mistakes_are_one_line_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = reconcile("postgresql://127.0.0.1:1/none", *args, manifest=copy_manifest(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
