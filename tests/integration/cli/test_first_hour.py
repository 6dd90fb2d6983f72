"""What a new user meets in the first hour, command by command: messages that say where things went and
what to do next, help that reads whole, errors that are one sentence each and always start `error:`."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from reconciler.cli.main import main
from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import one_line_error
from tests.integration.golden_support import ROOT, SECRET_ENV, invoke

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


# -- log lines: structlog's console renderer on a terminal, JSON otherwise or when asked -----------------

RECONCILE = Path(sys.executable).parent / "reconcile"


def _apply_logs(url: str, *args: str, tty: bool) -> str:
    """stderr of `reconcile --apply --log-level info ARGS`, attached to a pseudo-terminal or a pipe."""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, **SECRET_ENV}
    command = [str(RECONCILE), "--apply", "--log-level", "info", *args]
    if not tty:
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120).stderr
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=follower, timeout=120)
        os.close(follower)
        follower = -1
        chunks = []
        with contextlib.suppress(OSError):  # EIO once everything written has been read
            while chunk := os.read(leader, 65536):
                chunks.append(chunk)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 0
    return b"".join(chunks).decode()


def _one_event(text: str) -> str:
    lines = [line for line in text.splitlines() if "apply_finished" in line]
    assert len(lines) == 1, text
    return lines[0]


def test_log_format_console_on_a_terminal_json_otherwise(audited_db: DbTarget) -> None:
    console = re.compile(r"\S+Z \[info\s*\] apply_finished\s+changes=\d+ corrections=0 history_id=(\d+|None)")
    assert console.fullmatch(_one_event(_apply_logs(audited_db.url, tty=True)).strip())
    assert json.loads(_one_event(_apply_logs(audited_db.url, tty=False)))["event"] == "apply_finished"
    assert json.loads(_one_event(_apply_logs(audited_db.url, "--log-format", "json", tty=True)))["level"] == "info"
    assert console.fullmatch(_one_event(_apply_logs(audited_db.url, "--log-format", "console", tty=False)))
