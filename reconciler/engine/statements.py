"""A plan's statements inside the apply's transaction: per kind, in registry order (deletes in reverse),
each failure named by the change it belongs to; the planes' (HTTP) changes after them; statement logging
off for the secret writes where the role may turn it off.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from reconciler import kinds
from reconciler.engine import db
from reconciler.errors import PermissionDenied
from reconciler.kinds import Planes
from reconciler.kinds.base import Capabilities
from reconciler.model import DESTRUCTIVE, Action, Plan
from reconciler.util import faults


def quiet_logging(conn: psycopg.Connection[Any], plan: Plan, caps: Any) -> None:
    """Turn statement and parameter logging off for this transaction where the role may (superusers).

    Secret values already travel as COPY data, which is never logged; this also keeps the statements
    themselves out of a verbose log.
    """
    if not caps.is_superuser or not any(c.mutating and kinds.by_name(c.kind).quiet_logging for c in plan.changes):
        return
    settings = (("log_statement", "none"), ("log_min_error_statement", "panic"), ("log_min_duration_statement", "-1"),
                ("log_parameter_max_length", "0"), ("log_parameter_max_length_on_error", "0"))
    query = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(k), sql.Literal(v)) for k, v in settings))
    with db.translated("turning statement logging off for the secret writes"), conn.cursor() as cur:
        cur.execute(query)


def execute(conn: psycopg.Connection[Any], plan: Plan, caps: Capabilities) -> None:
    forward = [c for c in plan.changes if c.mutating and c.action not in DESTRUCTIVE]
    backward = [c for c in plan.changes if c.action in DESTRUCTIVE]
    steps = [(kind, [c for c in forward if c.kind == kind.name]) for kind in kinds.REGISTRY]
    steps += [(kind, [c for c in backward if c.kind == kind.name]) for kind in reversed(kinds.REGISTRY)]
    with conn.cursor() as cur:
        for kind, changes in steps:
            changes = [c for c in changes if c.action is not Action.ADOPT]
            if not changes:
                continue
            for statement in kind.statements(changes, caps):
                faults.point(f"statement.{kind.name}")
                try:
                    statement.run(cur)
                except psycopg.errors.InsufficientPrivilege as e:
                    # "unknown" at plan time (extension_may_need_superuser): the server said no
                    explained = kind.refused(statement)
                    if explained is None:
                        raise db.translate(e, f"{statement.description or kind.name} failed") from e
                    raise PermissionDenied(explained[0], hint=explained[1]) from e
                except psycopg.Error as e:
                    raise db.translate(e, f"{statement.description or kind.name} failed") from e


def send(conn: psycopg.Connection[Any], plan: Plan, planes: Planes | None) -> None:
    """Each plane's changes (HTTP), after the SQL, just before the verification and COMMIT."""
    for name, plane in (planes.opened.items() if planes is not None else ()):
        changes = [c for c in plan.changes if c.kind == name and c.mutating and c.action is not Action.ADOPT]
        if changes:
            with db.translated(f"sending the {name} changes"):
                plane.apply(conn, changes)
