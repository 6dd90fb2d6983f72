"""What an apply writes about itself, in its own transaction: one reconciler.history row, then the
ownership rows and last-applied records of every object it touched (engine/ownership.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import psycopg

from reconciler import render
from reconciler.engine import db, ownership
from reconciler.kinds.base import Capabilities
from reconciler.model import Plan
from reconciler.util import faults

if TYPE_CHECKING:
    from reconciler.manifest import Manifest


def record_apply(conn: psycopg.Connection[Any], manifest: Manifest, plan: Plan, caps: Capabilities, command: str,
            version: str, history_id: int | None = None) -> int:
    """The history row for `plan` (a new one, or `history_id` rewritten), then its ownership records."""
    with db.translated("recording ownership"), conn.cursor() as cur:
        faults.point("record.history")
        described = (render.summary_line(plan), render.to_text(plan), json.dumps(ownership.history_changes(plan)))
        if history_id is None:
            cur.execute(
                """INSERT INTO reconciler.history (tool_version, command, manifest_digest, summary, plan_text, changes)
                   VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""", (version, command, manifest.digest(), *described))
        else:
            cur.execute("UPDATE reconciler.history SET summary = %s, plan_text = %s, changes = %s WHERE id = %s"
                        " RETURNING id", (*described, history_id))
        row = cur.fetchone()
        assert row is not None
        faults.point("record.managed")
        ownership.record(cur, manifest, plan, caps, int(row[0]))
    return int(row[0])
