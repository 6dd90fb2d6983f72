"""`reconcile history`: reading reconciler.history, the audit trail of every apply."""

from __future__ import annotations

import json
from typing import Any

from reconciler.engine import db
from reconciler.errors import ReconcilerError


def _recorded(cur: Any) -> bool:
    """Whether any apply has created reconciler.history yet."""
    cur.execute("SELECT to_regclass('reconciler.history') IS NOT NULL")
    row = cur.fetchone()
    return bool(row and row[0])


def listing(url: str, count: int) -> str:
    with db.connect(url) as conn, db.translated("reading reconciler.history"), conn.cursor() as cur:
        if not _recorded(cur):
            return "No applies recorded yet.\n"
        cur.execute(
            """SELECT id, applied_at, database_user, coalesce(client_addr, 'local'), tool_version, summary
                 FROM reconciler.history ORDER BY id DESC LIMIT %s""",
            (count,),
        )
        rows = cur.fetchall()
    lines = [f"#{r[0]}  {r[1]:%Y-%m-%d %H:%M:%S%z}  {r[2]}@{r[3]}  v{r[4]}  {r[5]}" for r in rows]
    return "\n".join(lines) + "\n" if lines else "No applies recorded yet.\n"


def show(url: str, history_id: int) -> str:
    with db.connect(url) as conn, db.translated("reading reconciler.history"), conn.cursor() as cur:
        row = None
        if _recorded(cur):
            cur.execute("SELECT applied_at, database_user, command, manifest_digest, plan_text, changes"
                        " FROM reconciler.history WHERE id = %s", (history_id,))
            row = cur.fetchone()
    if row is None:
        raise ReconcilerError(f"no apply #{history_id} in reconciler.history")
    applied_at, user, command, digest, plan_text, changes = row
    head = f"Apply #{history_id} at {applied_at:%Y-%m-%d %H:%M:%S%z} by {user}: reconcile {command}\nmanifest sha256 {digest}\n\n"
    return head + plan_text + "\nBefore/after of each change:\n" + json.dumps(changes, indent=2, ensure_ascii=False) + "\n"
