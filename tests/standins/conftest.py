"""Fixtures for the stand-in tests (the database ones come from tests/fix_db.py)."""

from tests.standins.helpers import http_server

__all__ = ["http_server"]
