"""Issue 14, bug 2: `reconcile verify` reads the Edge Function secrets (every kind's plane), as the plan does.

Before, verify planned without the planes, so with an `edge_functions:` section it always said "Edge
Function secrets were not checked", even with a valid token. The Management API is the contract stub
(tests/integration/edge_api_stub.py); the database is the session's real cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from tests.fix_db import DbTarget
from tests.integration.apply_support import SECRETS_ENV, assert_ok, reconcile, write_manifest
from tests.integration.edge_api_stub import EdgeApiStub

TOKEN = f"sbp_verify-token-marker-{uuid.uuid4().hex}"
REF = "verifyref0000001"
NOT_CHECKED = "Edge Function secrets were not checked"


@pytest.fixture
def stub() -> Iterator[EdgeApiStub]:
    with EdgeApiStub(TOKEN, REF) as s:
        yield s


def _manifest(tmp_path: Path, stub: EdgeApiStub) -> Path:
    def edit(data: dict[str, Any]) -> None:
        data["edge_functions"] = {"project_ref": stub.ref, "api_url": stub.url,
                                  "secrets": {"CRON_SECRET": {"secret": "cron_secret"}}}
    return write_manifest(tmp_path, edit)


def _preflight(db: DbTarget, path: Path, token: str | None) -> dict[str, Any]:
    env = {**SECRETS_ENV, "DATABASE_URL": db.url, "SUPABASE_ACCESS_TOKEN": token, "SUPABASE_PROJECT_REF": None}
    result = CliRunner().invoke(main, ["verify", "-f", str(path), "--format", "json"], env=env,
                                catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    assert TOKEN not in result.output and SECRETS_ENV["CRON_SECRET"] not in result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return checks["preflight"]


def test_verify_reads_the_edge_function_secrets(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    path = _manifest(tmp_path, stub)
    assert_ok(reconcile(audited_db.url, "--apply", manifest=path,
                        env={"SUPABASE_ACCESS_TOKEN": TOKEN, "SUPABASE_PROJECT_REF": None}))
    stub.clear()

    in_sync = _preflight(audited_db, path, TOKEN)
    assert NOT_CHECKED not in json.dumps(in_sync)
    assert in_sync["status"] == "pass", in_sync
    assert [r.method for r in stub.requests] == ["GET"], "verify reads the plane once and never writes"

    stub.values["CRON_SECRET"] = "changed-in-the-dashboard"
    drifted = _preflight(audited_db, path, TOKEN)
    assert drifted["status"] == "fail"
    assert "edge_secret CRON_SECRET: update (differs from vault secret cron_secret): value (sensitive)" \
        in drifted["evidence"]
    assert [r.method for r in stub.requests] == ["GET", "GET"]


def test_verify_without_a_token_still_says_not_checked(audited_db: DbTarget, stub: EdgeApiStub,
                                                       tmp_path: Path) -> None:
    path = _manifest(tmp_path, stub)
    skipped = _preflight(audited_db, path, None)
    assert any(NOT_CHECKED in line and "SUPABASE_ACCESS_TOKEN is not set" in line for line in skipped["evidence"])
    assert not stub.requests
