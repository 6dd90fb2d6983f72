"""`reconcile export`: a live state written as a manifest (the kinds' `export` verb, then YAML).

Data flow: LiveState (db.read_live, the same two round trips as a plan) ──each kind's `export`──▶ manifest
sections ──`to_yaml`──▶ text that `load_manifest` reads back identical. Pure: no I/O. No secret value ever
reaches this module (kinds export secret *names* with `from_env:` placeholders).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import yaml

from reconciler import kinds
from reconciler.kinds.base import Export, LiveState

__all__ = ["SCHEMA_FILE", "export_manifest", "schema_line", "to_yaml"]

SCHEMA_FILE = "scheduler.schema.json"


def schema_line(reference: str) -> str:
    """The editors' comment naming the manifest's JSON Schema (`reference` relative to the manifest's folder)."""
    return f"# yaml-language-server: $schema={reference}"

#: Characters written escaped in a double-quoted scalar so nobody misreads the file: controls (C0, C1, DEL),
#: line and paragraph separators, bidi controls, zero-width characters and the byte order mark.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


class _Dumper(yaml.SafeDumper):
    """SafeDumper whose double-quoted scalars escape every non-ASCII character (only those with invisible ones)."""

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        saved = self.allow_unicode
        self.allow_unicode = False
        try:
            super().write_double_quoted(text, split=False)
        finally:
            self.allow_unicode = saved


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _INVISIBLE.search(value) or "\t" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value:  # the emitter falls back to quoting when a literal block cannot hold it exactly
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


class _Schedule(str):
    """A cron schedule: always written double-quoted, so every schedule of an export reads the same."""


def _represent_schedule(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style='"')


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Schedule, _represent_schedule)


def _quoted_schedules(entries: Any) -> Any:
    if isinstance(entries, list):
        return [_quoted_schedules(e) for e in entries]
    if isinstance(entries, Mapping):
        return {k: _Schedule(v) if k == "schedule" and isinstance(v, str) else _quoted_schedules(v)
                for k, v in entries.items()}
    return entries


def to_yaml(document: Mapping[str, Any]) -> str:
    """Block-style YAML in the document's key order; every string loads back identical."""
    return yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=2**30,
                     default_flow_style=False, indent=2)


def _comment(text: str) -> str:
    """One comment line: anything that could break the line or hide text is escaped."""
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text.replace("\t", "\\t").replace("\n", "\\n")
                          .replace("\r", "\\r"))


def export_manifest(live: LiveState, only: Collection[str] | None = None, schema: str | None = None) -> str:
    """The manifest of `live`: the schema line (when `schema`, the JSON Schema's path from where the manifest
    is written, is known), a short header, then every kind's section in registry order."""
    caps = live.capabilities
    exports: list[Export] = []
    for kind in kinds.REGISTRY:
        if only is not None and kind.name not in only:
            continue
        exported = kind.export(live, caps)
        if exported is not None:
            exports.append(exported)
    document: dict[str, Any] = {"version": 1}
    for exported in exports:
        if exported.entries:
            document[exported.section] = _quoted_schedules(exported.entries)
    variables = sorted({v for e in exports for v in e.variables})
    notes = [n for e in exports for n in e.notes]
    header = [schema_line(schema), "#"] if schema is not None else []
    header.append(_comment(f"# Written by `reconcile export` from database {caps.database} as {caps.current_user}."))
    if variables:
        header.append("# Set these variables to the secrets' values before planning (values are never exported):")
        header.append(_comment(f"#   {' '.join(variables)}"))
    if notes:
        header.append("# Not exported:")
        header.extend(_comment(f"#   - {note}") for note in notes)
    return "\n".join(header) + "\n" + to_yaml(document)
