"""The fleet benchmark's small version: bench/fleet.py with 3 clusters and 1 unreachable target, --json.

Checks what the benchmark claims, never how fast: every in-sync target planned with no change, the
unreachable one failed with one line, the drifted ones corrected (and in sync afterwards), the fields
docs/fleet.md quotes present, no secret value in the output, and every cluster stopped afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.fleet.runner import DEFAULT_CONNECT_TIMEOUT

ROOT = Path(__file__).resolve().parents[3]
CYCLE_FIELDS = {"name", "mode", "parallel", "targets", "repeat", "wall_s", "p50_ms", "p99_ms", "cpu_s",
                "cpu_ms_per_target", "targets_per_min_per_core", "server_cpu_s", "changes", "applied", "failed"}


def _fleet_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "reconciler-fleet-" in line]


@pytest.mark.slow  # about 40 s: the controller's readings wait for its cycles
def test_fleet_benchmark_small(tmp_path):
    before = set(_fleet_processes())
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fleet.py"), "--clusters", "3", "--unreachable", "1",
                           "--drifted", "2", "--parallel", "2", "--repeat", "1", "--controller-cycles", "2",
                           "--controller-interval", "1", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)

    assert report["harness"]["clusters"] == 3 and report["harness"]["pss_per_cluster_mib"] > 0
    assert report["unreachable"] == {"refused": 1, "blackholed": 0, "connect_timeout_s": DEFAULT_CONNECT_TIMEOUT}
    assert report["checks"] == {"first_apply_targets": 3, "in_sync_zero_changes": True,
                                "drifted_targets_corrected": True, "unreachable_failed": True}
    cycles = {(c["name"], c["mode"]): c for c in report["cycles"]}
    for cycle in report["cycles"]:
        assert CYCLE_FIELDS <= set(cycle), cycle
    for mode in ("dry-run", "apply"):
        in_sync = cycles[("in-sync", mode)]
        assert (in_sync["targets"], in_sync["changes"], in_sync["failed"]) == (3, 0, [])
        with_dead = cycles[("+ unreachable, listed last", mode)]
        assert with_dead["targets"] == 4 and with_dead["changes"] == 0
        [failure] = with_dead["failed"]
        assert failure["kind"] == "refused" and failure["name"] == "dead-000"
        assert "cannot connect" in failure["error"] and "\n" not in failure["error"]
    corrected = cycles[("2 of 3 drifted, correcting", "apply")]
    assert corrected["applied"] == 2 and corrected["changes"] >= 2 and corrected["failed"] == []
    after = cycles[("in-sync after the corrections", "dry-run")]
    assert after["changes"] == 0 and after["failed"] == []

    generator = report["generator"]
    assert (generator["branches"], generator["targets"], generator["errors"]) == (3, 3, [])
    first, again = generator["cycles"]
    assert first["applied"] == 3 and first["failed"] == [] and (again["changes"], again["failed"]) == (0, [])

    controller = report["controller"]
    assert [(m["stage"], m["targets"]) for m in controller["memory"]] == [
        ("3 targets", 3), ("3 targets", 3), ("3 + 1 unreachable", 4)]
    for reading in controller["memory"]:
        assert reading["rss_mib"] > 0 and reading["target_runs"] >= reading["targets"]
    for reading in controller["memory"][1:]:
        assert [d["drift"] for d in reading["drift_to_correction"]] == ["job", "trigger", "secret"]
        assert all(d["seconds"] > 0 for d in reading["drift_to_correction"])

    for value in ("fleet-bench-service-role", "fleet-bench-cron-secret"):
        assert value not in proc.stdout and value not in proc.stderr
    assert set(_fleet_processes()) <= before  # every cluster it started is stopped
