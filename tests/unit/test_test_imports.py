"""No test module imports another test module: what tests share lives in support modules and conftest.py.

Importing a test module runs its module-level code and registers nothing the importer expects (its
autouse fixtures stay behind), and pytest collects its tests under two names when both are on the path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imports_of_test_modules(source: str, package: str = "tests") -> list[str]:
    """Where `source` (a module of `package`) imports a test_*.py module, wherever the import statement is."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            if not (module.split(".")[0] == "tests" or node.level):
                continue
            if _is_test_module(module):
                found.append(f"line {node.lineno}: from {module} import ...")
            else:
                found += [f"line {node.lineno}: from {module} import {a.name}" for a in node.names
                          if a.name.startswith("test_")]
    return found


def test_no_imports_of_test_modules_another() -> None:
    found = {}
    for path in sorted(TESTS.rglob("*.py")):
        package = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts[:-1])
        imports = imports_of_test_modules(path.read_text(encoding="utf-8"), package)
        if imports:
            found[str(path.relative_to(TESTS.parent))] = imports
    assert found == {}, "move what is shared into a *_support.py module or a conftest.py"


@pytest.mark.parametrize("planted", [
    "from tests.integration.apply.test_golden import invoke\n",
    "def f():\n    from tests.unit.test_verify import healthy\n",
    "import tests.unit.test_verify\n",
    "from tests.unit import test_verify\n",
    "from .test_export import placeholder_env\n",
], ids=["from", "inside-a-function", "import", "from-package", "relative"])
def test_the_check_catches_a_planted_import(planted: str) -> None:
    assert len(imports_of_test_modules(planted, "tests.integration.export")) == 1


def test_the_check_leaves_support_modules_alone() -> None:
    clean = ("from tests.integration.golden_support import invoke\nfrom tests.unit.verify_support import healthy\n"
             "import pytest\nfrom reconciler.cli.main import main\nfrom . import conftest\n")
    assert imports_of_test_modules(clean, "tests.integration.export") == []
