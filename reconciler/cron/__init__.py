"""The pg_cron schedule dialect: parse, normalise, and compute run times. Pure code, no I/O.

Where it sits: the manifest loader calls `parse()` to validate every job's schedule against the pg_cron
version the database runs (errors become manifest problems, warnings are shown by `reconcile validate`);
the job kind calls `normalise()` on the live `cron.job.schedule` text so that drift is judged on meaning,
not spelling (`*/15` and `0,15,30,45` are the same schedule); `reconcile validate --show-next` and the
verify checks call `Schedule.next_runs()` and `Schedule.max_period()` (how long a job may go without a
run before it is stale).

`cron.parser` follows pg_cron's own (vixie cron's) parser; `cron.schedule` holds the value it returns.
"""

from __future__ import annotations

from reconciler.cron.parser import normalise, parse
from reconciler.cron.schedule import PG_CRON_1_4, PG_CRON_1_5, PG_CRON_1_6, CronError, Schedule

__all__ = [
    "PG_CRON_1_4",
    "PG_CRON_1_5",
    "PG_CRON_1_6",
    "CronError",
    "Schedule",
    "normalise",
    "parse",
]
