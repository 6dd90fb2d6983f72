"""What every `reconcile` command shares: exit codes, the one-line error contract, common options.

Lives apart from cli.py so that sub-command modules (cli_manifest, cli_verify) can use it without
importing the main group, which imports them to register them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import click

from reconciler.errors import ManifestError, ReconcilerError

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2  # 3 (lock held) is LockHeld.exit_code

file_option = click.option("-f", "--file", "files", multiple=True, metavar="FILE",
                           help="Manifest file; repeat to overlay (later files win). Default ./scheduler.yaml.")


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
            click.echo(e.one_line() if isinstance(e, ManifestError) else f"error: {e.one_line()}", err=True)
            sys.exit(e.exit_code)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else EXIT_OK)


class Command(OneLineErrors, click.Command):
    pass


class Group(OneLineErrors, click.Group):
    pass
