"""Connections, capability detection and reading the live state: the reconciler's input edge.

All live state is read in two round trips whatever the number of objects: one query for the
capabilities (settings, relations, privileges), then one pipelined batch with a query per kind plus
the ownership records; a rider (verify's evidence: engine/rider.py) may add its queries to both.
Driver errors are translated once, here, into ReconcilerErrors by SQLSTATE.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pgerr
from psycopg import sql
from psycopg.pq import ExecStatus, TransactionStatus

from reconciler import kinds
from reconciler.engine import conninfo, deadline, records
from reconciler.engine import rider as riders
from reconciler.errors import ApplyFailed, DatabaseUnavailable, PermissionDenied, ReconcilerError
from reconciler.kinds.base import Capabilities, LiveState
from reconciler.util import faults

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

APPLICATION_NAME = "reconcile"


class _PipelineEndedOnLostConnection(logging.Filter):
    """psycopg logs a second error when a pipeline cannot end on a lost connection (besides raising the
    first): the raised one is what the user sees, once, translated."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_PipelineEndedOnLostConnection())
#: The ownership records' relations: the core's own, besides what the kinds list.
OWNERSHIP_RELATIONS = ("reconciler.managed", "reconciler.history")
#: The core's own probe: may the role record ownership and history (NULL where the schema is missing).
CORE_PROBES = {
    "reconciler.write": """CASE WHEN to_regclass('reconciler.managed') IS NULL
                                  THEN has_database_privilege(current_database(), 'CREATE')
                                  ELSE has_table_privilege('reconciler.managed', 'INSERT, UPDATE, DELETE')
                                       AND has_table_privilege('reconciler.history', 'INSERT') END""",
    "reconciler.records": records.SHAPE_PROBE,
}


def relations() -> tuple[str, ...]:
    """Every relation whose existence the capabilities record: the kinds' and the ownership records'."""
    return tuple(dict.fromkeys([r for kind in kinds.REGISTRY for r in kind.relations] + list(OWNERSHIP_RELATIONS)))


def settings() -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for kind in kinds.REGISTRY for s in kind.settings))


def capabilities_query() -> sql.Composed:
    """One query for the capabilities: who and where, settings, relations, and every kind's probes.

    Each kind's probes are one jsonb_build_object (at most 50 probes each: 100 arguments), joined by ||.
    """
    groups = [CORE_PROBES, *(kind.probes for kind in kinds.REGISTRY if kind.probes)]
    probes = sql.SQL(" || ").join(
        sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(name), sql.SQL(expression))  # type: ignore[arg-type]
            for name, expression in group.items()))
        for group in groups)
    return sql.SQL("""
SELECT current_user, current_database(),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       (SELECT coalesce(json_object_agg(name, setting), '{{}}') FROM pg_settings WHERE name = ANY(%(settings)s)),
       ARRAY(SELECT r FROM unnest(%(relations)s::text[]) r WHERE to_regclass(r) IS NOT NULL),
       {}
""").format(probes)


#: The server ended the session (pg_terminate_backend, shutdown, crash) or the link broke.
CONNECTION_LOST = ("57P01", "57P02")


def connection_lost(error: BaseException) -> bool:
    """True when `error` means the connection is gone (the server rolls back its open transaction)."""
    if not isinstance(error, psycopg.Error):
        return False
    sqlstate = getattr(error, "sqlstate", None) or ""
    if sqlstate in CONNECTION_LOST or sqlstate.startswith("08"):
        return True
    return isinstance(error, psycopg.OperationalError) and not sqlstate


def translate(error: psycopg.Error, doing: str) -> ReconcilerError:
    """One driver error into one user-facing error, by SQLSTATE class."""
    diag = getattr(error, "diag", None)
    lines = str(error).strip().splitlines()
    primary = (diag.message_primary if diag is not None else None) or (lines[0] if lines else type(error).__name__)
    detail = diag.message_detail if diag is not None else None
    sqlstate = getattr(error, "sqlstate", None) or ""
    text = f"{doing}: {primary}" + (f" ({detail})" if detail else "")
    if isinstance(error, pgerr.InsufficientPrivilege):
        return PermissionDenied(text, hint="grant the privilege named above to the reconciler's role")
    if isinstance(error, deadline.NoAnswer):
        return DatabaseUnavailable(f"{doing}: {error}", hint="the server or the network stopped answering: a failover, "
                                   "a dropped connection? Nothing was committed; retry")
    if connection_lost(error):
        # The server rolls back whatever transaction the session had open; COMMIT is the exception
        # (engine/transaction.py says so itself: there the outcome is unknown).
        return DatabaseUnavailable(
            f"the database connection was lost ({text})" + (f" [SQLSTATE {sqlstate}]" if sqlstate else ""),
            hint="retry: an unfinished transaction was rolled back by the server, nothing changed")
    if sqlstate in ("57P03", "53300"):
        return DatabaseUnavailable(text + f" [SQLSTATE {sqlstate}]")
    retryable = sqlstate in ("40001", "40P01", "55P03", "57014")
    return ApplyFailed(f"{text} [SQLSTATE {sqlstate}]" if sqlstate else text, retryable=retryable)


#: psycopg prepares a query after 5 executions on a connection (`_pg3_0`, ...): named statements live in
#: the server session, which a transaction-mode pooler (PgBouncer < 1.21, Supavisor port 6543) hands to
#: other clients between transactions ("prepared statement ... does not exist" / "already exists").
#: `verify --wait` and the apply's re-reads repeat queries on one connection, so never prepare.
PREPARE_THRESHOLD = None


def _sentences(message: str) -> str:
    """libpq's message lines as one line of sentences: "...failed: No such file or directory. Is the..."."""
    lines = [" ".join(line.split()) for line in message.splitlines()]
    lines = [line for line in lines if line]
    return " ".join(line if i == len(lines) - 1 or line[-1] in ".?!:;" else line + "."
                    for i, line in enumerate(lines))


#: Seconds libpq waits for a server to accept a connection (a fleet passes a shorter one per target).
CONNECT_TIMEOUT = 10
#: TCP keepalives and tcp_user_timeout (libpq's, client-side only: poolers never see them), unless the URL
#: sets its own: a real network then reports a dead peer in about a minute. They cannot fire while the
#: peer's kernel still acknowledges (a proxy or sidecar); the client-side deadline (engine/deadline.py)
#: bounds every wait regardless.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3",
              "tcp_user_timeout": "60000"}


def _keepalives(url: str) -> dict[str, Any]:
    try:
        given = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return {}  # malformed: psycopg.connect says so below
    return {k: v for k, v in KEEPALIVES.items() if k not in given}


def connect(url: str, *, autocommit: bool = False, connect_timeout: int = CONNECT_TIMEOUT,
            answer_timeout: float | None = None) -> psycopg.Connection[Any]:
    """A connection whose every wait for the server ends after `answer_timeout` seconds (deadline.py's
    default when None, or RECONCILER_ANSWER_TIMEOUT), connecting included (connect_timeout is capped by it)."""
    if conninfo.misread_password(url):
        raise ReconcilerError("the database URL's password contains an unencoded '@' or '/': libpq would read part "
                              "of it as the host, port or database name",
                              hint="percent-encode the password in the URL (@ as %40, / as %2F, : as %3A), or give "
                              "key=value pairs: password='...' host=...")
    bound = answer_timeout if answer_timeout is not None else deadline.answer_timeout()
    connect_timeout = max(2, min(connect_timeout, math.ceil(bound)))  # libpq's minimum is 2 s
    try:
        conn = deadline.DeadlineConnection.connect(
            url, autocommit=autocommit, connect_timeout=connect_timeout, application_name=APPLICATION_NAME,
            prepare_threshold=PREPARE_THRESHOLD, **_keepalives(url))
        conn.answer_timeout = bound
        return conn
    except psycopg.OperationalError as e:
        reason = conninfo.scrub(_sentences(str(e)), url)
        if "password authentication failed" in reason or "no password supplied" in reason:
            raise DatabaseUnavailable(f"authentication failed: {reason}") from e
        if "unsupported startup parameter" in reason:
            raise DatabaseUnavailable(f"cannot connect to the database: {reason}",
                                      hint="a connection pooler (PgBouncer) refuses that connection parameter: remove "
                                      "it from the URL, or list it in the pooler's ignore_startup_parameters") from e
        if "FATAL:" in reason:  # the server answered and refused: no database or role of that name, ...
            raise DatabaseUnavailable(f"cannot connect to the database: {reason}", hint="the server answered: check "
                                      "the database name and role in --database-url / DATABASE_URL") from e
        raise DatabaseUnavailable(f"cannot connect to the database: {reason}",
                                  hint="check --database-url / DATABASE_URL and that the server is running") from e
    except psycopg.ProgrammingError as e:  # malformed connection string
        # libpq quotes the string it could not parse, password included: never echo it
        raise ReconcilerError("invalid database URL", hint="expected postgresql://user:password@host:port/db "
                              "or key=value pairs (host=... dbname=...)") from e


@contextmanager
def translated(doing: str) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as e:
        raise translate(e, doing) from e


def read_capabilities(conn: psycopg.Connection[Any], rider: riders.Rider | None = None,
                      before: Sequence[sql.SQL | sql.Composed] = ()) -> Capabilities:
    """The capabilities in one round trip; the statements `before` (BEGIN READ ONLY, a transaction-local
    timeout) go ahead of the query in the same pipeline, results unread."""
    faults.point("read.capabilities")
    with translated("reading server capabilities"), conn.cursor() as cur:
        if rider is None and not before:
            queue_capabilities(cur)
        else:
            with conn.pipeline():
                for statement in before:
                    conn.execute(statement)
                queue_capabilities(cur)
                riders.queue_head(rider, conn)
        return capabilities_from(cur)


def queue_capabilities(cur: psycopg.Cursor[Any]) -> None:
    """The capabilities query on `cur` (in a pipeline: queued; `capabilities_from` reads its answer)."""
    cur.execute(capabilities_query(), {"settings": list(settings()), "relations": list(relations())})


def capabilities_from(cur: psycopg.Cursor[Any]) -> Capabilities:
    row = cur.fetchone()
    assert row is not None
    user, database, superuser, found_settings, found, probes = row
    return Capabilities(current_user=user, database=database,
                        is_superuser=bool(superuser), settings=found_settings, relations=frozenset(found),
                        probes=probes)


def read_live(conn: psycopg.Connection[Any], manifest: Manifest | None = None,
              planes: kinds.Planes | None = None, rider: riders.Rider | None = None, *,
              rider_queries: bool = True, before: Sequence[sql.SQL | sql.Composed] = (),
              after: Sequence[sql.SQL | sql.Composed] = (), known: Capabilities | None = None) -> LiveState:
    """Everything the planner needs: two round trips (capabilities, then one pipeline), plus each plane's read.

    A `rider`'s head query goes with the capabilities, its queries (with `rider_queries`) last in the
    pipeline: the kinds' rows have arrived when one of them fails, and the rider reads what it lacks in
    its `finish`; the transaction is aborted then, which the caller's ROLLBACK ends. The statements
    `before` travel ahead of the capabilities query (a read-only BEGIN), those `after` at the end of the
    pipeline (its ROLLBACK): no round trip of their own. After a failure in the pipeline the server skips
    `after`, so a caller ending its transaction there still checks the connection's transaction status.

    With `known` capabilities (an earlier read's, without a rider, and `before` beginning the
    transaction) the kinds' queries are shaped by them and sent in one pipeline with the capabilities
    query: one round trip. When the capabilities read there differ (or a query they shaped failed),
    that transaction is ended and the state read again the cold way.
    """
    if known is not None and rider is None and before:
        live = _read_with_known(conn, manifest, planes, known, before, after)
        if live is not None:
            return live
        if conn.info.transaction_status != TransactionStatus.IDLE:
            with translated("ending a read whose capabilities changed"):
                conn.execute("ROLLBACK")
    caps = read_capabilities(conn, rider, before)
    faults.point("read.live")
    with translated("reading the live state"):
        cursors: dict[str, psycopg.Cursor[Any]] = {}
        try:
            with conn.pipeline():
                queue_reads(conn, caps, manifest, cursors)
                riders.queue_queries(rider, conn, rider_queries)
                for statement in after:
                    conn.execute(statement)
        except psycopg.Error:
            if not riders.tolerates(rider, rider_queries, cursors.values()):
                raise
        rows = {name: cur.fetchall() for name, cur in cursors.items()}
    return _live_state(caps, rows, planes)


#: The key of the ownership records' cursor among the kinds' (no kind has this name).
_MANAGED = "reconciler.managed"


def queue_reads(conn: psycopg.Connection[Any], caps: Capabilities, manifest: Manifest | None,
                into: dict[str, psycopg.Cursor[Any]] | None = None) -> dict[str, psycopg.Cursor[Any]]:
    """Every kind's query shaped by `caps`, and the ownership records', into the open pipeline; their
    cursors (added to `into` as they are queued), for `live_state` once the pipeline has answered."""
    cursors: dict[str, psycopg.Cursor[Any]] = {} if into is None else into
    for kind in kinds.REGISTRY:
        statement = kind.read(caps, manifest)
        if statement is None:
            continue
        cur = conn.cursor()
        statement.run(cur)
        cursors[kind.name] = cur
    if caps.has("reconciler.managed"):
        cursors[_MANAGED] = cur = conn.cursor()
        cur.execute(records.records_query(caps))
    return cursors


def live_state(caps: Capabilities, cursors: dict[str, psycopg.Cursor[Any]], planes: kinds.Planes | None) -> LiveState:
    """The LiveState from `queue_reads`'s answered cursors (and each plane's own read)."""
    return _live_state(caps, {name: cur.fetchall() for name, cur in cursors.items()}, planes)


def read_state(conn: psycopg.Connection[Any], caps: Capabilities, manifest: Manifest | None,
               planes: kinds.Planes | None = None) -> LiveState:
    """The kinds' and the ownership records' reads shaped by `caps`, in one pipeline: one round trip."""
    faults.point("read.live")
    with translated("reading the live state"):
        with conn.pipeline():
            cursors = queue_reads(conn, caps, manifest)
        return live_state(caps, cursors, planes)


def _live_state(caps: Capabilities, rows: dict[str, list[tuple[Any, ...]]], planes: kinds.Planes | None) -> LiveState:
    live = {kind.name: kind.from_rows(rows.get(kind.name, []), caps) for kind in kinds.REGISTRY}
    for name, plane in (planes.opened.items() if planes is not None else ()):
        live[name] = plane.read()
    managed, removed = records.from_rows(rows.get(_MANAGED, []))
    return LiveState(caps, live, managed, caps.has("reconciler.managed"), removed)


def _read_with_known(conn: psycopg.Connection[Any], manifest: Manifest | None, planes: kinds.Planes | None,
                     known: Capabilities, before: Sequence[sql.SQL | sql.Composed],
                     after: Sequence[sql.SQL | sql.Composed]) -> LiveState | None:
    """read_live in one round trip, or None when the capabilities are no longer `known`."""
    faults.point("read.capabilities")
    faults.point("read.live")
    cursors: dict[str, psycopg.Cursor[Any]] = {}
    with translated("reading the live state"), conn.cursor() as caps_cur:
        try:
            with conn.pipeline():
                for statement in before:
                    conn.execute(statement)
                queue_capabilities(caps_cur)
                queue_reads(conn, known, manifest, cursors)
                for statement in after:
                    conn.execute(statement)
        except psycopg.Error as e:
            if connection_lost(e) or not answered(caps_cur):
                raise
            failed: psycopg.Error | None = e
        else:
            failed = None
        if capabilities_from(caps_cur) != known:
            return None
        if failed is not None:
            raise failed
        rows = {name: cur.fetchall() for name, cur in cursors.items()}
    return _live_state(known, rows, planes)


def answered(cur: psycopg.Cursor[Any]) -> bool:
    return cur.pgresult is not None and cur.pgresult.status == ExecStatus.TUPLES_OK
