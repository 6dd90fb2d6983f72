"""Plans as text (like a Terraform plan), JSON (versioned schema) and Markdown (pull-request comments).

Redaction is by construction: only plain JSON values (str, int, float, bool, None, lists and dicts of
them) are ever shown; anything else, above all a SecretValue, and every sensitive FieldChange prints as
`(sensitive)`. Renderers read a Plan and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import kinds
from reconciler.model import Action, AppliedRecord, Change, FieldChange, Origin, Plan
from reconciler.secret_value import SENSITIVE

FORMAT_VERSION = "1"
SYMBOLS = {
    Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.DEACTIVATE: "!",
    Action.ADOPT: "=", Action.UNMANAGED: "?", Action.NOOP: " ",
}
COLOURS = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.DELETE: "red", Action.DEACTIVATE: "red",
           Action.ADOPT: "cyan", Action.UNMANAGED: "magenta"}


def is_plain(value: Any) -> bool:
    """True for plain JSON values only: the only values renderers and history ever show."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def hidden_fields(kind: str) -> frozenset[str]:
    """A kind's bookkeeping fields (row identities, database-assigned ids, the key), never shown."""
    try:
        return kinds.by_name(kind).hidden_fields
    except KeyError:  # a change of no registered kind: hide what any kind hides
        return frozenset().union(*(k.hidden_fields for k in kinds.REGISTRY))


def shown_fields(change: Change) -> tuple[FieldChange, ...]:
    """The field lines a change displays: its own diffs, or for create/delete every visible field."""
    hidden = hidden_fields(change.kind)
    if change.action is Action.UPDATE or (change.fields and change.action is Action.CREATE):
        return tuple(_safe(f) for f in change.fields)
    if change.action is Action.CREATE:
        return tuple(_safe(FieldChange(k, None, v) if is_plain(v) else FieldChange(k, sensitive=True))
                     for k, v in (change.after or {}).items() if k not in hidden and v is not None)
    if change.action is Action.DELETE:
        return tuple(_safe(FieldChange(k, v, None) if is_plain(v) else FieldChange(k, sensitive=True))
                     for k, v in (change.before or {}).items() if k not in hidden)
    if change.action is Action.DEACTIVATE:
        before, after = change.before or {}, change.after or {}
        return tuple(FieldChange(k, before.get(k), after.get(k)) for k in after
                     if k not in hidden and before.get(k) != after.get(k) and is_plain(after.get(k)))
    return ()


def _safe(f: FieldChange) -> FieldChange:
    if f.sensitive or (is_plain(f.old) and is_plain(f.new) and is_plain(f.applied)):
        return f
    return FieldChange(f.path, sensitive=True, origin=f.origin)


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def _block(text: str, indent: str) -> str:
    return "\n".join(indent + line for line in text.splitlines())


def _field_line(f: FieldChange, action: Action) -> str:
    """One field as text; multi-line strings (SQL commands) as indented blocks."""
    multiline = any(isinstance(v, str) and "\n" in v for v in (f.old, f.new))
    if multiline and not f.sensitive:
        pad = "        "
        if action is Action.CREATE:
            return f"{f.path}: |\n{_block(str(f.new), pad)}"
        if action is Action.DELETE:
            return f"{f.path}: |\n{_block(str(f.old), pad)}"
        return f"{f.path}:\n      old: |\n{_block(str(f.old), pad + '  ')}\n      new: |\n{_block(str(f.new), pad + '  ')}"
    if f.sensitive:
        if action is Action.UPDATE:
            return f"{f.path}: {SENSITIVE} changed"
        return f"{f.path}: {SENSITIVE}"
    if action is Action.CREATE:
        return f"{f.path}: {_value(f.new)}"
    if action is Action.DELETE:
        return f"{f.path}: {_value(f.old)}"
    if f.origin is Origin.CONFLICT:
        return f"{f.path}: {_value(f.old)} → {_value(f.new)}  (conflict: last applied {_value(f.applied)})"
    return f"{f.path}: {_value(f.old)} → {_value(f.new)}"


def visible(plan: Plan, verbose: bool) -> list[Change]:
    """What a plan lists: every change but the in-sync ones (shown with -v); kept objects always."""
    return [c for c in plan.changes if verbose or c.action is not Action.NOOP or c.kept]


def action_label(change: Change) -> str:
    return "kept" if change.kept else change.action.value


#: The plan's sections, in order: what changed outside git, what the manifest changes, what cannot be told.
DRIFT_SIDE = frozenset({Origin.DRIFT, Origin.CONFLICT})
MANIFEST_SIDE = frozenset({Origin.MANIFEST, Origin.CONFLICT})


def sections(changes: Iterable[Change]) -> list[tuple[str, list[tuple[Change, tuple[FieldChange, ...]]]]]:
    """(section, [(change, the fields it shows there)]) for "drift", "manifest" and "unknown".

    An update's fields are split by origin, so one object can appear in two sections (a conflict field in
    both); a change without an origin (adopt, unmanaged, in sync) is listed with the manifest's.
    """
    out: dict[str, list[tuple[Change, tuple[FieldChange, ...]]]] = {"drift": [], "manifest": [], "unknown": []}
    for change in changes:
        fields = shown_fields(change)
        if change.action is Action.UPDATE and change.fields:
            for name, side in (("drift", DRIFT_SIDE), ("manifest", MANIFEST_SIDE), ("unknown", {Origin.UNKNOWN})):
                picked = tuple(f for f in fields if (f.origin or Origin.UNKNOWN) in side)
                if picked:
                    out[name].append((change, picked))
            continue
        name = {Origin.DRIFT: "drift", Origin.UNKNOWN: "unknown"}.get(change.origin, "manifest")  # type: ignore[arg-type]
        out[name].append((change, fields))
    return [(name, entries) for name, entries in out.items() if entries]


def drift_record(plan: Plan) -> AppliedRecord | None:
    """The most recent apply any drifted object was recorded by: what the drift section's title names."""
    records = [c.record for c in plan.with_origin(*DRIFT_SIDE) if c.record is not None]
    return max(records, key=lambda r: r.history_id) if records else None


def section_title(name: str, plan: Plan, manifest_name: str) -> str:
    if name == "drift":
        record = drift_record(plan)
        since = f" (#{record.history_id} at {record.applied_at} by {record.applied_by})" if record else ""
        return f"Drift: changed outside git since the last apply{since}"
    if name == "unknown":
        return "Differences without a record of the last apply (who made them is not known)"
    return f"Changes from {manifest_name}"


def listed(changes: Iterable[Change]) -> str:
    """Changes named in one line ("create job a, update trigger b"), for messages and warnings."""
    return ", ".join(f"{c.action.value} {c.kind} {c.key}" for c in changes)


def summary_line(plan: Plan) -> str:
    kept = _kept_words(plan)
    if plan.is_empty:
        return "No changes. The database matches the manifest." + (f" {kept[0].upper()}{kept[1:]}." if kept else "")
    n = plan.counts()
    text = f"Plan: {n['create']} to create, {n['update']} to update, {n['delete']} to delete"
    if n["deactivate"]:
        text += f", {n['deactivate']} to deactivate"
    if n["adopt"]:
        text += f", {n['adopt']} to adopt"
    drifted = len(plan.with_origin(*DRIFT_SIDE))
    if drifted:
        text += f"; {drifted} drifted outside git"
    text += (f"; {kept}" if kept else "") + "."
    if not plan.changes_scheduler:  # adopt only: nothing in the scheduler changes
        text += " The database is in sync; applying only records that the reconciler manages these objects."
    return text


def _kept_words(plan: Plan) -> str:
    kept = len(plan.kept)
    return f"{kept} no longer declared, kept" if kept else ""


def to_text(plan: Plan, *, verbose: bool = False, colour: bool = False, manifest_name: str = "scheduler.yaml") -> str:
    import click

    def paint(text: str, action: Action) -> str:
        return click.style(text, fg=COLOURS.get(action)) if colour and action in COLOURS else text

    lines: list[str] = []
    for number, (name, entries) in enumerate(sections(visible(plan, verbose))):
        if number:
            lines.append("")
        lines += [section_title(name, plan, manifest_name) + ":", ""]
        for change, fields in entries:
            head = f"{SYMBOLS[change.action]} {change.kind} {change.key}: {action_label(change)}"
            if change.reason:
                head += f" ({change.reason})"
            lines.append(paint("  " + head, change.action))
            for f in fields:
                lines.append("      " + _field_line(f, change.action))
    if plan.destructive:
        lines.append("")
        # listed again only when other changes are around them (`reconcile down`'s are all destructive)
        repeat = len(plan.destructive) < len(plan.mutating)
        lines.append(paint(f"  Warning: {len(plan.destructive)} change(s) delete or deactivate existing objects"
                           + (":" if repeat else " (all of the above)."), Action.DELETE))
        for change in plan.destructive if repeat else ():
            lines.append(paint(f"    {change.action.value} {change.kind} {change.key}", Action.DELETE))
    if plan.findings:
        lines.append("")
        lines.append("Findings:")
        for finding in plan.findings:
            lines.append(f"  {finding.severity.value}: {finding.message}")
            if finding.fix:
                lines.append(f"      fix: {finding.fix}")
    if lines:
        lines.append("")
    if plan.is_empty:
        kept = _kept_words(plan)
        lines.append(f"No changes. The database matches {manifest_name}." + (f" {kept[0].upper()}{kept[1:]}." if kept else ""))
    else:
        lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def to_data(plan: Plan, *, verbose: bool = False, database: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document (format_version 1). Documented in docs/plan-json.md. `database` (host, port, dbname:
    what the plan was made against) is added when given."""
    return {
        "format_version": FORMAT_VERSION,
        **({"database": dict(database)} if database is not None else {}),
        "empty": plan.is_empty,
        "changes": [
            {
                "kind": c.kind,
                "key": c.key,
                "action": c.action.value,
                "reason": c.reason,
                "fields": [_field_data(f) for f in shown_fields(c)],
                "origin": c.origin.value if c.origin is not None else None,
                "kept": c.kept,
                "last_applied": _record_data(c.record),
            }
            for c in visible(plan, verbose)
        ],
        "summary": plan.counts(),
        "origins": plan.origin_counts(),
        "kept": len(plan.kept),
        "findings": [
            {"severity": f.severity.value, "code": f.code, "message": f.message, "fix": f.fix} for f in plan.findings
        ],
    }


def _field_data(f: FieldChange) -> dict[str, Any]:
    origin = f.origin.value if f.origin is not None else None
    if f.sensitive:
        return {"path": f.path, "old": None, "new": None, "sensitive": True, "origin": origin}
    data = {"path": f.path, "old": f.old, "new": f.new, "sensitive": False, "origin": origin}
    if f.origin is Origin.CONFLICT:
        data["applied"] = f.applied
    return data


def _record_data(record: AppliedRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"history_id": record.history_id, "applied_at": record.applied_at, "applied_by": record.applied_by,
            "command": record.command}


def to_json(plan: Plan, *, verbose: bool = False, database: Mapping[str, Any] | None = None) -> str:
    return json.dumps(to_data(plan, verbose=verbose, database=database), indent=2, ensure_ascii=False) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(plan: Plan, *, verbose: bool = False, manifest_name: str = "scheduler.yaml",
                database: str | None = None, target: str | None = None) -> str:
    """The plan as a pull-request comment; `database` (`database postgres on db:5432`) heads it when given,
    so comments for two databases can be told apart; a fleet's plan names its `target` in the title."""
    counts = plan.counts()
    on = f" on target `{target}`" if target is not None else ""
    lines = [f"### Reconciler plan for `{manifest_name}`{on}", ""]
    if database is not None:
        lines += [f"Made against {_md_cell(database)}.", ""]
    lines.append(f"**{summary_line(plan) if not plan.is_empty else 'No changes. The database matches ' + manifest_name + '.'}**")
    rows = [f"| {a} | {n} |" for a, n in counts.items() if n and a != Action.NOOP.value]
    if rows:  # an empty plan has no counts: no table header without rows
        lines += ["", "| action | count |", "| --- | ---: |", *rows]
    if plan.destructive:
        lines += ["", f"> **Warning:** {len(plan.destructive)} change(s) delete or deactivate existing objects."]
    if plan.findings:
        lines += ["", "| severity | finding | fix |", "| --- | --- | --- |"]
        lines += [f"| {f.severity.value} | {_md_cell(f.message)} | {_md_cell(f.fix)} |" for f in plan.findings]
    for name, entries in sections(visible(plan, verbose)):
        title = section_title(name, plan, manifest_name)
        if name == "drift":  # never folded away: the part a reviewer must not miss
            lines += ["", f"**{_md_cell(title)}**", "", "```diff", *_diff_lines(entries), "```"]
        else:
            lines += ["", f"<details><summary>{_md_cell(title)}</summary>", "", "```diff", *_diff_lines(entries),
                      "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def _diff_lines(entries: Iterable[tuple[Change, tuple[FieldChange, ...]]]) -> Iterable[str]:
    for change, fields in entries:
        symbol = {"~": "!", "=": " ", "?": "#"}.get(SYMBOLS[change.action], SYMBOLS[change.action])
        head = f"{symbol} {change.kind} {change.key}: {action_label(change)}"
        yield head + (f" ({change.reason})" if change.reason else "")
        for f in fields:
            yield "      " + _field_line(f, change.action).replace("```", "'''")


def change_head(kind: str, key: str, action: str, reason: str | None) -> str:
    """A recorded change's head line, as the plan prints it (`~ job a: update (reason)`)."""
    head = f"{SYMBOLS[Action(action)]} {kind} {key}: {action}"
    return head + (f" ({reason})" if reason else "")


def recorded_field_lines(action: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """Field lines of a change recorded in reconciler.history (before/after, secrets already redacted): every
    field of a created or deleted object, the differing ones of any other. A sensitive field reads
    `(sensitive)`: no value, and no claim that it changed (the record cannot tell)."""
    kind = Action(action)
    old, new = dict(before or {}), dict(after or {})
    lines = []
    for path in [*new, *(p for p in old if p not in new)]:
        was, now = old.get(path), new.get(path)
        if SENSITIVE in (was, now):
            lines.append(f"{path}: {SENSITIVE}")
        elif kind in (Action.CREATE, Action.DELETE) or was != now:
            lines.append(_field_line(FieldChange(path, old=was, new=now), kind))
    return lines
