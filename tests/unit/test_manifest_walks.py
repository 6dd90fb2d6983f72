"""The loader's short walk (documents without anchors, issue 17) builds exactly what the general walk builds.

Every manifest of the repository and a set of small documents are read twice, once as the loader reads
them and once through the general walk only; values, positions and problems must be equal. Documents the
short walk does not build itself (duplicate keys, merge keys, typed keys, deep nesting, tags) are in the
set, so the hand-over to the general walk is compared too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.manifest import yaml as manifest_yaml
from reconciler.manifest.composer import Composer
from reconciler.manifest.positions import LMap, LSeq

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted({ROOT / "scheduler.yaml", *ROOT.glob("examples/**/*.yaml"), *(ROOT / "tests" / "manifests").rglob("*.yaml")})

DOCUMENTS = {
    "typed scalars": "version: 1\na: true\nb: 12\nc: 1.5\nd: ~\ne: 2024-01-02\nf: '12'\ng: off\nh: -.inf\n",
    "nested": "a:\n  - x\n  - [1, 2, {b: c}]\n  - {d: [e, f]}\nz: {}\ny: []\n",
    "quoted keys": '"a b": 1\n\'c\': "d"\n? e\n: f\n',
    "merge value": "a: <<\nb: '<<'\n",
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "merge key": "base: {x: 1}\nother:\n  <<: {y: 2}\n",
    "quoted merge key": "a:\n  '<<': 1\n",
    "typed key": "1: a\ntrue: b\n",
    "mapping as key": "? {a: b}\n: c\n",
    "explicit tags": "a: !!str 12\nb: !!int '7'\nc: !!float '1'\n",
    "unsupported tag": "a: !!binary aGVsbG8=\n",
    "tagged collection": "a: !!set {x, y}\n",
    "bad typed value": "a: !!int abc\n",
    "deep": "a: " + "[" * 33 + "]" * 33 + "\n",
    "block deep": "".join("  " * i + f"k{i}:\n" for i in range(34)) + "  " * 34 + "v: 1\n",
    "second document": "a: 1\n---\nb: 2\n",
    "not a mapping": "- a\n- b\n",
    "empty": "",
    "non-specific tag": "a: ! 12\nb: ! true\n",
}


def _tree(value: Any) -> Any:
    if isinstance(value, LMap):
        return ("map", value.pos, [(k, value.key_pos[k], value.val_pos[k], _tree(v)) for k, v in value.items()])
    if isinstance(value, LSeq):
        return ("seq", value.pos, list(value.item_pos), [_tree(v) for v in value])
    return (type(value).__name__, value)


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    loaded, problems = manifest_yaml.parse_file(path)
    with monkeypatch.context() as patched:
        patched.setattr(Composer, "_walk_fast_or_general", lambda self, root, loader: self.walk(root, loader))
        general, general_problems = manifest_yaml.parse_file(path)
    return (_tree(loaded), problems), (_tree(general), general_problems)


def test_there_are_manifests_to_compare() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_manifest_of_the_repository(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short, general = _both(path, monkeypatch)
    assert short == general


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_documents_the_short_walk_builds_or_hands_over(name: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(DOCUMENTS[name], encoding="utf-8")
    short, general = _both(path, monkeypatch)
    assert short == general
