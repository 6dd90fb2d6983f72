"""`reconcile --watch --targets FILE`: the long-running controller of a fleet (or of one shard of it).
SIGTERM: running targets get the shutdown grace (watch.lifecycle), then their waits are ended.

One scheduling thread and a bounded pool of `--parallel` workers. Every target has its own schedule:
its next run is its interval with jitter after a success, an exponential backoff (about 1 s doubling up
to the interval) after a retryable error (database down), the interval after a permanent one or after
finding the target's lock held by another reconciler (a replica overlapping during a rollout).
A run is `runner.run_target`: its own connection with a short connect timeout and a statement timeout,
closed when the run ends, so a dead or slow target occupies one worker for a bounded time and never
delays the others, and no connection is held between runs.

The targets file is read again when it changes (and on SIGHUP), and the generators are asked again every
--refresh-interval, on a thread of its own: targets appear and disappear without a restart, and a removed target's metric series
go with it. An invalid edit is logged and the last valid list kept; a generator that fails this time
removes none of its targets (they stay until it answers again). With sharding configured
(fleet.shard: RECONCILE_SHARD_REPLICAS and the pod's ordinal) only this replica's targets are taken.
/readyz is 200 once every target has been attempted at least once. Metrics are labelled by target only
(docs/fleet-operations.md lists them and their cardinality). With --verify-interval each target's pipeline
is verified on its own run's connection, staggered over the interval (`fleet.verification`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

import structlog

from reconciler.errors import ManifestError, ReconcilerError
from reconciler.fleet import runner
from reconciler.fleet.generator_cache import GeneratorCache
from reconciler.fleet.metrics import FleetMetrics, metric_label
from reconciler.fleet.shard import shard_from_environ, shard_of
from reconciler.fleet.verification import FleetVerification, rejected_by_edge_function
from reconciler.kinds.base import PlanOptions
from reconciler.util.backoff import next_delay
from reconciler.util.files import signature as file_signature
from reconciler.watch import lifecycle

if TYPE_CHECKING:
    from reconciler.fleet.runner import TargetResult
    from reconciler.fleet.target import Target
    from reconciler.manifest import Manifest
    from reconciler.secret_value import SecretValue
    from reconciler.verify.read import EvidenceRead

log = structlog.get_logger("reconciler.fleet.controller")

@dataclass
class FleetSettings:
    targets_file: str
    files: tuple[str, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict)
    apply: bool = False
    prune: bool = False
    interval: float = 60.0
    refresh_interval: float = 300.0
    parallel: int = 4
    selected: tuple[str, ...] = ()
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    lock_timeout: float | None = None
    statement_timeout: float | None = runner.DEFAULT_STATEMENT_TIMEOUT
    connect_timeout: int = runner.DEFAULT_CONNECT_TIMEOUT
    jitter: float = 0.1
    min_backoff: float = 1.0
    verify_interval: float | None = None


@dataclass
class _Scheduled:
    target: Target
    due: float
    failures: int = 0
    attempted: bool = False
    running: bool = False


class FleetController:
    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self.metrics = FleetMetrics()
        self.lifecycle = lifecycle.Lifecycle(log)
        #: each target's capabilities after its last run, forgotten when the target leaves the fleet
        self.capabilities = runner.CapabilitiesCache()
        self.shard = shard_from_environ(settings.environ)
        self.manifests = runner.ManifestCache()
        self.generator_cache = GeneratorCache(replicas=self.shard[1] if self.shard else 1)
        self.verification = (FleetVerification(self.metrics.registry, settings.verify_interval, apply=settings.apply)
                             if settings.verify_interval else None)
        self.started = time.monotonic()
        self.last_tick = self.started
        self.scheduled: dict[str, _Scheduled] = {}
        self.targets_error: str | None = None
        self._loaded = False
        self._targets_signature: object = None
        self._refreshed_at = float("-inf")
        self._reading: Future[None] | None = None
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._options = PlanOptions(prune=settings.prune)
        ordinal, replicas = self.shard or (0, 1)
        self.metrics.shard.labels(str(ordinal), str(replicas)).set(1)
        self.metrics.shard_replicas.set(replicas)
        self.metrics.interval.set(settings.interval)
        self.metrics.ready.labels(str(ordinal)).set_function(lambda: 1.0 if self.ready()[0] else 0.0)

    # --- lifecycle -------------------------------------------------------------------------------
    def run(self) -> int:
        self.lifecycle.install_signals()
        self.lifecycle.watch_grace()
        self._server = lifecycle.serve_http(self.settings.http_host, self.settings.http_port, healthy=self.healthy,
                                           ready=self.ready, registry=self.metrics.registry)
        ordinal, replicas = self.shard or (0, 1)
        log.info("fleet_controller_started", interval=self.settings.interval, apply=self.settings.apply,
                 parallel=self.settings.parallel, targets_file=self.settings.targets_file,
                 shard_ordinal=ordinal if self.shard else None, shard_replicas=replicas if self.shard else None,
                 http_port=self._server.server_address[1] if self._server is not None else None)
        pool = ThreadPoolExecutor(max_workers=self.settings.parallel, thread_name_prefix="target")
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="targets")
        try:
            while not self.lifecycle.stop.is_set():
                self.last_tick = time.monotonic()
                if self.lifecycle.wake.is_set():  # SIGHUP: read the targets again and run every target now
                    self.lifecycle.wake.clear()
                    self._refreshed_at = float("-inf")
                    with self._lock:
                        for state in self.scheduled.values():
                            state.due = min(state.due, time.monotonic())
                self._refresh_targets(reader)
                self._start_due(pool)
                self._finished.wait(self._wait_time())
                self._finished.clear()
        finally:
            reader.shutdown(wait=False, cancel_futures=True)
            pool.shutdown(wait=True)  # the running targets finish (within the grace); nothing new starts
            self.lifecycle.loop_done.set()
            lifecycle.shutdown_http(self._server)
            log.info("fleet_controller_stopped")
        return 0

    def _wait_time(self) -> float:
        """How long the scheduling loop may sleep: until the next target is due, at most 0.5 s.

        With every worker busy nothing can start, however overdue: the loop waits (a finished run wakes
        it at once) instead of spinning on a target it cannot hand out.
        """
        with self._lock:
            idle = [s.due for s in self.scheduled.values() if not s.running]
            busy = sum(s.running for s in self.scheduled.values())
        if busy >= self.settings.parallel:
            return 0.5
        next_due = min(idle, default=time.monotonic() + 1.0)
        return max(0.0, min(next_due - time.monotonic(), 0.5))

    # --- targets ---------------------------------------------------------------------------------
    def _refresh_targets(self, reader: ThreadPoolExecutor) -> None:
        """Start reading the targets when the file changed or the generators are due (one read at a time).

        The read runs on its own thread: a slow Management API delays the list's update, never the runs.
        """
        if self._reading is not None and not self._reading.done():
            return
        signature = file_signature([self.settings.targets_file])
        now = time.monotonic()
        if self._loaded and signature == self._targets_signature and now - self._refreshed_at < \
                self.settings.refresh_interval:
            return
        self._targets_signature, self._refreshed_at = signature, now
        self._reading = reader.submit(self._read_targets)
        self._reading.add_done_callback(lambda _: self._finished.set())

    def _read_targets(self) -> None:
        """Read the targets file and run the generators (on the "targets" thread), then adopt the list."""
        from reconciler.fleet.targets_file import read_targets

        try:
            listing = read_targets(self.settings.targets_file, self.settings.environ, cache=self.generator_cache,
                                   shard=self.shard)
        except ManifestError as e:
            self.targets_error = "; ".join(e.one_line().splitlines())
            self.metrics.targets_file_valid.set(0)
            log.error("targets_invalid", problems=[str(p) for p in e.problems],
                      keeping="last valid targets" if self._loaded else "none")
            return
        except ReconcilerError as e:
            self.targets_error = e.one_line()
            self.metrics.targets_file_valid.set(0)
            log.error("targets_unreadable", error=e.one_line())
            return
        except Exception as e:  # a bug in a generator must not stop the targets already known
            self.targets_error = f"unexpected {type(e).__name__} while reading the targets"
            log.error("targets_read_failed_unexpectedly", error_type=type(e).__name__)
            return
        self.targets_error = None
        self.metrics.targets_file_valid.set(1)
        self.metrics.generator_errors.set(len(listing.errors))
        for error in listing.errors:
            log.error("generator_failed", error=error)
        for note in listing.notes:
            log.info("generator_skipped", note=note)
        missing = sorted(set(self.settings.selected) - set(listing.names()))
        if missing:
            log.warning("selected_targets_not_found", targets=missing)
        wanted = {t.name: t for t in listing.targets if self._mine(t.name)}
        with self._lock:
            if listing.errors:  # a generator that failed this time removes nothing
                wanted.update({n: s.target for n, s in self.scheduled.items() if n not in wanted})
            self._update(wanted)
        self._loaded = True

    def _mine(self, name: str) -> bool:
        if self.settings.selected and name not in self.settings.selected:
            return False
        return self.shard is None or shard_of(name, self.shard[1]) == self.shard[0]

    def _update(self, wanted: Mapping[str, Target]) -> None:
        now = time.monotonic()
        for name in sorted(set(self.scheduled) - set(wanted)):
            del self.scheduled[name]
            self.capabilities.forget(name)
            self.metrics.remove(name)
            if self.verification is not None:
                self.verification.remove(name)
            log.info("target_removed", target=name)
        for name, target in wanted.items():
            state = self.scheduled.get(name)
            if state is None:
                # the first runs spread over a little of the interval, so a big fleet does not start at once
                jitter = random.uniform(0, self.settings.jitter * self.settings.interval) if self._loaded else 0.0
                self.scheduled[name] = _Scheduled(target, now + jitter)
                self.metrics.add(name)
                if self.verification is not None:
                    self.verification.add(name)
                if self._loaded:
                    log.info("target_added", target=name)
            else:
                state.target = target
        self.metrics.targets.set(len(self.scheduled))

    # --- running ---------------------------------------------------------------------------------
    def _start_due(self, pool: ThreadPoolExecutor) -> None:
        now = time.monotonic()
        with self._lock:
            running = sum(s.running for s in self.scheduled.values())
            due = sorted((s for s in self.scheduled.values() if not s.running and s.due <= now), key=lambda s: s.due)
            for state in due[:max(0, self.settings.parallel - running)]:
                state.running = True
                future = pool.submit(self._run_one, state.target)
                future.add_done_callback(self._done_callback(state.target.name))

    def _run_one(self, target: Target) -> TargetResult:
        riding: list[tuple[EvidenceRead, list[str]]] = []
        verification = self.verification

        def rider(manifest: Manifest, values: Mapping[str, SecretValue]) -> EvidenceRead | None:
            read = verification.start(target.name, manifest) if verification is not None else None
            if read is not None:
                riding.append((read, [v.reveal() for v in values.values()]))
            return read

        result = runner.run_target(target, self.settings.files, self.settings.environ, self._options,
                                   apply=self.settings.apply, lock_timeout=self.settings.lock_timeout,
                                   statement_timeout=self.settings.statement_timeout,
                                   connect_timeout=self.settings.connect_timeout, mode="--watch --apply",
                                   manifests=self.manifests, rider=rider if verification is not None else None,
                                   capabilities=self.capabilities)
        if verification is not None and riding and result.applied:
            # The evidence's head (which relations exist) was read before this apply made them: judge the next run.
            verification.again(target.name)
        elif verification is not None and riding:
            read, secrets = riding[0]
            manifest_name = ", ".join(runner.target_files(self.settings.files, target))
            results = verification.observe(target.name, read, result.plan, manifest_name, secrets)
            if results and rejected_by_edge_function(results):
                self.credentials_rejected(target.name)
        return result

    def _done_callback(self, name: str) -> Callable[[Future[TargetResult]], None]:
        def done(future: Future[TargetResult]) -> None:
            try:
                self._record(name, future.result())
            finally:
                self._finished.set()

        return done

    def _record(self, name: str, result: TargetResult) -> None:
        if result.lock_held:
            outcome = "skipped"
        elif result.error is not None:
            outcome = "error"
        elif result.plan is not None and (result.plan.has_drift or result.corrections):
            outcome = "drift"  # changed outside git (corrected or reported); a manifest roll-out is success
        else:
            outcome = "success"
        with self._lock:
            state = self.scheduled.get(name)
            if state is None:  # removed while it ran: its series are gone, keep them gone
                return
            state.running, state.attempted = False, True
            state.failures = state.failures + 1 if outcome == "error" and result.retryable else 0
            state.due = time.monotonic() + self._delay(outcome, result.retryable, state.failures)
            label = metric_label(name)
            self.metrics.cycles.labels(label, outcome).inc()
            self.metrics.duration.observe(result.duration)
            if outcome in ("success", "drift"):
                self.metrics.last_success.labels(label).set(time.time())
                self.metrics.drifted.labels(label).set(0 if self.settings.apply else result.changes)
            if outcome != "skipped":
                self.metrics.up.labels(label).set(1 if outcome in ("success", "drift") else 0)
            if result.applied and result.plan is not None:
                self.metrics.applied.labels(label).inc(len(result.plan.mutating) + len(result.corrections))
        if result.error is not None and result.error.startswith(runner.AUTHENTICATION_FAILED):
            self.credentials_rejected(name)
        if result.applied and result.plan is not None:
            for change in result.plan.mutating + result.corrections:
                log.info("change_applied", target=name, kind=change.kind, key=change.key,
                         action=change.action.value, reason=change.reason, history_id=result.history_id)
        elif result.plan is not None and not self.settings.apply:
            for change in result.plan.drifted:
                log.warning("drift_detected", target=name, kind=change.kind, key=change.key,
                            action=change.action.value, reason=change.reason)
        log.info("target_cycle_finished", target=name, result=outcome, duration_ms=round(result.duration * 1000, 1),
                 changes=result.changes, applied=result.applied, history_id=result.history_id, error=result.error,
                 retryable=result.retryable if result.error else None)

    def credentials_rejected(self, name: str) -> None:
        """The target's database or Edge Function refused what a generator fetched: fetch it again now."""
        if self.generator_cache.invalidate(name):
            log.info("generated_credentials_rejected", target=name)
            self._refreshed_at = float("-inf")
            self._finished.set()

    def _delay(self, outcome: str, retryable: bool, failures: int) -> float:
        return next_delay(self.settings.interval, jitter=self.settings.jitter, min_backoff=self.settings.min_backoff,
                          failures=failures, retrying=outcome == "error" and retryable)

    # --- HTTP ------------------------------------------------------------------------------------
    @property
    def http_port(self) -> int | None:
        return self._server.server_address[1] if self._server is not None else None

    def healthy(self) -> bool:
        return time.monotonic() - self.last_tick <= 3 * self.settings.interval + 5

    def ready(self) -> tuple[bool, str]:
        if not self._loaded:
            return False, "targets not read: " + (self.targets_error or "starting")
        if self.targets_error is not None:
            return False, "targets file invalid: " + self.targets_error
        with self._lock:
            waiting = sorted(n for n, s in self.scheduled.items() if not s.attempted)
        if waiting:
            return False, f"{len(waiting)} of {len(self.scheduled)} target(s) not attempted yet"
        return True, "ok"
