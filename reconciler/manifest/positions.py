"""Values that remember where they are written: a position (`Pos`), and the mapping (`LMap`) and list
(`LSeq`) the composer (`reconciler.manifest.composer`) builds a manifest file into.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Pos(NamedTuple):
    """Where a value is written. A tuple because a large file has one per value: it is built fast."""

    file: str
    line: int  # 1-based
    column: int  # 1-based


new_pos = tuple.__new__  # Pos without the call to its generated __new__, for the walk's inner loop


def mark_pos(file: str, node: Any) -> Pos:
    mark = node.start_mark
    return new_pos(Pos, (file, mark.line + 1, mark.column + 1))


class LMap(dict):
    """A mapping that remembers where it, its keys and its values are.

    Built by the short walk, it keeps its YAML node's pairs instead and finds the positions when first
    asked: a manifest that loads without a problem never asks (two positions per value, not made).
    """

    def __init__(self, pos: Pos, file: str = "", pairs: list[tuple[Any, Any]] | None = None) -> None:
        super().__init__()
        self.pos = pos
        self._file, self._pairs = file, pairs
        self._key_pos: dict[str, Pos] | None = None if pairs is not None else {}
        self._val_pos: dict[str, Pos] | None = None if pairs is not None else {}

    @property
    def key_pos(self) -> dict[str, Pos]:
        if self._key_pos is None:
            self._locate()
        return self._key_pos  # type: ignore[return-value]

    @property
    def val_pos(self) -> dict[str, Pos]:
        if self._val_pos is None:
            self._locate()
        return self._val_pos  # type: ignore[return-value]

    def _locate(self) -> None:
        file, pairs = self._file, self._pairs or []
        self._key_pos = {key.value: mark_pos(file, key) for key, _ in pairs}  # keys: unique strings
        self._val_pos = {key.value: mark_pos(file, value) for key, value in pairs}


class LSeq(list):
    """A list that remembers where it and its items are (found when first asked, as LMap's are)."""

    def __init__(self, pos: Pos, file: str = "", items: list[Any] | None = None) -> None:
        super().__init__()
        self.pos = pos
        self._file, self._items = file, items
        self._item_pos: list[Pos] | None = None if items is not None else []

    @property
    def item_pos(self) -> list[Pos]:
        if self._item_pos is None:
            self._item_pos = [mark_pos(self._file, item) for item in self._items or []]
        return self._item_pos

