"""Executes a Plan: one transaction, under an advisory lock, re-planned inside the lock and verified.

Sequence: lock → read live → plan → (saved plan: refuse if stale) → statements per kind (creates and
updates in registry order, deletes in reverse) → ownership records and one history row → re-read and
re-plan, which must be empty → commit. Any error rolls everything back and names the failing change.
The lock keeps other reconcilers out but not people: what someone changed after the read is corrected
in the same transaction before the commit (see _converge); what this apply changed but did not stick
fails it.

Round trips, whatever the number of changes: BEGIN, the lock and the capabilities (with the reads too
when the previous run's capabilities are given and still true); the reads; then the statements, the
records and the re-read pipelined (split once by the COPY of secret values, two turns); the COMMIT. A
no-op apply is its reads and a ROLLBACK.

The transaction itself (BEGIN, lock, COMMIT, ROLLBACK) is engine/transaction.py, the statements
engine/statements.py, the history row and ownership records engine/recording.py, the verification
rider engine/rider.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from reconciler import render
from reconciler.engine import (
    db,
    deadline,
    ownership,
    read_bounds,
    recording,
    records,
    statements,
    transaction,
)
from reconciler.engine import rider as riders
from reconciler.engine.saved_plan import check_saved
from reconciler.errors import ApplyFailed, PlanStale, UnsafePlan
from reconciler.kinds import Planes
from reconciler.kinds.base import Capabilities, LiveState, PlanOptions
from reconciler.model import Change, Plan
from reconciler.plan import plan as make_plan
from reconciler.util import faults
from reconciler.util.gc_pause import paused_gc

if TYPE_CHECKING:
    from reconciler.engine.sources import SecretValue
    from reconciler.manifest import Manifest


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
    #: The capabilities as the apply left them: the next run's `ApplyContext.known`.
    capabilities: Capabilities | None = None


@dataclass(frozen=True)
class ApplyContext:
    """How one apply runs, besides what it applies (the manifest, the secret values, the plan options)."""

    #: Seconds to wait for another reconciler's advisory lock (None: do not wait), then for each table or
    #: row lock (transaction.DEFAULT_LOCK_TIMEOUT when None).
    lock_timeout: float | None = None
    statement_timeout: float | None = 30.0
    connect_timeout: int = db.CONNECT_TIMEOUT
    #: What reconciler.history records: the command line (never a URL or value) and the tool's version.
    command: str = "apply"
    version: str = ""
    #: A saved plan (`--plan FILE`): the apply refuses when the database no longer matches it.
    saved: Mapping[str, Any] | None = None
    #: The run's non-SQL connections (kinds.open_planes).
    planes: Planes | None = None
    #: verify's evidence riding on the apply's round trips (engine/rider.py).
    rider: riders.Rider | None = None
    #: The previous run's capabilities (ApplyResult.capabilities; a `--watch` cycle's): the reads go in
    #: the first round trip, shaped by them, and are read again when the capabilities changed.
    known: Capabilities | None = None
    #: Called with the plan before anything is written (shown when the apply refuses it).
    on_plan: Callable[[Plan], None] | None = None
    #: Called when a previous release's reconciler.managed was upgraded first.
    on_migrated: Callable[[], None] | None = None


def apply(url: str, manifest: Manifest, secret_values: Mapping[str, SecretValue], options: PlanOptions,
          context: ApplyContext | None = None) -> ApplyResult:
    """Apply `manifest` in one transaction, as `context` says (ApplyContext() when None)."""
    run = context if context is not None else ApplyContext()
    # autocommit with an explicit BEGIN lets the BEGIN, the timeouts, the lock and the first read share one
    # round trip
    conn = db.connect(url, autocommit=True, connect_timeout=run.connect_timeout,
                      answer_timeout=deadline.answer_timeout(run.statement_timeout, run.lock_timeout))
    try:
        with paused_gc():  # rows and the plan: many objects, no cycles (reconciler.util.gc_pause)
            live = _begin_and_read(conn, manifest, run)
            plan = make_plan(manifest, live, secret_values, options)
        caps = live.capabilities
        if run.saved is not None:
            check_saved(run.saved, live, plan)
        if run.on_plan is not None:
            run.on_plan(plan)
        if plan.blocking_findings:
            raise UnsafePlan("refusing to apply: " + "; ".join(f.message for f in plan.blocking_findings),
                             hint="fix the findings above first")
        if plan.is_empty:
            riders.after_apply(run.rider, conn, committed=False)  # the ROLLBACK in the rider's round trip
            if conn.info.transaction_status != TransactionStatus.IDLE:
                transaction.rollback(conn)
            return ApplyResult(plan, None, capabilities=caps)
        steps = [step] if (step := statements.quiet_logging(plan, caps)) is not None else []
        if not (live.ownership_ready and caps.has("reconciler.history")):
            # CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database: only when something is missing
            steps += [statements.Step(s, "ownership", s.description) for s in ownership.schema_statements()]
        steps += statements.plan_steps(plan, caps)
        recorded = _records(manifest, plan, caps, run)
        written, after = _write_and_reread(conn, manifest, plan, steps + recorded, caps, run.planes)
        history_id = _returned_id(written[len(steps)])
        corrections, after = _converge(conn, manifest, plan, after, secret_values, options, run)
        if corrections:
            statements.run(conn, _records(manifest, Plan(plan.changes + corrections, plan.findings), caps, run,
                                          history_id))
        faults.point("commit")
        transaction.commit(conn)
        riders.after_apply(run.rider, conn, committed=True)
        return ApplyResult(plan, history_id, corrections, after.capabilities)
    except ApplyFailed as e:
        transaction.rollback(conn)
        raise transaction.explain_wait(e, url) from e.__cause__
    except BaseException:
        transaction.rollback(conn)
        raise
    finally:
        conn.close()


def _begin_and_read(conn: psycopg.Connection[Any], manifest: Manifest, run: ApplyContext) -> LiveState:
    """BEGIN under the lock and the live state: two round trips, one with `run.known` capabilities still true.

    A previous release's reconciler.managed is migrated first, in a transaction of its own.
    """
    queued: dict[str, psycopg.Cursor[Any]] = {}

    def reads(pipelined: psycopg.Connection[Any]) -> None:
        assert run.known is not None
        pipelined.execute(sql.SQL("SAVEPOINT reconciler_read"))
        db.queue_reads(pipelined, run.known, manifest, queued)

    then = reads if run.known is not None and not records.outdated(run.known) else None
    try:
        caps = transaction.begin_locked(conn, run.lock_timeout, run.statement_timeout, run.rider, then)
    except statements.QueuedFailed as e:  # a read the old capabilities shaped failed: a relation went away
        _back_to_savepoint(conn, e, "reconciler_read")
        return db.read_live(conn, manifest, run.planes, run.rider, rider_queries=False)
    if records.outdated(caps):
        transaction.rollback(conn)
        ownership.migrate(conn, transaction.LOCK_KEY)
        if run.on_migrated is not None:
            run.on_migrated()
        caps = transaction.begin_locked(conn, run.lock_timeout, run.statement_timeout, run.rider)
    elif then is not None and caps == run.known:
        with db.translated("reading the live state"):
            return db.live_state(caps, queued, run.planes)
    return db.read_state(conn, caps, manifest, run.planes)


def _back_to_savepoint(conn: psycopg.Connection[Any], failed: statements.QueuedFailed, savepoint: str) -> None:
    """A read shaped by capabilities that no longer hold failed: back to `savepoint`, so the cold read can
    follow in the same transaction. A lost connection has no savepoint left: it is raised."""
    if db.connection_lost(failed.error):
        raise db.translate(failed.error, "reading the live state") from failed.error
    with db.translated("reading the live state"):
        conn.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(sql.Identifier(savepoint)))


def _records(manifest: Manifest, plan: Plan, caps: Capabilities, run: ApplyContext,
             history_id: int | None = None) -> list[statements.Step]:
    """The history row (first: its cursor answers the id), then the ownership records."""
    return [statements.Step(recording.history_row(manifest, plan, run.command, run.version, history_id),
                            "record.history", recording.DOING),
            *(statements.Step(s, "record.managed", recording.DOING)
              for s in recording.ownership_rows(manifest, plan, caps, history_id))]


def _returned_id(cur: psycopg.Cursor[Any]) -> int:
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def _write_and_reread(conn: psycopg.Connection[Any], manifest: Manifest, plan: Plan, steps: list[statements.Step],
                      caps: Capabilities, planes: Planes | None) -> tuple[list[psycopg.Cursor[Any]], LiveState]:
    """Run `steps` and re-read the live state in the same transaction; the steps' cursors and what it read.

    The re-read rides in the last pipeline of the statements, shaped by the capabilities last read (those
    read just before a COPY, else `caps`): one round trip for all of it when what the statements created
    changes no capability; one more when it does (extensions, tables); after a failed shaped read (a
    relation dropped), back to the SAVEPOINT and the cold read's two. A plane's changes (HTTP) go after
    the SQL and before the re-read, which then takes its own round trips.
    """
    if statements.sends(plan, planes):
        cursors = statements.run(conn, steps)
        # Last, just before the verification and COMMIT: the window in which the database and a plane (the
        # Edge Functions) disagree is as short as it can be (one HTTP call and the commit).
        statements.send(conn, plan, planes)
        faults.point("verify")
        return cursors, db.read_live(conn, manifest, planes)
    checkpoints: list[psycopg.Cursor[Any]] = []
    reread: dict[str, Any] = {}

    def before_copy(pipelined: psycopg.Connection[Any]) -> None:
        checkpoints.append(cur := pipelined.cursor())
        db.queue_capabilities(cur)

    def then(pipelined: psycopg.Connection[Any]) -> None:
        pipelined.execute(sql.SQL("SAVEPOINT reconciler_verify"))
        reread["caps"] = cur = pipelined.cursor()
        db.queue_capabilities(cur)
        reread["shaped_by"] = shaped_by = db.capabilities_from(checkpoints[-1]) if checkpoints else caps
        reread["cursors"] = db.queue_reads(pipelined, shaped_by, manifest)

    try:
        cursors = statements.run(conn, steps, before_copy=before_copy, then=then,
                                 then_points=("verify", "read.capabilities", "read.live"))
    except statements.QueuedFailed as e:
        _back_to_savepoint(conn, e, "reconciler_verify")
        return e.cursors, db.read_live(conn, manifest, planes)
    now = db.capabilities_from(reread["caps"])
    if now != reread["shaped_by"]:
        return cursors, db.read_state(conn, now, manifest, planes)
    with db.translated("reading the live state"):
        return cursors, db.live_state(now, reread["cursors"], planes)


def _converge(conn: psycopg.Connection[Any], manifest: Manifest, plan: Plan, live: LiveState,
              secret_values: Mapping[str, SecretValue], options: PlanOptions,
              run: ApplyContext) -> tuple[tuple[Change, ...], LiveState]:
    """Re-plan on the re-read `live` inside the transaction until the plan is empty; the corrections it
    made, and the state it verified.

    The advisory lock keeps other reconcilers out, not people: a row deleted or a trigger edited after
    this apply's read shows up here. Such a change is corrected in the same transaction (a saved plan
    refuses instead: it was approved as it was), at most CONVERGE_PASSES times, each one verified. A
    change this transaction already made that shows up again does not stick (a trigger or another tool
    rewrites it): that fails the apply.
    """
    planes, saved = run.planes, run.saved is not None
    made = {_signature(c) for c in plan.mutating}
    corrections: list[Change] = []
    note = _unrecoverable(plan, planes)
    rolled_back = "rolled back" + note
    for passes_left in range(CONVERGE_PASSES, -1, -1):
        after = make_plan(manifest, live, secret_values, PlanOptions(prune=options.prune))
        if after.is_empty:
            return tuple(corrections), live
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
        _, live = _write_and_reread(conn, manifest, after, statements.plan_steps(after, live.capabilities),
                                    live.capabilities, planes)
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


def read_and_plan(url: str, manifest: Manifest, secret_values: Mapping[str, SecretValue],
                  options: PlanOptions, planes: Planes | None = None, rider: riders.Rider | None = None, *,
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
              rider: riders.Rider | None = None, *, statement_timeout: float | None = None,
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
            transaction.rollback(conn)
        raise read_bounds.explain(e, conn) from e.__cause__
    finally:
        if conn.info.transaction_status != TransactionStatus.IDLE:  # the pipeline's ROLLBACK did not run
            transaction.rollback(conn)
    riders.after_read(rider, conn)
    return live
