"""What every resource kind shares: the live-state snapshot, the planning context and statement type.

A kind is a module with the same verbs (see kinds/__init__.py). This module holds only the types they
exchange and two small helpers, so a kind never imports another kind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # planning must not load the driver; only apply and readers do
    from psycopg import sql

from reconciler.model import Action, Change, FieldChange
from reconciler.secrets import SecretValue


class Statement(NamedTuple):
    """One SQL statement; values travel only in `params` (or `copy_rows`), never in the text.

    With `copy_rows` the statement is a `COPY ... FROM STDIN` and the rows are its data: secret values
    travel that way, because COPY data is never written to the server log (statement logging records
    bound parameters, and a failing statement is logged with its parameters too).
    """

    query: sql.Composable
    params: tuple[Any, ...] = ()
    description: str = ""
    copy_rows: tuple[tuple[Any, ...], ...] | None = None

    def text(self) -> str:
        return self.query.as_string(None)

    def run(self, cursor: Any) -> None:
        if self.copy_rows is None:
            cursor.execute(self.query, self.params or None)
            return
        with cursor.copy(self.query) as copy:
            for row in self.copy_rows:
                copy.write_row(tuple(v.reveal() if isinstance(v, SecretValue) else v for v in row))


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected server and role can do, read once with the live state."""

    server_version_num: int = 0
    current_user: str = ""
    database: str = ""
    is_superuser: bool = False
    settings: Mapping[str, str] = field(default_factory=dict)
    relations: frozenset[str] = frozenset()  # qualified names of the relations that exist
    job_columns: frozenset[str] = frozenset()  # columns of public.scheduled_jobs
    job_name_unique: bool = False
    can_decrypt_secrets: bool = False
    can_create_secrets: bool = False
    can_alter_cron_jobs: bool = False
    privileges: Mapping[str, bool | None] = field(default_factory=dict)  # see db.CAPABILITIES_QUERY

    def may(self, privilege: str) -> bool:
        """Whether the role holds `privilege`; unknown (the object does not exist yet) counts as yes."""
        return self.is_superuser or self.privileges.get(privilege) is not False

    def setting(self, name: str) -> str | None:
        return self.settings.get(name)

    def has(self, relation: str) -> bool:
        return relation in self.relations


@dataclass(frozen=True, slots=True)
class Managed:
    """One row of reconciler.managed: an object this tool created or adopted."""

    kind: str
    key: str
    fingerprint: str
    protect: bool = False


@dataclass(frozen=True, slots=True)
class LiveState:
    """Everything read from the database, per kind, plus capabilities and ownership records."""

    capabilities: Capabilities
    kinds: Mapping[str, Any]  # kind name -> that kind's own live mapping
    managed: Mapping[tuple[str, str], Managed] = field(default_factory=dict)
    ownership_ready: bool = False  # reconciler.managed exists

    def of(self, kind: str) -> Any:
        return self.kinds[kind]

    def is_managed(self, kind: str, key: str) -> bool:
        return (kind, key) in self.managed


@dataclass(frozen=True, slots=True)
class Inputs:
    """What deriving the desired state needs besides the manifest; all resolved before planning."""

    capabilities: Capabilities
    secret_values: Mapping[str, Any]  # name -> SecretValue
    render_command: Callable[[Any], str]  # TriggerSpec -> the SQL text cron.job.command should hold


@dataclass(frozen=True, slots=True)
class PlanOptions:
    prune: bool = False
    rotate: frozenset[str] = frozenset()
    rollback: bool = False  # `reconcile down`: only the reasons people read differ


@dataclass(frozen=True, slots=True)
class PlanContext:
    """Everything a kind's diff may look at besides its own desired and live mappings."""

    live: LiveState
    options: PlanOptions
    prune_policy: str  # this kind's policy from the manifest: off | report | deactivate | delete
    create_tables: bool = False

    @property
    def capabilities(self) -> Capabilities:
        return self.live.capabilities


def fingerprint(values: Mapping[str, Any]) -> str:
    """A stable digest of a kind's normalised fields, recorded in reconciler.managed."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def field_changes(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    names: Sequence[str],
    normalisers: Mapping[str, Callable[[Any], Any]] | None = None,
) -> tuple[FieldChange, ...]:
    """One FieldChange per named field whose normalised values differ; shows the raw values."""
    normalisers = normalisers or {}
    changes = []
    for name in names:
        old, new = before.get(name), after.get(name)
        if old == new:  # the common in-sync case needs no normalisation
            continue
        norm = normalisers.get(name, _identity)
        if norm(old) != norm(new):
            changes.append(FieldChange(name, old, new))
    return tuple(changes)


def _identity(value: Any) -> Any:
    return value


def vault_value_written(*, rotating: bool, generated: bool, on_drift: str, live_digest: str | None,
                        source_digest: str | None) -> bool:
    """Whether an apply writes the source value over an existing Vault secret.

    The `secret` kind acts on it and `edge_secret` mirrors what the vault will hold: one rule, so the
    two can never disagree (an unreadable digest, say, writes nothing to either).
    """
    if rotating:
        return True
    if generated or live_digest is None or source_digest is None or on_drift != "correct":
        return False
    return live_digest != source_digest


def in_sync(kind: str, key: str, before: Mapping[str, Any], after: Mapping[str, Any], ctx: PlanContext) -> Change:
    """The change for an object that matches its declaration: adopt it if we do not manage it yet."""
    if ctx.live.is_managed(kind, key):
        return Change(kind, key, Action.NOOP, before=before, after=after)
    return Change(kind, key, Action.ADOPT, before=before, after=after, reason="exists, not yet managed")


def undeclared(
    kind: str,
    key: str,
    before: Mapping[str, Any],
    ctx: PlanContext,
    *,
    deactivated: Mapping[str, Any] | None = None,
) -> Change:
    """The change for a live object no longer declared: prune it per policy, only if we manage it.

    `deactivated` is the object's fields after deactivation, for kinds that support that policy. A change
    left alone has no `after`: nothing declares one, so apply records no ownership for it.
    """
    reason = "rollback" if ctx.options.rollback else "not declared"
    managed = ctx.live.managed.get((kind, key))
    if managed is None:
        return Change(kind, key, Action.UNMANAGED, before=before,
                      reason="not created or adopted by reconcile; left alone" if ctx.options.rollback else reason)
    if managed.protect:
        return Change(kind, key, Action.NOOP, before=before, reason=f"{reason}; protected")
    if not ctx.options.prune:
        return Change(kind, key, Action.NOOP, before=before, reason=f"{reason}; pruning is off")
    if ctx.prune_policy in ("off", "report"):
        return Change(kind, key, Action.NOOP, before=before, reason=f"{reason}; prune policy {ctx.prune_policy}")
    if ctx.prune_policy == "deactivate" and deactivated is not None:
        if dict(deactivated) == dict(before):
            return Change(kind, key, Action.NOOP, before=before, reason=f"{reason}; already inactive")
        return Change(kind, key, Action.DEACTIVATE, before=before, after=deactivated, reason=reason)
    return Change(kind, key, Action.DELETE, before=before, reason=reason)
