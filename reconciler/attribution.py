"""Who made each difference: the three-way comparison of desired, live and last applied (pure).

plan() hands every kind's changes here with the live state, whose ownership rows carry the last-applied
record of each object (engine/ownership.py writes it). Per field of an update, from the FieldChange's
path alone (no kind is named here):

- `manifest`: the live value is what the last apply left, the desired one moved: changed in scheduler.yaml;
- `drift`: the desired value is what the last apply wrote, the live one moved: changed outside git;
- `conflict`: both moved; the apply makes the manifest win, the plan shows all three values;
- `unknown`: no record to judge by (an object recorded before this release, a sensitive field).

A create is `drift` when the object has a record (someone deleted it), `manifest` otherwise (a new
declaration, or one the tool itself removed: prune, `reconcile down`); a removal or deactivation of a
managed object no longer declared is `manifest`, of an extra copy of a declared one (duplicate rows) `drift`. docs/three-way-diff.md explains it with an example.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from reconciler.model import Action, Change, FieldChange, Origin

if TYPE_CHECKING:
    from reconciler.kinds.base import LiveState, Managed

_MISSING = object()


def field_origin(change: FieldChange, record: Mapping[str, Any] | None) -> Origin:
    """The origin of one field difference, judged against the object's record (None: no record)."""
    if change.sensitive or record is None:
        return Origin.UNKNOWN
    desired = record.get("desired")
    if not isinstance(desired, Mapping) or change.path not in desired:
        return Origin.UNKNOWN
    applied = desired[change.path]
    held = record.get("live")
    left = held.get(change.path, applied) if isinstance(held, Mapping) else applied
    live_moved, desired_moved = change.old != left, change.new != applied
    if live_moved and desired_moved:
        return Origin.CONFLICT
    if live_moved:
        return Origin.DRIFT
    if desired_moved:
        return Origin.MANIFEST
    return Origin.UNKNOWN  # equal to the record on both sides, yet different: a normalisation the record lacks


def attribute(changes: Sequence[Change], live: LiveState, manifest_name: str = "scheduler.yaml") -> list[Change]:
    """`changes` with an origin on every difference and reasons that say who made it."""
    declared = {(c.kind, c.key) for c in changes if c.after is not None and c.action not in _REMOVING}
    return [_attributed(c, live.record(c.kind, c.key), manifest_name, (c.kind, c.key) in declared) for c in changes]


_REMOVING = frozenset({Action.DELETE, Action.DEACTIVATE})


def _attributed(change: Change, row: Managed | None, manifest_name: str, declared: bool) -> Change:
    record = row.record if row is not None else None
    if change.action is Action.UPDATE:
        applied = row.applied if row is not None and not row.removed else None
        fields = tuple(_with_origin(f, field_origin(f, applied), applied) for f in change.fields)
        origins = {f.origin for f in fields}
        shared = next(iter(origins)) if len(origins) == 1 else None
        return replace(change, fields=fields, origin=shared, record=record,
                       reason=_update_reason(change, fields, row, manifest_name))
    if change.action is Action.CREATE:
        if row is None:
            return replace(change, origin=Origin.MANIFEST)
        if row.removed:
            return replace(change, origin=Origin.MANIFEST, record=record,
                           reason=f"missing: removed by {_apply_name(row)}; declared in {manifest_name}")
        if row.applied is None:
            return replace(change, origin=Origin.UNKNOWN, record=record)
        return replace(change, origin=Origin.DRIFT, record=record,
                       reason=f"deleted outside git since {_apply_name(row)}")
    if change.action in _REMOVING:
        if declared:  # a declared object's extra copy (duplicate rows): the tool never makes one
            return replace(change, origin=Origin.DRIFT if row is not None else Origin.UNKNOWN, record=record)
        return replace(change, origin=Origin.MANIFEST if row is not None and not row.removed else Origin.UNKNOWN,
                       record=record)
    if change.kept:
        return replace(change, origin=Origin.MANIFEST, record=record)
    return change


def _with_origin(f: FieldChange, origin: Origin, record: Mapping[str, Any] | None) -> FieldChange:
    if origin is Origin.CONFLICT and record is not None:
        return replace(f, origin=origin, applied=record["desired"][f.path])
    return replace(f, origin=origin)


def _apply_name(row: Managed) -> str:
    if row.record is None:
        return "the last apply"
    return f"{'reconcile down' if _by_down(row) else 'apply'} #{row.record.history_id}"


def _by_down(row: Managed | None) -> bool:
    return row is not None and row.record is not None and row.record.command.startswith("down")


def _update_reason(change: Change, fields: Sequence[FieldChange], row: Managed | None, manifest_name: str) -> str:
    """One clause per origin, in the order a reviewer needs them (drift first)."""
    by_origin: dict[Origin, list[str]] = {}
    for f in fields:
        by_origin.setdefault(f.origin or Origin.UNKNOWN, []).append(f.path)
    if set(by_origin) == {Origin.UNKNOWN} and all(f.sensitive for f in fields):
        return change.reason  # the kind's own words about a value it can only compare by digest
    since = _apply_name(row) if row is not None else "the last apply"
    manifest_words = f"changed in {manifest_name}"
    if _by_down(row):
        manifest_words = f"restored after {since}"
    words = {
        Origin.DRIFT: f"changed outside git since {since}",
        Origin.CONFLICT: f"conflict: changed in {manifest_name} and outside git since {since}",
        Origin.MANIFEST: manifest_words,
        Origin.UNKNOWN: "differs",
    }
    order = (Origin.DRIFT, Origin.CONFLICT, Origin.MANIFEST, Origin.UNKNOWN)
    clauses = [f"{words[o]}: {', '.join(by_origin[o])}" for o in order if o in by_origin]
    if any(_switched_off(f) for f in fields if f.origin == Origin.DRIFT):
        # an object switched off behind our back (a trigger: every job stops) is an outage, not an edit
        clauses[0] = clauses[0].replace("changed outside git", "disabled outside git", 1)
    return "; ".join(clauses)


def _switched_off(field: FieldChange) -> bool:
    return field.path == "active" and field.old is False and field.new is True
