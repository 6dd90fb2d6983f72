"""verify's checks in their fixed order (`run_checks`), the whole-database ones (preflight, job freshness,
housekeeping), the exit code, the read window (`lookback`) and when --wait may stop (`settled`).

Pure: evidence in (`verify.evidence`, read by `verify.read`), `CheckResult`s out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from reconciler.kinds.facts import DeclaredTrigger
from reconciler.model import Action, Severity
from reconciler.verify.evidence import (
    FINISHED,
    HOUSEKEEPING_MAX_AGE,
    HOUSEKEEPING_MAX_ROWS,
    STUCK_AFTER,
    CheckResult,
    Evidence,
    Status,
    duration_text,
    job_by_name,
    joined_with_and,
    runs_of,
    schedule_period,
    time_ago,
)
from reconciler.verify.leaks import check_secret_literals
from reconciler.verify.triggers import check_executions, check_http, check_runs, http_evidence


def lookback(declared: Sequence[DeclaredTrigger]) -> timedelta:
    """How far back the reader must look: two periods of the slowest declared trigger (2 min to 2 days)."""
    periods = [p for p in (schedule_period(t.schedule) for t in declared) if p is not None]
    longest = max(periods, default=timedelta(minutes=1))
    return min(max(2 * longest, timedelta(minutes=2)), timedelta(days=2))


# ---------------------------------------------------------------------------------------------------
# The checks


def run_checks(ev: Evidence) -> list[CheckResult]:
    """Every check, in a fixed order: preflight, per trigger (runs, http, executions), jobs, housekeeping, secrets."""
    results = [check_preflight(ev)]
    for trig in ev.declared:
        results.append(check_runs(ev, trig))
        if trig.path is not None:
            http = check_http(ev, trig)
            results.append(http)
            results.append(check_executions(ev, trig, http))
    results.append(check_jobs(ev))
    results.append(check_housekeeping(ev))
    results.append(check_secret_literals(ev))
    return results


def exit_code(results: Iterable[CheckResult]) -> int:
    """0 when nothing fails, 2 when a check fails (1 is left to errors)."""
    return 2 if any(r.status is Status.FAIL for r in results) else 0


def _change_line(change: Any) -> str:
    line = f"{change.kind} {change.key}: {change.action.value}"
    if change.reason:
        line += f" ({change.reason})"
    parts = []
    for f in change.fields:
        if f.sensitive:
            parts.append(f"{f.path} (sensitive)")
        elif isinstance(f.old, bool | int | float | type(None)) and isinstance(f.new, bool | int | float | type(None)):
            parts.append(f"{f.path} {json.dumps(f.old)} → {json.dumps(f.new)}")
        else:
            parts.append(f"{f.path} changed")
    return line + (": " + ", ".join(parts) if parts else "")


def check_preflight(ev: Evidence) -> CheckResult:
    name = "preflight"
    if ev.plan_error is not None:
        return CheckResult(name, Status.FAIL, f"the plan could not be made: {ev.plan_error}",
                           ("the drift check needs every declared secret's source, as `reconcile` does",),
                           "set the missing variables (or mount the files) and run verify again; "
                           "the runtime checks below do not need them")
    plan = ev.plan
    if plan is None:
        return CheckResult(name, Status.SKIP, "no plan was made")
    lines = [f"{f.severity.value}: {f.message}" + (f" (fix: {f.fix})" if f.fix else "") for f in plan.findings]
    blocking = plan.blocking_findings
    mutating = [c for c in plan.changes if c.mutating]
    unmanaged = [c for c in plan.changes if c.action is Action.UNMANAGED]
    lines += [_change_line(c) for c in mutating]
    lines += [f"{c.kind} {c.key}: not declared and not managed (left alone)" for c in unmanaged]
    if mutating:
        fix = "review `reconcile --dry-run`, then run `reconcile --apply`"
        if blocking:  # the apply refuses until they are fixed: say so rather than send the user there first
            fix = ("first: " + "; ".join(f.fix or f.message for f in blocking) + "; then review `reconcile --dry-run` "
                   "and run `reconcile --apply` (it refuses while a blocking finding stands)")
        return CheckResult(name, Status.FAIL,
                           f"the database differs from {ev.manifest_name}: {len(mutating)} change(s) planned",
                           tuple(lines), fix)
    if blocking:
        return CheckResult(name, Status.FAIL, f"{len(blocking)} blocking finding(s)", tuple(lines),
                           "; ".join(f.fix for f in blocking if f.fix) or "see the findings")
    if any(f.severity is Severity.WARNING for f in plan.findings):
        return CheckResult(name, Status.WARN, f"the database matches {ev.manifest_name}, with warnings", tuple(lines))
    return CheckResult(name, Status.PASS, f"the database matches {ev.manifest_name} (the plan is empty)", tuple(lines))


def freshness(job: Any, now: datetime) -> tuple[str, timedelta | None]:
    """(state, period) of an active job: `fresh`, `stale` (last ran more than two periods ago), `never` (never ran
    though created more than two periods ago, or when unknown), `pending` (new, not run yet) or `odd` (no period)."""
    period = schedule_period(job.schedule)
    if period is None:
        return "odd", None
    if job.last_run_at is None:
        if job.created_at is not None and now - job.created_at < 2 * period:
            return "pending", period
        return "never", period
    return ("stale" if now - job.last_run_at > 2 * period else "fresh"), period


#: The freshness states that fail `scheduled jobs: freshness`.
OVERDUE = ("stale", "never")


def overdue_jobs(scheduled_jobs: Sequence[Any], now: datetime) -> int:
    """Active jobs whose `last_run_at` is older than two periods of their schedule, or that never ran
    although created more than two periods ago: the count behind a failing `scheduled jobs: freshness`."""
    return sum(1 for job in scheduled_jobs if job.active and freshness(job, now)[0] in OVERDUE)


def check_jobs(ev: Evidence) -> CheckResult:
    name = "scheduled jobs: freshness"
    if "public.scheduled_jobs" in ev.unavailable:
        return CheckResult(name, Status.FAIL, "public.scheduled_jobs cannot be read: "
                           + ev.unavailable["public.scheduled_jobs"])
    active = [j for j in ev.scheduled_jobs if j.active]
    if not active:
        return CheckResult(name, Status.WARN, "no active scheduled jobs", fix="declare jobs and run `reconcile --apply`")
    stale, never, pending, odd = [], [], [], []
    for j in sorted(active, key=lambda j: j.name):
        state, period = freshness(j, ev.now)
        if state == "odd":
            odd.append(f"{j.name}: schedule {j.schedule!r} has no regular period")
        elif state == "pending" and j.created_at is not None:
            pending.append(f"{j.name}: never ran (created {time_ago(ev.now, j.created_at)})")
        elif state == "never":
            never.append(f"{j.name}: never ran")
        elif state == "stale" and period is not None and j.last_run_at is not None:
            stale.append(f"{j.name}: last ran {time_ago(ev.now, j.last_run_at)} (schedule {j.schedule!r}, "
                         f"expected within {duration_text(2 * period)})")
    facts = tuple(stale + never + pending + odd)
    fix = ("the scheduler endpoint runs due jobs each time master-scheduler calls it: fix the checks above first; "
           "then read the logs of the jobs' Edge Functions")
    if overdue_jobs(active, ev.now):
        return CheckResult(name, Status.FAIL, f"{len(stale)} stale and {len(never)} never-run job(s) of "
                           f"{len(active)} active", facts, fix)
    if pending or odd:
        return CheckResult(name, Status.WARN, f"{len(pending)} new job(s) not run yet of {len(active)} active",
                           facts, "wait for the next scheduler call (or use --wait)")
    return CheckResult(name, Status.PASS, f"all {len(active)} active jobs ran within two periods of their schedule")


RETENTION = {
    "cron.job_run_details": (
        "triggers:\n"
        "  - name: cron-history-retention\n"
        "    schedule: \"17 3 * * *\"\n"
        "    command: DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days'"
    ),
    "net._http_response": (
        "triggers:\n"
        "  - name: pg-net-response-retention\n"
        "    schedule: \"*/30 * * * *\"\n"
        "    command: DELETE FROM net._http_response WHERE created < now() - interval '6 hours'"
    ),
}


def check_housekeeping(ev: Evidence) -> CheckResult:
    name = "housekeeping"
    facts, fixes, unread = [], [], []
    for t in ev.tables:
        if t.rows is None:
            facts.append(f"{t.table}: not read ({t.note or 'absent'})")
            unread.append(t.table)
            continue
        line = f"{t.table}: {t.rows:,} row{'' if t.rows == 1 else 's'}" + (f", oldest {time_ago(ev.now, t.oldest)}" if t.oldest else "")
        big = t.rows > HOUSEKEEPING_MAX_ROWS
        old = t.oldest is not None and ev.now - t.oldest > HOUSEKEEPING_MAX_AGE
        if big or old:
            line += " — " + " and ".join(w for w, on in (("over 100,000 rows", big), ("older than 7 days", old)) if on)
            fixes.append(f"declare a retention trigger in {ev.manifest_name} and run `reconcile --apply`:\n"
                         + RETENTION.get(t.table, ""))
        facts.append(line)
    if fixes:
        return CheckResult(name, Status.WARN, "history tables grow without limit", tuple(facts), "\n".join(fixes))
    # a table that could not be read was not judged: never a pass for it
    read = [t.table for t in ev.tables if t.rows is not None]
    if unread and not read:
        return CheckResult(name, Status.SKIP, f"not checked: {joined_with_and(unread)} could not be read", tuple(facts))
    if unread:
        return CheckResult(name, Status.SKIP, f"{joined_with_and(read)} {'is' if len(read) == 1 else 'are'} within 100,000 rows "
                           f"and 7 days; {joined_with_and(unread)} could not be read", tuple(facts))
    return CheckResult(name, Status.PASS, "history tables are within 100,000 rows and 7 days", tuple(facts))


# ---------------------------------------------------------------------------------------------------
# Waiting


def settled(ev: Evidence) -> bool:
    """With --wait: True once every active declared trigger has a finished run since the check began and, for
    an HTTP trigger whose run succeeded, its request has an answer or is stuck in the queue."""
    return not awaited(ev)


def awaited(ev: Evidence) -> list[str]:
    """The active declared triggers --wait still waits for (see `settled`), by name."""
    waiting = []
    for trig in ev.declared:
        job = job_by_name(ev, trig.name)
        if job is None or not job.active:
            continue
        new = [r for r in runs_of(ev, job.jobid) if r.start_time >= ev.check_start]
        finished = [r for r in new if r.status in FINISHED]
        if not finished:
            waiting.append(trig.name)
            continue
        if trig.path is None or finished[0].status != "succeeded":
            continue
        http = http_evidence(ev, trig, job, ev.check_start)
        if not http.responses and not any(age > STUCK_AFTER for _, age in http.queued):
            waiting.append(trig.name)
    return waiting
