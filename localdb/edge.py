"""A stand-in for the Edge Function `run-scheduled-jobs`, so the whole pipeline can run locally.

master-scheduler (pg_cron) → net.http_post (pg_net, sent by networker.py) → this server →
public.job_executions and scheduled_jobs.last_run_at, which `reconcile verify` then reads.

`POST /functions/v1/run-scheduled-jobs` answers 401 unless the `x-cron-secret` header equals the
configured secret (compared in constant time); otherwise, in one transaction, every active
scheduled_jobs row that is due (never ran, or its schedule fired since last_run_at) gets one
job_executions row (status 'succeeded', started_at = completed_at = now()) and last_run_at = now(),
next_run_at = its next run; the answer is 200 `{"ran": N}`. Anything else is 404. The log names
events and counts, never the secret or a header.

    EdgeFunction(db_url, secret, port).start() ... .stop()          # tests: a thread in this process
    python -m localdb edge start|stop|status [--port 54321]          # detached, pid file in the root
    python -m localdb.edge --dsn URL --port N --secret-env NAME [--pid-file PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from localdb.proc import pid_in, runs_module
from localdb.proc import start as proc_start
from localdb.proc import stop as proc_stop

PATH = "/functions/v1/run-scheduled-jobs"
DEFAULT_PORT = 54321
MODULE = "localdb.edge"  # how the detached stand-in is started, and recognised by its command line
APPLICATION_NAME = "edge run-scheduled-jobs"

_DUE = """
SELECT id, schedule, last_run_at FROM public.scheduled_jobs
 WHERE is_active ORDER BY job_name FOR UPDATE SKIP LOCKED
"""
_RUN = """
WITH ran AS (
    INSERT INTO public.job_executions (job_id, started_at, completed_at, status, result)
    VALUES (%s, now(), now(), 'succeeded', jsonb_build_object('runner', 'localdb edge'))
)
UPDATE public.scheduled_jobs SET last_run_at = now(), next_run_at = %s WHERE id = %s
"""


def log(event: str, **fields: object) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"{stamp} edge: {event} {extra}".rstrip(), file=sys.stderr, flush=True)


def _next_run(schedule: str, after: datetime) -> datetime | None:
    from reconciler import cron

    try:
        runs = cron.parse(schedule).next_runs(after, 1)
    except cron.CronError:
        return None
    return runs[0] if runs else None


def run_due_jobs(dsn: str) -> int:
    """Run every active, due job once (as the real function would dispatch them); return how many."""
    ran = 0
    with psycopg.connect(dsn, connect_timeout=5, application_name=APPLICATION_NAME) as conn, conn.transaction():
        (now,) = conn.execute("SELECT now()").fetchone() or (None,)
        for job_id, schedule, last_run_at in conn.execute(_DUE).fetchall():
            due = last_run_at is None or ((fire := _next_run(schedule, last_run_at)) is not None and fire <= now)
            if not due:
                continue
            conn.execute(_RUN, (job_id, _next_run(schedule, now), job_id))
            ran += 1
    return ran


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.split("?", 1)[0] != PATH:
            self._answer(404, {"error": "not found"})
            return
        given = self.headers.get("x-cron-secret") or ""
        if not hmac.compare_digest(given.encode(), self.server.edge.secret.encode()):
            self.server.edge.note(401)
            log("request_rejected", status=401, reason="x-cron-secret missing" if not given else "x-cron-secret differs")
            self._answer(401, {"error": "unauthorized"})
            return
        try:
            ran = run_due_jobs(self.server.edge.dsn)
        except psycopg.Error as exc:
            self.server.edge.note(500)
            log("database_failed", error=type(exc).__name__)
            self._answer(500, {"error": "database error"})
            return
        self.server.edge.note(200)
        log("jobs_ran", ran=ran)
        self._answer(200, {"ran": ran})

    def do_GET(self) -> None:  # noqa: N802
        self._answer(404 if self.path != "/health" else 200, {"ok": self.path == "/health"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # the request line is logged by do_POST's events; headers never are


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    edge: EdgeFunction


class EdgeFunction:
    """The stand-in server in a background thread: `start()` binds (port 0 picks a free one), `stop()` closes."""

    def __init__(self, db_url: str, secret: str, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> None:
        if not secret:
            raise ValueError("the edge function needs a non-empty secret")
        self.dsn = db_url
        self.secret = secret
        self.host = host
        self.port = port
        self.statuses: list[int] = []  # the status of every POST answered, in order
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"EdgeFunction(port={self.port}, secret=(sensitive))"

    @property
    def url(self) -> str:
        """The base URL, what project_url holds on Supabase."""
        return f"http://{self.host}:{self.port}"

    def note(self, status: int) -> None:
        self.statuses.append(status)

    def start(self) -> EdgeFunction:
        server = _Server((self.host, self.port), _Handler)
        server.edge = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"edge:{self.port}", daemon=True)
        self._thread.start()
        log("started", port=self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EdgeFunction:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- detached process (python -m localdb edge start|stop) --------------------------------------------


def edge_command(cluster: Any, action: str, port: int | None, secret_env: str, database_url: str | None) -> int:
    """`python -m localdb edge start|stop|status`: the stand-in as a detached process of `cluster`'s root."""
    from localdb.errors import LocalDbError

    pid_file, log_file = cluster.root / "edge.pid", cluster.root / "edge.log"
    running = pid_in(pid_file)
    running = running if running and runs_module(running, MODULE) else None
    port = port or DEFAULT_PORT
    if action == "status":
        print(f"running (pid {running})" if running else "stopped")
        return 0 if running else 3
    if action == "stop":
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        if running:
            proc_stop(running)
        print("stopped")
        return 0
    if running:
        print(f"already running (pid {running}); `python -m localdb edge stop` first to change it")
        return 0
    if not os.environ.get(secret_env):
        raise LocalDbError(f"environment variable {secret_env} is not set or empty: it holds the secret "
                           "the stand-in accepts as x-cron-secret")
    with socket.socket() as probe:  # else readiness below would be "something answers", not "we do"
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LocalDbError(f"port {port} is in use ({exc.strerror}): stop what listens there or pass --port") \
                from None
    dsn = database_url or cluster.url()
    cluster.root.mkdir(parents=True, exist_ok=True)
    proc = proc_start(MODULE, ["--dsn", dsn, "--port", str(port), "--secret-env", secret_env,
                               "--pid-file", str(pid_file)], log_file=log_file, pid_file=pid_file, cwd=cluster.root)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # ready when it accepts connections
        if proc.poll() is not None:
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
            raise LocalDbError(f"the edge stand-in exited (status {proc.returncode}); see {log_file}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            print(f"http://127.0.0.1:{port}")
            return 0
        time.sleep(0.05)
    raise LocalDbError(f"the edge stand-in did not listen on port {port} within 10 s; see {log_file}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localdb.edge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret-env", default="CRON_SECRET",
                        help="environment variable holding the secret (never passed on the command line)")
    parser.add_argument("--pid-file", type=Path, default=None, help="exit once this file no longer names us")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        print(f"edge: environment variable {args.secret_env} is not set or empty", file=sys.stderr)
        sys.exit(1)
    edge = EdgeFunction(args.dsn, secret, args.port, args.host)
    try:
        edge.start()
    except OSError as exc:
        print(f"edge: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        sys.exit(1)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    started = time.monotonic()
    while not stopping.wait(1.0):
        if args.pid_file is not None and time.monotonic() - started > 2 and pid_in(args.pid_file) != os.getpid():
            log("pid_file_gone", path=args.pid_file)
            break
    edge.stop()
    log("stopped")


if __name__ == "__main__":
    main()
