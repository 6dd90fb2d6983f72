"""Saved plans (`reconcile --dry-run --out FILE`, then `--apply FILE`): the document and its staleness check.

A saved plan is the JSON plan (render.to_data) plus a fingerprint of each live object it was made from
(`live_fingerprints`: kind -> key -> digest) and the manifest's digest; `apply` re-reads inside its lock
and refuses a plan whose database or manifest moved, naming the objects that changed since.

A kind's live state is split into objects by its shape: a mapping's entries by key, a dataclass's mapping
fields' entries by key, anything else under "(name)". Digests of secret values (a `digest` field, a
`digests` mapping) never get a fingerprint of their own: an unsalted hash of one low-entropy value could be
brute-forced from the file, so all of a kind's go into its one "(secret values)" entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from reconciler import render
from reconciler.errors import PlanStale
from reconciler.kinds.base import LiveState
from reconciler.model import Plan

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

SECRET_VALUES = "(secret values)"
_DIGEST_FIELD, _DIGESTS_FIELD = "digest", "digests"
_AGAIN = "run reconcile --dry-run --out again and review the new plan"
#: How many changed objects a refusal names before "and N more".
_NAMED = 5


def _objects(state: Any) -> Iterator[tuple[str, Any]]:
    """(key, part) of one kind's live state; parts that hold secret digests are keyed SECRET_VALUES."""
    if isinstance(state, Mapping):
        for key, value in state.items():
            yield from _object(str(key), value)
    elif dataclasses.is_dataclass(state) and not isinstance(state, type):
        for f in dataclasses.fields(state):
            value = getattr(state, f.name)
            if f.name == _DIGESTS_FIELD:
                yield SECRET_VALUES, value
            elif isinstance(value, Mapping):
                for key, item in value.items():
                    yield from _object(str(key), item)
            elif value not in ((), None, "", False):
                yield f"({f.name})", value
    else:
        yield "(all)", state


def _object(key: str, value: Any) -> Iterator[tuple[str, Any]]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type) \
            and any(f.name == _DIGEST_FIELD for f in dataclasses.fields(value)):
        yield key, dataclasses.replace(value, **{_DIGEST_FIELD: None})
        yield SECRET_VALUES, (key, getattr(value, _DIGEST_FIELD))
    else:
        yield key, value


def object_fingerprints(live: LiveState) -> dict[str, dict[str, str]]:
    """kind -> key -> digest of that object as read (with its ownership record), for every live object."""
    parts: dict[tuple[str, str], list[str]] = defaultdict(list)
    for kind, state in live.kinds.items():
        for key, part in _objects(state):
            parts[(kind, key)].append(repr(part))
    for (kind, key), record in sorted({**live.removed, **live.managed}.items()):
        parts[(kind, key)].append(repr(record))
    out: dict[str, dict[str, str]] = {}
    for (kind, key), texts in sorted(parts.items()):
        out.setdefault(kind, {})[key] = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return out


def changed_objects(saved: Mapping[str, Mapping[str, str]], now: Mapping[str, Mapping[str, str]]) -> list[str]:
    """"kind key" of every object that appeared, disappeared or changed between two fingerprint sets (a
    secret value without its name: its kind's SECRET_VALUES entry cannot tell which)."""
    changed = []
    for kind in sorted(set(saved) | set(now)):
        before, after = saved.get(kind, {}), now.get(kind, {})
        changed += [f"the {kind} values" if key == SECRET_VALUES else f"{kind} {key}"
                    for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    return changed


def saved_plan_document(plan: Plan, live: LiveState, manifest: Manifest) -> dict[str, Any]:
    doc = render.to_data(plan)
    doc["live_fingerprints"] = object_fingerprints(live)
    doc["manifest_digest"] = manifest.digest()
    return doc


def is_saved_plan(document: Any) -> bool:
    """A saved plan of this release, or of an earlier one (one `live_fingerprint` for the whole database)."""
    return (isinstance(document, dict) and isinstance(document.get("changes"), list)
            and (isinstance(document.get("live_fingerprints"), dict) or isinstance(document.get("live_fingerprint"), str)))


def check_saved(saved: Mapping[str, Any], live: LiveState, plan: Plan) -> None:
    kept = saved.get("live_fingerprints")
    if not isinstance(kept, dict):
        raise PlanStale("saved plan is stale: it was made by an earlier release, whose fingerprint of the database "
                        "cannot tell what changed since", hint=_AGAIN)
    changed = changed_objects(kept, object_fingerprints(live))
    if changed:
        named = ", ".join(changed[:_NAMED]) + (f" and {len(changed) - _NAMED} more" if len(changed) > _NAMED else "")
        raise PlanStale(f"saved plan is stale: {named} changed since the plan was made", hint=_AGAIN)
    if render.to_data(plan).get("changes") != saved.get("changes"):
        raise PlanStale("saved plan is stale: the manifest or its secret sources changed since it was made",
                        hint=_AGAIN)
