"""What a new user meets in the first hour, command by command: messages that say where things went and
what to do next, help that reads whole, errors that are one sentence each and always start `error:`."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import one_line_error
from tests.integration.test_golden import ROOT, invoke

# -- --dry-run --out: where the plan went, and the command that applies it -----------------------------


def test_saved_plan_says_where_it_went_and_how_to_apply_it(audited_db: DbTarget, tmp_path: Path) -> None:
    target = tmp_path / "my plan.json"
    run = invoke(["--dry-run", "--out", str(target)], audited_db.url)
    assert run.exit_code == 0 and run.stderr == "", str(run)
    assert target.is_file()
    assert run.stdout.endswith(f"\nSaved the plan to {target}. To apply exactly this plan (or refuse if the "
                               f"database changed since), run:\n  reconcile --apply {shlex.quote(str(target))}\n")
    # Options that change the plan are part of the command; a JSON plan on stdout stays parseable
    run = invoke(["--dry-run", "--format", "json", "-f", "scheduler.yaml", "--prune", "--out", str(target)],
                 audited_db.url)
    assert run.exit_code == 0, str(run)
    json.loads(run.stdout)
    assert run.stderr.endswith(f"run:\n  reconcile --apply {shlex.quote(str(target))} -f scheduler.yaml --prune\n")


# -- --help --------------------------------------------------------------------------------------------


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], prog_name="reconcile", terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_help_summaries_are_whole_and_every_option_is_explained() -> None:
    text = _help()
    commands = text.split("Commands:\n", 1)[1]
    assert commands.strip() and "..." not in commands, commands
    assert "schema    Print the manifest's JSON Schema" in commands
    for command in (main, *main.commands.values()):  # every option has a sentence, not only a default
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help" and not param.hidden:
                assert param.help and " " in param.help, (command.name, param.opts)
    assert "-1<=x<=65535" not in text
    assert re.search(r"--statement-timeout SECONDS\s+\S", text), text
    for sub in ("down", "history", "verify", "validate", "schema"):
        assert _help(sub).startswith(f"Usage: reconcile {sub} ")


# -- connection errors ---------------------------------------------------------------------------------


def test_unreachable_server_is_sentences_and_says_check_the_server(tmp_path: Path) -> None:
    url = f"postgresql://postgres@/postgres?host={tmp_path}&port={free_port()}"
    line = one_line_error(invoke(["history", "--database-url", url], None))
    assert re.search(r'failed: No such file or directory\. Is the server running locally', line), line
    assert line.endswith("(check --database-url / DATABASE_URL and that the server is running)"), line


def test_missing_database_does_not_blame_the_server(audited_db: DbTarget) -> None:
    url = audited_db.url.replace("/postgres?", "/nosuchdb?")
    assert url != audited_db.url
    line = one_line_error(invoke(["history", "--database-url", url], None))
    assert 'database "nosuchdb" does not exist' in line, line
    assert "server is running" not in line and "  " not in line, line
    assert line.endswith("(the server answered: check the database name and role in --database-url / "
                         "DATABASE_URL)"), line


# -- manifest errors: `error:` like every other error, and jobs named by name ---------------------------


def test_manifest_errors_start_with_error_and_name_the_item(tmp_path: Path) -> None:
    text = (ROOT / "scheduler.yaml").read_text().replace('schedule: "0 3 * * *"', 'schedule: "0 25 * * *"', 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    for args in (["--dry-run", "-f", str(path)], ["validate", "-f", str(path)]):
        run = invoke(args, "postgresql://unused@/x")
        assert run.exit_code == 1 and run.stdout == "", str(run)
        assert run.stderr == (f"error: {path}:114:15: jobs[11] (ttl_cleanup).schedule: invalid schedule "
                              f'"0 25 * * *": hour field: 25 is out of range 0-23\n'), str(run)


@pytest.mark.parametrize("args", [["--out", "x.json"], ["--bogus"]], ids=["out-without-dry-run-ok", "usage"])
def test_other_errors_keep_their_prefix(args: list[str], tmp_path: Path) -> None:
    if args[0] == "--out":
        args = ["--apply", *args]
    line = one_line_error(invoke(args, None))
    assert line.startswith("error: "), line
