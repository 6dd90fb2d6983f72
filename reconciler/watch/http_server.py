"""The `--watch` loops' HTTP server (/healthz, /readyz, /metrics), hardened against clients that misbehave.

Where it sits: `watch.lifecycle.serve_http` starts it on a daemon thread for both controllers. Its
clients are probes and a Prometheus scraper, yet anything that can reach the port can connect, so
every resource a connection takes is bounded:
- at most MAX_CONNECTIONS at once (one thread each); a connection beyond that is closed at once;
- a request (its line and headers) must arrive whole within REQUEST_DEADLINE seconds, however slowly
  its bytes trickle in (a client sending one byte a second is cut off, not waited for);
- a request may be at most MAX_REQUEST_BYTES (431 beyond); a body is never read;
- one request per connection (HTTP/1.0), and an answer must leave within WRITE_TIMEOUT;
- GET and HEAD of the three paths only: other paths 404, other methods 405 with `Allow`.
The loop itself never waits for this thread: a stuck client costs its own thread only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Connections served at once; the next is closed without an answer until one ends.
MAX_CONNECTIONS = 256
#: Seconds from accepting a connection until its request line and headers must have arrived.
REQUEST_DEADLINE = 5.0
#: The request line and headers together, in bytes (a probe's are about 150, a scrape's about 300).
MAX_REQUEST_BYTES = 8192
#: Seconds an answer may take to be written (a client that does not read).
WRITE_TIMEOUT = 5.0

ALLOWED_METHODS = ("GET", "HEAD")


class RequestTooLarge(Exception):
    pass


class _BoundedReader:
    """The request's bytes as a file for BaseHTTPRequestHandler: at most `limit` bytes in all, every one
    of them before `deadline` (each recv waits only for what is left of it)."""

    def __init__(self, sock: socket.socket, limit: int, deadline: float) -> None:
        self._sock, self._left, self._deadline = sock, limit, deadline
        self._buffer = b""
        self._eof = False

    def _fill(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(remaining)
        chunk = self._sock.recv(min(4096, self._left + 1))
        if not chunk:
            self._eof = True
            return
        self._left -= len(chunk)
        if self._left < 0:
            raise RequestTooLarge
        self._buffer += chunk

    def readline(self, size: int = -1) -> bytes:
        while b"\n" not in self._buffer and not self._eof and (size < 0 or len(self._buffer) < size):
            self._fill()
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size >= 0:
            end = min(end, size)
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line

    def read(self, size: int = -1) -> bytes:  # never needed for GET/HEAD: a body is not read
        return b""

    def close(self) -> None:
        self._buffer = b""


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 makes a burst of connections wait for SYN retransmits (1 s,
    # then 3 s...) before the server even sees them: a probe behind a burst would time out
    request_queue_size = socket.SOMAXCONN

    def __init__(self, *args: Any, max_connections: int = MAX_CONNECTIONS, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: close it rather than queue it behind stuck clients
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(host: str, port: int, *, healthy: Callable[[], bool], ready: Callable[[], tuple[bool, str]],
                registry: CollectorRegistry, max_connections: int = MAX_CONNECTIONS) -> ThreadingHTTPServer:
    """The server, bound and not yet serving (OSError when the address is taken)."""

    class Handler(BaseHTTPRequestHandler):
        default_request_version = "HTTP/1.0"  # errors before the version is parsed still get a status line
        error_content_type = "text/plain"
        error_message_format = "%(code)d %(message)s\n"

        def setup(self) -> None:
            super().setup()
            self.rfile = _BoundedReader(self.connection, MAX_REQUEST_BYTES,  # type: ignore[assignment]
                                        time.monotonic() + REQUEST_DEADLINE)

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except RequestTooLarge:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.settimeout(WRITE_TIMEOUT)
                    self.wfile.write(b"HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
                                     b"Content-Length: 18\r\nConnection: close\r\n\r\nrequest too large\n")

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self._answer(body=True)

        def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
            self._answer(body=False)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # any other method the client names
                return self._not_allowed
            raise AttributeError(name)

        def _not_allowed(self) -> None:
            self._send(405, b"method not allowed\n", "text/plain", body=True, extra={"Allow": ", ".join(ALLOWED_METHODS)})

        def _answer(self, *, body: bool) -> None:
            path = urlsplit(self.path).path
            if path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"no cycle started recently\n", "text/plain", body=body)
            elif path == "/readyz":
                ok, why = ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain", body=body)
            elif path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST, body=body)
            else:
                self._send(404, b"not found\n", "text/plain", body=body)

        def _send(self, status: int, content: bytes, content_type: str, *, body: bool,
                  extra: dict[str, str] | None = None) -> None:
            self.close_connection = True
            self.connection.settimeout(WRITE_TIMEOUT)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - probes every few seconds: quiet
            return

    return _BoundedServer((host, port), Handler, max_connections=max_connections)
