"""The controller's backoff schedule, in process (no subprocess, no database).

`Controller._next_delay` after n retryable failures: base = min(interval, min_backoff * 2**(n-1)),
jittered into [base/2, base]; any other result waits the interval +- the configured jitter.
`cycle()` against a server that is not there counts the failures that feed it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from reconciler.watch.controller import Controller, Settings
from tests.integration.apply_support import MANIFEST, SECRETS_ENV

SAMPLES = 200


@pytest.fixture(autouse=True)
def _unfiltered_logs() -> Iterator[None]:
    # Other tests run the CLI in process, which filters below warning; capture_logs needs every level.
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def _controller(interval: float, **kw: object) -> Controller:
    return Controller(Settings(files=[str(MANIFEST)], url="postgresql://nobody@/nowhere?host=/nonexistent&port=1",
                               interval=interval, http_port=-1, environ=SECRETS_ENV, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(("failures", "base"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 30.0),
                                                (20, 30.0)], ids=lambda v: str(v))
def test_backoff_grows_from_one_second_and_is_capped_at_the_interval(failures: int, base: float) -> None:
    controller = _controller(30.0)
    controller._failures = failures
    with capture_logs() as logs:
        delays = [controller._next_delay("error", True) for _ in range(SAMPLES)]
    assert all(base / 2 <= d <= base for d in delays), (min(delays), max(delays))
    assert max(delays) - min(delays) > base / 10  # jittered, not constant
    assert len(logs) == SAMPLES
    assert all(e["event"] == "backoff" and e["failures"] == failures for e in logs)


def test_other_results_wait_the_interval_with_jitter() -> None:
    controller = _controller(10.0, jitter=0.1)
    for result, retryable in (("success", False), ("drift", False), ("skipped", True), ("error", False)):
        with capture_logs() as logs:
            delays = [controller._next_delay(result, retryable) for _ in range(SAMPLES)]
        assert all(9.0 <= d <= 11.0 for d in delays), (result, min(delays), max(delays))
        assert max(delays) - min(delays) > 0.5
        assert not [e for e in logs if e["event"] == "backoff"]


def test_failed_cycles_back_off_exponentially() -> None:
    controller = _controller(5.0)
    with capture_logs() as logs:
        delays = [controller.cycle() for _ in range(5)]
    bases = [1.0, 2.0, 4.0, 5.0, 5.0]
    assert all(b / 2 <= d <= b for d, b in zip(delays, bases, strict=True)), delays
    finished = [e for e in logs if e["event"] == "cycle_finished"]
    assert [e["result"] for e in finished] == ["error"] * 5
    assert all(e["retryable"] is True and "cannot connect" in e["error"] for e in finished)
    assert [e["failures"] for e in logs if e["event"] == "backoff"] == [1, 2, 3, 4, 5]
    assert controller.ready() == (False, "last cycle did not succeed")
    assert controller.healthy()
