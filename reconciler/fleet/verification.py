"""Pipeline verification per target in the fleet controller (`--watch --targets --verify-interval`).

Where it sits: the controller asks `due(name)` before a target's run; when it is, `start(manifest)` gives
an evidence read (`verify.read.EvidenceRead`) that rides on the run's own connection (the plan's read,
or after an apply's COMMIT: `runner.run_target`'s `rider`), and `observe` judges it with
`reconcile verify`'s checks. A target's first verification is staggered over the interval by a stable
hash of its name, so 1,000 targets' extra reads are spread evenly instead of coming together.

Cardinality is bounded: verify's checks are per trigger ("master-scheduler: http"), so a target's checks
are folded into CHECK_FAMILIES (a family fails when any of its checks fails): at most 7 series per
target, whatever the manifest declares. The fleet summary (`reconciler_fleet_pipeline_failing_targets`)
counts the targets whose family fails. Labels are target names and family names only: no value
of a target, no summary text, reaches a metric.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Gauge

if TYPE_CHECKING:
    from reconciler.manifest import Manifest
    from reconciler.model import Plan
    from reconciler.verify.read import EvidenceRead

log = structlog.get_logger("reconciler.fleet.verification")

CHECK_FAMILIES = ("preflight", "runs", "http", "executions", "jobs_freshness", "housekeeping", "secret_literals")
_WHOLE_DATABASE = {"preflight": "preflight", "scheduled jobs: freshness": "jobs_freshness",
                   "housekeeping": "housekeeping", "secret literals": "secret_literals"}


def family_of(check: str) -> str | None:
    """The family of one of verify's check names ("master-scheduler: runs" -> "runs"); None if unknown."""
    if check in _WHOLE_DATABASE:
        return _WHOLE_DATABASE[check]
    tail = check.rsplit(": ", 1)[-1]
    return tail if tail in ("runs", "http", "executions") else None


def fold(results: Iterable[Any]) -> dict[str, str]:
    """Family -> "fail" when any of its checks failed, else "ok" (pass, warn or skip)."""
    out: dict[str, str] = {}
    for r in results:
        family = family_of(r.name)
        if family is not None:
            out[family] = "fail" if r.status.value == "fail" or out.get(family) == "fail" else "ok"
    return out


def stagger(name: str, interval: float) -> float:
    """Where in the interval a target's first verification falls: a stable fraction of it, by name."""
    digest = hashlib.sha256(b"verify:" + name.encode("utf-8")).digest()
    return interval * int.from_bytes(digest[:4], "big") / 2**32


@dataclass
class _State:
    due: float
    families: dict[str, str] = field(default_factory=dict)
    verified: bool = False


class FleetVerification:
    """Per-target verification schedule, judgement and metrics (thread-safe: workers call `observe`)."""

    def __init__(self, registry: CollectorRegistry, interval: float, *, apply: bool,
                 clock: Any = time.monotonic) -> None:
        self.interval = interval
        self.apply = apply
        self.clock = clock
        self._targets: dict[str, _State] = {}
        self._lock = threading.Lock()
        self.check = Gauge("reconciler_fleet_target_pipeline_check",
                           "1 when the target's checks of this family pass (pass, warn or skip), 0 when one fails.",
                           ["target", "check"], registry=registry)
        self.verified_at = Gauge("reconciler_fleet_target_pipeline_last_verified_timestamp_seconds",
                                 "Unix time of the target's last pipeline verification that read its evidence.",
                                 ["target"], registry=registry)
        self.failing = Gauge("reconciler_fleet_pipeline_failing_targets",
                             "Targets of this replica whose checks of this family fail.", ["check"],
                             registry=registry)
        self.errors = Gauge("reconciler_fleet_pipeline_unverified_targets",
                            "Targets whose last verification could not read the evidence.", registry=registry)
        self._unreadable: set[str] = set()
        for family in CHECK_FAMILIES:
            self.failing.labels(family).set(0)
        self.errors.set(0)

    # --- the schedule ------------------------------------------------------------------------------
    def add(self, name: str) -> None:
        with self._lock:
            self._targets.setdefault(name, _State(self.clock() + stagger(name, self.interval)))

    def remove(self, name: str) -> None:
        with self._lock:
            state = self._targets.pop(name, None)
            self._unreadable.discard(name)
            if state is not None:
                for family in state.families:
                    with contextlib.suppress(KeyError):
                        self.check.remove(name, family)
                with contextlib.suppress(KeyError):
                    self.verified_at.remove(name)
            self._summarise()

    def start(self, name: str, manifest: Manifest) -> EvidenceRead | None:
        """The evidence read for this run of `name` when its verification is due, else None."""
        from reconciler.verify.read import EvidenceRead, declared_triggers

        with self._lock:
            state = self._targets.get(name)
            if state is None or self.clock() < state.due:
                return None
            state.due = self.clock() + self.interval
        return EvidenceRead(declared_triggers(manifest))

    def again(self, name: str) -> None:
        """Verify `name` on its next run (this run's evidence cannot be judged)."""
        with self._lock:
            state = self._targets.get(name)
            if state is not None:
                state.due = self.clock()

    # --- the judgement -----------------------------------------------------------------------------
    def observe(self, name: str, read: EvidenceRead | None, plan: Plan | None, manifest_name: str,
                secrets: Sequence[str] = ()) -> list[Any] | None:
        """Judge what the run read for `name`; the check results, or None (nothing due, or not read)."""
        import dataclasses

        from reconciler import verify
        from reconciler.model import Plan as PlanType
        from reconciler.secret_value import scrub

        if read is None or plan is None:
            return None
        if read.error is not None or read.evidence is None:
            with self._lock:
                if name in self._targets:
                    self._unreadable.add(name)
                self._summarise()
            if read.error is not None:
                log.warning("target_pipeline_verify_failed", target=name, error=scrub(read.error.one_line(), secrets))
            return None
        judged = PlanType(findings=plan.findings) if self.apply else plan
        results = verify.run_checks(dataclasses.replace(read.evidence, plan=judged, manifest_name=manifest_name))
        families = fold(results)
        with self._lock:
            state = self._targets.get(name)
            if state is None:  # removed while it ran: keep its series gone
                return results
            previous, state.families, state.verified = state.families, families, True
            self._unreadable.discard(name)
            for gone in set(previous) - set(families):
                with contextlib.suppress(KeyError):
                    self.check.remove(name, gone)
            for family, status in families.items():
                self.check.labels(name, family).set(0 if status == "fail" else 1)
            self.verified_at.labels(name).set(time.time())
            self._summarise()
        for family, status in families.items():
            if previous.get(family, "ok" if status == "ok" else None) != status:
                event = log.warning if status == "fail" else log.info
                failed = [scrub(r.summary, secrets) for r in results
                          if family_of(r.name) == family and r.status.value == "fail"]
                event("target_pipeline_check_changed", target=name, check=family, status=status, failing=failed)
        return results

    def families(self, name: str) -> dict[str, str]:
        with self._lock:
            state = self._targets.get(name)
            return dict(state.families) if state is not None else {}

    def _summarise(self) -> None:
        """The fleet summary from every target's last judgement. Caller holds the lock."""
        for family in CHECK_FAMILIES:
            self.failing.labels(family).set(sum(s.families.get(family) == "fail" for s in self._targets.values()))
        self.errors.set(len(self._unreadable))


def rejected_by_edge_function(results: Iterable[Any]) -> bool:
    """The trigger's newest answer was 401: the Edge Function refused the secret or key it was sent."""
    return any(family_of(r.name) == "http" and r.status.value == "fail" and "401" in r.summary for r in results)
