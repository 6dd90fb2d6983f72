"""localdb/faultproxy.py: the protocol framing, the triggers, and the faults, against a scripted server.

The "server" here is a plain socket that answers each client message with a fixed reply, so what crosses
the proxy is known byte for byte; the proxy in front of the real PostgreSQL is exercised by
tests/integration/reliability/test_network_faults.py.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from localdb.faultproxy import (
    GSSENC_REQUEST,
    PROTOCOL_3,
    SSL_REQUEST,
    FaultProxy,
    Framer,
    Message,
    after_auth,
    on_commit,
    on_message,
    on_query,
    on_startup,
)


def typed(kind: str, body: bytes) -> bytes:
    return kind.encode() + struct.pack("!i", len(body) + 4) + body


def untyped(code: int, body: bytes = b"") -> bytes:
    return struct.pack("!ii", len(body) + 8, code) + body


STARTUP = untyped(PROTOCOL_3, b"user\0postgres\0database\0postgres\0\0")
READY = typed("Z", b"I")
AUTH_OK = typed("R", struct.pack("!i", 0))


def query(text: str) -> bytes:
    return typed("Q", text.encode() + b"\0")


def parse(text: str) -> bytes:
    return typed("P", b"\0" + text.encode() + b"\0" + struct.pack("!h", 0))


# -- framing --------------------------------------------------------------------------------------------


def test_client_stream_splits_into_startup_packets_then_typed_messages_at_any_chunking() -> None:
    stream = (untyped(SSL_REQUEST) + untyped(GSSENC_REQUEST) + STARTUP + query("SELECT 1") + parse("COMMIT")
              + typed("B", b"\0\0" + b"\0" * 6) + typed("E", b"\0\0\0\0\0") + typed("S", b"") + typed("d", b"row\n")
              + typed("c", b""))
    expected = ["ssl", "gss", "startup", "Q", "P", "B", "E", "S", "d", "c"]
    for size in (1, 2, 3, 7, len(stream)):
        framer = Framer("c2s")
        got: list[Message] = []
        for i in range(0, len(stream), size):
            got += framer.feed(stream[i:i + size])
        assert [m.kind for m in got] == expected, size
        assert b"".join(m.raw for m in got) == stream
    assert got[3].sql() == "SELECT 1" and got[4].sql() == "COMMIT" and got[8].body == b"row\n"
    assert got[5].sql() is None


def test_server_stream_is_typed_from_the_first_byte() -> None:
    framer = Framer("s2c")
    messages = framer.feed(AUTH_OK + READY[:3])
    assert [m.kind for m in messages] == ["R"]
    assert [m.kind for m in framer.feed(READY[3:])] == ["Z"]


def test_a_bad_length_is_refused() -> None:
    with pytest.raises(ValueError, match="bad message length"):
        Framer("s2c").feed(b"Z" + struct.pack("!i", 2))


# -- triggers -------------------------------------------------------------------------------------------


class _Conn:
    authenticated = False


def _c2s(raw: bytes) -> Message:
    return Framer("c2s").feed(STARTUP + raw)[-1]


def test_triggers_fire_at_the_nth_matching_message() -> None:
    conn: object = _Conn()
    nth_q = on_message("Q", nth=2)
    assert [nth_q(_c2s(query("a")), conn) for _ in range(3)] == [False, True, False]  # type: ignore[arg-type]
    assert not nth_q(_c2s(parse("a")), conn)  # type: ignore[arg-type]
    history = on_query(r"insert into reconciler\.history")
    assert not history(_c2s(query("SELECT 1")), conn)  # type: ignore[arg-type]
    assert history(_c2s(parse("INSERT INTO reconciler.history (x) VALUES ($1)")), conn)  # type: ignore[arg-type]
    commit = on_commit()
    assert not commit(_c2s(query("SELECT 'COMMIT'")), conn) and commit(_c2s(query("COMMIT")), conn)  # type: ignore[arg-type]
    assert on_startup()(Framer("c2s").feed(STARTUP)[0], conn)  # type: ignore[arg-type]
    authed = after_auth()
    assert not authed(_c2s(query("x")), conn)  # type: ignore[arg-type]
    conn.authenticated = True  # type: ignore[attr-defined]
    assert authed(_c2s(query("x")), conn)  # type: ignore[arg-type]


# -- the proxy against a scripted server ------------------------------------------------------------------


class ScriptedServer:
    """Answers the startup with AuthenticationOk + ReadyForQuery, every Query with CommandComplete + Ready."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(sock,), daemon=True).start()

    def _session(self, sock: socket.socket) -> None:
        framer = Framer("c2s")
        with sock, contextlib.suppress(OSError):  # the proxy may cut it with an RST: that is the point
            while data := sock.recv(65536):
                for message in framer.feed(data):
                    self.received.append(message.kind)
                    if message.kind == "startup":
                        sock.sendall(AUTH_OK + READY)
                    elif message.kind == "Q":
                        sock.sendall(typed("C", b"SELECT 1\0") + READY)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.listener.close()


def _client(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    sock.sendall(untyped(SSL_REQUEST))
    assert sock.recv(1) == b"N"  # answered by the proxy itself
    sock.sendall(STARTUP)
    _until_ready(sock)
    return sock


def _until_ready(sock: socket.socket, count: int = 1) -> list[str]:
    """The server's message kinds up to its `count`th ReadyForQuery."""
    framer, kinds = Framer("s2c"), []
    while kinds.count("Z") < count:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("closed")
        kinds += [m.kind for m in framer.feed(data)]
    return kinds


def test_round_trips_are_counted_as_the_benchmarks_count_them(server: ScriptedServer) -> None:
    with FaultProxy(server.port) as proxy:
        sock = _client(proxy)
        with proxy.counted() as trips:
            for _ in range(3):
                sock.sendall(query("SELECT 1"))
                assert _until_ready(sock) == ["C", "Z"]
            sock.sendall(query("SELECT 1") + query("SELECT 1"))  # pipelined: one burst, one round trip
            assert _until_ready(sock, 2) == ["C", "Z", "C", "Z"]
        assert trips() == 4
        assert proxy.connections == 1
        sock.close()


def test_round_trips_after_setup_leave_out_the_startup_and_the_closing_terminate(server: ScriptedServer) -> None:
    with FaultProxy(server.port) as proxy:
        with proxy.counted_after_setup() as trips, proxy.counted() as all_trips:
            sock = _client(proxy)
            assert trips() == 0 and all_trips() >= 1  # the startup's turns
            sock.sendall(query("SELECT 1") + query("SELECT 1"))  # pipelined: one round trip
            assert _until_ready(sock, 2) == ["C", "Z", "C", "Z"]
            sock.sendall(query("SELECT 1"))
            assert _until_ready(sock) == ["C", "Z"]
            sock.sendall(b"X\0\0\0\x04")  # Terminate: nothing is waited for
            deadline = time.monotonic() + 2
            while "X" not in server.received and time.monotonic() < deadline:
                time.sleep(0.01)
            assert "X" in server.received
        assert trips() == 2
        assert all_trips() == trips() + 1 + 1  # plus the startup's and the Terminate's
        sock.close()


def test_reset_at_the_nth_query_cuts_both_sides_with_an_rst(server: ScriptedServer) -> None:
    with FaultProxy(server.port) as proxy:
        fault = proxy.arm("reset", on_message("Q", nth=2))
        sock = _client(proxy)
        sock.sendall(query("SELECT 1"))
        _until_ready(sock)
        sock.sendall(query("SELECT 2"))
        with pytest.raises(ConnectionResetError):
            _until_ready(sock)
        assert fault.fired.is_set()
        assert server.received.count("Q") == 1  # at="request": the second never reached the server
        sock.close()
        again = _client(proxy)  # one-shot: the next connection is forwarded
        again.sendall(query("SELECT 3"))
        assert _until_ready(again) == ["C", "Z"]
        again.close()


def test_silent_after_auth_keeps_the_socket_open_and_forwards_nothing(server: ScriptedServer) -> None:
    with FaultProxy(server.port) as proxy:
        fault = proxy.arm("silent", after_auth())
        sock = _client(proxy)
        sock.settimeout(0.5)
        sock.sendall(query("SELECT 1"))
        with pytest.raises(socket.timeout):
            sock.recv(1)  # nothing arrives, and the connection is not closed either
        assert fault.fired.is_set() and "Q" not in server.received
        sock.close()


def test_a_fault_at_the_response_lets_the_request_reach_the_server(server: ScriptedServer) -> None:
    with FaultProxy(server.port) as proxy:
        proxy.arm("reset", on_commit(), at="response")
        sock = _client(proxy)
        sock.sendall(query("COMMIT"))
        with pytest.raises(ConnectionResetError):
            _until_ready(sock)
        assert server.received[-1] == "Q"  # the COMMIT arrived; its answer did not
        sock.close()


def test_reset_at_startup_never_reaches_the_server(server: ScriptedServer) -> None:
    with FaultProxy(server.port) as proxy:
        proxy.arm("reset", on_startup())
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        sock.sendall(STARTUP)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            if not sock.recv(1):
                raise ConnectionResetError
        assert server.received == []
        sock.close()


def test_each_direction_is_delayed_by_its_latency(server: ScriptedServer) -> None:
    with FaultProxy(server.port, c2s_delay=0.15, s2c_delay=0.1) as proxy:
        sock = _client(proxy)
        started = time.monotonic()
        sock.sendall(query("SELECT 1"))
        _until_ready(sock)
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 1.0, elapsed
        sock.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "closed early"
        data += chunk
    return data


@pytest.mark.parametrize("tls", [False, True])
def test_an_ssl_request_is_refused_here_or_with_tls_relayed_to_the_server_then_bytes_only(tls: bool) -> None:
    """Without `tls` the proxy answers N itself; with it the server's S passes and what follows (TLS records,
    here any bytes) is relayed unframed both ways, its round trips counted."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def server() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(AssertionError, OSError):  # without tls the proxy closes it unanswered
            received.append(_recv_exactly(conn, 8))
            conn.sendall(b"S")
            for _ in range(2):  # not protocol messages: a framing proxy would choke on them
                conn.sendall(_recv_exactly(conn, 5)[::-1])

    threading.Thread(target=server, daemon=True).start()
    with FaultProxy(listener.getsockname()[1], tls=tls) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(untyped(SSL_REQUEST))
        if not tls:
            assert sock.recv(1) == b"N" and received == []
            return
        assert sock.recv(1) == b"S"
        for hello in (b"\x16\x03\x01ab", b"\x17\x03\x03cd"):
            sock.sendall(hello)
            assert _recv_exactly(sock, 5) == hello[::-1]
        assert received == [untyped(SSL_REQUEST)]
        assert proxy.turns == 3  # the SSLRequest and the two exchanges after it
    listener.close()
