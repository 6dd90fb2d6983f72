"""What an apply writes about itself, in its own transaction: one reconciler.history row, then the
ownership rows and last-applied records of every object it touched (engine/ownership.py). Statements
only: the apply sends them in the pipeline of its last changes, so recording costs no round trip."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from psycopg import sql

from reconciler import render
from reconciler.engine import ownership
from reconciler.kinds.base import Capabilities, Statement
from reconciler.model import Plan

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

#: What a failing record statement is reported as.
DOING = "recording ownership"


def history_row(manifest: Manifest, plan: Plan, command: str, version: str,
                history_id: int | None = None) -> Statement:
    """The history row for `plan`: a new one, or `history_id` rewritten; either returns its id."""
    described = (render.summary_line(plan), render.to_text(plan), json.dumps(ownership.history_changes(plan)))
    if history_id is None:
        return Statement(sql.SQL(
            """INSERT INTO reconciler.history (tool_version, command, manifest_digest, summary, plan_text, changes)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"""), (version, command, manifest.digest(), *described),
            DOING)
    return Statement(sql.SQL("UPDATE reconciler.history SET summary = %s, plan_text = %s, changes = %s WHERE id = %s"
                             " RETURNING id"), (*described, history_id), DOING)


def ownership_rows(manifest: Manifest, plan: Plan, caps: Capabilities, history_id: int | None) -> list[Statement]:
    """Its ownership records (`history_id` None: the history row inserted just before them)."""
    return ownership.record(manifest, plan, caps, history_id)
