"""The evidence read's rows into an `Evidence` (`verify.evidence`): pure, no driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.kinds.facts import DeclaredTrigger
from reconciler.verify.evidence import (
    CronJob,
    CronRun,
    Evidence,
    ExecutionRow,
    HttpResponse,
    ObservedRequest,
    ScheduledJob,
    TableStats,
    TextField,
)
from reconciler.verify.queries import STATS


def utc_timestamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        value = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    # A `timestamp without time zone` column in an application table: the server stores UTC (Supabase).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def text_fields(source: str, key: str, row: dict[str, Any], prefix: str = "") -> list[TextField]:
    out = []
    for column, value in row.items():
        if isinstance(value, str):
            out.append(TextField(source, key, prefix + column, value))
        elif isinstance(value, dict):
            out += text_fields(source, key, value, f"{prefix}{column}.")
        elif isinstance(value, list):
            out += text_fields(source, key, {str(i): v for i, v in enumerate(value)}, f"{prefix}{column}.")
    return out


@dataclass
class Memory:
    """What survives from one read to the next on a `Reader` (the --wait polls): when the check began, and
    when each queued request was first seen."""

    check_start: datetime | None = None
    seen: dict[int, tuple[str, datetime]] = field(default_factory=dict)


def evidence_from_rows(head: tuple[Any, ...], rows_by_query: dict[str, list[tuple[Any, ...]]],
                       unavailable: dict[str, str], memory: Memory, declared: tuple[DeclaredTrigger, ...], *,
                       full: bool, later_now: datetime | None = None) -> Evidence:
    """The Evidence from the head's row and each query's rows (by query name), remembering in `memory`
    when each queued request was first seen. `later_now`: now() of a transaction after the head's."""
    head_now, database, pg_net_database, _present, _readable = head
    now = later_now or head_now
    check_start = memory.check_start
    assert check_start is not None

    def rows(rel: str, name: str) -> list[tuple[Any, ...]]:
        return [] if rel in unavailable else rows_by_query.get(name, [])

    cron_jobs = tuple(CronJob(*r) for r in rows("cron.job", "cron_jobs"))
    runs = tuple(CronRun(*r) for r in rows("cron.job_run_details", "runs"))
    responses = tuple(HttpResponse(*r) for r in rows("net._http_response", "responses"))
    queued = rows("net.http_request_queue", "queued")
    seen = memory.seen
    queued_ids = set()
    for rid, path in queued:
        queued_ids.add(rid)
        seen.setdefault(rid, (path, now))
    answered = {r.id for r in responses}
    requests = tuple(ObservedRequest(rid, path, first, rid in queued_ids)
                     for rid, (path, first) in sorted(seen.items())
                     if rid in queued_ids or rid in answered)
    if not full:
        return Evidence(now=now, check_start=check_start, declared=declared, cron_jobs=cron_jobs,
                        runs=runs, responses=responses, requests=requests, database=database,
                        pg_net_database=pg_net_database, unavailable=unavailable)
    executions = tuple(ExecutionRow(*r) for r in rows("public.job_executions", "executions"))
    scheduled, texts = [], []
    for (doc,) in rows("public.scheduled_jobs", "scheduled"):
        name = str(doc.get("job_name") or doc.get("id") or "?")
        scheduled.append(ScheduledJob(name, str(doc.get("schedule") or ""), bool(doc.get("is_active", True)),
                                      utc_timestamp(doc.get("last_run_at")), utc_timestamp(doc.get("created_at"))))
        texts += text_fields("public.scheduled_jobs", name, doc)
    for job in cron_jobs:
        texts.append(TextField("cron.job", job.jobname or f"#{job.jobid}", "command", job.command))
    tables = []
    for rel in STATS:
        got = rows(rel, f"stats:{rel}")
        if got:
            tables.append(TableStats(rel, int(got[0][0]), got[0][1]))
        else:
            tables.append(TableStats(rel, None, note=unavailable.get(rel, "")))
    return Evidence(
        now=now, check_start=check_start, declared=declared, cron_jobs=cron_jobs, runs=runs,
        responses=responses, requests=requests, executions=executions, scheduled_jobs=tuple(scheduled),
        tables=tuple(tables), texts=tuple(texts), database=database, pg_net_database=pg_net_database,
        unavailable=unavailable,
    )
