"""The ordered registry of resource kinds.

Each kind is a module with the same verbs:
  KIND, PRUNABLE                                  its name in plans and whether it has ownership records
  read_query(caps, declared) -> Statement|None    one query for its live rows (None: nothing to read)
  from_rows(rows, caps) -> live                   rows into the kind's live mapping
  desired(manifest, inputs) -> want               the manifest's declaration as comparable fields
  diff(want, live, ctx) -> [Change]               pure comparison
  findings(want, live, ctx) -> [Finding]          what the kind cannot express as a change
  statements(changes, caps) -> [Statement]        SQL for its changes, values as bound parameters

Creates and updates run in registry order, deletes in reverse. Adding a kind means adding a module and
one line here; no other kind changes.
"""

from __future__ import annotations

from types import ModuleType

from reconciler.kinds import edge_secrets, extensions, jobs, secrets, tables, triggers

REGISTRY: tuple[ModuleType, ...] = (extensions, tables, secrets, jobs, triggers, edge_secrets)


def by_name(kind: str) -> ModuleType:
    for module in REGISTRY:
        if module.KIND == kind:
            return module
    raise KeyError(kind)
