"""`reconcile --targets FILE`: plan, apply or watch the manifest on every target of a fleet.

An edge, wired from cli/main.py's `main` (`fleet_options` adds the options, `fleet_command` runs when
--targets or RECONCILE_TARGETS is given). It reads the targets file (reconciler.fleet.targets_file),
keeps the targets named by --target, runs them (`runner.run_fleet`) and prints a summary table then each
target's plan, or one JSON document (docs/plan-json.md, "Fleet"). Exit codes: 1 when a target or a
generator failed, else 2 with --detailed-exitcode when a plan changes something, else 0. With --watch it
hands over to the fleet's controller (reconciler.fleet.controller). Module-level imports stay light:
cli/main.py imports this module on every command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from reconciler.cli.support import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Duration

if TYPE_CHECKING:
    from reconciler.fleet.runner import TargetResult
    from reconciler.fleet.target import Target
    from reconciler.fleet.targets_file import TargetList

TARGETS_VARIABLE = "RECONCILE_TARGETS"
FORMAT_VERSION = "1"  # a string, as the single-target plan document's

_OPTIONS = (
    click.option("--targets", "targets_file", envvar=TARGETS_VARIABLE, metavar="FILE",
                 help=f"Fleet mode: reconcile every target of this targets.yaml (or ${TARGETS_VARIABLE}); "
                      "see docs/fleet-operations.md."),
    click.option("--target", "target_names", multiple=True, metavar="NAME",
                 help="With --targets: only this target (repeatable)."),
    click.option("--parallel", type=click.IntRange(1, 256), default=4, show_default=True, metavar="N",
                 help="With --targets: how many targets run at once."),
    click.option("--connect-timeout", type=click.IntRange(2, 300), default=5, show_default=True, metavar="SECONDS",
                 help="With --targets: give up on a target that has not accepted the connection by then "
                      "(PostgreSQL's minimum is 2)."),
    click.option("--refresh-interval", type=Duration(), default="5m", show_default=True, metavar="DURATION",
                 help="With --watch --targets: how often the generators are asked for targets again."),
)


def fleet_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The fleet's options, for cli/main.py's `main`."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def wanted(params: Mapping[str, Any]) -> bool:
    """True when the command line (or the environment) asks for fleet mode."""
    return bool(params.get("targets_file") or params.get("target_names"))


def fleet_command(ctx: click.Context, environ: Mapping[str, str]) -> int:
    """Run `reconcile --targets ...` with the main command's parameters."""
    p = ctx.params
    _check_usage(ctx)
    if p["watch"]:
        from reconciler.fleet.controller import FleetController, FleetSettings

        settings = FleetSettings(
            targets_file=p["targets_file"], files=tuple(p["files"]), environ=environ, apply=p["apply_plan"] == "-",
            prune=p["prune"], interval=p["interval"], refresh_interval=p["refresh_interval"],
            parallel=p["parallel"], selected=tuple(p["target_names"]), http_host=p["http_host"],
            http_port=p["http_port"], lock_timeout=p["lock_timeout"], statement_timeout=p["statement_timeout"],
            connect_timeout=p["connect_timeout"], verify_interval=p["verify_interval"])
        return FleetController(settings).run()
    listing = select(read(p["targets_file"], environ), p["target_names"])
    return plan_or_apply(listing, tuple(p["files"]), environ, apply=p["apply_plan"] == "-", fmt=p["fmt"],
                         verbose=p["verbose"], detailed=p["detailed_exitcode"], prune=p["prune"],
                         parallel=p["parallel"], lock_timeout=p["lock_timeout"],
                         statement_timeout=p["statement_timeout"], connect_timeout=p["connect_timeout"])


def _check_usage(ctx: click.Context) -> None:
    p = ctx.params
    if not p["targets_file"]:
        raise click.UsageError("--target goes with --targets FILE")
    given = ctx.get_parameter_source("database_url") is ParameterSource.COMMANDLINE
    refused = [name for name, used in (
        ("--database-url", given), ("--out", bool(p["out_file"])), ("--rotate", bool(p["rotate"])),
        ("a saved plan file", p["apply_plan"] not in (None, "-")),
        ("--notify", bool(p["notify"])), ("--notify-file", bool(p["notify_files"]))) if used]
    if refused:
        raise click.UsageError(f"{', '.join(refused)} cannot be used with --targets (each target names its own "
                               "database; plans are per target)")
    if p["dry_run"] and p["apply_plan"] is not None:
        raise click.UsageError("--dry-run and --apply are mutually exclusive")


def read(path: str, environ: Mapping[str, str]) -> TargetList:
    from reconciler.fleet.targets_file import read_targets

    return read_targets(path, environ)


def select(listing: TargetList, names: Sequence[str]) -> TargetList:
    """Only the targets named (all when none); an unknown name is a usage error listing the known ones."""
    if not names:
        return listing
    known = {t.name for t in listing.targets}
    unknown = sorted(set(names) - known)
    if unknown:
        raise click.UsageError(f"--target {', '.join(unknown)}: no such target (known: "
                               f"{', '.join(sorted(known)) or 'none'})")
    return dataclasses.replace(listing, targets=tuple(t for t in listing.targets if t.name in set(names)))


def plan_or_apply(listing: TargetList, files: Sequence[str], environ: Mapping[str, str], *, apply: bool, fmt: str,
                  verbose: bool, detailed: bool, prune: bool, parallel: int, lock_timeout: float | None,
                  statement_timeout: float, connect_timeout: int = 5) -> int:
    from reconciler.fleet.runner import run_fleet
    from reconciler.kinds.base import PlanOptions

    results = run_fleet(listing.targets, files, environ, PlanOptions(prune=prune), apply=apply, parallel=parallel,
                        lock_timeout=lock_timeout, statement_timeout=statement_timeout, connect_timeout=connect_timeout)
    by_name = {t.name: t for t in listing.targets}
    if fmt == "json":
        click.echo(json.dumps(document(results, listing.errors, apply=apply, verbose=verbose,
                                       databases=databases(listing.targets, environ)), indent=2, ensure_ascii=False))
    elif fmt == "markdown":
        click.echo(markdown(results, listing.errors, by_name, files, apply=apply, verbose=verbose,
                            databases=databases(listing.targets, environ)), nl=False)
    else:
        click.echo(text(results, by_name, files, apply=apply, verbose=verbose), nl=False)
    for note in listing.notes:
        click.echo(f"note: {note}", err=True)
    for error in listing.errors:
        click.echo(f"error: {error}", err=True)
    for result in results:
        if result.error is not None:
            click.echo(f"error: target {result.target}: {result.error}", err=True)
        if result.corrections:
            from reconciler import render

            click.echo(f"warning: target {result.target}: changed by someone else during the apply, corrected in "
                       f"the same transaction: {render.listed(result.corrections)}", err=True)
    return exit_code(results, listing.errors, detailed=detailed and not apply)


def exit_code(results: Sequence[TargetResult], generator_errors: Sequence[str], *, detailed: bool) -> int:
    if generator_errors or any(r.error is not None for r in results):
        return EXIT_ERROR
    if detailed and any(r.plan is not None and (r.plan.changes_scheduler or r.plan.blocking_findings) for r in results):
        return EXIT_CHANGES
    return EXIT_OK


def _manifest_name(target: Target | None, files: Sequence[str]) -> str:
    from reconciler.fleet.runner import target_files

    names = target_files(files, target) if target is not None else files or ["scheduler.yaml"]
    return ", ".join(os.path.normpath(name) for name in names)


def databases(targets: Sequence[Target], environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Each target's database (host, port, dbname; never a credential), for its plan to name; a target whose
    URL cannot be had is left out (its error says why)."""
    from reconciler.engine.conninfo import database_identity
    from reconciler.errors import ReconcilerError

    out = {}
    for target in targets:
        try:
            identity = database_identity(target.url(environ).reveal())
        except ReconcilerError:
            continue
        if identity is not None:
            out[target.name] = identity
    return out


#: The longest error the summary table shows in its cell; the whole message follows the table.
SHORT_ERROR = 60


@dataclass(frozen=True)
class TargetStatus:
    """How one target's run reads in the fleet's outputs: `word` (ok, applied, in sync, error, pending), the
    summary table's one-line `cell`, and the full message printed below the table (errors only)."""

    word: str
    cell: str
    detail: str | None = None


def target_status(result: TargetResult, *, apply: bool) -> TargetStatus:
    error = result.error
    if error is not None:
        line = error.splitlines()[0] if error else error
        short = line if len(line) <= SHORT_ERROR else line[:SHORT_ERROR].rsplit(" ", 1)[0] + " …"
        return TargetStatus("error", f"error: {short}", error)
    if result.plan is None:  # not run (yet): nothing is wrong with it
        return TargetStatus("pending", "pending")
    if apply:
        return (TargetStatus("applied", f"applied (history #{result.history_id})") if result.applied
                else TargetStatus("in sync", "in sync"))
    return TargetStatus("ok", "ok")


def _counts_line(results: Sequence[TargetResult], statuses: Sequence[TargetStatus], *, apply: bool) -> str:
    words = [s.word for s in statuses]
    if apply:
        applied = sum(r.changes for r, s in zip(results, statuses, strict=True) if s.word == "applied")
        parts = [f"{words.count('applied')} applied ({applied} change(s))", f"{words.count('in sync')} in sync"]
    else:
        parts = [f"{sum(r.plan is not None and not r.plan.is_empty for r in results)} with changes"]
    parts.append(f"{words.count('error')} failed")
    if words.count("pending"):
        parts.append(f"{words.count('pending')} pending")
    return f"{len(results)} target(s): {', '.join(parts)}."


def summary_table(results: Sequence[TargetResult], *, apply: bool = False) -> str:
    """One row per target: changes, findings and the result in one short line (never a secret); the count;
    then each error in full."""
    statuses = [target_status(r, apply=apply) for r in results]
    rows = [("TARGET", "CHANGES", "FINDINGS", "RESULT")]
    for r, status in zip(results, statuses, strict=True):
        rows.append((r.target, "-" if r.plan is None else str(r.changes), "-" if r.plan is None else str(r.findings),
                     status.cell))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip()
             for row in rows]
    lines += ["", _counts_line(results, statuses, apply=apply)]
    failed = [(r.target, s.detail) for r, s in zip(results, statuses, strict=True) if s.detail is not None]
    if failed:
        lines += ["", "Errors:", *(f"  {name}: {detail}" for name, detail in failed)]
    return "\n".join(lines) + "\n"


def text(results: Sequence[TargetResult], targets: Mapping[str, Target], files: Sequence[str], *, apply: bool,
         verbose: bool) -> str:
    from reconciler import render

    parts = [summary_table(results, apply=apply)]
    for r in results:
        if r.plan is None:
            continue
        parts.append(f"\n== target {r.target} ==\n")
        parts.append(render.to_text(r.plan, verbose=verbose, colour=sys.stdout.isatty(),
                                    manifest_name=_manifest_name(targets.get(r.target), files)))
        if apply and r.applied:
            parts.append(f"Apply complete (history #{r.history_id}).\n")
    return "".join(parts)


def document(results: Sequence[TargetResult], generator_errors: Sequence[str], *, apply: bool,
             verbose: bool, databases: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The fleet's JSON document (docs/plan-json.md, "Fleet"): each target's plan document, by name."""
    from reconciler import render

    return {
        "format_version": FORMAT_VERSION,
        "mode": "apply" if apply else "plan",
        "targets": {
            r.target: {
                "plan": render.to_data(r.plan, verbose=verbose, database=(databases or {}).get(r.target))
                if r.plan is not None else None,
                "error": r.error,
                "status": target_status(r, apply=apply).word,
                "retryable": r.retryable if r.error else None,
                "changes": r.changes,
                "findings": r.findings,
                "applied": r.applied,
                "history_id": r.history_id,
                "duration_ms": round(r.duration * 1000, 1),
            }
            for r in results
        },
        "errors": list(generator_errors),
    }


def markdown(results: Sequence[TargetResult], generator_errors: Sequence[str], targets: Mapping[str, Target],
             files: Sequence[str], *, apply: bool, verbose: bool,
             databases: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    from reconciler import render
    from reconciler.engine.conninfo import database_words

    statuses = [target_status(r, apply=apply) for r in results]
    lines = ["## Reconciler fleet " + ("apply" if apply else "plan"), "", "| target | changes | findings | result |",
             "| --- | ---: | ---: | --- |"]
    for r, status in zip(results, statuses, strict=True):
        lines.append(f"| `{r.target}` | {'-' if r.plan is None else r.changes} | "
                     f"{'-' if r.plan is None else r.findings} | {_md_cell(status.cell)} |")
    lines += ["", _counts_line(results, statuses, apply=apply)]
    lines += [f"\n**`{r.target}`**: {_md_cell(s.detail)}" for r, s in zip(results, statuses, strict=True)
              if s.detail is not None]
    lines += [f"\n**generator failed**: {e}" for e in generator_errors]
    parts = ["\n".join(lines) + "\n"]
    for r in results:
        if r.plan is not None:
            identity = (databases or {}).get(r.target)
            parts.append("\n" + render.to_markdown(r.plan, verbose=verbose, target=r.target,
                                                   manifest_name=_manifest_name(targets.get(r.target), files),
                                                   database=database_words(dict(identity)) if identity else None))
    return "".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
