"""`read_targets`: targets.yaml (declared targets and generators) into the fleet's `Target`s.

Data flow: the file ──`reconciler.manifest.yaml.parse_file` (positions, the manifest's limits)──▶ LMap tree
──duplicate names, pydantic (`reconciler.fleet.targets_models`)──▶ TargetsFile ──▶ the declared `Target`s,
then each generator (`reconciler.fleet.generators`, the Supabase Management API) adds its own. A broken
file is one ManifestError listing every problem by file, line and field, as the manifest's; a generator
that fails is one line in `TargetList.errors` and the other targets are still returned, so one bad API
answer never takes the whole fleet down. Relative paths are relative to the targets file's directory.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from reconciler.errors import ManifestError, ManifestProblem
from reconciler.fleet.target import Target, ValueSource
from reconciler.fleet.targets_models import (
    FIELD_MODELS,
    TARGET_NAME_REGEX,
    SourceSpec,
    TargetsFile,
    TargetSpec,
    model_fields_of,
)
from reconciler.manifest.checks import Loc, format_path
from reconciler.manifest.positions import LMap, LSeq
from reconciler.manifest.problems import dedupe, locate, problem_for
from reconciler.manifest.types import UNION_TAGS, quote
from reconciler.manifest.yaml import parse_file

if TYPE_CHECKING:
    import httpx

    from reconciler.fleet.generator_cache import GeneratorCache

__all__ = ["TargetList", "load_targets_file", "read_targets"]

_EMPTY_MANIFEST = 'the manifest is empty (expected a mapping starting with "version: 1")'
_EMPTY = 'the targets file is empty (expected a mapping starting with "version: 1")'
#: Where a value could be a credential someone wrote in the wrong place: messages never quote it.
_SENSITIVE = ("database_url", "secrets")


@dataclass(frozen=True)
class TargetList:
    """The fleet's targets this time, and what went wrong or was left out (lines that never hold a secret).

    `errors`: one line per generator that failed, and per generated project or branch it could not use
    (or whose name is taken); `notes`: branches and projects skipped on purpose (migrations not passed,
    not ACTIVE_HEALTHY), for an info log line.
    """

    targets: tuple[Target, ...]
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)


def read_targets(path: str, environ: Mapping[str, str], *, transport: httpx.BaseTransport | None = None,
                 cache: GeneratorCache | None = None, shard: tuple[int, int] | None = None) -> TargetList:
    """The targets declared in `path` and those its generators produce now.

    Raises ManifestError (every problem, one line each: file:line:col: field: message) when the file is
    broken. A generator that fails, or a generated name that is taken already, is a line in `errors`;
    a declared target always wins a name. `environ` holds the generators' access tokens and database
    passwords; `transport` is httpx's, for tests. `cache` keeps what the generators fetched between
    calls and `shard` (ordinal, replicas) makes them fetch only that shard's targets (the fleet controller);
    declared targets are all returned either way.
    """
    spec, lines = _load(path)
    base = Path(path).parent
    declared = tuple(_declared_target(path, base, item, line)
                     for item, line in zip(spec.targets, lines.targets, strict=True))
    if not spec.generators:
        return TargetList(declared)
    # Imported here: httpx is loaded only when a generator is declared.
    from reconciler.fleet.generators import generate, merge_generated

    runs = [generate(g, f"generator {g.kind} ({path}:{line})", resolve_files(g.spec.files, base), environ,
                     transport=transport, cache=cache, shard=shard)
            for g, line in zip(spec.generators, lines.generators, strict=True)]
    return TargetList(*merge_generated(declared, runs))


def load_targets_file(path: str | Path) -> TargetsFile:
    """The validated file (no generator run); raises ManifestError listing every problem."""
    return _load(path)[0]


@dataclass(frozen=True)
class _Lines:
    """The line of each declared target and of each generator (the model does not keep positions)."""

    targets: tuple[int, ...]
    generators: tuple[int, ...]


def _load(path: str | Path) -> tuple[TargetsFile, _Lines]:
    """The validated file and where its items are."""
    label = str(path)
    root, problems = parse_file(path)
    problems = [p if p.message != _EMPTY_MANIFEST else ManifestProblem(p.file, p.line, p.column, p.field, _EMPTY)
                for p in problems]
    if root is None:
        raise ManifestError(dedupe(problems, {label: 0}))
    problems.extend(_duplicate_names(root))
    parsed: TargetsFile | None = None
    try:
        parsed = TargetsFile.model_validate(_plain(root))
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.extend(_problem_for(root, error))
    if problems or parsed is None:
        raise ManifestError(dedupe(problems, {label: 0}))
    return parsed, _Lines(_item_lines(root, "targets"), _item_lines(root, "generators"))


def _item_lines(root: LMap, key: str) -> tuple[int, ...]:
    items = root.get(key)
    return tuple(pos.line for pos in items.item_pos) if isinstance(items, LSeq) else ()


def _declared_target(path: str, base: Path, spec: TargetSpec, line: int) -> Target:
    return Target(
        name=spec.name,
        database_url=_source(spec.database_url, base),
        secrets={name: _source(source, base) for name, source in spec.secrets.items()},
        environ=dict(spec.variables),
        files=resolve_files(spec.files, base),
        labels=dict(spec.labels),
        origin=f"{path}:{line}",
    )


def _source(spec: SourceSpec, base: Path) -> ValueSource:
    if spec.from_env is not None:
        return ValueSource(from_env=spec.from_env)
    assert spec.from_file is not None
    return ValueSource(from_file=str(base / spec.from_file))


def resolve_files(files: Sequence[str], base: Path) -> tuple[str, ...]:
    """Manifest files relative to the targets file's directory (an absolute path stays as written)."""
    return tuple(str(base / f) for f in files)


def _duplicate_names(root: LMap) -> list[ManifestProblem]:
    targets = root.get("targets")
    if not isinstance(targets, LSeq):
        return []
    first: dict[str, int] = {}
    out = []
    for i, item in enumerate(targets):
        name = item.get("name") if isinstance(item, LMap) else None
        if not isinstance(name, str):
            continue
        if name in first:
            pos = item.val_pos["name"]
            out.append(ManifestProblem(pos.file, pos.line, pos.column, field_name(root, ("targets", i, "name")),
                                       f"duplicate target name {quote(name)} (first at targets[{first[name]}])"))
        else:
            first[name] = i
    return out


def _problem_for(root: LMap, error: Mapping[str, Any]) -> list[ManifestProblem]:
    loc = tuple(el for el in error["loc"] if el not in UNION_TAGS)
    if error["type"] == "extra_forbidden":
        at = locate(root, loc)
        model = FIELD_MODELS.get(_shape(loc[:-1]))
        key = str(loc[-1])
        close = difflib.get_close_matches(key, model_fields_of(model), n=1, cutoff=0.6) if model else []
        hint = f" (did you mean {quote(close[0])}?)" if close else ""
        pos = at.key_pos or at.pos
        return [ManifestProblem(pos.file, pos.line, pos.column, field_name(root, loc[:-1]),
                                f"unknown field {quote(key)}{hint}")]
    written = error.get("input")
    if any(part in _SENSITIVE for part in loc) and isinstance(written, str):
        ctx = error.get("ctx") or {}
        hidden = {"reason": str(ctx["reason"]).replace(quote(written), "(value hidden)")} if "reason" in ctx else {}
        error = {**error, "input": "(value hidden)", "ctx": {**ctx, **hidden}}
    problems = problem_for(root, error)
    return [ManifestProblem(p.file, p.line, p.column, _with_target_name(root, p.field, loc), p.message) for p in problems]


def _shape(loc: Sequence[str | int]) -> tuple[str, ...]:
    shape: list[str] = []
    for i, el in enumerate(loc):
        if isinstance(el, int):
            shape.append("[]")
        elif i >= 1 and loc[i - 1] == "secrets":
            shape.append("*")
        else:
            shape.append(el)
    return tuple(shape)


def field_name(root: LMap, loc: Loc) -> str:
    """The path as problems show it, a target's name after its index: `targets[1] (staging).database_url`."""
    return _with_target_name(root, format_path(loc), loc)


def _with_target_name(root: LMap, text: str, loc: Loc) -> str:
    if len(loc) < 2 or loc[0] != "targets" or not isinstance(loc[1], int):
        return text
    head = f"targets[{loc[1]}]"
    if not text.startswith(head) or text.startswith(head + " ("):
        return text
    items = root.get("targets")
    item = items[loc[1]] if isinstance(items, list) and 0 <= loc[1] < len(items) else None
    name = item.get("name") if isinstance(item, Mapping) else None
    if not isinstance(name, str) or not re.fullmatch(TARGET_NAME_REGEX, name):  # a wrong name is shown at .name
        return text
    return f"{head} ({name}){text[len(head):]}"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
