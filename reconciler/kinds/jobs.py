"""Kind `job`: rows of public.scheduled_jobs keyed by job_name (the application's own table).

Only declared columns are read or written. Rows are written in batches: one INSERT for all new rows and
one UPDATE per distinct set of changed columns, so round trips do not grow with the number of jobs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.kinds.base import (
    Capabilities,
    Export,
    Inputs,
    KindDefaults,
    LiveState,
    PlanContext,
    Privilege,
    Rollback,
    Scheduled,
    Statement,
    TableCreation,
    export_problem,
)
from reconciler.kinds.common import in_sync, normalise_schedule, table_privilege, undeclared
from reconciler.model import Action, Change, Finding, Severity

if TYPE_CHECKING:
    from psycopg import sql

    from reconciler.manifest import Manifest

KIND = "job"
PRUNABLE = True
TABLE = ("public", "scheduled_jobs")
TABLE_NAME = "public.scheduled_jobs"
#: Columns the reconciler writes, in the order rows are shown. `job_name` is the key.
FIELDS = ("job_type", "schedule", "endpoint", "description", "is_active")
REQUIRED_COLUMNS = ("job_name", *FIELDS)
ORPHAN = "(job_name is NULL)"

#: Probes of the capabilities query (see Kind.probes).
PROBES = {
    "jobs.columns": """ARRAY(SELECT attname::text FROM pg_attribute
              WHERE attrelid = to_regclass('public.scheduled_jobs') AND attnum > 0 AND NOT attisdropped)""",
    "jobs.name_unique": """EXISTS (SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = to_regclass('public.scheduled_jobs') AND i.indisunique
                  AND i.indnatts = 1 AND a.attname = 'job_name')""",
    "jobs.insert": table_privilege(TABLE_NAME, "INSERT"),
    "jobs.update": table_privilege(TABLE_NAME, "UPDATE"),
    "jobs.delete": table_privilege(TABLE_NAME, "DELETE"),
}
INSERT = Privilege("jobs.insert", "insert rows into public.scheduled_jobs", "GRANT INSERT ON public.scheduled_jobs TO {user}")
UPDATE = Privilege("jobs.update", "update rows of public.scheduled_jobs", "GRANT UPDATE ON public.scheduled_jobs TO {user}")
DELETE = Privilege("jobs.delete", "delete rows of public.scheduled_jobs", "GRANT DELETE ON public.scheduled_jobs TO {user}")


def columns(caps: Capabilities) -> frozenset[str]:
    """The columns public.scheduled_jobs has (empty when it does not exist)."""
    return frozenset(caps.probe("jobs.columns", ()))


@dataclass(frozen=True, slots=True)
class LiveJob:
    row_id: str  # the row's id (or ctid when the table has no id column)
    job_name: str | None
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LiveJobs:
    by_name: Mapping[str, tuple[LiveJob, ...]]
    orphans: tuple[LiveJob, ...] = ()


def _identity_column(caps: Capabilities) -> str:
    return "id" if "id" in columns(caps) else "ctid"


def read_query(caps: Capabilities) -> Statement | None:
    from psycopg import sql

    if not caps.has(TABLE_NAME) or missing_columns(caps):
        return None
    ident = _identity_column(caps)
    order = sql.SQL("created_at, ") if "created_at" in columns(caps) else sql.SQL("")
    query = sql.SQL("SELECT {}::text, job_name, {} FROM {} ORDER BY job_name, {}{}").format(
        sql.Identifier(ident),
        sql.SQL(", ").join(sql.Identifier(f) for f in FIELDS),
        sql.Identifier(*TABLE),
        order,
        sql.Identifier(ident),
    )
    return Statement(query)


def missing_columns(caps: Capabilities) -> list[str]:
    have = columns(caps)
    return [c for c in REQUIRED_COLUMNS if c not in have]


NORMALISERS = {
    "schedule": normalise_schedule,
    "description": lambda v: v or "",
}


def _why(fields: Sequence[Any]) -> str:
    paths = [f.path for f in fields]
    if paths == ["is_active"]:
        return "deactivated outside git" if fields[0].new else "activated outside git"
    return "changed outside git: " + ", ".join(paths)


_TYPES = {"job_type": "text", "schedule": "text", "endpoint": "text", "description": "text", "is_active": "boolean"}


def _update(table: sql.Composable, ident: sql.Composable, caps: Capabilities, cols: tuple[str, ...],
            group: list[Change]) -> Statement:
    from psycopg import sql

    assignments: list[sql.Composable] = [sql.SQL("{} = v.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in cols]
    if "updated_at" in columns(caps):
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


class JobKind(KindDefaults):
    """Rows of the application's jobs table; `tables` is the kind that may create that table."""

    name = KIND
    prunable = PRUNABLE
    hidden_fields = frozenset({"_row", "job_name"})
    rollback_help = "deactivates managed jobs"
    assigned_fields = frozenset({"_row"})
    relations = (TABLE_NAME,)
    probes = PROBES

    def __init__(self, tables: TableCreation) -> None:
        self.tables = tables

    def read(self, caps: Capabilities, manifest: Manifest | None) -> Statement | None:
        return read_query(caps)

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> LiveJobs:
        by_name: dict[str, list[LiveJob]] = defaultdict(list)
        orphans = []
        for row in rows:
            job = LiveJob(row[0], row[1], dict(zip(FIELDS, row[2:], strict=True)))
            if job.job_name is None:
                orphans.append(job)
            else:
                by_name[job.job_name].append(job)
        return LiveJobs({k: tuple(v) for k, v in by_name.items()}, tuple(orphans))

    def desired(self, manifest: Manifest, inputs: Inputs) -> dict[str, dict[str, Any]]:
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

    def diff(self, want: Mapping[str, Mapping[str, Any]], live: LiveJobs, ctx: PlanContext) -> list[Change]:
        from reconciler.kinds.common import field_changes

        changes: list[Change] = []
        for name, after in want.items():
            rows = live.by_name.get(name, ())
            if not rows:
                changes.append(Change(KIND, name, Action.CREATE, after={"job_name": name, **after}, reason="missing"))
                continue
            first, *extra = rows
            before = {"job_name": name, **first.fields}
            # an equal row (the in-sync case, thousands of times) needs no field-by-field look
            fields = () if first.fields == after else field_changes(before, after, FIELDS, NORMALISERS)
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

    def findings(self, want: Mapping[str, Any], live: LiveJobs, ctx: PlanContext) -> list[Finding]:
        caps = ctx.capabilities
        if not caps.has(TABLE_NAME):
            if self.tables.creates(ctx.manifest, TABLE_NAME):
                return []
            return [Finding(Severity.ERROR, "jobs_table_missing", f"{TABLE_NAME} does not exist",
                            "create it (the application's migration) or set tables: {create_missing: true}")]
        missing = missing_columns(caps)
        if missing:
            return [Finding(Severity.ERROR, "jobs_table_columns", f"{TABLE_NAME} lacks column(s): {', '.join(missing)}",
                            "add them with the application's migration; the reconciler never alters existing tables")]
        if not caps.probe("jobs.name_unique", False) and want:
            return [Finding(Severity.WARNING, "jobs_table_not_unique", f"{TABLE_NAME}.job_name has no unique constraint",
                            "add one (CREATE UNIQUE INDEX ... ON public.scheduled_jobs (job_name)) so duplicates cannot appear")]
        return []

    def statements(self, changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
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

    def export(self, live: LiveState, caps: Capabilities) -> Export | None:
        """Every row as a job (the first of duplicate rows), every column the manifest models."""
        from reconciler.manifest import JobSpec

        if not caps.has(TABLE_NAME) or missing_columns(caps):
            return None
        jobs: LiveJobs = live.of(KIND)
        entries = []
        notes = []
        for name in sorted(jobs.by_name):
            first, *extra = jobs.by_name[name]
            fields = first.fields
            entry: dict[str, Any] = {"name": name, "type": fields["job_type"], "schedule": fields["schedule"],
                                     "endpoint": fields["endpoint"]}
            if fields["description"]:
                entry["description"] = fields["description"]
            if fields["is_active"] is not True:
                entry["active"] = False if fields["is_active"] is False else fields["is_active"]
            problem = export_problem(JobSpec, entry)
            if problem is not None:
                notes.append(f"job {name!r}: cannot be declared ({problem})")
                continue
            entries.append(entry)
            if extra:
                notes.append(f"job {name!r} has {len(extra) + 1} rows: the first is declared, a plan deletes the others")
        if jobs.orphans:
            notes.append(f"{len(jobs.orphans)} row(s) of {TABLE_NAME} have no job_name and cannot be declared")
        return Export("jobs", entries, notes=tuple(notes))

    def privileges(self, change: Change) -> tuple[Privilege, ...]:
        return {Action.CREATE: (INSERT,), Action.DELETE: (DELETE,)}.get(change.action, (UPDATE,))

    def prune_policy(self, manifest: Manifest) -> str:
        return manifest.prune.jobs

    def protected_keys(self, manifest: Manifest, caps: Capabilities) -> set[str]:
        return {j.name for j in manifest.jobs if j.protect}

    def declared(self, manifest: Manifest) -> int | None:
        return len(manifest.jobs)

    def schedules(self, manifest: Manifest) -> Sequence[Scheduled]:
        return [Scheduled(job.name, job.schedule, job.active) for job in manifest.jobs]

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback:
        return Rollback({"jobs": ()}, {"jobs": "deactivate"})


