"""Reads the evidence `reconcile verify` judges: the I/O half of the verify package.

Where it sits: an `EvidenceRead` reads once, on a connection its caller opened, in steps that can ride
on the plan's read (`db.read_live` takes it as its rider: the head query goes with the capabilities
query, the evidence queries with the kinds' queries). `cli/verify.py` and the controller's pipeline
checks (`watch/pipeline.py`) read that way: one connection, the plan's round trips, none more. Alone,
`read_evidence` (and `Reader.read()`, which remembers queued requests across the --wait polls) reads in
two round trips. Every read is one read-only transaction (no session state, so it works through a
transaction-mode pooler) and returns a `verify.evidence.Evidence` (without the plan). A relation that is
absent or not readable is recorded in `Evidence.unavailable` instead of failing the whole command.
The SQL is in `verify.queries`; the rows become an Evidence in `verify.rows`.

The evidence reads cron.job itself rather than take the trigger kind's live rows: it must show the jobs
as they are when it is read (after an apply's COMMIT, and at every --wait poll, where no plan is read).
What verify knows about the declared triggers comes from the kinds (`declared_triggers`, through
`kinds.facts.TriggerFacts`), not from the manifest's sections.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pgerr
from psycopg.pq import ExecStatus, TransactionStatus

from reconciler.engine import db
from reconciler.errors import ReconcilerError
from reconciler.kinds.facts import DeclaredTrigger
from reconciler.verify.checks import lookback
from reconciler.verify.evidence import Evidence
from reconciler.verify.queries import (
    CRON_JOBS,
    EXECUTIONS,
    HEAD,
    QUEUE,
    RELATIONS,
    RESPONSES,
    RUNS,
    SCHEDULED,
    STATS,
)
from reconciler.verify.rows import Memory, evidence_from_rows

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

__all__ = ["EvidenceRead", "Memory", "Reader", "declared_triggers", "read_evidence"]


def declared_triggers(manifest: Manifest) -> tuple[DeclaredTrigger, ...]:
    """The manifest's scheduled calls as verify sees them, from the kinds that declare them."""
    from reconciler import kinds
    from reconciler.kinds.facts import TriggerFacts

    facts: list[TriggerFacts] = kinds.providing(TriggerFacts)  # type: ignore[type-abstract]
    return tuple(t for kind in facts for t in kind.declared_triggers(manifest))


class EvidenceRead:
    """One read of the evidence, in steps that fit into another reader's round trips (an engine/rider.py `Rider`).

    `queue_head(conn)` queues the head query (now(), which relations exist and may be read) in whatever
    round trip the caller sends next; `queue_queries(conn)` queues one query per readable relation once the
    head has answered (it decides which, and how far back); `complete(conn)` reads whatever is still
    missing (queries never queued, or cut off by another query's error) and returns the Evidence.

    Alone (`read_evidence`) that is two round trips in one read-only transaction. Riding on the plan's read
    (`apply.read_and_plan` with this as its rider) it is none more: the head goes with the capabilities
    query, the queries go after the kinds' queries in their pipeline. In an apply (`apply.apply`) the
    queries wait for its transaction to end, so the evidence shows what the apply made and a failing
    evidence query can never abort the apply: after a COMMIT they take one round trip of their own, in a
    read-only transaction; an apply with nothing to do sends its ROLLBACK in that round trip, so it costs
    none more.
    `finish(conn)` is `complete` for a rider: it keeps the Evidence or the error, for the caller to judge.
    """

    def __init__(self, declared: Sequence[DeclaredTrigger], *, full: bool = True, memory: Memory | None = None) -> None:
        self.declared = tuple(declared)
        self.full = full
        self.memory = memory if memory is not None else Memory()
        self.evidence: Evidence | None = None
        self.error: ReconcilerError | None = None
        self._head_cursor: psycopg.Cursor[Any] | None = None
        self._head: tuple[Any, ...] | None = None
        self._queries: dict[str, tuple[str, str, Any]] = {}  # name -> (relation, query, params)
        self._readable: set[str] = set()
        self._unavailable: dict[str, str] = {}
        self._cursors: dict[str, psycopg.Cursor[Any]] = {}
        self._rows: dict[str, list[tuple[Any, ...]]] = {}
        self._now: datetime | None = None  # a later now() than the head's, when the queries ran after it

    # --- the steps (engine/rider.py) ------------------------------------------------------------------------
    def queue_head(self, conn: psycopg.Connection[Any]) -> None:
        self._head_cursor = cur = conn.cursor()
        cur.execute(HEAD, {"relations": list(RELATIONS)})

    def queue_queries(self, conn: psycopg.Connection[Any]) -> None:
        """Queue the query of every readable relation (after the head's round trip)."""
        self._take_head()
        for name, (relation, query, params) in self._queries.items():
            if relation in self._readable:
                self._cursors[name] = cur = conn.cursor()
                cur.execute(query, params)

    def finish(self, conn: psycopg.Connection[Any], *, rollback_first: bool = False) -> None:
        """`complete`, keeping the Evidence in `evidence` or the ReconcilerError in `error`."""
        try:
            self.evidence = self.complete(conn, rollback_first=rollback_first)
        except ReconcilerError as e:
            self.error = e

    def result(self) -> Evidence:
        """The Evidence `finish` read; raises what stopped it."""
        if self.error is not None:
            raise self.error
        if self.evidence is None:
            raise ReconcilerError("the verify evidence was not read")
        return self.evidence

    def complete(self, conn: psycopg.Connection[Any], *, rollback_first: bool = False) -> Evidence:
        """Read what is missing on `conn` (autocommit; idle, or inside the head's transaction) and build.

        `rollback_first`: the transaction open on `conn` is the caller's and only has to end (an apply
        with nothing to do); its ROLLBACK goes at the start of this read's round trip instead of one of
        its own, and the evidence is read in a read-only transaction of its own."""
        self._take_head()
        for name, cur in self._cursors.items():
            if cur.pgresult is not None and cur.pgresult.status == ExecStatus.TUPLES_OK:
                self._rows[name] = cur.fetchall()
        missing = {n: q for n, q in self._queries.items() if n not in self._rows}
        try:
            if missing or (conn.info.transaction_status != TransactionStatus.IDLE and not rollback_first):
                self._fetch(conn, missing, rollback_first=rollback_first)
        finally:
            _end(conn)
        assert self._head is not None
        return evidence_from_rows(self._head, self._rows, self._unavailable, self.memory, self.declared,
                                  full=self.full, later_now=self._now)

    # --- reading ---------------------------------------------------------------------------------------
    def _take_head(self) -> None:
        if self._head is not None:
            return
        assert self._head_cursor is not None, "queue_head() first"
        with db.translated("reading the verify evidence"):
            head = self._head_cursor.fetchone()
        assert head is not None
        self._head = head
        now, _database, _pg_net_database, present, readable = head
        if self.memory.check_start is None:
            self.memory.check_start = now
        since = min(self.memory.check_start, now - lookback(self.declared))
        for rel in RELATIONS:
            if rel not in present:
                self._unavailable[rel] = "does not exist"
        self._readable = set(readable)
        names = [t.name for t in self.declared]
        queries: dict[str, tuple[str, str, Any]] = {
            "cron_jobs": ("cron.job", CRON_JOBS, None),
            "responses": ("net._http_response", RESPONSES, (since,)),
            "queued": ("net.http_request_queue", QUEUE, None),
        }
        if names and "cron.job" in self._readable:
            queries["runs"] = ("cron.job_run_details", RUNS, {"names": names, "since": since})
        if self.full:
            queries["executions"] = ("public.job_executions", EXECUTIONS, (since,))
            queries["scheduled"] = ("public.scheduled_jobs", SCHEDULED, None)
            queries.update({f"stats:{rel}": (rel, query, None) for rel, query in STATS.items()})
        self._queries = {n: q for n, q in queries.items() if q[0] not in self._unavailable}

    def _fetch(self, conn: psycopg.Connection[Any], queries: dict[str, tuple[str, str, Any]], *,
               rollback_first: bool = False) -> None:
        """`queries` in one round trip with the transaction's end (and its start, on an idle connection
        or after `rollback_first`).

        Queries on relations the role may read go in one pipeline; the rest (rare: a relation that exists
        but is not readable) run one by one, so each failure is recorded for its relation alone. An
        unexpected error in the pipeline falls back to that slower path for all of them.
        """
        piped = {n: q for n, q in queries.items() if q[0] in self._readable}
        status = conn.info.transaction_status
        if status == TransactionStatus.INERROR:  # a query that rode along failed; its transaction is over
            _end(conn)
            status = TransactionStatus.IDLE
        end_first = rollback_first and status == TransactionStatus.INTRANS
        try:
            with conn.pipeline():
                now_cursor = None
                if end_first:
                    conn.execute("ROLLBACK")
                if end_first or status == TransactionStatus.IDLE:
                    conn.execute("BEGIN READ ONLY")
                    now_cursor = conn.cursor()
                    now_cursor.execute("SELECT now()")
                cursors = {}
                for name, (_, query, params) in piped.items():
                    cursors[name] = cur = conn.cursor()
                    cur.execute(query, params)
                if len(piped) == len(queries):
                    conn.execute("ROLLBACK")
            self._rows.update({name: cur.fetchall() for name, cur in cursors.items()})
            if now_cursor is not None:
                row = now_cursor.fetchone()
                self._now = row[0] if row else None
        except psycopg.Error as e:
            if db.connection_lost(e):
                raise db.translate(e, "reading the verify evidence") from e
            _end(conn)
            piped = {}
        if len(piped) < len(queries) and conn.info.transaction_status == TransactionStatus.IDLE:
            with db.translated("starting a read-only transaction"):
                conn.execute("BEGIN READ ONLY")
        for name, (relation, query, params) in queries.items():
            if name not in piped:
                self._rows[name] = _read_alone(conn, query, params, relation, self._unavailable)



def read_evidence(conn: psycopg.Connection[Any], declared: Sequence[DeclaredTrigger], *, full: bool = True,
                  memory: Memory | None = None) -> Evidence:
    """The evidence on `conn` (autocommit, idle) alone: one read-only transaction in two round trips, the
    head with its BEGIN READ ONLY, then every query with the ROLLBACK.

    Read-only per transaction, not per session (`SET default_transaction_read_only`): behind a
    transaction-mode pooler a session setting stays in the server session for the next client.
    """
    read = EvidenceRead(declared, full=full, memory=memory)
    try:
        with db.translated("reading the verify evidence"), conn.pipeline():
            conn.execute("BEGIN READ ONLY")
            read.queue_head(conn)
        return read.complete(conn)
    finally:
        _end(conn)


class Reader:
    """Reads evidence over one connection; remembers queued requests across polls (first-seen times)."""

    def __init__(self, conn: psycopg.Connection[Any], declared: Sequence[DeclaredTrigger]) -> None:
        self.conn = conn
        self.declared = tuple(declared)
        self.memory = Memory()

    def read(self, *, full: bool = True) -> Evidence:
        """The evidence; `full=False` (the --wait polls) reads only what `verify.settled` looks at: the
        cron jobs, their runs, responses and the queue, not the application tables or the table sizes.
        Each call is one read-only transaction in two round trips (`read_evidence`)."""
        return read_evidence(self.conn, self.declared, full=full, memory=self.memory)

    def rider(self, *, full: bool = True) -> EvidenceRead:
        """The next read as a rider on the plan's read (`apply.read_only`), with this reader's memory."""
        return EvidenceRead(self.declared, full=full, memory=self.memory)


def _end(conn: psycopg.Connection[Any]) -> None:
    if conn.info.transaction_status not in (TransactionStatus.IDLE, TransactionStatus.UNKNOWN):
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")


def _read_alone(conn: psycopg.Connection[Any], query: str, params: Any, relation: str,
                unavailable: dict[str, str]) -> list[tuple[Any, ...]]:
    """One query on its own, inside the open read-only transaction; a relation that cannot be read is
    recorded in `unavailable` and the transaction restarted for the next one."""
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    except (pgerr.InsufficientPrivilege, pgerr.UndefinedTable, pgerr.UndefinedColumn,
            pgerr.InvalidSchemaName, pgerr.UndefinedFunction) as e:
        unavailable[relation] = " ".join(str(e.diag.message_primary or e).split())
        _end(conn)  # the error ended the transaction; the next relation is read in a new one
        with db.translated("starting a read-only transaction"):
            conn.execute("BEGIN READ ONLY")
        return []
    except psycopg.Error as e:
        raise db.translate(e, f"reading {relation}") from e
