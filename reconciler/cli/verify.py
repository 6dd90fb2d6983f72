"""`reconcile verify`: is the declared scheduler actually firing? An edge like cli/main.py.

Flow: load the manifest → with --wait, poll the evidence (`verify.read.Reader`) once a second until
every active trigger has run since the check began and its request was answered, or the deadline
passes → read the live state and plan (drift and preflight findings; a missing secret source becomes a
failed `preflight` check, not an error, because the runtime checks do not need secret values) with the
full evidence riding on that read (`apply.read_only` with the reader's rider) → `verify.run_checks` →
text, json or markdown on stdout. All over one connection.

Exit codes: 0 nothing failed (warnings allowed), 1 error (a ReconcilerError, one line on stderr; usage
errors too), 2 a check failed. `cli/main.py` registers `verify_command` on the main group.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.support import (
    Command,
    Duration,
    database_url_option,
    env_file_option,
    environment,
    file_option,
    format_option,
)
from reconciler.engine import session as run
from reconciler.engine.sources import resolvable_secrets
from reconciler.secret_value import scrub

if TYPE_CHECKING:
    from reconciler.engine.session import Session

POLL_SECONDS = 1.0


def collect(session: Session, wait: float | None, manifest_name: str) -> list[Any]:
    """Plan (every kind, its planes too: the Edge Function secrets), read (and poll with --wait), judge.

    One connection: the --wait polls, then the plan's read with the full evidence riding on it (no round
    trip more than the plan's own; without secret values, the evidence alone)."""
    from reconciler import verify
    from reconciler.engine import db
    from reconciler.engine.apply import read_only
    from reconciler.kinds.base import PlanOptions
    from reconciler.plan import plan as make_plan
    from reconciler.verify.read import Reader, declared_triggers

    plan = None
    conn = db.connect(session.url, autocommit=True)
    try:
        reader = Reader(conn, declared_triggers(session.manifest))
        if wait is not None:
            polled = reader.read(full=False)
            deadline = time.monotonic() + wait
            pending = verify.awaited(polled)
            if pending:  # stderr: a JSON or Markdown result on stdout stays parseable
                click.echo(waiting_line(pending, wait), err=True)
            while not verify.settled(polled) and time.monotonic() < deadline:
                time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
                polled = reader.read(full=False)
        if session.values is None:
            evidence = reader.read()  # everything, once, for the judgement
        else:
            read = reader.rider()
            live = read_only(conn, session.manifest, session.planes, read)
            plan = make_plan(session.manifest, live, session.values, PlanOptions())
            evidence = read.result()
    finally:
        conn.close()
    evidence = dataclasses.replace(evidence, plan=plan, plan_error=session.secret_error, manifest_name=manifest_name,
                                   waited=None if wait is None else timedelta(seconds=wait))
    return verify.run_checks(evidence)


def waiting_line(triggers: list[str], wait: float) -> str:
    """What --wait waits for, said once before the first poll's sleep."""
    names = ", ".join(triggers)
    return (f"waiting up to {wait:g}s for a run of {'trigger' if len(triggers) == 1 else 'triggers'} {names} "
            "since the check began (and its HTTP answer)...")


@click.command("verify", cls=Command, context_settings={"help_option_names": ["-h", "--help"]},
               short_help="Check that the scheduler actually fires.")
@file_option
@click.option("--wait", type=Duration(), default=None, metavar="DURATION",
              help="Wait up to this long (e.g. 90s) for each trigger's next run and its HTTP answer.")
@database_url_option
@env_file_option
@format_option
@click.option("--targets", "targets_file", metavar="FILE",
              help="Verify every target of this targets.yaml: a table target x check (text or json).")
@click.option("--parallel", type=click.IntRange(1, 256), default=4, show_default=True, metavar="N",
              help="With --targets: how many targets are verified at once.")
@click.pass_context
def verify_command(ctx: click.Context, files: tuple[str, ...], wait: float | None, database_url: str | None,
                   env_file: str | None, fmt: str, targets_file: str | None, parallel: int) -> None:
    """Check that the scheduler actually fires: drift, trigger runs, HTTP answers, executions, job freshness,
    history size and literal secrets. Exit 0 when nothing fails, 2 when a check fails, 1 on error."""
    from reconciler import verify

    if targets_file:
        ctx.exit(_verify_fleet(ctx, targets_file, files, wait, env_file, fmt, parallel))

    manifest = run.load(files)
    for warning in manifest.warnings:
        click.echo(f"warning: {warning}", err=True)
    env = environment(env_file)
    # a missing secret source becomes a failed preflight check; every value that does resolve is still scrubbed
    with run.session(manifest, env, database_url, secrets="optional") as session:
        known = session.values if session.values is not None else resolvable_secrets(manifest, env)
        results = collect(session, wait, ", ".join(files) or "scheduler.yaml")
    to_output = {"json": verify.to_json, "markdown": verify.to_markdown}.get(fmt, verify.to_text)
    secrets = [v.reveal() for v in known.values()]
    click.echo(scrub(to_output(results), secrets), nl=False)
    ctx.exit(verify.exit_code(results))


def _verify_fleet(ctx: click.Context, targets_file: str, files: tuple[str, ...], wait: float | None,
                  env_file: str | None, fmt: str, parallel: int) -> int:
    from click.core import ParameterSource

    from reconciler.cli.verify_fleet import verify_targets
    from reconciler.fleet.targets_file import read_targets

    if ctx.get_parameter_source("database_url") is ParameterSource.COMMANDLINE or wait is not None or fmt == "markdown":
        raise click.UsageError("--database-url, --wait and --format markdown cannot be used with --targets (each "
                               "target names its own database)")
    env = environment(env_file)
    return verify_targets(read_targets(targets_file, env), files, env, parallel=parallel, fmt=fmt, collect=collect)

