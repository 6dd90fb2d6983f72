"""Benchmark: in-sync plans for 13, 1,000 and 10,000 jobs against the local database.

Reports the round trips of reading the live state and the median wall time of the read and of the
pure plan() separately. Run: python bench/plan.py [--repeat 7]
Targets (issue 4): round trips constant in N (at most 4); 10,000-job read + plan under 1 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import TurnCountingProxy, cluster, env, manifest_file, median_ms, reset  # noqa: E402
from reconciler.engine import db  # noqa: E402
from reconciler.engine.apply import apply  # noqa: E402
from reconciler.engine.sources import resolve_secrets  # noqa: E402
from reconciler.kinds.base import PlanOptions  # noqa: E402
from reconciler.manifest import load_manifest  # noqa: E402
from reconciler.plan import plan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--sizes", default="13,1000,10000")
    args = parser.parse_args()
    env()
    rows = []
    with cluster() as c, tempfile.TemporaryDirectory() as tmp:
        url = c.url()
        proxy = TurnCountingProxy(c.port)
        for n in (int(s) for s in args.sizes.split(",")):
            reset(c)
            manifest = load_manifest([str(manifest_file(n, Path(tmp)))])
            values = resolve_secrets(manifest, os.environ)
            apply(url, manifest, values, PlanOptions())
            with db.connect(proxy.url(), autocommit=True) as conn:
                db.read_live(conn, manifest)  # warm caches
                with proxy.counted() as trips:
                    db.read_live(conn, manifest)
                round_trips = trips()
            with db.connect(url, autocommit=True) as conn:  # timed without the proxy in the way
                db.read_live(conn, manifest)
                read_ms, live = median_ms(lambda conn=conn, m=manifest: db.read_live(conn, m), args.repeat)
            plan_ms, result = median_ms(
                lambda m=manifest, lv=live, v=values: plan(m, lv, v, PlanOptions()), args.repeat)
            assert result.is_empty, "benchmark state is not in sync"
            rows.append((n, round_trips, read_ms, plan_ms))
    print("| jobs | round trips (read) | read median ms | plan median ms | read + plan ms |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n, trips_, read_ms, plan_ms in rows:
        print(f"| {n:,} | {trips_} | {read_ms:.1f} | {plan_ms:.1f} | {read_ms + plan_ms:.1f} |")


if __name__ == "__main__":
    main()
