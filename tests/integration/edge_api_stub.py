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
from dataclasses import dataclass
from typing import Any

from localdb.api_standin import ApiStandIn, seconds_text

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


class EdgeApiStub(ApiStandIn):
    methods = ("GET", "POST", "DELETE", "PUT", "PATCH")
    thread_name = "edge-api-stub"

    def __init__(self, token: str, ref: str = "stubprojectref0001", *, readonly_token: str | None = None,
                 rate_limit: int = 120, rate_window: float = 60.0) -> None:
        self.token = token
        self.readonly_token = readonly_token
        self.ref = ref
        #: name -> plaintext of every non-reserved secret
        self.values: dict[str, str] = {}
        self._failures: list[tuple[int, str | None, float]] = []  # (status, method or None, retry-after)
        super().__init__(rate_limit=rate_limit, rate_window=rate_window)

    # -- control -------------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return f"/v1/projects/{self.ref}/secrets"

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

    # -- the server ----------------------------------------------------------------------------------

    def _record(self, method: str, path: str, headers: dict[str, str], raw: bytes, status: int) -> Recorded:
        return Recorded(method, path, headers, raw.decode("utf-8", "replace"), status)

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes, allowed: bool,
                reset: int) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON payload or None, extra headers). Caller holds the lock."""
        for i, (status, only, retry_after) in enumerate(self._failures):
            if only is None or only == method:
                del self._failures[i]
                extra = {"retry-after": seconds_text(retry_after)} if status == 429 else {}
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

