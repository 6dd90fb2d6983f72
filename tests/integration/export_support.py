"""Helpers shared by the export tests (tests/integration/export/): the environment an export plans with."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifest import load_manifest


def placeholder_env(path: Path, values: dict[str, str]) -> dict[str, str]:
    """Each `from_env:` placeholder of the export set to the live value of its vault secret."""
    manifest = load_manifest(path)
    return {s.from_env: values[s.name] for s in manifest.secrets if s.from_env is not None}
