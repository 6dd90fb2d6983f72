"""`reconcile verify`: is the pipeline actually firing? Pure checks over evidence read from the database.

Where it sits: `verify.read` reads the evidence (cron.job, cron.job_run_details, pg_net's queue and
responses, job_executions, scheduled_jobs, table sizes) into the dataclasses of `verify.evidence`;
`cli/verify.py` adds the plan (`apply.read_and_plan`) and calls `run_checks(evidence)` (`verify.checks`,
with the per-trigger checks in `verify.triggers` and the literal-credential scan in `verify.leaks`),
which returns one `CheckResult` per check, and renders them with `to_text` / `to_json` / `to_markdown`
(`verify.render`).

Importing this package imports no database driver: `verify.read` (psycopg) is imported by its users only.
"""

from __future__ import annotations

from reconciler.kinds.facts import DEFAULT_TIMEOUT_MS, DeclaredTrigger
from reconciler.verify.checks import (
    RETENTION,
    awaited,
    exit_code,
    lookback,
    overdue_jobs,
    run_checks,
    settled,
)
from reconciler.verify.evidence import (
    FORMAT_VERSION,
    NOT_SENDING,
    RECORDED_NOTHING,
    SECRET_MISMATCH,
    CheckResult,
    CronJob,
    CronRun,
    Evidence,
    ExecutionRow,
    HttpResponse,
    ObservedRequest,
    ScheduledJob,
    Status,
    TableStats,
    TextField,
    job_by_name,
    runs_of,
)
from reconciler.verify.leaks import scan_text
from reconciler.verify.render import to_json, to_markdown, to_text
from reconciler.verify.triggers import same_path, trigger_responses

__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "FORMAT_VERSION",
    "NOT_SENDING",
    "RECORDED_NOTHING",
    "RETENTION",
    "SECRET_MISMATCH",
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
    "same_path",
    "exit_code",
    "job_by_name",
    "lookback",
    "overdue_jobs",
    "run_checks",
    "runs_of",
    "scan_text",
    "awaited",
    "settled",
    "to_json",
    "to_markdown",
    "to_text",
    "trigger_responses",
]
