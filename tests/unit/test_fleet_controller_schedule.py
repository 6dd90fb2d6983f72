"""The fleet controller's bookkeeping without a database: its shard, the targets it adopts, per-target
backoff, readiness and the metric series of removed targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from reconciler.errors import ReconcilerError
from reconciler.fleet.controller import FleetController, FleetSettings
from reconciler.fleet.runner import TargetResult
from reconciler.fleet.shard import shard_of
from reconciler.model import Plan

NAMES = [f"t{i}" for i in range(12)]


def _targets(path: Path, names: list[str]) -> str:
    path.write_text("version: 1\ntargets:\n" + "".join(
        f"  - name: {n}\n    database_url: {{from_env: URL_{n.upper()}}}\n" for n in names))
    return str(path)


def _controller(tmp_path: Path, names: list[str], **environ: str) -> FleetController:
    settings = FleetSettings(targets_file=_targets(tmp_path / "targets.yaml", names), environ=environ,
                             interval=60.0, http_port=-1)
    controller = FleetController(settings)
    controller._read_targets()
    return controller


def test_a_replica_takes_only_its_shard(tmp_path: Path) -> None:
    controller = _controller(tmp_path, NAMES, RECONCILE_SHARD_REPLICAS="3", POD_NAME="reconciler-fleet-2")
    assert controller.shard == (2, 3)
    assert sorted(controller.scheduled) == sorted(n for n in NAMES if shard_of(n, 3) == 2)


def test_a_malformed_shard_setting_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ReconcilerError, match="POD_NAME='reconciler' does not end in -<ordinal>"):
        _controller(tmp_path, NAMES, RECONCILE_SHARD_REPLICAS="3", POD_NAME="reconciler")


def test_retryable_errors_back_off_per_target_and_a_success_resets(tmp_path: Path) -> None:
    controller = _controller(tmp_path, ["a", "b"])
    delays = []
    for _ in range(5):
        controller._record("a", TargetResult("a", error="down", retryable=True))
        delays.append(controller.scheduled["a"].due - controller.last_tick)
    assert controller.scheduled["a"].failures == 5
    assert delays[0] < 2 and delays[-1] > delays[0] and all(d <= 60 for d in delays)
    controller._record("b", TargetResult("b", plan=Plan()))
    assert controller.scheduled["b"].failures == 0 and controller.scheduled["b"].due - controller.last_tick > 50
    controller._record("a", TargetResult("a", plan=Plan()))
    assert controller.scheduled["a"].failures == 0
    controller._record("a", TargetResult("a", error="lock held", retryable=True, lock_held=True))
    assert controller.scheduled["a"].failures == 0  # skipped: waits for its interval, no backoff


def test_ready_once_every_target_was_attempted(tmp_path: Path) -> None:
    controller = _controller(tmp_path, ["a", "b"])
    assert controller.ready() == (False, "2 of 2 target(s) not attempted yet")
    controller._record("a", TargetResult("a", error="down", retryable=True))
    controller._record("b", TargetResult("b", plan=Plan()))
    assert controller.ready() == (True, "ok")


def test_a_removed_targets_series_are_deleted(tmp_path: Path) -> None:
    controller = _controller(tmp_path, ["a", "b"])
    controller._record("a", TargetResult("a", plan=Plan()))
    assert 'target="a"' in generate_latest(controller.metrics.registry).decode()
    _targets(tmp_path / "targets.yaml", ["b", "c"])
    controller._read_targets()
    text = generate_latest(controller.metrics.registry).decode()
    assert 'target="a"' not in text and 'target="c"' in text
    assert sorted(controller.scheduled) == ["b", "c"]
    controller._record("a", TargetResult("a", plan=Plan()))  # a run that ends after its removal
    assert 'target="a"' not in generate_latest(controller.metrics.registry).decode()


def test_with_every_worker_busy_the_loop_waits_instead_of_spinning(tmp_path: Path) -> None:
    """An overdue target cannot start while the pool is full: the loop sleeps until a run finishes."""
    controller = _controller(tmp_path, ["a", "b", "c", "d", "e"])  # parallel 4 by default
    for name, state in controller.scheduled.items():
        state.due = 0.0  # all overdue
        state.running = name != "e"
    assert controller._wait_time() == 0.5
    controller.scheduled["a"].running = False  # a worker is free: the overdue targets start now
    assert controller._wait_time() == 0.0


def test_a_removed_targets_capabilities_are_forgotten(tmp_path: Path) -> None:
    from reconciler.kinds.base import Capabilities

    controller = _controller(tmp_path, ["a", "b"])
    for name in ("a", "b"):
        controller.capabilities.put(name, Capabilities())
    _targets(tmp_path / "targets.yaml", ["b"])
    controller._read_targets()
    assert sorted(controller.scheduled) == ["b"]
    assert controller.capabilities.get("a") is None and controller.capabilities.get("b") is not None
