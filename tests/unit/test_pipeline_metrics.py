"""Issue 18: verify's evidence → Prometheus metrics, check-state changes and the notices they cause. No database.

The evidence builders are test_verify.py's, so the metrics are judged on the same rows as the checks.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler import verify
from reconciler.manifest import load_manifest
from reconciler.model import Action, Change, FieldChange, Plan
from reconciler.verify import ScheduledJob, Status
from reconciler.verify.checks import overdue_jobs as stale_jobs
from reconciler.watch.notify import Message, Notices, Notifier, target, webhook_url
from reconciler.watch.pipeline import CheckStates, PipelineMonitor, Transition, http_class
from tests.unit.verify_support import JOB, NOW, at, healthy, response, run

MANIFEST = Path(__file__).resolve().parents[2] / "scheduler.yaml"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(registry: CollectorRegistry) -> Samples:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(got: Samples, name: str, **labels: str) -> float | None:
    return got.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def monitor() -> tuple[PipelineMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return PipelineMonitor(registry), registry


def test_healthy_evidence_exports_every_check_passing_with_verify_s_names(monitor: Any) -> None:
    mon, registry = monitor
    ev = healthy()
    changes = mon.judge(ev)
    got = samples(registry)
    names = [r.name for r in verify.run_checks(ev)]
    assert {dict(labels)["check"] for (name, labels) in got if name == "reconciler_pipeline_check"} == set(names)
    assert all(value(got, "reconciler_pipeline_check", check=n) == 1 for n in names)
    # first sight of passing checks: logged as changes (unknown → pass), none of them a flip to notify
    assert [(t.check, t.previous, t.status) for t in changes] == [(n, None, "pass") for n in names]
    assert not any(t.flipped for t in changes)
    assert value(got, "reconciler_trigger_last_success_timestamp_seconds", trigger="master-scheduler") \
        == at(-29.95).timestamp()
    assert value(got, "reconciler_trigger_http_responses_total", trigger="master-scheduler", code_class="2xx") == 2
    assert value(got, "reconciler_trigger_http_responses_total", trigger="master-scheduler", code_class="4xx") == 0
    assert value(got, "reconciler_trigger_last_http_status_code", trigger="master-scheduler") == 200
    assert value(got, "reconciler_pg_net_queue_depth") == 0
    assert value(got, "reconciler_scheduled_jobs_stale") == 0
    assert value(got, "reconciler_job_executions_last_timestamp_seconds") == at(-29.5).timestamp()
    assert value(got, "reconciler_job_executions_recent") == 1
    assert value(got, "reconciler_pipeline_verifications_total", result="ok") == 1


def test_a_401_fails_the_http_check_counts_4xx_once_and_is_one_flip(monitor: Any) -> None:
    mon, registry = monitor
    mon.judge(healthy())
    broken = healthy(runs=(run(3, -2), run(2, -30), run(1, -90)),
                     responses=(response(3, -1.5, 401), response(2, -29.5), response(1, -89.5)))
    changes = mon.judge(broken)
    mon.judge(broken)  # the same evidence again: nothing changes, nothing is counted twice
    got = samples(registry)
    assert value(got, "reconciler_pipeline_check", check="master-scheduler: http") == 0
    assert value(got, "reconciler_trigger_last_http_status_code", trigger="master-scheduler") == 401
    assert value(got, "reconciler_trigger_http_responses_total", trigger="master-scheduler", code_class="4xx") == 1
    assert value(got, "reconciler_trigger_http_responses_total", trigger="master-scheduler", code_class="2xx") == 2
    flips = [t for t in changes if t.flipped]
    assert [(t.check, t.previous, t.status) for t in flips] == [("master-scheduler: http", "pass", "fail")]
    assert "differs from the Edge Function's CRON_SECRET" in flips[0].summary
    # executions go pass → skip: a change that is logged, not a flip
    assert any(t.check == "master-scheduler: executions" and not t.flipped for t in changes)


def test_unreachable_and_stuck_queue(monitor: Any) -> None:
    mon, registry = monitor
    queued = (verify.ObservedRequest(9, "/functions/v1/run-scheduled-jobs", at(-200)),
              verify.ObservedRequest(10, "/functions/v1/run-scheduled-jobs", at(-100)))
    mon.judge(healthy(runs=(run(2, -30), run(1, -90)), responses=(response(2, -29, None, "Couldn't connect"),),
                      requests=queued))
    got = samples(registry)
    assert value(got, "reconciler_trigger_last_http_status_code", trigger="master-scheduler") == 0
    assert value(got, "reconciler_trigger_http_responses_total", trigger="master-scheduler", code_class="error") == 1
    assert value(got, "reconciler_pg_net_queue_depth") == 2
    assert value(got, "reconciler_pipeline_check", check="master-scheduler: http") == 0


def test_disabled_trigger_keeps_its_last_success_and_a_removed_trigger_is_forgotten(monitor: Any) -> None:
    mon, registry = monitor
    mon.judge(healthy())
    # the newest run is now outside the reader's window: the timestamp does not go back or vanish
    mon.judge(healthy(cron_jobs=(replace(JOB, active=False),), runs=(), responses=()))
    got = samples(registry)
    assert value(got, "reconciler_pipeline_check", check="master-scheduler: runs") == 0
    assert value(got, "reconciler_trigger_last_success_timestamp_seconds", trigger="master-scheduler") \
        == at(-29.95).timestamp()
    mon.judge(healthy(declared=()))
    got = samples(registry)
    assert value(got, "reconciler_pipeline_check", check="master-scheduler: runs") is None
    assert value(got, "reconciler_trigger_last_success_timestamp_seconds", trigger="master-scheduler") is None
    assert value(got, "reconciler_pipeline_check", check="secret literals") == 1


def test_stale_count_matches_the_freshness_check() -> None:
    jobs = (ScheduledJob("fresh", "*/5 * * * *", True, at(-60), at(-86400)),
            ScheduledJob("stale", "*/5 * * * *", True, at(-3600), at(-86400)),
            ScheduledJob("never", "*/5 * * * *", True, None, at(-86400)),
            ScheduledJob("new", "*/5 * * * *", True, None, at(-60)),
            ScheduledJob("off", "*/5 * * * *", False, None, None))
    assert stale_jobs(jobs, NOW) == 2
    result = next(r for r in verify.run_checks(healthy(scheduled_jobs=jobs)) if r.name == "scheduled jobs: freshness")
    assert result.status is Status.FAIL and result.summary.startswith("1 stale and 1 never-run")


@pytest.mark.parametrize(("code", "cls"), [(200, "2xx"), (204, "2xx"), (301, "3xx"), (401, "4xx"), (503, "5xx"),
                                           (None, "error"), (0, "error")], ids=str)
def test_http_class(code: int | None, cls: str) -> None:
    assert http_class(code) == cls


def test_verify_interval_spaces_verifications() -> None:
    mon = PipelineMonitor(CollectorRegistry(), verify_interval=30)
    assert mon.due(100.0)
    mon._last = 100.0
    assert not mon.due(129.0) and mon.due(130.5)
    assert PipelineMonitor(CollectorRegistry()).due()


def test_observe_judges_what_the_cycle_read_and_counts_a_read_that_failed() -> None:
    """The evidence read rides on the cycle's own read; `observe` judges whatever it got."""
    from reconciler.errors import DatabaseUnavailable

    registry = CollectorRegistry()
    mon = PipelineMonitor(registry, verify_interval=60)
    read = mon.start(load_manifest([str(MANIFEST)]))
    assert read is not None and [t.name for t in read.declared] == ["master-scheduler"]
    # the cycle failed before the read finished (lock held, database down): nothing judged, still due
    assert mon.observe(read, Plan()) is None and mon.due()
    read.error = DatabaseUnavailable("the database connection was lost (reading the verify evidence)")
    assert mon.observe(read, Plan()) is None and not mon.due()  # a verification, if a failed one
    assert mon.start(load_manifest([str(MANIFEST)])) is None
    read.error, read.evidence = None, healthy()
    assert [t.check for t in mon.observe(read, Plan()) or []][:1] == ["preflight"]
    got = samples(registry)
    assert value(got, "reconciler_pipeline_verifications_total", result="error") == 1
    assert value(got, "reconciler_pipeline_verifications_total", result="ok") == 1
    assert mon.observe(None, Plan()) is None  # not due this cycle: nothing read, nothing judged


def test_check_states_report_changes_only() -> None:
    states = CheckStates()
    r = verify.CheckResult
    assert len(states.update([r("a", Status.PASS, "ok"), r("b", Status.FAIL, "bad")])) == 2
    assert states.update([r("a", Status.PASS, "ok"), r("b", Status.FAIL, "still bad")]) == []
    assert states.update([r("a", Status.WARN, "meh"), r("b", Status.PASS, "ok")]) == [
        Transition("a", "pass", "warn", "meh"), Transition("b", "fail", "pass", "ok")]


# --- notices: one message per change ----------------------------------------------------------------------


class Collect(Notifier):
    """A Notifier whose queue is a list: what `Notices` decides to send, after scrubbing."""

    def __init__(self) -> None:
        super().__init__(["http://127.0.0.1:9/hook"])
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        from reconciler.secret_value import scrub
        from reconciler.watch.notify import _scrub_tree

        self.sent.append(Message(message.event, message.severity, scrub(message.text, self.secrets),
                                 _scrub_tree(message.details, self.secrets)))


CHANGE = Change("job", "fetch_google_news", Action.UPDATE, before={"schedule": "*/7 * * * *"},
                after={"schedule": "*/5 * * * *"}, reason="changed outside git: schedule",
                fields=(FieldChange("schedule", "*/7 * * * *", "*/5 * * * *"),))


def test_notices_cycle_failing_once_then_recovery() -> None:
    notifier = Collect()
    notices = Notices(notifier, failures=3)
    for _ in range(6):
        notices.cycle("error", "cannot connect to the database", None, applied=True)
    notices.cycle("skipped", None, None, applied=True)
    notices.cycle("success", None, Plan(), applied=True)
    notices.cycle("success", None, Plan(), applied=True)
    assert [m.event for m in notifier.sent] == ["cycle_failing", "cycle_recovered"]
    assert notifier.sent[0].text == "reconcile --watch: 3 cycles in a row failed: cannot connect to the database"
    assert notifier.sent[0].payload()["text"] == notifier.sent[0].text


def test_notices_drift_without_apply_is_one_message_until_it_changes() -> None:
    notifier = Collect()
    notices = Notices(notifier)
    for _ in range(3):
        notices.cycle("drift", None, Plan((CHANGE,)), applied=False)
    notices.cycle("success", None, Plan(), applied=False)
    assert [m.event for m in notifier.sent] == ["drift_detected", "drift_cleared"]
    assert "update job fetch_google_news (changed outside git: schedule)" in notifier.sent[0].text


def test_notices_a_manifest_roll_out_is_not_drift() -> None:
    from dataclasses import replace

    from reconciler.model import Origin

    rolled = replace(CHANGE, fields=tuple(replace(f, origin=Origin.MANIFEST) for f in CHANGE.fields),
                     origin=Origin.MANIFEST, reason="changed in scheduler.yaml: schedule")
    notifier = Collect()
    notices = Notices(notifier)
    notices.cycle("success", None, Plan((rolled,)), applied=True)
    notices.cycle("success", None, Plan((rolled,)), applied=False)  # waiting without --apply: not drift either
    assert [m.event for m in notifier.sent] == ["manifest_rolled_out"]
    assert notifier.sent[0].text == "reconcile --watch applied the manifest: 1 change(s): update job fetch_google_news"


def test_notices_drift_corrected_and_check_flips_with_secrets_scrubbed() -> None:
    notifier = Collect()
    notifier.secrets = ["s3cret-value-123"]
    notices = Notices(notifier)
    notices.cycle("success", None, Plan((CHANGE,)), applied=True)
    notices.checks([Transition("master-scheduler: http", None, "pass", "ok"),
                    Transition("master-scheduler: http", "pass", "fail", "leaked s3cret-value-123 here"),
                    Transition("housekeeping", "pass", "warn", "big")])
    assert [m.event for m in notifier.sent] == ["drift_corrected", "pipeline_check_failing"]
    assert notifier.sent[0].text == ("reconcile --watch corrected drift: 1 change(s) applied: update job "
                                     "fetch_google_news (changed outside git: schedule)")
    assert "s3cret-value-123" not in repr(notifier.sent)
    assert "(sensitive)" in notifier.sent[1].text


@pytest.mark.parametrize("bad", ["hooks.slack.com/services/x", "ftp://example.test/x", "http://", "http://a b/",
                                 "http://host:port/x", ""], ids=repr)
def test_bad_webhook_urls_are_one_line_errors_without_the_url(bad: str) -> None:
    from reconciler.errors import ReconcilerError

    with pytest.raises(ReconcilerError) as e:
        webhook_url(bad)
    line = e.value.one_line()
    assert "\n" not in line and line.startswith("--notify:")
    assert not bad or bad not in line


def test_logs_name_a_webhook_by_its_host_only() -> None:
    assert target("https://hooks.slack.com/services/T000/B000/XXXXSECRET") == "https://hooks.slack.com"
    assert target("http://127.0.0.1:8123/hook?token=abc") == "http://127.0.0.1:8123"


def test_notices_without_a_notify_url_log_nothing_queued(capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler.util import logs

    logs.configure("info", json_output=True)
    try:
        notices = Notices(Notifier([]))
        notices.cycle("drift", None, Plan((CHANGE,)), applied=False)
        assert "notification_queued" not in capsys.readouterr().err
        loud = Notices(Collect())
        loud.cycle("drift", None, Plan((CHANGE,)), applied=False)
        assert "notification_queued" in capsys.readouterr().err
    finally:
        logs.configure()
