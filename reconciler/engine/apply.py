"""Executes a Plan: one transaction, under an advisory lock, re-planned inside the lock and verified.

Sequence: lock → read live → plan → (saved plan: refuse if stale) → statements per kind (creates and
updates in registry order, deletes in reverse) → ownership records and one history row → re-read and
re-plan, which must be empty → commit. Any error rolls everything back and names the failing change.
The lock keeps other reconcilers out but not people: what someone changed after the read is corrected
in the same transaction before the commit (see _converge); what this apply changed but did not stick
fails it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from reconciler import kinds, render
from reconciler.engine import db, deadline, ownership, read_bounds, writable
from reconciler.engine.saved_plan import check_saved
from reconciler.errors import (
    ApplyFailed,
    DatabaseUnavailable,
    LockHeld,
    PermissionDenied,
    PlanStale,
    UnsafePlan,
)
from reconciler.kinds import Planes
from reconciler.kinds.base import Capabilities, LiveState, PlanOptions
from reconciler.model import DESTRUCTIVE, Action, Change, Plan
from reconciler.plan import plan as make_plan
from reconciler.util import faults
from reconciler.util.gc_pause import paused_gc

if TYPE_CHECKING:
    from reconciler.engine.sources import SecretValue
    from reconciler.manifest import Manifest

#: Advisory lock key (two int4s, so pg_locks shows it as classid/objid): "sche" "dule" in ASCII.
LOCK_KEY = (0x73636865, 0x64756C65)
#: How long one statement inside the apply waits for a table or row lock when --lock-timeout is not
#: given (an application session holding ACCESS EXCLUSIVE on scheduled_jobs, say); then it fails.
DEFAULT_LOCK_TIMEOUT = 10.0


#: How many times the apply re-plans and corrects inside its transaction when someone else changed the
#: database between its read and its verification, before it concludes that its changes do not stick.
CONVERGE_PASSES = 3


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    history_id: int | None
    #: Changes made beyond `plan` because someone else changed the database while this apply ran
    #: (the advisory lock only keeps other reconcilers out); the same transaction corrected them.
    corrections: tuple[Change, ...] = ()


def _begin_locked(conn: psycopg.Connection[Any], lock_timeout: float | None, statement_timeout: float | None) -> None:
    """BEGIN, timeouts and the advisory lock in one round trip; raises LockHeld when another apply runs.

    Inside the transaction every statement waits at most `lock_timeout` (DEFAULT_LOCK_TIMEOUT when not
    given) for a table or row lock, and runs at most `statement_timeout`.
    """
    timeout = sql.Literal(_ms(statement_timeout))
    in_tx_lock = sql.Literal(_ms(lock_timeout if lock_timeout and lock_timeout > 0 else DEFAULT_LOCK_TIMEOUT))
    key = sql.SQL(", ").join(sql.Literal(k) for k in LOCK_KEY)
    wait = lock_timeout is not None and lock_timeout > 0
    if wait:
        # Only lock_timeout bounds the wait (a shorter statement_timeout would cut it and turn "lock held"
        # into a generic error); the statement timeout starts once the lock is ours.
        query = sql.SQL("BEGIN; SELECT set_config('statement_timeout', '0', true), set_config('lock_timeout', {}, true);"
                        " SELECT pg_advisory_xact_lock({}), true AS acquired;"
                        " SELECT set_config('statement_timeout', {}, true); {}").format(
            in_tx_lock, key, timeout, sql.SQL(writable.PROBE))  # type: ignore[operator]
    else:
        query = sql.SQL("BEGIN; SELECT set_config('statement_timeout', {}, true), set_config('lock_timeout', {}, true),"
                        " pg_try_advisory_xact_lock({}) AS acquired; {}").format(
            timeout, in_tx_lock, key, sql.SQL(writable.PROBE))
    faults.point("begin")
    with conn.cursor() as cur:
        try:
            cur.execute(query)
        except psycopg.errors.LockNotAvailable:
            _rollback(conn)
            raise LockHeld(f"another reconciler holds the lock ({_holder(conn)})",
                           hint="wait for it, or pass a longer --lock-timeout") from None
        except psycopg.Error as e:
            _rollback(conn)
            raise db.translate(e, "starting the transaction") from e
        acquired, refused = False, None
        while True:  # one result set per statement; the lock's is the one with an `acquired` column
            if cur.description is not None and cur.description[-1].name == "acquired":
                row = cur.fetchone()
                acquired = bool(row and row[-1])
            elif cur.description is not None and cur.description[-1].name == writable.PROBE_COLUMN:
                probed = cur.fetchone()
                refused = writable.refusal(*probed) if probed is not None else None
            if not cur.nextset():
                break
    if refused is not None:  # before "lock held": a read-only database is the news, whoever holds the lock
        _rollback(conn)
        raise refused
    if not acquired:
        holder = _holder(conn)
        _rollback(conn)
        raise LockHeld(f"another reconciler holds the lock ({holder})",
                       hint="wait for it, or pass --lock-timeout SECONDS to wait")


def _ms(seconds: float | None) -> str:
    return f"{max(1, int(seconds * 1000))}ms" if seconds else "0"


def _rollback(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")


def _holder(conn: psycopg.Connection[Any]) -> str:
    try:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), coalesce(a.client_addr::text, 'local')
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                    WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.granted""",
                LOCK_KEY,
            )
            row = cur.fetchone()
    except psycopg.Error:
        return "holder unknown"
    if row is None:
        return "holder unknown"
    return f"pid {row[0]}, application_name {row[1]}, client {row[2]}"


def _quiet_logging(conn: psycopg.Connection[Any], plan: Plan, caps: Any) -> None:
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


def _execute(conn: psycopg.Connection[Any], plan: Plan, caps: Capabilities) -> None:
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


def _send(conn: psycopg.Connection[Any], plan: Plan, planes: Planes | None) -> None:
    """Each plane's changes (HTTP), after the SQL, just before the verification and COMMIT."""
    for name, plane in (planes.opened.items() if planes is not None else ()):
        changes = [c for c in plan.changes if c.kind == name and c.mutating and c.action is not Action.ADOPT]
        if changes:
            with db.translated(f"sending the {name} changes"):
                plane.apply(conn, changes)


def _record(conn: psycopg.Connection[Any], manifest: Manifest, plan: Plan, caps: Capabilities, command: str,
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


def apply(
    url: str,
    manifest: Manifest,
    secret_values: Mapping[str, SecretValue],
    options: PlanOptions,
    *,
    lock_timeout: float | None = None,
    statement_timeout: float | None = 30.0,
    saved: Mapping[str, Any] | None = None,
    command: str = "apply",
    version: str = "",
    on_plan: Callable[[Plan], None] | None = None,
    planes: Planes | None = None,
    connect_timeout: int = db.CONNECT_TIMEOUT,
    rider: db.Rider | None = None,
    on_migrated: Callable[[], None] | None = None,
) -> ApplyResult:
    """Apply `manifest` in one transaction; `planes` (kinds.open_planes) are the run's non-SQL connections.

    A `rider` (verify's evidence, in `--watch --apply`) sends its head with the capabilities query and
    reads the rest on this connection once the transaction is over, outside it: after the COMMIT in one
    round trip more, so it sees what the apply made; with nothing to apply, in the round trip of the
    ROLLBACK (none more).
    """
    # autocommit with an explicit BEGIN lets the BEGIN, the timeouts and the lock share one round trip
    conn = db.connect(url, autocommit=True, connect_timeout=connect_timeout,
                      answer_timeout=deadline.answer_timeout(statement_timeout, lock_timeout))
    try:
        if ownership.migrate_if_outdated(conn, LOCK_KEY) and on_migrated is not None:
            on_migrated()
        _begin_locked(conn, lock_timeout, statement_timeout)
        with paused_gc():  # rows and the plan: many objects, no cycles (reconciler.util.gc_pause)
            live = db.read_live(conn, manifest, planes, rider, rider_queries=False)
            plan = make_plan(manifest, live, secret_values, options)
        if saved is not None:
            check_saved(saved, live, plan)
        if on_plan is not None:
            on_plan(plan)
        if plan.blocking_findings:
            raise UnsafePlan("refusing to apply: " + "; ".join(f.message for f in plan.blocking_findings),
                             hint="fix the findings above first")
        if plan.is_empty:
            if rider is not None:
                rider.finish(conn, rollback_first=True)  # the ROLLBACK in the rider's round trip
            if conn.info.transaction_status != TransactionStatus.IDLE:
                _rollback(conn)
            return ApplyResult(plan, None)
        faults.point("quiet_logging")
        _quiet_logging(conn, plan, live.capabilities)
        if not (live.ownership_ready and live.capabilities.has("reconciler.history")):
            # CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database: only when something is missing
            faults.point("ownership")
            ownership.ensure(conn)
        _execute(conn, plan, live.capabilities)
        history_id = _record(conn, manifest, plan, live.capabilities, command, version)
        # Last, just before the verification and COMMIT: the window in which the database and a plane (the
        # Edge Functions) disagree is as short as it can be (one HTTP call and the commit).
        _send(conn, plan, planes)
        corrections = _converge(conn, manifest, plan, secret_values, options, planes,
                                saved is not None)
        if corrections:
            _record(conn, manifest, Plan(plan.changes + corrections, plan.findings), live.capabilities, command,
                    version, history_id)
        faults.point("commit")
        _commit(conn)
        if rider is not None:
            rider.finish(conn)
        return ApplyResult(plan, history_id, corrections)
    except ApplyFailed as e:
        _rollback(conn)
        raise _explain_wait(e, url) from e.__cause__
    except BaseException:
        _rollback(conn)
        raise
    finally:
        conn.close()


def _converge(conn: psycopg.Connection[Any], manifest: Manifest, plan: Plan, secret_values: Mapping[str, SecretValue],
              options: PlanOptions, planes: Planes | None,
              saved: bool) -> tuple[Change, ...]:
    """Re-read and re-plan inside the transaction until the plan is empty; the corrections it made.

    The advisory lock keeps other reconcilers out, not people: a row deleted or a trigger edited after
    this apply's read shows up here. Such a change is corrected in the same transaction (a saved plan
    refuses instead: it was approved as it was), at most CONVERGE_PASSES times, each one verified. A
    change this transaction already made that shows up again does not stick (a trigger or another tool
    rewrites it): that fails the apply.
    """
    made = {_signature(c) for c in plan.mutating}
    corrections: list[Change] = []
    note = _unrecoverable(plan, planes)
    rolled_back = "rolled back" + note
    for passes_left in range(CONVERGE_PASSES, -1, -1):
        faults.point("verify")
        live = db.read_live(conn, manifest, planes)
        after = make_plan(manifest, live, secret_values, PlanOptions(prune=options.prune))
        if after.is_empty:
            return tuple(corrections)
        repeated = [c for c in after.mutating if _signature(c) in made]
        if repeated:
            raise ApplyFailed(f"changes did not stick, {rolled_back}: {render.listed(repeated)}",
                              hint="something in the database rewrites these objects (a trigger or another tool?)")
        if saved:
            raise PlanStale(f"the database changed while the saved plan was applied ({render.listed(after.mutating)}); "
                            + (rolled_back if note else "rolled back, nothing was changed"),
                            hint="make a new plan with --dry-run --out FILE")
        if not passes_left:
            raise ApplyFailed(f"the database kept changing during the apply, {rolled_back}: "
                              f"{render.listed(after.mutating)}",
                              hint="something else changes these objects continuously; find it, then run again")
        _execute(conn, after, live.capabilities)
        _send(conn, after, planes)
        made |= {_signature(c) for c in after.mutating}
        corrections += after.mutating
    raise AssertionError("unreachable: the last pass returns or raises")


def _unrecoverable(plan: Plan, planes: Planes | None) -> str:
    """What a rollback cannot undo: changes a plane sent (over HTTP) before the verification."""
    notes = [note for name, plane in (planes.opened.items() if planes is not None else ())
             if (note := plane.unrecoverable([c for c in plan.changes if c.kind == name]))]
    return f" (except {'; '.join(notes)})" if notes else ""


def _signature(change: Change) -> tuple[str, str, str, frozenset[str]]:
    return change.kind, change.key, change.action.value, frozenset(f.path for f in change.fields)


def _commit(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.execute("COMMIT")
    except psycopg.Error as e:
        if db.connection_lost(e):
            # The COMMIT may or may not have reached the server: say so instead of "nothing changed".
            raise DatabaseUnavailable(
                f"the database connection was lost during COMMIT ({' '.join(str(e).split())}): the outcome is "
                "unknown, the apply may or may not have been committed", hint="the next plan (reconcile --dry-run) "
                "shows what the database holds; retry: reconcile --apply applies only what is still missing") from e
        raise db.translate(e, "committing") from e


def _explain_wait(error: ApplyFailed, url: str) -> ApplyFailed:
    """A statement that gave up waiting (lock or statement timeout) names who it waited for, if anyone."""
    cause = error.__cause__
    if not isinstance(cause, (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)):
        return error
    blockers = db.lock_blockers(url)
    if not blockers:
        if isinstance(cause, psycopg.errors.QueryCanceled):
            return error
        blockers = ["a session that could not be identified (a row lock held by a long transaction, or it has finished:"
                    " see pg_stat_activity)"]
    return ApplyFailed(f"{error.message}; blocked by {'; '.join(blockers)}; rolled back, nothing changed",
                       hint="retry once that session ends, or pass a longer --lock-timeout", retryable=True)


def read_and_plan(url: str, manifest: Manifest, secret_values: Mapping[str, SecretValue],
                  options: PlanOptions, planes: Planes | None = None, rider: db.Rider | None = None, *,
                  connect_timeout: int = db.CONNECT_TIMEOUT, statement_timeout: float | None = None,
                  lock_timeout: float | None = None, known: Capabilities | None = None) -> tuple[LiveState, Plan]:
    """Dry run: one read-only transaction, never a write; `rider` (verify's evidence) reads in its round trips.

    Each read is bounded by `statement_timeout` and each lock wait by `lock_timeout` (defaults in
    engine/read_bounds.py): a fleet's slow target costs its own time only, a migration's lock stalls nothing.
    With `known` capabilities (the previous cycle's) and no rider, the read is one round trip (db.read_live).
    """
    conn = db.connect(url, autocommit=True, connect_timeout=connect_timeout,
                      answer_timeout=deadline.answer_timeout(statement_timeout))
    try:
        live = read_only(conn, manifest, planes, rider, statement_timeout=statement_timeout,
                         lock_timeout=lock_timeout, known=known)
    finally:
        conn.close()
    with paused_gc():
        return live, make_plan(manifest, live, secret_values, options)


def read_only(conn: psycopg.Connection[Any], manifest: Manifest, planes: Planes | None = None,
              rider: db.Rider | None = None, *, statement_timeout: float | None = None,
              lock_timeout: float | None = None, known: Capabilities | None = None) -> LiveState:
    """The live state in one read-only transaction on `conn` (autocommit, idle), every wait bounded
    (engine/read_bounds.py). The rider's queries ride in its pipeline and it finishes on `conn` after the
    ROLLBACK: no round trip more when they all succeed."""
    # BEGIN and the bounds ride with the capabilities query, the ROLLBACK with the pipeline's reads:
    # two round trips in all. The bounds are transaction-local (a pooled connection keeps nothing).
    try:
        with paused_gc():  # rows: many objects, no cycles (reconciler.util.gc_pause)
            live = db.read_live(conn, manifest, planes, rider, before=read_bounds.begin(statement_timeout, lock_timeout),
                                after=[sql.SQL("ROLLBACK")], known=known)
    except ApplyFailed as e:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            _rollback(conn)
        raise read_bounds.explain(e, conn) from e.__cause__
    finally:
        if conn.info.transaction_status != TransactionStatus.IDLE:  # the pipeline's ROLLBACK did not run
            _rollback(conn)
    if rider is not None:
        rider.finish(conn)
    return live
