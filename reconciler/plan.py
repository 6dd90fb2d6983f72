"""plan(): the pure heart of the reconciler. Manifest + live state in, an ordered Plan out.

No connection, clock, environment or logging here: everything the plan depends on arrives as an
argument (secret values already resolved, the trigger command renderer chosen by the caller), so the
same inputs always give the same plan and tests need no database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler import cron
from reconciler.kinds import REGISTRY
from reconciler.kinds.base import Capabilities, Inputs, LiveState, PlanContext, PlanOptions
from reconciler.model import DESTRUCTIVE, Action, Change, Finding, Plan, Severity

__all__ = ["PlanOptions", "plan", "preflight"]


def plan(
    manifest: Any,
    live: LiveState,
    secret_values: Mapping[str, Any],
    render_command: Callable[[Any], str],
    options: PlanOptions | None = None,
) -> Plan:
    options = options or PlanOptions()
    inputs = Inputs(live.capabilities, secret_values, render_command)
    forward: list[Change] = []
    backward: list[list[Change]] = []
    findings: list[Finding] = list(preflight(manifest, live))
    for kind in REGISTRY:
        ctx = PlanContext(live, options, _policy(manifest, kind.KIND), create_tables=manifest.tables.create_missing)
        want = kind.desired(manifest, inputs)
        have = live.of(kind.KIND)
        changes = kind.diff(want, have, ctx)
        forward.extend(c for c in changes if c.action not in DESTRUCTIVE)
        backward.append([c for c in changes if c.action in DESTRUCTIVE])
        findings.extend(kind.findings(want, have, ctx))
    ordered = forward + [c for group in reversed(backward) for c in group]
    findings.extend(privilege_findings(ordered, live.capabilities))
    return Plan(tuple(ordered), tuple(_dedupe(findings)))


#: privilege key -> (what it allows, the GRANT that gives it; {user} and {db} are filled in)
GRANTS = {
    "database.temp": ("stage secret values in a temporary table", "GRANT TEMPORARY ON DATABASE {db} TO {user}"),
    "vault.usage": ("use schema vault", "GRANT USAGE ON SCHEMA vault TO {user}"),
    "vault.secrets.delete": ("delete pruned Vault secrets", "GRANT DELETE ON vault.secrets TO {user}"),
    "jobs.insert": ("insert rows into public.scheduled_jobs", "GRANT INSERT ON public.scheduled_jobs TO {user}"),
    "jobs.update": ("update rows of public.scheduled_jobs", "GRANT UPDATE ON public.scheduled_jobs TO {user}"),
    "jobs.delete": ("delete rows of public.scheduled_jobs", "GRANT DELETE ON public.scheduled_jobs TO {user}"),
    "cron.usage": ("use schema cron", "GRANT USAGE ON SCHEMA cron TO {user}"),
    "cron.schedule": ("call cron.schedule", "GRANT EXECUTE ON FUNCTION cron.schedule(text, text, text) TO {user}"),
    "cron.unschedule": ("call cron.unschedule", "GRANT EXECUTE ON FUNCTION cron.unschedule(bigint) TO {user}"),
    "reconciler.write": ("record ownership and history in schema reconciler",
                         "GRANT CREATE ON DATABASE {db} TO {user} (or ALL on the reconciler schema's tables)"),
}


def _needed(change: Change) -> tuple[str, ...]:
    """The privileges a change needs beyond reading (what the GRANTS table names)."""
    kind, action = change.kind, change.action
    if kind == "secret":
        return ("vault.secrets.delete",) if action is Action.DELETE else ("database.temp", "vault.usage")
    if kind == "job":
        return {Action.CREATE: ("jobs.insert",), Action.DELETE: ("jobs.delete",)}.get(action, ("jobs.update",))
    if kind == "trigger":
        if action is Action.DELETE:
            return ("cron.usage", "cron.unschedule")
        return ("cron.usage", "cron.schedule")
    return ()


def privilege_findings(changes: tuple[Change, ...] | list[Change], caps: Capabilities) -> list[Finding]:
    """One error per privilege the plan needs and the role lacks, naming the GRANT that fixes it."""
    out: list[Finding] = []
    mutating = [c for c in changes if c.mutating]
    if not mutating or caps.is_superuser:
        return out
    wanted = {"reconciler.write"} | {p for c in mutating if c.action is not Action.ADOPT for p in _needed(c)}
    for key in sorted(wanted):
        if not caps.may(key):
            what, grant = GRANTS[key]
            out.append(Finding(Severity.ERROR, "missing_privilege",
                               f"{caps.current_user} may not {what}",
                               grant.format(user=caps.current_user, db=caps.database)))
    return out


def _policy(manifest: Any, kind: str) -> str:
    """The manifest's prune policy for a kind: `prune.<kind>s` (jobs, triggers, secrets...), else off."""
    return str(getattr(manifest.prune, f"{kind}s", "off"))


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        if (f.code, f.message) not in seen:
            seen.add((f.code, f.message))
            out.append(f)
    return out


def _version_tuple(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.replace("-", ".").split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def preflight(manifest: Any, live: LiveState) -> list[Finding]:
    """Facts about the server that decide whether the plan can work at all, each with its fix."""
    caps = live.capabilities
    out: list[Finding] = []
    extensions = live.of("extension")
    declared = {e.name for e in manifest.extensions}
    preload = caps.setting("shared_preload_libraries")
    if "pg_cron" in declared and preload is not None and "pg_cron" not in [p.strip() for p in preload.split(",")]:
        out.append(Finding(Severity.ERROR, "pg_cron_not_preloaded",
                           "pg_cron is not in shared_preload_libraries, so no job would ever run",
                           "add pg_cron to shared_preload_libraries and restart PostgreSQL"))
    cron_db = caps.setting("cron.database_name")
    pg_cron = extensions.get("pg_cron")
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
    if manifest.secrets and caps.has("vault.secrets") and not caps.can_decrypt_secrets:
        out.append(Finding(Severity.WARNING, "vault_no_decrypt",
                           f"{caps.current_user} cannot read vault.decrypted_secrets, so secret values cannot be compared",
                           f"GRANT SELECT ON vault.decrypted_secrets TO {caps.current_user}; "
                           f"GRANT EXECUTE ON FUNCTION vault._crypto_aead_det_decrypt TO {caps.current_user}"))
    if manifest.secrets and caps.has("vault.secrets") and not caps.can_create_secrets:
        out.append(Finding(Severity.ERROR, "vault_no_write",
                           f"{caps.current_user} may not call vault.create_secret / vault.update_secret",
                           f"GRANT EXECUTE ON FUNCTION vault.create_secret, vault.update_secret TO {caps.current_user}"))
    if manifest.triggers and caps.has("cron.job") and not caps.can_alter_cron_jobs and not caps.is_superuser:
        out.append(Finding(Severity.WARNING, "cron_no_alter_job",
                           f"{caps.current_user} may not call cron.alter_job, so a disabled trigger cannot be re-enabled",
                           f"GRANT EXECUTE ON FUNCTION cron.alter_job TO {caps.current_user}"))
    logging = caps.setting("log_statement")
    if manifest.secrets and logging in ("all", "mod"):
        out.append(Finding(Severity.WARNING, "statement_logging",
                           f"log_statement is '{logging}': the server logs statements; the reconciler stages secret "
                           "values through COPY so they never appear in a logged statement or its parameters, "
                           "but other clients' secret writes would be logged",
                           "set log_statement to 'ddl' or 'none'"))
    return out


def _schedule_support(manifest: Any, version: tuple[int, int]) -> list[Finding]:
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
