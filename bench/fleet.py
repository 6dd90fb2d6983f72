"""Benchmark: fleet mode on a simulated fleet of K local clusters plus unreachable targets (issue 19).

Starts K clusters of the supabase profile (bench/fleet_harness.py: copies of one template, small settings)
and U unreachable targets (half refused, half blackholed: they wait for the connect timeout), writes a
targets.yaml for them and reads it with `read_targets`, brings every cluster to scheduler.yaml with one
fleet apply, then measures with `run_fleet`, in process:

- fleet cycles of the K in-sync targets, dry-run and apply, at each --parallel: wall time, per-target
  latency (p50, p99), the CPU time of this process (the reconciler) and of the K servers, targets per
  minute per core (60 s / the reconciler's CPU seconds per target);
- the same with the U unreachable targets too, listed last (the worst place in a first-come pool) and
  listed first;
- drifted mixes: --drifted targets changed by hand (a job's schedule, the trigger unscheduled, a secret's
  value, in rotation), then one correcting apply cycle of the whole fleet, and a dry run proving it is
  in sync again;
- the fleet controller (`reconcile --watch --apply --targets ...`, a real process) if --controller-cycles
  is not 0: its resident memory after several cycles with 10, K and K + U targets (the targets file is
  rewritten; the controller picks the change up), memory per target, and the time from a drift to its
  correction (until the target's reconciler.history has the new row).

Prints a table (or --json) and stops every cluster it started, whatever happens. No secret value is
printed: the targets' values come from variables whose names alone are in targets.yaml.

Run: python bench/fleet.py --clusters 50 --unreachable 10   (about 11 minutes on 2 cores; 2 GB of
disk in a temporary directory, under 0.5 GB of memory for the clusters)
The CI version is tests/integration/fleet/test_fleet_bench.py (3 clusters, 1 unreachable target).
Targets (issue 19): 50 in-sync targets in one fleet cycle <= 5 s on 2 cores; the 10 unreachable ones add
<= 1 s; controller RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet_harness import (  # noqa: E402
    DRIFTS,
    Blackhole,
    Fleet,
    Member,
    drift,
    refused_url,
    seed_tables,
    server_cpu_seconds,
    stopping,
)
from reconciler.fleet.runner import DEFAULT_CONNECT_TIMEOUT, TargetResult, run_fleet  # noqa: E402
from reconciler.fleet.target import Target  # noqa: E402
from reconciler.fleet.targets_file import read_targets  # noqa: E402
from reconciler.kinds.base import PlanOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = str(ROOT / "scheduler.yaml")
#: The values every target shares (its own project_url comes from its own variable). Not real secrets,
#: and never printed all the same.
#: libpq's smallest connect_timeout (a smaller value is raised to 2 s).
MINIMUM_CONNECT_TIMEOUT = 2
SHARED_ENV = {"SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_SERVICE_ROLE_KEY": "fleet-bench-service-role",
              "CRON_SECRET": "fleet-bench-cron-secret"}


@dataclass(frozen=True)
class Endpoint:
    """A target of the benchmark: its name, where it is, and what it is (in-sync, refused, blackholed)."""

    name: str
    url: str
    kind: str
    member: Member | None = None

    @property
    def url_variable(self) -> str:
        return "FLEET_URL_" + self.name.upper().replace("-", "_")

    @property
    def project_url_variable(self) -> str:
        return "FLEET_PROJECT_URL_" + self.name.upper().replace("-", "_")


def write_targets_file(path: Path, endpoints: Sequence[Endpoint]) -> None:
    """targets.yaml naming only variables: the URLs and each target's own project_url come from them."""
    lines = ["version: 1", "targets:"]
    for e in endpoints:
        lines += [f"  - name: {e.name}",
                  f"    database_url: {{from_env: {e.url_variable}}}",
                  f"    secrets: {{project_url: {{from_env: {e.project_url_variable}}}}}",
                  f"    labels: {{bench: {e.kind}}}"]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)  # a controller watching the file never reads half of it


def environment(endpoints: Sequence[Endpoint]) -> dict[str, str]:
    env = dict(SHARED_ENV)
    for e in endpoints:
        env[e.url_variable] = e.url
        env[e.project_url_variable] = f"https://{e.name}.fleet-bench.test"
    return env


# -- one measured cycle ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Cycle:
    """One or more repetitions of one fleet cycle configuration, summarised."""

    name: str
    mode: str
    parallel: int
    targets: int
    walls: list[float]
    latencies: list[float]          # reachable targets' durations, every repetition
    cpu: list[float]                # this process's CPU seconds per repetition
    server_cpu: list[float]         # the clusters' CPU seconds per repetition
    changes: int                    # mutating changes planned (or applied) in the last repetition
    applied: int                    # targets applied in the last repetition
    failed: list[dict[str, Any]]    # the last repetition's failures: name, kind, error, seconds

    def report(self) -> dict[str, Any]:
        wall = statistics.median(self.walls)
        cpu = statistics.median(self.cpu)
        cpu_per_target = cpu / self.targets if self.targets else 0.0
        return {"name": self.name, "mode": self.mode, "parallel": self.parallel, "targets": self.targets,
                "repeat": len(self.walls), "wall_s": round(wall, 3), "wall_max_s": round(max(self.walls), 3),
                "p50_ms": round(percentile(self.latencies, 50) * 1000, 1),
                "p99_ms": round(percentile(self.latencies, 99) * 1000, 1),
                "cpu_s": round(cpu, 3), "cpu_ms_per_target": round(cpu_per_target * 1000, 2),
                "targets_per_min_per_core": round(60 / cpu_per_target) if cpu_per_target else None,
                "server_cpu_s": round(statistics.median(self.server_cpu), 3),
                "changes": self.changes, "applied": self.applied, "failed": self.failed}


def measure(name: str, endpoints: Sequence[Endpoint], targets: Sequence[Target], env: Mapping[str, str], *,
            apply: bool, parallel: int, repeat: int, connect_timeout: int, idle_server_cpu: float,
            before: Any = None) -> Cycle:
    """`repeat` fleet cycles of `targets` (in their order); `before(i)` runs untimed before each one."""
    by_name = {e.name: e for e in endpoints}
    clusters = [e.member.cluster for e in endpoints if e.member is not None]
    walls: list[float] = []
    latencies: list[float] = []
    cpu: list[float] = []
    server: list[float] = []
    results: list[TargetResult] = []
    for i in range(repeat):
        if before is not None:
            before(i)
        server0, cpu0, t0 = server_cpu_seconds(clusters), time.process_time(), time.perf_counter()
        results = run_fleet(targets, [MANIFEST], env, PlanOptions(), apply=apply, parallel=parallel,
                            connect_timeout=connect_timeout)
        walls.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - cpu0)
        # Less what the idle servers (pg_cron's launcher, the checkpointer...) burn in the same time.
        server.append(server_cpu_seconds(clusters) - server0 - idle_server_cpu * walls[-1])
        latencies += [r.duration for r in results if by_name[r.target].member is not None]
    failed = [{"name": r.target, "kind": by_name[r.target].kind, "error": r.error, "retryable": r.retryable,
               "seconds": round(r.duration, 3)} for r in results if not r.ok]
    return Cycle(name, "apply" if apply else "dry-run", parallel, len(targets), walls, latencies, cpu, server,
                 sum(r.changes for r in results), sum(r.applied for r in results), failed)


def idle_cpu_rate(clusters: list[Any], seconds: float = 3.0) -> float:
    """CPU seconds per second the idle clusters use together (subtracted from each cycle's DB CPU)."""
    before = server_cpu_seconds(clusters)
    time.sleep(seconds)
    return (server_cpu_seconds(clusters) - before) / seconds


# -- the run ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    return {"nproc": os.cpu_count(), "ram_gib": round(mem_kib / 2**20, 1), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": [round(x, 2) for x in os.getloadavg()]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clusters", type=int, default=50, help="local clusters, one target each (default 50)")
    parser.add_argument("--unreachable", type=int, default=10,
                        help="unreachable targets, half refused and half blackholed (default 10)")
    parser.add_argument("--drifted", type=int, default=None, help="targets drifted per correcting cycle "
                        "(default: a fifth of --clusters, at least 1)")
    parser.add_argument("--parallel", default="2,4,8", help="fleet --parallel values to measure (default 2,4,8)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each cycle (default 3)")
    parser.add_argument("--connect-timeout", type=int, default=DEFAULT_CONNECT_TIMEOUT,
                        help="seconds a blackholed target waits (default: the fleet's, "
                             f"{DEFAULT_CONNECT_TIMEOUT}); the unreachable-first rows are also run at libpq's "
                             "minimum, 2")
    parser.add_argument("--start-parallel", type=int, default=4, help="clusters started at once (default 4)")
    parser.add_argument("--controller-cycles", type=int, default=4,
                        help="fleet controller cycles per memory reading; 0 skips the controller (default 4)")
    parser.add_argument("--controller-interval", type=float, default=5.0,
                        help="the controller's --interval in seconds (default 5)")
    parser.add_argument("--no-generator", dest="generator", action="store_false",
                        help="skip the run through the supabase_branches generator (the Management API stand-in)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args(argv)
    parallels = [int(p) for p in args.parallel.split(",")]
    drifted = args.drifted if args.drifted is not None else max(1, args.clusters // 5)
    refused = (args.unreachable + 1) // 2
    report: dict[str, Any] = {"command": "python bench/fleet.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                              "machine": machine()}
    fleet = Fleet(args.clusters)
    blackhole = Blackhole()
    with stopping(fleet.stop, blackhole.close):
        report["harness"] = fleet.start(args.start_parallel).report()
        for member in fleet.members:
            seed_tables(member)
        reachable = [Endpoint(m.name, m.url, "in-sync", m) for m in fleet.members]
        dead = [Endpoint(f"dead-{i:03d}", refused_url() if i < refused else blackhole.url(),
                         "refused" if i < refused else "blackholed") for i in range(args.unreachable)]
        everyone = [*reachable, *dead]
        env = environment(everyone)
        targets_path = fleet.base / "targets.yaml"
        write_targets_file(targets_path, everyone)
        t0 = time.perf_counter()
        listed = read_targets(str(targets_path), env)
        report["read_targets_s"] = round(time.perf_counter() - t0, 4)
        assert not listed.errors, listed.errors
        by_name = {t.name: t for t in listed.targets}
        live = [by_name[e.name] for e in reachable]
        unreachable = [by_name[e.name] for e in dead]
        report["unreachable"] = {"refused": refused, "blackholed": args.unreachable - refused,
                                 "connect_timeout_s": args.connect_timeout}
        idle_server_cpu = idle_cpu_rate([m.cluster for m in fleet.members])
        report["idle_server_cpu_per_s"] = round(idle_server_cpu, 4)
        common = {"env": env, "repeat": args.repeat, "connect_timeout": args.connect_timeout,
                  "idle_server_cpu": idle_server_cpu}
        cycles: list[Cycle] = []
        # From the runbook's starting point (tables only) to scheduler.yaml on every cluster: the first apply.
        first = measure("first apply (from empty)", everyone, live, apply=True, parallel=max(parallels),
                        **{**common, "repeat": 1})
        cycles.append(first)
        for apply in (False, True):
            for parallel in parallels:
                cycles.append(measure("in-sync", everyone, live, apply=apply, parallel=parallel, **common))
        for apply in (False, True):
            for parallel in parallels:
                cycles.append(measure("+ unreachable, listed last", everyone, [*live, *unreachable], apply=apply,
                                      parallel=parallel, **common))
        for parallel in parallels:
            cycles.append(measure("+ unreachable, listed first", everyone, [*unreachable, *live], apply=False,
                                  parallel=parallel, **common))
        if args.connect_timeout != MINIMUM_CONNECT_TIMEOUT and args.unreachable > refused:
            for parallel in parallels:
                cycles.append(measure(f"+ unreachable, listed first, connect timeout {MINIMUM_CONNECT_TIMEOUT} s",
                                      everyone, [*unreachable, *live], apply=False, parallel=parallel,
                                      **{**common, "connect_timeout": MINIMUM_CONNECT_TIMEOUT}))
        drifted_members = [e.member for e in reachable[:drifted] if e.member is not None]

        def drift_some(i: int) -> None:
            for j, member in enumerate(drifted_members):
                drift(member, DRIFTS[(i + j) % len(DRIFTS)])

        for parallel in parallels:
            cycles.append(measure(f"{drifted} of {len(live)} drifted, correcting", everyone, live, apply=True,
                                  parallel=parallel, before=drift_some, **common))
        after = measure("in-sync after the corrections", everyone, live, apply=False, parallel=max(parallels),
                        **{**common, "repeat": 1})
        cycles.append(after)
        report["cycles"] = [c.report() for c in cycles]
        report["checks"] = {
            "first_apply_targets": first.applied,
            "in_sync_zero_changes": all(c.changes == 0 and not c.failed for c in cycles
                                        if c.name == "in-sync" or c.name.startswith("in-sync after")),
            "drifted_targets_corrected": all(c.applied == drifted for c in cycles if c.name.endswith("correcting")),
            "unreachable_failed": all(sorted(f["name"] for f in c.failed) == sorted(t.name for t in unreachable)
                                      for c in cycles if c.name.startswith("+ unreachable")),
        }
        if args.controller_cycles:
            from bench.fleet_controller import controller_measurements

            report["controller"] = controller_measurements(
                fleet, reachable, dead, env, targets_path, write_targets_file, MANIFEST,
                cycles=args.controller_cycles, interval=args.controller_interval)
        if args.generator:
            report["generator"] = generator_measurement(fleet, reachable, env, parallel=max(parallels),
                                                        connect_timeout=args.connect_timeout,
                                                        idle_server_cpu=idle_server_cpu)
        report["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_tables(report)
    return report


def generator_measurement(fleet: Fleet, reachable: Sequence[Endpoint], env: Mapping[str, str], *, parallel: int,
                          connect_timeout: int, idle_server_cpu: float) -> dict[str, Any]:
    """The same clusters as branches of one project of the Management API stand-in, through the generator.

    read_targets asks the stand-in for the branches, each branch's connection and its API keys; the
    generated targets take their project_url and service_role_key from the API, so the first apply updates
    those two secrets on every target, and a dry run after it plans nothing.
    """
    import secrets as token_source

    from localdb.management_api import ManagementApiStandIn

    token = token_source.token_urlsafe(16)
    with ManagementApiStandIn(token=token, rate_limit=10_000) as api:
        project = api.add_project("fleet-bench")
        for endpoint in reachable:
            api.add_branch(project.ref, endpoint.name, url=endpoint.url)
        path = fleet.base / "branches.yaml"
        path.write_text("version: 1\ngenerators:\n  - supabase_branches:\n"
                        f"      project_ref: {project.ref}\n      api_url: {api.url}\n"
                        "      access_token_env: FLEET_BENCH_ACCESS_TOKEN\n      include_default: false\n"
                        "      sslmode: disable\n      name_prefix: pr-\n"
                        "      secrets: {project_url: url, service_role_key: service_role_key}\n")
        generator_env = {**env, "FLEET_BENCH_ACCESS_TOKEN": token}
        t0 = time.perf_counter()
        listed = read_targets(str(path), generator_env)
        seconds = time.perf_counter() - t0
        requests = len(api.calls())
    branch_of = {e.name: e for e in reachable}
    generated = [Endpoint(t.name, "", "in-sync", branch_of[t.name.removeprefix("pr-")].member)
                 for t in listed.targets]
    common = {"env": generator_env, "repeat": 1, "connect_timeout": connect_timeout,
              "idle_server_cpu": idle_server_cpu}
    first = measure("generated: first apply", generated, listed.targets, apply=True, parallel=parallel, **common)
    again = measure("generated: dry-run", generated, listed.targets, apply=False, parallel=parallel, **common)
    return {"branches": len(reachable), "targets": len(listed.targets), "errors": list(listed.errors),
            "read_targets_s": round(seconds, 3), "api_requests": requests,
            "cycles": [first.report(), again.report()]}


def print_tables(report: dict[str, Any]) -> None:
    m, h, u = report["machine"], report["harness"], report["unreachable"]
    print(f"{report['command']}\n{m['date']}, {m['nproc']} cores, {m['ram_gib']} GiB, load {m['load_before']} "
          f"before / {m['load_after']} after")
    print(f"harness: {h['clusters']} clusters; template {h['template_s']} s; started in {h['start_s']} s "
          f"({h['start_parallel']} at a time, {h['start_per_cluster_s']} s each); "
          f"{h['pss_per_cluster_mib']} MiB PSS and {h['processes_per_cluster']} processes per cluster")
    print(f"idle clusters: {report['idle_server_cpu_per_s']} CPU s per s together (subtracted from DB CPU)")
    print(f"unreachable: {u['refused']} refused + {u['blackholed']} blackholed, connect timeout "
          f"{u['connect_timeout_s']} s; read_targets {report['read_targets_s'] * 1000:.1f} ms\n")
    print("| cycle | mode | parallel | targets | wall s (median) | p50 ms | p99 ms | CPU s | CPU ms/target "
          "| targets/min/core | DB CPU s | changes | failed |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in report["cycles"]:
        print(f"| {c['name']} | {c['mode']} | {c['parallel']} | {c['targets']} | {c['wall_s']:.2f} | {c['p50_ms']:.0f} "
              f"| {c['p99_ms']:.0f} | {c['cpu_s']:.2f} | {c['cpu_ms_per_target']:.1f} "
              f"| {c['targets_per_min_per_core'] or '-'} | {c['server_cpu_s']:.2f} | {c['changes']} "
              f"| {len(c['failed'])} |")
    failures: dict[str, dict[str, Any]] = {}
    for c in report["cycles"]:
        for f in c["failed"]:
            failures.setdefault(f["kind"], f)  # the first: at the fleet's own connect timeout
    for kind, f in sorted(failures.items()):
        print(f"\n{kind} target, e.g. {f['name']}: {f['seconds']} s: {f['error']}")
    print(f"\nchecks: {report['checks']}")
    if "generator" in report:
        g = report["generator"]
        print(f"\ngenerator supabase_branches (stand-in API): {g['targets']} targets from {g['branches']} branches, "
              f"read_targets {g['read_targets_s']} s ({g['api_requests']} requests); errors {g['errors']}")
        for c in g["cycles"]:
            print(f"  {c['name']}: wall {c['wall_s']} s, p50 {c['p50_ms']} ms, changes {c['changes']}, "
                  f"applied {c['applied']}, failed {len(c['failed'])}")
    if "controller" in report:
        c = report["controller"]
        print(f"\ncontroller: --interval {c['interval_s']}s --parallel {c['parallel']}, connect timeout "
              f"{c['connect_timeout_s']} s, {c['cycles_per_reading']} intervals per reading; /readyz after "
              f"{c['ready_s']} s; RSS per added target {c.get('rss_per_target_kib', '-')} KiB\n")
        print("| targets | target runs | CPU ms per run | run spacing p50 / max s | RSS MiB | peak RSS MiB "
              "| reconciler sessions max / mean | drift to correction s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for m in c["memory"]:
            spacing = m["run_spacing_s"]
            drifts = ", ".join(f"{d['drift']} {d['seconds']}" for d in m.get("drift_to_correction", [])) or "-"
            print(f"| {m['stage']} | {m['target_runs']} | {m['cpu_ms_per_run']} "
                  f"| {spacing.get('p50', '-')} / {spacing.get('max', '-')} "
                  f"| {m['rss_mib']} | {m['peak_rss_mib']} | {m['reconciler_sessions']['max']} / "
                  f"{m['reconciler_sessions']['mean']} | {drifts} |")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the clusters are stopped by then (stopping())
        sys.exit("fleet benchmark: interrupted; every cluster it started is stopped")
