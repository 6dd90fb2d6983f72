"""Helpers the kinds share for planning: field comparison, the in-sync and undeclared changes.

Pure functions over plain data and the planning context of `kinds.base`; a kind imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reconciler import cron
from reconciler.kinds.base import PlanContext
from reconciler.model import Action, Change, FieldChange


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
