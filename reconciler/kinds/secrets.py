"""Kind `secret`: rows of vault.secrets by name, compared by SHA-256 digest computed inside the database.

Values reach this module only as SecretValue objects; they leave it only as COPY data into a
transaction-local table that vault.create_secret / vault.update_secret read by sub-select: never SQL
text, never bound parameters (which statement logging records), never a Change's fields or a message.
"""

from __future__ import annotations

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
    Statement,
    export_problem,
    placeholder_names,
)
from reconciler.kinds.common import in_sync, table_privilege, undeclared, vault_value_written
from reconciler.model import Action, Change, FieldChange, Finding, Severity

if TYPE_CHECKING:  # planning must not load the driver
    from psycopg import sql

    from reconciler.manifest import Manifest

KIND = "secret"
PRUNABLE = True

#: Probes of the capabilities query (see Kind.probes).
PROBES = {
    "vault.decrypt": """coalesce((SELECT bool_and(has_function_privilege(p.oid, 'EXECUTE')) FROM pg_proc p
                  WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'vault')
                    AND p.proname = '_crypto_aead_det_decrypt'), false)
         AND CASE WHEN to_regclass('vault.decrypted_secrets') IS NULL THEN false
                  ELSE has_table_privilege('vault.decrypted_secrets', 'SELECT') END""",
    "vault.write": """coalesce((SELECT bool_and(has_function_privilege(p.oid, 'EXECUTE')) FROM pg_proc p
                  JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'vault' AND p.proname IN ('create_secret', 'update_secret')), false)""",
    "database.temp": "has_database_privilege(current_database(), 'TEMP')",
    "vault.usage": "(SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = 'vault')",
    "vault.secrets.delete": table_privilege("vault.secrets", "DELETE"),
}
TEMP = Privilege("database.temp", "stage secret values in a temporary table", "GRANT TEMPORARY ON DATABASE {db} TO {user}")
USAGE = Privilege("vault.usage", "use schema vault", "GRANT USAGE ON SCHEMA vault TO {user}")
DELETE = Privilege("vault.secrets.delete", "delete pruned Vault secrets", "GRANT DELETE ON vault.secrets TO {user}")


def can_decrypt(caps: Capabilities) -> bool:
    return bool(caps.probe("vault.decrypt", False))


@dataclass(frozen=True, slots=True)
class LiveSecret:
    id: str
    name: str
    description: str
    digest: str | None  # None when the role may not decrypt (then value drift cannot be seen)


@dataclass(frozen=True, slots=True)
class DesiredSecret:
    name: str
    description: str
    value: Any  # SecretValue; Any keeps this module free of the manifest's imports
    generated: bool
    on_drift: str


def read_query(caps: Capabilities) -> Statement | None:
    from psycopg import sql

    if not caps.has("vault.secrets"):
        return None
    if can_decrypt(caps):
        query = sql.SQL(
            "SELECT id::text, name, description, encode(sha256(convert_to(decrypted_secret, 'UTF8')), 'hex')"
            " FROM vault.decrypted_secrets WHERE name IS NOT NULL ORDER BY name"
        )
    else:
        query = sql.SQL("SELECT id::text, name, description, NULL FROM vault.secrets WHERE name IS NOT NULL ORDER BY name")
    return Statement(query)


def _value_differs(spec: DesiredSecret, have: LiveSecret, ctx: PlanContext) -> bool:
    return vault_value_written(rotating=spec.name in ctx.options.rotate, generated=spec.generated,
                               on_drift=spec.on_drift, live_digest=have.digest, source_digest=spec.value.digest)


STAGING = "reconciler_secret_values"


def _value_changes(change: Change) -> bool:
    return any(f.path == "value" for f in change.fields)


def _staged() -> sql.Composed:
    """The staged value of the secret named by the next parameter."""
    from psycopg import sql

    return sql.SQL("(SELECT value FROM {} WHERE name = %s)").format(sql.Identifier("pg_temp", STAGING))


def sql_for(change: Change) -> list[Statement]:
    from psycopg import sql

    if change.action is Action.CREATE:
        assert change.after is not None
        return [Statement(sql.SQL("SELECT vault.create_secret({}, %s, %s)").format(_staged()),
                          (change.key, change.key, change.after["description"]), f"create secret {change.key}")]
    if change.action is Action.UPDATE:
        assert change.after is not None
        changed = {f.path for f in change.fields}
        description = change.after["description"] if "description" in changed else None
        value = _staged() if "value" in changed else sql.SQL("NULL::text")
        params = (change.key,) if "value" in changed else ()
        return [Statement(sql.SQL("SELECT vault.update_secret(%s::uuid, {}, NULL, %s)").format(value),
                          (change.after["id"], *params, description), f"update secret {change.key}")]
    if change.action is Action.DELETE:
        assert change.before is not None
        return [Statement(sql.SQL("DELETE FROM vault.secrets WHERE id = %s::uuid"), (change.before["id"],),
                          f"delete secret {change.key}")]
    return []


class SecretKind(KindDefaults):
    name = KIND
    prunable = PRUNABLE
    hidden_fields = frozenset({"id", "name"})
    rollback_help = "deletes managed Vault secrets only with --include-secrets"
    assigned_fields = frozenset({"id"})
    quiet_logging = True  # superusers write secret values with statement logging off (statements.quiet_logging)
    relations = ("vault.secrets", "vault.decrypted_secrets")
    settings = ("log_statement",)
    probes = PROBES

    def read(self, caps: Capabilities, manifest: Manifest | None) -> Statement | None:
        return read_query(caps)

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> dict[str, LiveSecret]:
        return {row[1]: LiveSecret(*row) for row in rows}

    def desired(self, manifest: Manifest, inputs: Inputs) -> dict[str, DesiredSecret]:
        out = {}
        for spec in manifest.secrets:
            value = inputs.secret_values[spec.name]
            out[spec.name] = DesiredSecret(spec.name, spec.description, value, spec.generate is not None, spec.on_drift)
        return out

    def diff(self, want: Mapping[str, DesiredSecret], live: Mapping[str, LiveSecret], ctx: PlanContext) -> list[Change]:
        changes: list[Change] = []
        for name, spec in want.items():
            have = live.get(name)
            after = {"name": name, "description": spec.description, "value": spec.value}
            if have is None:
                fields = (FieldChange("value", sensitive=True), FieldChange("description", None, spec.description))
                changes.append(Change(KIND, name, Action.CREATE, after=after, fields=fields, reason="missing"))
                continue
            before = {"id": have.id, "name": name, "description": have.description}
            after["id"] = have.id
            fields_list: list[FieldChange] = []
            reasons: list[str] = []
            if _value_differs(spec, have, ctx):
                fields_list.append(FieldChange("value", sensitive=True))
                # the plan sees only two digests: which side moved (the source or the vault) it cannot tell
                reasons.append("rotated" if name in ctx.options.rotate else "value differs from its source")
            if (have.description or "") != spec.description:
                fields_list.append(FieldChange("description", have.description, spec.description))
                reasons.append("description changed")
            if fields_list:
                changes.append(Change(KIND, name, Action.UPDATE, before=before, after=after, fields=tuple(fields_list),
                                      reason=", ".join(reasons)))
            else:
                changes.append(in_sync(KIND, name, before, after, ctx))
        for name, have in live.items():
            if name not in want:
                before = {"id": have.id, "name": name, "description": have.description}
                changes.append(undeclared(KIND, name, before, ctx))
        return changes

    def preflight(self, manifest: Manifest, live: LiveState) -> list[Finding]:
        caps = live.capabilities
        out = []
        if manifest.secrets and caps.has("vault.secrets") and not can_decrypt(caps):
            out.append(Finding(Severity.WARNING, "vault_no_decrypt",
                               f"{caps.current_user} cannot read vault.decrypted_secrets, so secret values cannot be compared",
                               f"GRANT SELECT ON vault.decrypted_secrets TO {caps.current_user}; "
                               f"GRANT EXECUTE ON FUNCTION vault._crypto_aead_det_decrypt TO {caps.current_user}"))
        if manifest.secrets and caps.has("vault.secrets") and not caps.probe("vault.write", False):
            out.append(Finding(Severity.ERROR, "vault_no_write",
                               f"{caps.current_user} may not call vault.create_secret / vault.update_secret",
                               f"GRANT EXECUTE ON FUNCTION vault.create_secret, vault.update_secret TO {caps.current_user}"))
        logging = caps.setting("log_statement")
        if manifest.secrets and logging in ("all", "mod"):
            out.append(Finding(Severity.WARNING, "statement_logging",
                               f"log_statement is '{logging}': the server logs statements; the reconciler stages secret "
                               "values through COPY so they never appear in a logged statement or its parameters, "
                               "but other clients' secret writes would be logged",
                               "set log_statement to 'ddl' or 'none'"))
        return out

    def findings(self, want: Mapping[str, DesiredSecret], live: Mapping[str, LiveSecret], ctx: PlanContext) -> list[Finding]:
        """Value drift that on_drift: report keeps (an unreadable digest is the preflight's vault_no_decrypt)."""
        out = []
        for name, spec in want.items():
            have = live.get(name)
            if have is None or spec.generated or have.digest is None:
                continue
            if spec.on_drift == "report" and have.digest != spec.value.digest:
                out.append(Finding(Severity.WARNING, "secret_value_drift",
                                   f"secret {name}: the value in the vault differs from its source (on_drift: report)",
                                   "set on_drift: correct to overwrite it, or update the source"))
        return out

    def statements(self, changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
        """Values are staged by COPY into a transaction-local temp table, then passed by sub-select."""
        from psycopg import sql

        # SecretValue objects, revealed only while the COPY writes them: a Statement's repr shows no value
        staged = tuple((c.key, c.after["value"]) for c in changes  # type: ignore[index]
                       if c.action is Action.CREATE or (c.action is Action.UPDATE and _value_changes(c)))
        out: list[Statement] = []
        if staged:
            table = sql.Identifier("pg_temp", STAGING)
            out.append(Statement(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (name text PRIMARY KEY, value text NOT NULL)"
                                         " ON COMMIT DROP").format(sql.Identifier(STAGING)), (), "stage secret values"))
            out.append(Statement(sql.SQL("COPY {} (name, value) FROM STDIN").format(table), (),
                                 f"stage {len(staged)} secret value(s)", copy_rows=staged))
        for change in changes:
            out.extend(sql_for(change))
        return out

    def export(self, live: LiveState, caps: Capabilities) -> Export:
        """Vault secrets by name, each with a `from_env:` placeholder named after it; never a value."""
        from reconciler.manifest import SecretSpec

        secrets: Mapping[str, LiveSecret] = live.of(KIND)
        variables = placeholder_names(list(secrets))
        entries: dict[str, dict[str, Any]] = {}
        notes = []
        for name in sorted(secrets):
            have = secrets[name]
            entry: dict[str, Any] = {"from_env": variables[name]}
            if have.description:
                entry["description"] = have.description
            problem = export_problem(SecretSpec, {"name": name, **entry})
            if problem is not None:
                notes.append(f"secret {name!r}: cannot be declared ({problem})")
                continue
            entries[name] = entry
        hidden = sorted(n for n in entries if secrets[n].digest is None)
        if hidden:
            notes.append(f"{caps.current_user} cannot decrypt vault secrets, so their values were not read: "
                         f"{', '.join(hidden)} (set their variables from where the values are kept)")
        return Export("secrets", entries, tuple(entries[n]["from_env"] for n in entries), tuple(notes))

    def privileges(self, change: Change) -> tuple[Privilege, ...]:
        return (DELETE,) if change.action is Action.DELETE else (TEMP, USAGE)

    def prune_policy(self, manifest: Manifest) -> str:
        return manifest.prune.secrets

    def live_digests(self, live: LiveState) -> Mapping[str, str | None]:
        secrets: Mapping[str, LiveSecret] = live.of(KIND)
        return {name: secret.digest for name, secret in secrets.items()}

    def drift_policy(self, manifest: Manifest, name: str) -> str | None:
        return next((s.on_drift for s in manifest.secrets if s.name == name), None)

    def protected_keys(self, manifest: Manifest, caps: Capabilities) -> set[str]:
        return {s.name for s in manifest.secrets if s.protect}

    def declared(self, manifest: Manifest) -> int | None:
        return len(manifest.secrets)

    def sources(self, manifest: Manifest) -> Mapping[str, Any]:
        return {spec.name: spec for spec in manifest.secrets}

    def rotatable(self, manifest: Manifest) -> Mapping[str, bool]:
        """Only a generated value can be rotated: a sourced one changes at its source."""
        return {spec.name: spec.generate is not None for spec in manifest.secrets}

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback:
        return Rollback({"secrets": ()}, {"secrets": "delete" if include_secrets else "off"})


kind = SecretKind()
