"""What every `--watch` loop shares: signals, an interruptible sleep, and the HTTP side thread.

Used by the single-database controller (watch/controller.py) and the fleet's (fleet/controller.py).
SIGTERM/SIGINT set `stop` (the loop finishes what it runs, then exits); SIGHUP sets `wake` (work now).
Work still waiting for the database `grace` seconds after `stop` has its waits ended (engine/deadline.py),
so a stuck cycle cannot hold the process past Kubernetes' terminationGracePeriodSeconds.
The handler only sets flags and queues the signal: a "signals" thread logs `signal_handled`, because a
log line written from a signal handler can interrupt a write to stderr in progress. The HTTP server
(watch/http_server.py) answers /healthz, /readyz and /metrics from the loop's own callbacks and registry.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from reconciler.engine import deadline
from reconciler.errors import ReconcilerError
from reconciler.watch.http_server import make_server

#: Seconds a stopping loop lets its running work finish before it ends that work's waits for the database
#: (RECONCILER_SHUTDOWN_GRACE overrides it); Kubernetes' terminationGracePeriodSeconds must exceed it.
SHUTDOWN_GRACE = 10.0
GRACE_ENV = "RECONCILER_SHUTDOWN_GRACE"


class Lifecycle:
    """The loop's `stop` and `wake` flags, set by signals, and a sleep either of them cuts short."""

    def __init__(self, log: Any, environ: Any = os.environ) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        #: set by the loop once it has ended (its work finished or abandoned)
        self.loop_done = threading.Event()
        self.grace = deadline.seconds_setting(environ, GRACE_ENV) or SHUTDOWN_GRACE
        self._log = log
        self._handled: queue.SimpleQueue[int] = queue.SimpleQueue()

    def watch_grace(self) -> None:
        """From now on, once stopped, give the loop `grace` seconds to end, then end its waits for the database."""
        threading.Thread(target=self._end_waits_after_grace, name="shutdown-grace", daemon=True).start()

    def _end_waits_after_grace(self) -> None:
        while not self.stop.wait(0.5):
            if self.loop_done.is_set():  # the loop ended otherwise (an in-process caller): nothing to do
                return
        if self.loop_done.wait(self.grace):
            return
        self._log.warning("shutdown_grace_expired", seconds=self.grace,
                          action="ending the waits for the database; an apply not yet committed rolls back")
        while not self.loop_done.is_set():  # again until the loop ends: a wait may start after the first
            deadline.abort_waits()
            self.loop_done.wait(0.2)

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
    """/healthz, /readyz and /metrics on a daemon thread (watch/http_server.py: every client bounded);
    None when `port` is negative (disabled)."""
    if port < 0:
        return None
    try:
        server = make_server(host, port, healthy=healthy, ready=ready, registry=registry)
    except OSError as e:
        raise ReconcilerError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                              hint="choose another --http-port (-1 disables)") from e
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def shutdown_http(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
