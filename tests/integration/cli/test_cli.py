"""The `reconcile` command line through click's CliRunner: every exit code, one-line errors, output shapes.

Exit codes: 0 nothing to change (or applied), 2 with --detailed-exitcode when the plan is not empty,
1 for every error (usage errors too: click's own 2 would read as "changes"), 3 when another session holds
the advisory lock. A user error is exactly one line on stderr (a manifest error: one complete line per
problem), never a traceback: `invoke` re-raises any exception other than SystemExit.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import psycopg
import pytest

from reconciler.engine.transaction import LOCK_KEY
from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import one_line_error
from tests.integration.golden_support import (
    APPLIED_AT,
    ROOT,
    SECRET_ENV,
    Case,
    invoke,
    prepare_applied,
    snapshot,
    superuser_conn,
)

IN_SYNC = "No changes. The database matches scheduler.yaml.\n"


@pytest.fixture
def applied(audited_db: DbTarget) -> DbTarget:
    prepare_applied(Case("applied", "applied"), audited_db)
    return audited_db


# -- 0 and 2 -------------------------------------------------------------------------------------------


def test_plan_with_changes_exits_0_without_detailed_exitcode(audited_db: DbTarget) -> None:
    run = invoke([], audited_db.url)  # --dry-run is the default
    assert run.exit_code == 0 and run.stderr == "", str(run)
    assert run.stdout.endswith("Plan: 20 to create, 0 to update, 0 to delete.\n")


def test_detailed_exitcode_is_2_when_the_plan_has_changes(audited_db: DbTarget) -> None:
    run = invoke(["--dry-run", "--detailed-exitcode"], audited_db.url)
    assert run.exit_code == 2 and run.stderr == "", str(run)
    assert run.stdout.startswith("Changes from scheduler.yaml:\n")


def test_detailed_exitcode_is_2_for_blocking_findings(empty_db: DbTarget) -> None:
    run = invoke(["--detailed-exitcode", "--format", "json"], empty_db.url)
    assert run.exit_code == 2, str(run)
    assert [f["code"] for f in json.loads(run.stdout)["findings"] if f["severity"] == "error"] == ["jobs_table_missing"]


def test_apply_exits_0_then_the_plan_is_empty(audited_db: DbTarget) -> None:
    run = invoke(["--apply"], audited_db.url)
    assert run.exit_code == 0 and run.stderr == "", str(run)
    assert run.stdout.endswith("Plan: 20 to create, 0 to update, 0 to delete.\nApply complete (history #1).\n")
    again = invoke(["--apply"], audited_db.url)
    assert (again.exit_code, again.stdout, again.stderr) == (0, IN_SYNC, "")
    plan = invoke(["--dry-run", "--detailed-exitcode"], audited_db.url)
    assert (plan.exit_code, plan.stdout, plan.stderr) == (0, IN_SYNC, "")


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], ["history", "--help"]])
def test_help_and_version_exit_0(args: list[str]) -> None:
    run = invoke(args, None)
    assert run.exit_code == 0 and run.stdout and run.stderr == "", str(run)


# -- 1 -------------------------------------------------------------------------------------------------


def test_unreachable_database_is_one_line_naming_host_port_and_reason(audited_db: DbTarget) -> None:
    port = free_port()
    line = one_line_error(invoke(["--dry-run"], f"postgresql://postgres@127.0.0.1:{port}/postgres"))
    assert line.startswith("error: cannot connect to the database: ")
    assert f'connection to server at "127.0.0.1", port {port} failed: Connection refused' in line
    line = one_line_error(invoke(["--apply"], f"postgresql://postgres@127.0.0.1:{port}/postgres"))
    assert f"port {port} failed: Connection refused" in line


def test_server_refusing_the_role_is_one_line_with_the_servers_reason(audited_db: DbTarget) -> None:
    port = audited_db.cluster.port
    line = one_line_error(invoke(["--dry-run"], f"postgresql://no_such_role@127.0.0.1:{port}/postgres"))
    assert f'connection to server at "127.0.0.1", port {port} failed: FATAL: role "no_such_role" does not exist' in line


def test_a_malformed_url_never_echoes_its_password() -> None:
    line = one_line_error(invoke(["--dry-run"], "postgres:s3cretpw@db.example.com/postgres"))
    assert line.startswith("error: invalid database URL (expected postgresql://"), line
    assert "s3cretpw" not in line


def test_a_port_already_in_use_is_one_line(audited_db: DbTarget) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(invoke(["--watch", "--http-host", "127.0.0.1", "--http-port", str(port)],
                                     audited_db.url))
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), line
    assert "--http-port" in line


def test_an_unwritable_saved_plan_is_one_line_after_the_plan(audited_db: DbTarget, tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "plan.json"
    run = invoke(["--dry-run", "--out", str(target)], audited_db.url)
    assert run.exit_code == 1 and "Traceback" not in run.stderr, str(run)
    assert run.stderr == f"error: cannot write saved plan {target}: No such file or directory\n"
    assert not target.exists()


def test_no_database_given() -> None:
    line = one_line_error(invoke(["--dry-run"], None))
    assert line == ("error: no database given (pass --database-url or set DATABASE_URL, in the environment or "
                    "an --env-file)")


def _bad_manifest(tmp_path: Path) -> Path:
    text = (ROOT / "scheduler.yaml").read_text()
    text = text.replace('schedule: "0 3 * * *"', 'schedule: "0 25 * * *"')
    text = text.replace("    type: correlate\n", "    type: correlate\n    colour: red\n")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_bad_manifest_reports_every_problem_as_file_line_col(audited_db: DbTarget, tmp_path: Path) -> None:
    path = _bad_manifest(tmp_path)
    run = invoke(["--dry-run", "-f", str(path)], audited_db.url)
    assert run.exit_code == 1 and run.stdout == "" and "Traceback" not in run.stderr, str(run)
    assert run.stderr.splitlines() == [
        f'error: {path}:100:5: jobs[9] (correlate_trends_campaigns): unknown field "colour"',
        f'error: {path}:115:15: jobs[11] (ttl_cleanup).schedule: invalid schedule "0 25 * * *": hour field: 25 is '
        'out of range 0-23',
    ]
    assert re.fullmatch(r"(error: \S+:\d+:\d+: .+\n)+", run.stderr)
    applied = invoke(["--apply", "-f", str(path)], audited_db.url)
    assert (applied.exit_code, applied.stdout, applied.stderr) == (1, "", run.stderr)


def test_missing_secret_variable_names_it_and_no_value(audited_db: DbTarget) -> None:
    env = {k: v for k, v in SECRET_ENV.items() if k != "CRON_SECRET"}
    env["CRON_SECRET"] = None  # type: ignore[assignment]  # unset even if the caller's environment has it
    line = one_line_error(invoke(["--dry-run"], audited_db.url, env))
    assert line.startswith("error: missing secret sources: cron_secret (environment variable CRON_SECRET is not set)")
    assert not any(value in line for value in SECRET_ENV.values())
    env["CRON_SECRET"] = ""
    line = one_line_error(invoke(["--apply"], audited_db.url, env))
    assert "environment variable CRON_SECRET is empty" in line


@pytest.mark.parametrize("args", [
    pytest.param(["--bogus"], id="unknown-option"),
    pytest.param(["--format", "yaml"], id="bad-choice"),
    pytest.param(["--dry-run", "--apply"], id="dry-run-and-apply"),
    pytest.param(["--apply", "--out", "plan.json"], id="out-with-apply"),
    pytest.param(["--rotate", "no_such_secret"], id="rotate-undeclared"),
    pytest.param(["--lock-timeout", "soon"], id="bad-float"),
    pytest.param(["--statement-timeout", "inf"], id="infinite-timeout"),
    pytest.param(["--statement-timeout", "nan"], id="nan-timeout"),
    pytest.param(["--lock-timeout", "-1"], id="negative-timeout"),
    pytest.param(["--watch", "--interval", "inf"], id="infinite-interval"),
    pytest.param(["--watch", "--http-port", "70000"], id="port-out-of-range"),
    pytest.param(["history", "0"], id="history-count-zero"),
    pytest.param(["history", "--show", "-3"], id="history-show-negative"),
    pytest.param(["history", "--bogus"], id="subcommand-unknown-option"),
    pytest.param(["no-such-command"], id="unknown-command"),
])
def test_usage_errors_exit_1_in_one_line(args: list[str], audited_db: DbTarget) -> None:
    line = one_line_error(invoke(args, audited_db.url))
    assert line.startswith("error: ") and line.endswith("--help)"), line


def test_dry_run_and_apply_together_change_nothing(audited_db: DbTarget) -> None:
    before = snapshot(audited_db)
    line = one_line_error(invoke(["--dry-run", "--apply"], audited_db.url))
    assert line == "error: --dry-run and --apply are mutually exclusive (see reconcile --help)"
    assert snapshot(audited_db) == before


# -- 3 -------------------------------------------------------------------------------------------------


def test_lock_held_by_another_session_exits_3(audited_db: DbTarget) -> None:
    before = snapshot(audited_db)
    with psycopg.connect(audited_db.superuser_url, autocommit=True, application_name="lock holder") as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        line = one_line_error(invoke(["--apply"], audited_db.url), code=3)
        assert re.fullmatch(r"error: another reconciler holds the lock \(pid \d+, application_name lock holder, "
                            r"client local\) \(wait for it, or pass --lock-timeout SECONDS to wait\)", line), line
        line = one_line_error(invoke(["--apply", "--lock-timeout", "0.2"], audited_db.url), code=3)
        assert line.startswith("error: another reconciler holds the lock (pid "), line
        plan = invoke(["--dry-run", "--detailed-exitcode"], audited_db.url)  # planning takes no lock
        assert plan.exit_code == 2, str(plan)
    assert snapshot(audited_db) == before
    assert invoke(["--apply"], audited_db.url).exit_code == 0


# -- output shapes -------------------------------------------------------------------------------------

MARKDOWN = """\
### Reconciler plan for `scheduler.yaml`

Made against database postgres on the local socket (port <port>).

**Plan: 0 to create, 1 to update, 1 to delete; 2 drifted outside git.**

| action | count |
| --- | ---: |
| update | 1 |
| delete | 1 |

> **Warning:** 1 change(s) delete or deactivate existing objects.

| severity | finding | fix |
| --- | --- | --- |
| warning | public.scheduled_jobs.job_name has no unique constraint | add one (CREATE UNIQUE INDEX ... ON public.scheduled_jobs (job_name)) so duplicates cannot appear |

**Drift: changed outside git since the last apply (#1 at <applied_at> by postgres)**

```diff
! trigger master-scheduler: update (disabled outside git since apply #1: active)
      active: false → true
- job ttl_cleanup: delete (duplicate rows)
      job_type: "cleanup"
      schedule: "0 2 * * *"
      endpoint: "/functions/v1/ttl-cleanup"
      description: null
      is_active: true
```
"""


def test_markdown_plan_shape(applied: DbTarget) -> None:
    with superuser_conn(applied) as conn:
        conn.execute("SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'master-scheduler'")
        conn.execute("ALTER TABLE public.scheduled_jobs DROP CONSTRAINT scheduled_jobs_job_name_key")
        conn.execute("INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint)"
                     " VALUES ('ttl_cleanup', 'cleanup', '0 2 * * *', '/functions/v1/ttl-cleanup')")
    run = invoke(["--format", "markdown", "--detailed-exitcode"], applied.url)
    assert (run.exit_code, run.stderr) == (2, ""), str(run)
    from tests.integration.golden_support import CLUSTER_PORT

    assert CLUSTER_PORT.sub(r"\1<port>", APPLIED_AT.sub("<applied_at>", run.stdout)) == MARKDOWN


def test_markdown_for_an_empty_plan(applied: DbTarget) -> None:
    run = invoke(["--format", "markdown"], applied.url)
    assert run.exit_code == 0, str(run)
    assert run.stdout.startswith("### Reconciler plan for `scheduler.yaml`\n\nMade against database postgres on the "
                                 "local socket (port ")
    assert run.stdout.endswith(").\n\n**No changes. The database matches scheduler.yaml.**\n")
    assert "```" not in run.stdout and "<details>" not in run.stdout


def test_verbose_shows_no_op_items(applied: DbTarget) -> None:
    quiet = invoke(["--dry-run"], applied.url)
    assert quiet.stdout == IN_SYNC
    verbose = invoke(["--dry-run", "-v"], applied.url)
    assert verbose.exit_code == 0, str(verbose)
    lines = verbose.stdout.splitlines()
    assert "    extension pg_cron: no-op" in lines
    assert "    secret cron_secret: no-op" in lines
    assert "    job ttl_cleanup: no-op" in lines
    assert "    trigger master-scheduler: no-op" in lines
    assert sum(line.endswith(": no-op") for line in lines) == 3 + 3 + 13 + 1
    assert lines[-1] == IN_SYNC.rstrip("\n")
    data = json.loads(invoke(["--format", "json", "--verbose"], applied.url).stdout)
    assert {c["action"] for c in data["changes"]} == {"no-op"} and len(data["changes"]) == 20
    assert json.loads(invoke(["--format", "json"], applied.url).stdout)["changes"] == []
