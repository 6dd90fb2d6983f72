"""The controller's HTTP endpoint under abuse, over real sockets to the server the controller starts:
/healthz, /readyz and /metrics keep answering while 200 idle connections are held open and a client
sends its request one byte at a time; those clients are cut off at the request deadline; unknown paths
and methods get 404/405; a request over the size bound gets 431; beyond the connection cap a
connection is closed at once."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from reconciler.watch import http_server
from tests.fix_db import DbTarget
from tests.integration.apply_support import assert_ok, reconcile
from tests.integration.controller_support import copy_manifest, watcher

IDLE = 200
PATHS = ("/healthz", "/readyz", "/metrics")


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` on a fresh connection and read the answer until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class SlowClient(threading.Thread):
    """Sends a request that never ends, one byte every `pause` seconds; records when the server cut it off."""

    def __init__(self, port: int, pause: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.pause, self.started = pause, time.monotonic()
        self.cut_after: float | None = None
        self.sent = 0

    def run(self) -> None:
        request = b"GET /healthz HTTP/1.0\r\n" + b"".join(b"X-Slow-%d: x\r\n" % i for i in range(1000))
        try:
            for byte in request:
                self.sock.send(bytes([byte]))
                self.sent += 1
                time.sleep(self.pause)
        except OSError:
            self.cut_after = time.monotonic() - self.started
        finally:
            self.sock.close()


def test_probes_answer_while_idle_and_slow_clients_hold_connections(audited_db: DbTarget, tmp_path: Path) -> None:
    manifest = copy_manifest(tmp_path)
    assert_ok(reconcile(audited_db.url, "--apply", manifest=manifest))
    with watcher(audited_db.url, manifest, workdir=tmp_path) as w:
        w.wait_cycles(1, timeout=15, result="success")
        idle = [socket.create_connection(("127.0.0.1", w.port)) for _ in range(IDLE)]
        slow = SlowClient(w.port)
        slow.start()
        opened = time.monotonic()
        latencies: list[float] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{w.port}", timeout=2.0) as client:
                while time.monotonic() - opened < http_server.REQUEST_DEADLINE - 0.5:
                    for path in PATHS:
                        t0 = time.monotonic()
                        response = client.get(path, headers={"Connection": "close"})
                        latencies.append(time.monotonic() - t0)
                        assert response.status_code == 200, (path, response.text)
                    time.sleep(0.05)
            assert "reconciler_cycles_total" in w.get("/metrics").text
            # the deadline ends every connection whose request never came, however slowly it trickles
            still_open = [s for s in idle if not _closed_by_server(s, http_server.REQUEST_DEADLINE + 3)]
            slow.join(http_server.REQUEST_DEADLINE + 3)
        finally:
            for s in idle:
                s.close()
        assert still_open == [], f"{len(still_open)} idle connections outlived the request deadline"
        assert slow.cut_after is not None and slow.cut_after < http_server.REQUEST_DEADLINE + 2, slow.cut_after
        assert slow.sent < http_server.MAX_REQUEST_BYTES
        print(f"\n{len(latencies)} probes with {IDLE} idle connections and a slow client: "
              f"max {max(latencies) * 1000:.1f} ms, slow client cut after {slow.cut_after:.2f} s")
        assert max(latencies) < 1.0, max(latencies)
        assert w.alive() and w.status("/healthz") == 200


def test_unknown_paths_methods_and_oversized_requests(audited_db: DbTarget, tmp_path: Path) -> None:
    manifest = copy_manifest(tmp_path)
    with watcher(audited_db.url, manifest, workdir=tmp_path) as w:
        w.wait_http()
        for path in ("/", "/nope", "/healthz/extra", "/metrics.json", "/../etc/passwd"):
            assert _raw(w.port, f"GET {path} HTTP/1.0\r\n\r\n".encode()).startswith(b"HTTP/1.0 404 "), path
        assert _raw(w.port, b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 ")
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"):
            answer = _raw(w.port, f"{method} /healthz HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello".encode())
            assert answer.startswith(b"HTTP/1.0 405 ") and b"\r\nAllow: GET, HEAD\r\n" in answer, (method, answer)
        head = _raw(w.port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 ") and head.endswith(b"\r\n\r\n")  # headers only
        big_header = b"GET /healthz HTTP/1.0\r\nX-Big: " + b"a" * http_server.MAX_REQUEST_BYTES + b"\r\n\r\n"
        assert _raw(w.port, big_header).startswith(b"HTTP/1.0 431 ")
        many_headers = b"GET /healthz HTTP/1.0\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(2000)) + b"\r\n"
        assert _raw(w.port, many_headers).startswith(b"HTTP/1.0 431 ")
        long_line = b"GET /" + b"a" * 100_000 + b" HTTP/1.0\r\n\r\n"
        assert _raw(w.port, long_line).startswith(b"HTTP/1.0 431 ")
        assert _raw(w.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.0 400 ")  # TLS to plain HTTP
        assert w.alive() and w.status("/healthz") == 200


@pytest.fixture
def small_server() -> object:
    registry = CollectorRegistry()
    server = http_server.make_server("127.0.0.1", 0, healthy=lambda: True, ready=lambda: (True, "ok"),
                                     registry=registry, max_connections=4)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_beyond_the_connection_cap_a_connection_is_closed_at_once(small_server: http_server.ThreadingHTTPServer
                                                                  ) -> None:
    port = small_server.server_address[1]
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        time.sleep(0.2)  # accepted, each on its thread, waiting for a request
        extra = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        assert _closed_by_server(extra, 2.0) and time.monotonic() - started < 1.0
        extra.close()
    finally:
        held[0].close()
    deadline = time.monotonic() + 2
    while True:  # the closed one's slot comes back as soon as its thread sees the end of it
        answer = _raw(port, b"GET /healthz HTTP/1.0\r\n\r\n")
        if answer.startswith(b"HTTP/1.0 200 ") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer.startswith(b"HTTP/1.0 200 "), answer
    for s in held[1:]:
        s.close()
