"""Benchmark: apply from empty and re-apply (no-op) for 13, 1,000 and 10,000 jobs.

Reports round trips (counted on the wire) and median wall times; the no-op apply is compared with a
plain plan (read + plan). Run: python bench/apply.py [--repeat 5]
Targets (issue 5): round trips for applying N job rows do not grow with N; 10,000 rows applied in
under 5 s; a no-op apply costs no more than a plan.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import TurnCountingProxy, cluster, env, manifest_file, median_ms, reset  # noqa: E402
from reconciler.engine.apply import apply, read_and_plan  # noqa: E402
from reconciler.engine.sources import resolve_secrets  # noqa: E402
from reconciler.kinds.base import PlanOptions  # noqa: E402
from reconciler.manifest import load_manifest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="13,1000,10000")
    args = parser.parse_args()
    env()
    rows = []
    with cluster() as c, tempfile.TemporaryDirectory() as tmp:
        proxy = TurnCountingProxy(c.port)
        for n in (int(s) for s in args.sizes.split(",")):
            manifest = load_manifest([str(manifest_file(n, Path(tmp)))])
            values = resolve_secrets(manifest, os.environ)

            def from_empty(n=n, manifest=manifest, values=values) -> float:
                reset(c)
                t0 = time.perf_counter()
                result = apply(c.url(), manifest, values, PlanOptions())
                assert result.plan.counts()["create"] >= n
                return (time.perf_counter() - t0) * 1000

            times = sorted(from_empty() for _ in range(args.repeat))
            empty_ms = times[len(times) // 2]
            reset(c)
            with proxy.counted() as trips:
                apply(proxy.url(), manifest, values, PlanOptions())
            empty_trips = trips()
            with proxy.counted() as trips:
                apply(proxy.url(), manifest, values, PlanOptions())
            noop_trips = trips()
            noop_ms, result = median_ms(lambda m=manifest, v=values: apply(c.url(), m, v, PlanOptions()),
                                        args.repeat)
            assert result.plan.is_empty
            plan_ms, _ = median_ms(lambda m=manifest, v=values: read_and_plan(c.url(), m, v, PlanOptions()),
                                   args.repeat)
            with proxy.counted() as trips:
                read_and_plan(proxy.url(), manifest, values, PlanOptions())
            rows.append((n, empty_trips, empty_ms, noop_trips, noop_ms, trips(), plan_ms))
    print("| jobs | apply from empty: round trips | median ms | no-op apply: round trips | median ms "
          "| dry-run plan: round trips | median ms |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, et, ems, nt, nms, pt, pms in rows:
        print(f"| {n:,} | {et} | {ems:.0f} | {nt} | {nms:.1f} | {pt} | {pms:.1f} |")


if __name__ == "__main__":
    main()
