"""docs/architecture.md is written from the tree: every module it names exists, and it names every module.

A path is a backquoted or bare `something.py` (relative to reconciler/, or to the repository for
tests/, docs/, bench/, scripts/, localdb/ and action/), a glob such as `engine/apply*.py`, or a dotted
`reconciler.x.y`. A package's `__init__.py` that holds only its docstring need not be named.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "reconciler"
DOC = ROOT / "docs" / "architecture.md"
REPOSITORY_FOLDERS = ("tests/", "docs/", "bench/", "scripts/", "localdb/", "action/", "reconciler/")

#: `reconciler.<name>` in the doc that are the database schema's tables, not modules.
TABLES = {"reconciler.managed", "reconciler.history"}

PATH = re.compile(r"(?<![\w/.*-])((?:[\w*-]+/)*[\w*-]+\.py)\b")
DOTTED = re.compile(r"\breconciler(?:\.\w+)+")


def named_paths(text: str) -> set[str]:
    return set(PATH.findall(text))


def resolve(named: str) -> list[Path]:
    base = ROOT if named.startswith(REPOSITORY_FOLDERS) else PACKAGE
    return sorted(base.glob(named)) if "*" in named else [base / named] if (base / named).is_file() else []


def dotted_exists(dotted: str) -> bool:
    """A module or package of the project, or a name defined in one."""
    parts = dotted.split(".")
    as_module = ROOT.joinpath(*parts)
    if as_module.with_suffix(".py").is_file() or (as_module / "__init__.py").is_file():
        return True
    owner = ROOT.joinpath(*parts[:-1])
    source = owner.with_suffix(".py") if owner.with_suffix(".py").is_file() else owner / "__init__.py"
    if not source.is_file():
        return False
    names = set()
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    return parts[-1] in names


def modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        body = ast.parse(path.read_text()).body
        docstring_only = len(body) == 1 and isinstance(body[0], ast.Expr)
        if path.name == "__init__.py" and docstring_only:
            continue
        found.append(str(path.relative_to(PACKAGE)))
    return found


def test_every_path_named_exists() -> None:
    text = DOC.read_text()
    assert [p for p in sorted(named_paths(text)) if not resolve(p)] == []
    assert [d for d in sorted(set(DOTTED.findall(text)) - TABLES) if not dotted_exists(d)] == []


def test_every_module_is_named() -> None:
    covered = {str(p.relative_to(PACKAGE)) for named in named_paths(DOC.read_text()) for p in resolve(named)
               if p.is_relative_to(PACKAGE)}
    assert [m for m in modules() if m not in covered] == [], "add the module's row to docs/architecture.md"


def test_the_check_sees_paths_globs_and_dotted_names() -> None:
    text = "`engine/db.py` and engine/apply*.py, tests/unit/test_layers.py; reconciler.verify.read; not x.pyc"
    assert named_paths(text) == {"engine/db.py", "engine/apply*.py", "tests/unit/test_layers.py"}
    assert resolve("engine/nothing_here.py") == []
    assert resolve("engine/apply*.py") != []
    assert DOTTED.findall(text) == ["reconciler.verify.read"]
    assert dotted_exists("reconciler.verify.read") and dotted_exists("reconciler.kinds.REGISTRY")
    assert not dotted_exists("reconciler.verify.nothing_here") and not dotted_exists("reconciler.nowhere.x")
