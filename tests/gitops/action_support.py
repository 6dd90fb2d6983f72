"""Running action/main.py as the composite action's step does: a subprocess with INPUT_* and GITHUB_*
variables, the system interpreter (the module is standard library only) and the real `reconcile`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.gitops.fake_github import REPO, TOKEN, FakeGitHub

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3: no third-party package, as on a runner
RECONCILE = str(Path(sys.executable).parent / "reconcile")
SECRETS_ENV = {
    "SUPABASE_URL": "https://action-marker-url-3c71.example.test",
    "SUPABASE_SERVICE_ROLE_KEY": "action-marker-service-role-58af02",
    "CRON_SECRET": "action-marker-cron-secret-9e4b17",
}
WORKFLOW_ID = 4242


@dataclass
class Step:
    code: int
    stdout: str
    outputs: dict[str, str]
    summary: str


def run_action(fake: FakeGitHub, work: Path, url: str, inputs: dict[str, str], *, pull_request: int | None = None,
               sha: str = "0" * 40, run_id: int = 1, env: dict[str, str] | None = None) -> Step:
    """One run of the action's step in `work` (the checkout), against database `url`."""
    runner = work.parent / f"runner-{run_id}"
    runner.mkdir(exist_ok=True)
    event = runner / "event.json"
    pull = {"number": pull_request, "head": {"sha": f"head{pull_request}" + "0" * 30}}
    event.write_text(json.dumps({"pull_request": pull} if pull_request else {}))
    output, summary = runner / "output", runner / "summary"
    variables = {
        "PATH": "/usr/bin:/bin", "HOME": str(runner), "LANG": "C.UTF-8",
        "DATABASE_URL": url, **SECRETS_ENV, "RECONCILE": RECONCILE, "RUNNER_TEMP": str(runner),
        "GITHUB_API_URL": fake.url, "GITHUB_SERVER_URL": "https://github.test", "GITHUB_REPOSITORY": REPO,
        "GITHUB_RUN_ID": str(run_id), "GITHUB_SHA": sha, "GITHUB_EVENT_PATH": str(event),
        "GITHUB_EVENT_NAME": "pull_request" if pull_request else "push",
        "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), "INPUT_GITHUB_TOKEN": TOKEN,
        **{f"INPUT_{k.upper().replace('-', '_')}": v for k, v in inputs.items()}, **(env or {}),
    }
    result = subprocess.run([SYSTEM_PYTHON, str(ROOT / "action" / "main.py")], capture_output=True, text=True,
                            env=variables, cwd=work, timeout=120)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines()) if output.exists() else {}
    return Step(result.returncode, result.stdout + result.stderr, outputs,
                summary.read_text() if summary.exists() else "")
