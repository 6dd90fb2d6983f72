"""Tests' lookups of a declared object by name (the reconciler itself never looks one up this way)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from reconciler.manifest import JobSpec, Manifest, SecretSpec, TriggerSpec

T = TypeVar("T", SecretSpec, JobSpec, TriggerSpec)


def _named(specs: Iterable[T], noun: str, name: str) -> T:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"no {noun} named {name!r}")


def secret(manifest: Manifest, name: str) -> SecretSpec:
    """The declared secret `name`; KeyError when undeclared."""
    return _named(manifest.secrets, "secret", name)


def job(manifest: Manifest, name: str) -> JobSpec:
    """The declared job `name`; KeyError when undeclared."""
    return _named(manifest.jobs, "job", name)


def trigger(manifest: Manifest, name: str) -> TriggerSpec:
    """The declared trigger `name`; KeyError when undeclared."""
    return _named(manifest.triggers, "trigger", name)
