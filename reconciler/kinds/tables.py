"""Kind `table`: the application's scheduled_jobs and job_executions tables, created only when asked.

The tables belong to the application: with `tables: {create_missing: true}` a missing one is created
with the runbook's columns; an existing one is never altered (missing columns are findings of `job`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from reconciler.kinds.base import Capabilities, Inputs, KindDefaults, PlanContext, Rollback, Statement
from reconciler.model import Action, Change

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

KIND = "table"
PRUNABLE = False
TABLES = ("public.scheduled_jobs", "public.job_executions")


def _ddl() -> dict[str, str]:
    text = files("reconciler").joinpath("sql/app_tables.sql").read_text()
    parts = [p.strip() for p in text.split("-- split --")]
    return dict(zip(TABLES, parts, strict=True))


class TableKind(KindDefaults):
    """Existence is part of the capabilities (`relations`): no query of its own."""

    name = KIND
    prunable = PRUNABLE
    hidden_fields = frozenset({"name"})
    relations = TABLES
    rollback_help = "never drops tables"

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> dict[str, bool]:
        return {name: caps.has(name) for name in TABLES}

    def desired(self, manifest: Manifest, inputs: Inputs) -> dict[str, bool]:
        return {name: True for name in TABLES} if manifest.tables.create_missing else {}

    def diff(self, want: Mapping[str, bool], live: Mapping[str, bool], ctx: PlanContext) -> list[Change]:
        changes = []
        for name in want:
            if live.get(name):
                changes.append(Change(KIND, name, Action.NOOP, before={"name": name}, after={"name": name}))
            else:
                changes.append(Change(KIND, name, Action.CREATE, after={"name": name}, reason="missing"))
        return changes

    def statements(self, changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
        from psycopg import sql

        ddl = _ddl()
        return [Statement(sql.SQL(ddl[c.key]), (), f"create table {c.key}")  # type: ignore[arg-type]
                for c in changes if c.action is Action.CREATE]

    def creates(self, manifest: Manifest | None, relation: str) -> bool:
        return manifest is not None and manifest.tables.create_missing and relation in TABLES

    def declared(self, manifest: Manifest) -> int | None:
        return len(TABLES) if manifest.tables.create_missing else None

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback:
        return Rollback({"tables": manifest.tables.model_copy(update={"create_missing": False})})


kind = TableKind()
