"""The read-only transaction's bounds: defaults when none are given, the given ones otherwise."""

from __future__ import annotations

import pytest

from reconciler.engine import read_bounds


@pytest.mark.parametrize("statement, lock, expected", [
    (None, None, ("30000ms", "10000ms")),
    (0, 0, ("30000ms", "10000ms")),  # 0 would mean "no bound" to the server: never for a read
    (2.0, 0.5, ("2000ms", "500ms")),
], ids=["defaults", "zero-is-the-default", "given"])
def test_every_read_transaction_is_bounded(statement: float | None, lock: float | None,
                                           expected: tuple[str, str]) -> None:
    text = "; ".join(s.as_string(None) for s in read_bounds.begin(statement, lock))
    assert text.startswith("BEGIN READ ONLY; SELECT")
    assert f"set_config('statement_timeout', '{expected[0]}', true)" in text
    assert f"set_config('lock_timeout', '{expected[1]}', true)" in text
