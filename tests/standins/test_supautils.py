"""localdb's supautils stand-in (issue 13): each fact hosted Supabase shows `postgres` about extensions.

As the non-superuser `postgres` on the supabase profile: the three control files are untrusted; the
`supautils.*` settings answer as on Supabase (SHOW and pg_settings); CREATE EXTENSION of pg_cron,
pg_net and supabase_vault succeeds and the extension belongs to supabase_admin; pg_cron `WITH SCHEMA
extensions` lands in pg_catalog; the after-create grants follow; an extension that is neither
privileged nor trusted is refused; privileged extensions may be dropped; and the library is built
by localdb itself (a missing PGXS is one clear line).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from localdb import LocalDbError, pgtree
from localdb.cluster import PRIVILEGED_EXTENSIONS
from tests.standins.helpers import connect

THREE = ("pg_cron", "pg_net", "supabase_vault")


def test_control_files_are_untrusted(empty_db):
    with connect(empty_db.url) as conn:
        rows = conn.execute("SELECT DISTINCT name, superuser, trusted FROM pg_available_extension_versions "
                            "WHERE name = ANY(%s) ORDER BY 1", (list(THREE),)).fetchall()
    assert rows == [(name, True, False) for name in THREE]


def test_supautils_settings_answer_as_on_supabase(empty_db):
    with connect(empty_db.url) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in (
            "supautils.privileged_extensions", "supautils.privileged_role", "supautils.superuser",
            "supautils.extensions_parameter_overrides")}
        listed = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name LIKE 'supautils.%'").fetchall())
    assert shown == {"supautils.privileged_extensions": PRIVILEGED_EXTENSIONS, "supautils.privileged_role": "postgres",
                     "supautils.superuser": "supabase_admin",
                     "supautils.extensions_parameter_overrides": '{"pg_cron":{"schema":"pg_catalog"}}'}
    privileged = {name.strip() for name in shown["supautils.privileged_extensions"].split(",")}
    assert set(THREE) <= privileged and "file_fdw" not in privileged
    assert {k: v for k, v in listed.items() if k in shown} == {k: v for k, v in shown.items() if k in listed}
    assert "supautils.privileged_extensions_custom_scripts_path" in listed
    with connect(empty_db.superuser_url) as conn:  # loaded per session, as on Supabase
        assert conn.execute("SHOW session_preload_libraries").fetchone() == ("supautils",)


@pytest.mark.parametrize("name", THREE)
def test_postgres_creates_a_privileged_extension_owned_by_supabase_admin(empty_db, name):
    with connect(empty_db.url) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        conn.execute(f"CREATE EXTENSION {name}")
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)  # the caller's identity is back
        owner = conn.execute("SELECT extowner::regrole::text FROM pg_extension WHERE extname = %s",
                             (name,)).fetchone()
    assert owner == ("supabase_admin",)


def test_pg_cron_with_schema_extensions_lands_in_pg_catalog(empty_db):
    with connect(empty_db.url) as conn:
        conn.execute("CREATE EXTENSION pg_cron WITH SCHEMA extensions")
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_cron'"
                            ).fetchone() == ("pg_catalog",)


def test_pg_cron_without_schema_lands_in_pg_catalog(empty_db):
    """Debian's 1.4 control file names no schema; the override still decides, as upstream 1.6's would."""
    with connect(empty_db.url) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_cron'"
                            ).fetchone() == ("pg_catalog",)


def test_pg_net_keeps_the_schema_it_is_given(empty_db):
    with connect(empty_db.url) as conn:
        conn.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_net'"
                            ).fetchone() == ("extensions",)


def test_after_create_grants_pg_cron(empty_db):
    with connect(empty_db.url) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        jobid = conn.execute("SELECT cron.schedule('t13', '* * * * *', 'SELECT 1')").fetchone()[0]
        conn.execute("SELECT cron.alter_job(%s, active := false)", (jobid,))
        conn.execute("SELECT cron.schedule_in_database('t13b', '* * * * *', 'SELECT 1', 'postgres')")
        assert conn.execute("SELECT count(*) FROM cron.job").fetchone() == (2,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table job"):
            conn.execute("UPDATE cron.job SET active = true")
        conn.rollback()
        conn.execute("SELECT cron.unschedule('t13')")


def test_after_create_grants_vault(empty_db):
    with connect(empty_db.url) as conn:
        conn.execute("CREATE EXTENSION supabase_vault")
        conn.execute("SELECT vault.create_secret('v', 't13')")
        assert conn.execute("SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 't13'"
                            ).fetchone() == ("v",)
        conn.execute("DELETE FROM vault.secrets WHERE name = 't13'")
        assert conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'vault'"
                            ).fetchone() == ("supabase_admin",)


def test_after_create_grants_pg_net(empty_db):
    with connect(empty_db.url) as conn:
        conn.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
        assert conn.execute("SELECT has_function_privilege('net.http_get(text, jsonb, jsonb, integer)', 'EXECUTE'), "
                            "has_table_privilege('net._http_response', 'SELECT')").fetchone() == (True, True)


def test_unprivileged_untrusted_extension_is_refused(empty_db):
    with connect(empty_db.url) as conn:
        assert conn.execute("SELECT trusted FROM pg_available_extension_versions WHERE name = 'file_fdw'"
                            ).fetchone() == (False,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match='permission denied to create extension "file_fdw"'):
            conn.execute("CREATE EXTENSION file_fdw")


def test_postgres_drops_a_privileged_extension(empty_db):
    with connect(empty_db.url) as conn:
        conn.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
        conn.execute("DROP EXTENSION pg_net")
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_net'").fetchone() == (0,)


def test_superuser_created_extension_is_owned_by_supautils_superuser(empty_db):
    with connect(empty_db.superuser_url) as conn:
        conn.execute("CREATE EXTENSION pg_cron WITH SCHEMA extensions")
        assert conn.execute("SELECT extowner::regrole::text, extnamespace::regnamespace::text FROM pg_extension "
                            "WHERE extname = 'pg_cron'").fetchone() == ("supabase_admin", "pg_catalog")


def test_library_is_built_into_the_private_tree(cluster):
    tree = pgtree.Tree.open(cluster.root / "pgtree")
    library = tree.pkglibdir / "supautils.so"
    assert library.is_file() and not library.is_symlink()
    assert tree.pkglibdir.is_dir() and not tree.pkglibdir.is_symlink()
    assert (tree.pkglibdir / "pg_cron.so").resolve() == (pgtree.system_install().pkglibdir / "pg_cron.so").resolve()
    assert (cluster.root / "pgtree" / "build" / "supautils" / "source.sha256").is_file()


def test_missing_pgxs_is_one_line_naming_the_package(tmp_path):
    system = replace(pgtree.system_install(), pgxs=Path("/nonexistent/pgxs.mk"))
    with pytest.raises(LocalDbError) as info:
        pgtree.ensure_tree(tmp_path / "pgtree", "supabase", system)
    message = str(info.value)
    assert f"postgresql-server-dev-{system.major}" in message and "\n" not in message
    assert not (tmp_path / "pgtree").exists()  # checked before anything is built
    pgtree.ensure_tree(tmp_path / "vanilla", "vanilla", system)  # plain PostgreSQL needs no PGXS
