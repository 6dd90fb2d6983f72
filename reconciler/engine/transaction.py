"""The apply's transaction: BEGIN with its timeouts and the advisory lock, COMMIT, ROLLBACK.

One apply at a time per database: the advisory lock (transaction-scoped, so a pooled server session keeps
nothing) keeps other reconcilers out; one that finds it held says who holds it. A statement that gave up
waiting for a table or row lock names who it waited for. A COMMIT whose connection was lost says the
outcome is unknown instead of "nothing changed".
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg import sql

from reconciler.engine import blockers as lock_holders
from reconciler.engine import db, statements, writable
from reconciler.engine import rider as riders
from reconciler.errors import ApplyFailed, DatabaseUnavailable, LockHeld
from reconciler.kinds.base import Capabilities
from reconciler.util import faults

#: Advisory lock key (two int4s, so pg_locks shows it as classid/objid): "sche" "dule" in ASCII.
LOCK_KEY = (0x73636865, 0x64756C65)
#: How long one statement inside the apply waits for a table or row lock when --lock-timeout is not
#: given (an application session holding ACCESS EXCLUSIVE on scheduled_jobs, say); then it fails.
DEFAULT_LOCK_TIMEOUT = 10.0


def begin_locked(conn: psycopg.Connection[Any], lock_timeout: float | None, statement_timeout: float | None,
                 rider: riders.Rider | None = None, then: statements.Queue | None = None) -> Capabilities:
    """BEGIN, timeouts, the advisory lock, the writable probe and the capabilities in one round trip (a
    pipeline); raises LockHeld when another apply runs, DatabaseReadOnly where nothing may be written.

    Inside the transaction every statement waits at most `lock_timeout` (DEFAULT_LOCK_TIMEOUT when not
    given) for a table or row lock, and runs at most `statement_timeout`. A `rider`'s head query rides in
    the same pipeline, and whatever `then` queues after it; when only that fails (the lock and the
    capabilities answered), statements.QueuedFailed says so, the transaction aborted.
    """
    timeout = sql.Literal(_ms(statement_timeout))
    in_tx_lock = sql.Literal(_ms(lock_timeout if lock_timeout and lock_timeout > 0 else DEFAULT_LOCK_TIMEOUT))
    key = sql.SQL(", ").join(sql.Literal(k) for k in LOCK_KEY)
    wait = lock_timeout is not None and lock_timeout > 0
    faults.point("begin")
    lock, probe, caps = conn.cursor(), conn.cursor(), conn.cursor()
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            if wait:
                # Only lock_timeout bounds the wait (a shorter statement_timeout would cut it and turn "lock
                # held" into a generic error); the statement timeout starts once the lock is ours.
                conn.execute(sql.SQL("SELECT set_config('statement_timeout', '0', true),"
                                     " set_config('lock_timeout', {}, true)").format(in_tx_lock))
                lock.execute(sql.SQL("SELECT pg_advisory_xact_lock({}), true AS acquired").format(key))
                conn.execute(sql.SQL("SELECT set_config('statement_timeout', {}, true)").format(timeout))
            else:
                lock.execute(sql.SQL("SELECT set_config('statement_timeout', {}, true), set_config('lock_timeout', {},"
                                     " true), pg_try_advisory_xact_lock({}) AS acquired").format(timeout, in_tx_lock,
                                                                                                  key))
            probe.execute(writable.PROBE)  # type: ignore[arg-type]
            db.queue_capabilities(caps)
            riders.queue_head(rider, conn)
            if then is not None:
                then(conn)
    except psycopg.errors.LockNotAvailable:
        rollback(conn)
        raise LockHeld(f"another reconciler holds the lock ({_holder(conn)})",
                       hint="wait for it, or pass a longer --lock-timeout") from None
    except psycopg.Error as e:
        if db.connection_lost(e) or then is None or not all(db.answered(c) for c in (lock, probe, caps)):
            rollback(conn)
            raise db.translate(e, "starting the transaction") from e
        failed: psycopg.Error | None = e
    else:
        failed = None
    row = lock.fetchone()
    probed = probe.fetchone()
    refused = writable.refusal(*probed) if probed is not None else None
    if refused is not None:  # before "lock held": a read-only database is the news, whoever holds the lock
        rollback(conn)
        raise refused
    if not (row and row[-1]):
        holder = _holder(conn)
        rollback(conn)
        raise LockHeld(f"another reconciler holds the lock ({holder})",
                       hint="wait for it, or pass --lock-timeout SECONDS to wait")
    if failed is not None:
        raise statements.QueuedFailed(failed)
    return db.capabilities_from(caps)


def _ms(seconds: float | None) -> str:
    return f"{max(1, int(seconds * 1000))}ms" if seconds else "0"


def rollback(conn: psycopg.Connection[Any]) -> None:
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


def commit(conn: psycopg.Connection[Any]) -> None:
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


def explain_wait(error: ApplyFailed, url: str) -> ApplyFailed:
    """A statement that gave up waiting (lock or statement timeout) names who it waited for, if anyone."""
    cause = error.__cause__
    if not isinstance(cause, (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)):
        return error
    blockers = lock_holders.lock_blockers(url)
    if not blockers:
        if isinstance(cause, psycopg.errors.QueryCanceled):
            return error
        blockers = ["a session that could not be identified (a row lock held by a long transaction, or it has finished:"
                    " see pg_stat_activity)"]
    return ApplyFailed(f"{error.message}; blocked by {'; '.join(blockers)}; rolled back, nothing changed",
                       hint="retry once that session ends, or pass a longer --lock-timeout", retryable=True)
