"""action.yml and the example workflows pass the GitHub Actions validator (npm's @action-validator/cli),
the validator rejects broken ones, and the action's inputs and outputs meet action/main.py's."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.gitops.tool_paths import ROOT, action_validator

WORKFLOWS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "examples" / "gitops").glob("*.yml"))


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*action_validator(), str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", ["action.yml", *WORKFLOWS])
def test_the_action_and_the_examples_are_valid(path):
    result = _validate(ROOT / path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "text", "error"), [
    ("action.yml", "name: x\ndescription: y\nruns:\n  using: composite\n  steps:\n    - run: echo hi\n",
     "shell"),
    ("workflow.yml", "name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - usess: foo\n",
     "usess"),
], ids=["composite-step-without-shell", "misspelt-uses"])
def test_the_validator_rejects_a_broken_file(tmp_path, name, text, error):
    (tmp_path / name).write_text(text)
    result = _validate(tmp_path / name)
    assert result.returncode != 0 and error in result.stdout + result.stderr


def _action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def test_every_input_reaches_the_step_and_every_output_is_written():
    action = _action()
    run_step = next(s for s in action["runs"]["steps"] if s.get("id") == "run")
    passed = {k[len("INPUT_"):].lower().replace("_", "-") for k in run_step["env"] if k.startswith("INPUT_")}
    used_elsewhere = {"version", "python-version", "working-directory", "artifact-retention-days"}
    assert passed | used_elsewhere == set(action["inputs"])
    main = (ROOT / "action" / "main.py").read_text()
    for name in passed:
        variable = name.upper().replace("-", "_")
        assert f'"{variable}"' in main or f'"INPUT_{variable}"' in main, name
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
        assert re.search(rf'"{name}"', main), name


def test_the_example_plans_on_pull_requests_and_applies_on_push():
    workflow = yaml.safe_load((ROOT / "examples/gitops/reconcile.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    assert jobs["apply"]["if"] == "github.event_name == 'push'"
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as True

    def commands(job: str) -> list[str]:
        return [s["with"]["command"] for s in jobs[job]["steps"] if "scheduler-reconciler@" in s.get("uses", "")]

    assert commands("plan") == ["validate", "plan"] and commands("apply") == ["apply"]
    assert jobs["plan"]["permissions"]["pull-requests"] == "write"
    assert jobs["apply"]["permissions"]["actions"] == "read"
    assert jobs["apply"]["concurrency"]["cancel-in-progress"] is False
    assert not [s for job in jobs.values() for s in job["steps"] if "run" in s and "reconcile " in s["run"]]
