"""The queries the evidence read (`verify.read`) sends: which relations it looks at, and the SQL for each.

Secrets stay in the database: queued request URLs are cut down to their path in SQL (the base URL is
the project_url secret), and nothing reads vault.
"""

from __future__ import annotations

ROW_LIMIT = 2000
RELATIONS = ("cron.job", "cron.job_run_details", "net.http_request_queue", "net._http_response",
             "public.scheduled_jobs", "public.job_executions")

# The head rides in the plan's (or the apply's) transaction, so it must not fail: the OID form of
# has_table_privilege is NULL for a missing relation, where the text form raises, whatever order the
# planner evaluates the conditions in.
HEAD = """
SELECT now(), current_database(), current_setting('pg_net.database_name', true),
       ARRAY(SELECT r FROM unnest(%(relations)s::text[]) r WHERE to_regclass(r) IS NOT NULL),
       ARRAY(SELECT r FROM unnest(%(relations)s::text[]) r WHERE has_table_privilege(to_regclass(r), 'SELECT'))
"""
CRON_JOBS = "SELECT jobid, jobname::text, schedule, command, active FROM cron.job ORDER BY jobid"
RUNS = f"""
SELECT jobid, runid, status, left(return_message, 500), start_time, end_time
  FROM cron.job_run_details
 WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname = ANY(%(names)s)) AND start_time IS NOT NULL
   AND (start_time >= %(since)s
        OR runid IN (SELECT max(runid) FROM cron.job_run_details
                      WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname = ANY(%(names)s)) GROUP BY jobid))
 ORDER BY start_time DESC
 LIMIT {ROW_LIMIT}
"""
RESPONSES = f"""
SELECT id, status_code, timed_out, left(error_msg, 500), created
  FROM net._http_response WHERE created >= %s ORDER BY created DESC LIMIT {ROW_LIMIT}
"""
# Only the path: scheme and authority (the project_url secret) and the query are cut off in the database.
QUEUE = f"""
SELECT id, split_part(split_part(regexp_replace(url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''), '?', 1), '#', 1)
  FROM net.http_request_queue ORDER BY id LIMIT {ROW_LIMIT}
"""
EXECUTIONS = f"""
SELECT s.job_name, e.started_at::timestamptz, e.status, left(e.error_message, 500)
  FROM public.job_executions e LEFT JOIN public.scheduled_jobs s ON s.id = e.job_id
 WHERE e.started_at >= %s ORDER BY e.started_at DESC LIMIT {ROW_LIMIT}
"""
SCHEDULED = "SELECT to_jsonb(s) FROM public.scheduled_jobs s"
STATS = {
    "cron.job_run_details": "SELECT count(*), min(start_time) FROM cron.job_run_details",
    "net._http_response": "SELECT count(*), min(created) FROM net._http_response",
}
