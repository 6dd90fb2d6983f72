"""A client-side deadline on every wait for the server, so a silent connection cannot hold us forever.

After a failover, or behind a load balancer that dropped its state, the socket stays open and nothing
arrives: libpq waits forever. TCP keepalives and tcp_user_timeout (set in db.connect) end that on a real
network, but only after minutes, and not at all while the peer's kernel still acknowledges (a proxy, a
sidecar, loopback). So each wait for an answer is bounded here: `DeadlineConnection.wait` (which every
query, pipeline sync, COPY and COMMIT goes through) registers with one watchdog thread; when a wait
outlives its deadline the watchdog shuts the socket down, libpq sees the connection end, and the wait
raises `NoAnswer`. `abort_waits()` does the same at once to every wait in progress (the controller's
SIGTERM after its grace period, repeated until its loop has ended). Connecting is bounded by psycopg's connect_timeout instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from typing import Any

import psycopg

from reconciler.errors import SettingError

#: Overrides the computed deadline (seconds) for every wait: the test suite and the fault matrix use it.
ENV = "RECONCILER_ANSWER_TIMEOUT"
#: What the deadline adds to the longest wait the server itself may legitimately make (its statement
#: or lock timeout) before the client stops waiting for an answer.
GRACE = 10.0
#: The server-side bound assumed when none is given (the CLI's default --statement-timeout).
DEFAULT_SERVER_BOUND = 30.0


def answer_timeout(statement_timeout: float | None = None, lock_timeout: float | None = None,
                   environ: Any = os.environ) -> float:
    """Seconds to wait for any one answer: RECONCILER_ANSWER_TIMEOUT, else the server's own longest
    wait (the statement timeout, or the lock wait when longer) plus GRACE."""
    override = seconds_setting(environ, ENV)
    if override is not None:
        return override
    return max(statement_timeout or DEFAULT_SERVER_BOUND, lock_timeout or 0.0) + GRACE


def seconds_setting(environ: Any, name: str) -> float | None:
    """A duration from the environment variable `name`: None when unset or empty; a positive number of
    seconds otherwise, or a one-line error (a typo must not silently mean the default)."""
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise SettingError(f"{name}={text!r} is not a positive number of seconds",
                           hint=f"unset {name} for the default")
    return value


class NoAnswer(psycopg.OperationalError):
    """The server did not answer within the client-side deadline; the connection was closed."""


class _Watchdog:
    """One thread for every connection: shuts a socket down when its wait outlives its deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        # token -> (deadline, fd, [why it was cut: "" while it was not, "deadline" or "aborted"])
        self._armed: dict[int, tuple[float, int, list[str]]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, fd: int, seconds: float) -> tuple[int, list[str]]:
        fired = [""]
        with self._cond:
            token = next(self._tokens)
            self._armed[token] = (time.monotonic() + seconds, fd, fired)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()
        return token, fired

    def disarm(self, token: int) -> None:
        with self._cond:
            self._armed.pop(token, None)

    def abort(self) -> None:
        with self._cond:
            for _, fd, fired in self._armed.values():
                fired[0] = "aborted"
                _shut(fd)
            self._armed.clear()

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                for token, (deadline, fd, fired) in list(self._armed.items()):
                    if deadline <= now:
                        fired[0] = "deadline"
                        _shut(fd)  # under the lock: the fd cannot have been closed and reused meanwhile
                        del self._armed[token]
                upcoming = min((d for d, _, _ in self._armed.values()), default=None)
                self._cond.wait(None if upcoming is None else max(0.0, upcoming - now))


def _shut(fd: int) -> None:
    """Shut the socket down (not close it: libpq owns the descriptor and closes it itself)."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


_watchdog = _Watchdog()


def abort_waits() -> None:
    """End every wait for the server in progress now (in every thread: the process is stopping)."""
    _watchdog.abort()


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for the server ends after `answer_timeout` seconds."""

    answer_timeout: float = DEFAULT_SERVER_BOUND + GRACE

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        token, fired = _watchdog.arm(self.pgconn.socket, self.answer_timeout)
        try:
            result = super().wait(gen, *args, **kwargs)
        except psycopg.Error as e:
            if fired[0]:
                raise self._no_answer(fired[0]) from e
            raise
        finally:
            _watchdog.disarm(token)
        if fired[0]:  # cut as the answer arrived: the socket is shut down all the same
            raise self._no_answer(fired[0])
        return result

    def _no_answer(self, why: str) -> NoAnswer:
        if why == "aborted":
            return NoAnswer("stopped waiting for the server: the process is shutting down")
        return NoAnswer(f"no answer from the server within {self.answer_timeout:g} s, gave up (client-side deadline)")
