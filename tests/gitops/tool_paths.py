"""The tools of the GitOps tests, where scripts/install.sh puts them (never looked up on PATH).

- the GitHub Actions validator: npm's @action-validator/cli in the project's .tools/node_modules/, run by
  Debian's Node.js;
- kubectl with kustomize v2.0.3: Debian's kubernetes-client, at /usr/bin/kubectl, or unpacked into
  .tools/kubernetes-client/ where another package owns /usr/bin/kubectl.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.tools import system_tool

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"


def action_validator() -> list[str]:
    package = TOOLS / "node_modules" / "@action-validator" / "cli"
    if not (package / "package.json").is_file():
        pytest.fail(f"{package} is missing: bash scripts/install.sh installs it with npm", pytrace=False)
    bin_entry = json.loads((package / "package.json").read_text())["bin"]
    script = bin_entry if isinstance(bin_entry, str) else next(iter(bin_entry.values()))
    return [system_tool("/usr/bin/node", "nodejs"), str(package / script)]


def kubectl() -> str:
    unpacked = TOOLS / "kubernetes-client" / "usr" / "bin" / "kubectl"
    exe = str(unpacked) if unpacked.is_file() else system_tool("/usr/bin/kubectl", "kubernetes-client")
    version = subprocess.run([exe, "version", "--client", "--short"], capture_output=True, text=True).stdout
    if "v1.20." not in version:
        pytest.fail(f"{exe} is {version.strip()!r}, not Debian's kubernetes-client 1.20 (kustomize v2.0.3); "
                    "bash scripts/install.sh unpacks that one into .tools/", pytrace=False)
    return exe
