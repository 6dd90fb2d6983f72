"""`reconcile down`: the runbook's rollback, expressed as a plan over an emptied manifest.

Everything the reconciler manages is pruned as if undeclared: triggers unscheduled, jobs deactivated,
secrets deleted only when asked. Extensions are never dropped and unmanaged objects never touched;
protected objects stay. Applying it goes through the same locked, verified, recorded apply.
"""

from __future__ import annotations

from typing import Any

from reconciler import kinds
from reconciler.manifest import Manifest


def down_manifest(manifest: Manifest, *, include_secrets: bool) -> Manifest:
    """The manifest with every kind's part of the rollback (Kind.rollback): its sections and prune policy."""
    sections: dict[str, Any] = {}
    prune: dict[str, str] = {}
    for kind in kinds.REGISTRY:
        part = kind.rollback(manifest, include_secrets=include_secrets)
        sections.update(part.sections)
        prune.update(part.prune)
    return manifest.model_copy(update={**sections, "prune": manifest.prune.model_copy(update=prune)})
