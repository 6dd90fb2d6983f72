"""The run-scheduled-jobs stand-in (localdb/edge.py) and `reconcile verify` without a firing: fast tests.

The edge is driven directly with httpx (as pg_net would POST). The stuck-queue diagnosis keeps pg_net's
queue from draining with a BEFORE DELETE trigger (the worker's DELETE ... RETURNING then takes nothing),
and writes a run 90 s old as pg_cron would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from localdb.edge import PATH, EdgeFunction
from reconciler.cli.main import main
from tests.fix_db import DbTarget, free_port

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT / "scheduler.yaml"
SECRET = "edge-test-secret-5d1c0a"
ENV = {"SUPABASE_URL": "http://127.0.0.1:9", "CRON_SECRET": SECRET, "SUPABASE_SERVICE_ROLE_KEY": "edge-test-key"}

JOBS = """
INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, is_active, last_run_at) VALUES
  ('never', 't', '*/5 * * * *', '/functions/v1/a', true, NULL),
  ('due', 't', '*/5 * * * *', '/functions/v1/b', true, now() - interval '6 minutes'),
  ('not_due', 't', '0 3 * * *', '/functions/v1/c', true, now() - interval '1 minute'),
  ('inactive', 't', '* * * * *', '/functions/v1/d', false, NULL)
"""


def _post(edge: EdgeFunction, secret: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["x-cron-secret"] = secret
    return httpx.post(edge.url + PATH, json={"triggered_by": "pg_cron"}, headers=headers, timeout=10)


def test_edge_runs_due_jobs_once(audited_db: DbTarget, capfd: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(audited_db.url, autocommit=True) as conn:
        conn.execute(JOBS)
    with EdgeFunction(audited_db.url, SECRET, port=0) as edge:
        assert _post(edge, "wrong").status_code == 401
        assert _post(edge, None).status_code == 401
        first = _post(edge, SECRET)
        assert (first.status_code, first.json()) == (200, {"ran": 2})
        assert _post(edge, SECRET).json() == {"ran": 0}  # nothing is due twice
        assert httpx.post(edge.url + "/functions/v1/other", headers={"x-cron-secret": SECRET}).status_code == 404
        assert edge.statuses == [401, 401, 200, 200]
        assert SECRET not in repr(edge)
    with psycopg.connect(audited_db.url, autocommit=True) as conn:
        ran = conn.execute("SELECT s.job_name, e.status, e.completed_at IS NOT NULL FROM public.job_executions e"
                           " JOIN public.scheduled_jobs s ON s.id = e.job_id ORDER BY 1").fetchall()
        assert ran == [("due", "succeeded", True), ("never", "succeeded", True)]
        rows = dict(conn.execute("SELECT job_name, coalesce(last_run_at > now() - interval '1 minute'"
                                 " AND next_run_at > now(), false) FROM public.scheduled_jobs").fetchall())
        assert rows == {"never": True, "due": True, "not_due": False, "inactive": False}
    logged = capfd.readouterr()
    assert "jobs_ran ran=2" in logged.err
    assert SECRET not in logged.out + logged.err


def test_edge_command_line(audited_db: DbTarget, tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "root"
    base = [sys.executable, "-m", "localdb", "edge"]
    env = {**os.environ, "EDGE_SECRET": SECRET}
    args = ["--root", str(root), "--port", str(port)]
    missing = subprocess.run([*base, "start", *args, "--secret-env", "NOT_SET_ANYWHERE"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "NOT_SET_ANYWHERE is not set" in missing.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        busy = subprocess.run([*base, "start", *args, "--secret-env", "EDGE_SECRET", "--database-url",
                               audited_db.url], cwd=ROOT, env=env, capture_output=True, text=True)
    assert busy.returncode == 1 and f"port {port} is in use" in busy.stderr, busy.stderr
    assert busy.stdout == ""
    started = subprocess.run([*base, "start", *args, "--secret-env", "EDGE_SECRET", "--database-url",
                              audited_db.url], cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"http://127.0.0.1:{port}"
        status = subprocess.run([*base, "status", *args], cwd=ROOT, capture_output=True, text=True)
        assert status.returncode == 0 and status.stdout.startswith("running (pid ")
        answer = httpx.post(f"http://127.0.0.1:{port}{PATH}", headers={"x-cron-secret": SECRET}, timeout=10)
        assert (answer.status_code, answer.json()) == (200, {"ran": 0})
        assert httpx.post(f"http://127.0.0.1:{port}{PATH}", headers={"x-cron-secret": "no"}).status_code == 401
    finally:
        stopped = subprocess.run([*base, "stop", *args], cwd=ROOT, capture_output=True, text=True)
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped"
    assert subprocess.run([*base, "status", *args], cwd=ROOT, capture_output=True, text=True).returncode == 3
    log = (root / "edge.log").read_text()
    assert "jobs_ran ran=0" in log and "request_rejected status=401" in log
    assert SECRET not in log


def _verify(url: str, *args: str, env: dict[str, str | None] | None = None) -> tuple[int, dict[str, dict]]:
    result = CliRunner().invoke(main, ["verify", "-f", str(MANIFEST), "--format", "json", *args],
                                env={**ENV, "DATABASE_URL": url, **(env or {})}, catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    return result.exit_code, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_verify_before_anything_is_applied(audited_db: DbTarget) -> None:
    code, checks = _verify(audited_db.url)
    assert code == 2
    assert checks["preflight"]["status"] == "fail"
    assert checks["master-scheduler: runs"]["status"] == "fail"
    assert "cron.job cannot be read: does not exist" in checks["master-scheduler: runs"]["summary"]
    assert checks["scheduled jobs: freshness"]["status"] == "warn"  # no active jobs yet


def test_missing_secret_sources_fail_preflight_only(audited_db: DbTarget) -> None:
    code, checks = _verify(audited_db.url, env={"CRON_SECRET": None})
    assert code == 2
    assert checks["preflight"]["status"] == "fail"
    assert "CRON_SECRET" in checks["preflight"]["summary"]
    assert "secret literals" in checks


def test_a_missing_source_still_scrubs_every_value_that_resolves(audited_db: DbTarget) -> None:
    key = ENV["SUPABASE_SERVICE_ROLE_KEY"]
    with psycopg.connect(audited_db.url, autocommit=True) as conn:  # a job name the jobs check will print
        conn.execute("INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, is_active)"
                     " VALUES (%s, 't', '*/5 * * * *', '/functions/v1/a', true)", (f"job-{key}",))
    result = CliRunner().invoke(main, ["verify", "-f", str(MANIFEST), "--format", "json"],
                                env={**ENV, "CRON_SECRET": None, "DATABASE_URL": audited_db.url},
                                catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "job-(sensitive)" in result.stdout
    assert key not in result.output


def test_stuck_queue_and_housekeeping(audited_db: DbTarget) -> None:
    """A worker that takes nothing from the queue (a trigger keeps every row), a run 90 s ago whose request
    is still queued, and a big, old run history: the not-sending diagnosis and a housekeeping warning."""
    url = audited_db.url
    applied = CliRunner().invoke(main, ["-f", str(MANIFEST), "--apply"], env={**ENV, "DATABASE_URL": url})
    assert applied.exit_code == 0, applied.output
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION public.keep_queued() RETURNS trigger LANGUAGE plpgsql AS"
                     " 'BEGIN RETURN NULL; END'")
        conn.execute("CREATE TRIGGER keep_queued BEFORE DELETE ON net.http_request_queue"
                     " FOR EACH ROW EXECUTE FUNCTION public.keep_queued()")
        jid = conn.execute("SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'").fetchone()[0]
        run = ("INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
               " return_message, start_time, end_time) SELECT %s, 1, 'postgres', 'postgres', 'x', 'succeeded',"
               " '1 row', t, t FROM ")
        conn.execute(run + "(SELECT now() - interval '30 days' + g * interval '1 second' AS t"
                           " FROM generate_series(1, 100001) g) s", (jid,))
        conn.execute(run + "(SELECT now() - interval '90 seconds' AS t) s", (jid,))
        conn.execute("SELECT net.http_post('http://127.0.0.1:9/functions/v1/run-scheduled-jobs?x=1')")
    code, checks = _verify(url)
    assert code == 2
    http = checks["master-scheduler: http"]
    assert (http["status"], http["summary"]) == ("fail", "the pg_net worker is not sending: requests wait in the queue")
    assert "pg_net.database_name" in http["fix"]
    house = checks["housekeeping"]
    assert house["status"] == "warn"
    assert house["evidence"][0].startswith("cron.job_run_details: 100,00")  # 100,002 or one more real run
    assert "over 100,000 rows and older than 7 days" in house["evidence"][0]
    assert "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days'" in house["fix"]


def test_a_wait_poll_reads_only_what_settles_the_wait(audited_db: DbTarget) -> None:
    """--wait polls once a second: the application tables and the table sizes are read once, at the end."""
    from reconciler.verify.read import Reader

    with psycopg.connect(audited_db.url, autocommit=True) as conn:
        conn.execute(JOBS)
        reader = Reader(conn, ())
        polled, full = reader.read(full=False), reader.read()
    assert polled.scheduled_jobs == () and polled.tables == () and polled.texts == ()
    assert {j.name for j in full.scheduled_jobs} == {"never", "due", "not_due", "inactive"}
    assert {t.table for t in full.tables} == {"cron.job_run_details", "net._http_response"}


def test_a_wait_says_once_on_stderr_what_it_waits_for(audited_db: DbTarget) -> None:
    applied = CliRunner().invoke(main, ["-f", str(MANIFEST), "--apply"], env={**ENV, "DATABASE_URL": audited_db.url})
    assert applied.exit_code == 0, applied.output
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:  # no run can land within the wait
        conn.execute("UPDATE cron.job SET schedule = '0 0 1 1 *' WHERE jobname = 'master-scheduler'")
    result = CliRunner().invoke(main, ["verify", "-f", str(MANIFEST), "--format", "json", "--wait", "2s"],
                                env={**ENV, "DATABASE_URL": audited_db.url}, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.stderr == ("waiting up to 2s for a run of trigger master-scheduler since the check began "
                             "(and its HTTP answer)...\n")
    assert json.loads(result.stdout)["checks"]  # stdout stays one JSON document
