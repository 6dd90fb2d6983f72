"""localdb itself: the cluster's lifecycle (idempotent up/down, warm start time, restart), its layout
and settings, the two profiles, the app tables, and the command line's output and one-line errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

import localdb.__main__ as cli
from localdb import Cluster, LocalDbError, discovery, pgtree
from tests.fix_db import free_port
from tests.standins.helpers import connect, wait_response

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lifecycle(localdb_base):
    """A private cluster these tests may stop and restart without disturbing the session's."""
    cluster = Cluster(localdb_base / "lifecycle", port=free_port())
    yield cluster
    cluster.down()


def test_up_down_are_idempotent_and_warm_start_is_fast(lifecycle):
    url = lifecycle.up()
    assert lifecycle.is_running() and lifecycle.worker_pid() is not None
    started = time.monotonic()
    assert lifecycle.up() == url
    assert time.monotonic() - started < 0.5
    lifecycle.down()
    lifecycle.down()
    assert not lifecycle.is_running() and lifecycle.worker_pid() is None
    started = time.monotonic()
    assert lifecycle.up() == url
    warm = time.monotonic() - started
    print(f"warm start: {warm:.3f} s")
    assert warm < 2.0
    with connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


def test_worker_reconnects_after_a_server_restart(lifecycle, http_server):
    lifecycle.up()
    with connect(lifecycle.superuser_url()) as conn:
        conn.execute("DROP EXTENSION IF EXISTS pg_net; CREATE EXTENSION pg_net")
    lifecycle.restart()
    with connect(lifecycle.url()) as conn:
        rid = conn.execute("SELECT net.http_get(%s)", (http_server.url,)).fetchone()[0]
        assert wait_response(conn, rid, timeout=15)["status_code"] == 200


def test_server_log_is_the_log_file(cluster):
    assert "database system is ready to accept connections" in cluster.log_file.read_text()


def test_settings(pg):
    settings = dict(pg.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('shared_preload_libraries', "
        "'cron.database_name', 'listen_addresses', 'max_connections', 'fsync', 'synchronous_commit', "
        "'full_page_writes', 'logging_collector', 'log_destination')").fetchall())
    assert settings == {
        "shared_preload_libraries": "pg_cron", "cron.database_name": "postgres",
        "listen_addresses": "127.0.0.1", "max_connections": "200", "fsync": "off",
        "synchronous_commit": "off", "full_page_writes": "off", "logging_collector": "off",
        "log_destination": "stderr"}


def test_cron_host_is_the_socket_dir(pg, cluster):
    assert pg.execute("SHOW cron.host").fetchone() == (str(cluster.sockdir),)
    assert pg.execute("SHOW unix_socket_directories").fetchone() == (str(cluster.sockdir),)


def test_tcp_on_loopback(cluster, empty_db):
    with psycopg.connect(cluster.tcp_url()) as conn:
        assert conn.execute("SELECT inet_server_addr()::text").fetchone() == ("127.0.0.1/32",)


def test_runs_from_its_private_tree(pg, cluster):
    tree = pgtree.Tree(cluster.root / "pgtree")
    assert (tree.bindir / "postgres").is_file() and not (tree.bindir / "postgres").is_symlink()
    assert tree.pkglibdir.is_dir() and not tree.pkglibdir.is_symlink()  # holds our supautils.so
    assert (tree.pkglibdir / "pg_cron.so").is_symlink()
    assert tree.extdir.is_dir() and not tree.extdir.is_symlink()
    assert "trusted" not in (tree.extdir / "pg_cron.control").read_text()  # untrusted, as on Supabase
    data_dir = pg.execute("SHOW data_directory").fetchone()[0]
    assert Path(data_dir).is_relative_to(cluster.root)
    available = {r[0]: r[1] for r in pg.execute(
        "SELECT name, default_version FROM pg_available_extensions "
        "WHERE name IN ('pg_cron', 'pg_net', 'supabase_vault', 'vault')")}
    assert available == {"pg_cron": "1.4-1", "pg_net": "0.20.4", "supabase_vault": "0.3.1"}


def test_supabase_profile_roles_and_schemas(pg):
    assert pg.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles "
                      "WHERE rolname = 'postgres'").fetchone() == (False, True, True, True)
    assert pg.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN "
                      "('anon', 'authenticated', 'service_role') ORDER BY 1").fetchall() == [
        ("anon", False), ("authenticated", False), ("service_role", False)]
    assert pg.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'supabase_admin'").fetchone() == (True,)
    assert pg.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'extensions'"
                      ).fetchone() == ("postgres",)
    assert pg.execute("SELECT has_database_privilege('postgres', 'postgres', 'CREATE'), "
                      "has_schema_privilege('postgres', 'public', 'CREATE')").fetchone() == (True, True)


def test_supabase_superuser(cluster):
    assert cluster.superuser == "supabase_admin"
    assert "supabase_admin@" in cluster.superuser_url()


def test_vanilla_profile(vanilla_db, vanilla_cluster):
    assert vanilla_cluster.superuser == "postgres"
    with connect(vanilla_db.url) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname IN "
                            "('anon', 'authenticated', 'service_role', 'supabase_admin')").fetchone() == (0,)
        assert conn.execute("SELECT to_regnamespace('extensions')").fetchone() == (None,)
        with pytest.raises(psycopg.Error) as info:
            conn.execute("CREATE EXTENSION pg_cron WITH SCHEMA extensions")
        assert info.value.diag.message_primary == 'schema "extensions" does not exist'
    control = (pgtree.Tree.open(vanilla_cluster.root / "pgtree").extdir / "pg_cron.control").read_text()
    assert "trusted" not in control


def test_app_tables(audited_db):
    with connect(audited_db.url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "ORDER BY table_name DESC, ordinal_position").fetchall()
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
                              ).fetchall()
        counts = conn.execute("SELECT (SELECT count(*) FROM scheduled_jobs), "
                              "(SELECT count(*) FROM job_executions)").fetchone()
        fk = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'"
                          ).fetchone()
    assert columns == [
        ("scheduled_jobs", "id", "uuid", "NO", "gen_random_uuid()"),
        ("scheduled_jobs", "job_name", "text", "YES", None),
        ("scheduled_jobs", "job_type", "text", "NO", None),
        ("scheduled_jobs", "schedule", "text", "NO", None),
        ("scheduled_jobs", "endpoint", "text", "YES", None),
        ("scheduled_jobs", "is_active", "boolean", "NO", "true"),
        ("scheduled_jobs", "description", "text", "YES", None),
        ("scheduled_jobs", "created_at", "timestamp with time zone", "NO", "now()"),
        ("scheduled_jobs", "updated_at", "timestamp with time zone", "NO", "now()"),
        ("scheduled_jobs", "last_run_at", "timestamp with time zone", "YES", None),
        ("scheduled_jobs", "next_run_at", "timestamp with time zone", "YES", None),
        ("job_executions", "id", "uuid", "NO", "gen_random_uuid()"),
        ("job_executions", "job_id", "uuid", "YES", None),
        ("job_executions", "started_at", "timestamp with time zone", "NO", "now()"),
        ("job_executions", "completed_at", "timestamp with time zone", "YES", None),
        ("job_executions", "status", "text", "NO", "'running'::text"),
        ("job_executions", "error_message", "text", "YES", None),
        ("job_executions", "result", "jsonb", "YES", None),
    ]
    assert owners == [("postgres",)]
    assert counts == (0, 0)
    assert fk == ("FOREIGN KEY (job_id) REFERENCES scheduled_jobs(id) ON DELETE SET NULL",)


def test_runbook_upsert_needs_the_unique_job_name(audited_db):
    with connect(audited_db.url) as conn:
        for _ in range(2):
            conn.execute("INSERT INTO scheduled_jobs (job_name, job_type, schedule) "
                         "VALUES ('a', 't', '* * * * *') ON CONFLICT (job_name) DO UPDATE "
                         "SET updated_at = now()")
        assert conn.execute("SELECT count(*) FROM scheduled_jobs").fetchone() == (1,)


# -- command line -----------------------------------------------------------------------------------


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localdb", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_cli_lifecycle(localdb_base):
    root, port = str(localdb_base / "cli"), str(free_port())
    up = _cli("up", "--root", root, "--port", port, "--with-app-tables")
    assert (up.returncode, up.stderr) == (0, "")
    url = up.stdout.strip()
    assert url.startswith("postgresql://postgres@/postgres?host=") and url.endswith(f"port={port}")
    try:
        assert _cli("up", "--root", root, "--port", port).stdout.strip() == url
        assert _cli("url", "--root", root, "--port", port).stdout.strip() == url
        # a new shell without (or with another) $LOCALDB_PORT: the running cluster's port, not the default
        for env in ({"LOCALDB_PORT": str(free_port())}, {"LOCALDB_PORT": ""}):
            assert _cli("url", "--root", root, env=env).stdout.strip() == url
            assert _cli("status", "--root", root, env=env).stdout.strip() == f"running on port {port}: {url}"
        assert "supabase_admin@" in _cli("url", "--superuser", "--root", root, "--port", port).stdout
        status = _cli("status", "--root", root, "--port", port)
        assert status.returncode == 0 and "running" in status.stdout
        with connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM scheduled_jobs").fetchone() == (0,)
    finally:
        down = _cli("down", "--root", root, "--port", port)
    assert down.returncode == 0
    assert _cli("down", "--root", root, "--port", port).returncode == 0
    status = _cli("status", "--root", root, "--port", port)
    assert status.returncode == 3 and "stopped" in status.stdout


def test_cli_port_from_environment(tmp_path):
    result = _cli("url", "--root", str(tmp_path), env={"LOCALDB_PORT": "54444"})
    assert result.stdout.strip().endswith("port=54444")
    bad = _cli("url", "--root", str(tmp_path), env={"LOCALDB_PORT": "x"})
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("cron", "package"), [(None, "postgresql-15"), (False, "postgresql-15-cron")],
                         ids=["no-server", "no-pg_cron"])
def test_missing_package_is_one_line_with_the_fix(monkeypatch, capsys, tmp_path, cron, package):
    root = tmp_path / "fs"
    if cron is not None:  # the server without pg_cron
        install = discovery.debian_install(root, "15")
        for name in ("postgres", "initdb", "pg_ctl"):
            install.bindir.mkdir(parents=True, exist_ok=True)
            (install.bindir / name).touch()
    monkeypatch.setattr(discovery, "FS_ROOT", root)
    monkeypatch.setattr(discovery, "apt_cache_depends", lambda: "postgresql\n  Depends: postgresql-15\n")
    monkeypatch.delenv(discovery.ENV_MAJOR, raising=False)
    with pytest.raises(SystemExit) as info:
        cli.main(["up", "--root", str(tmp_path / "c"), "--port", "5"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"apt-get install -y {package}" in err
    assert not (tmp_path / "c" / "data").exists()


def test_a_cluster_keeps_the_major_it_was_made_with(cluster, monkeypatch):
    made = cluster.made_with_major()
    assert made == pgtree.Tree.open(cluster.root / "pgtree").major == pgtree.system_install().major
    other = replace(pgtree.system_install(), major="99")
    monkeypatch.setenv(discovery.ENV_MAJOR, "99")
    with pytest.raises(LocalDbError, match="PostgreSQL 99 is not installed"):
        Cluster(cluster.root, port=cluster.port).up()
    with pytest.raises(LocalDbError, match=f"was made with PostgreSQL {made}, not 99; use --pg-major {made}"):
        Cluster(cluster.root, port=cluster.port, system=other).up()


def test_profile_mismatch(cluster):
    with pytest.raises(LocalDbError, match="was made with profile 'supabase'"):
        Cluster(cluster.root, port=cluster.port, profile="vanilla").up()


def test_socket_path_too_long(tmp_path):
    with pytest.raises(LocalDbError, match="longer than"):
        Cluster(tmp_path / ("x" * 120)).up()


def test_failed_creation_leaves_nothing_behind(monkeypatch, localdb_base):
    def broken(self, datadir):
        raise LocalDbError("simulated failure")

    monkeypatch.setattr(Cluster, "_write_config", broken)
    root = localdb_base / "broken"
    with pytest.raises(LocalDbError, match="simulated"):
        Cluster(root, port=free_port()).up()
    assert not [p.name for p in root.iterdir() if p.name.startswith("data")]


def test_cli_uses_the_profile_a_cluster_was_made_with(vanilla_cluster):
    result = _cli("url", "--superuser", "--root", str(vanilla_cluster.root),
                  "--port", str(vanilla_cluster.port))
    assert result.stdout.startswith("postgresql://postgres@/postgres?")
