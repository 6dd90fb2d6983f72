"""`reconcile validate` and `reconcile schema`: the offline manifest commands.

Data flow: scheduler.yaml ──load_manifest──▶ Manifest ──▶ a summary line (validate) or the JSON Schema
(schema; `--targets` for targets.yaml's; `--check FILE` compares a kept copy). `validate FILE...` checks each
file on its own, `validate --targets FILE...` targets files (the pre-commit hooks). Neither touches a database or reads a secret source. The main click group (cli/main.py) registers
`validate_command` and `schema_command`; each also works as a standalone click command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from reconciler.cli.support import Command, file_option
from reconciler.cron import PG_CRON_1_4, PG_CRON_1_5, PG_CRON_1_6
from reconciler.errors import ManifestError, ManifestProblem, ReconcilerError
from reconciler.manifest import Manifest, load_manifest, manifest_json_schema

__all__ = ["schema_command", "summary_line", "validate_command"]

_CRON_VERSIONS = {f"{v[0]}.{v[1]}": v for v in (PG_CRON_1_4, PG_CRON_1_5, PG_CRON_1_6)}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary_line(manifest: Manifest, files: tuple[str, ...]) -> str:
    """`scheduler.yaml: 3 extensions, 3 secrets, 13 jobs, 1 trigger: valid`."""
    from reconciler import kinds

    declared = [(kind.name, kind.declared(manifest)) for kind in kinds.REGISTRY]
    counts = ", ".join(_count(n, name) for name, n in declared if n is not None)
    return f"{' + '.join(files)}: {counts}: valid"


def _parse_start(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 timestamp: {text!r}", param_hint="--start") from None
    return start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)


def _next_runs(schedule: str, start: datetime, count: int, version: tuple[int, int]) -> str:
    from reconciler import cron

    try:
        runs = cron.parse(schedule, version=version).next_runs(start, count)
    except (cron.CronError, ValueError, OverflowError):
        runs = []
    if not runs:
        return "(no upcoming runs)"
    return ", ".join(r.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") for r in runs)


@click.command("validate", cls=Command, short_help="Check the manifest offline.")
@file_option
@click.argument("each", nargs=-1, type=click.Path(dir_okay=False), metavar="[FILE]...")
@click.option("--targets", "as_targets", is_flag=True, default=False,
              help="The FILE arguments are targets files (fleet mode; default ./targets.yaml).")
@click.option(
    "--show-next",
    type=click.IntRange(1, 100),
    default=None,
    metavar="N",
    help="Also print the next N run times (UTC) of every schedule.",
)
@click.option(
    "--cron-version",
    type=click.Choice(sorted(_CRON_VERSIONS)),
    default="1.6",
    show_default=True,
    help="pg_cron version whose schedule dialect to validate against.",
)
@click.option("--start", default=None, hidden=True, help="Reference time for --show-next (tests).")
def validate_command(
    files: tuple[str, ...], each: tuple[str, ...], as_targets: bool, show_next: int | None, cron_version: str,
    start: str | None,
) -> None:
    """Check the manifest offline: syntax, types, schedules, references. Needs no database or secrets.

    Files given with -f are overlaid into one manifest; FILE arguments are checked each on its own (as
    pre-commit passes them), as targets files with --targets.
    """
    if files and (each or as_targets):
        raise click.UsageError("give manifest files with -f (overlaid into one) or as FILE arguments (each on "
                               "its own), not both" if each else "--targets checks FILE arguments, not -f files")
    if as_targets and show_next:
        raise click.UsageError("--show-next goes with manifests, not --targets")
    version = _CRON_VERSIONS[cron_version]  # click.Choice allows only these
    reference = _parse_start(start)
    if as_targets:
        _each(each or ("targets.yaml",), _validate_targets)
    elif each:
        _each(each, lambda path: _validate_manifest((path,), show_next, reference, version))
    else:
        _validate_manifest(files or ("scheduler.yaml",), show_next, reference, version)


def _each(paths: tuple[str, ...], validate: Callable[[str], None]) -> None:
    """Validate every file, then report every problem of all of them at once (one ManifestError)."""
    problems: list[ManifestProblem] = []
    for path in paths:
        try:
            validate(path)
        except ManifestError as e:
            problems.extend(e.problems)
    if problems:
        raise ManifestError(problems)


def _validate_manifest(files: tuple[str, ...], show_next: int | None, reference: datetime,
                       version: tuple[int, int]) -> None:
    manifest = load_manifest(list(files), cron_version=version)  # a ManifestError lists every problem
    click.echo(summary_line(manifest, files))
    for warning in manifest.warnings:
        click.echo(f"warning: {warning}")
    if show_next:
        click.echo(f"next {show_next} runs (UTC) after {reference.strftime('%Y-%m-%d %H:%M:%SZ')}:")
        from reconciler import kinds

        for kind in kinds.REGISTRY:
            for name, schedule, active in kind.schedules(manifest):
                runs = _next_runs(schedule, reference, show_next, version) if active else "inactive: no runs"
                click.echo(f"  {kind.name} {name} ({schedule}): {runs}")


def _validate_targets(path: str) -> None:
    from reconciler.fleet.targets_file import load_targets_file

    listing = load_targets_file(path)  # no generator runs: offline, like the manifest's check
    counts = f"{_count(len(listing.targets), 'target')}, {_count(len(listing.generators), 'generator')}"
    click.echo(f"{path}: {counts}: valid")


@click.command("schema", cls=Command, short_help="Print the manifest's JSON Schema.")
@click.option("--targets", "targets", is_flag=True, default=False,
              help="The schema of targets.yaml (fleet mode) instead of the manifest's.")
@click.option("--check", "check_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Instead of printing the schema, exit 1 when FILE differs from it (a pre-commit hook).")
def schema_command(targets: bool, check_file: str | None) -> None:
    """Print the manifest's JSON Schema, or with --targets the targets file's (for editors: `# yaml-language-server: $schema=...`)."""
    if targets:
        from reconciler.fleet.targets_models import targets_json_schema

        schema = targets_json_schema()
    else:
        schema = manifest_json_schema()
    if check_file is None:
        click.echo(json.dumps(schema, indent=2, ensure_ascii=False))
        return
    _check_schema_file(check_file, schema, "reconcile schema --targets" if targets else "reconcile schema")


def _check_schema_file(path: str, schema: dict[str, Any], command: str) -> None:
    """Compared as JSON values: a reformatted copy is not out of date, a changed field is."""
    regenerate = f"regenerate it: {command} > {path}"
    try:
        kept = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ReconcilerError(f"{path}: cannot read it: {e.strerror or e}", hint=regenerate) from None
    except ValueError as e:
        raise ReconcilerError(f"{path}: not JSON: {e}", hint=regenerate) from None
    if kept != schema:
        raise ReconcilerError(f"{path} is out of date with this reconciler's schema", hint=regenerate)
    click.echo(f"{path}: up to date")
