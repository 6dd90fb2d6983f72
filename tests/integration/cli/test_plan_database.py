"""Plans in JSON and Markdown name the database they were made against, never its password."""

from __future__ import annotations

import json

from psycopg.conninfo import conninfo_to_dict

from tests.fix_db import DbTarget
from tests.integration.apply_support import MARKERS, SECRETS_ENV, assert_ok, reconcile

PASSWORD = "plan-db-pw-marker-7c2e"


def test_json_and_markdown_plans_name_host_port_and_database(audited_db: DbTarget) -> None:
    url = audited_db.url.replace("postgres@", f"postgres:{PASSWORD}@")  # trust auth ignores it
    params = conninfo_to_dict(audited_db.url)
    as_json = reconcile(url, "--dry-run", "--format", "json", env=SECRETS_ENV)
    assert_ok(as_json)
    assert json.loads(as_json.stdout)["database"] == {"host": params["host"], "port": int(params["port"]),
                                                      "dbname": "postgres"}
    as_markdown = reconcile(url, "--dry-run", "--format", "markdown", env=SECRETS_ENV)
    assert_ok(as_markdown)
    assert as_markdown.stdout.splitlines()[1:3] == [
        "", f"Made against database postgres on the local socket (port {params['port']})."]
    applied = reconcile(url, "--apply", "--format", "markdown", env=SECRETS_ENV)
    assert_ok(applied)
    assert f"Made against database postgres on the local socket (port {params['port']})." in applied.stdout
    for run in (as_json, as_markdown, applied):
        assert PASSWORD not in run.output and not any(marker in run.output for marker in MARKERS)
