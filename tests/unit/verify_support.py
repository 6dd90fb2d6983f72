"""A healthy pipeline's evidence and its parts, for the verify, pipeline-metric and alert-rule tests.

Times are seconds relative to NOW (negative: the past).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from reconciler.model import Plan
from reconciler.verify import (
    CronJob,
    CronRun,
    DeclaredTrigger,
    Evidence,
    ExecutionRow,
    HttpResponse,
    ScheduledJob,
    TableStats,
    TextField,
)

NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)

TRIGGER = DeclaredTrigger("master-scheduler", "* * * * *", "/functions/v1/run-scheduled-jobs",
                          "{project_url}/functions/v1/run-scheduled-jobs", "cron_secret")

JOB = CronJob(7, "master-scheduler", "* * * * *", "SELECT net.http_post(...)", True)


def at(seconds: float) -> datetime:
    """NOW + seconds (negative: the past)."""
    return NOW + timedelta(seconds=seconds)


def run(runid: int, start: float, status: str = "succeeded", message: str = "1 row") -> CronRun:
    return CronRun(7, runid, status, message, at(start), at(start + 0.05))


def response(rid: int, created: float, status: int | None = 200, error: str | None = None,
             timed_out: bool = False) -> HttpResponse:
    return HttpResponse(rid, status, timed_out, error, at(created))


def fresh_jobs(last: float = -30) -> tuple[ScheduledJob, ...]:
    return (ScheduledJob("fetch_google_news", "*/5 * * * *", True, at(last), at(-86400)),
            ScheduledJob("ttl_cleanup", "0 3 * * *", True, at(last), at(-86400)))


def healthy(**changes: object) -> Evidence:
    ev = Evidence(
        now=NOW, check_start=at(-5), declared=(TRIGGER,), cron_jobs=(JOB,),
        runs=(run(2, -30), run(1, -90)), responses=(response(2, -29.5), response(1, -89.5)),
        executions=(ExecutionRow("fetch_google_news", at(-29.5), "succeeded"),),
        scheduled_jobs=fresh_jobs(),
        tables=(TableStats("cron.job_run_details", 2, at(-90)), TableStats("net._http_response", 2, at(-90))),
        texts=(TextField("cron.job", "master-scheduler", "command", JOB.command),),
        database="postgres", plan=Plan(),
    )
    return replace(ev, **changes)  # type: ignore[arg-type]
