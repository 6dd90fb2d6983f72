"""Benchmark: what a connection's set-up costs before its first query, at 0, 20 and 100 ms round-trip time.

A hosted target (Supabase, a managed PostgreSQL) is reached over TCP with TLS and SCRAM-SHA-256; the test
clusters use trust over loopback. This starts a throwaway cluster, turns on ssl with a self-signed
certificate and scram-sha-256 for one role, and times `psycopg.connect(...)` (the set-up only: up to the
first ReadyForQuery) for three kinds of connection:

    trust                 no TLS, no password (the test clusters)
    SCRAM                 no TLS, scram-sha-256
    TLS + SCRAM           sslmode=require, scram-sha-256 (a hosted target)

through a loopback relay that delays each direction by half the round-trip time and counts the round
trips (each time the client speaks after the server has). localdb's fault proxy frames the protocol and
answers SSLRequest itself, so it cannot carry TLS; the relay here forwards bytes only. One cycle of the
single-database controller costs its set-up (when it connects every cycle) plus its reads: the numbers
say what keeping one connection between cycles would save.

Run: python bench/connect.py [--rtt-ms 0,20,100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import heapq
import os
import pwd
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from bench.common import cluster  # noqa: E402

ROLE, PASSWORD = "bench_remote", "bench-remote-password"
HBA = f"""local   all   all                       trust
hostssl all   {ROLE}   127.0.0.1/32  scram-sha-256
host    all   {ROLE}   127.0.0.1/32  scram-sha-256
host    all   all      127.0.0.1/32  trust
"""


class DelayingRelay:
    """Loopback TCP relay: each direction's bytes leave `delay` seconds after they arrived; round trips counted."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.turns = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            last = {"direction": "s2c"}  # per connection: who spoke last
            threading.Thread(target=self._pump, args=(client, upstream, "c2s", last), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "s2c", last), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str, last: dict[str, str]) -> None:
        queue: list[tuple[float, int, bytes]] = []
        ready = threading.Condition()
        done = threading.Event()

        def send() -> None:
            while True:
                with ready:
                    while not queue and not done.is_set():
                        ready.wait()
                    if not queue:
                        break
                    due, _, data = queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        ready.wait(wait)
                        continue
                    heapq.heappop(queue)
                try:
                    dst.sendall(data)
                except OSError:
                    return
            dst.close()

        threading.Thread(target=send, daemon=True).start()
        n = 0
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with self._lock:
                if direction == "c2s" and last["direction"] == "s2c":
                    self.turns += 1
                last["direction"] = direction
            with ready:
                n += 1
                heapq.heappush(queue, (time.monotonic() + self.delay, n, data))
                ready.notify()
        done.set()
        with ready:
            ready.notify()

    def close(self) -> None:
        self._listener.close()


def configure(c: object, root: Path) -> None:
    """ssl = on with a self-signed certificate, scram-sha-256 for ROLE over TCP."""
    datadir: Path = c.datadir  # type: ignore[attr-defined]
    key, crt = root / "server.key", root / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    owner = pwd.getpwuid(datadir.stat().st_uid)
    for path in (key, crt):
        os.chown(path, owner.pw_uid, owner.pw_gid)
    key.chmod(0o600)
    (datadir / "pg_hba.conf").write_text(HBA)
    with psycopg.connect(c.superuser_url(), autocommit=True) as conn:  # type: ignore[attr-defined]
        conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("ALTER SYSTEM SET ssl = on")
        conn.execute(f"ALTER SYSTEM SET ssl_cert_file = '{crt}'")
        conn.execute(f"ALTER SYSTEM SET ssl_key_file = '{key}'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)


def urls(port: int, database: str) -> dict[str, str]:
    base = f"127.0.0.1:{port}/{database}"
    return {"trust": f"postgresql://postgres@{base}?sslmode=disable",
            "SCRAM": f"postgresql://{ROLE}:{PASSWORD}@{base}?sslmode=disable",
            "TLS + SCRAM": f"postgresql://{ROLE}:{PASSWORD}@{base}?sslmode=require"}


def measure(url: str, relay: DelayingRelay, repeat: int) -> tuple[int, float, bool]:
    """(round trips, median seconds, encrypted) of `repeat` connections' set-up."""
    times, trips, encrypted = [], set(), False
    for _ in range(repeat):
        before = relay.turns
        started = time.perf_counter()
        conn = psycopg.connect(url, connect_timeout=10)
        times.append(time.perf_counter() - started)
        trips.add(relay.turns - before)
        encrypted = conn.pgconn.ssl_in_use
        conn.close()
        time.sleep(0.1 + 4 * relay.delay)  # its Terminate relayed before the next one counts
    assert len(trips) == 1, trips
    return trips.pop(), statistics.median(times), encrypted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtt-ms", default="0,20,100")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rtts = [int(s) for s in args.rtt_ms.split(",")]
    results: dict[str, dict[int, tuple[int, float, bool]]] = {}
    with cluster() as c, tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        configure(c, Path(tmp))
        for rtt in rtts:
            relay = DelayingRelay(c.port, rtt / 2000)
            try:
                for name, url in urls(relay.port, c.database).items():
                    results.setdefault(name, {})[rtt] = measure(url, relay, args.repeat)
            finally:
                relay.close()
    print("| connection | round trips before the first query | TLS | "
          + " | ".join(f"{rtt} ms RTT: ms" for rtt in rtts) + " |")
    print("| --- | ---: | --- | " + " | ".join("---:" for _ in rtts) + " |")
    for name, by_rtt in results.items():
        trips, _, encrypted = by_rtt[rtts[0]]
        print(f"| {name} | {trips} | {'yes' if encrypted else 'no'} | "
              + " | ".join(f"{by_rtt[rtt][1] * 1000:.1f}" for rtt in rtts) + " |")


if __name__ == "__main__":
    main()
