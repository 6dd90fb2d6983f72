"""Issue 5, "Done when": the runbook scenario, drift correction and atomic failure, against the real database.

Each test starts from the audited state (extensions absent, the application's tables present and empty)
and drives the `reconcile` CLI; the database is inspected as the superuser.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from localdb import create_app_tables
from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    JOB_NAMES,
    SECRET_NAMES,
    assert_converged,
    assert_no_markers,
    assert_ok,
    cron_job,
    dump,
    execute,
    history_rows,
    jobid,
    jobs,
    one_line_error,
    query,
    reconcile,
    secret_digests,
    trigger,
    write_manifest,
)


@pytest.fixture
def vanilla_audited(vanilla_db: DbTarget) -> DbTarget:
    with psycopg.connect(vanilla_db.url, autocommit=True) as conn:
        create_app_tables(conn)
    return vanilla_db


@pytest.fixture(params=["superuser_target", "supabase_like", "vanilla_audited"])
def target(request: pytest.FixtureRequest) -> DbTarget:
    return request.getfixturevalue(request.param)


def _fake_run(superuser_url: str, jid: int) -> int:
    """A row of cron.job_run_details for `jid`, as pg_cron writes after a run."""
    rows = query(superuser_url,
                 "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
                 " return_message, start_time, end_time) VALUES (%s, 1, current_database(), 'postgres',"
                 " 'SELECT 1', 'succeeded', '1 row', now(), now()) RETURNING runid", (jid,))
    return rows[0][0]


def test_runbook_end_to_end(target: DbTarget, tmp_path: Path) -> None:
    su = target.superuser_url
    execute(su, "INSERT INTO public.job_executions (status, result) VALUES ('succeeded', '{\"n\": 1}')")
    executions = query(su, "SELECT row_to_json(e)::text FROM public.job_executions e")

    first = reconcile(target.url, "--apply")
    assert_ok(first)
    assert "Apply complete (history #" in first.stdout
    assert_no_markers(first.output)
    assert_converged(target.url)

    assert set(jobs(su)) == set(JOB_NAMES)
    assert set(secret_digests(su)) == set(SECRET_NAMES)
    assert {r[0] for r in query(su, "SELECT extname FROM pg_extension")} >= {"pg_cron", "pg_net", "supabase_vault"}
    master = cron_job(su)
    assert master is not None and master["active"] and master["schedule"] == "* * * * *"
    assert_no_markers(master["command"])
    assert query(su, "SELECT count(*) FROM cron.job")[0][0] == 1
    run_id = _fake_run(su, master["jobid"])

    for _ in range(3):
        again = reconcile(target.url, "--apply")
        assert_ok(again)
        assert "No changes." in again.stdout
        assert jobid(su) == master["jobid"]
    assert len(history_rows(su)) == 1

    changed = write_manifest(tmp_path, lambda d: trigger(d, "master-scheduler").update(schedule="*/2 * * * *"))
    plan = reconcile(target.url, "--detailed-exitcode", manifest=changed)
    assert plan.exit_code == 2
    assert "trigger master-scheduler: update" in plan.stdout
    assert 'schedule: "* * * * *" → "*/2 * * * *"' in plan.stdout
    assert_ok(reconcile(target.url, "--apply", manifest=changed))
    assert_converged(target.url, changed)
    after = cron_job(su)
    assert after is not None
    assert after["jobid"] == master["jobid"] and after["schedule"] == "*/2 * * * *"
    assert after["command"] == master["command"]

    linked = query(su, "SELECT j.jobname::text FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
                       " WHERE d.runid = %s", (run_id,))
    assert linked == [("master-scheduler",)]
    assert query(su, "SELECT row_to_json(e)::text FROM public.job_executions e") == executions
    assert len(history_rows(su)) == 2


# -- drift ---------------------------------------------------------------------------------------------

# (id, SQL injected as the superuser, SQL injected as the reconciler's own role, what the plan says)
DRIFTS = [
    ("schedule-edited",
     "UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = 'fetch_google_news'", None,
     'job fetch_google_news: update (changed outside git since apply #1: schedule)'),
    ("job-row-deleted", "DELETE FROM public.scheduled_jobs WHERE job_name = 'ttl_cleanup'", None,
     "job ttl_cleanup: create (deleted outside git since apply #1)"),
    ("job-deactivated", "UPDATE public.scheduled_jobs SET is_active = false WHERE job_name = 'fetch_rss_feeds'", None,
     "job fetch_rss_feeds: update (changed outside git since apply #1: is_active)"),
    ("trigger-disabled", None,
     "SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'), active := false)",
     "trigger master-scheduler: update (disabled outside git since apply #1: active)"),
    ("trigger-command-edited", None,
     "SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'), command := 'SELECT 1')",
     "trigger master-scheduler: update (changed outside git since apply #1: command)"),
    ("secret-value-changed",
     "SELECT vault.update_secret((SELECT id FROM vault.secrets WHERE name = 'cron_secret'), 'tampered')", None,
     "secret cron_secret: update (value differs from its source)"),
    ("secret-deleted", "DELETE FROM vault.secrets WHERE name = 'service_role_key'", None,
     "secret service_role_key: create (deleted outside git since apply #1)"),
    ("extension-dropped", "DROP EXTENSION pg_net CASCADE", None, "extension pg_net: create (deleted outside git since apply #1)"),
    # Dropping pg_cron or the vault takes the trigger or every secret with it: all come back in one apply.
    ("pg-cron-dropped", "DROP EXTENSION pg_cron CASCADE", None, "trigger master-scheduler: create (deleted outside git since apply #1)"),
    ("vault-dropped", "DROP EXTENSION supabase_vault CASCADE", None, "secret cron_secret: create (deleted outside git since apply #1)"),
]


@pytest.mark.parametrize(("superuser_sql", "own_sql", "expected"), [d[1:] for d in DRIFTS], ids=[d[0] for d in DRIFTS])
def test_drift_is_named_and_fixed_by_one_apply(supabase_like: DbTarget, superuser_sql: str | None,
                                                own_sql: str | None, expected: str) -> None:
    su = supabase_like.superuser_url
    assert_ok(reconcile(supabase_like.url, "--apply"))
    before = dump(su)
    master = jobid(su)
    if superuser_sql:
        execute(su, superuser_sql)
    if own_sql:
        execute(supabase_like.url, own_sql)
    assert dump(su) != before

    plan = reconcile(supabase_like.url, "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    assert expected in plan.stdout
    assert_no_markers(plan.output)

    applied = reconcile(supabase_like.url, "--apply")
    assert_ok(applied)
    assert expected in applied.stdout
    assert_converged(supabase_like.url)

    if "DROP EXTENSION pg_cron" not in (superuser_sql or ""):  # a new pg_cron starts its jobids afresh
        assert jobid(su) == master
    assert set(jobs(su)) == set(JOB_NAMES)
    assert all(j["is_active"] for j in jobs(su).values())
    digests = secret_digests(su)
    assert set(digests) == set(SECRET_NAMES)
    assert digests == {r[1]: r[3] for r in before["secrets"]}
    state = cron_job(su)
    assert state is not None and state["active"] and state["schedule"] == "* * * * *"
    assert state["command"] == next(r[3] for r in before["cron.job"] if r[1] == "master-scheduler")
    assert {r[0] for r in query(su, "SELECT extname FROM pg_extension")} >= {"pg_cron", "pg_net", "supabase_vault"}


# -- atomicity -----------------------------------------------------------------------------------------

NO_TTL = "ALTER TABLE public.scheduled_jobs ADD CONSTRAINT no_ttl CHECK (job_name <> 'ttl_cleanup')"


def _assert_one_line_failure(result, *names: str) -> None:
    assert_no_markers(one_line_error(result, 1, *names))


def test_failure_from_audited_state_rolls_back_extensions_too(supabase_like: DbTarget) -> None:
    su = supabase_like.superuser_url
    execute(su, NO_TTL)
    before = dump(su)
    assert before["extensions"] == [("plpgsql", "1.0", "pg_catalog")]

    result = reconcile(supabase_like.url, "--apply")
    _assert_one_line_failure(result, "insert 13 job row(s) failed", "no_ttl")

    assert dump(su) == before
    assert query(su, "SELECT count(*) FROM pg_extension WHERE extname IN ('pg_cron', 'pg_net', 'supabase_vault')") \
        == [(0,)]
    assert query(su, "SELECT to_regnamespace('reconciler') IS NULL")[0][0]


def test_failure_mid_apply_leaves_every_kind_as_it_was(superuser_target: DbTarget) -> None:
    su = superuser_target.superuser_url
    assert_ok(reconcile(superuser_target.url, "--apply"))
    # Drift in every kind, so the failing apply has work before and after the failing statement.
    execute(su, "DELETE FROM public.scheduled_jobs WHERE job_name = 'ttl_cleanup'")
    execute(su, "UPDATE public.scheduled_jobs SET schedule = '*/9 * * * *' WHERE job_name = 'fetch_google_news'")
    execute(su, "SELECT vault.update_secret((SELECT id FROM vault.secrets WHERE name = 'cron_secret'), 'tampered')")
    execute(su, "SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'),"
                " schedule := '*/3 * * * *', active := false)")
    execute(su, "DROP EXTENSION pg_net CASCADE")
    execute(su, NO_TTL)
    before = dump(su)

    result = reconcile(superuser_target.url, "--apply")
    _assert_one_line_failure(result, "insert 1 job row(s) failed", "no_ttl")
    assert dump(su) == before
