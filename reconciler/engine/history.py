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


def entries(url: str, count: int) -> list[dict[str, Any]]:
    """The newest `count` history entries, newest first, as plain data (`reconcile history --format json`)."""
    with db.connect(url) as conn, db.translated("reading reconciler.history"), conn.cursor() as cur:
        if not _recorded(cur):
            return []
        cur.execute(
            f"""SELECT id, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), database_user,
                       coalesce(client_addr, 'local'), tool_version, command, summary, {_ADOPTED_ONLY}
                  FROM reconciler.history ORDER BY id DESC LIMIT %s""",
            (count,),
        )
        rows = cur.fetchall()
    return [{"id": r[0], "applied_at": r[1], "user": r[2], "client": r[3], "tool_version": r[4],
             "command": command_name(r[5], adopted_only=r[7]), "arguments": r[5], "summary": r[6]} for r in rows]


#: Whether an entry's changes were all adoptions (the database was in sync; only ownership was recorded).
_ADOPTED_ONLY = """(jsonb_array_length(changes) > 0 AND NOT EXISTS (
                     SELECT 1 FROM jsonb_array_elements(changes) c WHERE c->>'action' <> 'adopt'))"""


def command_name(recorded: str, *, adopted_only: bool = False) -> str:
    """What an entry did, in one word: apply, prune (an apply with --prune), down, or adopt (an apply that
    only recorded objects as managed)."""
    if recorded.startswith("down"):
        return "down"
    if "--prune" in recorded.split():
        return "prune"
    return "adopt" if adopted_only else "apply"


def listing(url: str, count: int) -> str:
    rows = entries(url, count)
    if not rows:
        return "No applies recorded yet.\n"
    lines = [f"#{r['id']}  {r['applied_at']}  {r['user']}@{r['client']}  v{r['tool_version']}  {r['command']:<5}  "
             f"{r['summary']}" for r in rows]
    return "\n".join(lines) + "\n"


def as_json(url: str, count: int) -> str:
    return json.dumps({"format_version": "1", "entries": entries(url, count)}, indent=2, ensure_ascii=False) + "\n"


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
    return head + plan_text + "\nBefore/after of each change:\n" + before_and_after(changes)


def before_and_after(changes: list[dict[str, Any]]) -> str:
    """A history entry's recorded changes as readable field changes (every field a change touched)."""
    from reconciler import render

    if not changes:
        return "  (none)\n"
    lines = []
    for c in changes:
        head = f"  {render.change_head(c['kind'], c['key'], c['action'], c.get('reason'))}"
        lines.append(head)
        lines += ["      " + line for line in render.recorded_field_lines(c["action"], c.get("before"), c.get("after"))]
    return "\n".join(lines) + "\n"
