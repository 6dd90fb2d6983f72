"""pg_cron as the project meets it: Debian's real 1.4 build in the supabase profile, called as the
non-superuser `postgres` with the grants hosted Supabase gives it. Checks the docs/upstream.md facts the
reconciler builds on (error texts, upsert semantics, privileges).
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors, sql

from tests.standins.helpers import connect


@pytest.fixture
def cron(supabase_like):
    """A connection as `postgres` after `CREATE EXTENSION pg_cron` by postgres itself."""
    with connect(supabase_like.url) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        yield conn


def _error(conn, query: str, params: tuple = ()) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(query, params)
    return info.value


def test_version(cron):
    assert cron.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'"
                        ).fetchone() == ("1.4-1",)


def test_any_schema_works_on_1_4(vanilla_db):
    """Without supautils (whose override puts it in pg_catalog: tests/standins/test_supautils.py)."""
    with connect(vanilla_db.url) as conn:
        conn.execute("CREATE SCHEMA extensions")
        conn.execute("CREATE EXTENSION pg_cron WITH SCHEMA extensions")
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                            "WHERE extname = 'pg_cron'").fetchone() == ("extensions",)


def test_extension_belongs_to_the_platform_superuser(cron):
    assert cron.execute("SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'pg_cron'"
                        ).fetchone() == ("supabase_admin",)


def test_unschedule_missing_name_raises(cron):
    exc = _error(cron, "SELECT cron.unschedule('missing')")
    assert exc.diag.message_primary == "could not find valid entry for job 'missing'"


def test_alter_job_missing_id(cron):
    exc = _error(cron, "SELECT cron.alter_job(999999, schedule => '* * * * *')")
    assert exc.diag.message_primary == "Job 999999 does not exist or you don't own it"


def test_alter_job_without_attributes(cron):
    jobid = cron.execute("SELECT cron.schedule('j', '* * * * *', 'select 1')").fetchone()[0]
    exc = _error(cron, "SELECT cron.alter_job(%s)", (jobid,))
    assert exc.diag.message_primary == "no updates specified"


def test_schedule_upserts_by_name_keeping_jobid_and_active(cron):
    jobid = cron.execute("SELECT cron.schedule('j', '* * * * *', 'select 1')").fetchone()[0]
    cron.execute("SELECT cron.alter_job(%s, active => false)", (jobid,))
    again = cron.execute("SELECT cron.schedule('j', '*/5 * * * *', 'select 2')").fetchone()[0]
    assert again == jobid
    assert cron.execute("SELECT jobid, schedule, command, active FROM cron.job").fetchall() == [
        (jobid, "*/5 * * * *", "select 2", False)]


def test_unnamed_schedule_always_inserts(cron):
    first = cron.execute("SELECT cron.schedule('* * * * *', 'select 1')").fetchone()[0]
    second = cron.execute("SELECT cron.schedule('* * * * *', 'select 1')").fetchone()[0]
    assert first != second


def test_postgres_can_schedule_alter_and_unschedule(cron):
    jobid = cron.execute("SELECT cron.schedule('j', '* * * * *', 'select 1')").fetchone()[0]
    cron.execute("SELECT cron.alter_job(%s, schedule => '0 * * * *', active => false)", (jobid,))
    assert cron.execute("SELECT schedule, active, username FROM cron.job").fetchone() == (
        "0 * * * *", False, "postgres")
    assert cron.execute("SELECT cron.unschedule(%s::bigint)", (jobid,)).fetchone() == (True,)
    cron.execute("SELECT cron.schedule('k', '* * * * *', 'select 1')")
    assert cron.execute("SELECT cron.unschedule('k')").fetchone() == (True,)
    assert cron.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)


def test_schedule_in_database_works_for_postgres(cron):
    jobid = cron.execute("SELECT cron.schedule_in_database('j', '* * * * *', 'select 1', 'postgres')"
                         ).fetchone()[0]
    assert cron.execute("SELECT database FROM cron.job WHERE jobid = %s", (jobid,)).fetchone() == (
        "postgres",)


@pytest.mark.parametrize("statement", [
    "UPDATE cron.job SET active = true",
    "DELETE FROM cron.job",
    "INSERT INTO cron.job (schedule, command) VALUES ('* * * * *', 'select 1')",
])
def test_postgres_cannot_change_cron_job_directly(cron, statement):
    cron.execute("SELECT cron.schedule('j', '* * * * *', 'select 1')")
    with pytest.raises(errors.InsufficientPrivilege) as info:
        cron.execute(statement)
    assert info.value.diag.message_primary == "permission denied for table job"


def test_postgres_may_read_job_and_run_details(cron):
    assert cron.execute("SELECT has_table_privilege('cron.job', 'SELECT'), "
                        "has_table_privilege('cron.job_run_details', 'SELECT')").fetchone() == (True, True)


@pytest.mark.parametrize("function", [
    "cron.alter_job(bigint, text, text, text, text, boolean)",
    "cron.schedule_in_database(text, text, text, text, text, boolean)",
])
def test_execute_revoked_from_public(pg, cron, function):
    assert pg.execute(
        "SELECT EXISTS (SELECT 1 FROM aclexplode((SELECT proacl FROM pg_proc WHERE oid = %s::regprocedure)) a "
        "WHERE a.grantee = 0)", (function,)).fetchone() == (False,)


def test_jobs_are_scoped_to_their_owner(pg, cron):
    cron.execute("SELECT cron.schedule('mine', '* * * * *', 'select 1')")
    pg.execute("SELECT cron.schedule('admins', '* * * * *', 'select 1')")
    assert cron.execute("SELECT jobname FROM cron.job").fetchall() == [("mine",)]
    exc = _error(cron, "SELECT cron.unschedule('admins')")
    assert exc.diag.message_primary == "could not find valid entry for job 'admins'"


def test_jobname_is_a_name_on_1_4(cron):
    assert cron.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = 'cron.job'::regclass AND attname = 'jobname'").fetchone() == ("name",)
    long_name = "x" * 70
    cron.execute("SELECT cron.schedule(%s, '* * * * *', 'select 1')", (long_name,))
    assert cron.execute("SELECT jobname FROM cron.job").fetchone() == ("x" * 63,)


@pytest.mark.parametrize("schedule", ["1/20 * * * *", "5 seconds", "* * * *", "", "0 0 * * 1x",
                                      "0 0 $ * *", "@every 5m", "60 * * * *"])
def test_invalid_schedules(cron, schedule):
    exc = _error(cron, "SELECT cron.schedule('j', %s, 'select 1')", (schedule,))
    assert exc.diag.message_primary == f"invalid schedule: {schedule}"


@pytest.mark.parametrize("schedule", ["*/60 * * * *", "007 * * * *", "0 0 * jan SUN", "16-0 * * * *",
                                      "* * * * * *", "@reboot now", "@hourly"])
def test_schedules_accepted_by_1_4(cron, schedule):
    cron.execute("SELECT cron.schedule('j', %s, 'select 1')", (schedule,))


def test_only_in_the_cron_database(pg):
    pg.execute("DROP DATABASE IF EXISTS cron_elsewhere")
    pg.execute("CREATE DATABASE cron_elsewhere")
    try:
        url = pg.info.dsn.replace("dbname=postgres", "dbname=cron_elsewhere")
        with connect(url) as other:
            exc = _error(other, "CREATE EXTENSION pg_cron")
        assert exc.diag.message_primary == "can only create extension in database postgres"
    finally:
        pg.execute(sql.SQL("DROP DATABASE cron_elsewhere WITH (FORCE)"))


def test_drop_extension_drops_every_job(pg, cron):
    cron.execute("SELECT cron.schedule('j', '* * * * *', 'select 1')")
    cron.execute("DROP EXTENSION pg_cron")
    cron.execute("CREATE EXTENSION pg_cron")
    assert cron.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
