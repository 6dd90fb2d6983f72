"""Manifest sections that kinds contribute, and the model that holds them beside the built-in ones.

Data flow: a kind outside the built-in model declares a section (`contribute(name, annotation, default)`,
through `kinds.registered`) ──▶ `manifest_model()`, a subclass of `Manifest` with that field, which the
loader validates against; `field_models(model)` lists every model a location can fall into, so a problem
inside a contributed section gets the same "did you mean" hints and item names as a built-in one.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, create_model

from reconciler.manifest.checks import NAMED_LISTS, named_sections
from reconciler.manifest.models import Manifest

__all__ = ["contribute", "field_models", "manifest_model", "withdraw"]

_CONTRIBUTED: dict[str, tuple[Any, Any]] = {}
#: Sections written as a mapping from name to item and held as a tuple of named items.
_KEYED_BY_NAME = frozenset({"secrets"})
#: Values with their own rules (markers), located by their tags rather than by their field paths.
_LEAVES = frozenset({"SecretRef", "NowMarker"})


def contribute(name: str, annotation: Any, default: Any) -> None:
    """Accept a top-level section `name` holding `annotation` (absent: `default`) in every manifest loaded next."""
    if name in Manifest.model_fields:
        raise ValueError(f"manifest section {name!r} exists already")
    _CONTRIBUTED[name] = (annotation, default)
    NAMED_LISTS.update(named_sections(manifest_model()))


def withdraw(name: str) -> None:
    _CONTRIBUTED.pop(name, None)
    NAMED_LISTS.pop(name, None)
    NAMED_LISTS.update(named_sections(Manifest))


def manifest_model() -> type[Manifest]:
    """`Manifest`, or a subclass of it with the contributed sections as fields."""
    return _model(tuple(sorted(_CONTRIBUTED.items(), key=lambda item: item[0])))


@lru_cache(maxsize=8)
def _model(contributed: tuple[tuple[str, tuple[Any, Any]], ...]) -> type[Manifest]:
    if not contributed:
        return Manifest
    fields: dict[str, Any] = dict(contributed)
    return create_model("Manifest", __base__=Manifest, **fields)


@lru_cache(maxsize=8)
def field_models(model: type[BaseModel]) -> dict[tuple[str, ...], type[BaseModel]]:
    """Every model a location falls into, by its shape: `("jobs", "[]")`, `("secrets", "*", "generate")`."""
    return dict(_walk(model, ()))


def _walk(model: type[BaseModel], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], type[BaseModel]]]:
    yield path, model
    for name, info in model.model_fields.items():
        key = info.alias or name
        for shape, sub in _models_in(info.annotation):
            if not path and key in _KEYED_BY_NAME:
                shape = ("*",) + shape[1:]
            yield from _walk(sub, (*path, key, *shape))


def _models_in(annotation: Any) -> Iterator[tuple[tuple[str, ...], type[BaseModel]]]:
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _models_in(get_args(annotation)[0])
    elif origin in (Union, UnionType):
        for arg in get_args(annotation):
            yield from _models_in(arg)
    elif origin in (tuple, list):
        for arg in get_args(annotation):
            if arg is not Ellipsis:
                yield from ((("[]", *shape), sub) for shape, sub in _models_in(arg))
    elif origin is dict:
        args = get_args(annotation)
        if len(args) == 2:
            yield from ((("*", *shape), sub) for shape, sub in _models_in(args[1]))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation.__name__ not in _LEAVES:
        yield (), annotation
