"""`reconcile down`: the runbook's rollback, expressed as a plan over an emptied manifest.

Everything the reconciler manages is pruned as if undeclared: triggers unscheduled, jobs deactivated,
secrets deleted only when asked. Extensions are never dropped and unmanaged objects never touched;
protected objects stay. Applying it goes through the same locked, verified, recorded apply.
"""

from __future__ import annotations

from reconciler.manifest import Manifest, PrunePolicy, TablesSpec


def down_manifest(manifest: Manifest, *, include_secrets: bool) -> Manifest:
    edge = manifest.edge_functions
    return manifest.model_copy(update={
        # Edge Function secrets are secrets: pruned (deleted) only with --include-secrets.
        "edge_functions": edge.model_copy(update={"secrets": {}}) if edge is not None and include_secrets else None,
        "extensions": (),
        "jobs": (),
        "triggers": (),
        "secrets": (),
        "tables": TablesSpec(create_missing=False),
        "prune": PrunePolicy(jobs="deactivate", triggers="delete", secrets="delete" if include_secrets else "off",
                             edge_secrets="delete" if include_secrets else "off"),
    })
