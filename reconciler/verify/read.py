"""Reads the evidence `reconcile verify` judges: the I/O half of the verify package.

Where it sits: an `EvidenceRead` reads once, on a connection its caller opened, in steps that can ride
on the plan's read (`db.read_live` takes it as its rider: the head query goes with the capabilities
query, the evidence queries with the kinds' queries). `cli/verify.py` and the controller's pipeline
checks (`watch/pipeline.py`) read that way: one connection, the plan's round trips, none more. Alone,
`read_evidence` (and `Reader.read()`, which remembers queued requests across the --wait polls) reads in
two round trips. Every read is one read-only transaction (no session state, so it works through a
transaction-mode pooler) and returns a `verify.evidence.Evidence` (without the plan). A relation that is
absent or not readable is recorded in `Evidence.unavailable` instead of failing the whole command.

Secrets stay in the database: queued request URLs are cut down to their path in SQL (the base URL is
the project_url secret), and nothing reads vault.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pgerr
from psycopg.pq import ExecStatus, TransactionStatus

from reconciler.engine import db
from reconciler.errors import ReconcilerError
from reconciler.kinds.facts import DeclaredTrigger
from reconciler.verify.checks import lookback
from reconciler.verify.evidence import (
    CronJob,
    CronRun,
    Evidence,
    ExecutionRow,
    HttpResponse,
    ObservedRequest,
    ScheduledJob,
    TableStats,
    TextField,
)

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

__all__ = ["EvidenceRead", "Memory", "Reader", "declared_triggers", "read_evidence"]

ROW_LIMIT = 2000
RELATIONS = ("cron.job", "cron.job_run_details", "net.http_request_queue", "net._http_response",
             "public.scheduled_jobs", "public.job_executions")

# The head rides in the plan's (or the apply's) transaction, so it must not fail: the OID form of
# has_table_privilege is NULL for a missing relation, where the text form raises, whatever order the
# planner evaluates the conditions in.
_HEAD = """
SELECT now(), current_database(), current_setting('pg_net.database_name', true),
       ARRAY(SELECT r FROM unnest(%(relations)s::text[]) r WHERE to_regclass(r) IS NOT NULL),
       ARRAY(SELECT r FROM unnest(%(relations)s::text[]) r WHERE has_table_privilege(to_regclass(r), 'SELECT'))
"""
_CRON_JOBS = "SELECT jobid, jobname::text, schedule, command, active FROM cron.job ORDER BY jobid"
_RUNS = f"""
SELECT jobid, runid, status, left(return_message, 500), start_time, end_time
  FROM cron.job_run_details
 WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname = ANY(%(names)s)) AND start_time IS NOT NULL
   AND (start_time >= %(since)s
        OR runid IN (SELECT max(runid) FROM cron.job_run_details
                      WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname = ANY(%(names)s)) GROUP BY jobid))
 ORDER BY start_time DESC
 LIMIT {ROW_LIMIT}
"""
_RESPONSES = f"""
SELECT id, status_code, timed_out, left(error_msg, 500), created
  FROM net._http_response WHERE created >= %s ORDER BY created DESC LIMIT {ROW_LIMIT}
"""
# Only the path: scheme and authority (the project_url secret) and the query are cut off in the database.
_QUEUE = f"""
SELECT id, split_part(split_part(regexp_replace(url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''), '?', 1), '#', 1)
  FROM net.http_request_queue ORDER BY id LIMIT {ROW_LIMIT}
"""
_EXECUTIONS = f"""
SELECT s.job_name, e.started_at::timestamptz, e.status, left(e.error_message, 500)
  FROM public.job_executions e LEFT JOIN public.scheduled_jobs s ON s.id = e.job_id
 WHERE e.started_at >= %s ORDER BY e.started_at DESC LIMIT {ROW_LIMIT}
"""
_SCHEDULED = "SELECT to_jsonb(s) FROM public.scheduled_jobs s"
_STATS = {
    "cron.job_run_details": "SELECT count(*), min(start_time) FROM cron.job_run_details",
    "net._http_response": "SELECT count(*), min(created) FROM net._http_response",
}


def declared_triggers(manifest: Manifest) -> tuple[DeclaredTrigger, ...]:
    """The manifest's scheduled calls as verify sees them, from the kinds that declare them."""
    from reconciler import kinds
    from reconciler.kinds.facts import TriggerFacts

    facts: list[TriggerFacts] = kinds.providing(TriggerFacts)  # type: ignore[type-abstract]
    return tuple(t for kind in facts for t in kind.declared_triggers(manifest))


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        value = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    # A `timestamp without time zone` column in an application table: the server stores UTC (Supabase).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _texts(source: str, key: str, row: dict[str, Any], prefix: str = "") -> list[TextField]:
    out = []
    for column, value in row.items():
        if isinstance(value, str):
            out.append(TextField(source, key, prefix + column, value))
        elif isinstance(value, dict):
            out += _texts(source, key, value, f"{prefix}{column}.")
        elif isinstance(value, list):
            out += _texts(source, key, {str(i): v for i, v in enumerate(value)}, f"{prefix}{column}.")
    return out


@dataclass
class Memory:
    """What survives from one read to the next on a `Reader` (the --wait polls): when the check began, and
    when each queued request was first seen."""

    check_start: datetime | None = None
    seen: dict[int, tuple[str, datetime]] = field(default_factory=dict)


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
        cur.execute(_HEAD, {"relations": list(RELATIONS)})

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
        return self._build()

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
            "cron_jobs": ("cron.job", _CRON_JOBS, None),
            "responses": ("net._http_response", _RESPONSES, (since,)),
            "queued": ("net.http_request_queue", _QUEUE, None),
        }
        if names and "cron.job" in self._readable:
            queries["runs"] = ("cron.job_run_details", _RUNS, {"names": names, "since": since})
        if self.full:
            queries["executions"] = ("public.job_executions", _EXECUTIONS, (since,))
            queries["scheduled"] = ("public.scheduled_jobs", _SCHEDULED, None)
            queries.update({f"stats:{rel}": (rel, query, None) for rel, query in _STATS.items()})
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

    def _build(self) -> Evidence:
        assert self._head is not None
        head_now, database, pg_net_database, _present, _readable = self._head
        now = self._now or head_now
        check_start = self.memory.check_start
        assert check_start is not None
        unavailable = self._unavailable

        def rows(rel: str, name: str) -> list[tuple[Any, ...]]:
            return [] if rel in unavailable else self._rows.get(name, [])

        cron_jobs = tuple(CronJob(*r) for r in rows("cron.job", "cron_jobs"))
        runs = tuple(CronRun(*r) for r in rows("cron.job_run_details", "runs"))
        responses = tuple(HttpResponse(*r) for r in rows("net._http_response", "responses"))
        queued = rows("net.http_request_queue", "queued")
        seen = self.memory.seen
        queued_ids = set()
        for rid, path in queued:
            queued_ids.add(rid)
            seen.setdefault(rid, (path, now))
        answered = {r.id for r in responses}
        requests = tuple(ObservedRequest(rid, path, first, rid in queued_ids)
                         for rid, (path, first) in sorted(seen.items())
                         if rid in queued_ids or rid in answered)
        if not self.full:
            return Evidence(now=now, check_start=check_start, declared=self.declared, cron_jobs=cron_jobs,
                            runs=runs, responses=responses, requests=requests, database=database,
                            pg_net_database=pg_net_database, unavailable=unavailable)
        executions = tuple(ExecutionRow(*r) for r in rows("public.job_executions", "executions"))
        scheduled, texts = [], []
        for (doc,) in rows("public.scheduled_jobs", "scheduled"):
            name = str(doc.get("job_name") or doc.get("id") or "?")
            scheduled.append(ScheduledJob(name, str(doc.get("schedule") or ""), bool(doc.get("is_active", True)),
                                          _ts(doc.get("last_run_at")), _ts(doc.get("created_at"))))
            texts += _texts("public.scheduled_jobs", name, doc)
        for job in cron_jobs:
            texts.append(TextField("cron.job", job.jobname or f"#{job.jobid}", "command", job.command))
        tables = []
        for rel in _STATS:
            got = rows(rel, f"stats:{rel}")
            if got:
                tables.append(TableStats(rel, int(got[0][0]), got[0][1]))
            else:
                tables.append(TableStats(rel, None, note=unavailable.get(rel, "")))
        return Evidence(
            now=now, check_start=check_start, declared=self.declared, cron_jobs=cron_jobs, runs=runs,
            responses=responses, requests=requests, executions=executions, scheduled_jobs=tuple(scheduled),
            tables=tuple(tables), texts=tuple(texts), database=database, pg_net_database=pg_net_database,
            unavailable=unavailable,
        )


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
