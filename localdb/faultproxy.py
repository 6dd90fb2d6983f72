"""A TCP proxy on loopback in front of PostgreSQL that counts round trips, delays, and injects faults.

It reads the protocol's framing (the untyped startup packets, then a type byte and an int32 length per
message; SSLRequest and GSSENCRequest are answered `N` here, so everything after them is plaintext and
a client with sslmode=require cannot use it), so a fault is placed at a protocol message rather than at
a byte offset or a moment, and survives a pipelined client. With `tls=True` an SSLRequest goes to the
server instead, and a connection the server agrees to encrypt is relayed as bytes from then on: delayed
and counted in `turns` (TLS set-up costs included), but with no faults and no `turns_after_setup`.

    proxy.arm("reset", on_query(r"^\\s*COMMIT"), at="response")   # COMMIT reaches the server, its answer never arrives
    proxy.arm("silent", after_auth())                             # connected, then nothing more (a failover)
    proxy.arm("reset", on_message("d", nth=1))                    # the first CopyData

`reset` closes both sockets with an RST (SO_LINGER 0); `silent` stops forwarding in both directions and
keeps both sockets open (what the client sees of a half-open connection); once the client gives up and
closes, the proxy closes the server side too, as the server's own keepalives would in time. `at="request"`
acts instead of forwarding the matching client message; `at="response"` forwards it and acts on the
server's first message after it. A fault fires once (one connection), then the proxy forwards again.

Round trips are counted as the benchmarks always have: one each time the client sends after the server
has sent (over all connections through the proxy). `turns_after_setup` counts them as users pay for
them once connected: per connection, from the server's first ReadyForQuery, the closing Terminate
excluded (`counted_after_setup`). `c2s_delay` / `s2c_delay` delay each direction by a
fixed latency (not a bandwidth limit): a round trip costs at least their sum.
"""

from __future__ import annotations

import contextlib
import heapq
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: Request codes of the untyped packets a client may send before (or instead of) its StartupMessage.
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
PROTOCOL_3 = 196608


@dataclass(frozen=True)
class Message:
    """One protocol message: `kind` is its type byte ("Q", "Z", ...), or "startup", "ssl", "gss", "cancel"."""

    direction: str  # "c2s" or "s2c"
    kind: str
    body: bytes
    raw: bytes

    def sql(self) -> str | None:
        """The SQL text of a Query (simple protocol) or a Parse (extended, and pipelines)."""
        if self.kind == "Q":
            return self.body.rstrip(b"\0").decode("utf-8", "replace")
        if self.kind == "P":
            parts = self.body.split(b"\0", 2)
            return parts[1].decode("utf-8", "replace") if len(parts) > 1 else None
        return None


class Framer:
    """Splits one direction's byte stream into Messages; the client's begins with untyped startup packets."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.untyped = direction == "c2s"
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        out = []
        while True:
            message = self._next()
            if message is None:
                return out
            out.append(message)

    def _next(self) -> Message | None:
        buf = self._buffer
        header = 4 if self.untyped else 5
        if len(buf) < header:
            return None
        length = struct.unpack_from("!i", buf, header - 4)[0]
        total = length + header - 4
        if length < 4 or len(buf) < total:
            if length < 4:
                raise ValueError(f"{self.direction}: bad message length {length}")
            return None
        raw = bytes(buf[:total])
        del buf[:total]
        if not self.untyped:
            return Message(self.direction, chr(raw[0]), raw[5:], raw)
        code = struct.unpack_from("!i", raw, 4)[0] if len(raw) >= 8 else 0
        kind = {SSL_REQUEST: "ssl", GSSENC_REQUEST: "gss", CANCEL_REQUEST: "cancel"}.get(code, "startup")
        if kind == "startup":
            self.untyped = False  # typed messages from here on
        return Message(self.direction, kind, raw[8:], raw)


# --- triggers: which client message a fault fires at --------------------------------------------------

Trigger = Callable[[Message, "Connection"], bool]


def on_message(kind: str, nth: int = 1) -> Trigger:
    """The nth client message of type `kind` ("Q", "P", "B", "E", "d", "c", ...) since the fault was armed."""
    seen = [0]

    def trigger(message: Message, _conn: Connection) -> bool:
        if message.kind != kind:
            return False
        seen[0] += 1
        return seen[0] == nth

    return trigger


def on_query(pattern: str, nth: int = 1) -> Trigger:
    """The nth Query or Parse whose SQL matches `pattern` (re.search, case-insensitive)."""
    regex = re.compile(pattern, re.IGNORECASE)
    seen = [0]

    def trigger(message: Message, _conn: Connection) -> bool:
        text = message.sql()
        if text is None or not regex.search(text):
            return False
        seen[0] += 1
        return seen[0] == nth

    return trigger


def on_startup() -> Trigger:
    """The StartupMessage: the connect phase (nothing reaches the server)."""
    return lambda message, _conn: message.kind == "startup"


def after_auth(nth: int = 1) -> Trigger:
    """The nth client message after the server's first ReadyForQuery on the connection (connected, then...)."""
    seen = [0]

    def trigger(_message: Message, conn: Connection) -> bool:
        if not conn.authenticated:
            return False
        seen[0] += 1
        return seen[0] == nth

    return trigger


def on_commit() -> Trigger:
    return on_query(r"^\s*COMMIT\b")


@dataclass
class Fault:
    action: str  # "reset" or "silent"
    trigger: Trigger
    at: str = "request"  # "request": instead of forwarding the message; "response": at the server's answer
    fired: threading.Event = field(default_factory=threading.Event)
    fired_at: float | None = None  # time.monotonic() when it fired

    def __post_init__(self) -> None:
        if self.action not in ("reset", "silent") or self.at not in ("request", "response"):
            raise ValueError(f"unknown fault {self.action!r} at {self.at!r}")


# --- the proxy ------------------------------------------------------------------------------------------


class _Delayed:
    """Sends to `sock` each chunk `delay` seconds after it was queued, in order, from its own thread."""

    def __init__(self, sock: socket.socket, delay: float, on_error: Callable[[], None]) -> None:
        self.sock, self.delay, self.on_error = sock, delay, on_error
        self._queue: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True, name="faultproxy-delay").start()

    def send(self, data: bytes) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._queue, (time.monotonic() + self.delay, self._seq, data))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                due, _, data = self._queue[0]
                now = time.monotonic()
                if due > now:
                    self._cond.wait(due - now)
                    continue
                heapq.heappop(self._queue)
            if not data:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.on_error()
                return


class Connection:
    """One client connection and its upstream, pumped by two threads."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.authenticated = False
        self.silent = False
        self.closed = False
        self.pending: Fault | None = None  # acts at the server's next message
        self.ssl_answer_due = False  # an SSLRequest went to the server: its next byte is 'S' or 'N'
        self.encrypted = False  # the server said 'S': bytes only from here on, both ways
        self._last_message = "s2c"  # direction of the last message after set-up (turns_after_setup)
        self._delayed: list[_Delayed] = []
        self._send = {"c2s": self._sender(upstream, proxy.c2s_delay), "s2c": self._sender(client, proxy.s2c_delay)}

    def _sender(self, sock: socket.socket, delay: float) -> Callable[[bytes], None]:
        if delay <= 0:
            return sock.sendall
        self._delayed.append(_Delayed(sock, delay, self.close))
        return self._delayed[-1].send

    def start(self) -> None:
        threading.Thread(target=self._pump, args=(self.client, "c2s"), daemon=True, name="faultproxy-c2s").start()
        threading.Thread(target=self._pump, args=(self.upstream, "s2c"), daemon=True, name="faultproxy-s2c").start()

    def _pump(self, src: socket.socket, direction: str) -> None:
        framer = Framer(direction)
        try:
            while data := src.recv(65536):
                self.proxy._saw(direction)
                if direction == "s2c" and self.ssl_answer_due:
                    data = self._relay_ssl_answer(data)
                if self.encrypted:
                    if data:  # an empty send would end a delayed sender's thread
                        self._send[direction](data)
                    continue
                messages = framer.feed(data)
                # counted per chunk, before any of it is forwarded: a pipeline read in one chunk is one
                # round trip even when the server's first answer passes the other way between its messages
                self._count_after_setup(direction, messages)
                for message in messages:
                    if not self._handle(message):
                        return
        except (OSError, ValueError):
            pass
        if direction == "c2s" or not self.silent:
            self.close()

    def _relay_ssl_answer(self, data: bytes) -> bytes:
        """Forward the server's one-byte answer to an SSLRequest; what follows it is the rest of `data`."""
        self.ssl_answer_due = False
        self.encrypted = data[:1] == b"S"
        self._send["s2c"](data[:1])
        return data[1:]

    def _handle(self, message: Message) -> bool:
        """Forward (or act on) one message; False when this pump should stop."""
        if self.closed:
            return False
        if self.silent:
            return True  # read and dropped: both sockets stay open
        if message.direction == "c2s":
            if message.kind == "ssl" and self.proxy.tls:
                self.ssl_answer_due = True
            elif message.kind in ("ssl", "gss"):
                self.client.sendall(b"N")  # no encryption through the proxy: the client goes on in plaintext
                return True
            fault = self.proxy._fault_for(message, self)
            if fault is not None and fault.at == "request":
                return self._act(fault)
            if fault is not None:
                self.pending = fault
        else:
            if self.pending is not None:
                fault, self.pending = self.pending, None
                return self._act(fault)
            if message.kind == "Z":
                self.authenticated = True
        self._send[message.direction](message.raw)
        return True

    def _count_after_setup(self, direction: str, messages: list[Message]) -> None:
        if not self.authenticated or self.silent or self.closed or not messages:
            return
        if direction == "c2s" and self._last_message == "s2c" and any(m.kind != "X" for m in messages):
            self.proxy._turn_after_setup()
        self._last_message = direction

    def _act(self, fault: Fault) -> bool:
        fault.fired_at = time.monotonic()
        fault.fired.set()
        if fault.action == "silent":
            self.silent = True
            return True
        self.close(reset=True)
        return False

    def close(self, reset: bool = False) -> None:
        """Close both sockets: with a FIN, or with `reset` an RST (SO_LINGER 0)."""
        if self.closed:
            return
        self.closed = True
        for delayed in self._delayed:
            delayed.send(b"")  # ends its thread (after what is queued before it)
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # wakes the other pump's recv (a close alone would not while it blocks in it), sends nothing
                sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `target_port`; see the module docstring."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, c2s_delay: float = 0.0,
                 s2c_delay: float = 0.0, tls: bool = False) -> None:
        self.target = (target_host, target_port)
        self.tls = tls
        self.c2s_delay, self.s2c_delay = c2s_delay, s2c_delay
        self.turns = 0
        self.turns_after_setup = 0
        self.connections = 0  # accepted so far: each is one session the client opened
        self._last = "s2c"
        self._faults: list[Fault] = []
        self._open: list[Connection] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="faultproxy-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, client, upstream)
            with self._lock:
                self.connections += 1
                self._open = [c for c in self._open if not c.closed] + [conn]
            conn.start()

    def _saw(self, direction: str) -> None:
        with self._lock:
            if direction == "c2s" and self._last != "c2s":
                self.turns += 1
            self._last = direction

    def _turn_after_setup(self) -> None:
        with self._lock:
            self.turns_after_setup += 1

    def _fault_for(self, message: Message, conn: Connection) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.trigger(message, conn):
                    self._faults.remove(fault)
                    return fault
        return None

    def arm(self, action: str, trigger: Trigger, at: str = "request") -> Fault:
        """Fire `action` ("reset" or "silent") once, at the first client message `trigger` accepts."""
        fault = Fault(action, trigger, at)
        with self._lock:
            self._faults.append(fault)
        return fault

    def disarm(self) -> None:
        with self._lock:
            self._faults.clear()

    def close(self, connections: bool = True) -> None:
        """Stop listening; with `connections`, close every connection too (silent ones included)."""
        with contextlib.suppress(OSError):
            self._server.close()
        if connections:
            with self._lock:
                open_now = list(self._open)
            for conn in open_now:
                conn.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, role: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    @contextmanager
    def counted(self) -> Iterator[Callable[[], int]]:
        """Round trips made within the block."""
        start = self.turns
        yield lambda: self.turns - start

    @contextmanager
    def counted_after_setup(self) -> Iterator[Callable[[], int]]:
        """Round trips made within the block once each connection was set up (Terminate excluded)."""
        start = self.turns_after_setup
        yield lambda: self.turns_after_setup - start

    @contextmanager
    def sessions(self) -> Iterator[Callable[[], int]]:
        """Connections opened within the block."""
        start = self.connections
        yield lambda: self.connections - start
