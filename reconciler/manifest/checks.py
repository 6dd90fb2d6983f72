"""Cross-field checks and field paths, on plain data: the loader's raw YAML, or a model's dump.

Data flow: `Manifest`'s after-validator runs `cross_problems` on its own dump (a manifest built in Python
is checked too); the loader runs `duplicate_problems` on each file and `reference_problems` on the merged
overlays, with positions. `format_path` and `field_name` spell a location the way problems show it.
Imports only `reconciler.manifest.types`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, get_args, get_origin

from reconciler.manifest.types import EXTENSION_ALIASES, quote

#: A location in the data: keys and list indexes.
Loc = tuple[str | int, ...]
#: Top-level sections whose items are named, each with the noun for one item (duplicates refused, merged by
#: name in overlays, named in problems): the Manifest model's own (`named_sections`) and those kinds contribute.
NAMED_LISTS: dict[str, str] = {}


def named_sections(model: Any) -> dict[str, str]:
    """The fields of a pydantic model that hold a tuple of models with a `name` field, each with its noun."""
    out = {}
    for name, info in model.model_fields.items():
        args = get_args(info.annotation)
        if get_origin(info.annotation) is tuple and len(args) == 2 and args[1] is Ellipsis:
            item = args[0]
            if "name" in getattr(item, "model_fields", {}):
                key = info.alias or name
                out[key] = key.removesuffix("s")
    return out


def _iter_refs(value: Any, loc: Loc, field_loc: Loc) -> Iterator[tuple[Loc, Loc, str]]:
    """(field location, position location, secret name) of every {secret: x} under `value`."""
    if isinstance(value, Mapping):
        if "secret" in value and isinstance(value["secret"], str):
            yield field_loc, loc + ("secret",), value["secret"]
            return
        for key, item in value.items():
            yield from _iter_refs(item, loc + (key,), field_loc + (key,))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _iter_refs(item, loc + (i,), field_loc + (i,))


def _names(items: Any, *, alias: bool = False) -> Iterator[tuple[int, str]]:
    if isinstance(items, list | tuple):
        for i, item in enumerate(items):
            if isinstance(item, (dict, Mapping)) and isinstance(item.get("name"), str):  # dict: the fast test
                name: str = item["name"]
                yield i, (EXTENSION_ALIASES.get(name, name) if alias else name)


def duplicate_problems(data: Mapping[str, Any]) -> list[tuple[Loc, Loc, str]]:
    problems: list[tuple[Loc, Loc, str]] = []
    for key, noun in NAMED_LISTS.items():
        first: dict[str, int] = {}
        for i, name in _names(data.get(key), alias=key == "extensions"):
            if name in first:
                loc: Loc = (key, i, "name")
                problems.append(
                    (loc, loc, f"duplicate {noun} name {quote(name)} (first at {key}[{first[name]}])")
                )
            else:
                first[name] = i
    return problems


def cross_problems(data: Mapping[str, Any]) -> list[tuple[Loc, Loc, str]]:
    """Duplicate names and references to undeclared secrets, as (field loc, position loc, message)."""
    return duplicate_problems(data) + reference_problems(data)


def reference_problems(data: Mapping[str, Any]) -> list[tuple[Loc, Loc, str]]:
    """References to secrets the manifest does not declare (trigger parts and Edge Function secrets)."""
    secrets = data.get("secrets")
    if isinstance(secrets, Mapping):
        declared = sorted(str(k) for k in secrets)
    else:
        declared = sorted(name for _i, name in _names(secrets))
    listed = ", ".join(d if PLAIN_KEY.fullmatch(d) else quote(d) for d in declared) or "none"
    refs: list[tuple[Loc, Loc, str]] = []
    triggers = data.get("triggers")
    if isinstance(triggers, list | tuple):
        for i, trig in enumerate(triggers):
            post = trig.get("http_post") if isinstance(trig, Mapping) else None
            if not isinstance(post, Mapping):
                continue
            for part in ("url", "headers", "body"):
                if part in post:
                    base: Loc = ("triggers", i, "http_post", part)
                    refs.extend(_iter_refs(post[part], base, base))
    edge = data.get("edge_functions")
    edge_secrets = edge.get("secrets") if isinstance(edge, Mapping) else None
    if isinstance(edge_secrets, Mapping):
        for edge_name, source in edge_secrets.items():
            ref = source.get("secret") if isinstance(source, Mapping) else None
            if isinstance(ref, str):
                loc: Loc = ("edge_functions", "secrets", edge_name, "secret")
                refs.append((loc, loc, ref))
    return [(field_loc, pos_loc, f"unknown secret {quote(name)} (declared: {listed})")
            for field_loc, pos_loc, name in refs if name not in declared]


PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
        elif PLAIN_KEY.fullmatch(el):
            out += f".{el}" if out else el
        else:
            out += f"[{quote(el)}]"
    return out


def field_name(root: Any, loc: Sequence[str | int]) -> str:
    """The path as problems show it, with a named item's name after its index: `jobs[1] (fetch_rss_feeds).schedule`.

    Only a valid name is shown (one that is itself wrong is the problem, shown at `.name`)."""
    text = format_path(loc)
    if len(loc) < 2 or loc[0] not in NAMED_LISTS or not isinstance(loc[1], int) or not isinstance(root, Mapping):
        return text
    items = root.get(loc[0])
    item = items[loc[1]] if isinstance(items, list) and 0 <= loc[1] < len(items) else None
    name = item.get("name") if isinstance(item, Mapping) else None
    if not isinstance(name, str) or not PLAIN_KEY.fullmatch(name) or len(name) > 63:
        return text
    head = f"{loc[0]}[{loc[1]}]"
    return f"{head} ({name}){text[len(head):]}"
