"""Helpers for the hostile-input tests (tests/integration/security/) and the export property test: the
extensions every hostile manifest declares, counting statements with PostgreSQL's own parser, and the two
connections a property test resets rows through between examples (the `connections` fixture is in
tests/integration/conftest.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from pglast import parser as pg_parser

EXTENSIONS = [{"name": "pg_cron", "schema": "pg_catalog"}, {"name": "pg_net", "schema": "extensions"},
              {"name": "supabase_vault"}]


def statement_count(command: str) -> int:
    return len(pg_parser.parse_sql(command))


@dataclass
class Connections:
    url: str
    su: psycopg.Connection[Any]
    app: psycopg.Connection[Any]   # as postgres, the role the reconciler uses


def reset_rows(c: Connections) -> None:
    c.su.execute("DELETE FROM public.scheduled_jobs; DELETE FROM cron.job; DELETE FROM vault.secrets;"
                 " TRUNCATE reconciler.managed, reconciler.history")
