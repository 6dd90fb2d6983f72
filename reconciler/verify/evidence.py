"""What `reconcile verify` judges: the evidence rows read from the database (`verify.read`), the result of
a check, and the small helpers every check shares (time spans, a trigger's runs and window).

Nothing here touches a database, the clock or the environment: `Evidence.now` is the database's `now()`.
No secret value ever reaches this package: URLs arrive as their path only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from reconciler import cron
from reconciler.kinds.facts import DeclaredTrigger
from reconciler.model import Plan

FORMAT_VERSION = "1"
#: A request still in pg_net's queue after this long means its worker is not sending.
STUCK_AFTER = timedelta(minutes=1)
#: How long after a run its response may be written: the request timeout plus this margin.
RESPONSE_MARGIN = timedelta(seconds=10)
HOUSEKEEPING_MAX_ROWS = 100_000
HOUSEKEEPING_MAX_AGE = timedelta(days=7)
FINISHED = frozenset({"succeeded", "failed"})
SECRET_MISMATCH = "the endpoint rejected x-cron-secret: the vault secret {secret} differs from the Edge Function's CRON_SECRET"
NOT_SENDING = "the pg_net worker is not sending"
RECORDED_NOTHING = "the scheduler endpoint answered but recorded nothing"


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not applicable, or not checkable because an earlier check failed


# ---------------------------------------------------------------------------------------------------
# Evidence: plain rows, as read


@dataclass(frozen=True, slots=True)
class CronJob:
    jobid: int
    jobname: str | None
    schedule: str
    command: str
    active: bool


@dataclass(frozen=True, slots=True)
class CronRun:
    jobid: int
    runid: int
    status: str
    return_message: str | None
    start_time: datetime  # rows without one (never started) are not read
    end_time: datetime | None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A row of net._http_response (id = the request's id)."""

    id: int
    status_code: int | None
    timed_out: bool | None
    error_msg: str | None
    created: datetime


@dataclass(frozen=True, slots=True)
class ObservedRequest:
    """A request seen in net.http_request_queue by some poll: its URL's path only, when first seen."""

    id: int
    path: str
    first_seen: datetime
    queued: bool = True  # still in the queue at the last poll


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    job_name: str | None
    started_at: datetime
    status: str | None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    name: str
    schedule: str
    active: bool
    last_run_at: datetime | None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TableStats:
    table: str
    rows: int | None  # None: absent or unreadable (see `note`)
    oldest: datetime | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class TextField:
    """One text value to scan for literal credentials: where it lives, never shown itself."""

    source: str  # "cron.job" | "public.scheduled_jobs"
    key: str  # jobname / job_name
    column: str
    value: str


@dataclass(frozen=True)
class Evidence:
    now: datetime
    check_start: datetime
    waited: timedelta | None = None  # --wait, when given
    declared: tuple[DeclaredTrigger, ...] = ()
    cron_jobs: tuple[CronJob, ...] = ()
    runs: tuple[CronRun, ...] = ()
    responses: tuple[HttpResponse, ...] = ()
    requests: tuple[ObservedRequest, ...] = ()
    executions: tuple[ExecutionRow, ...] = ()
    scheduled_jobs: tuple[ScheduledJob, ...] = ()
    tables: tuple[TableStats, ...] = ()
    texts: tuple[TextField, ...] = ()
    database: str = ""
    pg_net_database: str | None = None
    unavailable: Mapping[str, str] = field(default_factory=dict)  # relation -> why it was not read
    plan: Plan | None = None
    plan_error: str | None = None
    manifest_name: str = "scheduler.yaml"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "summary": self.summary,
                "evidence": list(self.evidence), "fix": self.fix}


# ---------------------------------------------------------------------------------------------------
# Small helpers


def time_ago(now: datetime, then: datetime) -> str:
    return f"{duration_text(now - then)} ago"


def duration_text(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 600 and seconds % 60 else f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


def timestamp_text(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")


def schedule_period(schedule: str) -> timedelta | None:
    try:
        return cron.parse(schedule).max_period()
    except cron.CronError:
        return None


def short_text(text: str | None, limit: int = 200) -> str:
    one = " ".join((text or "").split())
    one = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", "<url>", one)  # never echo a URL (it may hold a secret)
    return one if len(one) <= limit else one[: limit - 1] + "…"


def job_by_name(ev: Evidence, name: str) -> CronJob | None:
    return next((j for j in ev.cron_jobs if j.jobname == name), None)


def window_start(ev: Evidence, period: timedelta | None) -> datetime:
    if ev.waited is not None or period is None:
        return ev.check_start
    return ev.now - 2 * period


def runs_of(ev: Evidence, jobid: int) -> list[CronRun]:
    runs = [r for r in ev.runs if r.jobid == jobid]
    return sorted(runs, key=lambda r: (r.start_time, r.runid), reverse=True)


def trigger_period(ev: Evidence, trig: DeclaredTrigger) -> timedelta | None:
    job = job_by_name(ev, trig.name)
    return schedule_period(job.schedule if job is not None else trig.schedule)


def joined_with_and(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)
