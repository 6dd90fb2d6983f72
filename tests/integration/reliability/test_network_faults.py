"""Issue 27 item 4, the CI subset of the network fault matrix: reset, silent and slow links, by phase.

`reconcile` runs as a real process through localdb's fault proxy (bench/network_faults.py has the phases
and the full matrix); the client-side deadline is shortened to 2 s with RECONCILER_ANSWER_TIMEOUT so a
silent connection costs seconds here. Every case: no partial state, the next plan agrees with what the
database holds, a history row only for a committed apply, bounded time, one line, non-zero exit on failure.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from bench.network_faults import PHASES, Target, clean_apply_state, history_rows, run_case, snapshot
from localdb.faultproxy import FaultProxy, on_query
from tests.fix_db import DbTarget
from tests.integration.apply_support import MANIFEST, query, reconcile, wait_until
from tests.integration.controller_support import watcher
from tests.integration.reliability_support import reset_to_audited

ANSWER_TIMEOUT = 2.0
#: What a failing case may take beyond the deadline: the interpreter's start, the manifest, the first
#: round trips (about 1.5 s on the 2-CPU development machine), with room for a busy CI runner.
OVERHEAD = 8.0


def _target(db: DbTarget, resetter: object) -> Target:
    return Target(db.cluster.port, db.cluster.database, db.superuser_url,
                  lambda: reset_to_audited(resetter, db.url))


@pytest.mark.parametrize("mode, phase, fault", [
    ("dry-run", "read", "silent"),
    ("apply", "begin+lock", "reset"),
    ("apply", "statements", "reset"),
    ("apply", "copy", "silent"),
    ("apply", "history", "silent"),
    ("apply", "verify", "reset"),
], ids=lambda v: str(v))
def test_a_fault_fails_bounded_with_one_line_and_leaves_nothing(audited_db: DbTarget, _resetter: object, mode: str,
                                                                phase: str, fault: str) -> None:
    outcome = run_case(_target(audited_db, _resetter), mode, phase, fault, answer_timeout=ANSWER_TIMEOUT, slow=0,
                       after={})
    assert outcome.fired, "the fault never fired: the phase's protocol message did not pass"
    assert outcome.code == 1, outcome
    assert outcome.seconds < ANSWER_TIMEOUT + OVERHEAD, outcome
    assert outcome.line.startswith("error: ") and "Traceback" not in outcome.line, outcome
    if fault == "silent":
        assert f"no answer from the server within {ANSWER_TIMEOUT:g} s" in outcome.line, outcome
    else:
        assert "the database connection was lost" in outcome.line, outcome
    assert outcome.state == "before" and outcome.history_rows == 0, outcome
    assert outcome.next_plan == 2 and outcome.consistent, outcome


def test_a_reset_during_commits_round_trip_says_the_outcome_is_unknown_and_the_next_plan_shows_it(
        audited_db: DbTarget, _resetter: object) -> None:
    """COMMIT reached the server, its answer did not reach us: committed, and the next plan says so."""
    target = _target(audited_db, _resetter)
    after = clean_apply_state(target)
    outcome = run_case(target, "apply", "commit", "reset", answer_timeout=ANSWER_TIMEOUT, slow=0, after=after)
    assert outcome.code == 1 and outcome.fired, outcome
    assert "during COMMIT" in outcome.line and "the outcome is unknown" in outcome.line, outcome
    assert "the next plan" in outcome.line, outcome
    assert outcome.state == "after" and outcome.history_rows == 1, outcome
    assert outcome.next_plan == 0 and outcome.consistent, outcome


def test_a_slow_link_succeeds(audited_db: DbTarget, _resetter: object) -> None:
    """0.2 s per round trip (the full matrix uses 1-2 s): slower, within the deadline, converged."""
    outcome = run_case(_target(audited_db, _resetter), "apply", "connect", "slow", answer_timeout=ANSWER_TIMEOUT,
                       slow=0.2, after={})
    assert outcome.code == 0, outcome
    assert outcome.history_rows == 1 and outcome.next_plan == 0, outcome


# -- a --watch controller ---------------------------------------------------------------------------------


def test_a_stuck_cycle_drops_readiness_then_the_controller_recovers_and_converges(
        audited_db: DbTarget, tmp_path: Path) -> None:
    """Silent at the history write of the first apply: /readyz 503 while stuck, the cycle fails at the
    deadline without a history row, the next cycle converges."""
    su = audited_db.superuser_url
    with FaultProxy(audited_db.cluster.port) as proxy:
        fault = proxy.arm("silent", PHASES["history"]())
        url = proxy.url(database=audited_db.cluster.database)
        with watcher(url, MANIFEST, "--apply", interval="1s", workdir=tmp_path,
                     env={"RECONCILER_ANSWER_TIMEOUT": str(ANSWER_TIMEOUT)}) as w:
            w.wait_http()
            assert fault.fired.wait(20)
            stuck = wait_until("/readyz to say the cycle is stuck",
                               lambda: (r := w.get("/readyz")).status_code == 503 and "cycle running" in r.text and r,
                               ANSWER_TIMEOUT + 5, 0.05)
            assert stuck.status_code == 503
            failed = w.wait_cycles(1, 20, result="error")[0]
            assert f"no answer from the server within {ANSWER_TIMEOUT:g} s" in failed["error"], failed
            assert failed["retryable"] is True
            assert history_rows(su) == 0  # the apply that did not commit left no history row
            w.wait_cycles(1, 30, result="success")
            wait_until("/readyz 200 again", lambda: w.status("/readyz") == 200, 10)
            assert history_rows(su) == 1
    assert reconcile(audited_db.url, "--dry-run", "--detailed-exitcode").exit_code == 0


def test_sigterm_ends_a_stuck_cycle_within_the_grace_period(audited_db: DbTarget, _resetter: object,
                                                            tmp_path: Path) -> None:
    """The deadline is long (60 s) here: only the shutdown grace (1 s) can end the stuck apply."""
    target = _target(audited_db, _resetter)
    target.reset()
    before = snapshot(audited_db.superuser_url)
    with FaultProxy(audited_db.cluster.port) as proxy:
        fault = proxy.arm("silent", on_query(r'INSERT INTO "public"\."scheduled_jobs"'))
        url = proxy.url(database=audited_db.cluster.database)
        with watcher(url, MANIFEST, "--apply", interval="1s", workdir=tmp_path,
                     env={"RECONCILER_ANSWER_TIMEOUT": "60", "RECONCILER_SHUTDOWN_GRACE": "1"}) as w:
            assert fault.fired.wait(20)
            time.sleep(0.3)
            started = time.monotonic()
            w.send(signal.SIGTERM)
            code = w.proc.wait(15)
            took = time.monotonic() - started
            assert code == 0, w.stderr()[-2000:]
            assert took < 1 + 4, took
            assert w.events("shutdown_grace_expired"), w.stderr()[-2000:]
    wait_until("the cut session to end", lambda: not _sessions(audited_db.superuser_url), 30)
    assert snapshot(audited_db.superuser_url) == before
    assert history_rows(audited_db.superuser_url) == 0


def _sessions(su: str) -> int:
    return int(query(su, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reconcile'")[0][0])
