"""scheduler-reconciler: keep a pg_cron / pg_net / Vault scheduler stack exactly as declared in git.

Data flow: scheduler.yaml -> Manifest -> (with LiveState) plan() -> Plan -> render | apply | controller.
This module re-exports the small public surface; everything else is internal.
"""

from importlib.metadata import PackageNotFoundError, version

from reconciler.errors import ReconcilerError
from reconciler.model import Action, Change, FieldChange, Finding, Plan

try:
    __version__ = version("scheduler-reconciler")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["Action", "Change", "FieldChange", "Finding", "Plan", "ReconcilerError", "__version__"]
