"""The database fixtures themselves (tests/fix_db.py): what each guarantees, and that the reset
between tests is complete and fast.
"""

from __future__ import annotations

import statistics
import time

import psycopg
import pytest

from tests.standins.helpers import connect

_DIRTY = """
CREATE EXTENSION pg_cron;
CREATE EXTENSION pg_net WITH SCHEMA extensions;
CREATE EXTENSION supabase_vault;
SELECT cron.schedule('j', '* * * * *', 'select 1');
SELECT vault.create_secret('v', 'n');
CREATE SCHEMA reconciler;
CREATE TABLE reconciler.managed (k text);
CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'select 1';
CREATE TYPE public.mood AS ENUM ('ok');
CREATE TABLE extensions.stray (x int);
"""


def _dirty(url: str) -> None:
    with connect(url) as conn:
        conn.execute(_DIRTY)


def _state(conn) -> tuple:
    return conn.execute("""
        SELECT array(SELECT extname::text FROM pg_extension ORDER BY 1),
               array(SELECT nspname::text FROM pg_namespace WHERE left(nspname, 3) <> 'pg_'
                     AND nspname <> 'information_schema' ORDER BY 1),
               (SELECT count(*) FROM pg_class WHERE relnamespace IN
                   ('public'::regnamespace, 'extensions'::regnamespace)),
               (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace),
               has_schema_privilege('postgres', 'public', 'CREATE'),
               has_schema_privilege('anon', 'public', 'USAGE'),
               (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'extensions')
    """).fetchone()


BASELINE = (["plpgsql"], ["extensions", "localdb", "public"], 0, 0, True, True, "postgres")


def test_empty_db_is_the_baseline(empty_db, pg):
    assert _state(pg) == BASELINE


def test_targets(empty_db, superuser_target):
    with connect(empty_db.url) as conn:
        assert conn.execute("SELECT current_user, current_setting('is_superuser')").fetchone() == (
            "postgres", "off")
    with connect(empty_db.superuser_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("supabase_admin",)
    assert superuser_target.url == empty_db.superuser_url


def test_supabase_like_is_audited_db(supabase_like, audited_db):
    assert supabase_like is audited_db


def test_reset_removes_everything_tests_make(empty_db, _resetter):
    _dirty(empty_db.url)
    _resetter.reset()
    with connect(empty_db.superuser_url) as conn:
        assert _state(conn) == BASELINE


def test_reset_is_not_blocked_by_a_dangling_transaction(audited_db, _resetter):
    dangling = psycopg.connect(audited_db.url)
    dangling.execute("LOCK TABLE scheduled_jobs IN ACCESS EXCLUSIVE MODE")
    _resetter.reset()
    with pytest.raises(psycopg.OperationalError):
        dangling.execute("SELECT 1")
    dangling.close()


def test_reset_spares_the_pg_net_worker(empty_db, _resetter):
    pid = empty_db.cluster.worker_pid()
    _resetter.reset()
    with connect(empty_db.superuser_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_stat_activity "
                            "WHERE application_name LIKE 'pg_net%%worker'").fetchone()[0] >= 1
    assert empty_db.cluster.worker_pid() == pid


def test_reset_is_fast(empty_db, _resetter):
    timings = []
    for _ in range(5):
        _dirty(empty_db.url)
        with connect(empty_db.url) as conn:
            conn.execute("CREATE TABLE public.scheduled_jobs (id int)")
        started = time.perf_counter()
        _resetter.reset()
        timings.append(time.perf_counter() - started)
    print(f"reset: median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms")
    assert statistics.median(timings) < 0.150


def test_pg_is_an_autocommit_superuser_connection(pg):
    assert pg.autocommit
    assert pg.execute("SELECT current_setting('is_superuser')").fetchone() == ("on",)
