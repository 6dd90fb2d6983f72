"""The product stands alone: nothing in the repository points at a file outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".git", ".venv", ".venv-lowest", ".localdb", ".hypothesis", ".pytest_cache", ".ruff_cache",
                ".mypy_cache", "__pycache__", "build", "dist"}
OUTSIDE = re.compile(r"\.\./shared|/work/|REFERENCE\.md|DESIGN\.md")


def _project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if path.is_file() and not parts & SKIPPED_DIRS and not any(p.endswith(".egg-info") for p in parts):
            files.append(path)
    return files


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    files = _project_files()
    assert len(files) > 100 and ROOT / "scheduler.yaml" in files  # the walk sees the project
    offenders = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offenders += [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                      if OUTSIDE.search(line) and path != Path(__file__)]
    assert offenders == []


def test_install_script_installs_into_the_project_virtualenv_and_says_so() -> None:
    # the first hour (issue 16, point 12): never the machine's own interpreter
    script = (ROOT / "scripts" / "install.sh").read_text()
    installs = [line.strip() for line in script.splitlines()
                if "install" in line and ("pip" in line or "uv" in line) and not line.strip().startswith("#")]
    assert installs, "the walk found no install command"
    for line in installs:
        assert '"${pip[@]}"' in line or '"$venv/bin/uv"' in line, line
    assert 'pip=("$venv/bin/python" -m pip' in script
    assert 'echo "installed scheduler-reconciler (editable, with the test extra) into $venv/"' in script
