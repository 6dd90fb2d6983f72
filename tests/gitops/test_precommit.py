"""The pre-commit hooks (.pre-commit-hooks.yaml) run by the real pre-commit: `try-repo` against a
throwaway git repository holding good and broken manifests, a targets file and kept schema copies.

pre-commit installs this checkout into a virtualenv of its own (language: python) once per module: the
checkout is snapshotted into one commit first, so every try-repo call reuses that environment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.gitops.tool_paths import ROOT
from tests.tools import system_tool, venv_tool

GIT = "/usr/bin/git"
BROKEN = """version: 1
jobs:
  - name: nightly
    schedule: "61 * * * *"
    command: select 1
"""


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run([system_tool(GIT, "git"), "-c", "user.name=t", "-c", "user.email=t@example.test",
                             "-c", "commit.gpgsign=false", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This checkout as it is now (tracked and new files, not ignored ones), as one commit."""
    copy = tmp_path_factory.mktemp("hooks-repo")
    for name in _git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0"):
        if name and (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    _git(copy, "init", "-q")
    _git(copy, "add", "-A")
    _git(copy, "commit", "-q", "-m", "snapshot")
    return copy, _git(copy, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    return repo


def _try_repo(snapshot: tuple[Path, str], home: Path, repo: Path, hook: str) -> subprocess.CompletedProcess[str]:
    path, rev = snapshot
    return subprocess.run([venv_tool("pre-commit"), "try-repo", str(path), hook, "--ref", rev, "--all-files",
                           "--color", "never"], cwd=repo, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
                               "PRE_COMMIT_HOME": str(home)})


def test_validate_passes_a_good_manifest_and_fails_a_broken_one_with_its_line(snapshot, home, tmp_path):
    repo = _project(tmp_path, {"scheduler.yaml": (ROOT / "scheduler.yaml").read_text(),
                               "staging/scheduler-broken.yaml": BROKEN})
    result = _try_repo(snapshot, home, repo, "reconcile-validate")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "reconcile validate" in out and "Failed" in out
    assert "scheduler.yaml: 3 extensions, 3 secrets, 13 jobs, 1 trigger: valid" in out
    assert "error: staging/scheduler-broken.yaml:4:" in out and "61" in out
    (repo / "staging/scheduler-broken.yaml").unlink()
    _git(repo, "add", "-A")
    passed = _try_repo(snapshot, home, repo, "reconcile-validate")
    assert passed.returncode == 0 and "Passed" in passed.stdout, passed.stdout + passed.stderr


def test_validate_targets_checks_targets_files(snapshot, home, tmp_path):
    good = "version: 1\ntargets:\n  - name: alpha\n    database_url: {from_env: ALPHA_URL}\n"
    repo = _project(tmp_path, {"targets.yaml": good, "targets-broken.yaml": good.replace("name: alpha", "nmae: alpha")})
    result = _try_repo(snapshot, home, repo, "reconcile-validate-targets")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "targets.yaml: 1 target, 0 generators: valid" in result.stdout
    assert "error: targets-broken.yaml:3:" in result.stdout


def test_the_schema_hooks_fail_on_a_stale_copy(snapshot, home, tmp_path):
    manifest_schema = json.loads((ROOT / "scheduler.schema.json").read_text())
    stale = {**manifest_schema, "title": "an older reconciler's schema"}
    repo = _project(tmp_path, {"scheduler.schema.json": json.dumps(manifest_schema),  # reformatted: still fresh
                               "targets.schema.json": (ROOT / "targets.schema.json").read_text()})
    for hook in ("reconcile-schema", "reconcile-targets-schema"):
        fresh = _try_repo(snapshot, home, repo, hook)
        assert fresh.returncode == 0 and "Passed" in fresh.stdout, fresh.stdout + fresh.stderr
    (repo / "scheduler.schema.json").write_text(json.dumps(stale))
    _git(repo, "add", "-A")
    result = _try_repo(snapshot, home, repo, "reconcile-schema")
    assert result.returncode == 1
    assert ("error: scheduler.schema.json is out of date with this reconciler's schema (regenerate it: "
            "reconcile schema > scheduler.schema.json)") in result.stdout
