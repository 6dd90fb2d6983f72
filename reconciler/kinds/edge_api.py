"""A small client for the Supabase Management API's Edge Function secrets endpoints (an I/O edge).

GET /v1/projects/{ref}/secrets lists names with a SHA-256 hex digest of each value (never the value);
POST upserts in bulk; DELETE removes by name. Timeouts, retries, rate limits and refusals without the
token or a body are the base's (`kinds/api_client.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.errors import ReconcilerError
from reconciler.kinds.api_client import ApiClient, Refusal


class EdgeApiError(ReconcilerError):
    """The Management API refused or failed; retryable for 429, 5xx and network errors."""


@dataclass(frozen=True)
class EdgeTarget:
    api_url: str
    project_ref: str
    token: str

    def __repr__(self) -> str:  # the token stays out of every repr
        return f"EdgeTarget(api_url={self.api_url!r}, project_ref={self.project_ref!r}, token=(sensitive))"


class EdgeApi(ApiClient):
    """The Edge Function secrets of one project."""

    error = EdgeApiError
    token_hint = "check the token in SUPABASE_ACCESS_TOKEN (or edge_functions.access_token_env)"

    def __init__(self, target: EdgeTarget, *, timeout: float = 10.0, max_attempts: int = 5,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(target.api_url, target.token, timeout=timeout, max_attempts=max_attempts, sleep=sleep,
                         transport=transport)
        self.target = target

    def __enter__(self) -> EdgeApi:
        return self

    @property
    def _path(self) -> str:
        return f"/v1/projects/{self.target.project_ref}/secrets"

    def list_digests(self) -> dict[str, str]:
        """name -> SHA-256 hex digest of the value, as the API reports it."""
        response = self._request("GET")
        try:
            body = response.json()
        except ValueError:  # not JSON (a proxy's HTML page...): a one-line error, not a traceback
            body = None
        if not isinstance(body, list):
            raise EdgeApiError("unexpected answer from the Management API (secrets list is not a list)")
        if not all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in body):
            raise EdgeApiError("unexpected answer from the Management API (a secrets list entry has no name)")
        return {item["name"]: str(item.get("value", "")).lower() for item in body}

    def upsert(self, values: Mapping[str, str]) -> None:
        if values:
            self._request("POST", json=[{"name": k, "value": v} for k, v in values.items()])

    def delete(self, names: Sequence[str]) -> None:
        if names:
            self._request("DELETE", json=list(names))

    def _request(self, method: str, json: Any = None) -> httpx.Response:
        ref = self.target.project_ref
        return self.request(
            method, self._path, "secrets", json=json,
            forbidden=Refusal(f"the access token may not manage secrets of project {ref}",
                              "use a token with the secrets:write scope"),
            not_found=Refusal(f"unknown project ref {ref}", "check edge_functions.project_ref or SUPABASE_PROJECT_REF"))
