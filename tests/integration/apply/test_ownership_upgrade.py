"""A database managed by the previous release: reconciler.managed without last-applied records (issue 25).

The previous release's DDL (git show e6f3255:reconciler/sql/ownership.sql) is kept here verbatim, so the
test does not need the repository's history. The dry run reads that shape and writes nothing; the first
`--apply` migrates it in its own transaction and says so; a role that may not alter the table gets one
line; after the upgrade the plan attributes differences again.
"""

from __future__ import annotations

from typing import Any

from tests.fix_db import DbTarget
from tests.integration.apply_support import assert_ok, execute, one_line_error, query, reconcile

PREVIOUS_DDL = """
CREATE SCHEMA IF NOT EXISTS reconciler;
CREATE TABLE IF NOT EXISTS reconciler.managed (
    kind text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    protect boolean NOT NULL DEFAULT false,
    first_applied timestamptz NOT NULL DEFAULT now(),
    last_applied timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS reconciler.history (
    id bigserial PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    database_user text NOT NULL DEFAULT current_user,
    client_addr text DEFAULT inet_client_addr()::text,
    tool_version text NOT NULL,
    command text NOT NULL,
    manifest_digest text NOT NULL,
    summary text NOT NULL,
    plan_text text NOT NULL,
    changes jsonb NOT NULL
);
"""
EDIT = "UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = 'fetch_google_news'"


def _previous_release(target: DbTarget, *, owner: str) -> None:
    """The stack as the previous release applied it: objects, its ownership rows, one history entry."""
    assert_ok(reconcile(target.url, "--apply"))
    su = target.superuser_url
    execute(su, "DROP SCHEMA reconciler CASCADE")
    execute(target.url if owner == "applier" else su, PREVIOUS_DDL)
    if owner != "applier":
        execute(su, "GRANT USAGE ON SCHEMA reconciler TO postgres;"
                    " GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA reconciler TO postgres;"
                    " GRANT USAGE ON ALL SEQUENCES IN SCHEMA reconciler TO postgres")
    execute(su, """INSERT INTO reconciler.managed (kind, key, fingerprint)
                   SELECT 'job', job_name, 'previous' FROM public.scheduled_jobs
                   UNION ALL SELECT 'trigger', jobname, 'previous' FROM cron.job
                   UNION ALL SELECT 'secret', name, 'previous' FROM vault.secrets""")
    execute(su, "INSERT INTO reconciler.history (tool_version, command, manifest_digest, summary, plan_text, changes)"
                " VALUES ('0.9', '--apply', 'x', 'Plan: ...', '', '[]')")


def _columns(url: str) -> list[str]:
    return [r[0] for r in query(url, "SELECT attname::text FROM pg_attribute WHERE attrelid = 'reconciler.managed'::regclass"
                                     " AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]


def _managed(url: str) -> list[tuple[Any, ...]]:
    return query(url, "SELECT to_jsonb(m)::text FROM reconciler.managed m ORDER BY kind, key")


def test_a_previous_release_database_is_planned_then_migrated_by_the_first_apply(audited_db: DbTarget) -> None:
    su = audited_db.superuser_url
    _previous_release(audited_db, owner="applier")
    execute(su, EDIT)
    before = (_columns(su), _managed(su))
    assert "fingerprint" in before[0] and "applied" not in before[0]

    plan = reconcile(audited_db.url, "--dry-run")
    assert_ok(plan)
    assert "Differences without a record of the last apply" in plan.stdout
    assert "~ job fetch_google_news: update (differs: schedule)" in plan.stdout
    assert "Drift:" not in plan.stdout and "outside git" not in plan.stdout
    assert (_columns(su), _managed(su)) == before, "the dry run wrote to reconciler.managed"

    applied = reconcile(audited_db.url, "--apply")
    assert_ok(applied)
    assert applied.stderr == "note: reconciler.managed upgraded to keep last-applied records (in its own transaction)\n"
    columns = _columns(su)
    assert "fingerprint" not in columns and {"applied", "history_id", "removed"} <= set(columns)
    # every object now has a record, written by this apply (#2: the previous release's entry is #1)
    assert query(su, "SELECT count(*) FILTER (WHERE applied IS NULL), min(history_id), max(history_id)"
                     " FROM reconciler.managed") == [(0, 2, 2)]

    execute(su, EDIT)
    again = reconcile(audited_db.url, "--dry-run")
    assert_ok(again)
    assert "~ job fetch_google_news: update (changed outside git since apply #2: schedule)" in again.stdout
    second = reconcile(audited_db.url, "--apply")
    assert_ok(second)
    assert second.stderr == "", "the upgrade is announced once"


def test_a_role_that_may_not_alter_the_old_table_is_told_in_one_line(audited_db: DbTarget) -> None:
    su = audited_db.superuser_url
    _previous_release(audited_db, owner="superuser")
    execute(su, EDIT)
    before = (_columns(su), _managed(su), query(su, "SELECT schedule FROM public.scheduled_jobs ORDER BY job_name"))
    line = one_line_error(reconcile(audited_db.url, "--apply"), 1, "reconciler.managed", "previous release")
    assert "owner" in line
    after = (_columns(su), _managed(su), query(su, "SELECT schedule FROM public.scheduled_jobs ORDER BY job_name"))
    assert after == before, "a refused upgrade changed something"
    assert_ok(reconcile(audited_db.url, "--dry-run"))  # planning still works on the old shape
