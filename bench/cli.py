"""Benchmark: the whole `reconcile --dry-run` process on an in-sync database, as users run it.

Three states, each applied once first: scheduler.yaml (13 jobs, 1 trigger); the same plus 1,000
triggers; 10,000 jobs. For each, N interleaved rounds of three processes: the floor
`python -c "import psycopg"`, `reconcile --version`, and `reconcile --dry-run --detailed-exitcode`
(which must exit 0: nothing to do). Reports min and median wall times, the per-object cost (the
difference to the 13-job run, per extra object), the CPU time of one in-sync controller cycle in
process, and where the import time of a plain dry-run goes (`python -X importtime`).

Run: python bench/cli.py [--repeat 9] [--sizes small,triggers,jobs]   (about a minute at --repeat 9)
Targets (issue 17, this 2-core machine): dry-run <= 0.30 s at 13 jobs, <= 0.35 s with 1,000 triggers,
<= 1.2 s at 10,000 jobs; an in-sync controller cycle <= 10 ms of CPU at 13 jobs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SECRETS_ENV, cluster, manifest_file, reset  # noqa: E402

BIN = Path(sys.executable).parent
RECONCILE = str(BIN / "reconcile")


def _with_triggers(n: int, directory: Path) -> Path:
    doc = yaml.safe_load((ROOT / "scheduler.yaml").read_text())
    for i in range(n):
        doc["triggers"].append({"name": f"bench-trigger-{i:04d}", "schedule": f"{i % 60} {i % 24} * * *",
                                "command": f"SELECT {i} AS bench_trigger"})
    path = directory / f"scheduler-{n}-triggers.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _timed(args: list[str], env: dict[str, str], expect: int = 0) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != expect:
        raise SystemExit(f"{args[1:3]} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def _controller_cpu_ms(url: str, manifest: Path, rounds: int) -> float:
    """CPU time of one in-sync `--watch` cycle (report mode), in this process, after a warm-up cycle."""
    from reconciler.controller import Controller, Settings

    controller = Controller(Settings(files=[str(manifest)], url=url, http_port=0))
    controller.cycle()
    samples = []
    for _ in range(rounds):
        t0 = time.process_time()
        controller.cycle()
        samples.append((time.process_time() - t0) * 1000)
    return statistics.median(samples)


def _import_profile(env: dict[str, str], manifest: Path, top: int = 12) -> list[tuple[str, float, float]]:
    done = subprocess.run([sys.executable, "-X", "importtime", RECONCILE, "--dry-run", "-f", str(manifest)],
                          env=env, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            self_us, cumulative_us, name = (part.strip() for part in line[len("import time:"):].split("|"))
            rows.append((name, int(self_us) / 1000, int(cumulative_us) / 1000))
    total = sum(r[1] for r in rows)
    rows.sort(key=lambda r: -r[1])
    return [("(all imports, self)", total, total), *rows[:top]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--sizes", default="small,triggers,jobs")
    args = parser.parse_args()
    env = {**os.environ, **SECRETS_ENV}
    results: dict[str, dict[str, list[float]]] = {}
    with cluster() as c, tempfile.TemporaryDirectory() as tmp:
        env["DATABASE_URL"] = c.url()
        os.environ.update(SECRETS_ENV)
        states = {"small": (ROOT / "scheduler.yaml", 13 + 1), "triggers": (_with_triggers(1000, Path(tmp)), 13 + 1001),
                  "jobs": (manifest_file(10_000, Path(tmp)), 10_000 + 1)}
        for name in args.sizes.split(","):
            manifest, _ = states[name]
            reset(c)
            _timed([RECONCILE, "--apply", "-f", str(manifest)], env)
            runs: dict[str, list[float]] = {"floor": [], "version": [], "dry-run": []}
            for _ in range(args.repeat):  # interleaved, so load changes hit all three alike
                runs["floor"].append(_timed([sys.executable, "-c", "import psycopg"], env))
                runs["version"].append(_timed([RECONCILE, "--version"], env))
                runs["dry-run"].append(_timed([RECONCILE, "--dry-run", "--detailed-exitcode", "-f", str(manifest)], env))
            results[name] = runs
            if name == "small":
                cycle_ms = _controller_cpu_ms(c.url(), manifest, args.repeat)
                profile = _import_profile(env, manifest)
    print(f"Whole process, in-sync state, {args.repeat} interleaved rounds (seconds, min / median):\n")
    print("| state | `import psycopg` | `reconcile --version` | `reconcile --dry-run` |")
    print("| --- | ---: | ---: | ---: |")
    for name, runs in results.items():
        cells = [f"{min(v):.3f} / {statistics.median(v):.3f}" for v in runs.values()]
        print(f"| {name} | {' | '.join(cells)} |")
    if "small" in results:
        base = statistics.median(results["small"]["dry-run"])
        for name, extra, what in (("triggers", 1000, "trigger"), ("jobs", 9987, "job")):
            if name in results:
                per = (statistics.median(results[name]["dry-run"]) - base) / extra * 1000
                print(f"\nper extra {what}: {per:.3f} ms")
        print(f"\nin-sync controller cycle at 13 jobs: {cycle_ms:.1f} ms of CPU (median)")
        print("\nimport profile of a plain dry-run (ms, self / cumulative):\n")
        for module, self_ms, cumulative in profile:
            print(f"  {self_ms:8.1f} {cumulative:8.1f}  {module}")


if __name__ == "__main__":
    main()
