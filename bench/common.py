"""Shared set-up for the benchmarks: a throwaway cluster, generated manifests, round-trip counting.

Round trips are counted on the wire by localdb's fault proxy (localdb/faultproxy.py, here TurnCountingProxy):
one round trip each time the client speaks again after the server has answered.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import yaml

from localdb import Cluster, create_app_tables
from localdb.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parents[1]
SECRETS_ENV = {"SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_SERVICE_ROLE_KEY": "bench-srk",
               "CRON_SECRET": "bench-cron-secret"}


#: The round-trip counter is localdb's fault proxy (without faults armed, it only forwards and counts).
TurnCountingProxy = FaultProxy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
    root.chmod(0o755)
    c = Cluster(root, port=free_port())
    c.up()
    try:
        yield c
    finally:
        c.down()


def manifest_file(n_jobs: int, directory: Path) -> Path:
    """scheduler.yaml with its 13 jobs, padded with generated ones to n_jobs."""
    doc = yaml.safe_load((ROOT / "scheduler.yaml").read_text())
    jobs = doc["jobs"][:n_jobs]
    for i in range(len(jobs), n_jobs):
        jobs.append({"name": f"bench_job_{i:05d}", "type": "bench", "schedule": f"{i % 60} * * * *",
                     "endpoint": f"/functions/v1/bench-{i}", "description": f"generated job {i}"})
    doc["jobs"] = jobs
    path = directory / f"scheduler-{n_jobs}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def reset(c: Cluster) -> None:
    with psycopg.connect(c.superuser_url(), autocommit=True) as conn:
        conn.execute("DROP EXTENSION IF EXISTS pg_cron, pg_net, supabase_vault CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS reconciler, vault, net, cron CASCADE")
        conn.execute("DROP TABLE IF EXISTS public.job_executions, public.scheduled_jobs CASCADE")
        conn.execute("SET ROLE postgres")  # the application owns its tables, as on Supabase
        create_app_tables(conn)


def median_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def env() -> None:
    os.environ.update(SECRETS_ENV)
