"""Fixtures shared by the integration tests (the database ones come from tests/fix_db.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import structlog

from reconciler.util import logs


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Mapping[str, Any]]]:
    """Every structlog event of the test, at debug level.

    The CLI reconfigures structlog on each call (logs.configure), which would drop capture_logs'
    processor; that one function is replaced by one that only lowers the level.
    """
    with structlog.testing.capture_logs() as entries:
        def keep_capture(level: str = "warning", *, json_output: bool | None = None, eager: bool = False) -> None:
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))

        monkeypatch.setattr(logs, "configure", keep_capture)
        yield entries
