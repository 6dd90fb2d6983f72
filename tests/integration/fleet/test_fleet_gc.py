"""The fleet controller in this process: its worker threads each pause the cyclic collector while they
load a manifest, read and plan; after their overlapping cycles the collector is on again."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from reconciler.fleet.controller import FleetController, FleetSettings, metric_label
from tests.fix_db import DbTarget
from tests.integration.apply_support import SECRETS_ENV, wait_until
from tests.integration.fleet_support import databases, fleet_manifest, targets_yaml, url_variable

NAMES = ("fleet-gc-a", "fleet-gc-b", "fleet-gc-c", "fleet-gc-d")


@pytest.fixture
def fine_thread_switching() -> Iterator[None]:
    """Threads switch every 10 µs, so the workers' blocks interleave as they do under load."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _cycles(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value("reconciler_fleet_target_cycles_total",
                                      {"target": metric_label(name), "result": "success"})
    return value or 0.0


def test_the_collector_is_on_after_the_fleets_parallel_cycles(empty_db: DbTarget, tmp_path: Path,
                                                             fine_thread_switching: None) -> None:
    assert gc.isenabled()
    manifest = fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml(NAMES))
    with databases(empty_db.cluster, NAMES) as urls:
        environ = {**SECRETS_ENV, **{url_variable(n): u for n, u in urls.items()}}
        controller = FleetController(FleetSettings(
            targets_file=str(targets), files=(str(manifest),), environ=environ, apply=True, interval=0.2,
            parallel=len(NAMES), http_port=-1, jitter=0.0))
        thread = threading.Thread(target=controller.run, name="fleet-under-test")
        thread.start()
        try:
            wait_until("2 successful cycles of every target",
                       lambda: all(_cycles(controller.metrics.registry, n) >= 2 for n in NAMES), 60)
        finally:
            controller.lifecycle.stop.set()
            controller.lifecycle.wake.set()
            thread.join(30)
        assert not thread.is_alive()
    assert gc.isenabled(), "the fleet's cycles left the cyclic garbage collector disabled"
