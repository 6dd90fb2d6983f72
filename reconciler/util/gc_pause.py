"""`paused_gc`: the cyclic garbage collector held off while a large tree of objects is built.

Loading 10,000 jobs, reading their rows and planning them each allocate hundreds of thousands of objects
that stay alive and form no reference cycles. Every 700 allocations CPython collects the youngest
generation, and now and then all of them: each pass walks the growing tree again and finds nothing to
free (docs/benchmarks.md measures the cost). Paused for the burst, it resumes when the block ends,
however it ends, and collects nothing it would not have collected later.

The collector's switch is one per process, while the fleet runs applies and manifest loads on several
threads at once: blocks on different threads overlap. A depth count under a lock makes the first block
in turn the collector off (remembering whether it was on) and the last block out restore it; without it
a block could see the collector off because another thread's block was running, and leave it off for good.
Imports nothing from the rest of the package.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # blocks running now, on every thread
_was_enabled = False  # the collector's state when the first of them began


@contextmanager
def paused_gc() -> Iterator[None]:
    """The block runs without cyclic collection; the collector is restored as it was once the last
    block running (on any thread, nested or not) ends."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
