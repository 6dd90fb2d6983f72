"""The base of the two Supabase Management API clients (an I/O edge): the edge secrets plane's
(`kinds/edge_api.py`) and the fleet generators' (`fleet/management_api.py`).

One access token, sent only in the Authorization header; a timeout on every request; retries with
backoff (`util/backoff.py`) on network errors, 429 and 5xx, honouring Retry-After and, on a 429,
x-ratelimit-reset; an optional pacer that spaces every attempt once the API has rate-limited this
replica. Refusals become one-line errors of the subclass's error class: never the answer's body (it can
hold credentials, or echo what was sent) and never the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

import httpx

from reconciler.errors import ReconcilerError
from reconciler.util.backoff import backoff

#: The first retry's wait and the longest, in seconds; a Retry-After is honoured up to RETRY_AFTER_CAP.
FIRST_BACKOFF, BACKOFF_CAP, RETRY_AFTER_CAP = 0.5, 30.0, 60.0


class Pacer(Protocol):
    """Spaces requests (`fleet.generator_cache.RequestPacer`): called around every attempt."""

    def before_request(self) -> None: ...

    def after_response(self, status: int, headers: Mapping[str, str]) -> None: ...


class Refusal(NamedTuple):
    """What a 403 or 404 means for one request: the message (the status is appended) and a hint."""

    message: str
    hint: str = ""


class ApiClient:
    """Requests to the Management API with one access token; subclasses name the calls and their meaning."""

    #: The class of every error raised (retryable for network errors, 429 and 5xx).
    error: ClassVar[type[ReconcilerError]] = ReconcilerError
    #: Where to check the token, shown with a 401.
    token_hint: ClassVar[str] = ""

    def __init__(self, api_url: str, token: str, *, timeout: float, max_attempts: int,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None,
                 pacer: Pacer | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.max_attempts = max_attempts
        self.sleep = sleep
        hooks: dict[str, list[Callable[[Any], None]]] = {"request": [], "response": []}
        if pacer is not None:  # every attempt, retries included, waits for its slot after a 429
            hooks["request"].append(lambda _request: pacer.before_request())
            hooks["response"].append(lambda response: pacer.after_response(response.status_code, response.headers))
        self._client = httpx.Client(base_url=self.api_url, timeout=timeout, transport=transport, event_hooks=hooks,
                                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                             "User-Agent": "scheduler-reconciler"})

    def __repr__(self) -> str:  # the token stays out of every repr
        return f"{type(self).__name__}(api_url={self.api_url!r}, token=(sensitive))"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, what: str, *, json: Any = None, forbidden: Refusal | None = None,
                not_found: Refusal | None = None) -> httpx.Response:
        """A successful answer to `method path`; raises `error` for a refusal or when the attempts run out.

        `what` names the thing asked for in messages ("secrets", "branch b-1"); `forbidden` and
        `not_found` say what a 403 or a 404 means here (else the generic "failed with" message)."""
        response = self._send(method, path, what, json)
        if response.status_code < 400:
            return response
        raise self._refused(response.status_code, method, what, forbidden, not_found)

    def _send(self, method: str, path: str, what: str, json: Any) -> httpx.Response:
        """The first answer that is a success or a refusal (4xx but 429), retrying everything else."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._client.request(method, path, json=json)
            except httpx.HTTPError as e:
                if attempt >= self.max_attempts:  # the exception's text can quote a header: only its type
                    raise self.error(f"Management API unreachable at {self.api_url}: {type(e).__name__}",
                                     retryable=True) from None
                self.sleep(backoff(attempt, first=FIRST_BACKOFF, cap=BACKOFF_CAP))
                continue
            if response.status_code != 429 and response.status_code < 500:
                return response
            if attempt >= self.max_attempts:
                raise self.error(f"Management API {method} {what} failed with {response.status_code} "
                                 f"after {attempt} attempts", retryable=True)
            self.sleep(retry_after(response, attempt))

    def _refused(self, status: int, method: str, what: str, forbidden: Refusal | None,
                 not_found: Refusal | None) -> ReconcilerError:
        if status == 401:
            return self.error("the Management API rejected the access token (401)", hint=self.token_hint)
        meaning = {403: forbidden, 404: not_found}.get(status)
        if meaning is not None:
            return self.error(f"{meaning.message} ({status})", hint=meaning.hint)
        # The body is not shown: an answer of this API can hold credentials, or quote what was sent.
        return self.error(f"Management API {method} {what} failed with {status}")


def retry_after(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying after `response` (a 429 or a 5xx), the `attempt`-th."""
    # x-ratelimit-reset comes with every answer and tells when the rate window resets: it says how long
    # to wait only when the rate limit was hit (429), not after a 5xx (which would wait out the window).
    headers = ("retry-after", "x-ratelimit-reset") if response.status_code == 429 else ("retry-after",)
    for header in headers:
        value = response.headers.get(header)
        if value:
            try:
                return min(RETRY_AFTER_CAP, max(0.0, float(value)))
            except ValueError:
                pass
    return backoff(attempt, first=FIRST_BACKOFF, cap=BACKOFF_CAP)
