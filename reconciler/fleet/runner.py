"""Running one target, or a whole fleet, as `reconcile --dry-run` / `--apply` runs one database.

`run_target` does for one target what cli/main.py's dry run and apply do: it loads the manifest (the fleet's
shared files plus the target's own, parsed once per set of unchanged files), resolves the target's URL
and secret values from its own sources, opens the run's session with the target's environment
(engine/session.py, as a single run: the kinds' planes), and reads
and plans, or applies under the database's advisory lock. Every error becomes one line in its
`TargetResult`; nothing one target does (even a bug) stops the others. Connections use a short connect
timeout and every statement a statement timeout, so a dead or slow target costs its own time only.
`run_fleet` runs the targets on a bounded pool of threads (psycopg releases the GIL while it waits).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.engine import session as run
from reconciler.errors import LockHeld, ManifestError, ReconcilerError, UnsafePlan
from reconciler.kinds.base import Capabilities, PlanOptions
from reconciler.util.files import signature as file_signature
from reconciler.util.version import package_version

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciler.engine.rider import Rider
    from reconciler.fleet.target import Target
    from reconciler.manifest import Manifest
    from reconciler.model import Change, Plan
    from reconciler.secret_value import SecretValue

    #: (the target's manifest, its secret values) -> a reader riding on the run's connection, or None
    RiderFor = Callable[[Manifest, Mapping[str, SecretValue]], Rider | None]

log = structlog.get_logger("reconciler.fleet")

#: Seconds to wait for a target's server to accept a connection (libpq's minimum is 2).
DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_STATEMENT_TIMEOUT = 30.0


#: How a connection refused for its password begins (`reconciler.engine.db.connect`).
AUTHENTICATION_FAILED = "authentication failed:"


@dataclass(frozen=True)
class TargetResult:
    """What happened to one target: its plan (or the applied plan), or one line of error."""

    target: str
    plan: Plan | None = None
    error: str | None = None
    retryable: bool = False
    applied: bool = False
    duration: float = 0.0
    #: Another reconciler held the target's advisory lock: nothing was done, nothing is wrong.
    lock_held: bool = False
    history_id: int | None = None
    corrections: tuple[Change, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def changes(self) -> int:
        return len(self.plan.mutating) if self.plan is not None else 0

    @property
    def findings(self) -> int:
        return len(self.plan.findings) if self.plan is not None else 0


class ManifestCache:
    """Manifests by their file list and the files' identity (inode, mtime, size): a fleet parses once.

    An edited file has a new signature, so the next run of any target loads it again. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], tuple[tuple[Any, ...], Manifest]] = {}

    def load(self, files: Sequence[str]) -> Manifest:
        key = tuple(files)
        signature = file_signature(key)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[0] == signature:
                return cached[1]
        manifest = run.load(key)
        with self._lock:
            self._entries[key] = (signature, manifest)
        return manifest


_MANIFESTS = ManifestCache()


class CapabilitiesCache:
    """Each target's capabilities as its last run left them, by target name: its next run begins (and
    reads) in one round trip fewer, as a `--watch` cycle of one database does. Every read checks them
    against the database, so a stale entry costs a read again, never a wrong plan. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_target: dict[str, Capabilities] = {}

    def get(self, target: str) -> Capabilities | None:
        with self._lock:
            return self._by_target.get(target)

    def forget(self, target: str) -> None:
        """A target that left the fleet: its entry goes with it, so the cache does not grow with every name seen."""
        self.put(target, None)

    def put(self, target: str, capabilities: Capabilities | None) -> None:
        with self._lock:
            if capabilities is None:
                self._by_target.pop(target, None)
            else:
                self._by_target[target] = capabilities


_CAPABILITIES = CapabilitiesCache()


def target_files(files: Sequence[str], target: Target) -> list[str]:
    """The target's manifest files: the fleet's shared ones (./scheduler.yaml when none), then its own."""
    return [*(files or ["scheduler.yaml"]), *target.files]


def run_target(target: Target, files: Sequence[str], environ: Mapping[str, str], options: PlanOptions, *,
               apply: bool, lock_timeout: float | None = None,
               statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT,
               connect_timeout: int = DEFAULT_CONNECT_TIMEOUT, mode: str = "--apply",
               manifests: ManifestCache | None = None, rider: RiderFor | None = None,
               capabilities: CapabilitiesCache | None = None) -> TargetResult:
    """Plan (or apply) the manifest on one target; never raises for anything the target causes.

    `rider(manifest, secret values)` may return a `Rider` (engine/rider.py) (the fleet controller's pipeline verification)
    that reads over this run's connection, in the plan's round trips."""
    started = time.perf_counter()
    try:
        outcome = _run(target, files, environ, options, apply=apply, lock_timeout=lock_timeout,
                       statement_timeout=statement_timeout, connect_timeout=connect_timeout,
                       command=_command(mode, options, target.name), manifests=manifests or _MANIFESTS,
                       rider=rider, capabilities=_CAPABILITIES if capabilities is None else capabilities)
    except LockHeld as e:
        outcome = TargetResult(target.name, error=e.one_line(), retryable=True, lock_held=True)
    except ManifestError as e:
        outcome = TargetResult(target.name, error="; ".join(e.one_line().splitlines()))
    except ReconcilerError as e:
        outcome = TargetResult(target.name, error=_for_target(e.one_line(), target), retryable=e.retryable)
    except Exception as e:  # a bug must not take the other targets down: reported, by type only
        log.error("target_failed_unexpectedly", target=target.name, error_type=type(e).__name__)
        outcome = TargetResult(target.name, error=f"unexpected {type(e).__name__} (a bug in the reconciler; "
                                                  "the log has the type)", retryable=True)
    return _with_duration(outcome, time.perf_counter() - started)


def _run(target: Target, files: Sequence[str], environ: Mapping[str, str], options: PlanOptions, *, apply: bool,
         lock_timeout: float | None, statement_timeout: float | None, connect_timeout: int, command: str,
         manifests: ManifestCache, rider: RiderFor | None = None,
         capabilities: CapabilitiesCache | None = None) -> TargetResult:
    from reconciler.engine.apply import ApplyContext, read_and_plan
    from reconciler.engine.apply import apply as apply_manifest

    manifest = manifests.load(target_files(files, target))
    url = target.url(environ).reveal()  # before the secrets, as run.session: no database, nothing to compare
    values = target.secret_values(manifest, environ)
    riding = rider(manifest, values) if rider is not None else None
    known = capabilities.get(target.name) if capabilities is not None else None
    with run.opened(manifest, target.environment(environ), url, values) as session:
        if not apply:
            live, plan = read_and_plan(session.url, manifest, session.secret_values, options, session.planes, riding,
                                       connect_timeout=connect_timeout, statement_timeout=statement_timeout,
                                       known=known)
            if capabilities is not None:
                capabilities.put(target.name, live.capabilities)
            return TargetResult(target.name, plan=plan)
        shown: list[Plan] = []
        try:
            result = apply_manifest(session.url, manifest, session.secret_values, options, ApplyContext(
                lock_timeout=lock_timeout, statement_timeout=statement_timeout, connect_timeout=connect_timeout,
                command=command, version=package_version(), planes=session.planes, rider=riding, known=known,
                on_plan=shown.append))
        except UnsafePlan as e:
            # The refusal says "fix the findings above": the plan goes with it, to be shown under the target.
            return TargetResult(target.name, plan=shown[-1] if shown else None, error=e.one_line())
    if capabilities is not None:
        capabilities.put(target.name, result.capabilities)
    return TargetResult(target.name, plan=result.plan, applied=not result.plan.is_empty,
                        history_id=result.history_id, corrections=result.corrections)


def _for_target(message: str, target: Target) -> str:
    """A single-database hint ("check --database-url / DATABASE_URL") pointed at the target's own source."""
    return message.replace("--database-url / DATABASE_URL", f"the target's database URL, from "
                           f"{target.database_url.describe()}")


def _with_duration(result: TargetResult, seconds: float) -> TargetResult:
    return replace(result, duration=seconds)


def _command(mode: str, options: PlanOptions, name: str) -> str:
    """What reconciler.history records: the mode, the options and the target's name; never a URL or value."""
    words = [mode, "--target", name]
    if options.prune:
        words.append("--prune")
    return " ".join(words)




def run_fleet(targets: Sequence[Target], files: Sequence[str], environ: Mapping[str, str], options: PlanOptions, *,
              apply: bool, parallel: int = 4, lock_timeout: float | None = None,
              statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT,
              connect_timeout: int = DEFAULT_CONNECT_TIMEOUT, mode: str = "--apply",
              manifests: ManifestCache | None = None) -> list[TargetResult]:
    """Every target's result, sorted by target name; at most `parallel` targets run at once."""
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    environ = dict(environ) if environ is os.environ else environ  # one snapshot for every thread

    def one(target: Target) -> TargetResult:
        return run_target(target, files, environ, options, apply=apply, lock_timeout=lock_timeout,
                          statement_timeout=statement_timeout, connect_timeout=connect_timeout, mode=mode,
                          manifests=manifests)

    if parallel == 1 or len(targets) <= 1:
        results = [one(t) for t in targets]
    else:
        with ThreadPoolExecutor(max_workers=min(parallel, len(targets)), thread_name_prefix="fleet") as pool:
            results = list(pool.map(one, targets))
    return sorted(results, key=lambda r: r.target)
