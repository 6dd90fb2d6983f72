"""verify's per-trigger checks: did it run, did its HTTP request get an answer, did the endpoint record
executions. Pure, over `evidence.Evidence`; `trigger_responses` is shared with the controller's metrics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler import cron
from reconciler.kinds.facts import DeclaredTrigger
from reconciler.verify.evidence import (
    FINISHED,
    NOT_SENDING,
    RECORDED_NOTHING,
    RESPONSE_MARGIN,
    SECRET_MISMATCH,
    STUCK_AFTER,
    CheckResult,
    CronJob,
    CronRun,
    Evidence,
    HttpResponse,
    ObservedRequest,
    Status,
    duration_text,
    job_by_name,
    runs_of,
    schedule_period,
    short_text,
    time_ago,
    timestamp_text,
    trigger_period,
    window_start,
)


@dataclass(frozen=True)
class _Http:
    """A trigger's HTTP evidence in its window."""

    runs: list[CronRun]
    responses: list[HttpResponse]
    queued: list[tuple[ObservedRequest, timedelta]]  # still queued, with its estimated age


def http_evidence(ev: Evidence, trig: DeclaredTrigger, job: CronJob, since: datetime) -> _Http:
    runs = [r for r in runs_of(ev, job.jobid) if r.start_time >= since]
    # Without a known path ("/" or none) a request cannot be told apart from another trigger's: by time only.
    known = trig.path is not None and trig.path.strip("/") != ""
    ours = {r.id for r in ev.requests if known and same_path(r.path, trig.path or "")}
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
    all_sent = [r for r in runs_of(ev, job.jobid) if r.status == "succeeded"]
    aged = []
    for k, req in enumerate(queued):
        age = ev.now - req.first_seen
        if k < len(all_sent):
            age = max(age, ev.now - all_sent[k].start_time)
        aged.append((req, age))
    return _Http(runs, responses, aged)


def same_path(seen: str, declared: str) -> bool:
    """The same path, or `seen` ends with it at a segment boundary (project_url may carry a path prefix)."""
    seen, declared = seen.rstrip("/"), declared.strip("/")
    return seen.lstrip("/") == declared or seen.endswith("/" + declared)


def trigger_responses(ev: Evidence, trig: DeclaredTrigger) -> list[HttpResponse]:
    """The responses matched to `trig`'s requests in its window, newest first, as `check_http` judges them
    (empty when it is not an http trigger or not scheduled). The controller's metrics use it."""
    job = job_by_name(ev, trig.name)
    if job is None or trig.path is None:
        return []
    return http_evidence(ev, trig, job, window_start(ev, trigger_period(ev, trig))).responses


def _outcome(resp: HttpResponse) -> str:
    if resp.status_code is not None:
        return f"HTTP {resp.status_code}"
    if resp.timed_out:
        return "timed out"
    return short_text(resp.error_msg, 80) or "no status"


def _unreachable(resp: HttpResponse) -> bool:
    return resp.status_code is None  # a timeout, a refused connection, an unresolvable host: nothing answered


def check_runs(ev: Evidence, trig: DeclaredTrigger) -> CheckResult:
    name = f"{trig.name}: runs"
    job = job_by_name(ev, trig.name)
    if "cron.job" in ev.unavailable:
        return CheckResult(name, Status.FAIL, f"cron.job cannot be read: {ev.unavailable['cron.job']}",
                           fix="install pg_cron (reconcile --apply) and grant SELECT on cron.job")
    if job is None:
        return CheckResult(name, Status.FAIL, f"trigger {trig.name} is not scheduled (no cron.job row)",
                           fix="run `reconcile --apply` to schedule it")
    period = schedule_period(job.schedule)
    runs = runs_of(ev, job.jobid)
    newest = runs[0] if runs else None
    facts = [f"jobid {job.jobid}, schedule {job.schedule!r}, active {str(job.active).lower()}"]
    if newest is not None:
        facts.append(f"newest run #{newest.runid}: {newest.status} at {timestamp_text(newest.start_time)}")
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
    since = window_start(ev, period)
    in_window = [r for r in runs if r.start_time >= since]
    finished = [r for r in in_window if r.status in FINISHED]
    failed = [r for r in finished if r.status == "failed"]
    if failed:
        facts.append(f"{len(failed)} of {len(finished)} finished run(s) in the window failed")
        facts += [f"run #{r.runid} at {timestamp_text(r.start_time)}: {short_text(r.return_message)}" for r in failed[:3]]
    not_firing_fix = ("check that pg_cron's launcher runs (SELECT * FROM pg_stat_activity WHERE application_name"
                      " = 'pg_cron scheduler'), that cron.database_name names this database, and the server log")
    if ev.waited is not None:
        if not finished:
            what = "no run finished" if in_window else "no new run appeared"
            return CheckResult(name, Status.FAIL,
                               f"{what} within the --wait of {duration_text(ev.waited)} (schedule {job.schedule!r})",
                               tuple(facts), not_firing_fix)
    else:
        if newest is None:
            return CheckResult(name, Status.FAIL, f"trigger {trig.name} has never run", tuple(facts),
                               "a new trigger first runs at its next scheduled time: run `reconcile verify "
                               "--wait 90s`; if it still never runs, " + not_firing_fix)
        if in_window and not finished:
            return CheckResult(name, Status.FAIL,
                               f"{len(in_window)} run(s) started in the window, none finished (newest: "
                               f"{newest.status}, {time_ago(ev.now, newest.start_time)})", tuple(facts),
                               "a run that does not finish is blocked: look for lock waits in pg_stat_activity "
                               "(application_name 'pg_cron') and for the command's statement_timeout")
        if not finished:
            return CheckResult(name, Status.FAIL,
                               f"last run {time_ago(ev.now, newest.start_time)}: more than two periods "
                               f"({duration_text(2 * period)}) ago", tuple(facts), not_firing_fix)
    last = finished[0]
    if last.status == "failed":
        return CheckResult(name, Status.FAIL,
                           f"the newest run failed: {short_text(last.return_message) or '(no message)'}",
                           tuple(facts), "fix the command's error above (the trigger's SQL runs as "
                                         f"{trig.name}'s username); `reconcile --dry-run` shows command drift")
    summary = f"ran {time_ago(ev.now, last.start_time)} ({len(finished)} finished run(s) in the window)"
    if failed:
        return CheckResult(name, Status.WARN, summary + ", some failed", tuple(facts))
    return CheckResult(name, Status.PASS, summary, tuple(facts))


def check_http(ev: Evidence, trig: DeclaredTrigger) -> CheckResult:
    name = f"{trig.name}: http"
    job = job_by_name(ev, trig.name)
    if job is None or not job.active:
        return CheckResult(name, Status.SKIP, "the trigger is not scheduled and active; no request to check")
    for rel in ("net._http_response", "net.http_request_queue"):
        if rel in ev.unavailable:
            return CheckResult(name, Status.FAIL, f"{rel} cannot be read: {ev.unavailable[rel]}",
                               fix="install pg_net (reconcile --apply) and grant SELECT on net's tables")
    period = trigger_period(ev, trig)
    http = http_evidence(ev, trig, job, window_start(ev, period))
    counts = Counter(_outcome(r) for r in http.responses)
    facts = [f"endpoint {trig.endpoint}"]
    if http.responses:
        facts.append("responses in the window: " + ", ".join(f"{n}× {o}" for o, n in counts.most_common()))
    stuck = [(req, age) for req, age in http.queued if age > STUCK_AFTER]
    if stuck:
        oldest = max(age for _, age in stuck)
        facts.append(f"{len(stuck)} request(s) to {trig.endpoint} still in net.http_request_queue, the oldest for"
                     f" about {duration_text(oldest)}")
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
    facts.append(f"newest response: request {newest.id} at {timestamp_text(newest.created)}: {_outcome(newest)}")
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
        reason = "timed out" if newest.timed_out else short_text(newest.error_msg, 120) or "no answer"
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
    job = job_by_name(ev, trig.name)
    assert job is not None
    since = window_start(ev, trigger_period(ev, trig))
    rows = [e for e in ev.executions if e.started_at >= since]
    if rows:
        failed = [e for e in rows if (e.status or "").lower() in ("failed", "error")]
        facts = [f"newest: {rows[0].job_name or '?'} {rows[0].status} at {timestamp_text(rows[0].started_at)}"]
        facts += [f"{e.job_name or '?'} failed at {timestamp_text(e.started_at)}: {short_text(e.error_message)}" for e in failed[:5]]
        summary = f"{len(rows)} job_executions row(s) since {timestamp_text(since)}"
        if failed:
            return CheckResult(name, Status.WARN, summary + f", {len(failed)} failed", tuple(facts),
                               "see error_message of the failed executions and those functions' logs")
        return CheckResult(name, Status.PASS, summary, tuple(facts))
    http_ev = http_evidence(ev, trig, job, since)
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
            due.append(f"{sj.name} (due at {timestamp_text(fire[0])})")
    if not due:
        return CheckResult(name, Status.PASS, "no job was due in the window, so nothing to record",
                           (f"window since {timestamp_text(since)}",))
    return CheckResult(name, Status.FAIL, RECORDED_NOTHING,
                       (f"no job_executions row since {timestamp_text(since)}", "due: " + ", ".join(due[:8])
                        + (f" and {len(due) - 8} more" if len(due) > 8 else "")),
                       "read the logs of the Edge Function run-scheduled-jobs: it must insert job_executions and "
                       "update scheduled_jobs.last_run_at in this database (check its SUPABASE_URL / service role "
                       "key and that it selects active, due jobs)")
