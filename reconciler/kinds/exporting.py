"""Helpers the kinds' `export` verbs share: placeholder variable names for secret values, and whether an
exported entry would validate as a manifest entry (what would not becomes a comment, never an entry)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def placeholder_names(names: Sequence[str], taken: Sequence[str] = ()) -> dict[str, str]:
    """An environment variable per name (`cron_secret` -> `CRON_SECRET`), unique, in a stable order.

    Characters a variable name cannot hold become "_"; a name that would collide gets `_2`, `_3`...
    """
    used = set(taken)
    out = {}
    for name in sorted(names):
        base = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name.upper())
        if not base or base[0].isdigit():
            base = "_" + base
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        out[name] = candidate
    return out


def export_problem(model: Any, data: Mapping[str, Any]) -> str | None:
    """Why `data` is not a valid manifest entry for `model` (the first problem), or None when it is."""
    from pydantic import ValidationError

    try:
        model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"] if not str(p).startswith("~"))
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return None
