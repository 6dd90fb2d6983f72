"""The one base of the two Management API clients: the same waits, the same refusals, no token shown."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest

from reconciler.fleet.management_api import ManagementApi, ManagementApiError
from reconciler.kinds.api_client import ApiClient
from reconciler.kinds.edge_api import EdgeApi, EdgeApiError, EdgeTarget
from reconciler.util.backoff import backoff

TOKEN = "sbp_base-token-marker-5d0a"


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"refused {request.headers['authorization']}")


def clients(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float]) -> list[ApiClient]:
    transport = httpx.MockTransport(handler)
    return [EdgeApi(EdgeTarget("https://api.example.test", "ref1", TOKEN), max_attempts=4, sleep=sleeps.append,
                    transport=transport),
            ManagementApi("https://api.example.test", TOKEN, max_attempts=4, sleep=sleeps.append, transport=transport)]


def call(api: ApiClient) -> object:
    """The listing each client makes first."""
    assert isinstance(api, EdgeApi | ManagementApi)
    return api.list_digests() if isinstance(api, EdgeApi) else api.projects()


def test_both_clients_back_off_with_the_one_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the jitter's upper end
    waits: list[list[float]] = []
    sleeps: list[float] = []
    for api in clients(refuse, sleeps):
        with api, pytest.raises((EdgeApiError, ManagementApiError)) as raised:
            call(api)
        assert raised.value.retryable
        assert raised.value.one_line() == "Management API unreachable at https://api.example.test: ConnectError"
        assert TOKEN not in repr(api) + raised.value.one_line()
        waits.append(list(sleeps))
        sleeps.clear()
    assert waits[0] == waits[1] == [backoff(n, first=0.5, cap=30.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_backoff_doubles_with_equal_jitter_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[tuple[float, float]] = []

    def lowest(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    monkeypatch.setattr(random, "uniform", lowest)
    assert [backoff(n, first=1.0, cap=10.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert set(draws) == {(0.5, 1.0)}


@pytest.mark.parametrize("status", [401, 400])
def test_a_refusal_is_the_subclass_error_without_the_body(status: int) -> None:
    body = {"message": f"no, {TOKEN}"}
    for api in clients(lambda request: httpx.Response(status, json=body), []):
        with api, pytest.raises((EdgeApiError, ManagementApiError)) as raised:
            call(api)
        assert type(raised.value) is type(api).error
        assert TOKEN not in raised.value.one_line() and not raised.value.retryable
        assert str(status) in raised.value.one_line()
