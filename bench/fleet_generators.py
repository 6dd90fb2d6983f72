"""Generator refreshes at fleet scale: Management API requests per replica and the time to refresh.

    python bench/fleet_generators.py                    # 1,000 projects and 300 branches, 1 and 4 replicas
    python bench/fleet_generators.py --paced            # also 4 replicas at once on one token's rate limit
    python bench/fleet_generators.py --json

Against the Management API stand-in (localdb/management_api.py): `supabase_projects` over N projects
(each needing its API keys) and `supabase_branches` over M branches of one project (details and keys).
For each replica of R (`read_targets` with its shard and its own `GeneratorCache`, as the fleet controller
does) three refreshes are counted at the stand-in: the first, one with nothing changed, and one after 10
new branches (10 new projects for the projects generator). The stand-in's rate limit is lifted for these
counts, so "time s" is the client's and the stand-in's own cost on this machine, not the API's pacing;
"at 120/min" is what the refresh takes inside the replica's share of a token's budget: requests / (120 / R)
minutes. `--paced` runs R replicas at once against the stand-in at the API's ratio, scaled 10x faster (120
requests per 6 s window), and reports 429 answers and the wall time (x10: the real-time estimate).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localdb.management_api import ManagementApiStandIn  # noqa: E402
from reconciler.fleet.generator_cache import GeneratorCache  # noqa: E402
from reconciler.fleet.targets_file import read_targets  # noqa: E402

TOKEN = "bench-management-token"
BUDGET_PER_MINUTE = 120


def _projects_file(directory: Path, api: ManagementApiStandIn) -> Path:
    path = directory / "projects.yaml"
    path.write_text(f"version: 1\ngenerators:\n  - supabase_projects:\n      api_url: {api.url}\n"
                    "      secrets: {service_role_key: service_role_key, project_url: url}\n")
    return path


def _branches_file(directory: Path, api: ManagementApiStandIn, ref: str) -> Path:
    path = directory / "branches.yaml"
    path.write_text(f"version: 1\ngenerators:\n  - supabase_branches:\n      project_ref: {ref}\n"
                    f"      api_url: {api.url}\n      secrets: {{service_role_key: service_role_key, project_url: url}}\n")
    return path


def _environ(api: ManagementApiStandIn) -> dict[str, str]:
    return {"SUPABASE_ACCESS_TOKEN": TOKEN,
            **{f"SUPABASE_DB_PASSWORD_{ref.upper()}": f"bench-pw-{i}" for i, ref in enumerate(api.projects)}}


def counted(api: ManagementApiStandIn, path: Path, cache: GeneratorCache, shard: tuple[int, int],
            grow: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """First refresh, nothing changed, after `grow`: requests and seconds for this replica."""
    rows = []
    for stage in ("first", "unchanged", "10 new"):
        if stage == "10 new" and grow is not None:
            grow()
        environ = _environ(api)
        api.clear()
        started = time.perf_counter()
        listing = read_targets(str(path), environ, cache=cache, shard=shard)
        seconds = time.perf_counter() - started
        assert not listing.errors, listing.errors[:3]
        rows.append({"stage": stage, "requests": len(api.requests), "targets": len(listing.targets),
                     "seconds": round(seconds, 3)})
    return rows


def measure(kind: str, items: int, replicas: int) -> list[dict[str, Any]]:
    out = []
    for ordinal in range(replicas):
        with ManagementApiStandIn(token=TOKEN, rate_limit=10**9) as api, tempfile.TemporaryDirectory() as tmp:
            if kind == "projects":
                for i in range(items):
                    api.add_project(f"tenant-{i:04d}")
                path = _projects_file(Path(tmp), api)

                def grow() -> None:
                    for i in range(10):
                        api.add_project(f"tenant-new-{i}")
            else:
                parent = api.add_project("app").ref
                for i in range(items):
                    api.add_branch(parent, f"pr-{i:04d}")
                path = _branches_file(Path(tmp), api, parent)

                def grow(parent: str = parent) -> None:
                    for i in range(10):
                        api.add_branch(parent, f"pr-new-{i}")
            rows = counted(api, path, GeneratorCache(replicas=replicas), (ordinal, replicas), grow)
        for row in rows:
            minutes = row["requests"] / (BUDGET_PER_MINUTE / replicas)
            out.append({"generator": kind, "items": items, "replicas": replicas, "ordinal": ordinal, **row,
                        "minutes_at_budget": round(minutes, 2)})
    return out


def paced(items: int, replicas: int, window: float = 6.0) -> dict[str, Any]:
    """R replicas at once, one token, 120 requests per `window` seconds: 429s and the wall time."""
    with ManagementApiStandIn(token=TOKEN, rate_limit=BUDGET_PER_MINUTE, rate_window=window) as api, \
            tempfile.TemporaryDirectory() as tmp:
        for i in range(items):
            api.add_project(f"tenant-{i:04d}")
        path = _projects_file(Path(tmp), api)
        environ = _environ(api)
        caches = [GeneratorCache(replicas=replicas, rate_window=window) for _ in range(replicas)]
        walls: list[float] = [0.0] * replicas
        errors: list[int] = [0] * replicas

        def one(ordinal: int) -> None:
            started = time.perf_counter()
            errors[ordinal] = len(read_targets(str(path), environ, cache=caches[ordinal],
                                               shard=(ordinal, replicas)).errors)
            walls[ordinal] = time.perf_counter() - started

        threads = [threading.Thread(target=one, args=(i,)) for i in range(replicas)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = [r.status for r in api.requests]
    return {"items": items, "replicas": replicas, "window_s": window, "requests": len(statuses),
            "answered_429": statuses.count(429), "errors": sum(errors), "wall_s": round(max(walls), 1),
            "real_time_estimate_min": round(max(walls) * 60 / window / 60, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--branches", type=int, default=300)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--paced", action="store_true", help="also R replicas at once on one token's rate limit")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [row for replicas in args.replicas for kind, items in (("projects", args.projects),
                                                                   ("branches", args.branches))
            for row in measure(kind, items, replicas)]
    report: dict[str, Any] = {"refreshes": rows}
    if args.paced:
        report["paced"] = [paced(args.projects, r) for r in args.replicas]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("| generator | items | replicas | refresh | requests per replica (min-max) | targets per replica | "
          "time s (max) | at 120/min, min (max) |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    keys = sorted({(r["generator"], r["items"], r["replicas"], r["stage"]) for r in rows},
                  key=lambda k: (k[2], k[0] != "projects", ["first", "unchanged", "10 new"].index(k[3])))
    for key in keys:
        group = [r for r in rows if (r["generator"], r["items"], r["replicas"], r["stage"]) == key]
        req = [r["requests"] for r in group]
        tgt = [r["targets"] for r in group]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {min(req)}-{max(req)} | {min(tgt)}-{max(tgt)} | "
              f"{max(r['seconds'] for r in group):.2f} | {max(r['minutes_at_budget'] for r in group):.2f} |")
    for p in report.get("paced", []):
        print(f"\npaced: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
