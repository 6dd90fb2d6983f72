"""The tool's own duration settings (RECONCILER_ANSWER_TIMEOUT, RECONCILER_SHUTDOWN_GRACE): a malformed value
is a one-line error before anything connects, never a silent fall-back to the default."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.engine import deadline
from reconciler.errors import SettingError
from tests.fix_db import DbTarget
from tests.integration.apply_support import one_line_error

ROOT = Path(__file__).resolve().parents[3]
SECRET_ENV = {"SUPABASE_URL": "https://settings.example.test", "SUPABASE_SERVICE_ROLE_KEY": "settings-service-key",
              "CRON_SECRET": "settings-cron-secret"}


@pytest.mark.parametrize("text", ["abc", "0", "-5", "nan", "inf", "10s"])
def test_a_malformed_answer_timeout_is_refused(text: str) -> None:
    with pytest.raises(SettingError, match=f"RECONCILER_ANSWER_TIMEOUT='{text}' is not a positive number"):
        deadline.answer_timeout(environ={"RECONCILER_ANSWER_TIMEOUT": text})


def test_an_unset_or_valid_answer_timeout_is_taken() -> None:
    assert deadline.answer_timeout(30, None, environ={}) == 30 + deadline.GRACE
    assert deadline.answer_timeout(30, None, environ={"RECONCILER_ANSWER_TIMEOUT": " "}) == 30 + deadline.GRACE
    assert deadline.answer_timeout(30, None, environ={"RECONCILER_ANSWER_TIMEOUT": "2.5"}) == 2.5


def _history_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('reconciler.history') IS NOT NULL").fetchone()
        if not (exists and exists[0]):
            return 0
        row = conn.execute("SELECT count(*) FROM reconciler.history").fetchone()
        return int(row[0]) if row else 0


@pytest.mark.parametrize(("variable", "args"), [
    ("RECONCILER_ANSWER_TIMEOUT", ["--apply"]),
    ("RECONCILER_ANSWER_TIMEOUT", ["--dry-run"]),
    ("RECONCILER_SHUTDOWN_GRACE", ["--watch", "--apply", "--http-port", "0"]),
])
def test_the_cli_says_which_setting_is_wrong_and_touches_nothing(audited_db: DbTarget, variable: str,
                                                                 args: list[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    before = _history_rows(audited_db.superuser_url)
    env = {"DATABASE_URL": audited_db.url, **SECRET_ENV, variable: "ten"}
    result = CliRunner().invoke(main, args, env=env, prog_name="reconcile")
    line = one_line_error(result, 1, variable, "'ten'", "positive number of seconds")
    assert line.startswith("error: ")
    assert _history_rows(audited_db.superuser_url) == before
