"""Where the tests find the programs they run: never on whatever PATH the shell happens to have.

A tool the project installs (`scripts/install.sh`: the venv's test extra) sits next to the interpreter
running the tests; a system tool sits where its Debian package puts it. A missing one fails the test
with the line that installs it, so a machine that only works because someone installed a tool by hand
once is found out (`.ci/run` runs the suite with a minimal PATH for the same reason).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def venv_tool(name: str, package: str | None = None) -> str:
    """A program installed into the test interpreter's virtualenv by `pip install -e '.[test]'`."""
    exe = VENV_BIN / name
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: it comes with the test extra's {package or name} "
                    f"(bash scripts/install.sh installs it)", pytrace=False)
    return str(exe)


def system_tool(path: str, apt_package: str) -> str:
    """A program from a Debian package, at the absolute path the package installs it to."""
    if not Path(path).is_file():
        pytest.fail(f"{path} is missing: apt-get install {apt_package} (bash scripts/install.sh does)",
                    pytrace=False)
    return path
