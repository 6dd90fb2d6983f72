"""engine/deadline.py in-process: a wait on a silent connection ends at the deadline or when aborted, a
healthy one is untouched, and db.connect sets keepalives unless the URL sets its own."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from localdb.faultproxy import FaultProxy, after_auth
from reconciler.engine import db, deadline
from reconciler.errors import DatabaseUnavailable, SettingError
from tests.fix_db import DbTarget


def _proxied(target: DbTarget) -> tuple[FaultProxy, str]:
    proxy = FaultProxy(target.cluster.port)
    return proxy, proxy.url(database=target.cluster.database)


def test_a_silent_server_ends_the_wait_at_the_deadline(empty_db: DbTarget) -> None:
    proxy, url = _proxied(empty_db)
    with proxy:
        conn = db.connect(url, autocommit=True, answer_timeout=0.5)
        assert conn.execute("SELECT 1").fetchone() == (1,)  # a healthy wait is untouched
        fault = proxy.arm("silent", after_auth())
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match=r"no answer from the server within 0.5 s") as caught, \
                db.translated("reading"):
            conn.execute("SELECT 2")
        assert 0.4 < time.monotonic() - started < 3
        assert fault.fired.is_set() and caught.value.retryable
        conn.close()


def test_abort_waits_ends_a_wait_in_another_thread_at_once(empty_db: DbTarget) -> None:
    proxy, url = _proxied(empty_db)
    with proxy:
        conn = db.connect(url, autocommit=True, answer_timeout=60)
        proxy.arm("silent", after_auth())
        errors: list[BaseException] = []

        def stuck() -> None:
            try:
                conn.execute("SELECT 1")
            except psycopg.Error as e:
                errors.append(e)

        thread = threading.Thread(target=stuck)
        thread.start()
        time.sleep(0.3)
        started = time.monotonic()
        deadline.abort_waits()
        thread.join(5)
        assert not thread.is_alive() and time.monotonic() - started < 2
        assert isinstance(errors[0], deadline.NoAnswer) and "shutting down" in str(errors[0])
        conn.close()
    # not sticky: the next connection works
    with db.connect(empty_db.url, autocommit=True) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)


def test_keepalives_are_set_unless_the_url_sets_its_own(empty_db: DbTarget) -> None:
    proxy, url = _proxied(empty_db)
    with proxy:
        with db.connect(url, autocommit=True) as conn:
            options = {o.keyword.decode(): (o.val or b"").decode() for o in conn.pgconn.info}
            assert {k: options[k] for k in db.KEEPALIVES} == db.KEEPALIVES
        with db.connect(url + "&keepalives_idle=7", autocommit=True) as conn:
            options = {o.keyword.decode(): (o.val or b"").decode() for o in conn.pgconn.info}
            assert options["keepalives_idle"] == "7" and options["tcp_user_timeout"] == "60000"


def test_the_deadline_follows_the_servers_own_longest_wait() -> None:
    assert deadline.answer_timeout(None, None, environ={}) == 30 + deadline.GRACE
    assert deadline.answer_timeout(5, None, environ={}) == 5 + deadline.GRACE
    assert deadline.answer_timeout(30, 120, environ={}) == 120 + deadline.GRACE
    assert deadline.answer_timeout(30, 120, environ={deadline.ENV: "2.5"}) == 2.5
    with pytest.raises(SettingError, match="RECONCILER_ANSWER_TIMEOUT='nonsense'"):  # never silently the default
        deadline.answer_timeout(5, None, environ={deadline.ENV: "nonsense"})
