"""No secret value and no database password ever reaches output, logs, history or cron.job.command.

Every secret source holds a unique marker; every golden case is run again with those values (plans as
text, JSON and Markdown, the apply, the re-plan, the setup's apply) and every byte users or operators
could see is searched: stdout, stderr, the structlog events (structlog.testing.capture_logs), the rows
of reconciler.history and cron.job.command. Failing applies (refused, and failing after the values were
sent as parameters) and a database URL with a password (including unreachable and malformed URLs) too.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from localdb import create_app_tables
from tests.fix_db import DbTarget, free_port
from tests.integration.golden_support import (
    CASE_NAMES,
    SECRET_ENV,
    Run,
    invoke,
    load_case,
    run_case,
    snapshot,
    superuser_conn,
)

MARKER = f"leak-marker-{uuid.uuid4()}"
#: Every source a unique value, each containing MARKER.
LEAK_ENV = {var: f"{MARKER}-{var.lower()}" for var in SECRET_ENV}


def database_texts(target: DbTarget) -> dict[str, str]:
    """reconciler.history (every column of every row) and cron.job.command, as text."""
    out = {}
    with superuser_conn(target) as conn:
        for relation, query in (("reconciler.history", "SELECT row_to_json(h)::text FROM reconciler.history h"),
                                ("cron.job", "SELECT command FROM cron.job")):
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
            if exists and exists[0]:
                out[relation] = "\n".join(str(r[0]) for r in conn.execute(query))
    return out


def assert_no_marker(marker: str, runs: Iterable[Run], logs_: list[Mapping[str, Any]] | None = None,
                     target: DbTarget | None = None, files: Iterable[Path] = ()) -> None:
    seen = 0
    for run in runs:
        seen += 1
        assert marker not in run.stdout, f"leaked on stdout of {run}"
        assert marker not in run.stderr, f"leaked on stderr of {run}"
        assert "Traceback" not in run.stderr, str(run)
    assert seen, "nothing was checked"
    if logs_ is not None:
        assert marker not in repr(logs_), f"leaked in a log event: {logs_}"
    if target is not None:
        for where, text in database_texts(target).items():
            assert marker not in text, f"leaked in {where}"
    for path in files:
        assert marker not in path.read_text(), f"leaked in {path}"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden_case_leaks_no_secret(name: str, empty_db: DbTarget,
                                     captured: list[Mapping[str, Any]]) -> None:
    runs = run_case(load_case(name), empty_db, LEAK_ENV, formats=("text", "json", "markdown"))
    assert_no_marker(MARKER, runs.all(), captured, empty_db)


# -- failing applies ---------------------------------------------------------------------------------

_FAILURES = {
    # Refused by preflight before anything runs: the role may not write secrets.
    "create_secret_revoked": ("audited", "REVOKE EXECUTE ON FUNCTION vault.create_secret FROM postgres",
                              "error: refusing to apply: postgres may not call vault.create_secret"),
    # Fails inside the transaction after the secret values were sent as parameters.
    "vault_write_raises": ("audited",
                           "CREATE FUNCTION public.no_writes() RETURNS trigger LANGUAGE plpgsql AS"
                           " $$BEGIN RAISE EXCEPTION 'vault is read-only today'; END$$;"
                           " CREATE TRIGGER no_writes BEFORE INSERT OR UPDATE ON vault.secrets"
                           " FOR EACH ROW EXECUTE FUNCTION public.no_writes()",
                           "error: create secret project_url failed: vault is read-only today"),
    # A later step fails after a secret update (with its value) already ran: everything rolls back.
    "cron_schedule_revoked": ("applied",
                              "SELECT vault.update_secret(id, 'changed-by-hand') FROM vault.secrets"
                              " WHERE name = 'cron_secret';"
                              " SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'master-scheduler';"
                              " REVOKE EXECUTE ON FUNCTION cron.schedule(text, text, text) FROM PUBLIC, postgres",
                              "error: schedule trigger master-scheduler failed: permission denied for function"),
}


@pytest.mark.parametrize("failure", sorted(_FAILURES))
def test_failing_apply_leaks_no_secret(failure: str, empty_db: DbTarget, captured: list[Mapping[str, Any]]) -> None:
    setup, live_sql, message = _FAILURES[failure]
    runs = []
    with psycopg.connect(empty_db.url, autocommit=True) as conn:
        create_app_tables(conn)
    if setup == "applied":
        runs.append(invoke(["--apply"], empty_db.url, LEAK_ENV))
        assert runs[-1].exit_code == 0, str(runs[-1])
    else:
        with superuser_conn(empty_db) as conn:  # the vault must exist to revoke or guard it
            conn.execute("CREATE EXTENSION supabase_vault")
    with superuser_conn(empty_db) as conn:
        conn.execute(live_sql)  # type: ignore[arg-type]
    before = snapshot(empty_db)
    for fmt in ("text", "json", "markdown"):
        runs.append(invoke(["--dry-run", "--format", fmt], empty_db.url, LEAK_ENV))
        assert runs[-1].exit_code == 0, str(runs[-1])
    failed = invoke(["--apply"], empty_db.url, LEAK_ENV)
    runs.append(failed)
    assert failed.exit_code == 1, str(failed)
    assert len(failed.stderr.splitlines()) == 1 and failed.stderr.startswith(message), str(failed)
    assert snapshot(empty_db) == before, "the failed apply was not rolled back"
    assert_no_marker(MARKER, runs, captured, empty_db)


# -- a database URL with a password ------------------------------------------------------------------


@pytest.fixture
def password_role(empty_db: DbTarget) -> Iterator[tuple[str, str]]:
    """A login role with a password and the grants of `postgres`; dropped afterwards (roles outlive resets)."""
    name = f"leak_pw_{uuid.uuid4().hex[:12]}"
    password = f"pw-marker-{uuid.uuid4()}"
    with superuser_conn(empty_db) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT postgres TO {}").format(sql.Identifier(name)))
    try:
        yield name, password
    finally:
        with superuser_conn(empty_db) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_database_password_never_echoed(audited_db: DbTarget, password_role: tuple[str, str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    role, password = password_role
    port = audited_db.cluster.port
    url = f"postgresql://{role}:{password}@127.0.0.1:{port}/postgres"
    runs: list[Run] = []
    # The password must not survive even where the command is recorded (reconciler.history).
    argv = ["--apply", "--database-url", url, "--log-level", "debug"]
    monkeypatch.setattr(sys, "argv", ["reconcile", *argv])
    for fmt in ("text", "json", "markdown"):
        runs.append(invoke(["--dry-run", "--format", fmt, "--database-url", url], None, LEAK_ENV))
        assert runs[-1].exit_code == 0, str(runs[-1])
    saved = tmp_path / "plan.json"
    runs.append(invoke(["--dry-run", "--out", str(saved)], url, LEAK_ENV))
    runs.append(invoke(argv, None, LEAK_ENV))  # real structlog output on stderr, at debug level
    assert runs[-1].exit_code == 0, str(runs[-1])
    assert "apply_finished" in runs[-1].stderr
    runs.append(invoke(["history", "--database-url", url], None))
    runs.append(invoke(["history", "--show", "1"], url))
    # History records the mode and options only: never the URL (with or without its password).
    assert runs[-1].exit_code == 0 and "reconcile --apply\n" in runs[-1].stdout, str(runs[-1])
    assert "postgresql://" not in runs[-1].stdout
    with superuser_conn(audited_db) as conn:
        owner = conn.execute("SELECT username FROM cron.job WHERE jobname = 'master-scheduler'").fetchone()
    assert owner == (role,), "the apply did not run as the password role"
    # Unreachable server (nothing listens on the port) and malformed URLs: one line, no password.
    dead = f"postgresql://{role}:{password}@127.0.0.1:{free_port()}/postgres"
    for bad in (dead, url + "?no_such_option=1", f"postgresql://{role}:{password}@127.0.0.1:notaport/postgres"):
        runs.append(invoke(["--dry-run"], bad, LEAK_ENV))
        assert runs[-1].exit_code == 1 and len(runs[-1].stderr.splitlines()) == 1, str(runs[-1])
    assert "127.0.0.1" in runs[-3].stderr and "Connection refused" in runs[-3].stderr, str(runs[-3])
    assert_no_marker(password, runs, None, audited_db, files=[saved])
    assert_no_marker(MARKER, runs, None, audited_db, files=[saved])


def test_applied_stack_leaks_no_secret_with_real_logging(audited_db: DbTarget) -> None:
    """The structlog output as configured for users (JSON on a non-TTY stderr), at debug level."""
    runs = [invoke(["--apply", "--log-level", "debug"], audited_db.url, LEAK_ENV)]
    assert runs[0].exit_code == 0 and '"event": "apply_finished"' in runs[0].stderr, str(runs[0])
    runs.append(invoke(["--dry-run", "-v", "--log-level", "debug", "--detailed-exitcode"], audited_db.url, LEAK_ENV))
    assert runs[-1].exit_code == 0, str(runs[-1])
    assert_no_marker(MARKER, runs, None, audited_db)
