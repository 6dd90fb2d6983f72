"""reconciler.fleet.management_api alone: retries, Retry-After, errors and redaction, over httpx.MockTransport.

The contract itself is exercised against localdb/management_api.py (tests/unit/test_fleet_generators.py,
tests/standins/test_management_api.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from reconciler.fleet.management_api import ManagementApi, ManagementApiError

TOKEN = "sbp_unit-token-MARKER-77"


def client(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float]) -> ManagementApi:
    return ManagementApi("https://api.example.test/", TOKEN, sleep=sleeps.append,
                         transport=httpx.MockTransport(handler))


def test_network_errors_are_retried_then_one_line_without_the_token() -> None:
    sleeps: list[float] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {request.headers['authorization']}")

    with client(refuse, sleeps) as api, pytest.raises(ManagementApiError) as e:
        api.projects()
    assert e.value.one_line() == "Management API unreachable at https://api.example.test: ConnectError"
    assert e.value.retryable and len(sleeps) == 3
    assert "MARKER" not in repr(api) + str(e.value)


def test_retry_after_is_honoured_on_429_and_5xx() -> None:
    sleeps: list[float] = []
    answers = [httpx.Response(429, headers={"retry-after": "2"}), httpx.Response(503, headers={"retry-after": "1"}),
               httpx.Response(200, json=[])]
    with client(lambda r: answers.pop(0), sleeps) as api:
        assert api.projects() == []
    assert sleeps == [2.0, 1.0]


def test_an_answer_that_is_not_json_or_not_a_list_is_one_line() -> None:
    sleeps: list[float] = []
    with client(lambda r: httpx.Response(200, text="<html>"), sleeps) as api, pytest.raises(ManagementApiError) as e:
        api.projects()
    assert e.value.one_line() == "unexpected answer from the Management API (projects is not JSON)"
    with client(lambda r: httpx.Response(200, json={"db_pass": "x"}), sleeps) as api, \
            pytest.raises(ManagementApiError) as e:
        api.branches("abc")
    assert e.value.one_line() == "unexpected answer from the Management API (branches of project abc is not a list of objects)"


def test_a_refusal_never_shows_the_body() -> None:
    sleeps: list[float] = []
    body = {"message": "bad request for db_pass SECRET-MARKER"}
    with client(lambda r: httpx.Response(400, json=body), sleeps) as api, pytest.raises(ManagementApiError) as e:
        api.branch("some-id")
    assert e.value.one_line() == "Management API GET branch some-id failed with 400"
    with client(lambda r: httpx.Response(403, json=body), sleeps) as api, pytest.raises(ManagementApiError) as e:
        api.api_keys("abc")
    assert e.value.one_line() == ("the access token may not read API keys of project abc (403) (use a token of a "
                                  "member of the project's organization)")


def test_api_keys_by_role_from_legacy_names_or_new_types() -> None:
    sleeps: list[float] = []
    keys = [{"name": "default", "type": "publishable", "api_key": "pub"},
            {"name": "default", "type": "secret", "api_key": "sec"},
            {"name": "anon", "type": "legacy", "api_key": "legacy-anon"},
            {"name": "service_role", "type": "legacy", "api_key": None}]
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=keys)

    with client(answer, sleeps) as api:
        assert api.api_keys("abc") == {"anon": "legacy-anon", "service_role": "sec"}
    assert seen[0].url.path == "/v1/projects/abc/api-keys" and seen[0].url.params["reveal"] == "true"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
