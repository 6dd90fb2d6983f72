"""`run_fleet` / `run_target` on real databases: one result per target, failures isolated, no secret shown."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest

from reconciler.engine import session as run
from reconciler.fleet import runner
from reconciler.fleet.runner import ManifestCache, run_fleet, run_target
from reconciler.fleet.target import Target, ValueSource
from reconciler.kinds.base import PlanOptions
from reconciler.secret_value import SecretValue
from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import MARKERS, SECRETS_ENV
from tests.integration.controller_support import hold_reconciler_lock
from tests.integration.fleet_support import (
    black_hole,
    databases,
    env_targets,
    fleet_manifest,
    unreachable_url,
    url_variable,
)

NAMES = ("fleet-run-a", "fleet-run-b", "fleet-run-c")
OWN_URL = "https://own-project-marker-4f0a.example.test"


@pytest.fixture
def fleet(empty_db: DbTarget, tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str], dict[str, str]]]:
    """(manifest files, the environment, {name: URL}) for three fresh target databases."""
    files = [str(fleet_manifest(tmp_path))]
    with databases(empty_db.cluster, NAMES) as urls:
        environ = {**SECRETS_ENV, **{url_variable(n): u for n, u in urls.items()}}
        yield files, environ, urls


def _no_secret(text: str) -> None:
    for marker in (*MARKERS, OWN_URL, "dead-target-password"):
        assert marker not in text


def test_a_dry_run_plans_every_target_and_a_dead_one_is_one_line(fleet) -> None:  # type: ignore[no-untyped-def]
    files, environ, _ = fleet
    dead = Target("fleet-run-dead", ValueSource(value=SecretValue(unreachable_url(free_port()))))
    results = run_fleet([*env_targets(NAMES), dead], files, environ, PlanOptions(), apply=False, parallel=4)
    assert [r.target for r in results] == sorted([*NAMES, "fleet-run-dead"])
    by_name = {r.target: r for r in results}
    for name in NAMES:
        assert by_name[name].error is None and by_name[name].changes > 0, by_name[name]
    failed = by_name["fleet-run-dead"]
    assert failed.plan is None and failed.retryable and "cannot connect" in (failed.error or "")
    assert "check the target's database URL, from a value fetched by a generator" in (failed.error or "")
    assert "\n" not in (failed.error or "")
    _no_secret(repr(results) + (failed.error or ""))


def test_apply_then_every_target_plans_nothing_and_history_names_the_target(fleet) -> None:  # type: ignore[no-untyped-def]
    files, environ, urls = fleet
    targets = env_targets(NAMES)
    applied = run_fleet(targets, files, environ, PlanOptions(), apply=True, parallel=3)
    assert all(r.applied and r.history_id and r.error is None for r in applied), applied
    again = run_fleet(targets, files, environ, PlanOptions(), apply=False, parallel=3)
    assert all(r.error is None and r.plan is not None and r.plan.is_empty for r in again), again
    with psycopg.connect(urls[NAMES[0]]) as conn:
        commands = [row[0] for row in conn.execute("SELECT command FROM reconciler.history")]
    assert commands == [f"--apply --target {NAMES[0]}"]


def test_a_targets_own_secret_overrides_the_manifests(fleet, empty_db: DbTarget) -> None:  # type: ignore[no-untyped-def]
    files, environ, _ = fleet
    own = Target(NAMES[1], ValueSource(from_env=url_variable(NAMES[1])),
                 secrets={"project_url": ValueSource(value=SecretValue(OWN_URL))})
    results = run_fleet([*env_targets(NAMES[:1]), own], files, environ, PlanOptions(), apply=True, parallel=2)
    assert all(r.error is None for r in results), results
    _no_secret(repr(results))
    values = {}
    for name in NAMES[:2]:
        with psycopg.connect(empty_db.cluster.url(empty_db.cluster.superuser, name)) as conn:
            values[name] = conn.execute("SELECT decrypted_secret FROM vault.decrypted_secrets"
                                        " WHERE name = 'project_url'").fetchone()[0]
    assert values == {NAMES[0]: SECRETS_ENV["SUPABASE_URL"], NAMES[1]: OWN_URL}


def test_a_held_lock_skips_that_target_only(fleet) -> None:  # type: ignore[no-untyped-def]
    files, environ, urls = fleet
    with hold_reconciler_lock(urls[NAMES[0]]):
        results = run_fleet(env_targets(NAMES), files, environ, PlanOptions(), apply=True, parallel=3)
    by_name = {r.target: r for r in results}
    assert by_name[NAMES[0]].lock_held and not by_name[NAMES[0]].applied
    assert all(by_name[n].applied for n in NAMES[1:])


class _Broken(Target):
    def url(self, base: Mapping[str, str]) -> SecretValue:
        raise RuntimeError("bug carrying " + MARKERS[0])


def test_a_bug_in_one_target_does_not_stop_the_others(fleet) -> None:  # type: ignore[no-untyped-def]
    files, environ, _ = fleet
    broken = _Broken("fleet-run-broken", ValueSource(from_env="NOPE"))
    results = run_fleet([broken, *env_targets(NAMES)], files, environ, PlanOptions(), apply=False, parallel=2)
    by_name = {r.target: r for r in results}
    assert by_name["fleet-run-broken"].error == ("unexpected RuntimeError (a bug in the reconciler; the log has the "
                                                 "type)")
    assert all(by_name[n].error is None for n in NAMES)
    _no_secret(repr(results))


def test_a_missing_url_source_is_one_line_in_its_targets_result(fleet) -> None:  # type: ignore[no-untyped-def]
    files, environ, _ = fleet
    result = run_target(Target("lost", ValueSource(from_env="LOST_URL")), files, environ, PlanOptions(), apply=False)
    assert result.target == "lost"  # the outputs name it, once: the error does not
    assert result.error is not None and result.error.startswith("database URL: environment variable "
                                                                 "LOST_URL is not set")
    assert not result.retryable


def test_the_manifest_is_parsed_once_for_the_fleet_and_again_when_edited(fleet, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    files, environ, _ = fleet
    loads: list[tuple[str, ...]] = []
    real = run.load

    def counting(paths, **kw):  # type: ignore[no-untyped-def]
        loads.append(tuple(paths))
        return real(paths, **kw)

    monkeypatch.setattr(run, "load", counting)
    cache = ManifestCache()
    run_fleet(env_targets(NAMES), files, environ, PlanOptions(), apply=False, parallel=3, manifests=cache)
    assert len(loads) <= 3  # threads may race on the very first parse; afterwards it is cached
    loads.clear()
    run_fleet(env_targets(NAMES), files, environ, PlanOptions(), apply=False, parallel=3, manifests=cache)
    assert loads == []
    path = Path(files[0])
    path.write_text(path.read_text() + "\n# edited\n")
    run_target(env_targets(NAMES)[0], files, environ, PlanOptions(), apply=False, manifests=cache)
    assert loads == [tuple(files)]


def test_a_broken_manifest_is_an_error_per_target_on_one_line(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files, environ, _ = fleet
    overlay = tmp_path / "broken.yaml"
    overlay.write_text("version: 1\njobs:\n  - name: x\n    schedule: nope\n")
    target = dataclasses.replace(env_targets(NAMES)[0], files=(str(overlay),))
    result = run_target(target, files, environ, PlanOptions(), apply=False, manifests=runner.ManifestCache())
    assert result.error is not None and "broken.yaml:" in result.error and "\n" not in result.error


def test_a_target_that_never_answers_costs_its_own_connect_timeout_only(fleet) -> None:  # type: ignore[no-untyped-def]
    files, environ, _ = fleet
    with black_hole() as url:
        silent = Target("fleet-run-silent", ValueSource(value=SecretValue(url)))
        started = time.monotonic()
        results = run_fleet([silent, *env_targets(NAMES)], files, environ, PlanOptions(), apply=False, parallel=2,
                            connect_timeout=2)
        elapsed = time.monotonic() - started
    by_name = {r.target: r for r in results}
    assert by_name["fleet-run-silent"].retryable and by_name["fleet-run-silent"].duration >= 1.5
    assert "timeout expired" in (by_name["fleet-run-silent"].error or "")
    # the other worker planned the three others meanwhile: the fleet took about the timeout, not more
    assert all(by_name[n].error is None for n in NAMES)
    assert elapsed < by_name["fleet-run-silent"].duration + 3
    _no_secret(repr(results))
