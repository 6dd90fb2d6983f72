"""What pipeline verification adds to one fleet target's run: round trips, connections and CPU.

    python bench/fleet_verify.py [--repeat 30] [--json]

One local cluster (localdb's supabase profile) with scheduler.yaml applied, reached through a TCP proxy
that counts round trips (bench/common.py). Each row runs `runner.run_target` --repeat times as the fleet
controller does (an in-sync dry run, an in-sync apply), without and with the verification riding on the
run (`fleet.verification.FleetVerification`, due at every run, the evidence judged by verify's checks as
the controller does after the run). CPU is this process's (time.process_time) per run, judgement included;
wall is the median run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SECRETS_ENV, TurnCountingProxy, cluster, reset  # noqa: E402


def measure(repeat: int) -> list[dict[str, Any]]:
    from prometheus_client import CollectorRegistry

    from reconciler.fleet import runner
    from reconciler.fleet.target import Target, ValueSource
    from reconciler.fleet.verification import FleetVerification
    from reconciler.kinds.base import PlanOptions
    from reconciler.secret_value import SecretValue

    rows = []
    with cluster() as c, tempfile.TemporaryDirectory():
        reset(c)
        proxy = TurnCountingProxy(c.port)
        target = Target(name="bench", database_url=ValueSource(value=SecretValue(proxy.url())))
        files = [str(ROOT / "scheduler.yaml")]
        first = runner.run_target(target, files, SECRETS_ENV, PlanOptions(), apply=True)
        assert first.error is None, first.error
        for apply in (False, True):
            for verifying in (False, True):
                verification = FleetVerification(CollectorRegistry(), 0.0, apply=apply)
                verification.add("bench")
                riding: list[Any] = []

                def rider(manifest: Any, values: Any, v: FleetVerification = verification,
                          out: list[Any] = riding) -> Any:
                    read = v.start("bench", manifest)
                    out.append(read)
                    return read

                walls, cpus, turns, sessions, judged = [], [], [], [], 0
                for _ in range(repeat):
                    riding.clear()
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    with proxy.counted() as counted, proxy.sessions() as opened:
                        result = runner.run_target(target, files, SECRETS_ENV, PlanOptions(), apply=apply,
                                                   rider=rider if verifying else None)
                        if verifying and riding:
                            judged += verification.observe("bench", riding[0], result.plan, "scheduler.yaml") is not None
                        turns.append(counted())
                        sessions.append(opened())
                    cpus.append(time.process_time() - cpu0)
                    walls.append(time.perf_counter() - wall0)
                    assert result.error is None and result.changes == 0, result.error
                rows.append({"run": "in-sync apply" if apply else "in-sync dry run",
                             "verification": "on" if verifying else "off", "runs": repeat,
                             "verified": judged, "round_trips": statistics.median(turns),
                             "connections": statistics.median(sessions),
                             "cpu_ms": round(statistics.median(cpus) * 1000, 2),
                             "wall_ms": round(statistics.median(walls) * 1000, 2)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.repeat)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| run | verification | runs | verified | round trips | connections | CPU ms (median) | wall ms (median) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['run']} | {r['verification']} | {r['runs']} | {r['verified']} | {r['round_trips']:g} | "
              f"{r['connections']:g} | {r['cpu_ms']} | {r['wall_ms']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
