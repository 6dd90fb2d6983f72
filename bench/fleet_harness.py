"""The simulated fleet behind bench/fleet.py: K local clusters, unreachable targets, drifts, memory readings.

`Fleet` makes one template cluster of the supabase profile (initdb, bootstrap, supautils built once), then
K copies of it (`Cluster.create_from`: a file copy instead of initdb), started a few at a time, each with
small settings (`SMALL_SETTINGS`) and without the pg_net delivery worker (nothing in the benchmark sends
HTTP; 50 workers polling every 200 ms would be background load the measurements do not belong to).
`Fleet.stop()` stops every cluster it started; `stopping()` makes sure it runs on return, exception,
Ctrl-C, SIGTERM or SIGHUP (the signals are turned into SystemExit so `finally` blocks run) and, as a last
resort, at interpreter exit.

Unreachable targets come in two kinds: `refused` (a loopback port nobody listens on: the kernel answers
RST at once) and `blackholed` (a listening socket whose accept queue is kept full, so the kernel drops
every further SYN and the client waits for its connect timeout). The blackhole is local because this
machine's network answers connections to any outside address (10.255.255.1 included).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psycopg

from localdb import Cluster, create_app_tables

#: As small as keeps pg_cron (its launcher, a background worker, plus a libpq session per running job),
#: the vault and pg_net stand-ins and a reconciler's sessions working.
SMALL_SETTINGS = {
    "shared_buffers": "16MB",
    "max_connections": "20",
    "superuser_reserved_connections": "2",
    "max_worker_processes": "2",
    "max_parallel_workers": "0",
    "max_parallel_workers_per_gather": "0",
    "max_logical_replication_workers": "0",
    "autovacuum": "off",
    "wal_buffers": "256kB",
    "min_wal_size": "32MB",
    "max_wal_size": "64MB",
    "work_mem": "1MB",
    "maintenance_work_mem": "8MB",
    "jit": "off",
    "cron.max_running_jobs": "2",
}

#: The drifts a benchmark injects, in rotation: what a person or a script typically changes by hand.
DRIFTS = ("job", "trigger", "secret")
DRIFTED_JOB = "fetch_google_news"          # declared "*/5 * * * *"
DRIFTED_TRIGGER = "master-scheduler"
DRIFTED_SECRET = "cron_secret"


@dataclass
class Member:
    """One cluster of the fleet, as the benchmark's targets see it."""

    name: str
    cluster: Cluster

    @property
    def url(self) -> str:
        # TCP on loopback, as a fleet's remote databases are reached (no TLS: localdb has none).
        return self.cluster.tcp_url()

    @property
    def superuser_url(self) -> str:
        return self.cluster.superuser_url()


@dataclass
class HarnessCost:
    clusters: int
    template_seconds: float
    start_seconds: float
    start_parallel: int
    pss_per_cluster_mib: float
    processes_per_cluster: float

    def report(self) -> dict[str, float | int]:
        return {"clusters": self.clusters, "template_s": round(self.template_seconds, 2),
                "start_s": round(self.start_seconds, 2), "start_parallel": self.start_parallel,
                "start_per_cluster_s": round(self.start_seconds / max(self.clusters, 1), 3),
                "pss_per_cluster_mib": round(self.pss_per_cluster_mib, 1),
                "processes_per_cluster": round(self.processes_per_cluster, 1)}


@dataclass
class Fleet:
    """K clusters copied from one template, under one temporary directory that stop() removes."""

    count: int
    settings: dict[str, str] = field(default_factory=lambda: dict(SMALL_SETTINGS))
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="reconciler-fleet-")))
    members: list[Member] = field(default_factory=list)
    _started: list[Cluster] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, parallel: int = 4) -> HarnessCost:
        self.base.chmod(0o755)  # the postgres OS user (when we are root) must reach the sockets
        t0 = time.perf_counter()
        template = self._cluster("template")
        self._up(template)
        template.down()
        with self._lock:
            self._started.remove(template)
        template_seconds = time.perf_counter() - t0

        def make(i: int) -> Member:
            cluster = self._cluster(f"c{i:03d}")
            cluster.create_from(template)
            self._up(cluster)
            return Member(f"bench-{i:03d}", cluster)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            self.members = list(pool.map(make, range(self.count)))
        start_seconds = time.perf_counter() - t0
        shutil.rmtree(template.root, ignore_errors=True)
        readings = [cluster_memory(m.cluster) for m in self.members]
        pss = sum(r[0] for r in readings) / max(len(readings), 1)
        processes = sum(r[1] for r in readings) / max(len(readings), 1)
        return HarnessCost(self.count, template_seconds, start_seconds, parallel, pss / 1024, processes)

    def _cluster(self, name: str) -> Cluster:
        return Cluster(self.base / name, port=free_port(), settings=self.settings, net_worker=False)

    def _up(self, cluster: Cluster) -> None:
        with self._lock:
            self._started.append(cluster)  # before up(): a half-started cluster is stopped too
        cluster.up()

    def stop(self) -> None:
        """Stop every cluster this fleet started (a few at a time) and remove its directory."""
        with self._lock:
            started, self._started = self._started, []
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(_down_quietly, started))
        shutil.rmtree(self.base, ignore_errors=True)


def _down_quietly(cluster: Cluster) -> None:
    with contextlib.suppress(Exception):
        cluster.down()


@contextlib.contextmanager
def stopping(*closers: Callable[[], None]) -> Iterator[None]:
    """Run `closers` when the block ends however it ends: exception, Ctrl-C, SIGTERM, SIGHUP, exit."""
    done = threading.Event()

    def close_all() -> None:
        if done.is_set():
            return
        done.set()
        for close in closers:
            with contextlib.suppress(Exception):
                close()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    atexit.register(close_all)
    try:
        yield
    finally:
        # A second Ctrl-C while the clusters stop must not leave some running.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            close_all()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            atexit.unregister(close_all)


# -- unreachable targets --------------------------------------------------------------------------


class Blackhole:
    """A loopback port that drops SYNs: it listens with a backlog of 0 and its queue is kept full."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port = self._server.getsockname()[1]
        self._fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)
        time.sleep(0.1)  # let the handshakes fill the queue before anyone else connects

    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def close(self) -> None:
        for sock in (*self._fillers, self._server):
            sock.close()


def refused_url() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- state of the members -------------------------------------------------------------------------


def seed_tables(member: Member) -> None:
    """The runbook's starting point: the application's tables, empty, owned by postgres."""
    with psycopg.connect(member.cluster.url(), autocommit=True) as conn:
        create_app_tables(conn)


def drift(member: Member, what: str) -> None:
    """Change one declared object by hand, as the superuser: a job's schedule, the trigger, a secret."""
    statements = {
        "job": ("UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = %s", DRIFTED_JOB),
        "trigger": ("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %s", DRIFTED_TRIGGER),
        "secret": ("SELECT vault.update_secret(id, md5(random()::text)) FROM vault.secrets WHERE name = %s",
                   DRIFTED_SECRET),
    }
    query, argument = statements[what]
    with psycopg.connect(member.superuser_url, autocommit=True) as conn:
        conn.execute(query, (argument,))


def history_rows(member: Member) -> int:
    with psycopg.connect(member.superuser_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM reconciler.history").fetchone()
    return int(row[0]) if row else 0


# -- memory and CPU of processes ------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (shared_buffers, the binary) divided among their users."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def status_kib(pid: int, key: str) -> int:
    """VmRSS, VmHWM... of a process from /proc/<pid>/status (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def postmaster_pid(cluster: Cluster) -> int | None:
    try:
        return int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cluster_memory(cluster: Cluster) -> tuple[int, int]:
    """(PSS in KiB, number of processes) of a cluster's server: the postmaster and its children."""
    pid = postmaster_pid(cluster)
    if pid is None:
        return 0, 0
    pids = [pid, *children(pid)]
    return sum(pss_kib(p) for p in pids), len(pids)


def server_cpu_seconds(clusters: list[Cluster]) -> float:
    """CPU time of the clusters' servers so far: postmasters with their reaped children, and live children.

    A backend's time moves into its postmaster's cutime/cstime when it exits, so one reading before and
    one after a cycle give what the cycle cost the databases (pg_cron's own work included).
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for cluster in clusters:
        pid = postmaster_pid(cluster)
        if pid is None:
            continue
        total += _cpu_ticks(pid, with_reaped=True)
        total += sum(_cpu_ticks(child, with_reaped=False) for child in children(pid))
    return total / ticks


def _cpu_ticks(pid: int, *, with_reaped: bool) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is the state (field 3): utime, stime, cutime, cstime are fields 14-17
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return utime + stime + ((cutime + cstime) if with_reaped else 0)
