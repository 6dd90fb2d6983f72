"""Helpers for the fleet tests: many target databases in the session's one cluster, and their manifest.

pg_cron lives in one database of a cluster (cron.database_name), so a fleet of databases in one cluster
declares the rest of the stack: pg_net, supabase_vault, the Vault secrets and the rows of
scheduled_jobs (`fleet_manifest`: scheduler.yaml without pg_cron and the trigger). Each database is a
copy of a template prepared once per session like a fresh Supabase database (localdb's bootstrap, the
database-local part) with the application's empty tables: CREATE DATABASE ... TEMPLATE is a file copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from localdb import Cluster, create_app_tables
from reconciler.fleet.target import Target, ValueSource
from tests.integration.apply_support import MANIFEST
from tests.integration.controller_support import Watcher

TEMPLATE = "fleet_template"
BOOTSTRAP = Path(__file__).resolve().parents[2] / "localdb" / "sql" / "supabase_bootstrap.sql"


def fleet_manifest(directory: Path, name: str = "scheduler.yaml") -> Path:
    """scheduler.yaml without what needs pg_cron (the extension, the trigger), written into `directory`."""
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    data["extensions"] = [e for e in data["extensions"] if e["name"] != "pg_cron"]
    data.pop("triggers", None)
    data.get("prune", {}).pop("triggers", None)
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _database_local_bootstrap() -> str:
    """localdb's bootstrap without the cluster-wide statements (the roles exist once per cluster)."""
    return "\n".join(line for line in BOOTSTRAP.read_text().splitlines()
                     if not line.startswith(("CREATE ROLE", "ALTER ROLE")))


def ensure_template(cluster: Cluster) -> None:
    with psycopg.connect(cluster.superuser_url(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER postgres TEMPLATE template0").format(sql.Identifier(TEMPLATE)))
    with psycopg.connect(cluster.url(cluster.superuser, TEMPLATE), autocommit=True) as conn:
        conn.execute(_database_local_bootstrap())  # type: ignore[arg-type]
    with psycopg.connect(cluster.url("postgres", TEMPLATE), autocommit=True) as conn:
        create_app_tables(conn)


def create_databases(cluster: Cluster, names: Sequence[str]) -> dict[str, str]:
    """Fresh target databases copied from the template: {name: URL as the non-superuser postgres}."""
    ensure_template(cluster)
    with psycopg.connect(cluster.superuser_url(), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER postgres TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)))
    return {name: cluster.url("postgres", name) for name in names}


def drop_databases(cluster: Cluster, names: Sequence[str]) -> None:
    with psycopg.connect(cluster.superuser_url(), autocommit=True) as conn:
        for name in names:
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def databases(cluster: Cluster, names: Sequence[str]) -> Iterator[dict[str, str]]:
    urls = create_databases(cluster, names)
    try:
        yield urls
    finally:
        drop_databases(cluster, names)


def url_variable(name: str) -> str:
    return "FLEET_URL_" + name.upper().replace("-", "_")


def env_targets(names: Sequence[str]) -> list[Target]:
    """One target per name, its URL from the variable `url_variable(name)`."""
    return [Target(name, ValueSource(from_env=url_variable(name)), origin="test") for name in names]


def unreachable_url(port: int) -> str:
    """A URL nobody answers: a TCP port on loopback with no server (refused at once)."""
    return f"postgresql://postgres:dead-target-password-7c1d@127.0.0.1:{port}/postgres"


def targets_yaml(names: Sequence[str]) -> str:
    """A targets file declaring `names`, each URL from `url_variable(name)`."""
    return "version: 1\ntargets:\n" + "".join(
        f"  - name: {name}\n    database_url: {{from_env: {url_variable(name)}}}\n" for name in names)


def fleet_watcher(directory: Path, targets: Path, *args: str, env: dict[str, str], name: str,
                  interval: str = "1s") -> Watcher:
    """`reconcile --watch --targets FILE -f <the fleet manifest> ARGS` as its own process."""
    return Watcher("postgresql://unused@/unused", directory / "scheduler.yaml", "--targets", str(targets), *args,
                   interval=interval, workdir=directory, name=name, env=env)


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A URL whose server accepts the TCP connection and never answers: only a connect timeout ends it."""
    import socket

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"postgresql://postgres:dead-target-password-7c1d@127.0.0.1:{server.getsockname()[1]}/postgres"
    finally:
        server.close()
