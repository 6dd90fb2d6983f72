"""Benchmark: what each round trip costs users, `reconcile` run at 0, 20 and 100 ms round-trip time.

The rows of issue 31's table, each a whole `reconcile` command (in process, through click) against
localdb's fault proxy, which delays each direction by half the round-trip time and counts the round
trips on the wire once the connection is set up (from the server's first ReadyForQuery, the closing
Terminate excluded), with the connections each opened; the set-up's own round trips are measured once
(trust authentication over loopback here: TLS and SCRAM to a hosted target add their own):

    no-op --dry-run, no-op --apply           on the in-sync state (scheduler.yaml applied)
    first --apply (runbook)                  from the runbook's starting state (app tables empty, no extensions)
    --apply correcting one drifted job       one job's schedule edited behind the reconciler's back
    first --apply of 1,013 jobs              scheduler.yaml padded with 1,000 generated jobs, from the start state

Run: python bench/latency.py [--rtt-ms 0,20,100]. tests/integration/cli/test_round_trips.py asserts the
counts (not the times) with the same steps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from bench.common import ROOT, SECRETS_ENV, cluster, manifest_file, reset  # noqa: E402
from localdb.faultproxy import FaultProxy  # noqa: E402
from reconciler.cli.main import main as reconcile_main  # noqa: E402

MANIFEST = ROOT / "scheduler.yaml"
DRIFTED_JOB, DRIFTED_SCHEDULE = "ttl_cleanup", "1 2 3 4 5"
ROWS = ("no-op --dry-run", "no-op --apply", "first --apply (runbook, 20 changes)",
        "--apply correcting one drifted job", "first --apply of 1,013 jobs")


@dataclass(frozen=True)
class Measured:
    row: str
    round_trips: int  # after set-up
    connections: int
    seconds: float


def run_cli(url: str, manifest: Path, *args: str) -> None:
    result = CliRunner().invoke(reconcile_main, ["-f", str(manifest), *args],
                                env={**SECRETS_ENV, "DATABASE_URL": url}, catch_exceptions=False)
    if result.exit_code != 0:
        raise AssertionError(f"reconcile {' '.join(args)} exited {result.exit_code}: {result.output}")


def settled(proxy: FaultProxy) -> None:
    """Wait until the proxy has relayed the last bytes (the closing Terminate arrives after the command)."""
    last = -1
    while last != (last := proxy.turns):
        time.sleep(0.05 + proxy.c2s_delay + proxy.s2c_delay)


def measure(proxy: FaultProxy, row: str, manifest: Path, *args: str) -> Measured:
    """One `reconcile -f manifest ARGS` through `proxy`, its round trips counted."""
    settled(proxy)
    with proxy.counted_after_setup() as trips, proxy.sessions() as sessions:
        started = time.perf_counter()
        run_cli(proxy.url(), manifest, *args)
        seconds = time.perf_counter() - started
        settled(proxy)
        return Measured(row, trips(), sessions(), seconds)


def setup_round_trips(port: int) -> int:
    """A connection's start-up, counted on a fresh proxy: everything before the first ReadyForQuery."""
    with FaultProxy(port) as proxy, proxy.counted() as total:
        psycopg.connect(proxy.url()).close()
        settled(proxy)
        return total() - 1 - proxy.turns_after_setup  # the Terminate is not one


def drift(superuser_url: str) -> None:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute("UPDATE public.scheduled_jobs SET schedule = %s WHERE job_name = %s",
                     (DRIFTED_SCHEDULE, DRIFTED_JOB))


def small_rows(proxy: FaultProxy, superuser_url: str, start_state: Callable[[], None]) -> list[Measured]:
    """The rows on scheduler.yaml: first apply from `start_state`, the no-ops, one drift corrected."""
    start_state()
    first = measure(proxy, ROWS[2], MANIFEST, "--apply")
    dry = measure(proxy, ROWS[0], MANIFEST, "--dry-run")
    noop = measure(proxy, ROWS[1], MANIFEST, "--apply")
    drift(superuser_url)
    corrected = measure(proxy, ROWS[3], MANIFEST, "--apply")
    return [dry, noop, first, corrected]


def large_row(proxy: FaultProxy, manifest_1013: Path, start_state: Callable[[], None]) -> Measured:
    start_state()
    return measure(proxy, ROWS[4], manifest_1013, "--apply")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtt-ms", default="0,20,100")
    args = parser.parse_args()
    rtts = [int(s) for s in args.rtt_ms.split(",")]
    results: dict[int, list[Measured]] = {}
    with cluster() as c, tempfile.TemporaryDirectory() as tmp:
        big = manifest_file(1013, Path(tmp))
        for rtt in rtts:
            with FaultProxy(c.port, c2s_delay=rtt / 2000, s2c_delay=rtt / 2000) as proxy:
                rows = small_rows(proxy, c.superuser_url(), lambda: reset(c))
                rows.append(large_row(proxy, big, lambda: reset(c)))
            results[rtt] = rows
        setup = setup_round_trips(c.port)
    first = results[rtts[0]]
    print(f"connection set-up: {setup} round trip(s) before the counted ones, in every row\n")
    print("| run | round trips (after set-up) | connections | "
          + " | ".join(f"{rtt} ms RTT: s" for rtt in rtts) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in rtts) + " |")
    for i, m in enumerate(first):
        counts = {results[rtt][i].round_trips for rtt in rtts}
        trips = str(m.round_trips) if len(counts) == 1 else "/".join(str(results[r][i].round_trips) for r in rtts)
        print(f"| {m.row} | {trips} | {m.connections} | "
              + " | ".join(f"{results[rtt][i].seconds:.2f}" for rtt in rtts) + " |")


if __name__ == "__main__":
    main()
