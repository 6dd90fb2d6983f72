"""When a `--watch` loop (one database, or each target of a fleet) runs its next cycle.

After a success or a permanent error: the interval with jitter, so replicas and targets do not run in
step. After a retryable error: an exponential backoff from `min_backoff` doubling per consecutive failure,
capped at the interval, with "equal jitter" (half to all of it).
"""

from __future__ import annotations

import random


def next_delay(interval: float, *, jitter: float, min_backoff: float, failures: int, retrying: bool) -> float:
    """Seconds until the next cycle; `failures` counts the consecutive retryable errors (the last included)."""
    if retrying and failures:
        return min(interval, min_backoff * (2 ** (failures - 1))) * random.uniform(0.5, 1.0)
    return interval * (1 + random.uniform(-jitter, jitter))
