"""plan(): the pure heart of the reconciler. Manifest + live state in, an ordered Plan out.

No connection, clock, environment or logging here: everything the plan depends on arrives as an
argument (secret values already resolved), so the same inputs always give the same plan and tests need no
database.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING

from reconciler import kinds
from reconciler.attribution import attribute
from reconciler.kinds.base import Capabilities, Inputs, LiveState, PlanContext, PlanOptions, Privilege
from reconciler.model import DESTRUCTIVE, Action, Change, Finding, Plan, Severity

if TYPE_CHECKING:
    from reconciler.manifest import Manifest
    from reconciler.secret_value import SecretValue

__all__ = ["PlanOptions", "plan", "preflight"]


def plan(
    manifest: Manifest,
    live: LiveState,
    secret_values: Mapping[str, SecretValue],
    options: PlanOptions | None = None,
) -> Plan:
    options = options or PlanOptions()
    inputs = Inputs(live.capabilities, secret_values)
    forward: list[Change] = []
    backward: list[list[Change]] = []
    findings: list[Finding] = list(preflight(manifest, live))
    for kind in kinds.REGISTRY:
        ctx = PlanContext(live, options, kind.prune_policy(manifest), manifest)
        want = kind.desired(manifest, inputs)
        have = live.of(kind.name)
        changes = kind.diff(want, have, ctx)
        forward += [c for c in changes if c.action not in DESTRUCTIVE]
        backward.append([c for c in changes if c.action in DESTRUCTIVE])
        findings.extend(kind.findings(want, have, ctx))
    ordered = attribute(forward + [c for group in reversed(backward) for c in group], live, manifest_name(manifest))
    findings.extend(privilege_findings(ordered, live.capabilities))
    return Plan(tuple(ordered), tuple(_dedupe(findings)))


def manifest_name(manifest: Manifest) -> str:
    """The manifest's file name as reasons name it ("changed in scheduler.yaml")."""
    return PurePath(manifest.source_files[0]).name if manifest.source_files else "scheduler.yaml"


#: Every apply that changes something records ownership and history (the core's own privilege).
RECORDING = Privilege("reconciler.write", "record ownership and history in schema reconciler",
                      "GRANT CREATE ON DATABASE {db} TO {user} (or ALL on the reconciler schema's tables)")


def privilege_findings(changes: tuple[Change, ...] | list[Change], caps: Capabilities) -> list[Finding]:
    """One error per privilege the plan needs and the role lacks, naming the GRANT that fixes it."""
    out: list[Finding] = []
    mutating = [c for c in changes if c.mutating]
    if not mutating or caps.is_superuser:
        return out
    wanted = {RECORDING.key: RECORDING}
    for change in mutating:
        if change.action is not Action.ADOPT:
            wanted.update((p.key, p) for p in kinds.by_name(change.kind).privileges(change))
    for key in sorted(wanted):
        if not caps.may(key):
            privilege = wanted[key]
            out.append(Finding(Severity.ERROR, "missing_privilege",
                               f"{caps.current_user} may not {privilege.allows}",
                               privilege.grant.format(user=caps.current_user, db=caps.database)))
    return out


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        if (f.code, f.message) not in seen:
            seen.add((f.code, f.message))
            out.append(f)
    return out


def preflight(manifest: Manifest, live: LiveState) -> list[Finding]:
    """Facts about the server that decide whether the plan can work at all, each with its fix (per kind)."""
    return [f for kind in kinds.REGISTRY for f in kind.preflight(manifest, live)]
