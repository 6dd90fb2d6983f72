"""Creating the extensions as hosted Supabase's non-superuser `postgres`, and on plain PostgreSQL (issue 13).

Against the real servers of tests/fix_db.py: the supabase profile (untrusted control files, localdb's
supautils stand-in) and the vanilla profile (no supautils), each as a superuser and as a role that is
not one. The golden cases extensions_enabled_from_dashboard, extension_not_privileged and
pg_cron_schema_overridden hold the exact plans.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from localdb import create_app_tables
from tests.integration.apply_support import JOB_NAMES, SECRET_NAMES, assert_ok, reconcile
from tests.integration.golden_support import snapshot

APP_ROLE = "scheduler_app"


def _extensions(url: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT extname, extowner::regrole::text, extnamespace::regnamespace::text "
                            "FROM pg_extension WHERE extname <> 'plpgsql'").fetchall()
    return {name: (owner, schema) for name, owner, schema in rows}


def _findings(url: str) -> dict[str, str]:
    result = reconcile(url, "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.output
    return {f["code"]: f["severity"] for f in json.loads(result.stdout)["findings"]}


def _stack(url: str) -> tuple[list[str], list[str], list[str]]:
    with psycopg.connect(url) as conn:
        secrets = [r[0] for r in conn.execute("SELECT name FROM vault.secrets ORDER BY 1")]
        jobs = [r[0] for r in conn.execute("SELECT job_name FROM public.scheduled_jobs ORDER BY 1")]
        triggers = [r[0] for r in conn.execute("SELECT jobname FROM cron.job ORDER BY 1")]
    return secrets, jobs, triggers


def test_first_apply_as_supabase_postgres_creates_the_three_extensions(audited_db):
    with psycopg.connect(audited_db.url) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        assert conn.execute("SELECT bool_or(trusted) FROM pg_available_extension_versions "
                            "WHERE name IN ('pg_cron', 'pg_net', 'supabase_vault')").fetchone() == (False,)
    assert _findings(audited_db.url) == {}
    assert_ok(reconcile(audited_db.url, "--apply"))
    assert _extensions(audited_db.superuser_url) == {
        "pg_cron": ("supabase_admin", "pg_catalog"), "pg_net": ("supabase_admin", "extensions"),
        "supabase_vault": ("supabase_admin", "vault")}
    assert _stack(audited_db.superuser_url) == (sorted(SECRET_NAMES), sorted(JOB_NAMES), ["master-scheduler"])
    assert reconcile(audited_db.url, "--dry-run", "--detailed-exitcode").exit_code == 0


def test_extensions_enabled_from_the_dashboard_as_postgres(audited_db):
    with psycopg.connect(audited_db.url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_cron WITH SCHEMA extensions")  # the runbook's statement
        conn.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
        conn.execute("CREATE EXTENSION supabase_vault")
    result = reconcile(audited_db.url, "--dry-run", "--format", "json")
    plan = json.loads(result.stdout)
    assert [c for c in plan["changes"] if c["kind"] == "extension"] == [] and plan["findings"] == []
    assert_ok(reconcile(audited_db.url, "--apply"))
    assert reconcile(audited_db.url, "--dry-run", "--detailed-exitcode").exit_code == 0


@pytest.fixture
def vanilla_app_role(vanilla_db):
    """Plain PostgreSQL (no supautils): a role that is not a superuser, owning the app's tables."""
    ident = sql.Identifier(APP_ROLE)
    with psycopg.connect(vanilla_db.superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        conn.execute(sql.SQL("GRANT CREATE, TEMPORARY ON DATABASE postgres TO {}").format(ident))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(ident))
    url = vanilla_db.url.replace("postgresql://postgres@", f"postgresql://{APP_ROLE}@")
    with psycopg.connect(url, autocommit=True) as conn:
        create_app_tables(conn)
    yield url
    with psycopg.connect(vanilla_db.superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(ident))
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_vanilla_non_superuser_is_unknown_then_refused_in_one_line(vanilla_db, vanilla_app_role):
    """No supautils visible: the plan warns and creates; the server refuses; everything rolls back."""
    findings = _findings(vanilla_app_role)
    assert findings == {"extension_may_need_superuser": "warning"}
    before = snapshot(vanilla_db)
    refused = reconcile(vanilla_app_role, "--apply")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "error: the server refused to let this role create extension pg_cron; rolled back, nothing changed "
        "(enable pg_cron in the Dashboard (Database > Extensions), or run the reconciler as a superuser)"]
    assert "Traceback" not in refused.output
    assert snapshot(vanilla_db) == before
    assert _extensions(vanilla_db.superuser_url) == {}


def test_vanilla_superuser_creates_everything(vanilla_db):
    with psycopg.connect(vanilla_db.url, autocommit=True) as conn:
        create_app_tables(conn)
    assert _findings(vanilla_db.url) == {}
    assert_ok(reconcile(vanilla_db.url, "--apply"))
    assert _extensions(vanilla_db.url) == {
        "pg_cron": ("postgres", "pg_catalog"), "pg_net": ("postgres", "extensions"),
        "supabase_vault": ("postgres", "vault")}
    assert reconcile(vanilla_db.url, "--dry-run", "--detailed-exitcode").exit_code == 0


def test_supabase_superuser_creates_everything(superuser_target):
    assert _findings(superuser_target.url) == {}
    assert_ok(reconcile(superuser_target.url, "--apply"))
    assert {n: owner for n, (owner, _) in _extensions(superuser_target.url).items()} == {
        "pg_cron": "supabase_admin", "pg_net": "supabase_admin", "supabase_vault": "supabase_admin"}
    assert reconcile(superuser_target.url, "--dry-run", "--detailed-exitcode").exit_code == 0
