"""Benchmark: the whole `reconcile --dry-run` process on an in-sync database, as users run it.

Three states, each applied once first: scheduler.yaml (13 jobs, 1 trigger); the same plus 1,000
triggers; 10,000 jobs. For each, N interleaved rounds of three processes: the floor
`python -c "import psycopg"`, `reconcile --version`, and `reconcile --dry-run --detailed-exitcode`
(which must exit 0: nothing to do). Reports min and median wall times and CPU times, the per-object
cost (the difference to the 13-job run, per extra object), the CPU time of one in-sync controller cycle in
process, and where the import time of a plain dry-run goes (`python -X importtime`).

Then `bench/phases.py` in N fresh processes per state: the median milliseconds of each step of the
dry run (imports in the order the command meets them, YAML, validation, connect, queries, plan, render),
next to the interpreter's own start (`python -c pass`).

Processes run as installed ones do, from cached bytecode: PYTHONDONTWRITEBYTECODE is dropped and the
bytecode goes to a temporary PYTHONPYCACHEPREFIX, written by a first run that is not timed (compiling
the package's sources on every start would add about 100 ms to each run).

Run: python bench/cli.py [--repeat 9] [--sizes small,triggers,jobs] [--baseline DIR]
(about three minutes at --repeat 9). With --baseline, an earlier version's dry-run runs in the same
rounds (PYTHONPATH=DIR), so a before/after comparison sees the same load.
Targets (issue 17, this 2-core machine): dry-run <= 0.30 s at 13 jobs, <= 0.35 s with 1,000 triggers,
<= 1.2 s at 10,000 jobs; an in-sync controller cycle <= 10 ms of CPU at 13 jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
PHASES = str(Path(__file__).resolve().parent / "phases.py")
#: state -> (median dry-run target in seconds, what it is)
TARGETS = {"small": (0.30, "13 jobs"), "triggers": (0.35, "+1,000 triggers"), "jobs": (1.2, "10,000 jobs")}
CYCLE_TARGET_MS = 10.0


def _with_triggers(n: int, directory: Path) -> Path:
    doc = yaml.safe_load((ROOT / "scheduler.yaml").read_text())
    for i in range(n):
        doc["triggers"].append({"name": f"bench-trigger-{i:04d}", "schedule": f"{i % 60} {i % 24} * * *",
                                "command": f"SELECT {i} AS bench_trigger"})
    path = directory / f"scheduler-{n}-triggers.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


CPU: dict[str, list[float]] = {}  # command label -> CPU seconds (user + system) of each timed run


def _timed(args: list[str], env: dict[str, str], expect: int = 0, label: str | None = None) -> float:
    """Wall seconds of one process; with a label, its CPU seconds are kept in CPU (robust to other load)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expect:
        raise SystemExit(f"{args[1:3]} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    if label is not None:
        CPU.setdefault(label, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return elapsed


def _phases(env: dict[str, str], manifest: Path, rounds: int) -> dict[str, float]:
    """The median milliseconds of each step of a dry run (bench/phases.py), over `rounds` fresh processes."""
    samples: dict[str, list[float]] = {"interpreter start (python -c pass)": []}
    for _ in range(rounds):
        samples["interpreter start (python -c pass)"].append(_timed([sys.executable, "-c", "pass"], env) * 1000)
        done = subprocess.run([sys.executable, PHASES, str(manifest)], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench/phases.py exited {done.returncode}: {done.stderr.strip()[-500:]}")
        for step, ms in json.loads(done.stdout).items():
            samples.setdefault(step, []).append(ms)
    return {step: statistics.median(values) for step, values in samples.items()}


def _controller_cpu_ms(url: str, manifest: Path, rounds: int) -> float:
    """CPU time of one in-sync `--watch` cycle (report mode), in this process, after a warm-up cycle."""
    from reconciler.watch.controller import Controller, Settings

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
    parser.add_argument("--baseline", metavar="DIR", help="a directory holding an earlier reconciler/ package "
                        "(git archive REV reconciler | tar -x -C DIR): its dry-run is timed in the same rounds")
    args = parser.parse_args()
    env = {**os.environ, **SECRETS_ENV}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    results: dict[str, dict[str, list[float]]] = {}
    breakdown: dict[str, dict[str, float]] = {}
    with cluster() as c, tempfile.TemporaryDirectory() as tmp:
        env["DATABASE_URL"] = c.url()
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        os.environ.update(SECRETS_ENV)
        states = {"small": (ROOT / "scheduler.yaml", 13 + 1), "triggers": (_with_triggers(1000, Path(tmp)), 13 + 1001),
                  "jobs": (manifest_file(10_000, Path(tmp)), 10_000 + 1)}
        for name in args.sizes.split(","):
            manifest, _ = states[name]
            reset(c)
            _timed([RECONCILE, "--apply", "-f", str(manifest)], env)  # also writes the bytecode, untimed
            _timed([RECONCILE, "--version"], env)
            dry_run = [RECONCILE, "--dry-run", "--detailed-exitcode", "-f", str(manifest)]
            runs: dict[str, list[float]] = {"floor": [], "version": [], "dry-run": []}
            # The baseline through its own entry point (reconciler.cli.main:main, before reconciler.cli.console); -P keeps
            # the working directory (this repository) off the path, so PYTHONPATH's package is the one imported.
            baseline = [sys.executable, "-P", "-c", "from reconciler.cli.main import main; main()", *dry_run[1:]]
            if args.baseline:
                runs["baseline"] = []
                _timed(baseline, {**env, "PYTHONPATH": args.baseline})  # its bytecode, untimed
            for _ in range(args.repeat):  # interleaved, so load changes hit all of them alike
                runs["floor"].append(_timed([sys.executable, "-c", "import psycopg"], env, label=f"{name} floor"))
                runs["version"].append(_timed([RECONCILE, "--version"], env, label=f"{name} version"))
                runs["dry-run"].append(_timed(dry_run, env, label=f"{name} dry-run"))
                if args.baseline:
                    runs["baseline"].append(_timed(baseline, {**env, "PYTHONPATH": args.baseline},
                                                   label=f"{name} baseline"))
            results[name] = runs
            breakdown[name] = _phases(env, manifest, args.repeat)
            if name == "small":
                cycle_ms = _controller_cpu_ms(c.url(), manifest, args.repeat)
                profile = _import_profile(env, manifest)
    columns = ["floor", "version", "dry-run"] + (["baseline"] if args.baseline else [])
    header = ("| state | `import psycopg` | `reconcile --version` | `reconcile --dry-run` |"
              + (" baseline `--dry-run` |" if args.baseline else "") + "\n| --- |" + " ---: |" * len(columns))
    print(f"Whole process, in-sync state, {args.repeat} interleaved rounds (seconds, min / median):\n")
    print(header)
    for name, runs in results.items():
        cells = [f"{min(runs[k]):.3f} / {statistics.median(runs[k]):.3f}" for k in columns]
        print(f"| {name} | {' | '.join(cells)} |")
    print("\nCPU time of the same processes (user + system, seconds, min / median):\n")
    print(header)
    for name in results:
        cells = [f"{min(CPU[f'{name} {k}']):.3f} / {statistics.median(CPU[f'{name} {k}']):.3f}" for k in columns]
        print(f"| {name} | {' | '.join(cells)} |")
    print("\nTargets (median dry-run):\n")
    for name, runs in results.items():
        target, what = TARGETS[name]
        measured = statistics.median(runs["dry-run"])
        print(f"  {what:16} target <= {target:.2f} s, measured {measured:.3f} s: {'met' if measured <= target else 'NOT met'}")
    print("\nWhere the milliseconds go (median of each step, bench/phases.py):\n")
    steps = list(dict.fromkeys(step for phases in breakdown.values() for step in phases))
    print("| step | " + " | ".join(breakdown) + " |")
    print("| --- |" + " ---: |" * len(breakdown))
    for step in steps:
        print(f"| {step} | " + " | ".join(f"{phases.get(step, 0.0):.1f}" for phases in breakdown.values()) + " |")
    if "small" in results:
        # Medians of wall time move with the machine's other load by more than 1,000 triggers cost; the
        # minimum wall time and the median CPU time are steadier, so both are shown.
        for name, extra, what in (("triggers", 1000, "trigger"), ("jobs", 9987, "job")):
            if name in results:
                wall = (min(results[name]["dry-run"]) - min(results["small"]["dry-run"])) / extra * 1000
                cpu = (statistics.median(CPU[f"{name} dry-run"]) - statistics.median(CPU["small dry-run"])) / extra * 1000
                print(f"\nper extra {what}: {wall:.3f} ms (min wall), {cpu:.3f} ms (median CPU)")
        verdict = "met" if cycle_ms <= CYCLE_TARGET_MS else "NOT met"
        print(f"\nin-sync controller cycle at 13 jobs: {cycle_ms:.1f} ms of CPU (median;"
              f" target <= {CYCLE_TARGET_MS:.0f} ms: {verdict})")
        print("\nimport profile of a plain dry-run (ms, self / cumulative):\n")
        for module, self_ms, cumulative in profile:
            print(f"  {self_ms:8.1f} {cumulative:8.1f}  {module}")


if __name__ == "__main__":
    main()
