"""Issue 7: the pure verify checks (reconciler/verify.py), given rows → expected CheckResults. No database."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reconciler import verify
from reconciler.cli.verify import verify_command
from reconciler.kinds.triggers.command import render_command
from reconciler.model import Action, Change, FieldChange, Finding, Plan, Severity
from reconciler.secret_value import scrub
from reconciler.verify import (
    CronRun,
    DeclaredTrigger,
    Evidence,
    ExecutionRow,
    ObservedRequest,
    ScheduledJob,
    Status,
    TableStats,
    TextField,
)
from tests.unit.verify_support import JOB, TRIGGER, at, healthy, response, run

ROOT = Path(__file__).resolve().parents[2]
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnopqrstuvwxyz012345"


def by_name(results: list[verify.CheckResult], name: str) -> verify.CheckResult:
    return next(r for r in results if r.name == name)


def check(ev: Evidence, name: str) -> verify.CheckResult:
    return by_name(verify.run_checks(ev), name)


def rendered(results: list[verify.CheckResult]) -> str:
    return verify.to_text(results) + verify.to_json(results) + verify.to_markdown(results)


# -- all healthy --------------------------------------------------------------------------------------


def test_healthy_passes_every_check() -> None:
    results = verify.run_checks(healthy())
    assert [r.name for r in results] == [
        "preflight", "master-scheduler: runs", "master-scheduler: http", "master-scheduler: executions",
        "scheduled jobs: freshness", "housekeeping", "secret literals"]
    assert {r.name: r.status for r in results} == {r.name: Status.PASS for r in results}
    assert verify.exit_code(results) == 0


# -- 1. preflight ------------------------------------------------------------------------------------


def test_drift_fails_preflight_and_shows_the_change() -> None:
    change = Change("trigger", "master-scheduler", Action.UPDATE, before={"active": False}, after={"active": True},
                    fields=(FieldChange("active", False, True),), reason="disabled")
    result = check(healthy(plan=Plan((change,))), "preflight")
    assert result.status is Status.FAIL
    assert "1 change(s) planned" in result.summary
    assert result.evidence == ("trigger master-scheduler: update (disabled): active false → true",)
    assert "reconcile --apply" in result.fix


def test_sensitive_and_long_fields_are_not_shown() -> None:
    change = Change("secret", "cron_secret", Action.UPDATE, before={}, after={},
                    fields=(FieldChange("value", sensitive=True),))
    cmd = Change("trigger", "t", Action.UPDATE, before={}, after={}, fields=(FieldChange("command", "a", "b"),))
    result = check(healthy(plan=Plan((change, cmd))), "preflight")
    assert result.evidence == ("secret cron_secret: update: value (sensitive)", "trigger t: update: command changed")


def test_missing_secret_source_is_a_failed_check_not_a_crash() -> None:
    result = check(healthy(plan=None, plan_error="missing secret sources: cron_secret (environment variable "
                                                 "CRON_SECRET is not set)"), "preflight")
    assert result.status is Status.FAIL
    assert "CRON_SECRET is not set" in result.summary


@pytest.mark.parametrize(("severity", "status"), [(Severity.ERROR, Status.FAIL), (Severity.WARNING, Status.WARN)],
                         ids=["blocking", "warning"])
def test_findings(severity: Severity, status: Status) -> None:
    plan = Plan(findings=(Finding(severity, "x", "pg_net serves another database", "set pg_net.database_name"),))
    result = check(healthy(plan=plan), "preflight")
    assert result.status is status
    assert "pg_net serves another database" in result.evidence[0]


def test_drift_with_blocking_findings_fixes_the_findings_first() -> None:
    """`reconcile --apply` refuses while a blocking finding stands: the fix must not send the user there first."""
    change = Change("job", "a", Action.CREATE, after={"job_name": "a"}, reason="missing")
    finding = Finding(Severity.ERROR, "x", "public.scheduled_jobs does not exist",
                      "create it (the application's migration) or set tables: {create_missing: true}")
    result = check(healthy(plan=Plan((change,), findings=(finding,))), "preflight")
    assert result.status is Status.FAIL
    assert result.fix == ("first: create it (the application's migration) or set tables: {create_missing: true}; "
                          "then review `reconcile --dry-run` and run `reconcile --apply` (it refuses while a "
                          "blocking finding stands)")


# -- 2. trigger runs ---------------------------------------------------------------------------------


def test_trigger_missing() -> None:
    result = check(healthy(cron_jobs=()), "master-scheduler: runs")
    assert (result.status, result.summary) == (Status.FAIL, "trigger master-scheduler is not scheduled (no cron.job row)")
    assert check(healthy(cron_jobs=()), "master-scheduler: http").status is Status.SKIP


def test_trigger_disabled() -> None:
    result = check(healthy(cron_jobs=(replace(JOB, active=False),)), "master-scheduler: runs")
    assert result.status is Status.FAIL
    assert "disabled" in result.summary
    assert "cron.alter_job(7, active := true)" in result.fix


def test_trigger_never_ran() -> None:
    result = check(healthy(runs=(), responses=()), "master-scheduler: runs")
    assert (result.status, result.summary) == (Status.FAIL, "trigger master-scheduler has never run")


def test_trigger_stale_beyond_two_periods() -> None:
    result = check(healthy(runs=(run(1, -150),)), "master-scheduler: runs")
    assert result.status is Status.FAIL
    assert result.summary == "last run 2m30s ago: more than two periods (2m) ago"


def test_newest_run_failed_shows_return_message() -> None:
    ev = healthy(runs=(run(2, -30, "failed", 'ERROR:  function net.http_post(url => text) does not exist'),
                       run(1, -90)))
    result = check(ev, "master-scheduler: runs")
    assert result.status is Status.FAIL
    assert "function net.http_post(url => text) does not exist" in result.summary


def test_an_older_failed_run_is_a_warning() -> None:
    result = check(healthy(runs=(run(2, -30), run(1, -90, "failed", "boom"))), "master-scheduler: runs")
    assert result.status is Status.WARN
    assert any("boom" in e for e in result.evidence)


def test_wait_without_a_new_run_fails() -> None:
    ev = healthy(waited=timedelta(seconds=90), check_start=at(-20))  # newest run started before the check
    result = check(ev, "master-scheduler: runs")
    assert result.status is Status.FAIL
    assert result.summary == "no new run appeared within the --wait of 90s (schedule '* * * * *')"
    assert "cron.database_name" in result.fix


def test_wait_with_a_new_run_passes() -> None:
    ev = healthy(waited=timedelta(seconds=90), check_start=at(-40))
    assert check(ev, "master-scheduler: runs").status is Status.PASS
    assert check(ev, "master-scheduler: http").status is Status.PASS


# -- 3. HTTP outcome ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [401, 403])
def test_rejected_secret(code: int) -> None:
    result = check(healthy(responses=(response(2, -29.5, code),)), "master-scheduler: http")
    assert result.status is Status.FAIL
    assert result.summary.startswith("the endpoint rejected x-cron-secret: the vault secret cron_secret differs "
                                     "from the Edge Function's CRON_SECRET")
    assert check(healthy(responses=(response(2, -29.5, code),)), "master-scheduler: executions").status is Status.SKIP


def test_unreachable_names_the_path_not_the_url() -> None:
    ev = healthy(responses=(response(2, -29.5, None, "Couldn't connect to server"),))
    result = check(ev, "master-scheduler: http")
    assert result.status is Status.FAIL
    assert result.summary == ("unreachable: {project_url}/functions/v1/run-scheduled-jobs: "
                              "Couldn't connect to server")


def test_timeout_is_unreachable() -> None:
    ev = healthy(responses=(response(2, -25, None, "Timeout of 5000 ms reached. Total time: 5001 ms", True),))
    result = check(ev, "master-scheduler: http")
    assert (result.status, result.summary) == (
        Status.FAIL, "unreachable: {project_url}/functions/v1/run-scheduled-jobs: timed out")


def test_an_error_message_never_echoes_a_url() -> None:
    ev = healthy(responses=(response(2, -29.5, None, "Could not resolve https://secret-ref.supabase.co/x"),))
    text = rendered(verify.run_checks(ev))
    assert "secret-ref" not in text
    assert "<url>" in text


def test_server_error() -> None:
    result = check(healthy(responses=(response(2, -29.5, 500),)), "master-scheduler: http")
    assert (result.status, result.summary) == (
        Status.FAIL, "{project_url}/functions/v1/run-scheduled-jobs answered HTTP 500")


def test_the_newest_response_decides() -> None:
    ev = healthy(responses=(response(2, -29.5, 200), response(1, -89.5, 401)))
    result = check(ev, "master-scheduler: http")
    assert result.status is Status.PASS
    assert "responses in the window: 1× HTTP 200, 1× HTTP 401" in result.evidence


def test_responses_outside_the_runs_are_not_ours() -> None:
    # A response written 40 s after the only run (beyond timeout + margin) belongs to something else.
    ev = healthy(runs=(run(2, -50),), responses=(response(9, -10, 401),))
    result = check(ev, "master-scheduler: http")
    assert result.status is Status.WARN
    assert result.summary == "no response recorded for 1 run(s) in the window"


def test_requests_seen_in_the_queue_correlate_by_id() -> None:
    # Request 8 went to another path (another trigger's 401); request 9 is ours (200) at the same moment.
    ev = healthy(runs=(run(2, -30),), responses=(response(8, -29.6, 401), response(9, -29.5, 200)),
                 requests=(ObservedRequest(8, "/functions/v1/other", at(-29.9), False),
                           ObservedRequest(9, "/functions/v1/run-scheduled-jobs", at(-29.9), False)))
    result = check(ev, "master-scheduler: http")
    assert result.status is Status.PASS
    assert "responses in the window: 1× HTTP 200" in result.evidence


def test_a_trigger_without_a_known_path_does_not_claim_other_requests() -> None:
    # A literal URL with no path: another function's stuck request must not make this trigger fail.
    trig = replace(TRIGGER, path="/")
    ev = healthy(declared=(trig,), requests=(ObservedRequest(30, "/functions/v1/other-function", at(-180)),))
    result = check(ev, "master-scheduler: http")
    assert result.status is Status.PASS, result


@pytest.mark.parametrize("seen, mine", [
    ("/functions/v1/run-scheduled-jobs", True),
    ("/functions/v1/run-scheduled-jobs/", True),
    ("/prefix/functions/v1/run-scheduled-jobs", True),
    ("/xfunctions/v1/run-scheduled-jobs", False),
    ("/functions/v1/other", False),
], ids=["same", "trailing-slash", "prefixed", "not-a-segment-boundary", "other"])
def test_requests_are_matched_to_a_trigger_by_whole_path_segments(seen: str, mine: bool) -> None:
    assert verify.same_path(seen, TRIGGER.path or "") is mine


def test_runs_that_started_but_never_finished_are_named_as_such() -> None:
    started = CronRun(7, 3, "running", "", at(-20), None)
    result = check(healthy(runs=(started,)), "master-scheduler: runs")
    assert result.status is Status.FAIL
    assert result.summary == "1 run(s) started in the window, none finished (newest: running, 20s ago)"
    assert "lock waits" in result.fix


def test_naive_timestamps_in_application_tables_are_read_as_utc() -> None:
    from reconciler.verify.rows import utc_timestamp as _ts

    assert _ts("2026-03-02T12:00:00") == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert _ts("2026-03-02T12:00:00+02:00") == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert _ts("not a time") is None


def test_stuck_queue_means_the_worker_is_not_sending() -> None:
    ev = healthy(responses=(), runs=(run(3, -30), run(2, -90)), pg_net_database="postgres", database="app",
                 requests=(ObservedRequest(11, "/functions/v1/run-scheduled-jobs", at(-2)),
                           ObservedRequest(12, "/functions/v1/run-scheduled-jobs", at(-2))))
    result = check(ev, "master-scheduler: http")
    assert result.status is Status.FAIL
    assert result.summary == "the pg_net worker is not sending: requests wait in the queue"
    assert "oldest for about 90s" in result.evidence[-1]
    assert "pg_net.database_name" in result.fix and "it is 'postgres' but this database is 'app'" in result.fix


def test_first_seen_across_polls_ages_a_queued_request() -> None:
    ev = healthy(responses=(), runs=(run(3, -10),),
                 requests=(ObservedRequest(11, "/functions/v1/run-scheduled-jobs", at(-75)),))
    assert check(ev, "master-scheduler: http").summary.startswith(verify.NOT_SENDING)


def test_a_recently_queued_request_is_only_a_warning() -> None:
    ev = healthy(responses=(), runs=(run(3, -3),),
                 requests=(ObservedRequest(11, "/functions/v1/run-scheduled-jobs", at(-2)),))
    result = check(ev, "master-scheduler: http")
    assert (result.status, result.summary) == (Status.WARN, "the request is queued and not answered yet")


def test_command_triggers_have_no_http_checks() -> None:
    ev = healthy(declared=(DeclaredTrigger("master-scheduler", "* * * * *"),))
    names = [r.name for r in verify.run_checks(ev)]
    assert "master-scheduler: http" not in names and "master-scheduler: runs" in names


# -- 4. executions -----------------------------------------------------------------------------------


def test_answered_but_recorded_nothing() -> None:
    jobs = (ScheduledJob("fetch_google_news", "*/5 * * * *", True, None, at(-30)),)
    result = check(healthy(executions=(), scheduled_jobs=jobs), "master-scheduler: executions")
    assert (result.status, result.summary) == (Status.FAIL, "the scheduler endpoint answered but recorded nothing")
    assert "fetch_google_news (never ran)" in result.evidence[1]


def test_no_job_due_means_nothing_to_record() -> None:
    # 12:00:30 now, window since 11:58:30: a */5 job last run at 11:55 was due at 12:00 → expected rows.
    due = (ScheduledJob("fetch_google_news", "*/5 * * * *", True, at(-330), at(-86400)),)
    assert check(healthy(executions=(), scheduled_jobs=due), "master-scheduler: executions").status is Status.FAIL
    # An hourly job last run at 11:00:00 is not due until 13:00... (its 12:00 slot is in the window: due)
    hourly = (ScheduledJob("update_org_affinities", "30 * * * *", True, at(-60), at(-86400)),)
    result = check(healthy(executions=(), scheduled_jobs=hourly), "master-scheduler: executions")
    assert (result.status, result.summary) == (Status.PASS, "no job was due in the window, so nothing to record")


def test_failed_executions_warn() -> None:
    rows = (ExecutionRow("ttl_cleanup", at(-29), "failed", "relation cache does not exist"),)
    result = check(healthy(executions=rows), "master-scheduler: executions")
    assert result.status is Status.WARN
    assert "relation cache does not exist" in result.evidence[1]


# -- 5. scheduled_jobs freshness ---------------------------------------------------------------------


def test_stale_and_never_run_jobs_are_listed() -> None:
    jobs = (ScheduledJob("fetch_google_news", "*/5 * * * *", True, at(-3600), at(-86400)),
            ScheduledJob("ttl_cleanup", "0 3 * * *", True, None, at(-5 * 86400)),
            ScheduledJob("cleanup_old_cache", "0 5 * * 0", False, None, at(-86400)))
    result = check(healthy(scheduled_jobs=jobs), "scheduled jobs: freshness")
    assert (result.status, result.summary) == (Status.FAIL, "1 stale and 1 never-run job(s) of 2 active")
    assert result.evidence == ("fetch_google_news: last ran 60m ago (schedule '*/5 * * * *', expected within 10m)",
                               "ttl_cleanup: never ran")


def test_new_jobs_that_have_not_run_yet_warn() -> None:
    jobs = (ScheduledJob("ttl_cleanup", "0 3 * * *", True, None, at(-60)),)
    result = check(healthy(scheduled_jobs=jobs), "scheduled jobs: freshness")
    assert result.status is Status.WARN


# -- 6. housekeeping ---------------------------------------------------------------------------------


def test_big_or_old_history_warns_with_a_retention_trigger() -> None:
    tables = (TableStats("cron.job_run_details", 250_000, at(-30 * 86400)), TableStats("net._http_response", 10, at(-60)))
    result = check(healthy(tables=tables), "housekeeping")
    assert result.status is Status.WARN
    assert result.evidence[0] == "cron.job_run_details: 250,000 rows, oldest 30d ago — over 100,000 rows and older than 7 days"
    snippet = result.fix.split("\n", 1)[1]
    trigger = yaml.safe_load(snippet)["triggers"][0]
    assert trigger["command"] == "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days'"
    assert trigger["schedule"] == "17 3 * * *"


def test_housekeeping_that_could_not_look_never_passes() -> None:
    """Plain PostgreSQL: neither history table exists, so there was nothing to judge."""
    tables = (TableStats("cron.job_run_details", None, note="does not exist"),
              TableStats("net._http_response", None, note="does not exist"))
    result = check(healthy(tables=tables), "housekeeping")
    assert (result.status, result.summary) == (
        Status.SKIP, "not checked: cron.job_run_details and net._http_response could not be read")
    assert result.evidence == ("cron.job_run_details: not read (does not exist)",
                               "net._http_response: not read (does not exist)")
    one = (TableStats("cron.job_run_details", 2, at(-90)), TableStats("net._http_response", None, note="does not exist"))
    result = check(healthy(tables=one), "housekeeping")
    assert (result.status, result.summary) == (
        Status.SKIP, "cron.job_run_details is within 100,000 rows and 7 days; net._http_response could not be read")


def test_retention_snippet_is_a_valid_manifest(tmp_path: Path) -> None:
    from reconciler.manifest import load_manifest

    doc = yaml.safe_load((ROOT / "scheduler.yaml").read_text())
    for snippet in verify.RETENTION.values():
        doc["triggers"] += yaml.safe_load(snippet)["triggers"]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert len(load_manifest([str(path)]).triggers) == 3


# -- 7. secret literals ------------------------------------------------------------------------------


def test_a_pasted_jwt_is_flagged_and_never_printed() -> None:
    texts = (TextField("cron.job", "leaky", "command", f"select '{JWT}'"),
             TextField("public.scheduled_jobs", "fetch_rss_feeds", "description", "key sb_secret_AbCdEf0123456789xyz"))
    results = verify.run_checks(healthy(texts=texts))
    result = by_name(results, "secret literals")
    assert result.status is Status.FAIL
    assert result.evidence == ("cron.job 'leaky' column command: a JWT-shaped token at character 9",
                               "public.scheduled_jobs 'fetch_rss_feeds' column description: an sb_secret_ API key "
                               "at character 5")
    text = rendered(results)
    for fragment in (JWT[:8], JWT[-8:], "sb_secret_A", "0123456789xyz", "eyJ"):
        assert fragment not in text


def test_secret_literals_that_could_not_look_never_pass() -> None:
    gone = {"cron.job": "does not exist", "public.scheduled_jobs": "does not exist"}
    result = check(healthy(texts=(), unavailable=gone), "secret literals")
    assert (result.status, result.summary) == (
        Status.SKIP, "not checked: cron.job and public.scheduled_jobs could not be read")
    half = {"public.scheduled_jobs": "permission denied for table scheduled_jobs"}
    result = check(healthy(unavailable=half), "secret literals")
    assert (result.status, result.summary) == (
        Status.SKIP, "no literal credentials in cron.job (1 row(s) scanned); public.scheduled_jobs could not be "
                     "read: permission denied for table scheduled_jobs")
    texts = (TextField("cron.job", "leaky", "command", f"select '{JWT}'"),)
    assert check(healthy(texts=texts, unavailable=half), "secret literals").status is Status.FAIL


def test_the_rendered_trigger_command_and_the_jobs_are_clean() -> None:
    from reconciler.manifest import load_manifest

    manifest = load_manifest([str(ROOT / "scheduler.yaml")])
    texts = [TextField("cron.job", t.name, "command", render_command(t)) for t in manifest.triggers]
    texts += [TextField("public.scheduled_jobs", j.name, col, str(getattr(j, col)))
              for j in manifest.jobs for col in ("name", "type", "schedule", "endpoint", "description")]
    assert check(healthy(texts=tuple(texts)), "secret literals").status is Status.PASS


@pytest.mark.parametrize("text", [
    "select 1", "/functions/v1/correlate-trends-campaigns", "123e4567-e89b-12d3-a456-426614174000",
    "ExtractTrendEntitiesFunctionHandler", "tag_trend_policy_domains_and_geographies_v2",
    "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days'",
], ids=["sql", "path", "uuid", "camel", "snake", "retention"])
def test_not_credentials(text: str) -> None:
    assert verify.scan_text(text) == []


@pytest.mark.parametrize("text", [
    "'x-cron-secret', 'Q2hhbmdlTWVQbGVhc2UxMjM0NTY3ODkwYWJjZGVm'",
    "token 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "bearer 'dGhpcy1pcy1hLXNlY3JldC10b2tlbi0x_Yz9Kq3Lm7Np'",
], ids=["base64", "hex", "urlsafe"])
def test_credentials(text: str) -> None:
    assert len(verify.scan_text(text)) == 1


# -- waiting, rendering, exit codes ------------------------------------------------------------------


def test_settled_needs_a_new_run_and_its_answer() -> None:
    ev = healthy(waited=timedelta(seconds=90), check_start=at(-10))
    assert not verify.settled(ev)
    assert not verify.settled(replace(ev, runs=(run(3, -2), *ev.runs)))  # ran, not answered yet
    assert verify.settled(replace(ev, runs=(run(3, -2), *ev.runs), responses=(response(3, -1.5), *ev.responses)))
    assert verify.settled(replace(ev, cron_jobs=(replace(JOB, active=False),)))  # nothing to wait for


def test_json_is_versioned() -> None:
    results = verify.run_checks(healthy(cron_jobs=()))
    doc = json.loads(verify.to_json(results))
    assert doc["format_version"] == "1" and doc["ok"] is False
    assert doc["counts"]["fail"] == 1
    assert doc["checks"][1] == {"name": "master-scheduler: runs", "status": "fail",
                                "summary": "trigger master-scheduler is not scheduled (no cron.job row)",
                                "evidence": [], "fix": "run `reconcile --apply` to schedule it"}


def test_text_and_markdown() -> None:
    results = verify.run_checks(healthy(cron_jobs=()))
    text = verify.to_text(results)
    assert "FAIL  master-scheduler: runs: trigger master-scheduler is not scheduled (no cron.job row)\n" \
           "      fix: run `reconcile --apply` to schedule it\n" in text
    assert text.endswith("verify FAILED: 4 passed, 0 warning(s), 1 failed, 2 skipped\n")
    md = verify.to_markdown(results)
    assert "| ❌ fail | master-scheduler: runs | trigger master-scheduler is not scheduled (no cron.job row) |" in md
    assert verify.exit_code(verify.run_checks(healthy())) == 0


def test_scrub_removes_secret_values() -> None:
    assert scrub("url http://x.test/abc secret-value", ["secret-value", "x"]) == "url http://x.test/abc (sensitive)"


def test_declared_triggers_from_the_manifest() -> None:
    from reconciler.manifest import load_manifest
    from reconciler.verify.read import declared_triggers

    (trig,) = declared_triggers(load_manifest([str(ROOT / "scheduler.yaml")]))
    assert trig == DeclaredTrigger("master-scheduler", "* * * * *", "/functions/v1/run-scheduled-jobs",
                                   "{project_url}/functions/v1/run-scheduled-jobs", "cron_secret", 5000)


def test_verify_module_is_pure() -> None:
    code = "import sys, reconciler.verify; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- the command, without a database -------------------------------------------------------------------


def test_usage_errors_exit_1() -> None:
    result = CliRunner().invoke(verify_command, ["--format", "yaml"])
    assert result.exit_code == 1


def test_no_database_is_one_line_exit_1() -> None:
    result = CliRunner().invoke(verify_command, ["-f", str(ROOT / "scheduler.yaml")],
                                env={"DATABASE_URL": None, "SUPABASE_URL": "x", "SUPABASE_SERVICE_ROLE_KEY": "y",
                                     "CRON_SECRET": "z"})
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["error: no database given (pass --database-url or set DATABASE_URL, "
                                                  "in the environment or an --env-file)"]


def test_unreachable_database_is_one_line_exit_1() -> None:
    result = CliRunner().invoke(verify_command, ["-f", str(ROOT / "scheduler.yaml"), "--database-url",
                                                 "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"],
                                env={"SUPABASE_URL": "x", "SUPABASE_SERVICE_ROLE_KEY": "y", "CRON_SECRET": "z"})
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: cannot connect to the database")


def test_registered_on_the_main_group() -> None:
    from reconciler.cli.main import main

    assert main.get_command(None, "verify") is verify_command  # type: ignore[arg-type]
