"""Triggers declared with `username:` and `database:`: cron.schedule_in_database, cron.alter_job, protect.

pg_cron keys job names per user, so the reconciler keys a trigger run as another user `name@user`.
Issue 14, bug 1: `protect: true` was recorded under the bare name, so such a trigger was pruned anyway.
Scheduling for another role needs a superuser: these tests run as one (`superuser_target`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fix_db import DbTarget
from tests.integration.apply_support import assert_converged, assert_ok, query, reconcile, write_manifest

OTHER_DB = "reconciler_other"
AS_POSTGRES = {"name": "as-postgres", "schedule": "*/10 * * * *", "command": "SELECT 1", "username": "postgres",
               "protect": True}
ELSEWHERE = {"name": "elsewhere", "schedule": "0 * * * *", "command": "SELECT 2", "database": OTHER_DB,
             "username": "postgres"}


@pytest.fixture
def other_db(superuser_target: DbTarget) -> DbTarget:
    with psycopg.connect(superuser_target.superuser_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (OTHER_DB,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{OTHER_DB}"')
    return superuser_target


def _with(*triggers: dict[str, Any], prune: bool = False):
    def edit(data: dict[str, Any]) -> None:
        data["triggers"] = [*data["triggers"], *(dict(t) for t in triggers)]
        if prune:
            data["prune"]["triggers"] = "delete"
    return edit


def _cron(db: DbTarget) -> dict[str, tuple[Any, ...]]:
    rows = query(db.superuser_url, "SELECT jobname::text, jobid, schedule, command, database, username::text"
                                   " FROM cron.job WHERE username = 'postgres' ORDER BY jobname")
    return {r[0]: r[1:] for r in rows}


def test_triggers_of_another_user_and_database(other_db: DbTarget, tmp_path: Path) -> None:
    db = other_db
    database = query(db.url, "SELECT current_database()")[0][0]
    first = write_manifest(tmp_path, _with(AS_POSTGRES, ELSEWHERE), name="first.yaml")
    created = reconcile(db.url, "--apply", manifest=first)
    assert_ok(created)
    assert "+ trigger as-postgres@postgres: create (missing)" in created.stdout
    assert "+ trigger elsewhere@postgres: create (missing)" in created.stdout
    cron = _cron(db)
    assert cron["as-postgres"][1:] == ("*/10 * * * *", "SELECT 1", database, "postgres")
    assert cron["elsewhere"][1:] == ("0 * * * *", "SELECT 2", OTHER_DB, "postgres")
    assert query(db.url, "SELECT key, protect FROM reconciler.managed WHERE kind = 'trigger' AND key LIKE '%@%'"
                         " ORDER BY key") == [("as-postgres@postgres", True), ("elsewhere@postgres", False)]
    assert_converged(db.url, first)

    # cron.alter_job edits them in place: a new schedule, and a move to the connected database
    moved = write_manifest(tmp_path, _with({**AS_POSTGRES, "schedule": "*/20 * * * *"},
                                           {**ELSEWHERE, "database": database}), name="moved.yaml")
    updated = reconcile(db.url, "--apply", manifest=moved)
    assert_ok(updated)
    assert "~ trigger as-postgres@postgres: update (changed in moved.yaml: schedule)" in updated.stdout
    assert "~ trigger elsewhere@postgres: update (changed in moved.yaml: database)" in updated.stdout
    after = _cron(db)
    assert after["as-postgres"] == (cron["as-postgres"][0], "*/20 * * * *", "SELECT 1", database, "postgres")
    assert after["elsewhere"] == (cron["elsewhere"][0], "0 * * * *", "SELECT 2", database, "postgres")
    assert_converged(db.url, moved)


def test_protect_holds_for_a_trigger_of_another_user(other_db: DbTarget, tmp_path: Path) -> None:
    db = other_db
    declared = write_manifest(tmp_path, _with(AS_POSTGRES, ELSEWHERE), name="declared.yaml")
    assert_ok(reconcile(db.url, "--apply", manifest=declared))
    protected_jobid = _cron(db)["as-postgres"][0]

    dropped = write_manifest(tmp_path, _with(prune=True), name="dropped.yaml")
    pruned = reconcile(db.url, "--prune", "--apply", manifest=dropped)
    assert_ok(pruned)
    assert "- trigger elsewhere@postgres: delete (not declared)" in pruned.stdout
    # protected: kept, and listed so the removal from the manifest is visible
    assert "    trigger as-postgres@postgres: kept (removed from dropped.yaml; protected)" in pruned.stdout
    assert set(_cron(db)) == {"as-postgres"}
    assert _cron(db)["as-postgres"][0] == protected_jobid
    assert_converged(db.url, dropped, "--prune")
