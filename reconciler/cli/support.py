"""What every `reconcile` command shares: exit codes, the one-line error contract, common options, and
the variables a command reads (the environment, over an `--env-file`).

Lives apart from cli/main.py so that sub-command modules (cli/manifest.py, cli/verify.py) can use it without
importing the main group, which imports them to register them.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click
from click.core import ParameterSource

from reconciler.errors import ManifestError, ReconcilerError
from reconciler.util.files import read_limited

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2  # 3 (lock held) is LockHeld.exit_code

file_option = click.option("-f", "--file", "files", multiple=True, metavar="FILE",
                           help="Manifest file; repeat to overlay (later files win). Default ./scheduler.yaml.")


database_url_option = click.option("--database-url", envvar="DATABASE_URL", metavar="URL",
                                   help="PostgreSQL URL (or DATABASE_URL).")

format_option = click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text",
                             show_default=True, help="Text for people, JSON for tools, Markdown for pull-request comments.")


def kind_names() -> str:
    """The registered kinds, in registry order, for help texts (imported only when help is shown)."""
    from reconciler import kinds

    return ", ".join(kind.name for kind in kinds.REGISTRY)


def rollback_summary() -> str:
    from reconciler import kinds

    return "; ".join(f"{kind.name}: {kind.rollback_help}" for kind in kinds.REGISTRY if kind.rollback_help)


class KindsHelpOption(click.Option):
    """An option whose help holds `{kinds}`, filled in from the registry when help is shown."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        template = self.help or ""
        self.help = template.replace("{kinds}", kind_names())
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = template


#: Where the main group leaves its --env-file for the sub-command (ctx.meta is shared by the whole chain).
_ENV_FILE_META = "reconcile.env_file"
ENV_FILE_VARIABLE = "RECONCILE_ENV_FILE"
ENV_FILE_LIMIT = 64 * 1024

env_file_option = click.option(
    "--env-file", "env_file", metavar="FILE", envvar=ENV_FILE_VARIABLE,
    help="Read variables (secret sources, DATABASE_URL) from this dotenv file, taken literally; a variable "
         f"already set in the environment wins. Default ${ENV_FILE_VARIABLE}.")


def remember_env_file(ctx: click.Context, env_file: str | None) -> None:
    """The main group's --env-file, for a sub-command that was not given its own."""
    if env_file:
        ctx.meta[_ENV_FILE_META] = (env_file, ctx.get_parameter_source("env_file"))


def environment(env_file: str | None) -> Mapping[str, str]:
    """The variables a command reads: os.environ over the env file's, when there is one.

    The real environment wins, as in Docker Compose, so a variable set for one run overrides the file.
    A sub-command's own --env-file beats the main group's, which beats $RECONCILE_ENV_FILE.
    """
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source("env_file") if ctx is not None else None
    if ctx is not None and source is not ParameterSource.COMMANDLINE and _ENV_FILE_META in ctx.meta:
        env_file, source = ctx.meta[_ENV_FILE_META]
    if not env_file:
        return os.environ
    return {**read_env_file(env_file, from_variable=source is ParameterSource.ENVIRONMENT), **os.environ}


def read_env_file(path: str, *, from_variable: bool = False) -> dict[str, str]:
    """KEY=VALUE pairs of a dotenv file (python-dotenv: `export`, quotes, comments), values literally.

    Errors name the file and the line, never its content: the file holds secrets.
    """
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    where = f"env file {path}"
    origin = f" (set by {ENV_FILE_VARIABLE})" if from_variable else ""
    raw, why = read_limited(path, ENV_FILE_LIMIT)
    if raw is None:
        raise ReconcilerError(f"{where} {why}{origin}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReconcilerError(f"{where} is not UTF-8 text{origin}") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:  # python-dotenv would only log a warning and skip it
            raise ReconcilerError(f"{where}, line {binding.original.line}: not a KEY=VALUE line{origin}")
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {key: value for key, value in values.items() if value is not None}  # a bare `KEY` sets nothing


class Duration(click.ParamType):
    """Seconds as `60`, `60s`, `1.5s`, `2m` or `1h`."""

    name = "duration"
    UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        for unit in ("ms", "s", "m", "h"):
            if text.endswith(unit):
                number, factor = text[: -len(unit)], self.UNITS[unit]
                break
        else:
            number, factor = text, 1
        try:
            seconds = float(number) * factor
        except ValueError:
            self.fail(f"{value!r} is not a duration (use e.g. 60s, 2m, 1.5s)", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{value!r} must be a positive, finite duration", param, ctx)
        return seconds


class Port(click.ParamType):
    """A TCP port, or -1 for "off" (click's IntRange would print its range into --help)."""

    name = "port"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        try:
            port = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a port number", param, ctx)
        if not -1 <= port <= 65535:
            self.fail(f"{port} is not a port number (0-65535, or -1 to disable)", param, ctx)
        return port


class OneLineErrors:
    """Mixed into a click command: usage errors exit 1 (our 2 means "plan not empty") and every user
    error is one line on stderr; the command's return value is the exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)  # type: ignore[misc]
        except click.exceptions.UsageError as e:
            # One line, like every other user error (click's own show() adds the usage and a blank line).
            where = e.ctx.command_path if e.ctx is not None else "reconcile"
            click.echo(f"error: {' '.join(e.format_message().split())} (see {where} --help)", err=True)
            sys.exit(EXIT_ERROR)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(EXIT_ERROR)
        except click.exceptions.ClickException as e:
            e.show()
            sys.exit(EXIT_ERROR)
        except ReconcilerError as e:
            # a manifest error is one complete line per problem, each `error: file:line:col: field: message`
            lines = e.one_line().splitlines() if isinstance(e, ManifestError) else [e.one_line()]
            click.echo("".join(f"error: {line}\n" for line in lines), err=True, nl=False)
            sys.exit(e.exit_code)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else EXIT_OK)


class Command(OneLineErrors, click.Command):
    """A command whose help may hold `{kinds}` and `{rollback}`, filled in from the registry when shown."""

    def _filled(self, text: str | None) -> str | None:
        if text is None or "{" not in text:
            return text
        return text.replace("{kinds}", kind_names()).replace("{rollback}", rollback_summary())

    def get_short_help_str(self, limit: int = 45) -> str:
        saved = self.short_help
        self.short_help = self._filled(saved)
        try:
            return super().get_short_help_str(limit)
        finally:
            self.short_help = saved

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        saved = self.help
        self.help = self._filled(saved)
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = saved


class Group(OneLineErrors, click.Group):
    pass
