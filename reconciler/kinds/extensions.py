"""Kind `extension`: rows of pg_extension for the declared extensions. Never dropped, never pruned.

Whether the role may create an extension is decided from the capabilities alone (`may_create`): a
superuser may; a trusted control file lets anyone with CREATE on the database; on hosted Supabase,
supautils runs the creation of the extensions in `supautils.privileged_extensions` as its superuser
for `supautils.privileged_role`, although their control files are untrusted. supautils may also force
an extension's schema (`supautils.extensions_parameter_overrides`, pg_cron into pg_catalog): the plan
targets that schema and says so when the manifest declares another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler import cron
from reconciler.kinds.base import (
    Capabilities,
    Export,
    Inputs,
    KindDefaults,
    LiveState,
    PlanContext,
    Rollback,
    Statement,
)
from reconciler.model import Action, Change, FieldChange, Finding, Severity

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

KIND = "extension"
PRUNABLE = False
#: The extensions the stack knows, read even when undeclared so preflight can describe them.
KNOWN = ("pg_cron", "pg_net", "supabase_vault")


@dataclass(frozen=True, slots=True)
class LiveExtension:
    name: str
    available: bool
    default_version: str | None
    installed_version: str | None
    schema: str | None
    relocatable: bool
    needs_superuser: bool = False  # not trusted: only a superuser may create it

    @property
    def installed(self) -> bool:
        return self.installed_version is not None


@dataclass(frozen=True, slots=True)
class DesiredExtension:
    name: str
    schema: str | None
    version: str | None
    declared_as: str


def read_query(caps: Capabilities, declared: Sequence[str]) -> Statement:
    from psycopg import sql

    query = sql.SQL(
        """SELECT a.name, true, a.default_version, e.extversion, n.nspname, coalesce(e.extrelocatable, false),
                  coalesce(v.superuser AND NOT v.trusted, false)
             FROM pg_available_extensions a
             LEFT JOIN pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version
             LEFT JOIN pg_extension e ON e.extname = a.name
             LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE a.name = ANY(%s)
           UNION ALL
           SELECT e.extname, false, NULL, e.extversion, n.nspname, e.extrelocatable, false
             FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE e.extname = ANY(%s)
              AND NOT EXISTS (SELECT FROM pg_available_extensions a WHERE a.name = e.extname)"""
    )
    wanted = sorted(set(KNOWN) | set(declared))
    return Statement(query, (wanted, wanted))


def may_create(have: LiveExtension, caps: Capabilities) -> bool | None:
    """Whether the connected role may CREATE EXTENSION `have`: True, False (certain), or None (unknown).

    Unknown when the control file is untrusted, the role is no superuser, and nothing visible says
    whether some server hook lets it (no supautils settings, or supautils privileges another role):
    the apply's transaction then finds out.
    """
    if caps.is_superuser or not have.needs_superuser:
        return True
    privileged = caps.setting("supautils.privileged_extensions")
    if privileged is None:
        return None
    if have.name not in {name.strip().strip('"') for name in privileged.split(",")}:
        return False  # supautils elevates only the listed extensions; PostgreSQL refuses the rest
    role = caps.setting("supautils.privileged_role")
    return True if not role or role == caps.current_user else None


def schema_overrides(caps: Capabilities) -> dict[str, str]:
    """Extension -> the schema supautils forces it into, from supautils.extensions_parameter_overrides."""
    text = caps.setting("supautils.extensions_parameter_overrides")
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    return {name: params["schema"] for name, params in doc.items()
            if isinstance(params, dict) and isinstance(params.get("schema"), str)}


#: Creates the schema named by the transaction-local setting reconciler.extension_schema when it is
#: missing; the name travels as a bound parameter of set_config, never inside this text.
_CREATE_SCHEMA_IF_MISSING = """DO $reconciler$
BEGIN
    IF to_regnamespace(quote_ident(current_setting('reconciler.extension_schema'))) IS NULL THEN
        EXECUTE format('CREATE SCHEMA %I', current_setting('reconciler.extension_schema'));
    END IF;
END
$reconciler$"""


def sql_for(change: Change) -> list[Statement]:
    from psycopg import sql

    assert change.after is not None
    name = change.after["name"]
    ident = sql.Identifier(name)
    if change.action is Action.CREATE:
        out = []
        query = sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(ident)
        schema = change.after.get("schema")
        if schema:
            query += sql.SQL(" WITH SCHEMA {}").format(sql.Identifier(schema))
            if schema != "pg_catalog":
                # Vanilla PostgreSQL has no `extensions` schema. Create it only when absent: even
                # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database, which a role may lack.
                out.append(Statement(sql.SQL("SELECT set_config('reconciler.extension_schema', %s, true)"),
                                     (schema,), f"create schema {schema}"))
                out.append(Statement(sql.SQL(_CREATE_SCHEMA_IF_MISSING), (), f"create schema {schema}"))
        if change.after.get("version"):
            query += sql.SQL(" VERSION {}").format(sql.Literal(change.after["version"]))
        return [*out, Statement(query, description=f"create extension {name}")]
    statements = []
    for fc in change.fields:
        if fc.path == "schema":
            statements.append(Statement(
                sql.SQL("ALTER EXTENSION {} SET SCHEMA {}").format(ident, sql.Identifier(fc.new)),
                description=f"move extension {name} to schema {fc.new}"))
        elif fc.path == "version":
            statements.append(Statement(
                sql.SQL("ALTER EXTENSION {} UPDATE TO {}").format(ident, sql.Literal(fc.new)),
                description=f"update extension {name} to {fc.new}"))
    return statements


def _version_tuple(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.replace("-", ".").split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def _schedule_support(manifest: Manifest, version: tuple[int, int]) -> list[Finding]:
    out = []
    # Only triggers' schedules reach pg_cron; jobs' schedules are read by the application.
    for name, schedule in ((t.name, t.schedule) for t in manifest.triggers):
        try:
            parsed = cron.parse(schedule)
        except cron.CronError:
            continue  # the manifest loader reports invalid schedules
        if parsed.min_version > version:
            out.append(Finding(Severity.ERROR, "pg_cron_too_old",
                               f"trigger {name}: schedule {schedule!r} needs pg_cron "
                               f"{parsed.min_version[0]}.{parsed.min_version[1]}+, the database has "
                               f"{version[0]}.{version[1]}",
                               "use a classic 5-field schedule or upgrade pg_cron"))
    return out


class ExtensionKind(KindDefaults):
    name = KIND
    prunable = PRUNABLE
    hidden_fields = frozenset({"name"})
    rollback_help = "never drops extensions"
    settings = ("shared_preload_libraries", "cron.database_name", "cron.timezone", "pg_net.database_name",
                # Hosted Supabase's supautils (listed only where the library is loaded in this session): which
                # extensions a non-superuser may create anyway, for which role, and the schemas it forces.
                "supautils.privileged_extensions", "supautils.privileged_role",
                "supautils.extensions_parameter_overrides")

    def read(self, caps: Capabilities, manifest: Manifest | None) -> Statement | None:
        return read_query(caps, [e.name for e in manifest.extensions] if manifest is not None else ())

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> dict[str, LiveExtension]:
        return {row[0]: LiveExtension(*row) for row in rows}

    def desired(self, manifest: Manifest, inputs: Inputs) -> dict[str, DesiredExtension]:
        return {
            ext.name: DesiredExtension(ext.name, ext.schema_name, ext.version, getattr(ext, "declared_as", None) or ext.name)
            for ext in manifest.extensions
        }

    def diff(self,
        want: Mapping[str, DesiredExtension], live: Mapping[str, LiveExtension], ctx: PlanContext
    ) -> list[Change]:
        changes: list[Change] = []
        forced = schema_overrides(ctx.capabilities)
        for name, spec in want.items():
            have = live.get(name)
            schema = forced.get(name, spec.schema)  # what the server will do, whatever the manifest says
            after = {"name": name, "schema": schema, "version": spec.version}
            if have is None or not have.installed:
                changes.append(Change(KIND, name, Action.CREATE, after=after, reason="missing"))
                continue
            before = {"name": name, "schema": have.schema, "version": have.installed_version}
            fields: list[FieldChange] = []
            reasons: list[str] = []
            if schema and have.schema != schema and have.relocatable:
                fields.append(FieldChange("schema", have.schema, schema))
                reasons.append("wrong schema")
            if spec.version and have.installed_version != spec.version:
                fields.append(FieldChange("version", have.installed_version, spec.version))
                reasons.append("version differs")
            if fields:
                changes.append(
                    Change(KIND, name, Action.UPDATE, before=before, after=after, fields=tuple(fields),
                           reason=", ".join(reasons))
                )
            else:
                changes.append(Change(KIND, name, Action.NOOP, before=before, after=after))
        return changes

    def preflight(self, manifest: Manifest, live: LiveState) -> list[Finding]:
        """Facts about the server that decide whether pg_cron and pg_net can work at all, each with its fix."""
        caps = live.capabilities
        out: list[Finding] = []
        declared = {e.name for e in manifest.extensions}
        preload = caps.setting("shared_preload_libraries")
        if "pg_cron" in declared and preload is not None and "pg_cron" not in [p.strip() for p in preload.split(",")]:
            out.append(Finding(Severity.ERROR, "pg_cron_not_preloaded",
                               "pg_cron is not in shared_preload_libraries, so no job would ever run",
                               "add pg_cron to shared_preload_libraries and restart PostgreSQL"))
        cron_db = caps.setting("cron.database_name")
        pg_cron = live.of(KIND).get("pg_cron")
        if "pg_cron" in declared and cron_db and cron_db != caps.database:
            out.append(Finding(Severity.ERROR, "pg_cron_wrong_database",
                               f"pg_cron can only be created in database {cron_db} (cron.database_name); "
                               f"connected to {caps.database}",
                               f"connect to database {cron_db}, or set cron.database_name = '{caps.database}' and restart"))
        net_db = caps.setting("pg_net.database_name")
        if "pg_net" in declared and net_db and net_db != caps.database:
            out.append(Finding(Severity.WARNING, "pg_net_wrong_database",
                               f"pg_net's worker serves database {net_db} (pg_net.database_name), not {caps.database}: "
                               "requests queued here would never be sent",
                               f"set pg_net.database_name = '{caps.database}' and restart"))
        tz = caps.setting("cron.timezone")
        if tz and tz.upper() not in ("UTC", "GMT", "ETC/UTC", "Z"):
            out.append(Finding(Severity.WARNING, "cron_timezone",
                               f"cron.timezone is {tz}: schedules run in that zone, not UTC",
                               "set cron.timezone = 'UTC' or write schedules for that zone"))
        version = None
        if pg_cron is not None:
            version = _version_tuple(pg_cron.installed_version or pg_cron.default_version)
        if version is not None:
            out.extend(_schedule_support(manifest, version))
        return out

    def findings(self, want: Mapping[str, DesiredExtension], live: Mapping[str, LiveExtension], ctx: PlanContext) -> list[Finding]:
        out = []
        caps = ctx.capabilities
        forced = schema_overrides(caps)
        for name, spec in want.items():
            have = live.get(name)
            schema = forced.get(name, spec.schema)
            if spec.schema and name in forced and spec.schema != forced[name]:
                out.append(Finding(Severity.WARNING, "extension_schema_overridden",
                                   f"extension {name} is declared in schema {spec.schema}, but this server always puts it "
                                   f"in {forced[name]} (supautils.extensions_parameter_overrides); the plan uses {forced[name]}",
                                   f"declare schema: {forced[name]}"))
            if spec.declared_as != name:
                out.append(Finding(Severity.INFO, "extension_alias", f'extension "{spec.declared_as}" is an alias of "{name}"',
                                   f'declare it as "{name}"'))
            if have is None or (not have.available and not have.installed):
                out.append(Finding(Severity.ERROR, "extension_unavailable",
                                   f"extension {name} is not available on this server",
                                   "install its package on the server (on Supabase: Database > Extensions)"))
            elif not have.installed and (allowed := may_create(have, caps)) is not True:
                if allowed is False:
                    out.append(Finding(Severity.ERROR, "extension_needs_superuser",
                                       f"extension {name} can only be created by a superuser on this server and "
                                       f"{caps.current_user} is not one (its control file is not trusted"
                                       + (" and it is not in supautils.privileged_extensions)"
                                          if caps.setting("supautils.privileged_extensions") is not None else ")"),
                                       f"have a superuser run CREATE EXTENSION {name}, or run the reconciler as one"))
                else:
                    out.append(Finding(Severity.WARNING, "extension_may_need_superuser",
                                       f"extension {name} is not trusted and {caps.current_user} is not a superuser: "
                                       "creating it works only if the server lets this role (as Supabase's supautils "
                                       "does for postgres); the apply will find out, and roll back if refused",
                                       f"enable {name} in the Dashboard (Database > Extensions) first, or run as a superuser"))
            elif have.installed and schema and have.schema != schema and not have.relocatable:
                out.append(Finding(Severity.WARNING, "extension_wrong_schema",
                                   f"extension {name} is installed in schema {have.schema}, declared {schema}; "
                                   "it is not relocatable, so this cannot be fixed safely",
                                   f"declare schema: {have.schema}, or move it by hand (DROP EXTENSION {name} drops its data)"))
        return out

    def statements(self, changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
        return [s for c in changes for s in sql_for(c)]

    def refused(self, statement: Statement) -> tuple[str, str] | None:
        """The one-line error and fix for a CREATE EXTENSION the server refused (insufficient_privilege)."""
        name = statement.description.removeprefix("create extension ")
        if not statement.description.startswith("create extension "):
            return None
        return (f"the server refused to let this role create extension {name}; rolled back, nothing changed",
                f"enable {name} in the Dashboard (Database > Extensions), or run the reconciler as a superuser")

    def export(self, live: LiveState, caps: Capabilities) -> Export:
        """Installed extensions by name; the schema only when it is neither `public` nor the one supautils forces."""
        forced = schema_overrides(caps)
        entries = []
        for name, have in sorted(live.of(KIND).items()):
            if not have.installed:
                continue
            entry: dict[str, Any] = {"name": name}
            if have.schema and have.schema != "public" and forced.get(name) != have.schema:
                entry["schema"] = have.schema
            entries.append(entry)
        return Export("extensions", entries)

    def declared(self, manifest: Manifest) -> int | None:
        return len(manifest.extensions)

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback:
        return Rollback({"extensions": ()})  # never dropped: nothing declared, nothing pruned


kind = ExtensionKind()
