"""Secret values: read from their declared sources at run time and held so they cannot leak by accident.

Data flow: each kind's `sources(manifest)` ──resolve_secrets(environ)──▶ {key: SecretValue}, which the
secret kind compares with the database by digest and writes as COPY data (never SQL text or a bound
parameter) for `vault.create_secret` / `vault.update_secret`. A SecretValue (`reconciler.secret_value`,
re-exported here) prints as `(sensitive)`, reprs as a digest prefix, refuses pickling and JSON, and gives
up its value only through `.reveal()`.
"""

from __future__ import annotations

import base64
import secrets as _random
from collections.abc import Mapping
from typing import Protocol

from reconciler.errors import SecretSourceError
from reconciler.manifest import Manifest
from reconciler.secret_value import SecretValue
from reconciler.util.files import read_limited

__all__ = ["SecretValue", "SourceLike", "generate_value", "resolvable_secrets", "resolve_secrets", "resolve_source"]


def generate_value(n_bytes: int = 32, encoding: str = "base64url") -> str:
    """A fresh random value: `n_bytes` from the OS CSPRNG as hex or unpadded base64url."""
    raw = _random.token_bytes(n_bytes)
    if encoding == "hex":
        return raw.hex()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


#: A secret file holds a key or a token; a bigger file is a wrong path (/dev/zero, a log), not a secret.
MAX_SECRET_FILE_BYTES = 64 * 1024


def _from_file(path_text: str) -> tuple[str | None, str]:
    raw, why = read_limited(path_text, MAX_SECRET_FILE_BYTES)
    if raw is None:
        return None, f"file {path_text} {why}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"file {path_text} is not valid UTF-8"
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        return None, f"file {path_text} is empty"
    return text, ""


class SourceLike(Protocol):
    """Anything naming where one value comes from: a manifest's secret, or a fleet target's own source."""

    @property
    def from_env(self) -> str | None: ...

    @property
    def from_file(self) -> str | None: ...


def resolve_source(spec: SourceLike, environ: Mapping[str, str]) -> tuple[SecretValue | None, str]:
    """The value of one source, or None and why (naming the source, never a value)."""
    generate = getattr(spec, "generate", None)  # Edge Function and fleet sources never generate
    if generate is not None:
        return SecretValue(generate_value(generate.n_bytes, generate.encoding), generated=True), ""
    if spec.from_env is not None:
        text = environ.get(spec.from_env)
        if text is None:
            return None, f"environment variable {spec.from_env} is not set"
        if not text:
            return None, f"environment variable {spec.from_env} is empty"
        where = f"environment variable {spec.from_env}"
    elif spec.from_file is not None:
        text, why = _from_file(spec.from_file)
        if text is None:
            return None, why
        where = f"file {spec.from_file}"
    else:  # the model guarantees exactly one source
        return None, "no source declared"
    if "\x00" in text:
        return None, f"{where} contains a NUL byte (PostgreSQL text cannot store it)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # invalid bytes in the environment arrive as lone surrogates
        return None, f"{where} is not valid UTF-8"
    return SecretValue(text), ""


def resolve_secrets(manifest: Manifest, environ: Mapping[str, str],
                    overrides: Mapping[str, SourceLike | SecretValue] | None = None) -> dict[str, SecretValue]:
    """Every declared secret's value, by name, in manifest order.

    `generate` sources give a fresh random value on each call (the planner uses it only when the secret
    does not exist yet). Every missing or unusable source is reported together in one SecretSourceError,
    sorted by secret name; its message names sources, never values. `overrides` replaces the sources of
    declared Vault secrets by name (a fleet target's own `project_url`), or gives their values outright.
    """
    values, missing = _resolve_all(manifest, environ, overrides or {})
    if missing:
        listed = ", ".join(f"{name} ({why})" for name, why in sorted(missing))
        raise SecretSourceError(
            f"missing secret sources: {listed}",
            hint="set the variables (in the environment or an --env-file) or mount the files, or use `generate:` "
                 "for values the reconciler may create",
        )
    return values


def resolvable_secrets(manifest: Manifest, environ: Mapping[str, str]) -> dict[str, SecretValue]:
    """The values whose sources resolve, the others left out: enough to keep them out of any output."""
    return _resolve_all(manifest, environ, {})[0]


def _resolve_all(manifest: Manifest, environ: Mapping[str, str], overrides: Mapping[str, SourceLike | SecretValue]
                 ) -> tuple[dict[str, SecretValue], list[tuple[str, str]]]:
    from reconciler import kinds

    values: dict[str, SecretValue] = {}
    missing: list[tuple[str, str]] = []
    for kind in kinds.REGISTRY:
        for key, declared in kind.sources(manifest).items():
            source = overrides.get(key, declared)
            value, why = (source, "") if isinstance(source, SecretValue) else resolve_source(source, environ)
            if value is None:
                missing.append((key, why))
            else:
                values[key] = value
    return values, missing


def declared_sources(manifest: Manifest) -> set[str]:
    """The keys of every secret value the manifest's kinds need (what a fleet target may override)."""
    from reconciler import kinds

    return {key for kind in kinds.REGISTRY for key in kind.sources(manifest)}
