"""The ordered registry of resource kinds, and the planes they open for one run.

Each kind is an object satisfying `base.Kind` (read, diff, statements, privileges, protection, prune
policy, hidden fields, its part in `reconcile down`), defined in its own module of this package. The
core loops over REGISTRY and never names a kind. Creates and updates run in registry order, deletes in
reverse. Adding a kind means adding a module and one line here; no other kind and no core module
changes (tests/integration/apply/test_kind_protocol.py proves it with a kind defined inside a test).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from reconciler.kinds import edge_secrets, extensions, jobs, secrets, tables, triggers
from reconciler.kinds.base import Kind, Plane

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

T = TypeVar("T")

#: A kind that depends on another is given it here (a kind never imports another kind).
REGISTRY: tuple[Kind, ...] = (
    extensions.kind,
    tables.kind,
    secrets.kind,
    jobs.JobKind(tables=tables.kind),
    triggers.kind,
    edge_secrets.EdgeSecretKind(vault=secrets.kind),
)


def _contribute_sections(registry: tuple[Kind, ...]) -> None:
    from reconciler.manifest.sections import contribute

    for kind in registry:
        if kind.manifest_section is not None:
            section = kind.manifest_section
            contribute(section.name, section.annotation, section.default)


_contribute_sections(REGISTRY)


def by_name(name: str) -> Kind:
    for kind in REGISTRY:
        if kind.name == name:
            return kind
    raise KeyError(name)


@contextmanager
def registered(kind: Kind) -> Iterator[Kind]:
    """`kind` appended to REGISTRY (and its manifest section accepted) while the block runs (for tests)."""
    from reconciler.manifest.sections import withdraw

    global REGISTRY
    saved = REGISTRY
    REGISTRY = (*saved, kind)
    _contribute_sections((kind,))
    try:
        yield kind
    finally:
        REGISTRY = saved
        if kind.manifest_section is not None:
            withdraw(kind.manifest_section.name)


def providing(fact: type[T]) -> list[T]:
    """The registered kinds that provide `fact` (a runtime-checkable protocol of kinds.facts), in registry order."""
    return [kind for kind in REGISTRY if isinstance(kind, fact)]


class Planes:
    """The planes the kinds opened for one run (kind name -> Plane), closed together at its end."""

    def __init__(self, opened: Mapping[str, Plane] | None = None) -> None:
        self.opened: dict[str, Plane] = dict(opened or {})

    def get(self, kind: str) -> Plane | None:
        return self.opened.get(kind)

    def close(self) -> None:
        for plane in self.opened.values():
            plane.close()

    def __enter__(self) -> Planes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_planes(manifest: Manifest, environ: Mapping[str, str]) -> Planes:
    """Every plane the manifest asks for (an HTTP client per kind read over HTTP); use it as a context manager."""
    planes = Planes()
    try:
        for kind in REGISTRY:
            plane = kind.open_plane(manifest, environ)
            if plane is not None:
                planes.opened[kind.name] = plane
    except BaseException:
        planes.close()
        raise
    return planes
