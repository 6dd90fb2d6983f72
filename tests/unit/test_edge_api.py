"""reconciler.kinds.edge_api alone: retries, Retry-After, errors and redaction, over httpx.MockTransport.

The Management API is a third-party boundary of ours, so it is replaced here by a transport that
answers from a script; the contract itself is exercised against tests/integration/edge_api_stub.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import httpx
import pytest

from reconciler.errors import ReconcilerError
from reconciler.kinds.edge_api import EdgeApi, EdgeApiError, EdgeTarget

TOKEN = "sbp_unit-token-marker-41c9e2"
REF = "unitprojectref01"
TARGET = EdgeTarget("https://api.example.test", REF, TOKEN)
PATH = f"/v1/projects/{REF}/secrets"


class Script:
    """Answers requests from a list of responses in order; records every request and every sleep."""

    def __init__(self, answers: Iterable[httpx.Response | Callable[[httpx.Request], httpx.Response]]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    def api(self, max_attempts: int = 5) -> EdgeApi:
        return EdgeApi(TARGET, max_attempts=max_attempts, sleep=self.sleeps.append,
                       transport=httpx.MockTransport(self.handle))


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


LISTING = [{"name": "SUPABASE_URL", "value": "AB" * 32}, {"name": "CRON_SECRET", "value": "cd" * 32}]


def test_lists_digests_lowercase_with_the_token_only_in_authorization() -> None:
    script = Script([answer(200, LISTING)])
    with script.api() as api:
        assert api.list_digests() == {"SUPABASE_URL": "ab" * 32, "CRON_SECRET": "cd" * 32}
    (request,) = script.requests
    assert (request.method, request.url.path) == ("GET", PATH)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    others = {k: v for k, v in request.headers.items() if k != "authorization"}
    assert TOKEN not in repr(others) and TOKEN not in str(request.url)


def test_upsert_is_one_bulk_post_and_delete_sends_names() -> None:
    script = Script([answer(201)])
    with script.api() as api:
        api.upsert({"A": "1", "B": "2"})
        api.delete(["C"])
        api.upsert({})
        api.delete([])  # nothing to do: no request
    assert [(r.method, r.url.path) for r in script.requests] == [("POST", PATH), ("DELETE", PATH)]
    assert json.loads(script.requests[0].content) == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert json.loads(script.requests[1].content) == ["C"]


@pytest.mark.parametrize(
    ("failure", "expected_sleep"),
    [
        pytest.param(answer(429, {"message": "slow down"}, **{"retry-after": "7"}), 7.0, id="429-retry-after"),
        pytest.param(answer(429, {}, **{"x-ratelimit-reset": "3", "x-ratelimit-remaining": "0"}), 3.0,
                     id="429-x-ratelimit-reset"),
        pytest.param(answer(429, {}, **{"retry-after": "2", "x-ratelimit-reset": "40"}), 2.0,
                     id="429-retry-after-wins"),
        pytest.param(answer(503, {}, **{"retry-after": "4"}), 4.0, id="503-retry-after"),
        pytest.param(answer(429, {}, **{"retry-after": "3600"}), 60.0, id="429-capped-at-60s"),
    ],
)
def test_retry_after_is_honoured(failure: httpx.Response, expected_sleep: float) -> None:
    script = Script([failure, answer(200, LISTING)])
    with script.api() as api:
        assert "CRON_SECRET" in api.list_digests()
    assert script.sleeps == [expected_sleep]
    assert len(script.requests) == 2


def test_a_5xx_does_not_wait_out_the_rate_window() -> None:
    """x-ratelimit-reset is on every answer; after a 503 it is not a reason to wait the whole window."""
    script = Script([answer(503, {}, **{"x-ratelimit-reset": "55", "x-ratelimit-remaining": "100"}),
                     answer(200, LISTING)])
    with script.api() as api:
        api.list_digests()
    (delay,) = script.sleeps
    assert 0 < delay <= 1.0  # the first backoff step, not 55 s


def test_gives_up_after_max_attempts() -> None:
    script = Script([answer(503, {})])
    with script.api(max_attempts=3) as api, pytest.raises(EdgeApiError) as raised:
        api.upsert({"CRON_SECRET": "v"})
    assert len(script.requests) == 3
    assert len(script.sleeps) == 2
    assert raised.value.retryable
    assert "503" in str(raised.value) and "3 attempts" in str(raised.value)


def test_network_errors_are_retried_then_reported_without_the_token() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused (Authorization: Bearer {TOKEN})", request=request)

    script = Script([refuse])
    with script.api(max_attempts=2) as api, pytest.raises(EdgeApiError) as raised:
        api.list_digests()
    assert len(script.requests) == 2
    assert raised.value.retryable
    assert TOKEN not in raised.value.one_line()
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.parametrize(
    ("status", "words"),
    [
        pytest.param(401, "rejected the access token (401)", id="401"),
        pytest.param(403, f"may not manage secrets of project {REF} (403)", id="403"),
        pytest.param(404, f"unknown project ref {REF} (404)", id="404"),
        pytest.param(400, "POST secrets failed with 400", id="400"),
    ],
)
def test_refusals_are_one_line_without_token_or_body_and_not_retried(status: int, words: str) -> None:
    # An API error body could echo what was sent (or the token): it must not reach the message.
    script = Script([answer(status, {"message": f"bad token {TOKEN} value plain-value-7e1"})])
    with script.api() as api, pytest.raises(EdgeApiError) as raised:
        api.upsert({"CRON_SECRET": "plain-value-7e1"})
    error = raised.value
    assert isinstance(error, ReconcilerError)
    assert words in error.one_line()
    assert "\n" not in error.one_line()
    for text in (error.one_line(), repr(error), str(error.args)):
        assert TOKEN not in text and "plain-value-7e1" not in text
    assert not error.retryable
    assert len(script.requests) == 1 and script.sleeps == []


@pytest.mark.parametrize(
    ("response", "words"),
    [
        pytest.param(answer(200, {"secrets": []}), "not a list", id="object"),
        pytest.param(httpx.Response(200, text="<html>gateway</html>"), "not a list", id="not-json"),
        pytest.param(answer(200, [{"value": "ab" * 32}]), "has no name", id="entry-without-name"),
        pytest.param(answer(200, ["CRON_SECRET"]), "has no name", id="entry-not-an-object"),
    ],
)
def test_unexpected_listing_shape_is_a_one_line_error(response: httpx.Response, words: str) -> None:
    script = Script([response])
    with script.api() as api, pytest.raises(EdgeApiError, match=words):
        api.list_digests()


def test_target_repr_hides_the_token() -> None:
    for text in (repr(TARGET), str(TARGET), f"{TARGET}", repr([TARGET])):
        assert TOKEN not in text
        assert "(sensitive)" in text
    assert REF in repr(TARGET)
    api = Script([answer(200, [])]).api()
    try:
        assert TOKEN not in repr(api.target)
    finally:
        api.close()
