"""`reconcile validate FILE...` (each file on its own, as pre-commit passes them), `validate --targets
FILE...` and `reconcile schema --check FILE`: the modes the pre-commit hooks run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.manifest import schema_command, validate_command

ROOT = Path(__file__).resolve().parents[2]
GOOD_TARGETS = "version: 1\ntargets:\n  - name: alpha\n    database_url: {from_env: ALPHA_URL}\n"


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def test_each_file_is_validated_on_its_own_not_overlaid(tmp_path: Path) -> None:
    full = str(ROOT / "scheduler.yaml")
    # alone, this one declares no secrets: overlaid over scheduler.yaml it would be valid, on its own not
    overlay = _write(tmp_path, "overlay.yaml", "version: 1\njobs:\n  - name: x\n    schedule: '*/5 * * * *'\n")
    overlaid = CliRunner().invoke(validate_command, ["-f", full, "-f", overlay])
    each = CliRunner().invoke(validate_command, [full, overlay])
    assert each.exit_code == 1
    assert each.stdout.splitlines()[0] == f"{full}: 3 extensions, 3 secrets, 13 jobs, 1 trigger: valid"
    assert each.stderr and all(line.startswith(f"error: {overlay}:") for line in each.stderr.splitlines())
    assert overlaid.stdout != each.stdout


def test_every_files_problems_are_reported_with_their_lines(tmp_path: Path) -> None:
    bad = "version: 1\njobs:\n  - name: nightly\n    schedule: '61 * * * *'\n"
    first, second = _write(tmp_path, "a.yaml", bad), _write(tmp_path, "b.yaml", "version: 2\n")
    result = CliRunner().invoke(validate_command, [first, second])
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"error: {first}:4:") for line in lines), lines
    assert any(line.startswith(f"error: {second}:1:") for line in lines), lines


def test_all_good_files_pass(tmp_path: Path) -> None:
    full = str(ROOT / "scheduler.yaml")
    result = CliRunner().invoke(validate_command, [full, full])
    assert result.exit_code == 0 and result.stdout.count(": valid\n") == 2 and result.stderr == ""


def test_targets_files_are_validated_with_targets(tmp_path: Path) -> None:
    good = _write(tmp_path, "targets.yaml", GOOD_TARGETS)
    bad = _write(tmp_path, "targets-bad.yaml", GOOD_TARGETS.replace("name: alpha", "nmae: alpha"))
    result = CliRunner().invoke(validate_command, ["--targets", good, bad])
    assert result.exit_code == 1
    assert result.stdout == f"{good}: 1 target, 0 generators: valid\n"
    assert result.stderr.startswith(f"error: {bad}:3:")
    example = CliRunner().invoke(validate_command, ["--targets", str(ROOT / "examples/fleet/targets.yaml")])
    assert example.exit_code == 0 and "2 targets, 2 generators: valid" in example.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["-f", "scheduler.yaml", "other.yaml"], "with -f (overlaid into one) or as FILE arguments"),
    (["--targets", "-f", "scheduler.yaml"], "--targets checks FILE arguments, not -f files"),
    (["--targets", "--show-next", "2", "t.yaml"], "--show-next goes with manifests"),
], ids=["f-and-arguments", "targets-and-f", "targets-and-show-next"])
def test_mixing_the_modes_is_a_usage_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(validate_command, args)
    assert result.exit_code == 1 and message in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(("flag", "file"), [([], "scheduler.schema.json"), (["--targets"], "targets.schema.json")])
def test_schema_check_passes_the_kept_copy_and_a_reformatted_one(tmp_path: Path, flag: list[str], file: str) -> None:
    assert CliRunner().invoke(schema_command, [*flag, "--check", str(ROOT / file)]).exit_code == 0
    reformatted = _write(tmp_path, file, json.dumps(json.loads((ROOT / file).read_text())))
    result = CliRunner().invoke(schema_command, [*flag, "--check", reformatted])
    assert result.exit_code == 0 and result.stdout == f"{reformatted}: up to date\n"


def test_schema_check_fails_a_stale_or_missing_copy(tmp_path: Path) -> None:
    schema = json.loads((ROOT / "scheduler.schema.json").read_text())
    stale = _write(tmp_path, "scheduler.schema.json", json.dumps({**schema, "title": "older"}))
    result = CliRunner().invoke(schema_command, ["--check", stale])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (f"error: {stale} is out of date with this reconciler's schema (regenerate it: "
                             f"reconcile schema > {stale})\n")
    targets = CliRunner().invoke(schema_command, ["--targets", "--check", str(ROOT / "scheduler.schema.json")])
    assert targets.exit_code == 1 and "reconcile schema --targets >" in targets.stderr
    missing = CliRunner().invoke(schema_command, ["--check", str(tmp_path / "none.json")])
    assert missing.exit_code == 1 and "cannot read it" in missing.stderr
