"""The `reconcile` command: plan (the default), apply, and the sub-commands around them.

This is an edge: it loads the manifest, resolves secrets from the environment (over an --env-file),
connects, and turns ReconcilerErrors into one line on stderr with an exit code. Exit codes: 0 success,
1 error (click's usage errors included), 2 with --detailed-exitcode when the plan changes the database (adopting alone does not), 3 lock held.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli import fleet as fleet_cli
from reconciler.cli.support import (
    EXIT_CHANGES,
    EXIT_OK,
    Command,
    Duration,
    Group,
    Port,
    database_url_option,
    env_file_option,
    environment,
    file_option,
    format_option,
    remember_env_file,
)
from reconciler.engine import session as run
from reconciler.errors import ReconcilerError, UnsafePlan
from reconciler.kinds.base import PlanOptions
from reconciler.util import logs
from reconciler.util.version import package_version

if TYPE_CHECKING:
    from reconciler.manifest import Manifest
    from reconciler.model import Plan


def _render(plan: Plan, fmt: str, verbose: bool, name: str, url: str | None = None) -> str:
    """The plan in `fmt`; JSON and Markdown name the database of `url` (never a credential)."""
    from reconciler import render
    from reconciler.engine.conninfo import database_identity, database_words

    identity = database_identity(url) if url is not None else None
    if fmt == "json":
        return render.to_json(plan, verbose=verbose, database=identity)
    if fmt == "markdown":
        return render.to_markdown(plan, verbose=verbose, manifest_name=name,
                                  database=database_words(identity) if identity is not None else None)
    return render.to_text(plan, verbose=verbose, colour=sys.stdout.isatty(), manifest_name=name)



@click.group(cls=Group, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scheduler-reconciler", prog_name="reconcile")
@click.option("--dry-run", "dry_run", is_flag=True, help="Print the plan and change nothing (the default).")
@click.option("--apply", "apply_plan", is_flag=False, flag_value="-", default=None, metavar="[PLAN.json]",
              help="Apply the plan; with a saved plan file, apply exactly that plan or refuse if stale.")
@file_option
@database_url_option
@env_file_option
@format_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan changes the database (adopting alone does not) or has blocking findings.")
@click.option("-v", "--verbose", is_flag=True, help="Also show objects that are already in sync.")
@click.option("--prune", is_flag=True, help="Apply the manifest's prune policies to managed objects no longer declared.")
@click.option("--rotate", multiple=True, metavar="SECRET", help="Generate a new value for this secret (repeatable).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, writable=True), help="With --dry-run: save the plan for --apply.")
@click.option("--lock-timeout", type=Duration(), default=None, metavar="SECONDS",
              help="Wait this long for another reconciler's lock (default: do not wait; exit 3).")
@click.option("--statement-timeout", type=Duration(), default=30.0, show_default=True, metavar="SECONDS",
              help="Cancel a statement (an apply's, or a plan's read) that runs longer than this (each wait for a "
                   "row or table lock stops after 10 s, or --lock-timeout).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="Default: warning; info with --watch.")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]), default="auto", show_default=True,
              help="Log lines as JSON, or in structlog's console format; auto: console on a terminal, else JSON.")
@click.option("--watch", is_flag=True, help="Run continuously: reconcile every --interval (with --apply) or report drift.")
@click.option("--interval", type=Duration(), default="60s", show_default=True, help="With --watch: time between cycles.")
@click.option("--http-port", type=Port(), default=8080, show_default=True, metavar="PORT",
              help="With --watch: port for /healthz, /readyz, /metrics (-1 disables).")
@click.option("--http-host", default="127.0.0.1", show_default=True,
              help="With --watch: address to listen on (0.0.0.0 in a container).")
@click.option("--verify-interval", type=Duration(), default=None, metavar="DURATION",
              help="With --watch: verify the pipeline this often (default: every cycle).")
@click.option("--notify", "notify", multiple=True, metavar="URL",
              help="With --watch: POST state changes as JSON (with a `text` field) to this webhook (repeatable). "
                   "The command line is public: give a secret URL (Slack's) in RECONCILE_NOTIFY_URLS or a file.")
@click.option("--notify-file", "notify_files", multiple=True, metavar="FILE",
              help="With --watch: webhook URLs, one a line, from this file (a mounted Secret; repeatable).")
@click.option("--notify-after", type=click.IntRange(1), default=3, show_default=True, metavar="N",
              help="With --watch: notify when this many cycles in a row failed.")
@fleet_cli.fleet_options
@click.pass_context
def main(ctx: click.Context, dry_run: bool, apply_plan: str | None, files: tuple[str, ...], database_url: str | None,
         env_file: str | None, fmt: str, detailed_exitcode: bool, verbose: bool, prune: bool, rotate: tuple[str, ...],
         out_file: str | None, lock_timeout: float | None, statement_timeout: float, log_level: str | None,
         log_format: str, watch: bool, interval: float, http_port: int, http_host: str,
         verify_interval: float | None, notify: tuple[str, ...], notify_files: tuple[str, ...], notify_after: int,
         **fleet: Any) -> int:
    """Keep pg_cron, pg_net, Vault secrets and scheduled_jobs exactly as scheduler.yaml declares.

    Without a sub-command: plan (--dry-run, the default) or --apply; --watch keeps doing it.
    """
    logs.configure(log_level or ("info" if watch else "warning"),
                   json_output={"auto": None, "json": True, "console": False}[log_format], eager=watch)
    remember_env_file(ctx, env_file)
    if ctx.invoked_subcommand is not None:
        return EXIT_OK
    if (notify or notify_files or verify_interval is not None) and not watch:
        raise click.UsageError("--notify, --notify-file and --verify-interval go with --watch")
    env = environment(env_file)
    if fleet_cli.wanted(fleet):
        return fleet_cli.fleet_command(ctx, env)
    if watch:
        if apply_plan not in (None, "-") or out_file or rotate:
            raise click.UsageError("--watch takes --apply without a plan file, and no --out or --rotate")
        from reconciler.watch.controller import Controller, Settings
        from reconciler.watch.notify import webhook_urls

        settings = Settings(files=list(files) or ["scheduler.yaml"], url=run.database_url(database_url, env),
                            apply=apply_plan == "-", prune=prune, interval=interval, http_host=http_host,
                            http_port=http_port, lock_timeout=lock_timeout, statement_timeout=statement_timeout,
                            environ=env, verify_interval=verify_interval,
                            notify=webhook_urls(notify, notify_files, env),
                            notify_failures=notify_after)
        return Controller(settings).run()
    if dry_run and apply_plan is not None:
        raise click.UsageError("--dry-run and --apply are mutually exclusive")
    if out_file and apply_plan is not None:
        raise click.UsageError("--out goes with --dry-run")
    manifest = run.load(files)
    for warning in manifest.warnings:
        click.echo(f"warning: {warning}", err=True)
    _check_rotate(manifest, rotate)
    options = PlanOptions(prune=prune, rotate=frozenset(rotate))
    name = ", ".join(files) or "scheduler.yaml"
    with run.session(manifest, env, database_url) as session:
        if apply_plan is None:
            return _dry_run(session, options, fmt, verbose, detailed_exitcode, out_file, name, files,
                            lock_timeout, statement_timeout)
        return _apply(session, options, fmt, verbose, apply_plan, lock_timeout, statement_timeout, name)


def _check_rotate(manifest: Manifest, rotate: Sequence[str]) -> None:
    from reconciler import kinds

    rotatable = {name: can for kind in kinds.REGISTRY for name, can in kind.rotatable(manifest).items()}
    unknown = sorted(set(rotate) - set(rotatable))
    if unknown:
        raise click.UsageError(f"--rotate names undeclared secret(s): {', '.join(unknown)}")
    sourced = sorted(name for name in rotate if not rotatable[name])
    if sourced:
        raise click.UsageError(f"--rotate {', '.join(sourced)}: the value comes from its source; change the source "
                               "instead (rotation generates values only for secrets declared with generate:)")


def _apply_saved_command(out_file: str, files: Sequence[str], options: PlanOptions) -> str:
    """The command that applies a saved plan: the same manifest and plan options, nothing secret."""
    words = ["reconcile", "--apply", out_file] + [w for f in files for w in ("-f", f)]
    words += ["--prune"] if options.prune else []
    words += [w for name in sorted(options.rotate) for w in ("--rotate", name)]
    return shlex.join(words)


def _command_line(apply_plan: str, options: PlanOptions) -> str:
    """What reconciler.history records as the command: the mode and options, never a URL or value."""
    words = ["--apply"] + ([apply_plan] if apply_plan != "-" else [])
    if options.prune:
        words.append("--prune")
    words += [f"--rotate {name}" for name in sorted(options.rotate)]
    return " ".join(words)


def _dry_run(session: run.Session, options: PlanOptions, fmt: str, verbose: bool, detailed: bool,
             out_file: str | None, name: str, files: Sequence[str], lock_timeout: float | None = None,
             statement_timeout: float | None = None) -> int:
    from reconciler.engine.apply import read_and_plan
    from reconciler.engine.saved_plan import saved_plan_document

    live, plan = read_and_plan(session.url, session.manifest, session.secret_values, options,
                               session.planes, statement_timeout=statement_timeout, lock_timeout=lock_timeout)
    click.echo(_render(plan, fmt, verbose, name, session.url), nl=False)
    if out_file:
        try:
            Path(out_file).write_text(json.dumps(saved_plan_document(plan, live, session.manifest), indent=2) + "\n")
        except OSError as e:
            raise ReconcilerError(f"cannot write saved plan {out_file}: {e.strerror or e}") from e
        # on stdout after a text plan (as Terraform does); stderr keeps a JSON or Markdown plan parseable
        click.echo(f"\nSaved the plan to {out_file}. To apply exactly this plan (or refuse if the database changed "
                   f"since), run:\n  {_apply_saved_command(out_file, files, options)}", err=fmt != "text")
    if detailed and (plan.changes_scheduler or plan.blocking_findings):
        return EXIT_CHANGES
    return EXIT_OK


def _apply(session: run.Session, options: PlanOptions, fmt: str, verbose: bool, apply_plan: str,
           lock_timeout: float | None, statement_timeout: float, name: str) -> int:
    from reconciler import render
    from reconciler.engine.apply import ApplyContext, apply
    from reconciler.engine.saved_plan import is_saved_plan

    saved = None
    if apply_plan != "-":
        try:
            saved = json.loads(Path(apply_plan).read_text())
        except (OSError, ValueError) as e:
            raise ReconcilerError(f"cannot read saved plan {apply_plan}: {e}") from e
        if not is_saved_plan(saved):
            raise ReconcilerError(f"{apply_plan} is not a saved plan",
                                  hint="make one with reconcile --dry-run --out FILE")
    shown: list[Any] = []
    try:
        result = apply(session.url, session.manifest, session.secret_values, options, ApplyContext(
            lock_timeout=lock_timeout, statement_timeout=statement_timeout, saved=saved,
            command=_command_line(apply_plan, options), version=package_version(), on_plan=shown.append,
            planes=session.planes, on_migrated=_say_migrated))
    except UnsafePlan:
        # The error says "fix the findings above": show them (with their fixes), as the dry run would.
        if shown:
            click.echo(_render(shown[-1], fmt, verbose, name, session.url), nl=False)
        raise
    click.echo(_render(result.plan, fmt, verbose, name, session.url), nl=False)
    if fmt == "text" and not result.plan.is_empty:
        click.echo(f"Apply complete (history #{result.history_id}).")
    if result.corrections:
        # stderr, so a JSON or Markdown plan on stdout stays parseable
        click.echo("warning: changed by someone else during the apply, corrected in the same transaction: "
                   + render.listed(result.corrections), err=True)
    logs.get().info("apply_finished", changes=len(result.plan.mutating), history_id=result.history_id,
                    corrections=len(result.corrections))
    return EXIT_OK


@main.command("down", cls=Command, short_help="Roll back what this tool manages, each kind its own way.")
@file_option
@click.option("--dry-run", "dry_run", is_flag=True, help="Print the rollback plan and change nothing (the default).")
@click.option("--apply", "do_apply", is_flag=True, help="Apply the rollback.")
@click.option("--include-secrets", is_flag=True, help="Also delete the Vault secrets this tool manages.")
@database_url_option
@env_file_option
@format_option
@click.option("--lock-timeout", type=Duration(), default=None, metavar="SECONDS",
              help="With --apply: wait this long for another reconciler's lock (default: do not wait; exit 3).")
def down_command(files: tuple[str, ...], dry_run: bool, do_apply: bool, include_secrets: bool,
                 database_url: str | None, env_file: str | None, fmt: str, lock_timeout: float | None) -> int:
    """Roll back what this tool manages: {rollback}."""
    from reconciler.engine.apply import ApplyContext, apply, read_and_plan
    from reconciler.engine.down import down_manifest

    if dry_run and do_apply:
        raise click.UsageError("--dry-run and --apply are mutually exclusive")
    manifest = down_manifest(run.load(files), include_secrets=include_secrets)
    options = PlanOptions(prune=True, rollback=True)
    name = "the rollback (reconcile down)"  # read in sentences: "No changes. The database matches the rollback ..."
    with run.session(manifest, environment(env_file), database_url, secrets="none") as session:
        if not do_apply:
            _, plan = read_and_plan(session.url, manifest, {}, options, session.planes)
            click.echo(_render(plan, fmt, False, name, session.url), nl=False)
            return EXIT_OK
        result = apply(session.url, manifest, {}, options, ApplyContext(
            lock_timeout=lock_timeout, command="down" + (" --include-secrets" if include_secrets else ""),
            version=package_version(), planes=session.planes, on_migrated=_say_migrated))
    click.echo(_render(result.plan, fmt, False, name, session.url), nl=False)
    if fmt == "text" and not result.plan.is_empty:
        click.echo(f"Rollback complete (history #{result.history_id}).")
    return EXIT_OK


def _say_migrated() -> None:
    # stderr, so a JSON or Markdown plan on stdout stays parseable
    click.echo("note: reconciler.managed upgraded to keep last-applied records (in its own transaction)", err=True)


@main.command("history", short_help="List past applies, or show one with --show ID.")
@click.argument("count", type=click.IntRange(min=1), default=10, required=False)
@click.option("--show", "show_id", type=click.IntRange(min=1), help="Show one apply in full: its plan and before/after of each change.")
@database_url_option
@env_file_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="The listing as text, or as JSON for tools.")
def history_command(count: int, show_id: int | None, database_url: str | None, env_file: str | None,
                    fmt: str) -> int:
    """List past applies (newest first), or show one with --show ID."""
    from reconciler.engine import history

    url = run.database_url(database_url, environment(env_file))
    if show_id is not None:
        click.echo(history.show(url, show_id), nl=False)
    elif fmt == "json":
        click.echo(history.as_json(url, count), nl=False)
    else:
        click.echo(history.listing(url, count), nl=False)
    return EXIT_OK


# Sub-commands that live in their own modules (they never import this one, so no cycle).
from reconciler.cli.export import export_command  # noqa: E402
from reconciler.cli.manifest import schema_command, validate_command  # noqa: E402
from reconciler.cli.verify import verify_command  # noqa: E402

main.add_command(validate_command, "validate")
main.add_command(schema_command, "schema")
main.add_command(verify_command, "verify")
main.add_command(export_command, "export")
