"""The README's flow as a new user lives it: the demo, then a fresh shell that knows nothing.

The demo part is what `scripts/demo.sh` does against the test cluster: `reconcile --apply` with its values,
the Edge Function stand-in, and its env file written by `scripts/write-env-file.sh`. Then every command
runs as a subprocess of the real `reconcile` console script in a minimal environment (PATH, HOME and the
one variable of the demo's closing line, RECONCILE_ENV_FILE), never the test process's environment:
the plan is empty, a hand-made drift is shown and fixed, `history` and `verify` work.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from localdb.edge import EdgeFunction
from tests.fix_db import DbTarget

ROOT = Path(__file__).resolve().parents[3]
RECONCILE = Path(sys.executable).parent / "reconcile"
DEMO_VARIABLES = ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CRON_SECRET")


@dataclass
class Shell:
    """A new terminal after the demo's one line of set-up: PATH reaches `reconcile`, RECONCILE_ENV_FILE is set."""

    env_file: Path
    home: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": f"{RECONCILE.parent}:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
               "RECONCILE_ENV_FILE": str(self.env_file)}
        return subprocess.run(["reconcile", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def after_the_demo(audited_db: DbTarget, tmp_path: Path) -> Iterator[tuple[Shell, dict[str, str], DbTarget]]:
    cron_secret = secrets.token_urlsafe(32)
    with EdgeFunction(audited_db.url, cron_secret, port=0) as edge:
        demo = {"DATABASE_URL": audited_db.url, "SUPABASE_URL": edge.url,
                "SUPABASE_SERVICE_ROLE_KEY": "demo-service-role-key", "CRON_SECRET": cron_secret}
        demo_env = {"PATH": os.environ["PATH"], **demo}
        applied = subprocess.run([str(RECONCILE), "--apply"], cwd=ROOT, env=demo_env, capture_output=True,
                                 text=True, timeout=180)
        assert applied.returncode == 0, applied.stderr
        env_file = tmp_path / "demo.env"
        written = subprocess.run(["bash", str(ROOT / "scripts" / "write-env-file.sh"), str(env_file),
                                  *DEMO_VARIABLES], env=demo_env, capture_output=True, text=True, timeout=30)
        assert (written.returncode, written.stdout, written.stderr) == (0, "", "")
        home = tmp_path / "home"
        home.mkdir()
        yield Shell(env_file, home), demo, audited_db


def test_the_demo_env_file_is_private_and_git_ignored(after_the_demo: tuple[Shell, dict[str, str], DbTarget]) -> None:
    shell, demo, _ = after_the_demo
    assert stat.S_IMODE(shell.env_file.stat().st_mode) == 0o600
    from dotenv import dotenv_values

    assert dotenv_values(shell.env_file, interpolate=False) == demo
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".localdb/" in ignored  # the demo writes .localdb/demo.env
    closing = (ROOT / "scripts" / "demo.sh").read_text()
    assert 'ENV_FILE="$PWD/.localdb/demo.env"' in closing
    line = re.search(r"^printf '  (cd .*)\\n'", closing, re.MULTILINE)
    assert line and line.group(1) == "cd %q && . .venv/bin/activate && export RECONCILE_ENV_FILE=%q"
    readme = (ROOT / "README.md").read_text()
    assert "cd <the repository> && . .venv/bin/activate && export RECONCILE_ENV_FILE=$PWD/.localdb/demo.env" in readme


def test_a_fresh_shell_plans_nothing_sees_a_drift_fixes_it_and_reads_history_and_verify(
        after_the_demo: tuple[Shell, dict[str, str], DbTarget]) -> None:
    shell, demo, target = after_the_demo
    plan = shell.run("--dry-run", "--detailed-exitcode")
    assert (plan.returncode, plan.stdout, plan.stderr) == (0, "No changes. The database matches scheduler.yaml.\n", "")

    with psycopg.connect(target.superuser_url, autocommit=True) as conn:  # someone edits a job by hand
        conn.execute("UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = 'fetch_rss_feeds'")
    plan = shell.run("--dry-run", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stderr
    assert "~ job fetch_rss_feeds: update (changed outside git since apply #1: schedule)" in plan.stdout
    assert "Plan: 0 to create, 1 to update, 0 to delete; 1 drifted outside git." in plan.stdout
    fixed = shell.run("--apply")
    assert fixed.returncode == 0 and fixed.stderr == "", fixed.stderr
    assert "Apply complete (history #2)." in fixed.stdout
    assert shell.run("--dry-run", "--detailed-exitcode").returncode == 0

    history = shell.run("history")
    assert history.returncode == 0 and history.stderr == "", history.stderr
    assert [line.split()[0] for line in history.stdout.splitlines()] == ["#2", "#1"]
    assert "1 to update" in history.stdout.splitlines()[0]
    shown = shell.run("history", "--show", "2")
    assert shown.returncode == 0 and "fetch_rss_feeds" in shown.stdout

    verify = shell.run("verify")  # right after the apply pg_cron may not have fired yet: runs may fail
    assert verify.returncode in (0, 2) and verify.stderr == "", verify.stderr
    assert verify.stdout.startswith("PASS  preflight: the database matches scheduler.yaml (the plan is empty)\n")
    assert "PASS  secret literals" in verify.stdout

    everything = "".join(r.stdout + r.stderr for r in (plan, fixed, history, shown, verify))
    for value in (demo["CRON_SECRET"], demo["SUPABASE_SERVICE_ROLE_KEY"]):
        assert value not in everything


@pytest.mark.slow
def test_a_fresh_shell_verifies_that_the_scheduler_fires(after_the_demo: tuple[Shell, dict[str, str], DbTarget]) -> None:
    shell, _, _ = after_the_demo
    verify = shell.run("verify", "--wait", "90s")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "verify OK" in verify.stdout
