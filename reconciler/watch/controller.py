"""`reconcile --watch`: the long-running loop that notices drift and corrects (or reports) it.

Each cycle: reload the manifest if its files changed (an invalid edit is reported and the last valid
manifest kept), resolve secrets, read, plan, then apply (with --apply) or only report. Cycles never
overlap; they are spaced by the interval with a little jitter. Retryable errors (database down) back
off exponentially from about 1 s up to the interval; permanent ones are reported once per interval; a
cycle skipped because another replica holds the lock simply waits for the next interval. SIGTERM/SIGINT finish the
running cycle and exit 0; a cycle still waiting for the database after lifecycle.SHUTDOWN_GRACE seconds has its waits
ended (engine/deadline.py), so the process stops within the grace period. SIGHUP starts a cycle now.
Every wait for the database ends at the client-side deadline; a cycle running longer than `stuck_after`
(half that deadline, at most STUCK_AFTER) makes /readyz answer 503 until it ends.
Health, readiness and Prometheus metrics are served over HTTP from a side thread. Each cycle (or every
--verify-interval) also verifies the pipeline itself (`watch.pipeline`: verify's checks as metrics),
reading the evidence over the cycle's one connection, in the plan's round trips (one more after an
apply's COMMIT); changes of state are sent to the --notify webhooks (`notify`, from its own thread).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from reconciler import kinds
from reconciler.engine import deadline
from reconciler.engine import session as run
from reconciler.errors import LockHeld, ManifestError, ReconcilerError
from reconciler.kinds.base import Capabilities, PlanOptions
from reconciler.model import MUTATING, Plan
from reconciler.util.backoff import next_delay
from reconciler.util.files import signature as file_signature
from reconciler.util.version import package_version
from reconciler.watch import lifecycle
from reconciler.watch.notify import Notices, Notifier
from reconciler.watch.pipeline import PipelineMonitor, secret_texts

if TYPE_CHECKING:
    from reconciler.manifest import Manifest
    from reconciler.verify.read import EvidenceRead

#: Every kind, for the drift gauge's labels.
KINDS = tuple(kind.name for kind in kinds.REGISTRY)

log = structlog.get_logger("reconciler.watch.controller")
#: Every cycle's result label (cycle_result, plus the failures).
RESULTS = ("success", "drift", "pending", "manifest_invalid", "error", "skipped")

#: A cycle running longer than this (or half the client-side deadline, when shorter) reports not ready.
STUCK_AFTER = 10.0


@dataclass
class Settings:
    files: Sequence[str]
    url: str
    apply: bool = False
    prune: bool = False
    interval: float = 60.0
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    lock_timeout: float | None = None
    statement_timeout: float | None = 30.0
    jitter: float = 0.1
    min_backoff: float = 1.0
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    verify: bool = True  # run verify's checks after each cycle (or every verify_interval) and export them
    verify_interval: float | None = None
    notify: Sequence[str] = ()
    notify_failures: int = 3  # failed cycles in a row before a notification


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cycles = Counter("reconciler_cycles", "Reconcile cycles by result (" + ", ".join(RESULTS) + ").",
                              ["result"], registry=self.registry)
        self.duration = Histogram("reconciler_cycle_duration_seconds", "Duration of one reconcile cycle.",
                                  registry=self.registry,
                                  buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.drifted = Gauge("reconciler_drifted_resources", "Resources whose live state differs from the manifest.",
                             ["kind"], registry=self.registry)
        self.applied = Counter("reconciler_changes_applied", "Changes applied, by kind and action.",
                               ["kind", "action"], registry=self.registry)
        self.last_success = Gauge("reconciler_last_success_timestamp_seconds",
                                  "Unix time of the last successful cycle.", registry=self.registry)
        self.lock_contention = Counter("reconciler_lock_contention", "Cycles skipped because another reconciler held the lock.",
                                       registry=self.registry)
        self.manifest_valid = Gauge("reconciler_manifest_valid", "1 when the manifest on disk is valid.",
                                    registry=self.registry)
        self.drift_corrected = Counter("reconciler_drift_corrected", "Changes that corrected drift (changed outside "
                                       "git since the last apply, or without a record), by kind.", ["kind"],
                                       registry=self.registry)
        for result in RESULTS:
            self.cycles.labels(result)
        for kind in KINDS:
            self.drifted.labels(kind)
            self.drift_corrected.labels(kind)
            for action in sorted(MUTATING):  # zero from the start, so rate() and dashboards see them
                self.applied.labels(kind, action.value)


class Controller:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.lifecycle = lifecycle.Lifecycle(log)
        self.stop, self.wake = self.lifecycle.stop, self.lifecycle.wake
        self.started = time.monotonic()
        self.last_cycle_started: float | None = None
        self.cycle_running = False
        self.stuck_after = min(STUCK_AFTER, deadline.answer_timeout(settings.statement_timeout,
                                                                    settings.lock_timeout) / 2)
        self.last_cycle_ok = False
        self.last_error: str | None = None  # the last attempted cycle's one-line error: /readyz says it
        self.manifest: Manifest | None = None
        self.manifest_error: str | None = None
        self._manifest_signature: tuple[Any, ...] | None = None
        self._failures = 0
        self._server: ThreadingHTTPServer | None = None
        self.pipeline = PipelineMonitor(self.metrics.registry, settings.verify_interval) if settings.verify else None
        self.notices = Notices(Notifier(settings.notify), settings.notify_failures)
        self._secrets: list[str] = []
        #: The last report-mode cycle's capabilities: the next cycle's read revalidates them in its one round trip.
        self._capabilities: Capabilities | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def run(self) -> int:
        self.lifecycle.install_signals()
        self._serve_http()
        self.notices.notifier.start()
        self.lifecycle.watch_grace()
        log.info("controller_started", interval=self.settings.interval, apply=self.settings.apply,
                 http_port=self.http_port, files=list(self.settings.files))
        try:
            while not self.stop.is_set():
                # cleared before the cycle, so a SIGHUP that arrives during it starts the next one at once
                self.wake.clear()
                delay = self.cycle()
                self.lifecycle.sleep(delay)
        finally:
            self.lifecycle.loop_done.set()
            lifecycle.shutdown_http(self._server)
            self.notices.notifier.close()
            log.info("controller_stopped")
        return 0

    # --- one cycle -------------------------------------------------------------------------------
    def cycle(self) -> float:
        """Run one cycle; return how long to wait before the next."""
        cycle_id = uuid.uuid4().hex[:12]
        structlog.contextvars.bind_contextvars(cycle_id=cycle_id)
        self.last_cycle_started = time.monotonic()
        self.cycle_running = True
        t0 = time.perf_counter()
        summary: dict[str, Any] = {"applied": False, "drift_found": False, "counts": {}}
        result, error, retryable = "success", None, False
        plan: Plan | None = None
        evidence: EvidenceRead | None = None
        try:
            self._reload_manifest()
            if self.manifest is None:
                raise _NoManifest(f"no valid manifest: {self.manifest_error}")
            evidence = self.pipeline.start(self.manifest) if self.pipeline is not None else None
            plan = self._reconcile(evidence)
            summary["counts"] = _counts(plan)
            summary["drift_found"] = not plan.is_empty
            summary["applied"] = self.settings.apply and not plan.is_empty
            self._record_drift(plan)
            result = cycle_result(plan, applied=self.settings.apply, manifest_valid=self.manifest_error is None)
        except LockHeld as e:
            result, error, retryable = "skipped", e.one_line(), True
            self.metrics.lock_contention.inc()
            log.info("cycle_skipped_lock_held", detail=e.one_line())
        except _NoManifest as e:
            result, error = "manifest_invalid", e.one_line()
        except ReconcilerError as e:
            result, error, retryable = "error", e.one_line(), e.retryable
        # part of the cycle: done before its result is published (metrics, readiness, the summary line)
        self._watch_pipeline(result, error, plan, evidence)
        self.cycle_running = False
        duration = time.perf_counter() - t0
        self.metrics.cycles.labels(result).inc()
        self.metrics.duration.observe(duration)
        ok = result in ("success", "drift", "pending") and self.manifest_error is None
        if result in ("success", "drift", "pending"):
            self.metrics.last_success.set(time.time())
        if result != "skipped":
            self.last_cycle_ok = ok
            self.last_error = error
        if result == "error":
            self._failures = self._failures + 1 if retryable else 0
        else:
            self._failures = 0
        log.info("cycle_finished", result=result, duration_ms=round(duration * 1000, 1), error=error,
                 retryable=retryable if error else None, **summary)
        structlog.contextvars.unbind_contextvars("cycle_id")
        return self._next_delay(result, retryable)

    def _next_delay(self, result: str, retryable: bool) -> float:
        retrying = result == "error" and retryable
        delay = next_delay(self.settings.interval, jitter=self.settings.jitter, min_backoff=self.settings.min_backoff,
                           failures=self._failures, retrying=retrying)
        if retrying:
            log.info("backoff", seconds=round(delay, 2), failures=self._failures)
        return delay

    def _reload_manifest(self) -> None:
        signature = file_signature(self.settings.files)
        if signature == self._manifest_signature and (self.manifest is not None or self.manifest_error is not None):
            return
        self._manifest_signature = signature
        try:
            manifest = run.load(self.settings.files)
        except ManifestError as e:
            self.manifest_error = e.one_line()
            self.metrics.manifest_valid.set(0)
            log.error("manifest_invalid", problems=[str(p) for p in e.problems],
                      keeping="last valid manifest" if self.manifest is not None else "none")
            return
        if self.manifest is not None:
            log.info("manifest_reloaded", digest=manifest.digest())
        self.manifest, self.manifest_error = manifest, None
        self.metrics.manifest_valid.set(1)

    def _reconcile(self, evidence: EvidenceRead | None) -> Plan:
        """Read, plan and (with --apply) apply over one connection; `evidence` (the pipeline's read, when
        due) rides on it."""
        from reconciler.engine.apply import ApplyContext, apply, read_and_plan

        assert self.manifest is not None
        options = PlanOptions(prune=self.settings.prune)
        with run.session(self.manifest, self.settings.environ, self.settings.url) as session:
            values, planes = session.secret_values, session.planes
            self._secrets = self.notices.notifier.secrets = secret_texts(values)
            if not self.settings.apply:
                live, plan = read_and_plan(self.settings.url, self.manifest, values, options, planes,
                                           evidence, statement_timeout=self.settings.statement_timeout,
                                           lock_timeout=self.settings.lock_timeout, known=self._capabilities)
                self._capabilities = live.capabilities  # the next cycle reads in one round trip
                for change in plan.drifted:
                    log.warning("drift_detected", kind=change.kind, key=change.key, action=change.action.value,
                                reason=change.reason)
                return plan
            result = apply(self.settings.url, self.manifest, values, options, ApplyContext(
                lock_timeout=self.settings.lock_timeout, statement_timeout=self.settings.statement_timeout,
                command="--watch --apply" + (" --prune" if self.settings.prune else ""),
                version=package_version(), planes=planes, rider=evidence, known=self._capabilities))
            self._capabilities = result.capabilities  # the next cycle begins and reads in one round trip
        drifted = result.plan.drifted + result.corrections  # a change made during the apply is drift too
        for change in result.plan.mutating + result.corrections:
            self.metrics.applied.labels(change.kind, change.action.value).inc()
            log.info("change_applied", kind=change.kind, key=change.key, action=change.action.value,
                     reason=change.reason, history_id=result.history_id,
                     during_apply=change in result.corrections)
        for change in drifted:
            self.metrics.drift_corrected.labels(change.kind).inc()
            log.warning("drift_detected", kind=change.kind, key=change.key, action=change.action.value,
                        reason=change.reason, corrected=True, history_id=result.history_id)
        rolled_out = [c for c in result.plan.mutating if c not in drifted]
        if rolled_out:
            log.info("manifest_rolled_out", changes=len(rolled_out), history_id=result.history_id,
                     objects=[f"{c.kind} {c.key}" for c in rolled_out[:20]])
        if result.corrections:
            return Plan(result.plan.changes + result.corrections, result.plan.findings)
        return result.plan

    def _watch_pipeline(self, result: str, error: str | None, plan: Plan | None,
                        evidence: EvidenceRead | None) -> None:
        """Judge the pipeline's evidence the cycle read (if it was due and the cycle got that far); notify
        changes of state."""
        transitions = []
        if self.pipeline is not None and plan is not None:
            # after an apply the drift is corrected: only the findings remain for verify's preflight check
            judged = Plan(findings=plan.findings) if self.settings.apply else plan
            transitions = self.pipeline.observe(evidence, judged, ", ".join(self.settings.files),
                                                self._secrets) or []
        self.notices.cycle(result, error, plan, applied=self.settings.apply)
        self.notices.checks(transitions)

    def _record_drift(self, plan: Plan) -> None:
        drifted: dict[str, int] = {}
        for change in plan.mutating:
            drifted[change.kind] = drifted.get(change.kind, 0) + 1
        for kind in KINDS:
            # After an apply the drift is corrected; the gauge reports what is still different.
            self.metrics.drifted.labels(kind).set(0 if self.settings.apply else drifted.get(kind, 0))

    # --- HTTP ------------------------------------------------------------------------------------
    @property
    def http_port(self) -> int | None:
        return self._server.server_address[1] if self._server is not None else None

    def healthy(self) -> bool:
        limit = 3 * self.settings.interval + 5
        reference = self.last_cycle_started if self.last_cycle_started is not None else self.started
        return time.monotonic() - reference <= limit

    def ready(self) -> tuple[bool, str]:
        running = time.monotonic() - self.last_cycle_started if self.cycle_running and self.last_cycle_started else 0.0
        if running > self.stuck_after:
            return False, f"cycle running for {running:.0f} s (waiting for the database?)"
        if self.manifest_error is not None:
            return False, "manifest invalid: " + self.manifest_error.splitlines()[0]
        if not self.last_cycle_ok:
            return False, "last cycle did not succeed" + (f": {self.last_error}" if self.last_error else "")
        return True, "ok"

    def _serve_http(self) -> None:
        self._server = lifecycle.serve_http(self.settings.http_host, self.settings.http_port, healthy=self.healthy,
                                           ready=self.ready, registry=self.metrics.registry)


class _NoManifest(ReconcilerError):
    """No valid manifest has been loaded yet: the cycle's result is manifest_invalid."""


def cycle_result(plan: Plan, *, applied: bool, manifest_valid: bool) -> str:
    """The cycle's result label: `drift` when something changed outside git (corrected with --apply or only
    reported), `pending` for a manifest change not applied (without --apply), `success` otherwise (in sync, or
    a roll-out of the manifest); `manifest_invalid` whenever the manifest on disk is invalid (the cycle ran
    on the last valid one)."""
    if not manifest_valid:
        return "manifest_invalid"
    if plan.has_drift:
        return "drift"
    return "pending" if not applied and not plan.is_empty else "success"


def _counts(plan: Plan) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for change in plan.mutating:
        counts.setdefault(change.kind, {}).setdefault(change.action.value, 0)
        counts[change.kind][change.action.value] += 1
    return counts

