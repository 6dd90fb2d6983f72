"""Problems: pydantic's validation errors mapped back to file positions, warnings, and their final form.

Data flow: `reconciler.manifest.load` hands each pydantic error (and each cross-field problem) with the
merged LMap tree to `problem_for` / `located_cross`, which find the value's position and word the message
the way `reconcile validate` prints it (`file:line:col: field: message`); `dedupe` sorts them by file
and position and escapes what would break a line.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from reconciler.errors import ManifestProblem
from reconciler.manifest.checks import Loc, field_name, format_path
from reconciler.manifest.models import (
    JobSpec,
    Manifest,
    SecretSpec,
    TriggerSpec,
)
from reconciler.manifest.positions import LMap, LSeq, Pos
from reconciler.manifest.sections import field_models, manifest_model
from reconciler.manifest.types import UNION_TAGS, NowMarker, SecretRef, describe, quote


def _model_for(loc: Sequence[str | int]) -> type[BaseModel] | None:
    if loc and loc[-1] == "~ref":
        return SecretRef
    if loc and loc[-1] == "~now":
        return NowMarker
    models = field_models(manifest_model())
    prefixes = _prefixes(tuple(models))
    shape: tuple[str, ...] = ()
    for el in loc:
        if el in UNION_TAGS:
            continue
        if isinstance(el, int):
            shape = (*shape, "[]")
        elif (*shape, el) not in prefixes and (*shape, "*") in prefixes:
            shape = (*shape, "*")  # a key of a mapping by name (`secrets: {cron_secret: ...}`)
        else:
            shape = (*shape, el)
    return models.get(shape)


@lru_cache(maxsize=8)
def _prefixes(shapes: tuple[tuple[str, ...], ...]) -> frozenset[tuple[str, ...]]:
    return frozenset(shape[:n] for shape in shapes for n in range(len(shape) + 1))


def _field_names(model: type[BaseModel]) -> list[str]:
    hidden = {"source_files", "warnings", "declared_as"}
    names = [info.alias or name for name, info in model.model_fields.items() if name not in hidden]
    if model is SecretSpec:
        names.remove("name")
    return names


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {quote(close[0])}?)" if close else ""


@dataclass
class _Located:
    pos: Pos
    path: tuple[str | int, ...]  # consumed part of the location, tags removed
    rest: tuple[str | int, ...]  # part not present in the data (a missing field)
    node: Any
    key_pos: Pos | None


def locate(root: LMap, loc: Sequence[str | int]) -> _Located:
    node: Any = root
    pos, key_pos = root.pos, None
    path: list[str | int] = []
    rest: list[str | int] = []
    elements = [el for el in loc if el not in UNION_TAGS]
    for i, el in enumerate(elements):
        if el == "[key]":
            pos = key_pos or pos
            continue
        if isinstance(node, LMap) and isinstance(el, str) and el in node:
            key_pos, pos = node.key_pos[el], node.val_pos[el]
            node = node[el]
            path.append(el)
        elif isinstance(node, LSeq) and isinstance(el, int) and 0 <= el < len(node):
            key_pos, pos = None, node.item_pos[el]
            node = node[el]
            path.append(el)
        else:
            rest = elements[i:]
            break
    return _Located(pos, tuple(path), tuple(rest), node, key_pos)


def _expected(error_type: str) -> str | None:
    return {
        "bool_type": "a boolean (true or false)",
        "bool_parsing": "a boolean (true or false)",
        "int_type": "an integer",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "float_parsing": "a number",
        "string_type": "a string",
        "model_type": "a mapping",
        "model_attributes_type": "a mapping",
        "dict_type": "a mapping",
        "tuple_type": "a list",
        "list_type": "a list",
        "none_required": "null",
    }.get(error_type)


def _translate_loc(root: LMap, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Pydantic sees `secrets` as a list; the YAML has a mapping by name."""
    secrets = root.get("secrets")
    if len(loc) >= 2 and loc[0] == "secrets" and isinstance(loc[1], int) and isinstance(secrets, LMap):
        keys = list(secrets)
        if loc[1] < len(keys):
            return ("secrets", keys[loc[1]], *loc[2:])
    return loc


def problem_for(root: LMap, error: Mapping[str, Any]) -> list[ManifestProblem]:
    error_type = error["type"]
    if error_type == "manifest_cross":
        return []  # reported from the raw data, with positions
    loc = _translate_loc(root, tuple(error["loc"]))
    at = locate(root, loc)
    field = field_name(root, at.path)
    value = error.get("input")
    ctx = error.get("ctx") or {}

    def make(pos: Pos, field: str, message: str) -> list[ManifestProblem]:
        return [ManifestProblem(pos.file, pos.line, pos.column, field, message)]

    if (
        loc[:1] == ("secrets",)
        and len(loc) == 3
        and loc[2] == "name"
        and isinstance(root.get("secrets"), LMap)
    ):
        secrets = root["secrets"]
        pos = secrets.key_pos.get(str(loc[1]), secrets.pos)
        return make(pos, format_path(loc[:2]), f"invalid secret name: {ctx.get('reason', error['msg'])}")
    if error_type == "missing":
        missing = at.rest[0] if at.rest else loc[-1]
        return make(at.pos, field, f"missing required field {quote(str(missing))}")
    if error_type == "extra_forbidden":
        key = str(loc[-1])
        parent = loc[:-1]
        model = _model_for(parent)
        hint = _suggest(key, _field_names(model)) if model else ""
        return make(at.key_pos or at.pos, field_name(root, at.path[:-1]), f"unknown field {quote(key)}{hint}")
    if at.rest and error_type not in ("manifest_value",):
        field = field_name(root, at.path + at.rest)
    if error_type == "literal_error":
        allowed = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        choices = [a or b for a, b in allowed]
        listed = ", ".join(quote(c) if not c.isdigit() else c for c in choices)
        if isinstance(value, str) and value in choices:  # `version: '1'`: the number, quoted
            return make(at.pos, field, f"expected the number {value}, not the string {quote(value)}")
        hint = _suggest(value, choices) if isinstance(value, str) else ""
        return make(at.pos, field, f"expected one of {listed}, got {describe(value)}{hint}")
    expected = _expected(error_type)
    if expected:
        return make(at.pos, field, f"expected {expected}, got {describe(value)}")
    if error_type in ("greater_than_equal", "greater_than"):
        return make(at.pos, field, f"must be at least {ctx.get('ge', ctx.get('gt'))}, got {describe(value)}")
    if error_type in ("less_than_equal", "less_than"):
        return make(at.pos, field, f"must be at most {ctx.get('le', ctx.get('lt'))}, got {describe(value)}")
    if error_type == "manifest_value":
        return make(at.pos, field, str(ctx.get("reason", error["msg"])))
    if error_type in ("url_value", "header_value", "json_value"):
        return make(at.pos, field, f"{error['msg']}, got {describe(value)}")
    if error_type == "value_error":
        return make(at.pos, field, str(ctx.get("error", error["msg"])))
    return make(at.pos, field, str(error["msg"]))


def located_cross(root: LMap, items: list[tuple[Loc, Loc, str]]) -> list[ManifestProblem]:
    out = []
    for field_loc, pos_loc, message in items:
        at = locate(root, pos_loc)
        out.append(ManifestProblem(at.pos.file, at.pos.line, at.pos.column, field_name(root, field_loc), message))
    return out


def manifest_warnings(root: LMap, manifest: Manifest, cron_version: tuple[int, int]) -> tuple[str, ...]:
    from reconciler import cron

    out: list[str] = []

    def warn(loc: Loc, message: str) -> None:
        at = locate(root, loc)
        out.append(printable(str(ManifestProblem(at.pos.file, at.pos.line, at.pos.column, field_name(root, loc),
                                                  message))))

    for i, ext in enumerate(manifest.extensions):
        if ext.declared_as and ext.declared_as != ext.name:
            warn(("extensions", i, "name"), f"{quote(ext.declared_as)} is an alias of {quote(ext.name)}")
    scheduled: tuple[tuple[str, Sequence[JobSpec | TriggerSpec]], ...] = (
        ("jobs", manifest.jobs),
        ("triggers", manifest.triggers),
    )
    for kind, specs in scheduled:
        for i, spec in enumerate(specs):
            try:
                parsed = cron.parse(spec.schedule, version=cron_version)
            except cron.CronError:  # validated already; a dialect module change must not crash loading
                continue
            for message in parsed.warnings:
                warn((kind, i, "schedule"), message)
    return tuple(out)


def _sort_key(order: Mapping[str, int]):
    def key(p: ManifestProblem) -> tuple[int, int, int]:
        return (order.get(p.file, len(order)), p.line or 0, p.column or 0)

    return key


def dedupe(problems: list[ManifestProblem], order: Mapping[str, int]) -> list[ManifestProblem]:
    seen: set[ManifestProblem] = set()
    out = []
    for p in sorted(problems, key=_sort_key(order)):
        if p not in seen:
            seen.add(p)
            out.append(dataclasses.replace(p, field=printable(p.field), message=printable(p.message)))
    return out


def printable(text: str) -> str:
    """`text` with every unprintable character escaped, so a problem stays one line and reads as stored.

    Messages quote the offending value; a U+2028 or U+0085 in it would split the line, a U+202E would
    reorder it on screen, and a zero-width character would hide. Escaped as \\uXXXX (\\UXXXXXXXX)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") for c in text
    )
