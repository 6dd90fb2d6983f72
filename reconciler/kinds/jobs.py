"""Kind `job`: rows of public.scheduled_jobs keyed by job_name (the application's own table).

Only declared columns are read or written. Rows are written in batches: one INSERT for all new rows and
one UPDATE per distinct set of changed columns, so round trips do not grow with the number of jobs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import sql
from reconciler import cron
from reconciler.kinds.base import Capabilities, Inputs, PlanContext, Statement, in_sync, undeclared
from reconciler.model import Action, Change, Finding, Severity

KIND = "job"
PRUNABLE = True
TABLE = ("public", "scheduled_jobs")
TABLE_NAME = "public.scheduled_jobs"
#: Columns the reconciler writes, in the order rows are shown. `job_name` is the key.
FIELDS = ("job_type", "schedule", "endpoint", "description", "is_active")
REQUIRED_COLUMNS = ("job_name", *FIELDS)
ORPHAN = "(job_name is NULL)"


@dataclass(frozen=True, slots=True)
class LiveJob:
    row_id: str  # the row's id (or ctid when the table has no id column)
    job_name: str | None
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LiveJobs:
    by_name: Mapping[str, tuple[LiveJob, ...]]
    orphans: tuple[LiveJob, ...] = ()

    def __len__(self) -> int:
        return len(self.by_name)


def _identity_column(caps: Capabilities) -> str:
    return "id" if "id" in caps.job_columns else "ctid"


def read_query(caps: Capabilities, declared: Sequence[str]) -> Statement | None:
    from psycopg import sql

    if not caps.has(TABLE_NAME) or missing_columns(caps):
        return None
    ident = _identity_column(caps)
    order = sql.SQL("created_at, ") if "created_at" in caps.job_columns else sql.SQL("")
    query = sql.SQL("SELECT {}::text, job_name, {} FROM {} ORDER BY job_name, {}{}").format(
        sql.Identifier(ident),
        sql.SQL(", ").join(sql.Identifier(f) for f in FIELDS),
        sql.Identifier(*TABLE),
        order,
        sql.Identifier(ident),
    )
    return Statement(query)


def missing_columns(caps: Capabilities) -> list[str]:
    return [c for c in REQUIRED_COLUMNS if c not in caps.job_columns]


def from_rows(rows: list[tuple[Any, ...]], caps: Capabilities) -> LiveJobs:
    by_name: dict[str, list[LiveJob]] = defaultdict(list)
    orphans = []
    for row in rows:
        job = LiveJob(row[0], row[1], dict(zip(FIELDS, row[2:], strict=True)))
        if job.job_name is None:
            orphans.append(job)
        else:
            by_name[job.job_name].append(job)
    return LiveJobs({k: tuple(v) for k, v in by_name.items()}, tuple(orphans))


def desired(manifest: Any, inputs: Inputs) -> dict[str, dict[str, Any]]:
    return {
        job.name: {
            "job_type": job.type,
            "schedule": job.schedule,
            "endpoint": job.endpoint,
            "description": job.description,
            "is_active": job.active,
        }
        for job in manifest.jobs
    }


NORMALISERS = {
    "schedule": lambda v: cron.normalise(v) if isinstance(v, str) else v,
    "description": lambda v: v or "",
}


def diff(want: Mapping[str, Mapping[str, Any]], live: LiveJobs, ctx: PlanContext) -> list[Change]:
    from reconciler.kinds.base import field_changes

    changes: list[Change] = []
    for name, after in want.items():
        rows = live.by_name.get(name, ())
        if not rows:
            changes.append(Change(KIND, name, Action.CREATE, after={"job_name": name, **after}, reason="missing"))
            continue
        first, *extra = rows
        before = {"job_name": name, **first.fields}
        fields = field_changes(before, after, FIELDS, NORMALISERS)
        full_after = {"job_name": name, **after}
        if fields:
            changes.append(Change(KIND, name, Action.UPDATE, before={**before, "_row": first.row_id}, after=full_after,
                                  fields=fields, reason=_why(fields)))
        else:
            changes.append(in_sync(KIND, name, before, full_after, ctx))
        for dup in extra:
            changes.append(Change(KIND, name, Action.DELETE, before={"job_name": name, **dup.fields, "_row": dup.row_id},
                                  reason="duplicate rows"))
    for name, rows in live.by_name.items():
        if name in want:
            continue
        for row in rows:
            before = {"job_name": name, **row.fields, "_row": row.row_id}
            changes.append(undeclared(KIND, name, before, ctx, deactivated={**before, "is_active": False}))
    # Orphans are numbered in read order (created_at, id): the row id (a random uuid) would make the
    # plan differ between otherwise identical databases; apply uses `_row`, never the key.
    for number, row in enumerate(live.orphans, 1):
        before = {"job_name": None, **row.fields, "_row": row.row_id}
        key = f"{ORPHAN} #{number}"
        if ctx.options.prune and ctx.prune_policy not in ("off", "report"):
            changes.append(Change(KIND, key, Action.DELETE, before=before, reason="orphan row (job_name is NULL)"))
        else:
            changes.append(Change(KIND, key, Action.UNMANAGED, before=before, reason="orphan row (job_name is NULL)"))
    return changes


def _why(fields: Sequence[Any]) -> str:
    paths = [f.path for f in fields]
    if paths == ["is_active"]:
        return "deactivated outside git" if fields[0].new else "activated outside git"
    return "changed outside git: " + ", ".join(paths)


def findings(want: Mapping[str, Any], live: LiveJobs, ctx: PlanContext) -> list[Finding]:
    caps = ctx.capabilities
    if not caps.has(TABLE_NAME):
        if ctx.create_tables:
            return []
        return [Finding(Severity.ERROR, "jobs_table_missing", f"{TABLE_NAME} does not exist",
                        "create it (the application's migration) or set tables: {create_missing: true}")]
    missing = missing_columns(caps)
    if missing:
        return [Finding(Severity.ERROR, "jobs_table_columns", f"{TABLE_NAME} lacks column(s): {', '.join(missing)}",
                        "add them with the application's migration; the reconciler never alters existing tables")]
    if not caps.job_name_unique and want:
        return [Finding(Severity.WARNING, "jobs_table_not_unique", f"{TABLE_NAME}.job_name has no unique constraint",
                        "add one (CREATE UNIQUE INDEX ... ON public.scheduled_jobs (job_name)) so duplicates cannot appear")]
    return []


def statements(changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
    """All job changes as a handful of set-based statements."""
    from psycopg import sql

    table = sql.Identifier(*TABLE)
    ident = sql.Identifier(_identity_column(caps))
    out: list[Statement] = []
    creates = [c for c in changes if c.action is Action.CREATE]
    if creates:
        cols = ("job_name", *FIELDS)
        arrays = tuple([c.after[col] for c in creates] for col in cols)  # type: ignore[index]
        types = ("text", "text", "text", "text", "text", "boolean")
        out.append(Statement(
            sql.SQL("INSERT INTO {} ({}) SELECT * FROM unnest({})").format(
                table,
                sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(t)) for t in types),
            ),
            arrays,
            f"insert {len(creates)} job row(s)",
        ))
    updates: dict[tuple[str, ...], list[Change]] = defaultdict(list)  # changed columns -> rows
    for c in changes:
        if c.action is Action.UPDATE:
            updates[tuple(f.path for f in c.fields)].append(c)
        elif c.action is Action.DEACTIVATE:
            updates[("is_active",)].append(c)
    for columns, group in updates.items():
        out.append(_update(table, ident, caps, columns, group))
    deletes = [c for c in changes if c.action is Action.DELETE]
    if deletes:
        rows = [c.before["_row"] for c in deletes]  # type: ignore[index]
        out.append(Statement(
            sql.SQL("DELETE FROM {} WHERE {}::text = ANY(%s)").format(table, ident),
            (rows,),
            f"delete {len(deletes)} job row(s)",
        ))
    return out


_TYPES = {"job_type": "text", "schedule": "text", "endpoint": "text", "description": "text", "is_active": "boolean"}


def _update(table: sql.Composable, ident: sql.Composable, caps: Capabilities, cols: tuple[str, ...],
            group: list[Change]) -> Statement:
    from psycopg import sql

    assignments: list[sql.Composable] = [sql.SQL("{} = v.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in cols]
    if "updated_at" in caps.job_columns:
        assignments.append(sql.SQL("updated_at = now()"))
    rows = [c.before["_row"] for c in group]  # type: ignore[index]
    arrays = [[c.after[col] for c in group] for col in cols]  # type: ignore[index]
    query = sql.SQL("UPDATE {} AS t SET {} FROM unnest(%s::text[], {}) AS v(_row, {}) WHERE t.{}::text = v._row").format(
        table,
        sql.SQL(", ").join(assignments),
        sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(_TYPES[c])) for c in cols),
        sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        ident,
    )
    return Statement(query, (rows, *arrays), f"update {', '.join(cols)} of {len(group)} job row(s)")
