"""The pg_net stand-in's delivery worker (localdb/networker.py), without pg_cron: requests queued with
net.http_* and committed reach a local HTTP server, and net._http_response gets what pg_net writes.
"""

from __future__ import annotations

import time

import pytest

from tests.fix_db import free_port
from tests.standins.helpers import connect, wait_response


@pytest.fixture
def net(supabase_like):
    with connect(supabase_like.url) as conn:
        conn.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
        yield conn


def test_committed_post_is_delivered_with_its_body_and_headers(net, http_server):
    rid = net.execute(
        """SELECT net.http_post(%s, '{"triggered_by": "pg_cron"}', headers => '{"x-cron-secret": "s"}')""",
        (http_server.url + "/run",)).fetchone()[0]
    response = wait_response(net, rid)
    assert (response["status_code"], response["timed_out"], response["error_msg"]) == (200, False, None)
    assert response["content_type"] == "application/json"
    assert response["headers"]["X-Test"] == "yes"
    assert '"ok": true' in response["content"]
    [seen] = http_server.wait_seen()
    assert (seen.method, seen.path, seen.body) == ("POST", "/run", b'{"triggered_by": "pg_cron"}')
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["x-cron-secret"] == "s"
    assert seen.headers["User-Agent"] == "pg_net/0.20.4"


def test_get_with_params_and_delete(net, http_server):
    get_id = net.execute("""SELECT net.http_get(%s, '{"a": "1 2"}')""", (http_server.url + "/g",)
                         ).fetchone()[0]
    del_id = net.execute("SELECT net.http_delete(%s)", (http_server.url + "/d",)).fetchone()[0]
    assert wait_response(net, get_id)["status_code"] == 200
    assert wait_response(net, del_id)["status_code"] == 200
    assert sorted((s.method, s.path) for s in http_server.wait_seen(2)) == [
        ("DELETE", "/d"), ("GET", "/g?a=1%202")]


def test_queue_is_emptied(net, http_server):
    rid = net.execute("SELECT net.http_get(%s)", (http_server.url,)).fetchone()[0]
    wait_response(net, rid)
    assert net.execute("SELECT count(*) FROM net.http_request_queue").fetchone() == (0,)


def test_refused_connection(net):
    rid = net.execute("SELECT net.http_get(%s)", (f"http://127.0.0.1:{free_port()}/",)).fetchone()[0]
    response = wait_response(net, rid)
    assert (response["status_code"], response["timed_out"], response["error_msg"]) == (
        None, False, "Couldn't connect to server")
    assert response["headers"] is None and response["content"] is None


@pytest.mark.parametrize("value", ["line\nbreak-s3cr3t", "non-latin-\u2603-s3cr3t"], ids=["line-break", "non-latin-1"])
def test_a_header_that_cannot_be_sent_is_an_error_row_and_never_logged(supabase_like, net, http_server, value):
    rid = net.execute("SELECT net.http_post(%s, '{}', headers => jsonb_build_object('x-cron-secret', %s::text))",
                      (http_server.url + "/run", value)).fetchone()[0]
    response = wait_response(net, rid)
    assert (response["status_code"], response["error_msg"]) == (None, "A libcurl function was given a bad argument")
    assert "s3cr3t" not in supabase_like.cluster.worker_log_file.read_text(errors="replace")


def test_timeout(net, http_server):
    rid = net.execute("SELECT net.http_get(%s, timeout_milliseconds => 300)",
                      (http_server.url + "/slow?s=2",)).fetchone()[0]
    response = wait_response(net, rid)
    assert (response["status_code"], response["timed_out"]) == (None, True)
    assert response["error_msg"].startswith("Timeout of 300 ms reached. Total time: ")


def test_a_slow_request_does_not_hold_up_others(net, http_server):
    slow = net.execute("SELECT net.http_get(%s, timeout_milliseconds => 15000)",
                       (http_server.url + "/slow?s=6",)).fetchone()[0]
    fast = net.execute("SELECT net.http_get(%s)", (http_server.url + "/fast",)).fetchone()[0]
    started = time.monotonic()
    wait_response(net, fast)
    assert time.monotonic() - started < 4  # well before the slow one can answer, even on a loaded machine
    assert wait_response(net, slow)["status_code"] == 200


def test_rolled_back_request_is_never_sent(net, http_server):
    with net.transaction(force_rollback=True):
        net.execute("SELECT net.http_get(%s)", (http_server.url + "/never",))
    committed = net.execute("SELECT net.http_get(%s)", (http_server.url + "/sent",)).fetchone()[0]
    wait_response(net, committed)
    assert [s.path for s in http_server.seen] == ["/sent"]


def test_request_is_sent_only_after_commit(net, http_server):
    with net.transaction():
        rid = net.execute("SELECT net.http_get(%s)", (http_server.url + "/later",)).fetchone()[0]
        time.sleep(0.5)
        assert http_server.seen == []
    assert wait_response(net, rid)["status_code"] == 200


def test_survives_the_extension_being_dropped_and_recreated(pg, net, http_server):
    pg.execute("DROP EXTENSION pg_net")
    pg.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
    rid = pg.execute("SELECT net.http_get(%s)", (http_server.url,)).fetchone()[0]
    assert wait_response(pg, rid)["status_code"] == 200


def test_reconnects_and_expires_old_responses(pg, net):
    pg.execute("INSERT INTO net._http_response (id, status_code, created) "
               "VALUES (-1, 200, now() - interval '7 hours'), (-2, 200, now() - interval '5 hours')")
    # The worker expires old rows on every (re)connection, then once a minute.
    killed = pg.execute("SELECT count(pg_terminate_backend(pid, 2000)) FROM pg_stat_activity "
                        "WHERE application_name LIKE 'pg_net%%worker'").fetchone()[0]
    assert killed >= 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ids = [r[0] for r in pg.execute("SELECT id FROM net._http_response WHERE id < 0")]
        if ids == [-2]:
            break
        time.sleep(0.1)
    assert ids == [-2]


def test_worker_session_is_visible_as_pg_net_worker(net):
    net.execute("SELECT net.check_worker_is_up()")
    net.execute("SELECT net.wait_until_running()")
