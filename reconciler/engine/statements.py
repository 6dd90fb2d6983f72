"""A plan's statements inside the apply's transaction, in as few round trips as COPY allows.

Statements run per kind in registry order (deletes in reverse). They travel in pipelines (psycopg sends
the queries together and reads the answers together): one round trip for all of them, whatever their
number, except where a COPY carries secret values (psycopg cannot pipeline COPY; it costs two turns of
its own). The caller's last queries (the records, the verifying re-read) ride in the last pipeline. A
failing statement aborts the transaction, the server skips the rest, and the error names the change
the statement belongs to. The planes' (HTTP) changes go after the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.pq import ExecStatus

from reconciler import kinds
from reconciler.engine import db
from reconciler.errors import PermissionDenied
from reconciler.kinds import Planes
from reconciler.kinds.base import Capabilities, Kind, Statement
from reconciler.model import DESTRUCTIVE, Action, Plan
from reconciler.util import faults

#: Queues more queries into the open pipeline (`conn`), after the steps' statements.
Queue = Callable[[psycopg.Connection[Any]], None]


class Step(NamedTuple):
    """One statement of the apply, what it is reported as when it fails, and its fault point's name."""

    statement: Statement
    point: str
    doing: str = ""
    kind: Kind | None = None  # a kind's statement: a refusal is explained by the kind (Kind.refused)


class QueuedFailed(Exception):
    """Every step succeeded, a query the caller queued after them failed (`error`); the transaction is
    aborted, back to where the caller's SAVEPOINT left it if it set one."""

    def __init__(self, error: psycopg.Error, cursors: Sequence[psycopg.Cursor[Any]] = ()) -> None:
        super().__init__(str(error))
        self.error = error
        self.cursors = list(cursors)  # every step's, answered


def quiet_logging(plan: Plan, caps: Capabilities) -> Step | None:
    """Statement and parameter logging off for this transaction where the role may (superusers).

    Secret values already travel as COPY data, which is never logged; this also keeps the statements
    themselves out of a verbose log.
    """
    if not caps.is_superuser or not any(c.mutating and kinds.by_name(c.kind).quiet_logging for c in plan.changes):
        return None
    settings = (("log_statement", "none"), ("log_min_error_statement", "panic"), ("log_min_duration_statement", "-1"),
                ("log_parameter_max_length", "0"), ("log_parameter_max_length_on_error", "0"))
    query = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(k), sql.Literal(v)) for k, v in settings))
    return Step(Statement(query), "quiet_logging", "turning statement logging off for the secret writes")


def plan_steps(plan: Plan, caps: Capabilities) -> list[Step]:
    """The plan's statements in the order they run: creates and updates in registry order, deletes in reverse."""
    forward = [c for c in plan.changes if c.mutating and c.action not in DESTRUCTIVE]
    backward = [c for c in plan.changes if c.action in DESTRUCTIVE]
    order = [(kind, [c for c in forward if c.kind == kind.name]) for kind in kinds.REGISTRY]
    order += [(kind, [c for c in backward if c.kind == kind.name]) for kind in reversed(kinds.REGISTRY)]
    steps = []
    for kind, changes in order:
        changes = [c for c in changes if c.action is not Action.ADOPT]
        if changes:
            steps += [Step(s, f"statement.{kind.name}", f"{s.description or kind.name} failed", kind)
                      for s in kind.statements(changes, caps)]
    return steps


def run(conn: psycopg.Connection[Any], steps: Sequence[Step], *, before_copy: Queue | None = None,
        then: Queue | None = None, then_points: Sequence[str] = ()) -> list[psycopg.Cursor[Any]]:
    """Run `steps` in order, one pipeline between COPYs; each step's cursor, answered.

    `before_copy` is queued at the end of each pipeline a COPY follows, `then` at the end of the last one
    (its fault points `then_points`, after the steps').
    Raises the ReconcilerError of the first failing step, or QueuedFailed when only what `then` queued failed.
    """
    groups: list[list[Step] | Step] = [[]]
    for step in steps:
        if step.statement.copy_rows is not None:
            groups += [step, []]
        else:
            groups[-1].append(step)  # type: ignore[union-attr]
    cursors: list[psycopg.Cursor[Any]] = []
    for i, group in enumerate(groups):
        last = i == len(groups) - 1
        if isinstance(group, Step):
            cursors.append(_copy(conn, group))
        elif last:
            try:
                cursors += _pipeline(conn, group, then, then_points)
            except QueuedFailed as e:
                raise QueuedFailed(e.error, cursors + e.cursors) from e.error
        elif group:
            cursors += _pipeline(conn, group, before_copy)
    return cursors


def _pipeline(conn: psycopg.Connection[Any], group: list[Step], then: Queue | None,
              then_points: Sequence[str] = ()) -> list[psycopg.Cursor[Any]]:
    for step in group:  # before the pipeline goes out: a point is where its round trip begins, the session idle
        faults.point(step.point)
    for point in then_points if then is not None else ():
        faults.point(point)
    cursors: list[psycopg.Cursor[Any]] = []
    try:
        with conn.pipeline():
            for step in group:
                cursors.append(cur := conn.cursor())
                step.statement.run(cur)
            if then is not None:
                then(conn)
    except psycopg.Error as e:
        if db.connection_lost(e):  # no statement failed: the session is gone, and its transaction with it
            raise db.translate(e, "sending the statements") from e
        for n, step in enumerate(group):
            if n >= len(cursors) or not _succeeded(cursors[n]):
                raise _failed(step, e) from e
        raise QueuedFailed(e, cursors) from e
    return cursors


def _copy(conn: psycopg.Connection[Any], step: Step) -> psycopg.Cursor[Any]:
    faults.point(step.point)
    cur = conn.cursor()
    try:
        step.statement.run(cur)
    except psycopg.Error as e:
        raise _failed(step, e) from e
    return cur


def _succeeded(cur: psycopg.Cursor[Any]) -> bool:
    return cur.pgresult is not None and cur.pgresult.status in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK)


def _failed(step: Step, error: psycopg.Error) -> Exception:
    if step.kind is not None and isinstance(error, psycopg.errors.InsufficientPrivilege):
        # "unknown" at plan time (extension_may_need_superuser): the server said no
        explained = step.kind.refused(step.statement)
        if explained is not None:
            return PermissionDenied(explained[0], hint=explained[1])
    return db.translate(error, step.doing)


def sends(plan: Plan, planes: Planes | None) -> bool:
    """Whether a plane (HTTP) has changes of `plan` to send."""
    opened = planes.opened if planes is not None else {}
    return any(c.kind in opened and c.mutating and c.action is not Action.ADOPT for c in plan.changes)


def send(conn: psycopg.Connection[Any], plan: Plan, planes: Planes | None) -> None:
    """Each plane's changes (HTTP), after the SQL, just before the verification and COMMIT."""
    for name, plane in (planes.opened.items() if planes is not None else ()):
        changes = [c for c in plan.changes if c.kind == name and c.mutating and c.action is not Action.ADOPT]
        if changes:
            with db.translated(f"sending the {name} changes"):
                plane.apply(conn, changes)
