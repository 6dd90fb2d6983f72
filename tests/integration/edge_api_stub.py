"""A contract stand-in for the Supabase Management API's Edge Function secrets endpoints (tests only).

Exactly the three documented endpoints (docs/upstream.md, "The Management API"):

    GET    /v1/projects/{ref}/secrets   200 [{"name", "value"}], value = lowercase hex SHA-256 of the value;
                                        the reserved SUPABASE_URL, SUPABASE_ANON_KEY,
                                        SUPABASE_SERVICE_ROLE_KEY and SUPABASE_DB_URL are always listed
    POST   /v1/projects/{ref}/secrets   body [{"name", "value"}]: bulk upsert, 201 with an empty body;
                                        400 (nothing stored) if a name starts with SUPABASE_
    DELETE /v1/projects/{ref}/secrets   body ["NAME", ...]: 200

Bearer token auth (401 when missing or wrong); a read-only token gets 403 on POST/DELETE; an unknown ref
404. Every answer carries x-ratelimit-limit / -remaining / -reset (a fixed window of `rate_window`
seconds); beyond `rate_limit` requests in a window the answer is 429 with retry-after. `fail_next(n,
status, method=None)` makes the next n (matching) requests fail with that status (429 or 5xx).

Every request is recorded (`requests`: method, path, headers, body) and the stored plaintext values are
exposed (`values`, `digests()`) so tests can compare them with the vault.

    with EdgeApiStub(token="t", ref="abcd1234abcd1234") as stub:
        stub.url    # http://127.0.0.1:PORT
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RESERVED = {
    "SUPABASE_URL": "https://stub-project.supabase.co",
    "SUPABASE_ANON_KEY": "stub-anon-key",
    "SUPABASE_SERVICE_ROLE_KEY": "stub-service-role-key",
    "SUPABASE_DB_URL": "postgresql://stub@db.stub-project.supabase.co:5432/postgres",
}


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Recorded:
    """One request as the stub received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: str
    status: int

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class EdgeApiStub:
    def __init__(self, token: str, ref: str = "stubprojectref0001", *, readonly_token: str | None = None,
                 rate_limit: int = 120, rate_window: float = 60.0) -> None:
        self.token = token
        self.readonly_token = readonly_token
        self.ref = ref
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        #: name -> plaintext of every non-reserved secret
        self.values: dict[str, str] = {}
        self.requests: list[Recorded] = []
        self._failures: list[tuple[int, str | None, float]] = []  # (status, method or None, retry-after)
        self._window_start = time.monotonic()
        self._window_count = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def path(self) -> str:
        return f"/v1/projects/{self.ref}/secrets"

    def start(self) -> EdgeApiStub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="edge-api-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> EdgeApiStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EdgeApiStub(url={self.url!r}, ref={self.ref!r}, secrets={sorted(self.values)!r})"

    def fail_next(self, n: int, status: int = 429, *, method: str | None = None, retry_after: float = 0) -> None:
        """The next n requests (of `method`, if given) answer `status`; 429s carry retry-after."""
        with self._lock:
            self._failures.extend([(status, method, retry_after)] * n)

    def digests(self, *, reserved: bool = False) -> dict[str, str]:
        with self._lock:
            out = {name: sha256_hex(v) for name, v in self.values.items()}
        if reserved:
            out.update({name: sha256_hex(v) for name, v in RESERVED.items()})
        return out

    def calls(self, method: str | None = None) -> list[Recorded]:
        """Requests that reached the secrets path (any status), optionally of one method."""
        return [r for r in self.requests if method is None or r.method == method]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- the server ----------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass  # quiet: tests read `stub.requests`

            def do_GET(self) -> None:  # noqa: N802 - stdlib names
                stub._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                stub._handle(self, "POST")

            def do_DELETE(self) -> None:  # noqa: N802
                stub._handle(self, "DELETE")

            def do_PUT(self) -> None:  # noqa: N802
                stub._handle(self, "PUT")

            def do_PATCH(self) -> None:  # noqa: N802
                stub._handle(self, "PATCH")

        return Handler

    def _rate(self) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until the window resets); counts this request. Caller holds the lock."""
        now = time.monotonic()
        if now - self._window_start >= self.rate_window:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        reset = max(0, math.ceil(self._window_start + self.rate_window - now))
        remaining = max(0, self.rate_limit - self._window_count)
        return self._window_count <= self.rate_limit, remaining, reset

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            allowed, remaining, reset = self._rate()
            status, payload, extra = self._answer(method, handler.path, headers, raw, allowed, reset)
            self.requests.append(Recorded(method, handler.path, headers, body, status))
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

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes, allowed: bool,
                reset: int) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON payload or None, extra headers). Caller holds the lock."""
        for i, (status, only, retry_after) in enumerate(self._failures):
            if only is None or only == method:
                del self._failures[i]
                extra = {"retry-after": _seconds(retry_after)} if status == 429 else {}
                return status, {"message": "injected failure"}, extra
        if not allowed:
            return 429, {"message": "Too many requests"}, {"retry-after": str(reset)}
        auth = headers.get("authorization", "")
        if auth not in (f"Bearer {self.token}", f"Bearer {self.readonly_token}") or not auth.removeprefix("Bearer "):
            return 401, {"message": "Unauthorized"}, {}
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "projects"] or parts[3] != "secrets":
            return 404, {"message": "Not found"}, {}
        if parts[2] != self.ref:
            return 404, {"message": "Project not found"}, {}
        if method == "GET":
            listed = [{"name": n, "value": sha256_hex(v)} for n, v in RESERVED.items()]
            listed += [{"name": n, "value": sha256_hex(v)} for n, v in sorted(self.values.items())]
            return 200, listed, {}
        if method not in ("POST", "DELETE"):
            return 405, {"message": "Method not allowed"}, {}
        if auth != f"Bearer {self.token}":
            return 403, {"message": "Your account does not have the necessary privileges (secrets:write)"}, {}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return 400, {"message": "Invalid JSON body"}, {}
        if method == "POST":
            if not isinstance(body, list) or not all(
                    isinstance(i, dict) and set(i) == {"name", "value"} and isinstance(i["name"], str)
                    and isinstance(i["value"], str) for i in body):
                return 400, {"message": "body must be an array of {name, value}"}, {}
            reserved = [i["name"] for i in body if i["name"].upper().startswith("SUPABASE_")]
            if reserved:
                return 400, {"message": f"Env var name cannot start with SUPABASE_: {', '.join(reserved)}"}, {}
            for item in body:
                self.values[item["name"]] = item["value"]
            return 201, None, {}
        if not isinstance(body, list) or not all(isinstance(n, str) for n in body):
            return 400, {"message": "body must be an array of names"}, {}
        for name in body:
            self.values.pop(name, None)
        return 200, None, {}


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
