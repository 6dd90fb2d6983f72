"""Issue 5: saved plans, `tables: {create_missing: true}` and generated secrets, against the real database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    JOB_NAMES,
    SECRETS_ENV,
    assert_converged,
    assert_no_markers,
    assert_ok,
    cron_job,
    dump,
    execute,
    history_rows,
    jobs,
    query,
    reconcile,
    secret_digests,
    write_manifest,
)

# -- saved plans ---------------------------------------------------------------------------------------


def test_saved_plan_applies_and_contains_no_secret(supabase_like: DbTarget, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    made = reconcile(supabase_like.url, "--dry-run", "--out", str(plan_file))
    assert_ok(made)
    text = plan_file.read_text()
    assert_no_markers(text)
    for value in SECRETS_ENV.values():  # nor any recognisable part of one
        assert value[-12:] not in text

    result = reconcile(supabase_like.url, "--apply", str(plan_file))
    assert_ok(result)
    assert "Apply complete" in result.stdout
    assert set(jobs(supabase_like.superuser_url)) == set(JOB_NAMES)
    assert_converged(supabase_like.url)


@pytest.mark.parametrize("content", ["[1, 2]", '{"changes": 5}', "not json", ""], ids=["list", "no-fingerprint",
                                                                                     "not-json", "empty"])
def test_a_file_that_is_not_a_saved_plan_is_one_line(supabase_like: DbTarget, tmp_path: Path, content: str) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(content)
    before = dump(supabase_like.superuser_url)
    result = reconcile(supabase_like.url, "--apply", str(plan_file))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert str(plan_file) in result.stderr
    assert dump(supabase_like.superuser_url) == before


def test_stale_saved_plan_is_refused_and_changes_nothing(supabase_like: DbTarget, tmp_path: Path) -> None:
    su = supabase_like.superuser_url
    assert_ok(reconcile(supabase_like.url, "--apply"))
    execute(su, "UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = 'fetch_google_news'")
    plan_file = tmp_path / "plan.json"
    assert_ok(reconcile(supabase_like.url, "--dry-run", "--out", str(plan_file)))
    assert "fetch_google_news" in plan_file.read_text()

    execute(su, "UPDATE public.scheduled_jobs SET schedule = '*/9 * * * *' WHERE job_name = 'ttl_cleanup'")
    before = dump(su)
    result = reconcile(supabase_like.url, "--apply", str(plan_file))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: saved plan is stale")
    assert result.stderr.count("\n") == 1
    assert dump(su) == before

    # The manifest changing in between is refused as well.
    fresh = tmp_path / "fresh.json"
    assert_ok(reconcile(supabase_like.url, "--dry-run", "--out", str(fresh)))
    other = write_manifest(tmp_path, lambda d: d["jobs"][0].update(description="edited"))
    stale = reconcile(supabase_like.url, "--apply", str(fresh), manifest=other)
    assert stale.exit_code == 1
    assert "saved plan is stale" in stale.stderr
    assert dump(su) == before

    assert_ok(reconcile(supabase_like.url, "--apply", str(fresh)))
    assert_converged(supabase_like.url)


# -- tables: {create_missing: true} -------------------------------------------------------------------


def _create_tables(data: dict[str, Any]) -> None:
    data["tables"] = {"create_missing": True}


def test_create_missing_makes_both_tables_on_an_empty_database(empty_db: DbTarget, tmp_path: Path) -> None:
    su = empty_db.superuser_url
    manifest = write_manifest(tmp_path, _create_tables)
    plan = reconcile(empty_db.url, "--detailed-exitcode", manifest=manifest)
    assert plan.exit_code == 2
    assert "table public.scheduled_jobs: create (missing)" in plan.stdout
    assert "table public.job_executions: create (missing)" in plan.stdout

    assert_ok(reconcile(empty_db.url, "--apply", manifest=manifest))
    assert_converged(empty_db.url, manifest)
    assert set(jobs(su)) == set(JOB_NAMES)
    unique = query(su, """SELECT count(*) FROM pg_index i JOIN pg_attribute a
                            ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                           WHERE i.indrelid = 'public.scheduled_jobs'::regclass AND i.indisunique
                             AND i.indnatts = 1 AND a.attname = 'job_name'""")
    assert unique == [(1,)]
    assert query(su, "SELECT to_regclass('public.job_executions') IS NOT NULL") == [(True,)]

    # Without create_missing the same empty database is a blocking finding, not a change.
    execute(su, "DROP TABLE public.job_executions, public.scheduled_jobs")
    blocked = reconcile(empty_db.url, "--apply")
    assert blocked.exit_code == 1
    assert "public.scheduled_jobs does not exist" in blocked.stderr
    assert query(su, "SELECT to_regclass('public.scheduled_jobs')") == [(None,)]


def test_existing_table_missing_a_column_is_reported_never_altered(supabase_like: DbTarget, tmp_path: Path) -> None:
    su = supabase_like.superuser_url
    execute(su, "ALTER TABLE public.scheduled_jobs DROP COLUMN endpoint")
    manifest = write_manifest(tmp_path, _create_tables)
    before = dump(su)

    plan = reconcile(supabase_like.url, "--detailed-exitcode", manifest=manifest)
    assert plan.exit_code == 2
    assert "error: public.scheduled_jobs lacks column(s): endpoint" in plan.stdout

    result = reconcile(supabase_like.url, "--apply", manifest=manifest)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: refusing to apply: public.scheduled_jobs lacks column(s): endpoint")
    assert result.stderr.count("\n") == 1
    assert dump(su) == before
    assert "endpoint" not in [c for c, _ in dump(su)["public.scheduled_jobs columns"]]


# -- generated secrets ---------------------------------------------------------------------------------


def _generated(data: dict[str, Any]) -> None:
    data["secrets"]["cron_secret"] = {"generate": {"bytes": 32}, "description": "generated"}


def test_generated_secret_is_created_once_and_rotated_on_request(supabase_like: DbTarget, tmp_path: Path) -> None:
    su = supabase_like.superuser_url
    manifest = write_manifest(tmp_path, _generated)
    first = reconcile(supabase_like.url, "--apply", manifest=manifest)
    assert_ok(first)
    digest = secret_digests(su)["cron_secret"]
    value = query(su, "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'cron_secret'")[0][0]
    assert len(value) >= 43  # 32 bytes, base64url
    master = cron_job(su)
    assert master is not None

    for _ in range(2):
        again = reconcile(supabase_like.url, "--apply", manifest=manifest)
        assert_ok(again)
        assert "No changes." in again.stdout
        assert secret_digests(su)["cron_secret"] == digest
    assert_converged(supabase_like.url, manifest)

    plan = reconcile(supabase_like.url, "--rotate", "cron_secret", "--detailed-exitcode", manifest=manifest)
    assert plan.exit_code == 2
    assert "secret cron_secret: update (rotated)" in plan.stdout
    rotated = reconcile(supabase_like.url, "--rotate", "cron_secret", "--apply", manifest=manifest)
    assert_ok(rotated)
    new_value = query(su, "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'cron_secret'")[0][0]
    assert secret_digests(su)["cron_secret"] != digest
    recorded = json.dumps(history_rows(su), default=str) + (cron_job(su) or {})["command"]
    for text in (first.output, again.output, plan.output, rotated.output, recorded):
        assert value not in text and new_value not in text
    assert cron_job(su) == master
    assert_converged(supabase_like.url, manifest)


# -- schedules pg_cron accepts ----------------------------------------------------------------------------


def test_a_trigger_schedule_with_tabs_is_applied_by_pg_cron_and_then_in_sync(supabase_like: DbTarget,
                                                                          tmp_path: Path) -> None:
    def tabbed(data: dict[str, Any]) -> None:
        data["triggers"][0]["schedule"] = "*\t*\t*\t*\t*"

    manifest = write_manifest(tmp_path, tabbed)
    assert_ok(reconcile(supabase_like.url, "--apply", manifest=manifest))
    live = cron_job(supabase_like.superuser_url)
    assert live is not None and live["schedule"] == "*\t*\t*\t*\t*"  # pg_cron stored it as given
    assert_converged(supabase_like.url, manifest)
    # the same schedule written with spaces means the same thing: not drift
    assert_converged(supabase_like.url)


def test_a_stale_saved_plans_refusal_names_the_objects_that_changed(supabase_like: DbTarget, tmp_path: Path) -> None:
    from tests.integration.apply_support import MARKERS

    su = supabase_like.superuser_url
    assert_ok(reconcile(supabase_like.url, "--apply"))
    plan_file = tmp_path / "plan.json"
    assert_ok(reconcile(supabase_like.url, "--dry-run", "--out", str(plan_file)))
    saved = json.loads(plan_file.read_text())
    assert "live_fingerprint" not in saved
    assert set(saved["live_fingerprints"]["job"]) == set(JOB_NAMES)
    assert all(marker not in plan_file.read_text() for marker in MARKERS)

    execute(su, "UPDATE public.scheduled_jobs SET schedule = '*/9 * * * *' WHERE job_name = 'ttl_cleanup'")
    execute(su, "UPDATE cron.job SET schedule = '*/2 * * * *' WHERE jobname = 'master-scheduler'")
    execute(su, "SELECT vault.update_secret(id, 'rotated-by-hand') FROM vault.secrets WHERE name = 'cron_secret'")
    before = dump(su)
    result = reconcile(supabase_like.url, "--apply", str(plan_file))
    assert result.exit_code == 1, result.output
    assert result.stderr == ("error: saved plan is stale: job ttl_cleanup, the secret values, trigger master-scheduler "
                             "changed since the plan was made (run reconcile --dry-run --out again and review the new "
                             "plan)\n")
    assert dump(su) == before


def test_a_saved_plan_of_an_earlier_release_is_refused_cleanly(supabase_like: DbTarget, tmp_path: Path) -> None:
    """An earlier release kept one fingerprint for the whole database: refused in one line, nothing changed."""
    su = supabase_like.superuser_url
    plan_file = tmp_path / "plan.json"
    assert_ok(reconcile(supabase_like.url, "--dry-run", "--out", str(plan_file)))
    saved = json.loads(plan_file.read_text())
    del saved["live_fingerprints"]
    plan_file.write_text(json.dumps({**saved, "live_fingerprint": "0" * 64}))
    before = dump(su)
    result = reconcile(supabase_like.url, "--apply", str(plan_file))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: saved plan is stale: it was made by an earlier release")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert dump(su) == before
