"""`Target`: one database of a fleet, with where its credentials come from.

A target is what targets.yaml declares or a generator (Supabase branches, projects) produces. Its values
(the database URL, overridden secrets such as its own `project_url`) come from sources: an environment
variable, a file, or a value a generator fetched, held in memory as a `SecretValue` and never printed. A
run for a target resolves them at run time, so a rotated file or variable is read again on the next cycle.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.errors import ReconcilerError, SecretSourceError
from reconciler.secret_value import SecretValue

if TYPE_CHECKING:
    from reconciler.manifest import Manifest


@dataclass(frozen=True)
class ValueSource:
    """Where one of a target's values comes from: exactly one of an environment variable, a file, a value."""

    from_env: str | None = None
    from_file: str | None = None
    value: SecretValue | None = None

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.from_env, self.from_file, self.value))
        if given != 1:
            raise ValueError("a ValueSource takes exactly one of from_env, from_file, value")

    def describe(self) -> str:
        """Where the value comes from, for messages: never the value."""
        if self.from_env is not None:
            return f"environment variable {self.from_env}"
        if self.from_file is not None:
            return f"file {self.from_file}"
        return "a value fetched by a generator"


@dataclass(frozen=True)
class Target:
    """One database of the fleet and what makes it differ from the others."""

    name: str
    database_url: ValueSource
    #: Overrides of the manifest's Vault secret sources, by secret name (e.g. its own `project_url`).
    secrets: Mapping[str, ValueSource] = field(default_factory=dict)
    #: Non-secret variables for this target only (e.g. SUPABASE_PROJECT_REF), over the process environment.
    environ: Mapping[str, str] = field(default_factory=dict)
    #: Extra manifest files merged over the fleet's shared ones (the usual overlay merge).
    files: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Where it was declared, for messages: "targets.yaml:12" or "generator supabase_branches".
    origin: str = ""

    def environment(self, base: Mapping[str, str]) -> Mapping[str, str]:
        """The environment this target's sources are read from: its own variables over `base`."""
        return ChainMap(dict(self.environ), dict(base)) if self.environ else base

    def url(self, base: Mapping[str, str]) -> SecretValue:
        """The database URL; a missing source is one line naming the source (the caller names the target)."""
        value, why = _value_of(self.database_url, self.environment(base))
        if value is None:
            raise SecretSourceError(f"database URL: {why}",
                                    hint="set the variable or mount the file named in the targets file")
        return value

    def secret_values(self, manifest: Manifest, base: Mapping[str, str]) -> dict[str, SecretValue]:
        """The manifest's secret values for this target: its overrides replace the manifest's sources."""
        from reconciler.engine.sources import declared_sources, resolve_secrets

        declared = declared_sources(manifest)
        unknown = sorted(set(self.secrets) - declared)
        if unknown:
            raise ReconcilerError(f"overrides undeclared secret(s): {', '.join(unknown)}",
                                  hint="declare them under secrets: in the manifest, or remove the overrides")
        overrides = {name: source.value if source.value is not None else source
                     for name, source in self.secrets.items()}
        return resolve_secrets(manifest, self.environment(base), overrides)


def _value_of(source: ValueSource, environ: Mapping[str, str]) -> tuple[SecretValue | None, str]:
    if source.value is not None:
        return source.value, ""
    from reconciler.engine.sources import resolve_source

    return resolve_source(source, environ)
