"""End to end through the real pg_cron: a `* * * * *` job, as the runbook's master-scheduler does,
reads its URL and header from the vault stand-in and calls net.http_post; the worker delivers it to a
local HTTP server. pg_cron fires at minute boundaries, hence the wait (slow).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.standins.helpers import connect

COMMAND = """
SELECT net.http_post(
  url := (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'project_url')
         || '/functions/v1/run-scheduled-jobs',
  headers := jsonb_build_object(
    'Content-Type', 'application/json',
    'x-cron-secret', (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'cron_secret')
  ),
  body := jsonb_build_object('triggered_by', 'pg_cron')
) AS request_id
"""

SECRET = "e2e-cron-secret-4f1c"


@pytest.mark.slow
def test_cron_job_reaches_http_server_through_pg_net(supabase_like, http_server):
    with connect(supabase_like.url) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        conn.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
        conn.execute("CREATE EXTENSION supabase_vault")
        conn.execute("SELECT vault.create_secret(%s, 'project_url')", (http_server.url,))
        conn.execute("SELECT vault.create_secret(%s, 'cron_secret')", (SECRET,))
        jobid = conn.execute("SELECT cron.schedule('master-scheduler', '* * * * *', %s)",
                             (COMMAND,)).fetchone()[0]

        deadline = time.monotonic() + 75
        response = None
        while time.monotonic() < deadline and response is None:
            response = conn.execute("SELECT status_code FROM net._http_response").fetchone()
            time.sleep(0.5)
        assert response == (200,), "no response from the cron-triggered request within 75 s"
        status = conn.execute("SELECT status FROM cron.job_run_details WHERE jobid = %s",
                              (jobid,)).fetchone()

    assert status == ("succeeded",)
    seen = http_server.wait_seen()[0]
    assert (seen.method, seen.path) == ("POST", "/functions/v1/run-scheduled-jobs")
    assert seen.headers["x-cron-secret"] == SECRET
    assert json.loads(seen.body) == {"triggered_by": "pg_cron"}
    assert SECRET not in supabase_like.cluster.log_file.read_text()
