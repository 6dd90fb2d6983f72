"""How long to wait before trying again: a `--watch` loop's next cycle (one database, or each target of a
fleet), and the next attempt of a Management API request.

Retrying waits an exponential backoff, from a first step doubling per consecutive failure up to a cap,
with "equal jitter" (half to all of it), so replicas, targets and clients do not retry in step. A loop
after a success or a permanent error waits its interval with jitter instead.
"""

from __future__ import annotations

import random


def backoff(failures: int, *, first: float, cap: float) -> float:
    """Seconds to wait after `failures` consecutive failures (the last included): `first` doubling, capped."""
    return min(cap, first * (2 ** (failures - 1))) * random.uniform(0.5, 1.0)


def next_delay(interval: float, *, jitter: float, min_backoff: float, failures: int, retrying: bool) -> float:
    """Seconds until the next cycle; `failures` counts the consecutive retryable errors (the last included).

    After a retryable error: the backoff from `min_backoff`, capped at the interval."""
    if retrying and failures:
        return backoff(failures, first=min_backoff, cap=interval)
    return interval * (1 + random.uniform(-jitter, jitter))
