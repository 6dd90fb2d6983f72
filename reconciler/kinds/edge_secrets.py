"""Kind `edge_secret`: Edge Function secrets (Supabase Management API), compared by SHA-256 digest.

The API never returns values, only digests, so values are compared as digests. A secret mapped to a
Vault secret (`CRON_SECRET: {secret: cron_secret}`) must end up equal to what the vault will hold after
this plan: the source's value when the vault secret is being written, else the vault's current digest.
Reading and writing go over HTTP (reconciler.edge), not SQL: `statements()` is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.kinds.base import (
    Capabilities,
    Inputs,
    PlanContext,
    Statement,
    in_sync,
    undeclared,
    vault_value_written,
)
from reconciler.model import Action, Change, FieldChange, Finding, Severity

KIND = "edge_secret"
PRUNABLE = True


@dataclass(frozen=True, slots=True)
class EdgeLive:
    """What the Management API reported; `available` is false when the plane was not read (and why)."""

    available: bool = False
    reason: str = "not read"
    digests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DesiredEdgeSecret:
    name: str
    vault_secret: str | None  # the Vault secret it mirrors, if any
    value: Any  # SecretValue of its own source, or of the Vault secret's source
    on_drift: str = "correct"  # the mirrored Vault secret's policy


def read_query(caps: Capabilities, declared: Sequence[str]) -> Statement | None:
    return None


def from_rows(rows: list[tuple[Any, ...]], caps: Capabilities) -> EdgeLive:
    return EdgeLive()


def desired(manifest: Any, inputs: Inputs) -> dict[str, DesiredEdgeSecret]:
    from reconciler.secrets import edge_key

    edge = manifest.edge_functions
    if edge is None:
        return {}
    out = {}
    for name, source in edge.secrets.items():
        if source.secret is not None:
            # The loader guarantees the Vault secret is declared, but derived manifests (`reconcile down`
            # empties `secrets`) may not carry it: then nothing is known about its policy.
            vault = next((s for s in manifest.secrets if s.name == source.secret), None)
            out[name] = DesiredEdgeSecret(name, source.secret, inputs.secret_values.get(source.secret),
                                          vault.on_drift if vault is not None else "correct")
        else:
            out[name] = DesiredEdgeSecret(name, None, inputs.secret_values[edge_key(name)])
    return out


def _vault_value_after_plan(spec: DesiredEdgeSecret, ctx: PlanContext) -> tuple[str | None, Any]:
    """(digest, SecretValue or None) the mirrored vault secret holds once this plan is applied."""
    live_secret = ctx.live.of("secret").get(spec.vault_secret)
    value = spec.value
    if live_secret is None or vault_value_written(
            rotating=spec.vault_secret in ctx.options.rotate, generated=getattr(value, "generated", False),
            on_drift=spec.on_drift, live_digest=live_secret.digest,
            source_digest=value.digest if value is not None else None):
        return (value.digest if value is not None else None), value
    return live_secret.digest, None


def diff(want: Mapping[str, DesiredEdgeSecret], live: EdgeLive, ctx: PlanContext) -> list[Change]:
    if not live.available:
        return []
    changes: list[Change] = []
    for name, spec in want.items():
        if spec.vault_secret is not None:
            digest, value = _vault_value_after_plan(spec, ctx)
        else:
            digest, value = spec.value.digest, spec.value
        after = {"name": name, "vault_secret": spec.vault_secret, "value": value}
        have = live.digests.get(name)
        if have is None:
            changes.append(Change(KIND, name, Action.CREATE, after=after, fields=(FieldChange("value", sensitive=True),),
                                  reason="missing"))
        elif digest is not None and have != digest:
            reason = "rotated" if spec.vault_secret in ctx.options.rotate else (
                f"differs from vault secret {spec.vault_secret}" if spec.vault_secret else "value differs from its source")
            changes.append(Change(KIND, name, Action.UPDATE, before={"name": name}, after=after,
                                  fields=(FieldChange("value", sensitive=True),), reason=reason))
        else:
            changes.append(in_sync(KIND, name, {"name": name}, after, ctx))
    for name in live.digests:
        if name not in want and not name.upper().startswith("SUPABASE_"):
            changes.append(undeclared(KIND, name, {"name": name}, ctx))
    return changes


def findings(want: Mapping[str, DesiredEdgeSecret], live: EdgeLive, ctx: PlanContext) -> list[Finding]:
    if want and not live.available:
        return [Finding(Severity.WARNING, "edge_functions_skipped",
                        f"Edge Function secrets were not checked: {live.reason}",
                        "set the access token variable (default SUPABASE_ACCESS_TOKEN) and the project ref "
                        "(edge_functions.project_ref or SUPABASE_PROJECT_REF) to manage them")]
    return []


def statements(changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
    return []  # written over HTTP by reconciler.edge.apply_changes
