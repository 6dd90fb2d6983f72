"""Shared set-up for the benchmarks: a throwaway cluster, generated manifests, round-trip counting.

Round trips are counted on the wire by a small TCP proxy (TurnCountingProxy): one round trip each time
the client speaks again after the server has answered.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import yaml

from localdb import Cluster, create_app_tables

ROOT = Path(__file__).resolve().parents[1]
SECRETS_ENV = {"SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_SERVICE_ROLE_KEY": "bench-srk",
               "CRON_SECRET": "bench-cron-secret"}


class TurnCountingProxy:
    """A TCP proxy in front of the server that counts round trips: each time the client sends after the
    server has answered counts one. Independent of the driver, so it measures what crosses the wire."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.turns = 0
        self.connections = 0  # accepted so far: each is one session the client opened
        self._last = "s2c"
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, "c2s"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "s2c"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if direction == "c2s" and self._last != "c2s":
                        self.turns += 1
                    self._last = direction
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def url(self, role: str = "postgres") -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/postgres?sslmode=disable"

    @contextmanager
    def counted(self) -> Iterator[Callable[[], int]]:
        start = self.turns
        yield lambda: self.turns - start

    @contextmanager
    def sessions(self) -> Iterator[Callable[[], int]]:
        """Connections opened within the block."""
        start = self.connections
        yield lambda: self.connections - start


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
