"""Facts a kind offers to the rest of the tool beyond planning (`reconcile verify`, the pipeline metrics).

The core asks the registry for the kinds that provide a fact (`kinds.providing(TriggerFacts)`) instead of
naming a kind, and gets plain values: what a scheduled HTTP call is declared to do, never a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

#: pg_net's own default for `timeout_milliseconds`.
DEFAULT_TIMEOUT_MS = 5000


@dataclass(frozen=True, slots=True)
class DeclaredTrigger:
    """A declared scheduled call, as verify needs it. `endpoint` is the URL shown to people: a path or
    `{project_url}/path` (a secret's name, never its value); `path` is what queued URLs are matched on."""

    name: str
    schedule: str
    path: str | None = None  # None: a `command:` trigger, no HTTP to check
    endpoint: str = ""
    secret_header: str | None = None  # the vault secret sent as x-cron-secret
    timeout_ms: int = DEFAULT_TIMEOUT_MS


@runtime_checkable
class TriggerFacts(Protocol):
    """A kind whose objects are pg_cron jobs that may call HTTP endpoints."""

    def declared_triggers(self, manifest: Manifest) -> tuple[DeclaredTrigger, ...]: ...
