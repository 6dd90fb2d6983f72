"""Who holds a lock the apply or a read waited for: asked after a statement gave up (lock or statement
timeout), so the message names the session instead of "canceling statement due to lock timeout"."""

from __future__ import annotations

from typing import Any

import psycopg

from reconciler.engine.db import APPLICATION_NAME, PREPARE_THRESHOLD, relations

#: Lock modes that conflict with the RowExclusiveLock every write takes (and ACCESS EXCLUSIVE, which
#: blocks reads too): a session holding one of these on a relation the apply uses can make it wait.
BLOCKING_MODES = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")

BLOCKERS_QUERY = """
SELECT l.pid, coalesce(nullif(a.application_name, ''), '?'), coalesce(a.usename::text, '?'), l.mode,
       format('%%I.%%I', n.nspname, c.relname),
       to_char(a.query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'),
       round(extract(epoch FROM now() - a.query_start))::int, a.state
  FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.relation IN (SELECT to_regclass(r) FROM unnest(%(relations)s::text[]) r)
   AND l.mode = ANY(%(modes)s)
 ORDER BY l.mode = 'AccessExclusiveLock' DESC, l.pid
 LIMIT 5
"""


def lock_blockers(url: str) -> list[str]:
    """Who holds a conflicting lock on a relation the apply uses, as `pid N (application_name X, ...)`.

    Asked over a second short connection after a statement gave up waiting (lock or statement timeout)
    and the apply rolled back, so the apply's own session holds no lock any more (and behind a pooler its
    backend pid is not known anyway). The 2 s timeout is set for this one transaction only: a session
    `SET` would stay behind in a pooled server session for the next client. Best effort: an empty list
    when nobody is found or the question itself fails.
    """
    try:
        with psycopg.connect(url, connect_timeout=5, application_name=APPLICATION_NAME,
                             prepare_threshold=PREPARE_THRESHOLD) as conn:
            return blockers(conn)
    except psycopg.Error:
        return []


def blockers(conn: psycopg.Connection[Any]) -> list[str]:
    """`lock_blockers` asked on `conn`, which must be idle (its own locks are released): one transaction
    of its own, bounded by a 2 s statement timeout. Empty when nobody is found or the question fails."""
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('statement_timeout', '2s', true)")
            rows = conn.execute(BLOCKERS_QUERY, {"relations": list(relations()),
                                                 "modes": list(BLOCKING_MODES)}).fetchall()
    except psycopg.Error:
        return []
    return [f"pid {p} (application_name {app}, user {user}, {_activity(state, started, ago)}) holding {mode} on {rel}"
            for p, app, user, mode, rel, started, ago, state in rows]


def _activity(state: str | None, started: str | None, ago: int | None) -> str:
    """What the holder is doing; pg_stat_activity shows another role's only to pg_read_all_stats members."""
    if started is None:
        return "its query hidden from this role: pg_read_all_stats shows it"
    return f"{state}, query started {started}, {ago} s ago"
