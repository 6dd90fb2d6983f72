"""Rendering kustomizations with Debian's kubectl (kustomize v2.0.3) and validating Kubernetes objects
offline: built-in kinds with kubernetes-validate, custom resources against the CRD schemas in crds/."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.gitops.tool_paths import kubectl
from tests.tools import venv_tool

CRDS = {(s["apiVersion"], s["kind"]): s["openAPIV3Schema"]
        for s in (yaml.safe_load(p.read_text()) for p in sorted((Path(__file__).parent / "crds").glob("*.yaml")))}


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def problems(docs: list[dict[str, Any]], tmp: Path) -> list[str]:
    """Every validation error of these objects (empty when all are valid); an unknown kind is one."""
    found, builtin = [], []
    for doc in docs:
        schema = CRDS.get((doc.get("apiVersion"), doc.get("kind")))
        if schema is None and "." in doc.get("apiVersion", "").split("/")[0] and "k8s.io" not in doc["apiVersion"]:
            found.append(f"{doc['kind']} {doc['apiVersion']}: no CRD schema in tests/gitops/crds/")
        elif schema is not None:
            found += [f"{doc['kind']}/{doc['metadata'].get('name')}: {e.json_path}: {e.message}"
                      for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
        else:
            builtin.append(doc)
    if builtin:
        path = tmp / f"builtin-{len(list(tmp.glob('builtin-*')))}.yaml"
        path.write_text(yaml.safe_dump_all(builtin))
        result = subprocess.run([venv_tool("kubernetes-validate"), "--strict", str(path)], capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            found.append(result.stdout + result.stderr)
    return found


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]
