"""One run of the reconciler: the manifest, the secret values, the database URL and the planes, together.

Where it sits: between the edges that start a run (cli/main.py's plan, apply and down; cli/verify.py; each
cycle of watch/controller.py, each target of fleet/runner.py) and what they run (`apply.read_and_plan`, `apply.apply`, `verify.read`). An edge
loads the manifest (`load`), then opens a `session`: it determines the URL (`--database-url`, else
DATABASE_URL in the environment, which includes an --env-file), resolves the secrets from that
environment, opens every kind's plane (`kinds.open_planes`) and closes them when the block ends, however
it ends. A missing database is reported before missing secrets: without a database there is nothing to
compare them with.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from reconciler.errors import ReconcilerError, SecretSourceError

if TYPE_CHECKING:
    from reconciler.kinds import Planes
    from reconciler.manifest import Manifest
    from reconciler.secret_value import SecretValue

#: What a session does with the manifest's secrets: resolve them (a missing source is an error), try
#: (a missing source is recorded in `Session.secret_error`, and no plane is opened), or skip them.
SecretsMode = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class Session:
    manifest: Manifest
    url: str
    environ: Mapping[str, str]
    values: dict[str, SecretValue] | None  # None when optional secrets did not resolve
    secret_error: str | None
    planes: Planes

    @property
    def secret_values(self) -> dict[str, SecretValue]:
        """The resolved values; empty when the session skipped them or they did not resolve."""
        return self.values or {}


def load(files: Sequence[str]) -> Manifest:
    """The manifest in `files` (./scheduler.yaml when none), every problem at once as a ManifestError."""
    from reconciler.manifest import load_manifest

    return load_manifest(list(files) or ["scheduler.yaml"])


def database_url(given: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """--database-url, else DATABASE_URL (click reads the real environment; `environ` adds the --env-file)."""
    url = given or environ.get("DATABASE_URL")
    if not url:
        raise ReconcilerError("no database given",
                              hint="pass --database-url or set DATABASE_URL, in the environment or an --env-file")
    return url


def resolve(manifest: Manifest, environ: Mapping[str, str]) -> dict[str, SecretValue]:
    """Every declared secret's value from its source; a SecretSourceError names every one that is missing."""
    from reconciler.engine.sources import resolve_secrets

    return resolve_secrets(manifest, environ)


@contextmanager
def session(manifest: Manifest, environ: Mapping[str, str], url: str | None, *,
            secrets: SecretsMode = "required") -> Iterator[Session]:
    """The URL, the secret values and the open planes for one run; the planes are closed at the end."""
    resolved_url = database_url(url, environ)  # before the secrets (see the module's docstring)
    values: dict[str, SecretValue] | None = {}
    secret_error = None
    if secrets == "required":
        values = resolve(manifest, environ)
    elif secrets == "optional":
        try:
            values = resolve(manifest, environ)
        except SecretSourceError as e:
            values, secret_error = None, e.one_line()
    with opened(manifest, environ, resolved_url, values, secret_error) as one:
        yield one


@contextmanager
def opened(manifest: Manifest, environ: Mapping[str, str], url: str, values: dict[str, SecretValue] | None,
           secret_error: str | None = None) -> Iterator[Session]:
    """The session of a URL and secret values already resolved (`session`, or a fleet target from its own
    sources): every kind's plane opened with `environ` (none when the values did not resolve), closed at
    the end however the block ends."""
    from reconciler.kinds import Planes, open_planes

    planes = open_planes(manifest, environ) if values is not None else Planes()
    try:
        yield Session(manifest, url, environ, values, secret_error, planes)
    finally:
        planes.close()
