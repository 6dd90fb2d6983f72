"""action.yml's own shell steps, run as a runner would run them: the install step makes a virtualenv
with the action's checkout installed (the `version` input empty), and the run step validates with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.gitops.action_support import SYSTEM_PYTHON
from tests.gitops.tool_paths import ROOT
from tests.tools import system_tool


def _step(action: dict, name: str) -> dict:
    return next(s for s in action["runs"]["steps"] if s.get("name") == name or s.get("id") == name)


def test_the_install_and_run_steps_work_from_the_actions_checkout(tmp_path: Path):
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    runner = tmp_path / "runner"
    runner.mkdir()
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "RUNNER_TEMP": str(runner),
            "GITHUB_ACTION_PATH": str(ROOT), "PYTHON": SYSTEM_PYTHON}
    bash = system_tool("/bin/bash", "bash")
    install = subprocess.run([bash, "-e", "-c", _step(action, "Install scheduler-reconciler")["run"]],
                             env={**base, "VERSION": ""}, capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    assert install.stdout.strip().endswith("reconcile, version 0.1.0")
    reconcile = runner / "scheduler-reconciler-venv" / "bin" / "reconcile"
    assert reconcile.is_file()
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "scheduler.yaml").write_text((ROOT / "scheduler.yaml").read_text())
    output = runner / "output"
    run = _step(action, "run")
    assert run["env"]["RECONCILE"] == "${{ runner.temp }}/scheduler-reconciler-venv/bin/reconcile"
    step = subprocess.run([bash, "-e", "-c", run["run"]], cwd=checkout, capture_output=True, text=True, timeout=120,
                          env={**base, "RECONCILE": str(reconcile), "INPUT_COMMAND": "validate",
                               "GITHUB_OUTPUT": str(output)})
    assert step.returncode == 0, step.stdout + step.stderr
    assert "scheduler.yaml: 3 extensions, 3 secrets, 13 jobs, 1 trigger: valid" in step.stdout
    assert output.read_text() == "exit-code=0\n"
