"""reconciler.managed: which objects are ours, and what the last apply that touched each one wrote.

Every apply that changes something records, per object it creates, updates, adopts, deactivates or keeps
in sync (every kind, extensions and tables included), the last-applied record: the plain desired fields
it applied and the history entry that applied them. A deleted object's row stays, marked `removed`, so
the next plan knows the tool removed it (prune, `reconcile down`). The plan compares desired, live and
this record (plan.attribute; docs/three-way-diff.md).

Secret values are never recorded, in any form: a sensitive field is not plain, so it has no record and
its difference is attributed `unknown` (docs/three-way-diff.md says why no digest is kept).

Upgrade: a table of the previous release's shape (a `fingerprint` column, no records) is read as
"no record" by a dry run, which never writes; the first `--apply` migrates it in its own transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from reconciler import kinds, render
from reconciler.engine import db
from reconciler.errors import PermissionDenied
from reconciler.kinds.base import Capabilities, Statement
from reconciler.model import Action, Change, Plan
from reconciler.secret_value import SENSITIVE
from reconciler.util import faults

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

#: The apply's history id: the parameter, or (NULL) the row the same transaction inserted just before.
HISTORY_ID = sql.SQL("coalesce(%s::bigint, currval(pg_get_serial_sequence('reconciler.history', 'id')))")

UPGRADE = sql.SQL("""ALTER TABLE reconciler.managed
    ADD COLUMN IF NOT EXISTS applied jsonb,
    ADD COLUMN IF NOT EXISTS history_id bigint,
    ADD COLUMN IF NOT EXISTS removed boolean NOT NULL DEFAULT false,
    DROP COLUMN IF EXISTS fingerprint""")


def schema_statements() -> list[Statement]:
    """The reconciler schema's DDL (every statement IF NOT EXISTS), one Statement each: a pipeline sends
    one command per query."""
    ddl = files("reconciler").joinpath("sql/ownership.sql").read_text()
    lines = [line for line in ddl.splitlines() if not line.lstrip().startswith("--")]
    return [Statement(sql.SQL(text.strip()), (), "creating the reconciler schema")  # type: ignore[arg-type]
            for text in "\n".join(lines).split(";\n") if text.strip()]


def migrate(conn: psycopg.Connection[Any], lock_key: tuple[int, int]) -> None:
    """Bring a previous release's reconciler.managed (records.outdated) to this shape in its own transaction.

    Runs once the apply's first round trip found the old shape and rolled back (autocommit connection,
    idle), before the apply's transaction, under the apply's advisory lock so two upgrading applies do
    not race. A role that may not alter the table gets one line saying so.
    """
    faults.point("ownership.migrate")
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key)
            cur.execute(UPGRADE)
    except psycopg.errors.InsufficientPrivilege as e:
        raise PermissionDenied(
            "reconciler.managed has the previous release's shape and this role may not alter it to keep "
            "last-applied records", hint="run one apply as the table's owner (or a superuser), which migrates it") from e
    except psycopg.Error as e:
        raise db.translate(e, "migrating reconciler.managed") from e


def applied_fields(change: Change) -> dict[str, Any]:
    """The record of one change: the plain desired fields, and the live values the apply left as they were.

    `live` holds a field only where the database keeps a different spelling of an equal value (a schedule
    the kind normalises, say), so the next plan compares the live value with what the database held
    after this apply, and the desired value with what the manifest said.
    """
    after, before = change.after or {}, change.before or {}
    if change.action is Action.UPDATE:
        written = {f.path for f in change.fields}
    else:  # a create writes everything (and has no before); a deactivation what it changes; others nothing
        written = {k for k in after if before.get(k) != after[k]} if change.action is Action.DEACTIVATE else set()
    assigned = kinds.by_name(change.kind).assigned_fields | {"_row"}  # row identities and database ids
    desired = {k: v for k, v in after.items() if k not in assigned and render.is_plain(v)}
    held = {k: before[k] for k in desired
            if k in before and k not in written and before[k] != desired[k] and render.is_plain(before[k])}
    return {"desired": desired, "live": held}


def _columns(rows: Mapping[tuple[str, str], tuple[Any, ...]]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*((*key, *value) for key, value in rows.items()), strict=True))


def record(manifest: Manifest, plan: Plan, caps: Capabilities, history_id: int | None) -> list[Statement]:
    """The statements writing the ownership rows and last-applied records for `plan` as apply #history_id
    (None: the history row inserted just before, in the same transaction)."""
    protected = {(kind.name, key) for kind in kinds.REGISTRY for key in kind.protected_keys(manifest, caps)}
    upserts: dict[tuple[str, str], tuple[Any, ...]] = {}
    deactivated: dict[tuple[str, str], tuple[Any, ...]] = {}
    removals: set[tuple[str, str]] = set()
    for change in plan.changes:
        key = (change.kind, change.key)
        if change.action in (Action.CREATE, Action.UPDATE, Action.ADOPT, Action.NOOP) and change.after is not None:
            # ON CONFLICT may touch a row once: one entry per key
            upserts[key] = ((key in protected), json.dumps(applied_fields(change)))
        elif change.action is Action.DEACTIVATE:
            deactivated[key] = (json.dumps(applied_fields(change)),)
        elif change.action is Action.DELETE and kinds.by_name(change.kind).prunable:
            removals.add(key)
    removals -= upserts.keys()  # a declared job's duplicate rows are deleted, the job stays ours
    # One set-based statement each, so the round trips do not grow with the number of objects.
    out: list[Statement] = []
    if upserts:
        out.append(Statement(sql.SQL(
            """INSERT INTO reconciler.managed (kind, key, protect, applied, history_id, removed)
               SELECT r.kind, r.key, r.protect, r.applied::jsonb, {id}, false
                 FROM unnest(%s::text[], %s::text[], %s::boolean[], %s::text[]) AS r(kind, key, protect, applied)
               ON CONFLICT (kind, key) DO UPDATE SET protect = EXCLUDED.protect, applied = EXCLUDED.applied,
                   history_id = EXCLUDED.history_id, removed = false, last_applied = now()""").format(id=HISTORY_ID),
            (history_id, *_columns(upserts)), "recording ownership"))
    if deactivated:  # `reconcile down` and prune: the protect flag stays as the manifest last set it
        out.append(Statement(sql.SQL(
            """INSERT INTO reconciler.managed (kind, key, applied, history_id, removed)
               SELECT r.kind, r.key, r.applied::jsonb, {id}, false
                 FROM unnest(%s::text[], %s::text[], %s::text[]) AS r(kind, key, applied)
               ON CONFLICT (kind, key) DO UPDATE SET applied = EXCLUDED.applied, history_id = EXCLUDED.history_id,
                   removed = false, last_applied = now()""").format(id=HISTORY_ID),
            (history_id, *_columns(deactivated)), "recording ownership"))
    if removals:
        out.append(Statement(sql.SQL(
            """UPDATE reconciler.managed m SET removed = true, applied = NULL, history_id = {id}, last_applied = now()
                 FROM unnest(%s::text[], %s::text[]) AS r(kind, key) WHERE m.kind = r.kind AND m.key = r.key""").format(
                id=HISTORY_ID),
            (history_id, *(list(column) for column in zip(*sorted(removals), strict=True))), "recording ownership"))
    return out


def _redacted(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: (v if render.is_plain(v) else SENSITIVE) for k, v in values.items() if k != "_row"}


def history_changes(plan: Plan) -> list[dict[str, Any]]:
    """Every mutating change with full before/after (secrets redacted): enough to restore by hand."""
    return [
        {"kind": c.kind, "key": c.key, "action": c.action.value, "reason": c.reason,
         "before": _redacted(c.before), "after": _redacted(c.after)}
        for c in plan.changes if c.mutating
    ]
