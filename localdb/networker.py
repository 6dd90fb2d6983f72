"""The pg_net stand-in's background worker: sends queued HTTP requests and records the responses.

Real pg_net is a C background worker inside the server; our SQL-only stand-in
(`extensions/pg_net--0.20.4.sql`) only queues rows, and this process, started detached by
`Cluster.up()` and stopped by `Cluster.down()`, does the rest exactly as pg_net does: it takes
committed rows from `net.http_request_queue` (deleting them), performs each request with its timeout
and writes `net._http_response` (id = request id, status/headers/content, or timed_out/error_msg with
curl's wording). Responses older than 6 hours (`pg_net.ttl`) are deleted.

It wakes on `NOTIFY pg_net_queue` (sent by `net.wake()`) and polls every 200 ms anyway. It survives
the extension being dropped and recreated and the server restarting (reconnects with backoff), and
exits by itself once its pid file no longer names it (`Cluster.down()`, or the root being removed).

    python -m localdb.networker --dsn URL --pid-file PATH [--ready-file PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import psycopg
from psycopg import errors as pgerrors

from localdb.proc import pid_in

VERSION = "0.20.4"
APPLICATION_NAME = f"pg_net {VERSION} worker"
CHANNEL = "pg_net_queue"
POLL_SECONDS = 0.2
BATCH_SIZE = 200
TTL = "6 hours"
TTL_EVERY_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 5.0
STARTUP_SECONDS = 10.0
STARTUP_RETRY_SECONDS = 0.02
THREADS = 32

_TAKE = f"""
WITH rows AS (
    SELECT id FROM net.http_request_queue ORDER BY id LIMIT {BATCH_SIZE} FOR UPDATE SKIP LOCKED
)
DELETE FROM net.http_request_queue q USING rows WHERE q.id = rows.id
RETURNING q.id, q.method, q.url, q.timeout_milliseconds, q.headers, q.body,
          'net._http_response'::regclass::oid
"""

# The table's oid guards against writing a stale answer into a recreated extension, where request
# ids start again at 1.
_INSERT = """
INSERT INTO net._http_response (id, status_code, content, headers, content_type, timed_out, error_msg)
SELECT %s, %s, %s, %s, %s, %s, %s
WHERE to_regclass('net._http_response')::oid = %s
"""

_INSTALLED = "SELECT to_regclass('net.http_request_queue') IS NOT NULL"

_EXPIRE = f"DELETE FROM net._http_response WHERE created < now() - interval '{TTL}'"


@dataclass(frozen=True)
class Request:
    id: int
    method: str
    url: str
    timeout_ms: int
    headers: Mapping[str, Any] | None
    body: bytes | None
    table_oid: int


@dataclass(frozen=True)
class Response:
    """One row of net._http_response, with pg_net's choice of NULLs."""

    id: int
    status_code: int | None = None
    content: str | None = None
    headers: dict[str, str] | None = None
    content_type: str | None = None
    timed_out: bool = False
    error_msg: str | None = None


def log(event: str, **fields: object) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"{stamp} pg_net worker: {event} {extra}".rstrip(), file=sys.stderr, flush=True)


# -- HTTP -------------------------------------------------------------------------------------------
# The standard library's http.client, not httpx: the worker starts with every `up()`, and import time
# is most of its start-up.

MAX_REDIRECTS = 30  # curl's default for CURLOPT_FOLLOWLOCATION
_REDIRECTS = (301, 302, 303, 307, 308)


class _Timeout(Exception):
    """The request's timeout ran out; phase is `connect` or `http`, for the message."""

    def __init__(self, phase: str) -> None:
        self.phase = phase


class _Failed(Exception):
    """The request failed; message is curl_easy_strerror() of what curl would have returned."""

    def __init__(self, message: str) -> None:
        self.message = message


def send(req: Request) -> Response:
    """Perform one request as pg_net's curl handle would, and describe the outcome as pg_net does."""
    started = time.monotonic()
    deadline = started + req.timeout_ms / 1000 if req.timeout_ms > 0 else None
    try:
        return _follow(req, deadline)
    except _Timeout as exc:
        return Response(req.id, timed_out=True, error_msg=_timeout_message(req, exc.phase, started))
    except _Failed as exc:
        return Response(req.id, error_msg=exc.message)


def _follow(req: Request, deadline: float | None) -> Response:
    url, method, body = req.url, req.method.upper(), req.body
    headers = _request_headers(req.headers)
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return Response(req.id, error_msg="Unsupported protocol")
        status, raw_headers, data = _exchange(parts, method, headers, body, deadline)
        location = next((v for k, v in raw_headers if k.lower() == "location"), None)
        if status not in _REDIRECTS or location is None:
            return _response(req.id, status, raw_headers, data)
        url = urljoin(url, location)
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, body = "GET", None  # what curl does without CURLOPT_POSTREDIR
    return Response(req.id, error_msg="Number of redirects hit maximum amount")


def _exchange(parts: SplitResult, method: str, headers: dict[str, str], body: bytes | None,
              deadline: float | None) -> tuple[int, list[tuple[str, str]], bytes]:
    cls = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=_remaining(deadline, "connect"))
    try:
        try:
            conn.connect()
        except TimeoutError:
            raise _Timeout("connect") from None
        except socket.gaierror:
            raise _Failed("Couldn't resolve host name") from None
        except ssl.SSLCertVerificationError:
            raise _Failed("SSL peer certificate or SSH remote key was not OK") from None
        except ssl.SSLError:
            raise _Failed("SSL connect error") from None
        except OSError:
            raise _Failed("Couldn't connect to server") from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.sock.settimeout(_remaining(deadline, "http"))
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        except TimeoutError:
            raise _Timeout("http") from None
        except ValueError:  # a header value with a line break or outside Latin-1: its text holds the value
            raise _Failed("A libcurl function was given a bad argument") from None
        except http.client.RemoteDisconnected:
            raise _Failed("Server returned nothing (no headers, no data)") from None
        except (http.client.HTTPException, OSError):
            raise _Failed("Failure when receiving data from the peer") from None
    finally:
        conn.close()


def _remaining(deadline: float | None, phase: str) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Timeout(phase)
    return left


def _request_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    pairs = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (headers or {}).items()}
    pairs.setdefault("Accept", "*/*")
    pairs["User-Agent"] = f"pg_net/{VERSION}"
    return pairs


def _response(request_id: int, status: int, raw: list[tuple[str, str]], data: bytes) -> Response:
    headers = dict(raw)  # a repeated header keeps its last value, as in pg_net's jsonb
    content_type = next((v for k, v in raw if k.lower() == "content-type"), None)
    body = data.split(b"\0", 1)[0]  # pg_net stores the body as a C string
    return Response(request_id, status_code=status, content=body.decode("utf-8", errors="replace") or None,
                    headers=headers, content_type=content_type, timed_out=False)


def _timeout_message(req: Request, phase: str, started: float) -> str:
    total = (time.monotonic() - started) * 1000
    handshake, http_time = (total, 0.0) if phase == "connect" else (0.0, total)
    return (f"Timeout of {req.timeout_ms} ms reached. Total time: {total:f} ms "
            f"(DNS time: {0.0:f} ms, TCP/SSL handshake time: {handshake:f} ms, "
            f"HTTP Request/Response time: {http_time:f} ms)")


# -- database ---------------------------------------------------------------------------------------


class ResponseWriter:
    """Writes responses from the delivery threads over one lazily (re)opened connection."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    def write(self, resp: Response, table_oid: int) -> None:
        params = (resp.id, resp.status_code, resp.content,
                  None if resp.headers is None else json.dumps(resp.headers),
                  resp.content_type, resp.timed_out, resp.error_msg, table_oid)
        with self._lock:
            try:
                self._connection().execute(_INSERT, params)
            except (pgerrors.UndefinedTable, pgerrors.InvalidSchemaName):
                pass  # the extension was dropped while the request was in flight
            except psycopg.Error as exc:
                log("response_lost", id=resp.id, error=type(exc).__name__)
                self.close()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5,
                                         application_name=APPLICATION_NAME)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


def take(conn: psycopg.Connection) -> list[Request]:
    """Claim committed requests; nothing when pg_net is not installed."""
    if conn.execute(_INSTALLED).fetchone() != (True,):
        return []
    try:
        rows = conn.execute(_TAKE).fetchall()
    except (pgerrors.UndefinedTable, pgerrors.InvalidSchemaName, pgerrors.UndefinedObject):
        return []
    return [Request(*row) for row in rows]


def expire(conn: psycopg.Connection) -> None:
    if conn.execute(_INSTALLED).fetchone() != (True,):
        return
    with contextlib.suppress(pgerrors.UndefinedTable, pgerrors.InvalidSchemaName):
        conn.execute(_EXPIRE)


# -- main loop --------------------------------------------------------------------------------------


class Worker:
    def __init__(self, dsn: str, pid_file: Path, ready_file: Path | None = None) -> None:
        self.dsn = dsn
        self.pid_file = pid_file
        self.ready_file = ready_file
        self.stopping = threading.Event()
        self.started = time.monotonic()
        self.writer = ResponseWriter(dsn)
        self.pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="pg_net")
        self._last_error = ""

    def run(self) -> None:
        backoff = POLL_SECONDS
        while not self.should_stop():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5,
                                     application_name=APPLICATION_NAME) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._announce_ready()
                    if self._last_error:
                        log("reconnected")
                    self._last_error = ""
                    backoff = POLL_SECONDS
                    self.serve(conn)
            except psycopg.Error as exc:
                if time.monotonic() - self.started < STARTUP_SECONDS:
                    # Cluster.up() starts us together with the server: retry fast, quietly.
                    self.stopping.wait(STARTUP_RETRY_SECONDS)
                    continue
                self._note_error(exc)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        log("stopped")

    def serve(self, conn: psycopg.Connection) -> None:
        next_expiry = 0.0
        while not self.should_stop():
            batch = take(conn)
            for req in batch:
                self.pool.submit(self.deliver, req)
            if time.monotonic() >= next_expiry:
                expire(conn)
                next_expiry = time.monotonic() + TTL_EVERY_SECONDS
            if len(batch) < BATCH_SIZE:
                for _ in conn.notifies(timeout=POLL_SECONDS, stop_after=1):
                    pass

    def deliver(self, req: Request) -> None:
        try:
            self.writer.write(send(req), req.table_oid)
        except Exception as exc:  # a delivery thread must never die silently
            # the type only: an exception's text may quote a header, and headers carry secrets
            log("delivery_failed", id=req.id, error=type(exc).__name__)

    def should_stop(self) -> bool:
        if self.stopping.is_set():
            return True
        # Grace period: the parent writes the pid file just after starting us.
        if time.monotonic() - self.started > 2 and pid_in(self.pid_file) != os.getpid():
            log("pid_file_gone", path=self.pid_file)
            self.stopping.set()
        return self.stopping.is_set()

    def _announce_ready(self) -> None:
        # Cluster.up() waits for this file to name us before it returns.
        if self.ready_file is None or pid_in(self.ready_file) == os.getpid():
            return
        tmp = self.ready_file.with_name(self.ready_file.name + ".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(self.ready_file)

    def _note_error(self, exc: psycopg.Error) -> None:
        # Log a failure once, not on every retry: a stopped server must not flood the log.
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if text != self._last_error:
            log("database_unavailable", error=text)
            self._last_error = text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localdb.networker", description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--pid-file", required=True, type=Path)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    worker = Worker(args.dsn, args.pid_file, args.ready_file)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stopping.set())
    log("started", pid=os.getpid())
    worker.run()
    # In-flight requests belong to a cluster that is going away; do not wait for their timeouts.
    os._exit(0)


if __name__ == "__main__":
    main()
