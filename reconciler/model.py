"""The plan's types and nothing else: what plan() produces and render/apply consume.

Rules that build these live in plan.py and kinds/; renderers in render.py. Every type is a frozen
dataclass whose invariants are checked on construction, so a malformed plan cannot exist.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What a change does, spelled as users read it."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    DEACTIVATE = "deactivate"
    ADOPT = "adopt"  # exists and matches; the reconciler starts managing it
    UNMANAGED = "unmanaged"  # exists, undeclared, never managed by us: reported, never touched
    NOOP = "no-op"


#: Actions that modify the database. A plan made only of the others is empty.
MUTATING = frozenset({Action.CREATE, Action.UPDATE, Action.DELETE, Action.DEACTIVATE, Action.ADOPT})
#: Actions that remove or disable something that exists.
DESTRUCTIVE = frozenset({Action.DELETE, Action.DEACTIVATE})
#: Actions a Change accepts with any before, after and fields.
_UNCONSTRAINED = frozenset({Action.NOOP, Action.ADOPT, Action.UNMANAGED})


class Origin(StrEnum):
    """Who made a difference, judged against the last-applied record (docs/three-way-diff.md)."""

    MANIFEST = "manifest"  # live equals last applied; the manifest moved
    DRIFT = "drift"  # the manifest equals last applied; the live value moved
    CONFLICT = "conflict"  # both moved, apart
    UNKNOWN = "unknown"  # no record to judge by


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One differing field. Sensitive fields never carry values, only the fact that they differ."""

    path: str
    old: Any = None  # live
    new: Any = None  # desired
    sensitive: bool = False
    origin: Origin | None = None  # set by attribution (plan.py); None before
    applied: Any = None  # the last-applied value, carried for a conflict only

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("FieldChange.path must not be empty")
        if self.sensitive and (self.old is not None or self.new is not None or self.applied is not None):
            raise ValueError(f"sensitive field {self.path!r} must not carry values")


@dataclass(frozen=True, slots=True)
class AppliedRecord:
    """Which apply last recorded an object: what the plan's drift section names (`#N at TIME by USER`)."""

    history_id: int
    applied_at: str  # as the database printed it, ISO 8601
    applied_by: str
    command: str


@dataclass(frozen=True, slots=True)
class Change:
    """One resource's transition. `before`/`after` are the kind's own field mappings; `reason` is for people."""

    kind: str
    key: str
    action: Action
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""
    #: Who made the difference (attribution): for an update, each field carries its own and this is the
    #: origin they share (None when they differ); for a create or removal, the object's.
    origin: Origin | None = None
    #: The last-applied record this change was judged against (history id, time, user, command).
    record: AppliedRecord | None = None

    def __post_init__(self) -> None:
        if self.action in _UNCONSTRAINED:  # most changes of an in-sync plan (thousands at 10,000 jobs)
            return
        if self.action is Action.CREATE and self.before is not None:
            raise ValueError(f"{self.kind} {self.key}: a create has no 'before'")
        if self.action is Action.CREATE and self.after is None:
            raise ValueError(f"{self.kind} {self.key}: a create needs 'after'")
        if self.action is Action.DELETE and self.after is not None:
            raise ValueError(f"{self.kind} {self.key}: a delete has no 'after'")
        if self.action in (Action.DELETE, Action.DEACTIVATE, Action.UPDATE) and self.before is None:
            raise ValueError(f"{self.kind} {self.key}: a {self.action} needs 'before'")
        if self.action is Action.UPDATE and not self.fields:
            raise ValueError(f"{self.kind} {self.key}: an update needs at least one field change")

    @property
    def mutating(self) -> bool:
        return self.action in MUTATING

    @property
    def kept(self) -> bool:
        """A managed object no longer declared that this plan leaves in place (pruning off, protected...)."""
        return self.action is Action.NOOP and self.after is None and self.before is not None

    def origins(self) -> frozenset[Origin]:
        """Every origin among this change's differences."""
        if self.action is not Action.UPDATE:  # a create's fields are the object's: its own origin counts
            return frozenset({self.origin} if self.origin is not None else ())
        found = {f.origin or Origin.UNKNOWN for f in self.fields}  # a field not attributed has no record
        if self.origin is not None:
            found.add(self.origin)
        return frozenset(found)

    @property
    def destructive(self) -> bool:
        return self.action in DESTRUCTIVE


@dataclass(frozen=True, slots=True)
class Finding:
    """A preflight fact about the database that the plan cannot express as a change."""

    severity: Severity
    code: str
    message: str
    fix: str = ""

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.ERROR


@dataclass(frozen=True, slots=True)
class Plan:
    """An ordered list of changes plus the findings that explain the context."""

    changes: tuple[Change, ...] = ()
    findings: tuple[Finding, ...] = field(default=())

    @property
    def mutating(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.mutating)

    @property
    def is_empty(self) -> bool:
        return not self.mutating

    @property
    def changes_scheduler(self) -> bool:
        """True when applying would change a scheduler object, not only record ownership (`adopt`).

        What `--detailed-exitcode` reports: a database whose objects all match the manifest is in sync even
        before its first apply has adopted them (the round-trip guarantee of `reconcile export`).
        """
        return any(c.action is not Action.ADOPT for c in self.mutating)

    @property
    def destructive(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.destructive)

    @property
    def blocking_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.blocking)

    def counts(self) -> dict[str, int]:
        """Number of changes per action, every action present (zero included), in Action order."""
        counted = Counter(c.action for c in self.changes)
        return {a.value: counted.get(a, 0) for a in Action}

    @property
    def kept(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kept)

    def with_origin(self, *origins: Origin) -> tuple[Change, ...]:
        """Mutating changes with at least one difference of one of `origins`."""
        wanted = set(origins)
        return tuple(c for c in self.mutating if c.origins() & wanted)

    @property
    def drifted(self) -> tuple[Change, ...]:
        """Mutating changes that correct something changed outside git, or that may (no record to tell).

        What the controller counts as drift; the rest (origin manifest only) is a roll-out of scheduler.yaml.
        """
        return self.with_origin(Origin.DRIFT, Origin.CONFLICT, Origin.UNKNOWN)

    @property
    def has_drift(self) -> bool:
        return bool(self.drifted)

    def origin_counts(self) -> dict[str, int]:
        """Objects per origin (an object with fields of two origins counts in both), every origin present."""
        return {o.value: len(self.with_origin(o)) for o in Origin}
