"""Benchmark: what a connection's set-up costs before its first query, at 0, 20 and 100 ms round-trip time.

A hosted target (Supabase, a managed PostgreSQL) is reached over TCP with TLS and SCRAM-SHA-256; the test
clusters use trust over loopback. This starts a throwaway cluster, turns on ssl with a self-signed
certificate and scram-sha-256 for one role, and times `psycopg.connect(...)` (the set-up only: up to the
first ReadyForQuery) for three kinds of connection:

    trust                 no TLS, no password (the test clusters)
    SCRAM                 no TLS, scram-sha-256
    TLS + SCRAM           sslmode=require, scram-sha-256 (a hosted target)

through localdb's fault proxy with `tls=True` (the SSLRequest goes to the server, an encrypted connection
is relayed as bytes), which delays each direction by half the round-trip time and counts the round trips
(each time the client speaks after the server has). One cycle of the
single-database controller costs its set-up (when it connects every cycle) plus its reads: the numbers
say what keeping one connection between cycles would save.

Run: python bench/connect.py [--rtt-ms 0,20,100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from bench.common import cluster  # noqa: E402
from localdb.faultproxy import FaultProxy  # noqa: E402

ROLE, PASSWORD = "bench_remote", "bench-remote-password"
HBA = f"""local   all   all                       trust
hostssl all   {ROLE}   127.0.0.1/32  scram-sha-256
host    all   {ROLE}   127.0.0.1/32  scram-sha-256
host    all   all      127.0.0.1/32  trust
"""


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


def measure(url_for: Callable[[int], str], port: int, rtt_ms: int, repeat: int) -> tuple[int, float, bool]:
    """(round trips, median seconds, encrypted) of `repeat` connections' set-up, each through a proxy of its
    own: its round trips are then the ones up to the first ReadyForQuery, counted from the startup on."""
    times, trips, encrypted = [], set(), False
    for _ in range(repeat):
        with FaultProxy(port, c2s_delay=rtt_ms / 2000, s2c_delay=rtt_ms / 2000, tls=True) as proxy:
            started = time.perf_counter()
            conn = psycopg.connect(url_for(proxy.port), connect_timeout=10)
            times.append(time.perf_counter() - started)
            trips.add(proxy.turns)
            encrypted = conn.pgconn.ssl_in_use
            conn.close()
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
            for name in urls(0, c.database):
                results.setdefault(name, {})[rtt] = measure(lambda port, n=name: urls(port, c.database)[n], c.port,
                                                            rtt, args.repeat)
    print("| connection | round trips before the first query | TLS | "
          + " | ".join(f"{rtt} ms RTT: ms" for rtt in rtts) + " |")
    print("| --- | ---: | --- | " + " | ".join("---:" for _ in rtts) + " |")
    for name, by_rtt in results.items():
        trips, _, encrypted = by_rtt[rtts[0]]
        print(f"| {name} | {trips} | {'yes' if encrypted else 'no'} | "
              + " | ".join(f"{by_rtt[rtt][1] * 1000:.1f}" for rtt in rtts) + " |")


if __name__ == "__main__":
    main()
