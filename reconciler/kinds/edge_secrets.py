"""Kind `edge_secret`: Edge Function secrets (Supabase Management API), compared by SHA-256 digest.

The API never returns values, only digests, so values are compared as digests. A secret mapped to a
Vault secret (`CRON_SECRET: {secret: cron_secret}`) must end up equal to what the vault will hold after
this plan: the source's value when the vault secret is being written, else the vault's current digest.
Reading and writing go over HTTP, not SQL: the kind opens a plane for the run (`open_plane`), an
`EdgePlane` holding the Management API client (reconciler.kinds.edge_api, which imports httpx: only when an
`edge_functions:` section is configured) or the reason the plane is skipped (no token, no project ref),
which becomes a finding, not an error, so database-only use keeps working. `EdgePlane.apply()` sends one
bulk upsert of the changed names and one delete for pruned ones; values of Vault-mirrored secrets that
this run does not write are read from vault.decrypted_secrets inside the apply's transaction, so they
are the values the vault will hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.errors import ApplyFailed
from reconciler.kinds.base import (
    Capabilities,
    Export,
    Inputs,
    KindDefaults,
    LiveState,
    PlanContext,
    Rollback,
    VaultSecrets,
    placeholder_names,
)
from reconciler.kinds.common import in_sync, undeclared, vault_value_written
from reconciler.model import Action, Change, FieldChange, Finding, Severity

if TYPE_CHECKING:  # httpx (under edge_api) is imported only when an edge_functions: section is configured
    from reconciler.kinds.edge_api import EdgeApi
    from reconciler.manifest import Manifest

KIND = "edge_secret"
PRUNABLE = True
PROJECT_REF_ENV = "SUPABASE_PROJECT_REF"


@dataclass(frozen=True, slots=True)
class EdgeLive:
    """What the Management API reported; `available` is false when the plane was not read (and why)."""

    available: bool = False
    reason: str = "not read"
    digests: Mapping[str, str] = field(default_factory=dict)
    project_ref: str = ""  # where they were read (for `reconcile export`)
    api_url: str = ""


@dataclass(frozen=True, slots=True)
class DesiredEdgeSecret:
    name: str
    vault_secret: str | None  # the Vault secret it mirrors, if any
    value: Any  # SecretValue of its own source, or of the Vault secret's source
    on_drift: str = "correct"  # the mirrored Vault secret's policy


def _vault_value_after_plan(spec: DesiredEdgeSecret, vault_digests: Mapping[str, str | None],
                            ctx: PlanContext) -> tuple[str | None, Any]:
    """(digest, SecretValue or None) the mirrored vault secret holds once this plan is applied."""
    value = spec.value
    name = spec.vault_secret or ""
    if name not in vault_digests or vault_value_written(
            rotating=spec.vault_secret in ctx.options.rotate, generated=getattr(value, "generated", False),
            on_drift=spec.on_drift, live_digest=vault_digests[name],
            source_digest=value.digest if value is not None else None):
        return (value.digest if value is not None else None), value
    return vault_digests[name], None


@dataclass(frozen=True)
class EdgePlane:
    """The Edge Function plane of one run: an API client, or the reason the plane is skipped."""

    api: EdgeApi | None
    skipped_because: str = ""

    def read(self) -> EdgeLive:
        if self.api is None:
            return EdgeLive(False, self.skipped_because)
        target = self.api.target
        return EdgeLive(True, "", self.api.list_digests(), target.project_ref, target.api_url)

    def apply(self, conn: Any, changes: Sequence[Change]) -> None:
        if self.api is not None:
            _apply_changes(conn, changes, self.api)

    def unrecoverable(self, changes: Sequence[Change]) -> str:
        if self.api is None or not any(c.mutating for c in changes):
            return ""
        return "the Edge Function secrets, already sent: run reconcile again to bring the vault back in line"

    def close(self) -> None:
        if self.api is not None:
            self.api.close()


def _apply_changes(conn: Any, changes: Sequence[Change], api: EdgeApi) -> None:
    changes = [c for c in changes if c.action in (Action.CREATE, Action.UPDATE, Action.DELETE)]
    if not changes:
        return
    upserts: dict[str, str] = {}
    for change in changes:
        if change.action is Action.DELETE:
            continue
        after = change.after or {}
        value = after.get("value")
        upserts[change.key] = value.reveal() if value is not None else _vault_value(conn, after["vault_secret"])
    api.upsert(upserts)
    api.delete([c.key for c in changes if c.action is Action.DELETE])


def _vault_value(conn: Any, name: str) -> str:
    """The vault's value inside the apply's transaction (a driver error is translated by the caller)."""
    with conn.cursor() as cur:
        cur.execute("SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = %s", (name,))
        row = cur.fetchone()
    if row is None or row[0] is None:
        raise ApplyFailed(f"vault secret {name} has no value to copy to the Edge Functions")
    return str(row[0])


class EdgeSecretKind(KindDefaults):
    """Edge Function secrets; `vault` is the kind that owns the Vault secrets some of them mirror."""

    name = KIND
    prunable = PRUNABLE
    hidden_fields = frozenset({"name"})
    rollback_help = "deletes managed Edge Function secrets only with --include-secrets"

    def __init__(self, vault: VaultSecrets) -> None:
        self.vault = vault

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Any) -> EdgeLive:
        """Nothing is read from the database: without a plane the state is "not read"."""
        return EdgeLive()

    def open_plane(self, manifest: Manifest, environ: Mapping[str, str]) -> EdgePlane | None:
        """None without an `edge_functions:` section; else the plane, possibly skipped.

        An empty `secrets: {}` still names the project, so managed names left there can be pruned.
        """
        edge = manifest.edge_functions
        if edge is None:
            return None
        token = environ.get(edge.access_token_env)
        if not token:
            return EdgePlane(None, f"{edge.access_token_env} is not set")
        ref = edge.project_ref or environ.get(PROJECT_REF_ENV)
        if not ref:
            return EdgePlane(None, f"no project ref (edge_functions.project_ref or {PROJECT_REF_ENV})")
        from reconciler.kinds.edge_api import EdgeApi, EdgeTarget

        return EdgePlane(EdgeApi(EdgeTarget(edge.api_url, ref, token)))

    def desired(self, manifest: Manifest, inputs: Inputs) -> dict[str, DesiredEdgeSecret]:
        from reconciler.kinds.common import edge_key

        edge = manifest.edge_functions
        if edge is None:
            return {}
        out = {}
        for name, source in edge.secrets.items():
            if source.secret is not None:
                # The loader guarantees the Vault secret is declared, but derived manifests (`reconcile down`
                # empties `secrets`) may not carry it: then nothing is known about its policy.
                policy = self.vault.drift_policy(manifest, source.secret)
                out[name] = DesiredEdgeSecret(name, source.secret, inputs.secret_values.get(source.secret),
                                              policy or "correct")
            else:
                out[name] = DesiredEdgeSecret(name, None, inputs.secret_values[edge_key(name)])
        return out

    def diff(self, want: Mapping[str, DesiredEdgeSecret], live: EdgeLive, ctx: PlanContext) -> list[Change]:
        if not live.available:
            return []
        vault_digests = self.vault.live_digests(ctx.live)
        changes: list[Change] = []
        for name, spec in want.items():
            if spec.vault_secret is not None:
                digest, value = _vault_value_after_plan(spec, vault_digests, ctx)
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

    def findings(self, want: Mapping[str, DesiredEdgeSecret], live: EdgeLive, ctx: PlanContext) -> list[Finding]:
        if want and not live.available:
            return [Finding(Severity.WARNING, "edge_functions_skipped",
                            f"Edge Function secrets were not checked: {live.reason}",
                            "set the access token variable (default SUPABASE_ACCESS_TOKEN) and the project ref "
                            "(edge_functions.project_ref or SUPABASE_PROJECT_REF) to manage them")]
        return []

    def export_reading(self, environ: Mapping[str, str]) -> Mapping[str, Any]:
        """An `edge_functions:` section when a Management API token is set (SUPABASE_API_URL, when set, as
        its address), so that export reads the project's secrets; none without a token."""
        from reconciler.manifest import EdgeFunctionsSpec

        api_url = environ.get("SUPABASE_API_URL")
        edge = EdgeFunctionsSpec(api_url=api_url) if api_url else EdgeFunctionsSpec()
        return {"edge_functions": edge} if environ.get(edge.access_token_env) else {}

    def export(self, live: LiveState, caps: Capabilities) -> Export | None:
        """Edge Function secrets by name: `{secret: x}` when the digest equals vault secret x's, else `from_env:`."""
        edge: EdgeLive = live.of(KIND)
        if not edge.available:
            return None if edge.reason == "not read" else Export(
                "edge_functions", None, notes=(f"Edge Function secrets were not read: {edge.reason}",))
        vault = self.vault.live_digests(live)
        by_digest: dict[str, str] = {}
        for name in sorted(vault, reverse=True):  # the first name (sorted) wins
            digest = vault[name]
            if digest is not None:
                by_digest[digest] = name
        names = sorted(n for n in edge.digests if not n.upper().startswith("SUPABASE_"))
        own = [n for n in names if edge.digests[n] not in by_digest]
        variables = placeholder_names(own, taken=list(placeholder_names(list(vault)).values()))
        secrets: dict[str, dict[str, str]] = {}
        for name in names:
            mirrored = by_digest.get(edge.digests[name])
            secrets[name] = {"secret": mirrored} if mirrored is not None else {"from_env": variables[name]}
        section: dict[str, Any] = {"project_ref": edge.project_ref} if edge.project_ref else {}
        if edge.api_url and edge.api_url != "https://api.supabase.com":
            section["api_url"] = edge.api_url
        section["secrets"] = secrets
        return Export("edge_functions", section, tuple(variables[n] for n in own))

    def prune_policy(self, manifest: Manifest) -> str:
        return manifest.prune.edge_secrets

    def declared(self, manifest: Manifest) -> int | None:
        return len(manifest.edge_functions.secrets) if manifest.edge_functions is not None else None

    def sources(self, manifest: Manifest) -> Mapping[str, Any]:
        """Own sources only: a secret that mirrors a Vault secret is that secret's value."""
        from reconciler.kinds.common import edge_key

        edge = manifest.edge_functions
        return {edge_key(name): source for name, source in (edge.secrets.items() if edge is not None else ())
                if source.secret is None}

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback:
        # Edge Function secrets are secrets: pruned (deleted) only with --include-secrets.
        edge = manifest.edge_functions
        kept = edge.model_copy(update={"secrets": {}}) if edge is not None and include_secrets else None
        return Rollback({"edge_functions": kept}, {"edge_secrets": "delete" if include_secrets else "off"})


