"""The loader's limits, and the checks that run before a document is composed into nodes.

Data flow: `reconciler.manifest.yaml` reads a file's text, asks `must_prescan` whether composing it could
recurse too deep (libyaml's composer recurses in C, PyYAML's pure-Python one in Python) or hold too many
nodes, and if so runs `prescan`, a walk over the parser's events that builds nothing and stops at the
first limit exceeded. The node walk checks the same limits with the same messages; this module exists so
that no input reaches a composer that could crash on it, whatever PyYAML or libyaml build is installed.
Imports nothing from the rest of the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

#: Loader limits: a manifest is a few kilobytes; anything near these is a mistake or an attack.
MAX_FILE_BYTES = 16 * 1024 * 1024  # 10,000 jobs take about 2 MiB
MAX_DEPTH = 32
MAX_NODES = 1_000_000  # values after alias expansion (aliases are capped separately)
MAX_ALIASES = 100
#: Nesting any composer survives (C stack, Python's recursion limit): beyond it, events are checked first.
SAFE_DEPTH = 200

TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
TOO_MANY_VALUES = f"too many values (over {MAX_NODES}, aliases expanded): not a manifest"
TOO_MANY_ALIASES = f"too many YAML aliases (over {MAX_ALIASES})"
SECOND_DOCUMENT = "expected a single YAML document, found a second one"


MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"
SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))


def unsupported_tag(tag: str) -> str:
    return f"unsupported YAML tag {tag.replace('tag:yaml.org,2002:', '!!')}"


def alias_contains_itself(anchor: str | None) -> str:
    return f"alias *{anchor} refers to a node that contains it"


def alias_undefined(anchor: str | None) -> str:
    return f"alias *{anchor} refers to an undefined anchor"


_FLOW_SCAN = re.compile(r"[\[\]{}#'\"]")


def deep_flow_cut(text: str) -> int | None:
    """Where a flow collection (`[` or `{`) opens deeper than MAX_DEPTH, if anywhere: the index after it.

    A cheap scan, not a parser: quoted scalars and comments are skipped, and the caller confirms the
    depth with the real parser, so a misread quote costs nothing but the scan.
    """
    depth = 0
    resume = 0  # matches before this index are inside a comment or a quoted scalar
    for match in _FLOW_SCAN.finditer(text):
        i = match.start()
        if i < resume:
            continue
        ch = text[i]
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return i + 1
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch == "#":
            if i == 0 or text[i - 1] in " \t\n":
                end = text.find("\n", i)
                if end == -1:
                    return None
                resume = end + 1
        elif i == 0 or text[i - 1] in " \t\n[{,:":
            resume = _quoted_end(text, i) + 1
    return None


def _quoted_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":  # '' is an escaped quote
                i += 2
                continue
            return i
        i += 1
    return len(text)


#: Characters after which a node can start: line breaks and the indicators that separate values.
_SEPARATORS = "\n\r\x85\u2028\u2029,:-?[{"


def must_prescan(text: str) -> bool:
    """Whether composing `text` might hold over MAX_NODES nodes or nest deeper than SAFE_DEPTH.

    Loose bounds, cheap to compute; when they cannot rule a problem out, `prescan` decides. Every node
    starts after a line break or a separating indicator, and no such character starts more than three
    (`{a}` is a mapping, a key and a null); aliases add none: they refer to nodes already there. Flow
    nesting is at most the number of `[` and `{`; block nesting at most two levels per column of
    indentation (a sequence may sit at its mapping key's column, nothing else at its parent's), and a
    block collection starts after the blanks and indicators (`-`, `?`, `:`) that begin a line.
    """
    if 3 * (sum(text.count(c) for c in _SEPARATORS) + 1) > MAX_NODES:
        return True
    budget = SAFE_DEPTH - 2 - text.count("[") - text.count("{")
    if budget < 0:
        return True
    columns = budget // 2 + 1  # block nesting over the budget needs a line starting this far in
    indent = "[ \t?:-]{" + str(columns) + "}"
    # A line break, then the run (a lookbehind tried at every position took five times as long).
    return re.match(indent, text) is not None or re.search("[\n\r\x85\u2028\u2029]" + indent, text) is not None


@dataclass(frozen=True, slots=True)
class Violation:
    """The first limit a document exceeds: where (a PyYAML mark) and the message."""

    mark: Any
    message: str


def prescan(loader: Any) -> Violation | None:
    """The first limit exceeded in the loader's event stream, in document order; None if none is.

    Counts what the node walk counts (values with aliases expanded, aliases, depth), by the anchors' sizes
    rather than by expanding anything. YAML errors propagate as the parser raises them.
    """
    anchors: dict[str, int] = {}
    stack: list[list[Any]] = []  # [anchor, size]
    nodes = aliases = documents = 0
    while loader.check_event():
        event = loader.get_event()
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                return Violation(event.start_mark, SECOND_DOCUMENT)
            continue
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                return Violation(event.start_mark, TOO_MANY_ALIASES)
            if any(frame[0] == event.anchor for frame in stack):
                return Violation(event.start_mark, alias_contains_itself(event.anchor))
            if event.anchor not in anchors:
                return Violation(event.start_mark, alias_undefined(event.anchor))
            size = anchors[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if nodes > MAX_NODES:
                return Violation(event.start_mark, TOO_MANY_VALUES)
            if event.tag not in (None, "!", MERGE_TAG) and event.tag not in SCALAR_TAGS:
                return Violation(event.start_mark, unsupported_tag(event.tag))
            if stack:
                stack[-1][1] += 1
            if event.anchor:
                anchors[event.anchor] = 1
            continue
        elif isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            if nodes > MAX_NODES:
                return Violation(event.start_mark, TOO_MANY_VALUES)
            expected = MAP_TAG if isinstance(event, yaml.MappingStartEvent) else SEQ_TAG
            if event.tag not in (None, "!", expected):
                return Violation(event.start_mark, unsupported_tag(str(event.tag)))
            if len(stack) >= MAX_DEPTH:
                return Violation(event.start_mark, TOO_DEEP)
            stack.append([event.anchor, 1])
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor:
                anchors[anchor] = size
            if stack:
                stack[-1][1] += size
            continue
        else:
            continue
        nodes += size
        if nodes > MAX_NODES:
            return Violation(event.start_mark, TOO_MANY_VALUES)
        if stack:
            stack[-1][1] += size
    return None
