"""A small client for the Supabase Management API's Edge Function secrets endpoints (an I/O edge).

GET /v1/projects/{ref}/secrets lists names with a SHA-256 hex digest of each value (never the value);
POST upserts in bulk; DELETE removes by name. Requests have a timeout and are retried with backoff on
429 and 5xx (honouring Retry-After and the x-ratelimit-reset header). The token is sent only in the
Authorization header and never appears in a message or log.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.errors import ReconcilerError


class EdgeApiError(ReconcilerError):
    """The Management API refused or failed; retryable for 429, 5xx and network errors."""


@dataclass(frozen=True)
class EdgeTarget:
    api_url: str
    project_ref: str
    token: str

    def __repr__(self) -> str:  # the token stays out of every repr
        return f"EdgeTarget(api_url={self.api_url!r}, project_ref={self.project_ref!r}, token=(sensitive))"


class EdgeApi:
    def __init__(self, target: EdgeTarget, *, timeout: float = 10.0, max_attempts: int = 5,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None) -> None:
        self.target = target
        self.max_attempts = max_attempts
        self.sleep = sleep
        self._client = httpx.Client(base_url=target.api_url.rstrip("/"), timeout=timeout, transport=transport,
                                    headers={"Authorization": f"Bearer {target.token}", "Accept": "application/json",
                                             "User-Agent": "scheduler-reconciler"})

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EdgeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _path(self) -> str:
        return f"/v1/projects/{self.target.project_ref}/secrets"

    def list_digests(self) -> dict[str, str]:
        """name -> SHA-256 hex digest of the value, as the API reports it."""
        response = self._request("GET", self._path)
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
            self._request("POST", self._path, json=[{"name": k, "value": v} for k, v in values.items()])

    def delete(self, names: Sequence[str]) -> None:
        if names:
            self._request("DELETE", self._path, json=list(names))

    def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        response = send(self._client, method, path, json=json, max_attempts=self.max_attempts, sleep=self.sleep,
                        unreachable=lambda e: EdgeApiError(f"Management API unreachable at {self.target.api_url}: "
                                                           f"{type(e).__name__}", retryable=True),
                        exhausted=lambda status, attempts: EdgeApiError(
                            f"Management API {method} secrets failed with {status} after {attempts} attempts",
                            retryable=True))
        if response.status_code < 400:
            return response
        raise _refused(response, self.target, method)


def send(client: httpx.Client, method: str, path: str, *, json: Any = None, max_attempts: int,
         sleep: Callable[[float], None], unreachable: Callable[[httpx.HTTPError], ReconcilerError],
         exhausted: Callable[[int, int], ReconcilerError]) -> httpx.Response:
    """One Management API request, retried on network errors, 429 and 5xx with the API's waiting rules.

    Returns the answer when it is a success or a refusal the caller explains (4xx other than 429);
    raises `unreachable(error)` or `exhausted(status, attempts)` when the attempts run out.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            response = client.request(method, path, json=json)
        except httpx.HTTPError as e:
            if attempt >= max_attempts:
                raise unreachable(e) from None
            sleep(_backoff(attempt))
            continue
        if response.status_code != 429 and response.status_code < 500:
            return response
        if attempt >= max_attempts:
            raise exhausted(response.status_code, attempt)
        sleep(_retry_after(response, attempt))


def _backoff(attempt: int) -> float:
    return min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _retry_after(response: httpx.Response, attempt: int) -> float:
    # x-ratelimit-reset comes with every answer and tells when the rate window resets: it says how long
    # to wait only when the rate limit was hit (429), not after a 5xx (which would wait out the window).
    headers = ("retry-after", "x-ratelimit-reset") if response.status_code == 429 else ("retry-after",)
    for header in headers:
        value = response.headers.get(header)
        if value:
            try:
                return min(60.0, max(0.0, float(value)))
            except ValueError:
                pass
    return _backoff(attempt)


def _refused(response: httpx.Response, target: EdgeTarget, method: str) -> EdgeApiError:
    status = response.status_code
    if status == 401:
        return EdgeApiError("the Management API rejected the access token (401)",
                            hint="check the token in SUPABASE_ACCESS_TOKEN (or edge_functions.access_token_env)")
    if status == 403:
        return EdgeApiError(f"the access token may not manage secrets of project {target.project_ref} (403)",
                            hint="use a token with the secrets:write scope")
    if status == 404:
        return EdgeApiError(f"unknown project ref {target.project_ref} (404)",
                            hint="check edge_functions.project_ref or SUPABASE_PROJECT_REF")
    # The response body is not shown: an API error message could quote what was sent.
    return EdgeApiError(f"Management API {method} secrets failed with {status}")
