"""Is the database writable? An apply asks before it changes anything, and refuses if not.

Where it sits: `transaction.begin_locked` appends `PROBE` to its BEGIN's round trip (no round trip more) and
passes the answer to `refusal`. Two cases make a database read-only to us:
- a hot standby (a read replica): `pg_is_in_recovery()`; nothing can write there;
- `default_transaction_read_only = on` for the database, the role or the server: Supabase sets it on a
  project whose disk is full. Our transaction inherits it (`transaction_read_only`).
The reconciler never overrides the setting (no `BEGIN READ WRITE`, no `SET transaction_read_only`): it was
set to stop writes, and a reconciler that writes anyway could fill the last of a full disk. A plan
(the dry run) reads only, and works in both cases.
"""

from __future__ import annotations

from reconciler.errors import DatabaseReadOnly

#: Columns the BEGIN's round trip reads; `read_only_source` says where the setting was made.
PROBE = ("SELECT pg_is_in_recovery() AS in_recovery, current_setting('transaction_read_only') = 'on' AS read_only,"
         " (SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only') AS read_only_source")
PROBE_COLUMN = "read_only_source"

#: pg_settings.source, as a person says it.
SOURCES = {"database": "for the database", "user": "for the role", "database user": "for the role in this database",
           "configuration file": "in the server's configuration", "client": "by the connection (options/PGOPTIONS)",
           "session": "by the connection (options/PGOPTIONS)"}


def refusal(in_recovery: bool, read_only: bool, source: str | None) -> DatabaseReadOnly | None:
    """Why an apply must not start here, or None when the database takes writes."""
    if in_recovery:
        return DatabaseReadOnly(
            "refusing to apply: the database is a read-only replica (pg_is_in_recovery() is true); nothing was "
            "changed", hint="point --database-url / DATABASE_URL at the primary; a plan (--dry-run) works on a replica")
    if read_only:
        where = SOURCES.get(source or "", f"({source})" if source else "")
        return DatabaseReadOnly(
            f"refusing to apply: the database is read-only (default_transaction_read_only = on{', set ' + where if where else ''});"
            " nothing was changed, and the reconciler never overrides that setting",
            hint="Supabase sets it when the project's disk is full: free space or grow the disk, then it is lifted "
                 "(ALTER DATABASE ... RESET default_transaction_read_only elsewhere); a plan (--dry-run) still works")
    return None
