"""pg_net stand-in, SQL surface: every docs/upstream.md fact about pg_net 0.20.4 that needs no HTTP (the
delivery worker has its own tests in test_networker.py).
"""

from __future__ import annotations

import psycopg
import pytest

from tests.standins.helpers import connect


@pytest.fixture
def net(supabase_like):
    """A connection as `postgres` after `CREATE EXTENSION pg_net WITH SCHEMA extensions`, as on Supabase."""
    with connect(supabase_like.url) as conn:
        conn.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
        yield conn


def _signature(conn, name: str) -> tuple[str, str]:
    return conn.execute(
        "SELECT pg_get_function_arguments(p.oid), pg_get_function_result(p.oid) FROM pg_proc p "
        "WHERE p.pronamespace = 'net'::regnamespace AND p.proname = %s", (name,)).fetchone()


def _queue(conn, call: str, params: tuple = ()) -> tuple:
    """Run an http_* call and read its queue row before commit (the worker takes committed rows)."""
    with conn.transaction(force_rollback=True):
        rid = conn.execute(call, params).fetchone()[0]
        return conn.execute("SELECT method, url, headers, body, timeout_milliseconds "
                            "FROM net.http_request_queue WHERE id = %s", (rid,)).fetchone()


def test_version_and_registration_schema(net):
    assert net.execute("SELECT extversion, extnamespace::regnamespace::text FROM pg_extension "
                       "WHERE extname = 'pg_net'").fetchone() == ("0.20.4", "extensions")


def test_objects_always_live_in_net(net):
    schemas = net.execute(
        "SELECT DISTINCT n.nspname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_net') "
        "AND d.deptype = 'e' AND d.classid = 'pg_class'::regclass").fetchall()
    assert schemas == [("net",)]


def test_without_schema_it_registers_in_first_schema_of_search_path(supabase_like):
    with connect(supabase_like.url) as conn:
        conn.execute("SET search_path = extensions, public")
        conn.execute("CREATE EXTENSION pg_net")
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                            "WHERE extname = 'pg_net'").fetchone() == ("extensions",)
        assert conn.execute("SELECT to_regproc('net.http_post') IS NOT NULL").fetchone() == (True,)


def test_not_relocatable(net):
    assert net.execute("SELECT extrelocatable FROM pg_extension WHERE extname = 'pg_net'"
                       ).fetchone() == (False,)


def test_http_post_signature(net):
    assert _signature(net, "http_post") == (
        "url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb, "
        "headers jsonb DEFAULT '{\"Content-Type\": \"application/json\"}'::jsonb, "
        "timeout_milliseconds integer DEFAULT 5000", "bigint")


def test_http_get_signature(net):
    assert _signature(net, "http_get") == (
        "url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, "
        "timeout_milliseconds integer DEFAULT 5000", "bigint")


def test_http_delete_signature(net):
    assert _signature(net, "http_delete") == (
        "url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, "
        "timeout_milliseconds integer DEFAULT 5000, body jsonb DEFAULT NULL::jsonb", "bigint")


def _columns(conn, table: str) -> list[tuple]:
    return conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (table,)).fetchall()


def test_request_queue_columns(net):
    assert _columns(net, "net.http_request_queue") == [
        ("id", "bigint", True, "nextval('net.http_request_queue_id_seq'::regclass)"),
        ("method", "net.http_method", True, None),
        ("url", "text", True, None),
        ("headers", "jsonb", False, None),
        ("body", "bytea", False, None),
        ("timeout_milliseconds", "integer", True, None),
    ]


def test_response_columns(net):
    assert _columns(net, "net._http_response") == [
        ("id", "bigint", False, None),
        ("status_code", "integer", False, None),
        ("content_type", "text", False, None),
        ("headers", "jsonb", False, None),
        ("content", "text", False, None),
        ("timed_out", "boolean", False, None),
        ("error_msg", "text", False, None),
        ("created", "timestamp with time zone", True, "now()"),
    ]


def test_both_tables_are_unlogged(net):
    assert net.execute(
        "SELECT relname, relpersistence FROM pg_class WHERE relnamespace = 'net'::regnamespace "
        "AND relkind = 'r' ORDER BY 1").fetchall() == [("_http_response", "u"),
                                                        ("http_request_queue", "u")]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "get"])
def test_http_method_domain_accepts(net, method):
    assert net.execute("SELECT %s::net.http_method", (method,)).fetchone() == (method,)


def test_http_method_domain_rejects_put(net):
    with pytest.raises(psycopg.errors.CheckViolation):
        net.execute("SELECT 'PUT'::net.http_method")


def test_http_post_queues_json_body_and_default_headers(net):
    assert _queue(net, """SELECT net.http_post('http://example.test/x', '{"a": 1}')""") == ("POST", "http://example.test/x",
                                 {"Content-Type": "application/json"}, b'{"a": 1}', 5000)


def test_http_post_default_body_is_empty_object(net):
    assert _queue(net, "SELECT net.http_post('http://example.test/')")[3] == b"{}"


def test_http_post_adds_content_type_when_missing(net):
    queued = _queue(
        net, """SELECT net.http_post('http://example.test/', headers => '{"x-cron-secret": "s"}')""")
    assert queued[2] == {"x-cron-secret": "s", "Content-Type": "application/json"}


def test_http_post_keeps_lowercase_json_content_type(net):
    queued = _queue(
        net, """SELECT net.http_post('http://example.test/', headers => '{"content-type": "application/json"}')""")
    assert queued[2] == {"content-type": "application/json"}


def test_http_post_rejects_other_content_type(net):
    with pytest.raises(psycopg.Error) as info:
        net.execute("""SELECT net.http_post('http://example.test/', headers => '{"Content-Type": "text/plain"}')""")
    assert info.value.diag.message_primary == 'Content-Type header must be "application/json"'


@pytest.mark.parametrize("url", ["example.test/x", "ftp://example.test/", "not a url"])
def test_malformed_url_is_bad_scheme(net, url):
    with pytest.raises(psycopg.Error) as info:
        net.execute("SELECT net.http_post(%s)", (url,))
    assert info.value.diag.message_primary == f'invalid URL "{url}": Bad scheme'


def test_params_are_appended_url_encoded(net):
    url = _queue(net, """SELECT net.http_get('https://example.test/p', '{"q": "a b&c", "n": "1"}')""")[1]
    assert url.startswith("https://example.test/p?")
    assert sorted(url.split("?", 1)[1].split("&")) == ["n=1", "q=a%20b%26c"]


def test_params_join_an_existing_query(net):
    assert _queue(net, """SELECT net.http_get('http://example.test/p?x=1', '{"y": "2"}')""")[1] == "http://example.test/p?x=1&y=2"


def test_http_get_and_delete_queue_their_method(net):
    assert _queue(net, "SELECT net.http_get('http://example.test/', timeout_milliseconds => 7)") == (
        "GET", "http://example.test/", {}, None, 7)
    assert _queue(net, """SELECT net.http_delete('http://example.test/', body => '{"k": 1}')""") == (
        "DELETE", "http://example.test/", {}, b'{"k": 1}', 5000)


def test_request_ids_come_from_a_sequence(net):
    first = net.execute("SELECT net.http_get('http://example.test/')").fetchone()[0]
    second = net.execute("SELECT net.http_get('http://example.test/')").fetchone()[0]
    assert second == first + 1


def test_postgres_gets_supabase_grants(net):
    assert net.execute("""
        SELECT has_schema_privilege('net', 'USAGE'),
               has_function_privilege('net.http_post(text, jsonb, jsonb, jsonb, integer)', 'EXECUTE'),
               has_function_privilege('net.http_get(text, jsonb, jsonb, integer)', 'EXECUTE'),
               has_table_privilege('net._http_response', 'SELECT'),
               has_table_privilege('net.http_request_queue', 'SELECT')
    """).fetchone() == (True, True, True, True, True)


def test_vanilla_superuser_registers_in_public(vanilla_db):
    with connect(vanilla_db.url) as conn:
        conn.execute("CREATE EXTENSION pg_net")
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                            "WHERE extname = 'pg_net'").fetchone() == ("public",)
