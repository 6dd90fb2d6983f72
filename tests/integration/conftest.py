"""Fixtures shared by the integration tests (the database ones come from tests/fix_db.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import pytest
import structlog

from reconciler.util import logs
from tests.fix_db import DbTarget
from tests.integration.security_support import EXTENSIONS, Connections


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


@pytest.fixture
def connections(audited_db: DbTarget) -> Iterator[Connections]:
    # One apply installs the extensions and the reconciler schema; examples then only reset rows.
    from reconciler.engine.apply import apply
    from reconciler.kinds.base import PlanOptions
    from reconciler.manifest import Manifest

    warm = Manifest.model_validate({"version": 1, "extensions": EXTENSIONS,
                                    "jobs": [{"name": "warm", "type": "t", "schedule": "* * * * *",
                                              "endpoint": "/x"}]})
    apply(audited_db.url, warm, {}, PlanOptions())
    su = psycopg.connect(audited_db.superuser_url, autocommit=True)
    app = psycopg.connect(audited_db.url, autocommit=True)
    try:
        yield Connections(audited_db.url, su, app)
    finally:
        su.close()
        app.close()
