"""Saved plans (`reconcile --dry-run --out FILE`, then `--apply FILE`): the document and its staleness check.

A saved plan is the JSON plan (render.to_data) plus a fingerprint of the live state it was made from and
the manifest's digest; `apply` re-reads inside its lock and refuses a plan whose database or manifest moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler import render
from reconciler.errors import PlanStale
from reconciler.kinds.base import LiveState
from reconciler.model import Plan

if TYPE_CHECKING:
    from reconciler.manifest import Manifest


def live_fingerprint(live: LiveState) -> str:
    """Digest of everything read from the database (secrets only by their digest)."""
    text = repr(sorted((k, repr(v)) for k, v in live.kinds.items())) + repr(sorted(live.managed))
    return hashlib.sha256(text.encode()).hexdigest()


def saved_plan_document(plan: Plan, live: LiveState, manifest: Manifest) -> dict[str, Any]:
    doc = render.to_data(plan)
    doc["live_fingerprint"] = live_fingerprint(live)
    doc["manifest_digest"] = manifest.digest()
    return doc


def check_saved(saved: Mapping[str, Any], live: LiveState, plan: Plan) -> None:
    if saved.get("live_fingerprint") != live_fingerprint(live):
        raise PlanStale("saved plan is stale: the database changed since it was made",
                        hint="run reconcile --dry-run --out again and review the new plan")
    if render.to_data(plan).get("changes") != saved.get("changes"):
        raise PlanStale("saved plan is stale: the manifest or its secret sources changed since it was made",
                        hint="run reconcile --dry-run --out again and review the new plan")
