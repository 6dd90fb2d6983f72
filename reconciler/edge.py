"""The Edge Function plane at the edges of a run: who to talk to, reading digests, writing changes.

`connect(manifest, environ)` gives an EdgePlane: an API client, or the reason the plane is skipped (no
token, no project ref), which becomes a finding, not an error, so database-only use keeps working.
`EdgePlane.read()` puts the API's digests into the live state; `apply_changes()` sends one bulk upsert
of the changed names and one delete for pruned ones. Values of Vault-mirrored secrets that this run does not write are read from
vault.decrypted_secrets inside the apply's transaction, so they are the values the vault will hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.kinds.base import LiveState
from reconciler.kinds.edge_secrets import KIND, EdgeLive
from reconciler.model import Action, Plan

if TYPE_CHECKING:  # httpx (under edge_api) is imported only when an edge_functions: section is configured
    from reconciler.edge_api import EdgeApi

PROJECT_REF_ENV = "SUPABASE_PROJECT_REF"


@dataclass(frozen=True)
class EdgePlane:
    """The Edge Function plane of one run: an API client, or the reason the plane is skipped."""

    api: EdgeApi | None
    skipped_because: str = ""

    def read(self, live: LiveState) -> LiveState:
        if self.api is None:
            state = EdgeLive(False, self.skipped_because)
        else:
            state = EdgeLive(True, "", self.api.list_digests())
        return dataclasses.replace(live, kinds={**live.kinds, KIND: state})

    def apply_changes(self, conn: Any, plan: Plan) -> None:
        if self.api is not None:
            _apply_changes(conn, plan, self.api)

    def close(self) -> None:
        if self.api is not None:
            self.api.close()


def connect(manifest: Any, environ: Mapping[str, str]) -> EdgePlane | None:
    """None without an `edge_functions:` section; else the plane, possibly skipped.

    An empty `secrets: {}` still names the project, so managed names left there can be pruned.
    """
    edge = manifest.edge_functions
    if edge is None:
        return None
    token = environ.get(edge.access_token_env)
    if not token:
        return EdgePlane(None, f"{edge.access_token_env} is not set")
    ref = edge.project_ref or environ.get(PROJECT_REF_ENV)
    if not ref:
        return EdgePlane(None, f"no project ref (edge_functions.project_ref or {PROJECT_REF_ENV})")
    from reconciler.edge_api import EdgeApi, EdgeTarget

    return EdgePlane(EdgeApi(EdgeTarget(edge.api_url, ref, token)))


def _apply_changes(conn: Any, plan: Plan, api: EdgeApi) -> None:
    changes = [c for c in plan.changes if c.kind == KIND and c.action in (Action.CREATE, Action.UPDATE, Action.DELETE)]
    if not changes:
        return
    upserts: dict[str, str] = {}
    for change in changes:
        if change.action is Action.DELETE:
            continue
        after = change.after or {}
        value = after.get("value")
        upserts[change.key] = value.reveal() if value is not None else _vault_value(conn, after["vault_secret"])
    api.upsert(upserts)
    api.delete([c.key for c in changes if c.action is Action.DELETE])


def _vault_value(conn: Any, name: str) -> str:
    from reconciler import db

    with db.translated(f"reading vault secret {name} for the Edge Functions"), conn.cursor() as cur:
        cur.execute("SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = %s", (name,))
        row = cur.fetchone()
    if row is None or row[0] is None:
        from reconciler.errors import ApplyFailed

        raise ApplyFailed(f"vault secret {name} has no value to copy to the Edge Functions")
    return str(row[0])
