"""Kind `trigger`: entries of cron.job keyed by jobname, changed only through the cron.* functions.

Hosted Supabase gives `postgres` no DML on cron.job, so: cron.schedule() creates and updates in place
(the jobid and its run history survive), cron.alter_job() fixes `active`, database and username, and
cron.unschedule(jobid) prunes. Commands are compared by their parsed form, schedules by their canonical form.
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
    Scheduled,
    Statement,
    export_problem,
)
from reconciler.kinds.common import field_changes, in_sync, normalise_schedule, undeclared
from reconciler.kinds.facts import DEFAULT_TIMEOUT_MS, DeclaredTrigger
from reconciler.kinds.triggers.command import http_post_from_command, render_command, render_http_post
from reconciler.kinds.triggers.sqltext import normalise_sql
from reconciler.model import Action, Change, FieldChange, Finding, Severity

if TYPE_CHECKING:
    from psycopg import sql

    from reconciler.manifest import Manifest

KIND = "trigger"
PRUNABLE = True
FIELDS = ("schedule", "command", "active", "database", "username")


def _may_call(function: str, how: str = "bool_or") -> str:
    return (f"(SELECT {how}(has_function_privilege(p.oid, 'EXECUTE')) FROM pg_proc p"
            f" WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'cron') AND p.proname = '{function}')")


#: Probes of the capabilities query (see Kind.probes).
PROBES = {
    "cron.alter_job": f"coalesce({_may_call('alter_job', 'bool_and')}, false)",
    "cron.usage": "(SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = 'cron')",
    "cron.schedule": _may_call("schedule"),
    "cron.unschedule": _may_call("unschedule"),
}
USAGE = Privilege("cron.usage", "use schema cron", "GRANT USAGE ON SCHEMA cron TO {user}")
SCHEDULE = Privilege("cron.schedule", "call cron.schedule",
                     "GRANT EXECUTE ON FUNCTION cron.schedule(text, text, text) TO {user}")
UNSCHEDULE = Privilege("cron.unschedule", "call cron.unschedule", "GRANT EXECUTE ON FUNCTION cron.unschedule(bigint) TO {user}")


@dataclass(frozen=True, slots=True)
class LiveTrigger:
    jobid: int
    jobname: str | None
    schedule: str
    command: str
    active: bool
    database: str
    username: str

    def fields(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in ("jobname", *FIELDS)} | {"jobid": self.jobid}


def read_query(caps: Capabilities) -> Statement | None:
    from psycopg import sql

    if not caps.has("cron.job"):
        return None
    return Statement(sql.SQL(
        "SELECT jobid, jobname, schedule, command, active, database, username FROM cron.job ORDER BY jobid"
    ))


def key_for(name: str, username: str | None, current_user: str) -> str:
    """Names are unique per user in pg_cron; jobs of other users are keyed name@user."""
    return name if username in (None, current_user) else f"{name}@{username}"


NORMALISERS = {
    "schedule": normalise_schedule,
    "command": lambda v: normalise_sql(v) if isinstance(v, str) else v,
}


def _why(fields: Sequence[FieldChange]) -> str:
    paths = [f.path for f in fields]
    if paths == ["active"]:
        return "disabled" if not fields[0].old else "enabled outside git"
    return "changed outside git: " + ", ".join(paths)


def _jobid_of(after: Mapping[str, Any]) -> tuple[sql.Composable, tuple[Any, ...]]:
    from psycopg import sql

    if after.get("jobid") is not None:
        return sql.SQL("%s::bigint"), (after["jobid"],)
    return (sql.SQL("(SELECT jobid FROM cron.job WHERE jobname = %s AND username = %s)"),
            (after["jobname"], after["username"]))


def _statements(change: Change, caps: Capabilities) -> list[Statement]:
    from psycopg import sql

    if change.action is Action.DELETE:
        assert change.before is not None
        return [Statement(sql.SQL("SELECT cron.unschedule(%s::bigint)"), (change.before["jobid"],),
                          f"unschedule trigger {change.key}")]
    if change.action not in (Action.CREATE, Action.UPDATE):
        return []
    after = change.after
    assert after is not None
    changed = {f.path for f in change.fields} if change.action is Action.UPDATE else set(FIELDS)
    out = []
    own = after["username"] == caps.current_user and after["database"] == caps.database
    if change.action is Action.CREATE and not own:
        out.append(Statement(
            sql.SQL("SELECT cron.schedule_in_database(%s, %s, %s, %s, %s, %s)"),
            (after["jobname"], after["schedule"], after["command"], after["database"], after["username"], after["active"]),
            f"schedule trigger {change.key} in database {after['database']} as {after['username']}",
        ))
        return out
    if changed & {"schedule", "command"}:
        if own:
            out.append(Statement(sql.SQL("SELECT cron.schedule(%s, %s, %s)"),
                                 (after["jobname"], after["schedule"], after["command"]),
                                 f"schedule trigger {change.key}"))
        else:
            jobid, params = _jobid_of(after)
            out.append(Statement(sql.SQL("SELECT cron.alter_job({}, schedule := %s, command := %s)").format(jobid),
                                 (*params, after["schedule"], after["command"]), f"alter trigger {change.key}"))
    alter = [f for f in ("database", "username") if f in changed and change.action is Action.UPDATE]
    if alter:
        jobid, params = _jobid_of(after)
        assigns = sql.SQL(", ").join(sql.SQL("{} := %s").format(sql.Identifier(f)) for f in alter)
        out.append(Statement(sql.SQL("SELECT cron.alter_job({}, {})").format(jobid, assigns),
                             (*params, *(after[f] for f in alter)), f"move trigger {change.key}"))
    if ("active" in changed and change.action is Action.UPDATE) or (change.action is Action.CREATE and not after["active"]):
        jobid, params = _jobid_of(after)
        out.append(Statement(sql.SQL("SELECT cron.alter_job({}, active := %s)").format(jobid),
                             (*params, after["active"]),
                             f"{'enable' if after['active'] else 'disable'} trigger {change.key}"))
    return out


def structured_command(command: str) -> dict[str, Any] | None:
    """The `http_post:` form of `command` when rendering it gives back `command` (compared as the plan compares)."""
    from reconciler.manifest import HttpPostSpec

    post = http_post_from_command(command)
    if post is None or export_problem(HttpPostSpec, post) is not None:
        return None
    rendered = render_http_post(HttpPostSpec.model_validate(post))
    return post if normalise_sql(rendered) == normalise_sql(command) else None


class TriggerKind(KindDefaults):
    name = KIND
    prunable = PRUNABLE
    hidden_fields = frozenset({"jobid", "jobname"})
    rollback_help = "unschedules managed triggers"
    assigned_fields = frozenset({"jobid"})
    relations = ("cron.job",)
    probes = PROBES

    def read(self, caps: Capabilities, manifest: Manifest | None) -> Statement | None:
        return read_query(caps)

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> dict[str, LiveTrigger]:
        out = {}
        for row in rows:
            trigger = LiveTrigger(*row)
            name = trigger.jobname if trigger.jobname is not None else f"(unnamed #{trigger.jobid})"
            out[key_for(name, trigger.username, caps.current_user)] = trigger
        return out

    def desired(self, manifest: Manifest, inputs: Inputs) -> dict[str, dict[str, Any]]:
        caps = inputs.capabilities
        out = {}
        for trig in manifest.triggers:
            out[key_for(trig.name, trig.username, caps.current_user)] = {
                "jobname": trig.name,
                "schedule": trig.schedule,
                "command": render_command(trig),
                "active": trig.active,
                "database": trig.database or caps.database,
                "username": trig.username or caps.current_user,
            }
        return out

    def diff(self, want: Mapping[str, Mapping[str, Any]], live: Mapping[str, LiveTrigger], ctx: PlanContext) -> list[Change]:
        changes: list[Change] = []
        for key, after in want.items():
            have = live.get(key)
            if have is None:
                changes.append(Change(KIND, key, Action.CREATE, after=dict(after), reason="missing"))
                continue
            before = have.fields()
            fields = field_changes(before, after, FIELDS, NORMALISERS)
            full_after = {**after, "jobid": have.jobid}
            if fields:
                changes.append(Change(KIND, key, Action.UPDATE, before=before, after=full_after, fields=fields,
                                      reason=_why(fields)))
            else:
                changes.append(in_sync(KIND, key, before, full_after, ctx))
        for key, have in live.items():
            if key not in want:
                changes.append(undeclared(KIND, key, have.fields(), ctx))
        return changes

    def preflight(self, manifest: Manifest, live: LiveState) -> list[Finding]:
        caps = live.capabilities
        if manifest.triggers and caps.has("cron.job") and not caps.probe("cron.alter_job", False) and not caps.is_superuser:
            return [Finding(Severity.WARNING, "cron_no_alter_job",
                            f"{caps.current_user} may not call cron.alter_job, so a disabled trigger cannot be re-enabled",
                            f"GRANT EXECUTE ON FUNCTION cron.alter_job TO {caps.current_user}")]
        return []

    def findings(self, want: Mapping[str, Any], live: Mapping[str, LiveTrigger], ctx: PlanContext) -> list[Finding]:
        out = []
        for key, spec in want.items():
            if len(spec["jobname"].encode()) > 63:
                out.append(Finding(Severity.ERROR, "trigger_name_too_long",
                                   f"trigger {key}: pg_cron stores names as type name (63 bytes); it would be cut",
                                   "use a name of at most 63 bytes"))
        return out

    def statements(self, changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
        out: list[Statement] = []
        for change in changes:
            out.extend(_statements(change, caps))
        return out

    def export(self, live: LiveState, caps: Capabilities) -> Export | None:
        """Every cron.job row the role can see: `http_post:` when it renders back to the live command, else `command:`."""
        from reconciler.manifest import TriggerSpec

        if not caps.has("cron.job"):
            return None
        triggers: Mapping[str, LiveTrigger] = live.of(KIND)
        entries = []
        notes = []
        for key in sorted(triggers):
            have = triggers[key]
            if have.jobname is None:
                notes.append(f"cron job {have.jobid} has no name and cannot be declared")
                continue
            entry: dict[str, Any] = {"name": have.jobname, "schedule": have.schedule}
            post = structured_command(have.command)
            if post is not None and export_problem(TriggerSpec, {**entry, "http_post": post}) is None:
                entry["http_post"] = post
            else:
                entry["command"] = have.command
            if not have.active:
                entry["active"] = False
            if have.database != caps.database:
                entry["database"] = have.database
            if have.username != caps.current_user:
                entry["username"] = have.username
            problem = export_problem(TriggerSpec, entry)
            if problem is not None:
                notes.append(f"cron job {key!r}: cannot be declared ({problem})")
                continue
            entries.append(entry)
        if not caps.is_superuser:
            notes.append(f"cron.job rows of roles other than {caps.current_user} are not visible to it (pg_cron's row "
                         "security) and were not exported")
        return Export("triggers", entries, notes=tuple(notes))

    def privileges(self, change: Change) -> tuple[Privilege, ...]:
        return (USAGE, UNSCHEDULE) if change.action is Action.DELETE else (USAGE, SCHEDULE)

    def prune_policy(self, manifest: Manifest) -> str:
        return manifest.prune.triggers

    def protected_keys(self, manifest: Manifest, caps: Capabilities) -> set[str]:
        """Keyed as the live rows are (`key_for`): a trigger run as another user is `name@user`."""
        return {key_for(t.name, t.username, caps.current_user) for t in manifest.triggers if t.protect}

    def declared(self, manifest: Manifest) -> int | None:
        return len(manifest.triggers)

    def schedules(self, manifest: Manifest) -> Sequence[Scheduled]:
        return [Scheduled(trigger.name, trigger.schedule, trigger.active) for trigger in manifest.triggers]

    def declared_triggers(self, manifest: Manifest) -> tuple[DeclaredTrigger, ...]:
        """The triggers as verify sees them (kinds.facts.TriggerFacts): endpoint path and display form, never a secret value."""
        from urllib.parse import urlsplit

        from reconciler.manifest import SecretRef

        out = []
        for trig in manifest.triggers:
            post = trig.http_post
            if post is None:
                out.append(DeclaredTrigger(trig.name, trig.schedule))
                continue
            if isinstance(post.url, SecretRef):
                path = urlsplit("http://x" + post.url.append).path if post.url.append.startswith("/") else post.url.append
                endpoint = f"{post.url.prepend}{{{post.url.secret}}}{post.url.append}"
            else:
                parts = urlsplit(str(post.url))
                path = parts.path
                endpoint = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
            secret = None
            for header, value in post.headers.items():
                if header.lower() == "x-cron-secret" and isinstance(value, SecretRef):
                    secret = value.secret
            timeout = post.timeout_milliseconds or DEFAULT_TIMEOUT_MS
            out.append(DeclaredTrigger(trig.name, trig.schedule, path or "/", endpoint, secret, int(timeout)))
        return tuple(out)

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback:
        return Rollback({"triggers": ()}, {"triggers": "delete"})


kind = TriggerKind()
