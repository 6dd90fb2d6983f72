"""The manifest: scheduler.yaml's models and the loader that reports every problem by file, line and column.

Data flow: scheduler.yaml (one file, or a base plus overlays) ──load_manifest──▶ Manifest (immutable).
Everything downstream (kinds' `desired()`, plan, render) reads only the Manifest. Secret *values* never
appear here: a manifest names each secret's source, and `reconciler.engine.sources` resolves them at run time.

Modules, in the order data passes through them:
  limits     the loader's limits, checked on the text and events before anything is composed
  yaml       one file's text ──yaml.compose──▶ nodes ──walk──▶ LMap/LSeq with positions (+ problems)
  overlay    later files merged over earlier ones, positions kept
  types      field types and the two markers ({secret: name}, {now: text})
  checks     cross-field checks (duplicate names, unknown secrets) and field paths
  models     the pydantic models and the JSON Schema
  problems   pydantic's errors mapped back to positions; warnings
  load       `load_manifest`, which runs them in that order
"""

from __future__ import annotations

from reconciler.manifest.limits import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from reconciler.manifest.load import load_manifest
from reconciler.manifest.models import (
    EdgeFunctionsSpec,
    EdgeSecretSource,
    ExtensionSpec,
    GenerateSpec,
    HttpPostSpec,
    JobSpec,
    Manifest,
    PrunePolicy,
    SecretSpec,
    TablesSpec,
    TriggerSpec,
)
from reconciler.manifest.schema import manifest_json_schema
from reconciler.manifest.types import DEFAULT_CRON_VERSION, NowMarker, SecretRef

__all__ = [
    "DEFAULT_CRON_VERSION",
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "EdgeFunctionsSpec",
    "EdgeSecretSource",
    "ExtensionSpec",
    "GenerateSpec",
    "HttpPostSpec",
    "JobSpec",
    "Manifest",
    "NowMarker",
    "PrunePolicy",
    "SecretRef",
    "SecretSpec",
    "TablesSpec",
    "TriggerSpec",
    "load_manifest",
    "manifest_json_schema",
]
