"""What every resource kind shares: the `Kind` protocol, the live-state snapshot, the planning context.

A kind is an object satisfying `Kind` (one per module of kinds/, listed in `kinds.REGISTRY`). This module
holds only the types kinds exchange with the core and a few small helpers, so a kind never imports another
kind and the core (db, plan, apply, render, down, cli, controller, verify) never names one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # planning must not load the driver; only apply and readers do
    from psycopg import sql

    from reconciler.manifest import Manifest

from reconciler.kinds.exporting import export_problem, placeholder_names  # noqa: F401 (the kinds' import point)
from reconciler.model import AppliedRecord, Change, Finding
from reconciler.secret_value import SecretValue


class Scheduled(NamedTuple):
    """A declared object that runs on a schedule; an inactive one has no runs."""

    name: str
    schedule: str
    active: bool = True


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
class Section:
    """A manifest section a kind brings with it, for a kind whose section the built-in Manifest model lacks.

    `annotation` is the section's pydantic type (a tuple of models with a `name` field is a named list:
    duplicates refused, merged by name in overlays); `default` is its value when the section is absent.
    The kind reads it back as `getattr(manifest, name)`.
    """

    name: str
    annotation: Any
    default: Any = ()


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
    with protect), `assigned_fields` (left out of the last-applied record). Output: `hidden_fields`. `reconcile
    down`: `rollback`. `reconcile export`: `export` (its live objects as manifest entries; None for a kind
    that has nothing to declare) and `export_reading` (what the reading manifest must declare for it). The CLI: `declared` (validate's counts), `schedules` (`--next`),
    `sources` (secret sources resolved before planning), `rotatable` (what `--rotate` may name).
    """

    @property
    def name(self) -> str: ...

    @property
    def prunable(self) -> bool: ...  # has ownership records (reconciler.managed) and may be pruned

    @property
    def hidden_fields(self) -> frozenset[str]: ...  # bookkeeping fields never shown in a plan

    @property
    def manifest_section(self) -> Section | None: ...  # a section of its own beyond the built-in model's

    @property
    def rollback_help(self) -> str: ...  # what `reconcile down` does to this kind, for its --help

    @property
    def assigned_fields(self) -> frozenset[str]: ...  # ids the database assigns: not recorded

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

    def export_reading(self, environ: Mapping[str, str]) -> Mapping[str, Any]: ...

    def declared(self, manifest: Manifest) -> int | None: ...

    def schedules(self, manifest: Manifest) -> Sequence[Scheduled]: ...

    def sources(self, manifest: Manifest) -> Mapping[str, Any]: ...

    def rotatable(self, manifest: Manifest) -> Mapping[str, bool]: ...


class VaultSecrets(Protocol):
    """What a kind that mirrors Vault secrets may know of the kind that owns them (given to it by the registry)."""

    def live_digests(self, live: LiveState) -> Mapping[str, str | None]: ...  # name -> digest (None: unreadable)

    def drift_policy(self, manifest: Manifest, name: str) -> str | None: ...  # None: the secret is not declared


class TableCreation(Protocol):
    """What a kind that writes into an application table may know of the kind that creates tables."""

    def creates(self, manifest: Manifest | None, relation: str) -> bool: ...  # the manifest asks to create it


class KindDefaults:
    """The verbs most kinds leave alone, for a kind class to inherit; each kind overrides what it has."""

    hidden_fields: frozenset[str] = frozenset()
    assigned_fields: frozenset[str] = frozenset()
    rollback_help: str = ""
    manifest_section: Section | None = None
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

    def export_reading(self, environ: Mapping[str, str]) -> Mapping[str, Any]:
        """The manifest sections `reconcile export` declares to read this kind's live state (a plane's
        address and token), from the environment; empty for a kind the database read covers."""
        return {}

    def declared(self, manifest: Manifest) -> int | None:
        """How many objects of this kind the manifest declares (None: it has nothing to say about them)."""
        return None

    def schedules(self, manifest: Manifest) -> Sequence[Scheduled]:
        """Every declared object that runs on a schedule, with whether it is active."""
        return ()

    def sources(self, manifest: Manifest) -> Mapping[str, Any]:
        """The secret sources this kind's objects need resolved before planning, keyed as in the secret values."""
        return {}

    def rotatable(self, manifest: Manifest) -> Mapping[str, bool]:
        """The declared names `--rotate` may name, each with whether a rotation can give it a new value."""
        return {}
