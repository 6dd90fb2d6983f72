"""What every resource kind shares: the `Kind` protocol, the live-state snapshot, the planning context.

A kind is an object satisfying `Kind` (one per module of kinds/, listed in `kinds.REGISTRY`). This module
holds only the types kinds exchange with the core and a few small helpers, so a kind never imports another
kind and the core (db, plan, apply, render, down, cli, controller, verify) never names one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # planning must not load the driver; only apply and readers do
    from psycopg import sql

    from reconciler.manifest import Manifest, TriggerSpec

from reconciler import cron
from reconciler.kinds.exporting import export_problem, placeholder_names  # noqa: F401 (the kinds' import point)
from reconciler.model import Action, AppliedRecord, Change, FieldChange, Finding
from reconciler.secret_value import SecretValue


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

    def run(self, cursor: Any) -> None:
        if self.copy_rows is None:
            cursor.execute(self.query, self.params or None)
            return
        with cursor.copy(self.query) as copy:
            for row in self.copy_rows:
                copy.write_row(tuple(v.reveal() if isinstance(v, SecretValue) else v for v in row))


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected server and role can do, read once with the live state (db.read_capabilities).

    `probes` holds the answer to every probe a kind contributes to the capabilities query (its `probes`,
    keyed as the kind names them): privileges (True, False, or None where the object does not exist yet),
    and facts such as the columns of a table.
    """

    server_version_num: int = 0
    current_user: str = ""
    database: str = ""
    is_superuser: bool = False
    settings: Mapping[str, str] = field(default_factory=dict)
    relations: frozenset[str] = frozenset()  # qualified names of the relations that exist
    probes: Mapping[str, Any] = field(default_factory=dict)

    def may(self, privilege: str) -> bool:
        """Whether the role holds `privilege`; unknown (the object does not exist yet) counts as yes."""
        return self.is_superuser or self.probes.get(privilege) is not False

    def probe(self, name: str, default: Any = None) -> Any:
        value = self.probes.get(name)
        return default if value is None else value

    def setting(self, name: str) -> str | None:
        return self.settings.get(name)

    def has(self, relation: str) -> bool:
        return relation in self.relations


@dataclass(frozen=True, slots=True)
class Managed:
    """One row of reconciler.managed: an object this tool created, adopted, changed or removed.

    `applied` is the last-applied record: the plain desired fields the last apply that touched the object
    wrote (None: no record, a row of the previous release's shape). `removed`: that apply deleted it (prune
    or `reconcile down`); such a row is kept so the next plan knows the tool removed it, but the object is
    no longer managed (LiveState.managed leaves it out).
    """

    kind: str
    key: str
    protect: bool = False
    applied: Mapping[str, Any] | None = None
    record: AppliedRecord | None = None
    removed: bool = False


@dataclass(frozen=True, slots=True)
class LiveState:
    """Everything read from the database, per kind, plus capabilities and ownership records."""

    capabilities: Capabilities
    kinds: Mapping[str, Any]  # kind name -> that kind's own live mapping
    managed: Mapping[tuple[str, str], Managed] = field(default_factory=dict)
    ownership_ready: bool = False  # reconciler.managed exists
    #: Removed objects' rows (Managed.removed), kept apart so that `managed` means "ours now".
    removed: Mapping[tuple[str, str], Managed] = field(default_factory=dict)
    #: reconciler.managed still has the previous release's shape (no last-applied records): the next
    #: apply migrates it (engine/ownership.py).
    ownership_outdated: bool = False

    def record(self, kind: str, key: str) -> Managed | None:
        """The ownership row of (kind, key), removed or not."""
        return self.managed.get((kind, key)) or self.removed.get((kind, key))

    def of(self, kind: str) -> Any:
        return self.kinds[kind]

    def is_managed(self, kind: str, key: str) -> bool:
        return (kind, key) in self.managed


@dataclass(frozen=True, slots=True)
class Inputs:
    """What deriving the desired state needs besides the manifest; all resolved before planning."""

    capabilities: Capabilities
    secret_values: Mapping[str, SecretValue]
    render_command: Callable[[TriggerSpec], str]  # the SQL text cron.job.command should hold


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
    prune_policy: str  # this kind's policy (Kind.prune_policy): off | report | deactivate | delete
    manifest: Manifest | None = None

    @property
    def capabilities(self) -> Capabilities:
        return self.live.capabilities


@dataclass(frozen=True, slots=True)
class Privilege:
    """A privilege a change may need: its probe key in Capabilities, what it allows and the GRANT that gives it.

    `grant` may hold {user} and {db}; the finding fills them in.
    """

    key: str
    allows: str
    grant: str


class Plane(Protocol):
    """A kind's connection to something other than the database (an HTTP API), open for one run.

    `read()` is the kind's live state; `apply()` sends the kind's changes (inside the apply, after its
    SQL, just before the verification and COMMIT); `unrecoverable()` says what a rollback cannot undo
    once `changes` were sent ("" when nothing).
    """

    def read(self) -> Any: ...

    def apply(self, conn: Any, changes: Sequence[Change]) -> None: ...

    def unrecoverable(self, changes: Sequence[Change]) -> str: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Rollback:
    """A kind's part in `reconcile down`: manifest fields to replace and PrunePolicy fields to set."""

    sections: Mapping[str, Any] = field(default_factory=dict)
    prune: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Export:
    """A kind's live objects as manifest entries (`reconcile export`), plain data ready to be written as YAML.

    `entries` is the manifest section's value (a list of mappings, or a mapping for sections keyed by
    name); `variables` are the `from_env:` placeholders the user must set; `notes` say what was left out
    and why (written as comments, never guessed).
    """

    section: str
    entries: Any
    variables: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


class Kind(Protocol):
    """One resource kind. The core loops over `kinds.REGISTRY` and calls only these.

    Reading: `relations`, `settings` and `probes` (name -> SQL expression) join the one capabilities
    query; `read()` is the kind's query in the one pipeline (None: nothing to read), `from_rows()` turns
    its rows into the kind's live mapping; a kind read over HTTP opens a `Plane` instead (`open_plane`).
    Planning: `desired`, `diff`, `preflight` (facts about the server, reported first), `findings`,
    `privileges(change)` (checked against the probes), `prune_policy`. Applying: `statements`,
    `refused` (the one-line explanation of a statement the server refused), `quiet_logging` (turn
    statement logging off while this kind's changes are written), `protected_keys` (ownership records
    with protect). Output: `hidden_fields`. `reconcile down`: `rollback`. `reconcile export`: `export`
    (its live objects as manifest entries; None for a kind that has nothing to declare).
    """

    @property
    def name(self) -> str: ...

    @property
    def prunable(self) -> bool: ...  # has ownership records (reconciler.managed) and may be pruned

    @property
    def hidden_fields(self) -> frozenset[str]: ...  # bookkeeping fields never shown in a plan

    @property
    def quiet_logging(self) -> bool: ...

    @property
    def relations(self) -> tuple[str, ...]: ...

    @property
    def settings(self) -> tuple[str, ...]: ...

    @property
    def probes(self) -> Mapping[str, str]: ...

    def read(self, caps: Capabilities, manifest: Manifest | None) -> Statement | None: ...

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> Any: ...

    def open_plane(self, manifest: Manifest, environ: Mapping[str, str]) -> Plane | None: ...

    def desired(self, manifest: Manifest, inputs: Inputs) -> Any: ...

    def diff(self, want: Any, live: Any, ctx: PlanContext) -> list[Change]: ...

    def preflight(self, manifest: Manifest, live: LiveState) -> list[Finding]: ...

    def findings(self, want: Any, live: Any, ctx: PlanContext) -> list[Finding]: ...

    def privileges(self, change: Change) -> tuple[Privilege, ...]: ...

    def prune_policy(self, manifest: Manifest) -> str: ...

    def statements(self, changes: Sequence[Change], caps: Capabilities) -> list[Statement]: ...

    def refused(self, statement: Statement) -> tuple[str, str] | None: ...

    def protected_keys(self, manifest: Manifest, caps: Capabilities) -> set[str]: ...

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback: ...

    def export(self, live: LiveState, caps: Capabilities) -> Export | None: ...


class KindDefaults:
    """The verbs most kinds leave alone, for a kind class to inherit; each kind overrides what it has."""

    hidden_fields: frozenset[str] = frozenset()
    quiet_logging: bool = False
    relations: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    probes: Mapping[str, str] = MappingProxyType({})

    def read(self, caps: Capabilities, manifest: Manifest | None) -> Statement | None:
        return None

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> Any:
        return {}

    def open_plane(self, manifest: Manifest, environ: Mapping[str, str]) -> Plane | None:
        return None

    def preflight(self, manifest: Manifest, live: LiveState) -> list[Finding]:
        return []

    def findings(self, want: Any, live: Any, ctx: PlanContext) -> list[Finding]:
        return []

    def privileges(self, change: Change) -> tuple[Privilege, ...]:
        return ()

    def prune_policy(self, manifest: Manifest) -> str:
        return "off"

    def statements(self, changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
        return []

    def refused(self, statement: Statement) -> tuple[str, str] | None:
        return None

    def protected_keys(self, manifest: Manifest, caps: Capabilities) -> set[str]:
        return set()

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback:
        return Rollback()

    def export(self, live: LiveState, caps: Capabilities) -> Export | None:
        return None


def normalise_schedule(value: Any) -> Any:
    """A cron schedule in its canonical form (anything else as it is): "0 */1 * * *" equals "0 * * * *"."""
    return cron.normalise(value) if isinstance(value, str) else value


def table_privilege(relation: str, privilege: str) -> str:
    """The probe for a privilege on a relation: NULL (unknown) while the relation does not exist."""
    return (f"CASE WHEN to_regclass('{relation}') IS NULL THEN NULL"
            f" ELSE has_table_privilege('{relation}', '{privilege}') END")


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
    # kept (Change.kept): shown in every plan, so a reviewer sees a deletion in git even when nothing is pruned
    removed = "rollback" if ctx.options.rollback else f"removed from {_manifest_name(ctx)}"
    if managed.protect:
        return Change(kind, key, Action.NOOP, before=before, reason=f"{removed}; protected")
    if not ctx.options.prune:
        return Change(kind, key, Action.NOOP, before=before, reason=f"{removed}; pruning is off")
    if ctx.prune_policy in ("off", "report"):
        return Change(kind, key, Action.NOOP, before=before, reason=f"{removed}; prune policy {ctx.prune_policy}")
    if ctx.prune_policy == "deactivate" and deactivated is not None:
        if dict(deactivated) == dict(before):
            return Change(kind, key, Action.NOOP, before=before, reason=f"{reason}; already inactive")
        return Change(kind, key, Action.DEACTIVATE, before=before, after=deactivated, reason=reason)
    return Change(kind, key, Action.DELETE, before=before, reason=reason)


def _manifest_name(ctx: PlanContext) -> str:
    files = ctx.manifest.source_files if ctx.manifest is not None else ()
    return files[0].replace("\\", "/").rsplit("/", 1)[-1] if files else "scheduler.yaml"


def edge_key(edge_name: str) -> str:
    """Where an Edge Function secret with its own source is kept among the resolved values."""
    return f"edge_functions.{edge_name}"
