"""The evidence reader under its old name: `reconciler.verify.read` holds it now."""

from __future__ import annotations

from reconciler.verify.read import Reader, _ts, declared_triggers

__all__ = ["Reader", "_ts", "declared_triggers"]
