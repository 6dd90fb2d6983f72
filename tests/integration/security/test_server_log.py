"""Secrets never reach the PostgreSQL server log, even with log_statement = 'all'.

Secret values travel as COPY data into a transaction-local table, never as SQL text or bound
parameters, so neither statement logging nor the logging of a failing statement can record them. The
test turns full statement logging on, runs the secret scenarios (create, change, rotate, a failing
write) as the superuser and as the non-superuser `postgres`, and searches the server's log file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.integration.apply_support import (
    MARKERS,
    SECRETS_ENV,
    assert_ok,
    execute,
    reconcile,
)

ROTATED = "server-log-rotated-7f3a91"


@pytest.fixture
def statement_logging(audited_db) -> Iterator[None]:
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("ALTER SYSTEM SET log_min_error_statement = 'error'")  # the default, said explicitly
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10  # the postmaster signals backends; new connections read the new settings
    while True:
        with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
            if conn.execute("SHOW log_statement").fetchone() == ("all",):
                break
        assert time.monotonic() < deadline, "log_statement = 'all' did not take effect"
        time.sleep(0.05)
    try:
        yield
    finally:
        with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET log_statement")
            conn.execute("ALTER SYSTEM RESET log_min_error_statement")
            conn.execute("SELECT pg_reload_conf()")


def _log_since(audited_db, offset: int) -> str:
    with open(audited_db.cluster.log_file, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


@pytest.mark.parametrize("role", ["superuser", "postgres"])
def test_secret_values_never_reach_the_server_log(audited_db, statement_logging, role):
    url = audited_db.superuser_url if role == "superuser" else audited_db.url
    offset = audited_db.cluster.log_file.stat().st_size

    assert_ok(reconcile(url, "--apply"))  # creates the three secrets
    execute(audited_db.superuser_url,
            "SELECT vault.update_secret(id, 'changed-behind-our-back') FROM vault.secrets WHERE name = 'cron_secret'")
    assert_ok(reconcile(url, "--apply", env={**SECRETS_ENV, "CRON_SECRET": ROTATED}))  # an update

    # A failing secret write: the statement is logged with its text and parameters; neither holds a value.
    execute(audited_db.superuser_url, """
        CREATE FUNCTION public.refuse_secret() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'vault is read-only today'; END $$;
        CREATE TRIGGER refuse BEFORE UPDATE ON vault.secrets FOR EACH ROW EXECUTE FUNCTION public.refuse_secret();
    """)
    failed = reconcile(url, "--apply", env={**SECRETS_ENV, "CRON_SECRET": ROTATED + "-again"})
    assert failed.exit_code == 1 and "read-only today" in failed.stderr

    log = _log_since(audited_db, offset)
    assert "statement: " in log or "execute " in log, "statement logging was not active: the test proves nothing"
    assert "ERROR:  vault is read-only today" in log
    if role == "superuser":  # may turn logging off for its transaction, and does
        assert "vault.create_secret((SELECT" not in log and "vault.update_secret($1" not in log
    else:  # may not: the statements are logged, values staged by COPY are not
        assert "vault.create_secret((SELECT" in log and 'COPY "pg_temp"."reconciler_secret_values"' in log
    for value in (*MARKERS, ROTATED, ROTATED + "-again"):
        assert value not in log


def test_preflight_mentions_statement_logging(audited_db, statement_logging):
    result = reconcile(audited_db.url, "--dry-run", "--format", "json")
    assert result.exit_code == 0
    assert '"code": "statement_logging"' in result.stdout
