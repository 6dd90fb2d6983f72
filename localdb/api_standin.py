"""`ApiStandIn`: the HTTP server under the Management API stand-ins (tests and benchmarks only).

A threaded server on a free loopback port with the API's rate-limit window (x-ratelimit-* headers on
every answer), every request recorded, and its lifecycle (`start`/`stop`, or a `with` block). A
subclass answers: `_answer(method, path, headers, raw, allowed, reset)` returns (status, JSON payload or
None, extra headers) under the lock, and `_record` says what is kept of a request.
"""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class ApiStandIn:
    #: The HTTP methods the server accepts (others get the stdlib's 501).
    methods: tuple[str, ...] = ("GET", "POST")
    thread_name = "api-stand-in"

    def __init__(self, *, rate_limit: int, rate_window: float) -> None:
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.requests: list[Any] = []
        self._window_start = time.monotonic()
        self._window_count = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=self.thread_name,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- what a subclass answers ---------------------------------------------------------------------
    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes, allowed: bool,
                reset: int) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def _record(self, method: str, path: str, headers: dict[str, str], raw: bytes, status: int) -> Any:
        raise NotImplementedError

    # -- the server ----------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass  # quiet: tests read `requests`

        for method in self.methods:
            setattr(Handler, f"do_{method}", lambda handler, m=method: stand_in._handle(handler, m))
        return Handler

    def _rate(self) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until the window resets); counts this request. Caller holds the lock."""
        now = time.monotonic()
        if now - self._window_start >= self.rate_window:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        reset = max(0, math.ceil(self._window_start + self.rate_window - now))
        return self._window_count <= self.rate_limit, max(0, self.rate_limit - self._window_count), reset

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            allowed, remaining, reset = self._rate()
            status, payload, extra = self._answer(method, handler.path, headers, raw, allowed, reset)
            self.requests.append(self._record(method, handler.path, headers, raw, status))
        out = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("x-ratelimit-limit", str(self.rate_limit))
        handler.send_header("x-ratelimit-remaining", str(remaining))
        handler.send_header("x-ratelimit-reset", str(reset))
        for name, value in extra.items():
            handler.send_header(name, value)
        if out:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(out)))
        handler.end_headers()
        handler.wfile.write(out)


def seconds_text(value: float) -> str:
    """A retry-after value as the API writes it: whole seconds without a decimal point."""
    return str(int(value)) if float(value).is_integer() else str(value)
