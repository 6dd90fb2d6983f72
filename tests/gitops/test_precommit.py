"""The pre-commit hooks (.pre-commit-hooks.yaml) run by the real pre-commit: `try-repo` against a
throwaway git repository holding good and broken manifests, a targets file and kept schema copies.

try-repo installs this checkout into a fresh virtualenv of its own (language: python) on every call, so
there are two calls: a repository where every hook passes, and one where each hook has something to fail.
The checkout is snapshotted into one commit first (tracked and new files), as try-repo needs a commit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.gitops.tool_paths import ROOT
from tests.tools import system_tool, venv_tool

GIT = "/usr/bin/git"
# pip's own cache (wheels of the dependencies) and the machine's pip settings (index, certificates) are
# kept: the hooks' environment is still installed anew by every call, only without downloading again.
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
PIP_SETTINGS = {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT",
                "PIP_CONFIG_FILE", "PIP_TRUSTED_HOST"}
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


def _project(base: Path, files: dict[str, str]) -> Path:
    repo = base / "project"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    return repo


def _try_repo(snapshot: tuple[Path, str], repo: Path) -> subprocess.CompletedProcess[str]:
    """Every hook of the repository on every file (try-repo installs the hooks' environment anew each time)."""
    path, rev = snapshot
    home = repo.parent / "home"
    return subprocess.run([venv_tool("pre-commit"), "try-repo", str(path), "--ref", rev, "--all-files",
                           "--color", "never"], cwd=repo, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
                               "PRE_COMMIT_HOME": str(home), "PIP_CACHE_DIR": PIP_CACHE,
                               **{k: v for k, v in os.environ.items() if k in PIP_SETTINGS}})


def _hook_results(stdout: str) -> dict[str, str]:
    """`name.....Passed` lines: the hook's name to Passed, Failed or Skipped."""
    found = re.findall(r"^(.+?)\.{3,}\s*(?:\(no files to check\))?(Passed|Failed|Skipped)$", stdout, re.M)
    return dict(found)


MANIFEST_SCHEMA = json.loads((ROOT / "scheduler.schema.json").read_text())
GOOD_TARGETS = "version: 1\ntargets:\n  - name: alpha\n    database_url: {from_env: ALPHA_URL}\n"
GOOD = {
    "scheduler.yaml": (ROOT / "scheduler.yaml").read_text(),
    "targets.yaml": GOOD_TARGETS,
    "scheduler.schema.json": json.dumps(MANIFEST_SCHEMA),  # reformatted, still the same schema
    "targets.schema.json": (ROOT / "targets.schema.json").read_text(),
}
BROKEN_TOO = {
    **GOOD,
    "staging/scheduler-broken.yaml": BROKEN,
    "targets-broken.yaml": GOOD_TARGETS.replace("name: alpha", "nmae: alpha"),
    "scheduler.schema.json": json.dumps({**MANIFEST_SCHEMA, "title": "an older reconciler's schema"}),
}


@pytest.fixture(scope="module")
def broken_run(snapshot, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return _try_repo(snapshot, _project(tmp_path_factory.mktemp("broken"), BROKEN_TOO))


def test_every_hook_passes_a_good_repository(snapshot, tmp_path):
    result = _try_repo(snapshot, _project(tmp_path, GOOD))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _hook_results(result.stdout) == {
        "reconcile validate": "Passed", "reconcile validate --targets": "Passed",
        "scheduler.schema.json is up to date": "Passed", "targets.schema.json is up to date": "Passed"}


def test_validate_fails_a_broken_manifest_with_its_line_and_checks_each_file(broken_run):
    assert broken_run.returncode == 1
    assert _hook_results(broken_run.stdout)["reconcile validate"] == "Failed"
    assert "scheduler.yaml: 3 extensions, 3 secrets, 13 jobs, 1 trigger: valid" in broken_run.stdout
    assert re.search(r"^error: staging/scheduler-broken\.yaml:4:\d+: .*61", broken_run.stdout, re.M), broken_run.stdout


def test_validate_targets_fails_a_broken_targets_file_with_its_line(broken_run):
    assert _hook_results(broken_run.stdout)["reconcile validate --targets"] == "Failed"
    assert "targets.yaml: 1 target, 0 generators: valid" in broken_run.stdout
    assert re.search(r"^error: targets-broken\.yaml:3:", broken_run.stdout, re.M)


def test_the_schema_hook_fails_a_stale_copy_and_passes_a_fresh_one(broken_run):
    results = _hook_results(broken_run.stdout)
    assert results["scheduler.schema.json is up to date"] == "Failed"
    assert results["targets.schema.json is up to date"] == "Passed"
    assert ("error: scheduler.schema.json is out of date with this reconciler's schema (regenerate it: "
            "reconcile schema > scheduler.schema.json)") in broken_run.stdout
