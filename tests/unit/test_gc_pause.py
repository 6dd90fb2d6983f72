"""`paused_gc` under threads: the fleet's worker pool runs applies and manifest loads at once, and each
one pauses the cyclic collector; however their blocks interleave, the collector is on again afterwards."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator

import pytest

from reconciler.util.gc_pause import paused_gc

THREADS = 4
ROUNDS = 50
BLOCKS = 2000  # per thread and round: the unlocked version failed this in 9 of 10 runs (the next test: always)


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads every microsecond: the check-then-act window in a naive `paused_gc` is a few
    bytecodes wide, which the default 5 ms interval almost never splits."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
        gc.enable()  # a failed round must not leave the rest of the session without a collector


def _one_round(seen_enabled_inside: list[int]) -> None:
    start = threading.Barrier(THREADS)

    def worker() -> None:
        start.wait()
        for _ in range(BLOCKS):
            with paused_gc():
                if gc.isenabled():
                    seen_enabled_inside.append(1)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_blocks_leave_the_collector_enabled(tiny_switch_interval: None) -> None:
    assert gc.isenabled()
    left_disabled, seen_enabled_inside = 0, []
    for _ in range(ROUNDS):
        _one_round(seen_enabled_inside)
        if not gc.isenabled():
            left_disabled += 1
            gc.enable()
    assert (left_disabled, len(seen_enabled_inside)) == (0, 0), (
        f"the collector was left disabled after {left_disabled} of {ROUNDS} rounds, and seen enabled inside "
        f"a block {len(seen_enabled_inside)} times")


def test_the_collector_stays_off_until_the_last_thread_leaves() -> None:
    """The first block in ends first: it must not turn the collector on under the second."""
    inside, release = threading.Event(), threading.Event()

    def second() -> None:
        with paused_gc():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=second)
    try:
        with paused_gc():
            t.start()
            assert inside.wait(5)
        assert not gc.isenabled(), "a block that ended turned the collector on while another thread was inside"
    finally:
        release.set()
        t.join()
        still_off = not gc.isenabled()
        gc.enable()
    assert not still_off, "the collector was left off after both blocks ended"


def test_nested_blocks_and_a_collector_that_was_off() -> None:
    with paused_gc():
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled(), "paused_gc turned on a collector the program had turned off"
    finally:
        gc.enable()


def test_an_exception_inside_still_restores() -> None:
    with pytest.raises(ZeroDivisionError), paused_gc():
        1 / 0  # noqa: B018
    assert gc.isenabled()
