"""The fleet controller part of bench/fleet.py: `reconcile --watch --apply --targets FILE` as a real process.

Measured from outside, so nothing depends on the controller's log format: its resident memory
(VmRSS, and the peak VmHWM, from /proc/<pid>/status) after `cycles` intervals with 10 targets, then K,
then K + U (the targets file is rewritten in place; the controller is expected to pick that up without a
restart), the reconciler's sessions left open on the clusters between cycles (pg_stat_activity,
application_name 'reconcile'), and the time from a drift to its correction: a drift is made on one
target at a random moment of its interval, and the clock stops when that target's reconciler.history
has a new row.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.fleet_harness import DRIFTS, Fleet, drift, free_port, history_rows, status_kib
from reconciler.fleet.runner import DEFAULT_CONNECT_TIMEOUT

#: The fleet controller's default jitter (a fraction of the interval).
JITTER = 0.1
#: How long to wait for the controller's HTTP endpoint and its first pass over every target.
READY_TIMEOUT = 120.0


class FleetController:
    """One `reconcile --watch --apply --targets` process; always killed in close()."""

    def __init__(self, targets_path: Path, manifest: str, env: Mapping[str, str], *, interval: float,
                 parallel: int, workdir: Path) -> None:
        self.port = free_port()
        self.stderr_path = workdir / "controller.stderr"
        argv = [sys.executable, "-c", "from reconciler.cli.main import main; main()", "--watch", "--apply",
                "--targets", str(targets_path), "-f", manifest, "--interval", f"{interval}s",
                "--parallel", str(parallel), "--http-port", str(self.port), "--log-format", "json"]
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr, cwd=workdir)

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the controller has used so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        return status_kib(self.proc.pid, "VmRSS")

    def peak_kib(self) -> int:
        return status_kib(self.proc.pid, "VmHWM")

    def http_status(self, path: str) -> int | None:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Seconds until /readyz answers 200 (every target attempted once)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self.check_alive()
            if self.http_status("/readyz") == 200:
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"the fleet controller was not ready within {timeout} s: {self.tail()}")

    def runs(self) -> int:
        """Target runs finished so far (the controller logs one target_cycle_finished line per run)."""
        return len(self.finished_runs())

    def finished_runs(self) -> list[tuple[str, float]]:
        """(target, when) of every run finished so far, from the target_cycle_finished log lines."""
        out = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            if '"target_cycle_finished"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                event = json.loads(line)
                when = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
                out.append((event["target"], when))
        return out

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the fleet controller exited with {self.proc.returncode}: {self.tail()}")

    def tail(self) -> str:
        lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-5:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()


def reconciler_sessions(fleet: Fleet) -> int:
    """The reconciler's sessions open on the fleet's clusters right now."""
    total = 0
    for member in fleet.members:
        with contextlib.suppress(psycopg.Error), \
                psycopg.connect(member.superuser_url, autocommit=True, application_name="fleet bench") as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reconcile'"
                               ).fetchone()
            total += int(row[0]) if row else 0
    return total


def controller_measurements(fleet: Fleet, reachable: Sequence[Any], dead: Sequence[Any], env: Mapping[str, str],
                            targets_path: Path, write_targets_file: Callable[[Path, Sequence[Any]], None],
                            manifest: str, *, cycles: int, interval: float, parallel: int = 4,
                            drifts: int = 3) -> dict[str, Any]:
    connect_timeout = DEFAULT_CONNECT_TIMEOUT  # the controller's; the CLI has no flag for it
    small = list(reachable[:min(10, len(reachable))])
    stages = [("10 targets" if len(small) == 10 else f"{len(small)} targets", small),
              (f"{len(reachable)} targets", list(reachable)),
              (f"{len(reachable)} + {len(dead)} unreachable", [*reachable, *dead])]
    write_targets_file(targets_path, stages[0][1])
    controller = FleetController(targets_path, manifest, env, interval=interval, parallel=parallel,
                                 workdir=targets_path.parent)
    out: dict[str, Any] = {"interval_s": interval, "parallel": parallel, "connect_timeout_s": connect_timeout,
                           "cycles_per_reading": cycles}
    try:
        out["ready_s"] = round(controller.wait_ready(), 2)
        readings = []
        for stage, (label, endpoints) in enumerate(stages):
            runs_before = controller.runs()
            cpu_before = controller.cpu_seconds()
            write_targets_file(targets_path, endpoints)
            # The controller notices the rewritten file at its next tick; a blackholed target holds its
            # worker for the connect timeout.
            deadline = time.monotonic() + cycles * interval * (1 + JITTER) + 1 + (connect_timeout if len(
                endpoints) > len(reachable) else 0)
            sessions = []
            while time.monotonic() < deadline:
                controller.check_alive()
                time.sleep(min(interval / 2, max(deadline - time.monotonic(), 0)))
                sessions.append(reconciler_sessions(fleet))
            finished = controller.finished_runs()
            runs = len(finished) - runs_before
            cpu = controller.cpu_seconds() - cpu_before
            readings.append({"stage": label, "targets": len(endpoints), "target_runs": runs,
                             "cpu_s": round(cpu, 2), "cpu_ms_per_run": round(cpu * 1000 / max(runs, 1), 2),
                             "run_spacing_s": run_spacing(finished[runs_before:], {e.name for e in reachable}),
                             "rss_mib": round(controller.rss_kib() / 1024, 1),
                             "peak_rss_mib": round(controller.peak_kib() / 1024, 1),
                             "reconciler_sessions": {"samples": len(sessions), "max": max(sessions, default=0),
                                                     "mean": round(sum(sessions) / max(len(sessions), 1), 2)}})
            if stage > 0:  # while the controller has the K targets, then the K + U
                readings[-1]["drift_to_correction"] = drift_to_correction(controller, list(reachable), interval,
                                                                          drifts)
        out["memory"] = readings
        first, second = readings[0], readings[1]
        added = second["targets"] - first["targets"]
        if added:
            out["rss_per_target_kib"] = round((second["rss_mib"] - first["rss_mib"]) * 1024 / added, 1)
    finally:
        controller.close()
    return out


def run_spacing(finished: Sequence[tuple[str, float]], names: set[str]) -> dict[str, float]:
    """Seconds between one reachable target's consecutive runs (interval ± jitter when nothing delays it)."""
    by_target: dict[str, list[float]] = {}
    for name, when in finished:
        if name in names:
            by_target.setdefault(name, []).append(when)
    gaps = sorted(b - a for times in by_target.values() for a, b in zip(times, times[1:], strict=False))
    if not gaps:
        return {}
    return {"p50": round(gaps[len(gaps) // 2], 2), "p99": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))], 2),
            "max": round(gaps[-1], 2)}


def drift_to_correction(controller: FleetController, reachable: list[Any], interval: float,
                        count: int) -> list[dict[str, Any]]:
    """Drift one target at a random moment, `count` times; seconds until its history has a new row."""
    rng = random.Random(19)
    results = []
    for i in range(count):
        endpoint = reachable[rng.randrange(len(reachable))]
        kind = DRIFTS[i % len(DRIFTS)]
        time.sleep(rng.uniform(0, interval))
        before = history_rows(endpoint.member)
        drift(endpoint.member, kind)
        started = time.monotonic()
        while history_rows(endpoint.member) == before:
            controller.check_alive()
            if time.monotonic() - started > 3 * interval + 30:
                raise RuntimeError(f"the drift on {endpoint.name} was not corrected within "
                                   f"{3 * interval + 30:.0f} s: {controller.tail()}")
            time.sleep(0.05)
        results.append({"target": endpoint.name, "drift": kind,
                        "seconds": round(time.monotonic() - started, 2)})
    return results
