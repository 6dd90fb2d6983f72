"""Reading reconciler.managed's rows and last-applied records, in this release's shape or the previous one's.

The writing side (and the upgrade) is engine/ownership.py; this half only builds the query that
db.read_live sends in its pipeline and turns its rows into Managed objects.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from reconciler.kinds.base import Capabilities, Managed
from reconciler.model import AppliedRecord

#: Whether reconciler.managed keeps last-applied records (NULL: no table; false: the previous release's shape).
SHAPE_PROBE = """CASE WHEN to_regclass('reconciler.managed') IS NULL THEN NULL
        ELSE EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('reconciler.managed')
                       AND attname = 'applied' AND NOT attisdropped) END"""


def outdated(caps: Capabilities) -> bool:
    """Whether reconciler.managed exists in the previous release's shape (no last-applied records)."""
    return caps.probes.get("reconciler.records") is False


def records_query(caps: Capabilities) -> sql.SQL:
    """The ownership rows with their records, in either shape (the old one has none)."""
    if outdated(caps):
        return sql.SQL("SELECT kind, key, protect, NULL::jsonb, NULL::bigint, false, NULL::text, NULL::text, NULL::text"
                       " FROM reconciler.managed")
    if not caps.has("reconciler.history"):
        return sql.SQL("SELECT kind, key, protect, applied, history_id, removed, NULL::text, NULL::text, NULL::text"
                       " FROM reconciler.managed")
    return sql.SQL(
        "SELECT m.kind, m.key, m.protect, m.applied, m.history_id, m.removed,"
        " to_char(h.applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), h.database_user, h.command"
        " FROM reconciler.managed m LEFT JOIN reconciler.history h ON h.id = m.history_id")


def from_rows(rows: list[tuple[Any, ...]]) -> tuple[dict[tuple[str, str], Managed], dict[tuple[str, str], Managed]]:
    """(managed, removed) from the rows of records_query."""
    managed: dict[tuple[str, str], Managed] = {}
    removed: dict[tuple[str, str], Managed] = {}
    for kind, key, protect, applied, history_id, gone, applied_at, user, command in rows:
        record = AppliedRecord(int(history_id), applied_at or "", user or "", command or "") \
            if history_id is not None else None
        row = Managed(kind, key, bool(protect), applied if isinstance(applied, dict) else None, record, bool(gone))
        (removed if gone else managed)[(kind, key)] = row
    return managed, removed


