"""What every `--watch` loop shares: signals, an interruptible sleep, and the HTTP side thread.

Used by the single-database controller (watch/controller.py) and the fleet's (fleet/controller.py).
SIGTERM/SIGINT set `stop` (the loop finishes what it runs, then exits); SIGHUP sets `wake` (work now).
The handler only sets flags and queues the signal: a "signals" thread logs `signal_handled`, because a
log line written from a signal handler can interrupt a write to stderr in progress. The HTTP server
answers /healthz, /readyz and /metrics from the loop's own callbacks and registry.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from reconciler.errors import ReconcilerError


class Lifecycle:
    """The loop's `stop` and `wake` flags, set by signals, and a sleep either of them cuts short."""

    def __init__(self, log: Any) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._log = log
        self._handled: queue.SimpleQueue[int] = queue.SimpleQueue()

    def install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        threading.Thread(target=self._log_signals, name="signals", daemon=True).start()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum != signal.SIGHUP:
            self.stop.set()
        self.wake.set()
        self._handled.put(signum)

    def _log_signals(self) -> None:
        """`signal_handled` once a signal's flags are set: what a test waits for instead of sleeping."""
        while True:
            signum = self._handled.get()
            self._log.info("signal_handled", signal=signal.Signals(signum).name,
                           action="cycle now" if signum == signal.SIGHUP else "stop after the running cycle")

    def sleep(self, delay: float) -> None:
        """Wait `delay` seconds, or less when stopped or woken."""
        deadline = time.monotonic() + delay
        while not self.stop.is_set() and not self.wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.wake.wait(min(remaining, 0.2))


def serve_http(host: str, port: int, *, healthy: Callable[[], bool], ready: Callable[[], tuple[bool, str]],
               registry: CollectorRegistry) -> ThreadingHTTPServer | None:
    """/healthz, /readyz and /metrics on a daemon thread; None when `port` is negative (disabled)."""
    if port < 0:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"no cycle started recently\n", "text/plain")
            elif self.path == "/readyz":
                ok, why = ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
            elif self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: keep logs quiet
            return

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise ReconcilerError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                              hint="choose another --http-port (-1 disables)") from e
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def shutdown_http(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
