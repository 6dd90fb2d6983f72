"""Broken manifests (tests/manifests/broken/<case>.yaml) and the exact problems `reconcile validate` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.manifest import validate_command

BROKEN = Path(__file__).resolve().parents[1] / "manifests" / "broken"
CASES = sorted(p.stem for p in BROKEN.glob("*.yaml"))


def test_corpus_is_complete() -> None:
    assert len(CASES) >= 30
    for case in CASES:
        assert (BROKEN / f"{case}.expected").is_file(), f"{case}.expected is missing"


@pytest.mark.parametrize("case", CASES)
def test_broken_manifest(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    expected = (BROKEN / f"{case}.expected").read_text(encoding="utf-8")
    result = CliRunner().invoke(validate_command, ["-f", f"{case}.yaml"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr == expected
    assert "Traceback" not in result.stderr
    for line in result.stderr.splitlines():
        assert line.startswith(f"error: {case}.yaml"), line
