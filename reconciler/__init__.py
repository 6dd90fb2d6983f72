"""scheduler-reconciler: keep a pg_cron / pg_net / Vault scheduler stack exactly as declared in git.

Data flow: scheduler.yaml -> Manifest -> (with LiveState) plan() -> Plan -> render | apply | controller.
This module re-exports the small public surface; everything else is internal.
"""

from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.model import Action, Change, FieldChange, Finding, Plan


def __getattr__(name: str) -> Any:
    # The version comes from the installed metadata (one source: pyproject.toml), read when asked for:
    # importlib.metadata costs a plain plan tens of milliseconds it does not need.
    if name == "__version__":
        from reconciler.util.version import package_version

        return package_version()
    raise AttributeError(f"module 'reconciler' has no attribute {name!r}")

__all__ = ["Action", "Change", "FieldChange", "Finding", "Plan", "ReconcilerError", "__version__"]
