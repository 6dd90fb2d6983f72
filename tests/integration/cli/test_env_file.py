"""`--env-file FILE` (or RECONCILE_ENV_FILE): secret sources and DATABASE_URL from a dotenv file.

The file is read with python-dotenv, values literally (no `${VAR}` expansion); a variable already set in
the real environment wins over the file, as in Docker Compose. Every command that reads variables takes
the option, before or after the sub-command's name. A file that cannot be read or parsed is one line
naming the file (and the line), never a value from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fix_db import DbTarget
from tests.integration.apply_support import one_line_error
from tests.integration.golden_support import SECRET_ENV, Case, invoke, prepare_applied

IN_SYNC = "No changes. The database matches scheduler.yaml.\n"
#: Every variable the commands read, unset: the env file is the only source.
NOTHING = {name: None for name in (*SECRET_ENV, "DATABASE_URL", "RECONCILE_ENV_FILE")}


def _write_env(path: Path, values: dict[str, str]) -> Path:
    # single quotes: what the demo writes; a value is taken literally ($ and # included)
    path.write_text("# written by a test\n" + "".join(f"{k}='{v}'\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


@pytest.fixture
def applied(audited_db: DbTarget) -> DbTarget:
    prepare_applied(Case("applied", "applied"), audited_db)
    return audited_db


def test_env_file_gives_secrets_and_database_url(applied: DbTarget, tmp_path: Path) -> None:
    env_file = _write_env(tmp_path / "local.env", {**SECRET_ENV, "DATABASE_URL": applied.url})
    run = invoke(["--dry-run", "--env-file", str(env_file)], None, NOTHING)  # type: ignore[arg-type]
    assert (run.exit_code, run.stdout, run.stderr) == (0, IN_SYNC, ""), str(run)


def test_env_file_from_reconcile_env_file_variable_and_on_every_command(applied: DbTarget, tmp_path: Path) -> None:
    env_file = _write_env(tmp_path / "local.env", {**SECRET_ENV, "DATABASE_URL": applied.url})
    env = {**NOTHING, "RECONCILE_ENV_FILE": str(env_file)}
    run = invoke(["--dry-run"], None, env)
    assert (run.exit_code, run.stdout, run.stderr) == (0, IN_SYNC, ""), str(run)
    for args in (["history"], ["history", "--env-file", str(env_file)], ["--env-file", str(env_file), "history"],
                 ["down"], ["verify"]):
        run = invoke(args, None, {**NOTHING, "RECONCILE_ENV_FILE": None} if "--env-file" in args else env)
        assert run.exit_code in (0, 2) and "error" not in run.stderr, str(run)
        assert "no database given" not in run.stderr and "missing secret" not in run.stdout, str(run)


def test_real_environment_wins_over_the_env_file(applied: DbTarget, tmp_path: Path) -> None:
    env_file = _write_env(tmp_path / "local.env", {**SECRET_ENV, "CRON_SECRET": "stale-value-in-file",
                                                   "DATABASE_URL": "postgresql://nobody@/nowhere?host=/nonexistent"})
    run = invoke(["--dry-run", "--env-file", str(env_file)], applied.url, SECRET_ENV)
    assert (run.exit_code, run.stdout, run.stderr) == (0, IN_SYNC, ""), str(run)
    # without the real variable the file's value is used: a different secret, so drift
    env = {**SECRET_ENV, "CRON_SECRET": None}
    run = invoke(["--dry-run", "--env-file", str(env_file)], applied.url, env)  # type: ignore[arg-type]
    assert "~ secret cron_secret: update" in run.stdout, str(run)
    assert "stale-value-in-file" not in run.stdout + run.stderr


def test_missing_env_file_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    line = one_line_error(invoke(["--dry-run", "--env-file", str(missing)], None, NOTHING))
    assert line == f"error: env file {missing} not found"
    line = one_line_error(invoke(["history"], None, {**NOTHING, "RECONCILE_ENV_FILE": str(tmp_path)}))
    assert line == f"error: env file {tmp_path} is a directory (set by RECONCILE_ENV_FILE)"


def test_unparseable_env_file_names_the_line_never_the_value(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("CRON_SECRET='fine'\nthe secret value do-not-print\n")
    line = one_line_error(invoke(["--dry-run", "--env-file", str(env_file)], None, NOTHING))
    assert line == f"error: env file {env_file}, line 2: not a KEY=VALUE line" and "do-not" not in line
    env_file.write_bytes(b"CRON_SECRET='\xff'\n")
    line = one_line_error(invoke(["--dry-run", "--env-file", str(env_file)], None, NOTHING))
    assert line == f"error: env file {env_file} is not UTF-8 text"


def test_no_database_and_no_secrets_names_the_database_first() -> None:
    line = one_line_error(invoke(["--dry-run"], None, NOTHING))
    assert line.startswith("error: no database given"), line
