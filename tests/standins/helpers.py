"""Shared helpers for the stand-in tests: a recording local HTTP server, polling for pg_net responses."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpServer:
    """A local server on 127.0.0.1; `/slow?s=N` sleeps N seconds before answering."""

    url: str
    seen: list[Seen] = field(default_factory=list)

    def wait_seen(self, count: int = 1, timeout: float = 10) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.seen


def _handler(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            parts = urlsplit(self.path)
            if parts.path == "/slow":
                time.sleep(float(parse_qs(parts.query).get("s", ["3"])[0]))
            payload = json.dumps({"ok": True, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Test", "yes")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)  # the client may have given up (a timeout test)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = HttpServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    httpd.block_on_close = False
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


def wait_response(conn: psycopg.Connection, request_id: int, timeout: float = 10) -> dict:
    """The net._http_response row for request_id, as a dict, once the worker has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cur = conn.execute("SELECT * FROM net._http_response WHERE id = %s", (request_id,))
        row = cur.fetchone()
        if row is not None:
            return dict(zip([c.name for c in cur.description], row, strict=True))
        time.sleep(0.05)
    raise AssertionError(f"no net._http_response row for request {request_id} after {timeout} s")


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)

