"""Overlays: later files merged over earlier ones (`reconcile -f base.yaml -f prod.yaml`).

Data flow: per-file LMap trees from `reconciler.manifest.yaml` ──merge──▶ one LMap tree whose every value
keeps the position of the file that set it, so a problem points at the overlay that caused it. Mappings are
merged deeply, named lists (extensions, jobs, triggers) by name, everything else replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.manifest.checks import NAMED_LISTS
from reconciler.manifest.positions import LMap, LSeq
from reconciler.manifest.types import EXTENSION_ALIASES, SECRET_SOURCES

__all__ = ["merge"]

#: Keys of which an overlay's item may set only one: setting one drops the base's others.
_EXCLUSIVE: dict[tuple[str, ...], frozenset[str]] = {
    ("secrets", "*"): frozenset(SECRET_SOURCES),
    ("triggers", "[]"): frozenset({"command", "http_post"}),
}


def _item_name(item: Any, kind: str) -> str | None:
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        name = item["name"]
        return EXTENSION_ALIASES.get(name, name) if kind == "extensions" else name
    return None


def merge(base: Any, over: Any, path: tuple[str, ...]) -> Any:
    """Overlay `over` on `base`: mappings deep-merged, named lists merged by name, the rest replaced."""
    if isinstance(base, LMap) and isinstance(over, LMap):
        out = LMap(base.pos)
        exclusive = _EXCLUSIVE.get(path, frozenset())
        dropped = exclusive if exclusive & over.keys() else frozenset()
        for key, value in base.items():
            if key not in dropped:
                out[key], out.key_pos[key], out.val_pos[key] = value, base.key_pos[key], base.val_pos[key]
        for key, value in over.items():
            if key in out and isinstance(out[key], LMap | LSeq):
                sub = ("secrets", "*") if path == ("secrets",) else (*path, key)
                merged = merge(out[key], value, sub)
                out[key] = merged
                out.val_pos[key] = merged.pos if isinstance(merged, LMap | LSeq) else over.val_pos[key]
                if not isinstance(merged, LMap | LSeq) or merged is value:
                    out.key_pos[key] = over.key_pos[key]
            else:
                out[key], out.key_pos[key], out.val_pos[key] = value, over.key_pos[key], over.val_pos[key]
        return out
    if len(path) == 1 and path[0] in NAMED_LISTS and isinstance(base, LSeq) and isinstance(over, LSeq):
        kind = path[0]
        out_seq = LSeq(base.pos)
        out_seq.extend(base)
        out_seq.item_pos.extend(base.item_pos)
        index = {name: i for i, item in enumerate(base) if (name := _item_name(item, kind)) is not None}
        for item, pos in zip(over, over.item_pos, strict=True):
            name = _item_name(item, kind)
            if name is not None and name in index:
                merged = merge(out_seq[index[name]], item, (kind, "[]"))
                out_seq[index[name]] = merged
            else:
                if name is not None:
                    index[name] = len(out_seq)
                out_seq.append(item)
                out_seq.item_pos.append(pos)
        return out_seq
    return over

