"""The tests that run external tools pass with the minimal PATH that CI gives them (issue 24).

A subset that runs every project-installed and system tool the suite looks up (promtool,
kubernetes-validate, hadolint, Debian's kubectl, node with the actions validator, bash) is run again in
a new interpreter from this checkout's virtualenv, with `env -i` and only the system directories on PATH: not the virtualenv's bin/, not /usr/local/bin, not
~/.local/bin. A test that finds a tool through PATH instead of where it was installed fails here first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBSET = [
    "tests/unit/test_alert_rules.py",
    "tests/integration/shipping/test_container.py::test_dockerfile_passes_hadolint",
    "tests/integration/shipping/test_container.py::test_kubernetes_manifests_validate_offline",
    "tests/gitops/test_kustomize.py::test_every_rendered_object_is_valid",
    "tests/gitops/test_workflows.py::test_the_validator_rejects_a_broken_file",
    "tests/unit/test_shell_completion.py::test_bash_itself_completes_through_the_generated_script",
]


def test_tool_using_tests_pass_with_only_the_system_path(tmp_path: Path) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
