"""The fleet's per-target verification: check families (bounded series), the stagger, the schedule."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from reconciler.fleet.verification import (
    CHECK_FAMILIES,
    FleetVerification,
    family_of,
    fold,
    rejected_by_edge_function,
    stagger,
)
from reconciler.manifest import Manifest
from reconciler.verify.evidence import CheckResult, Status


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def test_every_check_name_of_verify_has_a_family() -> None:
    names = ["preflight", "master-scheduler: runs", "master-scheduler: http", "master-scheduler: executions",
             "a: b: runs", "scheduled jobs: freshness", "housekeeping", "secret literals"]
    assert [family_of(n) for n in names] == ["preflight", "runs", "http", "executions", "runs", "jobs_freshness",
                                             "housekeeping", "secret_literals"]
    assert family_of("something new") is None
    assert set(CHECK_FAMILIES) == {family_of(n) for n in names}


def test_a_family_fails_when_any_of_its_triggers_checks_fails() -> None:
    results = [CheckResult("t1: http", Status.PASS, ""), CheckResult("t2: http", Status.FAIL, "rejected (HTTP 401)"),
               CheckResult("t1: runs", Status.WARN, ""), CheckResult("t2: runs", Status.SKIP, ""),
               CheckResult("preflight", Status.PASS, "")]
    assert fold(results) == {"http": "fail", "runs": "ok", "preflight": "ok"}
    assert rejected_by_edge_function(results)
    assert not rejected_by_edge_function([CheckResult("t: http", Status.FAIL, "unreachable (HTTP 503)")])


def test_the_stagger_spreads_first_verifications_over_the_interval() -> None:
    offsets = [stagger(f"tenant-{i}", 300.0) for i in range(1000)]
    assert all(0 <= o < 300 for o in offsets)
    buckets = [sum(1 for o in offsets if 30 * b <= o < 30 * (b + 1)) for b in range(10)]
    assert min(buckets) > 70 and max(buckets) < 130  # about 100 per tenth of the interval
    assert stagger("tenant-1", 300.0) == offsets[1]  # stable


def test_a_target_is_verified_once_per_interval_from_its_staggered_start() -> None:
    clock = Clock()
    verification = FleetVerification(CollectorRegistry(), 60.0, apply=True, clock=clock)
    manifest = Manifest.model_validate({"version": 1})
    verification.add("tenant-a")
    first = 100.0 + stagger("tenant-a", 60.0)
    clock.now = first - 0.01
    assert verification.start("tenant-a", manifest) is None
    clock.now = first
    assert verification.start("tenant-a", manifest) is not None
    assert verification.start("tenant-a", manifest) is None  # not again within the interval
    verification.again("tenant-a")
    assert verification.start("tenant-a", manifest) is not None
    clock.now += 60
    assert verification.start("tenant-a", manifest) is not None
    assert verification.start("unknown", manifest) is None


def test_series_per_target_are_bounded_and_removed_with_the_target() -> None:
    registry = CollectorRegistry()
    verification = FleetVerification(registry, 60.0, apply=True)
    verification.add("tenant-a")
    with verification._lock:  # noqa: SLF001 - the judgement's effect without a database
        state = verification._targets["tenant-a"]  # noqa: SLF001
        state.families = {f: "ok" for f in CHECK_FAMILIES} | {"http": "fail"}
        for family, status in state.families.items():
            verification.check.labels("tenant-a", family).set(status == "ok")
        verification._summarise()  # noqa: SLF001

    def series(target: str) -> int:
        return sum(1 for m in registry.collect() for s in m.samples if s.labels.get("target") == target)

    assert series("tenant-a") == len(CHECK_FAMILIES) == 7
    assert registry.get_sample_value("reconciler_fleet_pipeline_failing_targets", {"check": "http"}) == 1
    verification.remove("tenant-a")
    assert series("tenant-a") == 0
    assert registry.get_sample_value("reconciler_fleet_pipeline_failing_targets", {"check": "http"}) == 0
