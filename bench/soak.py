"""Soak: `reconcile --watch --apply --interval 0.05s` as a real process for many cycles, with drift injected.

Every `--drift-every` cycles one drift is injected, rotating among a schedule edit (scheduled_jobs), a
disabled trigger (cron.job) and a changed secret value (vault). Measured from outside the process:
resident memory (VmRSS from /proc/<pid>/status) after warm-up and at the end, its open file descriptors
(/proc/<pid>/fd) at every cycle, and its connections (pg_stat_activity, application_name 'reconcile')
sampled continuously from a side thread. Cycles are counted from the `cycle_finished` JSON events on its
stderr; every injection must be followed by exactly one `change_applied`, and the final plan is empty.

Run: python bench/soak.py [--cycles 1000] [--drift-every 50] [--warmup 100]   (a throwaway cluster)
The pytest variant is tests/integration/controller/test_soak.py (300 cycles, marked `soak`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from reconciler.engine.apply import apply, read_and_plan  # noqa: E402
from reconciler.engine.sources import resolve_secrets  # noqa: E402
from reconciler.kinds.base import PlanOptions  # noqa: E402
from reconciler.manifest import load_manifest  # noqa: E402
from tests.integration.apply_support import MANIFEST, SECRETS_ENV  # noqa: E402
from tests.integration.controller_support import (  # noqa: E402
    Watcher,
    copy_manifest,
    disable_trigger,
    set_schedule,
    tamper_secret,
)

JOB = "fetch_google_news"  # declared "*/5 * * * *"
DRIFTS = ("schedule", "trigger", "secret")
APPLICATION_NAME = "reconcile"


@dataclass
class SoakResult:
    cycles: int
    seconds: float
    rss_warm_kb: int
    rss_end_kb: int
    fds_warm: int
    fd_counts: Counter[int]            # open fds sampled at each cycle boundary after warm-up
    connection_samples: Counter[int]    # concurrent 'reconcile' connections, sampled continuously
    boundary_connections: Counter[int]  # the same between cycles (after each cycle_finished, settled)
    injected: list[tuple[int, str]] = field(default_factory=list)  # (cycle, drift)
    applied: list[dict[str, Any]] = field(default_factory=list)    # change_applied events
    results: Counter[str] = field(default_factory=Counter)          # cycle_finished results
    final_plan_empty: bool = False
    command: str = ""

    @property
    def rss_growth_kb(self) -> int:
        return self.rss_end_kb - self.rss_warm_kb

    def report(self) -> dict[str, Any]:
        return {"cycles": self.cycles, "seconds": round(self.seconds, 1),
                "cycles_per_second": round(self.cycles / self.seconds, 1),
                "rss_warm_mib": round(self.rss_warm_kb / 1024, 2), "rss_end_mib": round(self.rss_end_kb / 1024, 2),
                "rss_growth_mib": round(self.rss_growth_kb / 1024, 2),
                "fds_at_warmup": self.fds_warm, "fds_after_warmup": dict(sorted(self.fd_counts.items())),
                "connections_sampled": dict(sorted(self.connection_samples.items())),
                "connections_at_cycle_end": dict(sorted(self.boundary_connections.items())),
                "drifts_injected": len(self.injected), "changes_applied": len(self.applied),
                "results": dict(self.results), "final_plan_empty": self.final_plan_empty,
                "command": self.command}


def proc_status_kb(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class LogTail:
    """Reads the controller's stderr incrementally (complete lines only) and keeps what the soak needs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb")
        self._partial = b""
        self.cycles = 0
        self.results: Counter[str] = Counter()
        self.applied: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def poll(self) -> int:
        """Consume new lines; return how many cycles finished since the last poll."""
        data = self._partial + self._file.read()
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new = 0
        for raw in lines:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            name = event.get("event")
            if name == "cycle_finished":
                new += 1
                self.results[event.get("result")] += 1
                if event.get("result") not in ("success", "drift"):  # drift: a corrected injection
                    self.errors.append(event)
            elif name == "change_applied":
                self.applied.append(event)
        self.cycles += new
        return new

    def close(self) -> None:
        self._file.close()


class ConnectionSampler(threading.Thread):
    """Counts the controller's sessions in pg_stat_activity as often as it can, until stopped."""

    def __init__(self, superuser_url: str, period: float = 0.005) -> None:
        super().__init__(name="pg_stat_activity sampler", daemon=True)
        self.url = superuser_url
        self.period = period
        self.samples: Counter[int] = Counter()
        self.halt = threading.Event()
        self._conn = psycopg.connect(superuser_url, autocommit=True, application_name="soak sampler")

    def count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                 (APPLICATION_NAME,)).fetchone()
        return int(row[0]) if row else 0

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples[self.count()] += 1
            self.halt.wait(self.period)

    def stop(self) -> None:
        self.halt.set()
        self.join(5)
        self._conn.close()


def settled_count(sampler: ConnectionSampler, within: float = 0.03) -> int:
    """The controller's sessions between cycles: polled until none is left or `within` seconds passed."""
    deadline = time.monotonic() + within
    while (n := sampler.count()) and time.monotonic() < deadline:
        time.sleep(0.002)
    return n


def inject(superuser_url: str, drift: str, n: int) -> None:
    if drift == "schedule":
        set_schedule(superuser_url, JOB, f"*/{7 + n % 3} * * * *")
    elif drift == "trigger":
        disable_trigger(superuser_url)
    else:
        tamper_secret(superuser_url, "cron_secret", f"soak-tampered-{n}")


def converge(url: str, manifest_path: Path) -> None:
    manifest = load_manifest([manifest_path])
    apply(url, manifest, resolve_secrets(manifest, SECRETS_ENV), PlanOptions())


def final_plan_empty(url: str, manifest_path: Path) -> bool:
    manifest = load_manifest([manifest_path])
    _, plan = read_and_plan(url, manifest, resolve_secrets(manifest, SECRETS_ENV), PlanOptions())
    return plan.is_empty


def soak(url: str, superuser_url: str, workdir: Path, *, cycles: int, drift_every: int = 50, warmup: int = 100,
         interval: str = "0.05s", timeout: float = 600.0) -> SoakResult:
    """Run the controller for `cycles` cycles against an audited database and measure it."""
    manifest_path = copy_manifest(workdir)
    converge(url, manifest_path)  # so every change_applied afterwards is the correction of an injection
    watcher = Watcher(url, manifest_path, "--apply", interval=interval, workdir=workdir, name="soak")
    pid = watcher.proc.pid
    tail = LogTail(watcher.stderr_path)
    sampler = ConnectionSampler(superuser_url)
    result = SoakResult(0, 0.0, 0, 0, 0, Counter(), Counter(), Counter(),
                        command=" ".join(["reconcile", "--watch", "-f", str(MANIFEST.name), "--apply",
                                          "--interval", interval]))
    start = time.monotonic()
    deadline = start + timeout
    try:
        sampler.start()
        drift_no = 0
        while tail.cycles < cycles:
            if watcher.proc.poll() is not None:
                raise AssertionError(f"controller exited with {watcher.proc.returncode}:\n{watcher.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"only {tail.cycles} of {cycles} cycles in {timeout:.0f}s")
            new = tail.poll()
            if not new:
                time.sleep(0.002)
                continue
            # Right after a cycle_finished the controller is between cycles; its closed session may take a
            # few milliseconds to leave pg_stat_activity (the backend exits after the client has gone).
            result.boundary_connections[settled_count(sampler)] += 1
            fds = open_fds(pid)
            if tail.cycles >= warmup:
                result.fd_counts[fds] += 1
            if not result.rss_warm_kb and tail.cycles >= warmup:
                result.rss_warm_kb, result.fds_warm = proc_status_kb(pid), fds
            if tail.cycles // drift_every > drift_no and tail.cycles < cycles:
                drift_no = tail.cycles // drift_every
                drift = DRIFTS[(drift_no - 1) % len(DRIFTS)]
                inject(superuser_url, drift, drift_no)
                result.injected.append((tail.cycles, drift))
        result.rss_end_kb = proc_status_kb(pid)
        result.seconds = time.monotonic() - start
    finally:
        sampler.stop()
        watcher.close()
    tail.poll()
    tail.close()
    result.cycles = tail.cycles
    result.connection_samples = sampler.samples
    result.applied = tail.applied
    result.results = tail.results
    result.final_plan_empty = final_plan_empty(url, manifest_path)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--drift-every", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--interval", default="0.05s")
    args = parser.parse_args()
    from bench.common import cluster, reset

    with cluster() as c, tempfile.TemporaryDirectory() as tmp:
        reset(c)
        result = soak(c.url(), c.superuser_url(), Path(tmp), cycles=args.cycles, drift_every=args.drift_every,
                      warmup=args.warmup, interval=args.interval, timeout=max(600.0, args.cycles * 0.5))
    print(json.dumps(result.report(), indent=2))
    problems = verdict(result)
    print("\n".join(problems) if problems else "PASS: flat memory, descriptors and connections; every drift corrected")
    sys.exit(1 if problems else 0)


def verdict(r: SoakResult) -> list[str]:
    """The soak's targets that were missed (empty: all met)."""
    out = []
    if r.rss_growth_kb >= 10 * 1024:
        out.append(f"FAIL: resident memory grew {r.rss_growth_kb} kB after warm-up (limit 10 MiB)")
    # 2: the apply's session and the pipeline verification's, one after the other (the first backend may
    # still be exiting on the server when the second starts)
    if max(r.connection_samples, default=0) > 1 or set(r.boundary_connections) - {0}:
        out.append(f"FAIL: connections {dict(r.connection_samples)}, between cycles {dict(r.boundary_connections)}")
    if set(r.fd_counts) - {r.fds_warm}:
        out.append(f"FAIL: open descriptors changed after warm-up: {dict(r.fd_counts)}")
    if len(r.applied) != len(r.injected) or not r.final_plan_empty:
        out.append(f"FAIL: {len(r.injected)} drifts injected, {len(r.applied)} changes applied,"
                   f" final plan empty: {r.final_plan_empty}")
    if set(r.results) - {"success", "drift"} or r.results.get("drift", 0) != len(r.injected):
        out.append(f"FAIL: cycle results {dict(r.results)}")
    return out


if __name__ == "__main__":
    main()
