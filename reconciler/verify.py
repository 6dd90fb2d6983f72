"""Is the pipeline actually firing? Pure checks over evidence read from the database.

Where it sits: `verify_read.py` reads the evidence (cron.job, cron.job_run_details, pg_net's queue and
responses, job_executions, scheduled_jobs, table sizes) into the dataclasses below; `cli_verify.py`
adds the plan (`apply.read_and_plan`) and calls `run_checks(evidence)`, which returns one
`CheckResult` per check, and renders them with `to_text` / `to_json` / `to_markdown`.

Nothing here touches a database, the clock or the environment: `Evidence.now` is the database's
`now()`. No secret value ever reaches this module: URLs arrive as their path only, and literal
credentials found in SQL text are described by kind and position, never quoted.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from reconciler import cron
from reconciler.model import Action, Plan, Severity

__all__ = [
    "CheckResult",
    "CronJob",
    "CronRun",
    "DeclaredTrigger",
    "Evidence",
    "ExecutionRow",
    "HttpResponse",
    "ObservedRequest",
    "ScheduledJob",
    "Status",
    "TableStats",
    "TextField",
    "exit_code",
    "lookback",
    "run_checks",
    "scan_text",
    "settled",
    "to_json",
    "to_markdown",
    "to_text",
    "trigger_responses",
]

FORMAT_VERSION = "1"
#: A request still in pg_net's queue after this long means its worker is not sending.
STUCK_AFTER = timedelta(minutes=1)
#: How long after a run its response may be written: the request timeout plus this margin.
RESPONSE_MARGIN = timedelta(seconds=10)
DEFAULT_TIMEOUT_MS = 5000
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
class DeclaredTrigger:
    """A trigger of the manifest, as verify needs it. `endpoint` is the URL shown to people: a path or
    `{project_url}/path` (a secret's name, never its value); `path` is what queued URLs are matched on."""

    name: str
    schedule: str
    path: str | None = None  # None: a `command:` trigger, no HTTP to check
    endpoint: str = ""
    secret_header: str | None = None  # the vault secret sent as x-cron-secret
    timeout_ms: int = DEFAULT_TIMEOUT_MS


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


def _ago(now: datetime, then: datetime) -> str:
    return f"{_span(now - then)} ago"


def _span(delta: timedelta) -> str:
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


def _stamp(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _period(schedule: str) -> timedelta | None:
    try:
        return cron.parse(schedule).max_period()
    except cron.CronError:
        return None


def _short(text: str | None, limit: int = 200) -> str:
    one = " ".join((text or "").split())
    one = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", "<url>", one)  # never echo a URL (it may hold a secret)
    return one if len(one) <= limit else one[: limit - 1] + "…"


def lookback(declared: Sequence[DeclaredTrigger]) -> timedelta:
    """How far back the reader must look: two periods of the slowest declared trigger (2 min to 2 days)."""
    periods = [p for p in (_period(t.schedule) for t in declared) if p is not None]
    longest = max(periods, default=timedelta(minutes=1))
    return min(max(2 * longest, timedelta(minutes=2)), timedelta(days=2))


def _job_by_name(ev: Evidence, name: str) -> CronJob | None:
    return next((j for j in ev.cron_jobs if j.jobname == name), None)


def _window_start(ev: Evidence, period: timedelta | None) -> datetime:
    if ev.waited is not None or period is None:
        return ev.check_start
    return ev.now - 2 * period


def _runs_of(ev: Evidence, jobid: int) -> list[CronRun]:
    runs = [r for r in ev.runs if r.jobid == jobid]
    return sorted(runs, key=lambda r: (r.start_time, r.runid), reverse=True)


def _trigger_period(ev: Evidence, trig: DeclaredTrigger) -> timedelta | None:
    job = _job_by_name(ev, trig.name)
    return _period(job.schedule if job is not None else trig.schedule)


@dataclass(frozen=True)
class _Http:
    """A trigger's HTTP evidence in its window."""

    runs: list[CronRun]
    responses: list[HttpResponse]
    queued: list[tuple[ObservedRequest, timedelta]]  # still queued, with its estimated age


def _http_evidence(ev: Evidence, trig: DeclaredTrigger, job: CronJob, since: datetime) -> _Http:
    runs = [r for r in _runs_of(ev, job.jobid) if r.start_time >= since]
    # Without a known path ("/" or none) a request cannot be told apart from another trigger's: by time only.
    known = trig.path is not None and trig.path.strip("/") != ""
    ours = {r.id for r in ev.requests if known and _same_path(r.path, trig.path or "")}
    others = {r.id for r in ev.requests} - ours if known else set()
    reach = timedelta(milliseconds=trig.timeout_ms) + RESPONSE_MARGIN
    sent = [r for r in runs if r.status == "succeeded"]

    def correlated(resp: HttpResponse) -> bool:
        if resp.id in ours:
            return True
        if resp.id in others:
            return False
        return any(run.start_time <= resp.created <= (run.end_time or run.start_time) + reach for run in sent)

    responses = sorted((r for r in ev.responses if correlated(r)), key=lambda r: (r.created, r.id), reverse=True)
    queued = sorted((r for r in ev.requests if r.queued and r.id in ours), key=lambda r: r.id, reverse=True)
    # Each run queues one request, in order: the k-th newest queued request is the k-th newest run's.
    all_sent = [r for r in _runs_of(ev, job.jobid) if r.status == "succeeded"]
    aged = []
    for k, req in enumerate(queued):
        age = ev.now - req.first_seen
        if k < len(all_sent):
            age = max(age, ev.now - all_sent[k].start_time)
        aged.append((req, age))
    return _Http(runs, responses, aged)


def _same_path(seen: str, declared: str) -> bool:
    """The same path, or `seen` ends with it at a segment boundary (project_url may carry a path prefix)."""
    seen, declared = seen.rstrip("/"), declared.strip("/")
    return seen.lstrip("/") == declared or seen.endswith("/" + declared)


def trigger_responses(ev: Evidence, trig: DeclaredTrigger) -> list[HttpResponse]:
    """The responses matched to `trig`'s requests in its window, newest first, as `check_http` judges them
    (empty when it is not an http trigger or not scheduled). The controller's metrics use it."""
    job = _job_by_name(ev, trig.name)
    if job is None or trig.path is None:
        return []
    return _http_evidence(ev, trig, job, _window_start(ev, _trigger_period(ev, trig))).responses


def _outcome(resp: HttpResponse) -> str:
    if resp.status_code is not None:
        return f"HTTP {resp.status_code}"
    if resp.timed_out:
        return "timed out"
    return _short(resp.error_msg, 80) or "no status"


def _unreachable(resp: HttpResponse) -> bool:
    return resp.status_code is None  # a timeout, a refused connection, an unresolvable host: nothing answered


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


def check_runs(ev: Evidence, trig: DeclaredTrigger) -> CheckResult:
    name = f"{trig.name}: runs"
    job = _job_by_name(ev, trig.name)
    if "cron.job" in ev.unavailable:
        return CheckResult(name, Status.FAIL, f"cron.job cannot be read: {ev.unavailable['cron.job']}",
                           fix="install pg_cron (reconcile --apply) and grant SELECT on cron.job")
    if job is None:
        return CheckResult(name, Status.FAIL, f"trigger {trig.name} is not scheduled (no cron.job row)",
                           fix="run `reconcile --apply` to schedule it")
    period = _period(job.schedule)
    runs = _runs_of(ev, job.jobid)
    newest = runs[0] if runs else None
    facts = [f"jobid {job.jobid}, schedule {job.schedule!r}, active {str(job.active).lower()}"]
    if newest is not None:
        facts.append(f"newest run #{newest.runid}: {newest.status} at {_stamp(newest.start_time)}")
    if not job.active:
        return CheckResult(name, Status.FAIL, f"trigger {trig.name} is disabled (cron.job.active = false)",
                           tuple(facts), f"run `reconcile --apply`: it re-enables the trigger with "
                                         f"cron.alter_job({job.jobid}, active := true)")
    if "cron.job_run_details" in ev.unavailable:
        return CheckResult(name, Status.FAIL, "cron.job_run_details cannot be read: "
                           + ev.unavailable["cron.job_run_details"], tuple(facts),
                           "grant SELECT on cron.job_run_details to this role")
    if period is None:
        return CheckResult(name, Status.WARN, f"schedule {job.schedule!r} has no regular period; not judged",
                           tuple(facts))
    since = _window_start(ev, period)
    in_window = [r for r in runs if r.start_time >= since]
    finished = [r for r in in_window if r.status in FINISHED]
    failed = [r for r in finished if r.status == "failed"]
    if failed:
        facts.append(f"{len(failed)} of {len(finished)} finished run(s) in the window failed")
        facts += [f"run #{r.runid} at {_stamp(r.start_time)}: {_short(r.return_message)}" for r in failed[:3]]
    not_firing_fix = ("check that pg_cron's launcher runs (SELECT * FROM pg_stat_activity WHERE application_name"
                      " = 'pg_cron scheduler'), that cron.database_name names this database, and the server log")
    if ev.waited is not None:
        if not finished:
            what = "no run finished" if in_window else "no new run appeared"
            return CheckResult(name, Status.FAIL,
                               f"{what} within the --wait of {_span(ev.waited)} (schedule {job.schedule!r})",
                               tuple(facts), not_firing_fix)
    else:
        if newest is None:
            return CheckResult(name, Status.FAIL, f"trigger {trig.name} has never run", tuple(facts),
                               "a new trigger first runs at its next scheduled time: run `reconcile verify "
                               "--wait 90s`; if it still never runs, " + not_firing_fix)
        if in_window and not finished:
            return CheckResult(name, Status.FAIL,
                               f"{len(in_window)} run(s) started in the window, none finished (newest: "
                               f"{newest.status}, {_ago(ev.now, newest.start_time)})", tuple(facts),
                               "a run that does not finish is blocked: look for lock waits in pg_stat_activity "
                               "(application_name 'pg_cron') and for the command's statement_timeout")
        if not finished:
            return CheckResult(name, Status.FAIL,
                               f"last run {_ago(ev.now, newest.start_time)}: more than two periods "
                               f"({_span(2 * period)}) ago", tuple(facts), not_firing_fix)
    last = finished[0]
    if last.status == "failed":
        return CheckResult(name, Status.FAIL,
                           f"the newest run failed: {_short(last.return_message) or '(no message)'}",
                           tuple(facts), "fix the command's error above (the trigger's SQL runs as "
                                         f"{trig.name}'s username); `reconcile --dry-run` shows command drift")
    summary = f"ran {_ago(ev.now, last.start_time)} ({len(finished)} finished run(s) in the window)"
    if failed:
        return CheckResult(name, Status.WARN, summary + ", some failed", tuple(facts))
    return CheckResult(name, Status.PASS, summary, tuple(facts))


def check_http(ev: Evidence, trig: DeclaredTrigger) -> CheckResult:
    name = f"{trig.name}: http"
    job = _job_by_name(ev, trig.name)
    if job is None or not job.active:
        return CheckResult(name, Status.SKIP, "the trigger is not scheduled and active; no request to check")
    for rel in ("net._http_response", "net.http_request_queue"):
        if rel in ev.unavailable:
            return CheckResult(name, Status.FAIL, f"{rel} cannot be read: {ev.unavailable[rel]}",
                               fix="install pg_net (reconcile --apply) and grant SELECT on net's tables")
    period = _trigger_period(ev, trig)
    http = _http_evidence(ev, trig, job, _window_start(ev, period))
    counts = Counter(_outcome(r) for r in http.responses)
    facts = [f"endpoint {trig.endpoint}"]
    if http.responses:
        facts.append("responses in the window: " + ", ".join(f"{n}× {o}" for o, n in counts.most_common()))
    stuck = [(req, age) for req, age in http.queued if age > STUCK_AFTER]
    if stuck:
        oldest = max(age for _, age in stuck)
        facts.append(f"{len(stuck)} request(s) to {trig.endpoint} still in net.http_request_queue, the oldest for"
                     f" about {_span(oldest)}")
        fix = "pg_net's background worker sends requests only for the database named by pg_net.database_name"
        if ev.pg_net_database is not None and ev.pg_net_database != ev.database:
            fix += (f" — it is {ev.pg_net_database!r} but this database is {ev.database!r}: set "
                    f"pg_net.database_name = '{ev.database}' and restart the server")
        else:
            fix += (f" (default 'postgres'; this database is {ev.database!r}); check the worker is alive "
                    "(SELECT pid FROM pg_stat_activity WHERE backend_type ILIKE '%pg_net%' or application_name "
                    "ILIKE 'pg_net%'), and restart it with SELECT net.worker_restart() where available")
        return CheckResult(name, Status.FAIL, f"{NOT_SENDING}: requests wait in the queue", tuple(facts), fix)
    sent_runs = [r for r in http.runs if r.status == "succeeded"]
    if not http.responses:
        if http.queued:
            return CheckResult(name, Status.WARN, "the request is queued and not answered yet", tuple(facts),
                               "run verify again in a minute (or with --wait)")
        if not sent_runs:
            return CheckResult(name, Status.SKIP, "no successful run in the window, so no request to check",
                               tuple(facts))
        return CheckResult(name, Status.WARN,
                           f"no response recorded for {len(sent_runs)} run(s) in the window", tuple(facts),
                           "responses are kept for pg_net.ttl (6 hours); if the trigger's command is not an "
                           "http_post, `reconcile --dry-run` shows the drift")
    newest = http.responses[0]
    facts.append(f"newest response: request {newest.id} at {_stamp(newest.created)}: {_outcome(newest)}")
    code = newest.status_code
    if code is not None and 200 <= code < 300:
        return CheckResult(name, Status.PASS, f"{trig.endpoint} answered HTTP {code}", tuple(facts))
    if code in (401, 403):
        secret = trig.secret_header or "cron_secret"
        return CheckResult(name, Status.FAIL, SECRET_MISMATCH.format(secret=secret) + f" (HTTP {code})", tuple(facts),
                           f"make both sides one value: set the Edge Function secret (supabase secrets set "
                           f"CRON_SECRET=...) to the value `reconcile` writes to vault secret {secret}, or give "
                           f"`reconcile --apply` the Edge Function's value; both should come from one secret store")
    if _unreachable(newest):
        reason = "timed out" if newest.timed_out else _short(newest.error_msg, 120) or "no answer"
        return CheckResult(name, Status.FAIL, f"unreachable: {trig.endpoint}: {reason}", tuple(facts),
                           "check that project_url in Vault names the deployed project (it is the URL's base), "
                           "that the Edge Function run-scheduled-jobs is deployed, and that the database can "
                           "reach it (DNS, egress, timeout_milliseconds)")
    return CheckResult(name, Status.FAIL, f"{trig.endpoint} answered HTTP {code}", tuple(facts),
                       "read the Edge Function's logs for run-scheduled-jobs (404: not deployed at this path;"
                       " 5xx: it crashed)")


def check_executions(ev: Evidence, trig: DeclaredTrigger, http: CheckResult) -> CheckResult:
    name = f"{trig.name}: executions"
    if http.status is not Status.PASS:
        return CheckResult(name, Status.SKIP, "not checked: no successful request to the endpoint in the window")
    if "public.job_executions" in ev.unavailable:
        return CheckResult(name, Status.FAIL, "public.job_executions cannot be read: "
                           + ev.unavailable["public.job_executions"])
    job = _job_by_name(ev, trig.name)
    assert job is not None
    since = _window_start(ev, _trigger_period(ev, trig))
    rows = [e for e in ev.executions if e.started_at >= since]
    if rows:
        failed = [e for e in rows if (e.status or "").lower() in ("failed", "error")]
        facts = [f"newest: {rows[0].job_name or '?'} {rows[0].status} at {_stamp(rows[0].started_at)}"]
        facts += [f"{e.job_name or '?'} failed at {_stamp(e.started_at)}: {_short(e.error_message)}" for e in failed[:5]]
        summary = f"{len(rows)} job_executions row(s) since {_stamp(since)}"
        if failed:
            return CheckResult(name, Status.WARN, summary + f", {len(failed)} failed", tuple(facts),
                               "see error_message of the failed executions and those functions' logs")
        return CheckResult(name, Status.PASS, summary, tuple(facts))
    http_ev = _http_evidence(ev, trig, job, since)
    answered = [r.created for r in http_ev.responses if r.status_code is not None and 200 <= r.status_code < 300]
    until = max(answered, default=ev.now)
    due = []
    for sj in ev.scheduled_jobs:
        if not sj.active:
            continue
        if sj.last_run_at is None:
            due.append(f"{sj.name} (never ran)")
            continue
        try:
            fire = cron.parse(sj.schedule).next_runs(since - timedelta(seconds=1), 1)
        except cron.CronError:
            continue
        if fire and fire[0] <= until:
            due.append(f"{sj.name} (due at {_stamp(fire[0])})")
    if not due:
        return CheckResult(name, Status.PASS, "no job was due in the window, so nothing to record",
                           (f"window since {_stamp(since)}",))
    return CheckResult(name, Status.FAIL, RECORDED_NOTHING,
                       (f"no job_executions row since {_stamp(since)}", "due: " + ", ".join(due[:8])
                        + (f" and {len(due) - 8} more" if len(due) > 8 else "")),
                       "read the logs of the Edge Function run-scheduled-jobs: it must insert job_executions and "
                       "update scheduled_jobs.last_run_at in this database (check its SUPABASE_URL / service role "
                       "key and that it selects active, due jobs)")


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
        period = _period(j.schedule)
        if period is None:
            odd.append(f"{j.name}: schedule {j.schedule!r} has no regular period")
            continue
        if j.last_run_at is None:
            if j.created_at is not None and ev.now - j.created_at < 2 * period:
                pending.append(f"{j.name}: never ran (created {_ago(ev.now, j.created_at)})")
            else:
                never.append(f"{j.name}: never ran")
        elif ev.now - j.last_run_at > 2 * period:
            stale.append(f"{j.name}: last ran {_ago(ev.now, j.last_run_at)} (schedule {j.schedule!r}, "
                         f"expected within {_span(2 * period)})")
    facts = tuple(stale + never + pending + odd)
    fix = ("the scheduler endpoint runs due jobs each time master-scheduler calls it: fix the checks above first; "
           "then read the logs of the jobs' Edge Functions")
    if stale or never:
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
        line = f"{t.table}: {t.rows:,} row{'' if t.rows == 1 else 's'}" + (f", oldest {_ago(ev.now, t.oldest)}" if t.oldest else "")
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
        return CheckResult(name, Status.SKIP, f"not checked: {_and(unread)} could not be read", tuple(facts))
    if unread:
        return CheckResult(name, Status.SKIP, f"{_and(read)} {'is' if len(read) == 1 else 'are'} within 100,000 rows "
                           f"and 7 days; {_and(unread)} could not be read", tuple(facts))
    return CheckResult(name, Status.PASS, "history tables are within 100,000 rows and 7 days", tuple(facts))


def _and(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


# -- literal credentials ----------------------------------------------------------------------------

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")
_SB_KEY = re.compile(r"sb_secret_[A-Za-z0-9_-]{8,}")
_TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{32,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_random(token: str) -> bool:
    """A long token that is a credential rather than SQL: hex with letters and digits, or a long mixed-case
    alphanumeric run (base64) between separators; identifiers and paths (`/functions/v1/fetch-rss`) are not."""
    token = token.strip("=")
    if len(token) < 32 or _UUID.fullmatch(token):
        return False
    if _HEX.fullmatch(token):
        return any(c.isdigit() for c in token) and any(c.isalpha() for c in token) and _entropy(token) >= 3.0
    longest = max(re.split(r"[_\-/.+=]", token), key=len)
    mixed = (any(c.islower() for c in longest) and any(c.isupper() for c in longest)
             and any(c.isdigit() for c in longest))
    return len(longest) >= 16 and mixed and _entropy(token) >= 3.5


def scan_text(text: str) -> list[tuple[str, int]]:
    """Literal credentials in `text`: (kind, character offset) pairs. Never returns the literal."""
    found: list[tuple[str, int]] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in (("a JWT-shaped token", _JWT), ("an sb_secret_ API key", _SB_KEY)):
        for m in pattern.finditer(text):
            found.append((kind, m.start()))
            taken.append(m.span())
    for m in _UUID.finditer(text):
        taken.append(m.span())
    for m in _TOKEN.finditer(text):
        if any(a < m.end() and m.start() < b for a, b in taken):
            continue
        if _looks_random(m.group()):
            found.append((f"a {len(m.group())}-character random-looking string", m.start()))
    return sorted(found, key=lambda f: f[1])


def check_secret_literals(ev: Evidence) -> CheckResult:
    name = "secret literals"
    hits = []
    for t in ev.texts:
        for kind, offset in scan_text(t.value):
            hits.append(f"{t.source} {t.key!r} column {t.column}: {kind} at character {offset + 1}")
    scanned = len({(t.source, t.key) for t in ev.texts})
    unread = [rel for rel in ("cron.job", "public.scheduled_jobs") if rel in ev.unavailable]
    if hits:
        return CheckResult(name, Status.FAIL, f"{len(hits)} literal credential(s) stored in plain text", tuple(hits),
                           "move the value into Vault (declare it under secrets: in the manifest) and read it when "
                           "the command runs with (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name "
                           "= '...'); then rotate the exposed credential: pg_cron also copied it into "
                           "cron.job_run_details.command of every run (DELETE those rows)")
    if len(unread) == 2:  # nothing could be scanned: not a pass
        return CheckResult(name, Status.SKIP, f"not checked: {_and(unread)} could not be read",
                           tuple(f"{rel}: not read ({ev.unavailable[rel]})" for rel in unread))
    if unread:
        read = "public.scheduled_jobs" if unread == ["cron.job"] else "cron.job"
        return CheckResult(name, Status.SKIP, f"no literal credentials in {read} ({scanned} row(s) scanned); "
                                              f"{unread[0]} could not be read: {ev.unavailable[unread[0]]}")
    return CheckResult(name, Status.PASS, f"no literal credentials in cron.job commands or scheduled_jobs "
                                          f"({scanned} row(s) scanned)")


# ---------------------------------------------------------------------------------------------------
# Waiting


def settled(ev: Evidence) -> bool:
    """With --wait: True once every active declared trigger has a finished run since the check began and, for
    an HTTP trigger whose run succeeded, its request has an answer or is stuck in the queue."""
    for trig in ev.declared:
        job = _job_by_name(ev, trig.name)
        if job is None or not job.active:
            continue
        new = [r for r in _runs_of(ev, job.jobid) if r.start_time >= ev.check_start]
        finished = [r for r in new if r.status in FINISHED]
        if not finished:
            return False
        if trig.path is None or finished[0].status != "succeeded":
            continue
        http = _http_evidence(ev, trig, job, ev.check_start)
        if not http.responses and not any(age > STUCK_AFTER for _, age in http.queued):
            return False
    return True


# ---------------------------------------------------------------------------------------------------
# Rendering

_LABELS = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "SKIP"}


def _counts(results: Sequence[CheckResult]) -> dict[str, int]:
    c = Counter(r.status for r in results)
    return {s.value: c.get(s, 0) for s in Status}


def _tally(results: Sequence[CheckResult]) -> str:
    c = _counts(results)
    return f"{c['pass']} passed, {c['warn']} warning(s), {c['fail']} failed, {c['skip']} skipped"


def to_text(results: Sequence[CheckResult]) -> str:
    out = []
    for r in results:
        out.append(f"{_LABELS[r.status]}  {r.name}: {r.summary}")
        out += [f"      - {line}" for line in r.evidence]
        if r.fix and r.status in (Status.FAIL, Status.WARN):
            first, *rest = r.fix.splitlines()
            out.append(f"      fix: {first}")
            out += [f"        {line}" for line in rest]
    verdict = "FAILED" if exit_code(results) else "OK"
    out.append(f"\nverify {verdict}: {_tally(results)}")
    return "\n".join(out) + "\n"


def to_json(results: Sequence[CheckResult]) -> str:
    doc = {"format_version": FORMAT_VERSION, "ok": exit_code(results) == 0, "counts": _counts(results),
           "checks": [r.as_dict() for r in results]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(results: Sequence[CheckResult]) -> str:
    icons = {Status.PASS: "✅ pass", Status.WARN: "⚠️ warn", Status.FAIL: "❌ fail", Status.SKIP: "➖ skip"}
    out = [f"### reconcile verify: {'failed' if exit_code(results) else 'ok'}", "", f"{_tally(results)}", "",
           "| status | check | summary |", "|---|---|---|"]
    out += [f"| {icons[r.status]} | {_md(r.name)} | {_md(r.summary)} |" for r in results]
    details = [r for r in results if r.status in (Status.FAIL, Status.WARN)]
    for r in details:
        out += ["", f"<details><summary>{_md(r.name)}: {_md(r.summary)}</summary>", ""]
        out += [f"- {_md(line)}" for line in r.evidence]
        if r.fix:
            out += ["", "**Fix:**", "", "```", r.fix, "```"]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
