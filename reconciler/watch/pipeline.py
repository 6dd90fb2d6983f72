"""`reconcile --watch` watches the pipeline too: verify's checks as Prometheus metrics and state changes.

Where it sits: every `verify_interval` (default: every cycle) the controller (`controller.py`) gets an
evidence read from `PipelineMonitor.start(manifest)`, lets it ride on the cycle's own read (its plan or
apply: one connection, no round trip more, but one after an apply's COMMIT) and hands it to `observe`,
which runs `verify.run_checks` and turns the evidence and the results into gauges and counters. The
reader and the checks are `reconcile verify`'s, so both speak one vocabulary: the `check` label is the
check's name in `reconcile verify --format json`. `CheckStates` remembers each check's status and
reports the changes (logged as `pipeline_check_changed`; the controller passes them on to
`notify.Notices`).

Failing checks are facts about the scheduler, not about this process: they never touch liveness or
readiness. A verification that cannot read the database is counted and logged; the cycle's own result
is unchanged (the cycle itself reports a database that is down).

No secret value reaches a metric: labels are check and trigger names, status classes and nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from reconciler.model import Plan

if TYPE_CHECKING:
    from reconciler.verify.read import EvidenceRead

log = structlog.get_logger("reconciler.pipeline")

#: Status classes of `reconciler_trigger_http_responses_total`; `error` is a request with no HTTP answer
#: (timed out, connection refused, unresolvable host).
HTTP_CLASSES = ("2xx", "3xx", "4xx", "5xx", "error")


@dataclass(frozen=True, slots=True)
class Transition:
    """One check whose status changed. `previous` is None the first time a check is seen."""

    check: str
    previous: str | None
    status: str
    summary: str

    @property
    def failing(self) -> bool:
        return self.status == "fail"

    @property
    def flipped(self) -> bool:
        """Failing ↔ not failing (what notifications are about); pass ↔ warn or skip is only logged.
        A check first seen failing counts: a controller that starts against a broken pipeline says so."""
        if self.previous is None:
            return self.failing
        return (self.previous == "fail") != self.failing


class CheckStates:
    """The last status of every check; `update` returns what changed since the previous call."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}

    def update(self, results: Iterable[Any]) -> list[Transition]:
        seen: dict[str, str] = {}
        changes = []
        for r in results:
            status = r.status.value
            seen[r.name] = status
            previous = self.status.get(r.name)
            if previous != status:
                changes.append(Transition(r.name, previous, status, r.summary))
        self.status = seen  # a check that disappeared (trigger removed from the manifest) is forgotten
        return changes


def http_class(status_code: int | None) -> str:
    if status_code is None:
        return "error"
    if 200 <= status_code < 600:
        return f"{status_code // 100}xx"
    return "error"


class PipelineMetrics:
    """The pipeline's metrics, registered on the controller's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.check = Gauge("reconciler_pipeline_check",
                           "1 when the verify check passes (pass, warn or skip), 0 when it fails; the label is "
                           "the check's name in `reconcile verify --format json`.", ["check"], registry=registry)
        self.verifications = Counter("reconciler_pipeline_verifications",
                                     "Pipeline verifications by result (ok: evidence read and judged; error: "
                                     "the evidence could not be read).", ["result"], registry=registry)
        self.verified_at = Gauge("reconciler_pipeline_last_verified_timestamp_seconds",
                                 "Unix time of the last pipeline verification that read its evidence.",
                                 registry=registry)
        self.trigger_last_success = Gauge("reconciler_trigger_last_success_timestamp_seconds",
                                          "End time of the trigger's newest succeeded pg_cron run "
                                          "(cron.job_run_details).", ["trigger"], registry=registry)
        self.http_responses = Counter("reconciler_trigger_http_responses",
                                      "HTTP outcomes of the trigger's requests (net._http_response), by status "
                                      "class; error = no HTTP answer.", ["trigger", "code_class"],
                                      registry=registry)
        self.http_status = Gauge("reconciler_trigger_last_http_status_code",
                                 "Status code of the newest response to the trigger's requests; 0 when it got "
                                 "no HTTP answer (timeout, refused).", ["trigger"], registry=registry)
        self.queue_depth = Gauge("reconciler_pg_net_queue_depth",
                                 "Requests waiting in net.http_request_queue (read up to 2,000).", registry=registry)
        self.executions_last = Gauge("reconciler_job_executions_last_timestamp_seconds",
                                     "started_at of the newest public.job_executions row seen.", registry=registry)
        self.executions_recent = Gauge("reconciler_job_executions_recent",
                                       "job_executions rows started within the verify window (two periods of "
                                       "the slowest trigger).", registry=registry)
        self.stale_jobs = Gauge("reconciler_scheduled_jobs_stale",
                                "Active scheduled_jobs whose last_run_at is older than two periods of their "
                                "schedule (or that never ran).", registry=registry)
        for result in ("ok", "error"):
            self.verifications.labels(result)


class PipelineMonitor:
    """Reads the evidence, runs the verify checks and exports them; one instance per controller."""

    def __init__(self, registry: CollectorRegistry, verify_interval: float | None = None) -> None:
        self.metrics = PipelineMetrics(registry)
        self.states = CheckStates()
        self.verify_interval = verify_interval
        self._last: float | None = None
        self._checks: set[str] = set()
        self._triggers: set[str] = set()
        self._counted: dict[str, set[int]] = {}  # trigger -> response ids already counted
        self._newest: dict[str, float] = {}  # gauge key -> newest timestamp exported (never moves back)

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.verify_interval is None or self._last is None or now - self._last >= self.verify_interval

    def start(self, manifest: Any) -> EvidenceRead | None:
        """This cycle's evidence read (a `verify.read.EvidenceRead`) when a verification is due, else None.

        The controller hands it to its own read (`apply.read_and_plan` or `apply.apply`) as the rider:
        the evidence comes over the cycle's one connection, in the plan's round trips (one more after an
        apply's COMMIT), and `observe` judges it."""
        from reconciler.verify.read import EvidenceRead, declared_triggers

        return EvidenceRead(declared_triggers(manifest)) if self.due() else None

    def observe(self, read: EvidenceRead | None, plan: Plan | None, manifest_name: str = "scheduler.yaml",
                secrets: Sequence[str] = ()) -> list[Transition] | None:
        """Judge what `read` (from `start`) got; returns the check transitions (None when nothing was due,
        the cycle stopped before the evidence was read, or the read failed)."""
        if read is None:
            return None
        if read.error is not None:
            self._last = time.monotonic()
            self.metrics.verifications.labels("error").inc()
            log.warning("pipeline_verify_failed", error=_scrub(read.error.one_line(), secrets))
            return None
        if read.evidence is None:  # the cycle failed before the read finished: still due next cycle
            return None
        self._last = time.monotonic()
        return self.judge(dataclasses.replace(read.evidence, plan=plan, manifest_name=manifest_name), secrets)

    def judge(self, evidence: Any, secrets: Sequence[str] = ()) -> list[Transition]:
        """Run the checks over `evidence`, export everything, log and return the state changes."""
        from reconciler import verify

        results = verify.run_checks(evidence)
        self.export(evidence, results)
        changes = self.states.update(results)
        for t in changes:
            event = log.warning if t.failing else log.info
            event("pipeline_check_changed", check=t.check, previous=t.previous or "unknown", status=t.status,
                  summary=_scrub(t.summary, secrets))
        return changes

    def export(self, ev: Any, results: Sequence[Any]) -> None:
        from reconciler import verify

        m = self.metrics
        names = {r.name for r in results}
        for gone in self._checks - names:
            m.check.remove(gone)
        self._checks = names
        for r in results:
            m.check.labels(r.name).set(0 if r.status is verify.Status.FAIL else 1)

        triggers = {t.name for t in ev.declared}
        for gone in self._triggers - triggers:
            for metric in (m.trigger_last_success, m.http_status):
                _remove(metric, gone)
            for cls in HTTP_CLASSES:
                _remove(m.http_responses, gone, cls)
            self._counted.pop(gone, None)
            self._newest.pop("run:" + gone, None)
        self._triggers = triggers
        for trig in ev.declared:
            self._export_trigger(ev, trig)

        m.queue_depth.set(sum(1 for r in ev.requests if r.queued))
        if ev.executions:
            m.executions_last.set(self._forward("executions", max(e.started_at for e in ev.executions)))
        m.executions_recent.set(len(ev.executions))
        m.stale_jobs.set(verify.overdue_jobs(ev.scheduled_jobs, ev.now))
        m.verifications.labels("ok").inc()
        m.verified_at.set(time.time())

    def _forward(self, key: str, when: datetime) -> float:
        """A timestamp that only moves forward: the reader looks back a window only, so a run or an
        execution seen in an earlier cycle may no longer be in this one's evidence."""
        self._newest[key] = max(self._newest.get(key, 0.0), when.timestamp())
        return self._newest[key]

    def _export_trigger(self, ev: Any, trig: Any) -> None:
        from reconciler import verify

        m = self.metrics
        job = verify.job_by_name(ev, trig.name)
        if job is not None:
            succeeded = [r for r in verify.runs_of(ev, job.jobid) if r.status == "succeeded"]
            if succeeded:
                newest = max((r.end_time or r.start_time) for r in succeeded)
                m.trigger_last_success.labels(trig.name).set(self._forward("run:" + trig.name, newest))
        if trig.path is None:
            return
        for cls in HTTP_CLASSES:
            m.http_responses.labels(trig.name, cls)
        responses = verify.trigger_responses(ev, trig)
        counted = self._counted.setdefault(trig.name, set())
        for resp in responses:
            if resp.id not in counted:
                m.http_responses.labels(trig.name, http_class(resp.status_code)).inc()
        # only ids still in the window can be seen again: the set stays as small as the window
        self._counted[trig.name] = {r.id for r in responses}
        if responses:
            m.http_status.labels(trig.name).set(responses[0].status_code or 0)


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def _scrub(text: str, secrets: Sequence[str]) -> str:
    from reconciler.secret_value import scrub

    return scrub(text, secrets)


def secret_texts(values: Mapping[str, Any]) -> list[str]:
    """The resolved secret values as text, for scrubbing (never logged or exported themselves)."""
    return [v.reveal() for v in values.values()]
