"""Database fixtures for the whole test suite: a pytest plugin loaded by tests/conftest.py.

The session starts its own throwaway localdb cluster (supabase profile) in a temporary directory on a
free port, and FAILS (never skips) when it cannot. pg_cron lives in one database only, so every test
shares database `postgres`; the function fixtures below put it back into a known state first
(in well under 150 ms): stray sessions of earlier tests are terminated (except the pg_cron launcher
and the pg_net worker), every extension but plpgsql is dropped (as superuser, CASCADE), every schema
made since the cluster started is dropped (`reconciler`, `vault`, `net`, `cron`...), and `public` and
`extensions` are recreated with their original owner and grants if anything was put into them.

Fixtures:
    cluster           session. The running `localdb.Cluster` (supabase profile).
    vanilla_cluster   session, started only when a test asks. Plain PostgreSQL: superuser `postgres`.
    empty_db          No pg_cron / pg_net / supabase_vault, no app tables, nothing extra anywhere.
                      Returns a `DbTarget`: `.url` (role postgres, not a superuser), `.superuser_url`
                      (supabase_admin), `.cluster`.
    audited_db        empty_db plus public.scheduled_jobs and public.job_executions, empty and owned by
                      postgres: the runbook's starting point. Returns a `DbTarget`.
    supabase_like     The same as audited_db (its `.url` already connects as the non-superuser
                      `postgres` with the grants hosted Supabase gives it).
    superuser_target  The same state as audited_db, but `.url` connects as the superuser.
    vanilla_db        vanilla_cluster reset to empty; `.url` and `.superuser_url` are both `postgres`.
    pg                An autocommit psycopg connection as the superuser to the clean `postgres`
                      database (reset first), closed after the test. For setup and inspection.

Set LOCALDB_KEEP=1 to keep the session's cluster directory (server log, worker log) for debugging.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from localdb import Cluster, LocalDbError, create_app_tables

# Sessions the reset must not kill: the worker (a client backend too) and the reset's own.
_WORKER_APP_PATTERN = "pg_net%worker"
# Schemas recreated (not dropped) when dirty, because the cluster is made with them.
_RECREATED_SCHEMAS = ("public", "extensions")


@dataclass(frozen=True)
class DbTarget:
    """Where a test points the code under test."""

    url: str
    superuser_url: str
    cluster: Cluster


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster(base: Path, profile: str) -> Cluster:
    """Create and start a cluster under `base`, or fail the test session with one clear line."""
    cluster = Cluster(base / profile, port=free_port(), profile=profile)
    try:
        cluster.up()
    except LocalDbError as exc:
        pytest.fail(f"could not start the local {profile} cluster: {exc}", pytrace=False)
    return cluster


@dataclass
class Baseline:
    """What the database held right after `up()`, so a reset can return to exactly that."""

    schemas: set[str]
    extensions: set[str]
    schema_grants: dict[str, list[sql.Composable]] = field(default_factory=dict)


class Resetter:
    """Puts a cluster's `postgres` database back to its just-created state, over one connection."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._conn: psycopg.Connection | None = None
        self.baseline = self._snapshot()

    def connection(self) -> psycopg.Connection:
        # A test may have restarted the server; reconnect instead of failing every later test.
        if self._conn is not None and not self._conn.closed:
            try:
                self._conn.execute("SELECT 1")
                return self._conn
            except psycopg.OperationalError:
                self._conn.close()
        self._conn = psycopg.connect(self.cluster.superuser_url(), autocommit=True,
                                     application_name="fix_db reset")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def reset(self) -> None:
        # A pg_cron job can start between the sessions' termination and the DROPs (a trigger firing on the
        # minute) and take the same tables in the other order: the server breaks the deadlock by aborting
        # one side. Ours is then rolled back whole, so it is simply tried again.
        for attempt in range(3):
            try:
                return self._reset_once()
            except psycopg.errors.DeadlockDetected:
                if attempt == 2:
                    raise

    def _reset_once(self) -> None:
        conn = self.connection()
        _terminate_other_sessions(conn)
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '10s'")
            extensions, schemas, dirty = conn.execute(_STATE_QUERY, (list(_RECREATED_SCHEMAS),)).fetchone()
            extra_ext = [e for e in extensions if e not in self.baseline.extensions]
            if extra_ext:
                conn.execute(sql.SQL("DROP EXTENSION IF EXISTS {} CASCADE").format(
                    sql.SQL(", ").join(map(sql.Identifier, extra_ext))))
            extra_schemas = [s for s in schemas if s not in self.baseline.schemas]
            if extra_schemas:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.SQL(", ").join(map(sql.Identifier, extra_schemas))))
            for schema in dirty:
                if schema in self.baseline.schema_grants:
                    self._recreate_schema(conn, schema)

    def _recreate_schema(self, conn: psycopg.Connection, schema: str) -> None:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for statement in self.baseline.schema_grants[schema]:
            conn.execute(statement)

    def _snapshot(self) -> Baseline:
        conn = self.connection()
        extensions, schemas, _ = conn.execute(_STATE_QUERY, ([],)).fetchone()
        baseline = Baseline(set(schemas), set(extensions))
        for schema in _RECREATED_SCHEMAS:
            if schema in baseline.schemas:
                baseline.schema_grants[schema] = _schema_setup(conn, schema)
        return baseline


# One round trip: installed extensions, user schemas, and which of the recreated schemas hold anything
# (tables, views, sequences, functions, types); extensions registered there are dropped anyway.
_STATE_QUERY = """
SELECT
  array(SELECT extname::text FROM pg_extension ORDER BY 1),
  array(SELECT nspname::text FROM pg_namespace
        WHERE left(nspname, 3) <> 'pg_' AND nspname <> 'information_schema' ORDER BY 1),
  array(SELECT n.nspname::text FROM pg_namespace n
        WHERE n.nspname = ANY(%s::text[]) AND (
          EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid)
          OR EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = n.oid)
          OR EXISTS (SELECT 1 FROM pg_type t WHERE t.typnamespace = n.oid
                     AND t.typrelid = 0 AND t.typelem = 0)))
"""


def _schema_setup(conn: psycopg.Connection, schema: str) -> list[sql.Composable]:
    """Statements that give a freshly created `schema` its original owner, comment and grants."""
    owner, comment = conn.execute(
        "SELECT nspowner::regrole::text, obj_description(oid, 'pg_namespace') "
        "FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    ident = sql.Identifier(schema)
    statements: list[sql.Composable] = [
        sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident, sql.SQL(owner)),
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(ident),
    ]
    if comment is not None:
        statements.append(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(ident, sql.Literal(comment)))
    rows = conn.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, "
        "a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a "
        "WHERE n.nspname = %s AND a.grantee <> n.nspowner", (schema,)).fetchall()
    for grantee, privilege in rows:
        statements.append(sql.SQL("GRANT {} ON SCHEMA {} TO {}").format(
            sql.SQL(privilege), ident, sql.SQL(grantee)))
    return statements


def _terminate_other_sessions(conn: psycopg.Connection) -> None:
    # A transaction left open by an earlier test would otherwise block the DROPs below. No waiting
    # for the backends to exit: the DROPs wait for their locks, which go as the backends die.
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
        "AND coalesce(application_name, '') NOT LIKE %s",
        (_WORKER_APP_PATTERN,))


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def localdb_base() -> Iterator[Path]:
    """The session's directory for clusters; traversable by the postgres OS user."""
    base = Path(tempfile.mkdtemp(prefix="localdb-"))
    base.chmod(0o755)
    yield base
    # The clusters' own finalizers (registered later, so run earlier) have stopped them by now.
    if not os.environ.get("LOCALDB_KEEP"):
        shutil.rmtree(base, ignore_errors=True)


def _session_cluster(request: pytest.FixtureRequest, base: Path, profile: str) -> Cluster:
    cluster = start_cluster(base, profile)
    request.addfinalizer(cluster.down)
    return cluster


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, localdb_base: Path) -> Cluster:
    return _session_cluster(request, localdb_base, "supabase")


@pytest.fixture(scope="session")
def vanilla_cluster(request: pytest.FixtureRequest, localdb_base: Path) -> Cluster:
    return _session_cluster(request, localdb_base, "vanilla")


def _session_resetter(request: pytest.FixtureRequest, cluster: Cluster) -> Resetter:
    try:
        resetter = Resetter(cluster)
    except psycopg.Error as exc:
        pytest.fail(f"could not connect to the local cluster: {exc}", pytrace=False)
    request.addfinalizer(resetter.close)
    return resetter


@pytest.fixture(scope="session")
def _resetter(request: pytest.FixtureRequest, cluster: Cluster) -> Resetter:
    return _session_resetter(request, cluster)


@pytest.fixture(scope="session")
def _vanilla_resetter(request: pytest.FixtureRequest, vanilla_cluster: Cluster) -> Resetter:
    return _session_resetter(request, vanilla_cluster)


@pytest.fixture
def empty_db(_resetter: Resetter) -> DbTarget:
    _resetter.reset()
    cluster = _resetter.cluster
    return DbTarget(url=cluster.url(), superuser_url=cluster.superuser_url(), cluster=cluster)


@pytest.fixture
def audited_db(empty_db: DbTarget) -> DbTarget:
    with psycopg.connect(empty_db.url, autocommit=True) as conn:
        create_app_tables(conn)
    return empty_db


@pytest.fixture
def supabase_like(audited_db: DbTarget) -> DbTarget:
    return audited_db


@pytest.fixture
def superuser_target(audited_db: DbTarget) -> DbTarget:
    return DbTarget(url=audited_db.superuser_url, superuser_url=audited_db.superuser_url,
                    cluster=audited_db.cluster)


@pytest.fixture
def vanilla_db(_vanilla_resetter: Resetter) -> DbTarget:
    _vanilla_resetter.reset()
    cluster = _vanilla_resetter.cluster
    return DbTarget(url=cluster.url(), superuser_url=cluster.superuser_url(), cluster=cluster)


@pytest.fixture
def pg(empty_db: DbTarget) -> Iterator[psycopg.Connection]:
    # Depends on empty_db so the reset (which terminates other sessions) runs before we connect.
    conn = psycopg.connect(empty_db.superuser_url, autocommit=True)
    try:
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()
