"""Bounds on the read-only transaction a plan reads in: nothing a dry run, `verify` or a `--watch`
cycle reads can wait forever.

Where it sits: `apply.read_only` opens its transaction with `begin()` and passes what failed through
`explain()`. A migration holding ACCESS EXCLUSIVE on `scheduled_jobs` blocks even a SELECT; without a
bound the read waits until the migration ends. Inside the read's transaction (transaction-local
settings, so a pooled server session keeps nothing) every wait for a table or row lock stops after
`lock_timeout` and every statement after `statement_timeout`, the same defaults as an apply's. A read
that gave up names who held the lock, asked on the same connection once its transaction is rolled back.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

from reconciler.engine import blockers as lock_holders
from reconciler.errors import ReconcilerError

#: Seconds a read waits for a table or row lock when --lock-timeout is not given (an apply's default too).
READ_LOCK_TIMEOUT = 10.0
#: Seconds one read statement may run when no statement timeout is given (the CLI's default).
READ_STATEMENT_TIMEOUT = 30.0


def _ms(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


def begin(statement_timeout: float | None, lock_timeout: float | None) -> list[sql.SQL | sql.Composed]:
    """BEGIN READ ONLY and both bounds: two statements, sent ahead of the first read in its pipeline."""
    statement = statement_timeout if statement_timeout and statement_timeout > 0 else READ_STATEMENT_TIMEOUT
    lock = lock_timeout if lock_timeout and lock_timeout > 0 else READ_LOCK_TIMEOUT
    return [sql.SQL("BEGIN READ ONLY"),
            sql.SQL("SELECT set_config('statement_timeout', {}, true), set_config('lock_timeout', {}, true)").format(
                sql.Literal(_ms(statement)), sql.Literal(_ms(lock)))]


def explain(error: ReconcilerError, conn: psycopg.Connection[Any]) -> ReconcilerError:
    """A read that gave up waiting (lock or statement timeout) says who it waited for; `conn` is idle."""
    cause = error.__cause__
    if not isinstance(cause, (pgerr.LockNotAvailable, pgerr.QueryCanceled)):
        return error
    blockers = lock_holders.blockers(conn)
    bound = "lock timeout" if isinstance(cause, pgerr.LockNotAvailable) else "statement timeout"
    if not blockers:
        if isinstance(cause, pgerr.QueryCanceled):
            return error
        blockers = ["a session that could not be identified (it has finished, or holds a row lock: see "
                    "pg_stat_activity)"]
    return ReconcilerError(f"reading the live state gave up at its {bound}: blocked by {'; '.join(blockers)};"
                           " nothing was changed",
                           hint="retry once that session (a migration?) ends, or pass a longer --lock-timeout",
                           retryable=True)
