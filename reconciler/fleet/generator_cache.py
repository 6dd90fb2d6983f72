"""What the generators fetched, kept between refreshes, and the pacing of their requests after a 429.

A refresh of a big fleet must cost about one list request: the list of branches or projects is read every
time (it says what exists), but a branch's connection details and a project's API keys are fetched only
for the targets of this replica's shard and only when they are not known yet. A fetched entry is reused
while the item's list entry is unchanged (the same JSON: a branch's `updated_at` or status moves when it
changes); API keys are re-read after `keys_max_age`; and `invalidate(name)` drops what is known of one
target (its database rejected the fetched password, or its Edge Function answered 401 to the trigger
with the fetched key) so the next refresh fetches it again.

`RequestPacer`: replicas usually share one token and so one rate limit. After a 429, the requests still
to make go out one at a time, spaced by this replica's share of the budget (window / (limit / replicas); the window's length is
taken as the longest x-ratelimit-reset seen, at most a minute),
starting when the API says the window resets, instead of all retrying at once when it does. The spacing
lasts until the end of the refresh; the next refresh starts unpaced.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KEYS_MAX_AGE_SECONDS", "Fetched", "GeneratorCache", "RequestPacer", "listed_fingerprint"]

#: API keys are rotated rarely; a rotation is also noticed at once through `invalidate`.
KEYS_MAX_AGE_SECONDS = 3600.0
#: The Management API's rate window (about 120 requests a minute per token: docs/targets.md).
RATE_WINDOW_SECONDS = 60.0
DEFAULT_RATE_LIMIT = 120


def listed_fingerprint(item: Mapping[str, Any]) -> str:
    """The list entry as stable text: an unchanged entry gives the same text at the next refresh."""
    return json.dumps(item, sort_keys=True, default=str)


@dataclass
class Fetched:
    """What was fetched for one branch or project (credentials: never shown in a repr)."""

    listed: str
    url: str | None = field(default=None, repr=False)
    keys: Mapping[str, str] | None = field(default=None, repr=False)
    keys_at: float = float("-inf")


class RequestPacer:
    """Spaces requests at this replica's share of the rate limit once the API has answered 429."""

    def __init__(self, *, replicas: int = 1, window: float = RATE_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.replicas = max(1, replicas)
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.spacing = 0.0
        self.rate_limited_answers = 0
        self._next = float("-inf")
        self._longest_reset = 0.0
        self._lock = threading.Lock()

    def before_request(self) -> None:
        """Wait for this request's slot (no wait before the first 429 of a refresh)."""
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            if self.spacing:
                self._next = slot + self.spacing
        if slot > now:
            self.sleep(slot - now)

    def after_response(self, status: int, headers: Mapping[str, str]) -> None:
        reset = _number(headers.get("x-ratelimit-reset"))
        if reset is not None:
            with self._lock:
                self._longest_reset = max(self._longest_reset, reset)
        if status != 429:
            return
        limit = _number(headers.get("x-ratelimit-limit")) or DEFAULT_RATE_LIMIT
        wait = _number(headers.get("retry-after"))
        if wait is None:
            wait = _number(headers.get("x-ratelimit-reset")) or 0.0
        with self._lock:
            self.rate_limited_answers += 1
            # The window is the longest reset seen (the API does not say its length), at most `window`.
            window = min(self.window, self._longest_reset) if self._longest_reset else self.window
            self.spacing = window / max(1.0, limit / self.replicas)
            self._next = max(self._next, self.clock() + min(wait, self.window))

    def relax(self) -> None:
        """A new refresh: no spacing until the API says 429 again."""
        with self._lock:
            self.spacing, self._next = 0.0, float("-inf")


def _number(text: str | None) -> float | None:
    try:
        return max(0.0, float(text)) if text else None
    except ValueError:
        return None


class GeneratorCache:
    """Fetched details and keys by (generator, item id), and the names whose entries must be fetched again."""

    def __init__(self, *, keys_max_age: float = KEYS_MAX_AGE_SECONDS, replicas: int = 1,
                 rate_window: float = RATE_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.keys_max_age = keys_max_age
        self.clock = clock
        self.pacer = RequestPacer(replicas=replicas, window=rate_window)
        self._entries: dict[tuple[str, str], Fetched] = {}
        self._names: dict[str, tuple[str, str]] = {}
        self._stale: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GeneratorCache(entries={len(self._entries)})"

    def get(self, generator: str, item_id: str, name: str, listed: str) -> Fetched | None:
        """What is known of the item, when its list entry is unchanged and its target was not invalidated."""
        with self._lock:
            self._names[name] = (generator, item_id)
            if name in self._stale:
                self._stale.discard(name)
                self._entries.pop((generator, item_id), None)
                return None
            entry = self._entries.get((generator, item_id))
            return entry if entry is not None and entry.listed == listed else None

    def keys_fresh(self, entry: Fetched) -> bool:
        return entry.keys is not None and self.clock() - entry.keys_at < self.keys_max_age

    def put(self, generator: str, item_id: str, entry: Fetched) -> None:
        with self._lock:
            self._entries[(generator, item_id)] = entry

    def keep_only(self, generator: str, item_ids: set[str]) -> None:
        """Forget the items of `generator` that are no longer listed (or no longer this replica's)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == generator and k[1] not in item_ids]:
                del self._entries[key]

    def invalidate(self, name: str) -> bool:
        """Fetch the target's details and keys again at the next refresh; False for a target not generated."""
        with self._lock:
            if name not in self._names:
                return False
            self._stale.add(name)
            return True
