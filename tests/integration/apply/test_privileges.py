"""Least privilege: the preflight names every grant the plan needs and the role lacks, and apply refuses.

A role is given everything the reconciler needs (docs/privileges.md) except one grant at a time; the
plan must carry a `missing_privilege` error naming the GRANT that fixes it, apply must exit 1 with the
database unchanged, and after the GRANT the apply succeeds.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from tests.integration.apply_support import assert_ok, dump, reconcile

ROLE = "reconciler_lp"


@pytest.fixture
def limited_role(audited_db):
    """A login role that inherits postgres's grants (Supabase's), minus what each test revokes."""
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT").format(sql.Identifier(ROLE)))
        for grant in ("GRANT USAGE, CREATE ON SCHEMA public TO {r}", "GRANT TEMPORARY ON DATABASE postgres TO {r}",
                      "GRANT CREATE ON DATABASE postgres TO {r}",
                      "GRANT SELECT, INSERT, UPDATE, DELETE ON public.scheduled_jobs TO {r}"):
            conn.execute(sql.SQL(grant.format(r="{}")).format(sql.Identifier(ROLE)))
    url = audited_db.url.replace("postgresql://postgres@", f"postgresql://{ROLE}@")
    yield url
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(ROLE)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def _prepare(audited_db):
    """Extensions and secrets exist (made by postgres), so only the job grants matter below."""
    assert_ok(reconcile(audited_db.url, "--apply"))
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute("UPDATE public.scheduled_jobs SET schedule = '1 2 * * *' WHERE job_name = 'ttl_cleanup'")
        conn.execute("DELETE FROM public.scheduled_jobs WHERE job_name = 'cleanup_old_cache'")


@pytest.mark.parametrize("revoke, grant_named", [
    pytest.param("REVOKE INSERT ON public.scheduled_jobs FROM {r}", "GRANT INSERT ON public.scheduled_jobs TO",
                 id="no-insert"),
    pytest.param("REVOKE UPDATE ON public.scheduled_jobs FROM {r}", "GRANT UPDATE ON public.scheduled_jobs TO",
                 id="no-update"),
])
def test_missing_job_grant_is_named_and_apply_refused(audited_db, limited_role, revoke, grant_named):
    _prepare(audited_db)
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL(revoke.format(r="{}")).format(sql.Identifier(ROLE)))
        _grant_reading_and_records(conn)
    plan = reconcile(limited_role, "--dry-run", "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    findings = json.loads(plan.stdout)["findings"]
    missing = [f for f in findings if f["code"] == "missing_privilege"]
    assert len(missing) == 1 and missing[0]["severity"] == "error"
    assert missing[0]["fix"] == f"{grant_named} {ROLE}"
    before = dump(audited_db.superuser_url)
    applied = reconcile(limited_role, "--apply")
    assert applied.exit_code == 1 and "refusing to apply" in applied.stderr
    assert len(applied.stderr.strip().splitlines()) == 1
    assert dump(audited_db.superuser_url) == before
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL(missing[0]["fix"].replace(ROLE, "{}")).format(sql.Identifier(ROLE)))
    assert_ok(reconcile(limited_role, "--apply"))
    assert reconcile(limited_role, "--dry-run", "--detailed-exitcode").exit_code == 0


def _grant_reading_and_records(conn):
    """Reading the tables the plan compares, and writing the reconciler's own records."""
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA vault, cron TO {}").format(sql.Identifier(ROLE)))
    conn.execute(sql.SQL("GRANT SELECT ON vault.decrypted_secrets, vault.secrets, cron.job TO {}").format(
        sql.Identifier(ROLE)))
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION vault._crypto_aead_det_decrypt, vault.create_secret, "
                         "vault.update_secret TO {}").format(sql.Identifier(ROLE)))
    conn.execute(sql.SQL("GRANT ALL ON SCHEMA reconciler TO {0}; GRANT ALL ON ALL TABLES IN SCHEMA reconciler TO {0};"
                         " GRANT ALL ON ALL SEQUENCES IN SCHEMA reconciler TO {0}").format(sql.Identifier(ROLE)))


def test_without_create_on_the_database_applies_once_the_reconciler_schema_exists(audited_db, limited_role):
    """CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: not run then."""
    _prepare(audited_db)
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE CREATE ON DATABASE postgres FROM {}").format(sql.Identifier(ROLE)))
        _grant_reading_and_records(conn)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(ROLE)))
        (may_create,) = conn.execute("SELECT has_database_privilege('postgres', 'CREATE')").fetchone()
        conn.execute("RESET ROLE")
    assert may_create is False
    assert_ok(reconcile(limited_role, "--apply"))
    assert reconcile(limited_role, "--dry-run", "--detailed-exitcode").exit_code == 0


def test_supabase_postgres_role_needs_nothing_more(audited_db):
    result = reconcile(audited_db.url, "--dry-run", "--format", "json")
    assert result.exit_code == 0
    assert not [f for f in json.loads(result.stdout)["findings"] if f["code"] == "missing_privilege"]
