"""Three `reconcile --watch --targets` replicas (StatefulSet ordinals 0, 1, 2) over one target list: every
target is reconciled by exactly one of them; two replicas claiming one shard (a rollout) are harmless."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg

from reconciler.fleet.shard import shard_of
from tests.fix_db import DbTarget
from tests.integration.apply_support import wait_until
from tests.integration.controller_support import Watcher, hold_reconciler_lock, metric
from tests.integration.fleet_support import (
    databases,
    fleet_manifest,
    fleet_watcher,
    targets_yaml,
    url_variable,
)

NAMES = ("shard-a", "shard-b", "shard-c", "shard-d", "shard-e", "shard-f")
REPLICAS = 3


def _targets_seen(watcher: Watcher) -> set[str]:
    return {e["target"] for e in watcher.events("target_cycle_finished")}


def _history(url: str) -> list[str]:
    """The commands of the database's applies (none: the reconciler never applied there)."""
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('reconciler.history')").fetchone() == (None,):
            return []
        return [row[0] for row in conn.execute("SELECT command FROM reconciler.history ORDER BY id")]


@contextlib.contextmanager
def _replicas(tmp_path: Path, targets: Path, env: dict[str, str], pods: list[str]) -> Iterator[list[Watcher]]:
    watchers: list[Watcher] = []
    try:
        for i, pod in enumerate(pods):
            shard_env = {**env, "RECONCILE_SHARD_REPLICAS": str(REPLICAS), "POD_NAME": pod}
            watchers.append(fleet_watcher(tmp_path, targets, "--apply", env=shard_env, name=f"{pod}.{i}"))
        yield watchers
    finally:
        for w in watchers:
            w.close()


def test_each_target_is_reconciled_by_exactly_one_of_three_replicas(empty_db: DbTarget, tmp_path: Path) -> None:
    expected = {i: {n for n in NAMES if shard_of(n, REPLICAS) == i} for i in range(REPLICAS)}
    assert all(expected.values()), "the names were chosen so that every replica has targets"
    fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml(NAMES))
    with databases(empty_db.cluster, NAMES) as urls:
        env = {url_variable(n): u for n, u in urls.items()}
        with _replicas(tmp_path, targets, env, [f"reconciler-{i}" for i in range(REPLICAS)]) as watchers:
            for w in watchers:
                w.wait_http()
            for w in watchers:
                wait_until(f"{w.stderr_path.name} ready", lambda w=w: w.status("/readyz") == 200, 20)
            # a few cycles each, so a target wrongly taken by a second replica would have shown up
            for i, w in enumerate(watchers):
                wait_until("3 runs of each target of the shard", lambda i=i, w=w: all(
                    len([e for e in w.events("target_cycle_finished") if e["target"] == n]) >= 3
                    for n in expected[i]), 20)
            seen = {i: _targets_seen(w) for i, w in enumerate(watchers)}
            for i, w in enumerate(watchers):
                started = w.events("fleet_controller_started")[0]
                assert (started["shard_ordinal"], started["shard_replicas"]) == (i, REPLICAS)
                assert metric(w.metrics(), "reconciler_fleet_shard", ordinal=str(i), replicas=str(REPLICAS)) == 1
                assert metric(w.metrics(), "reconciler_fleet_targets") == len(expected[i])
        assert seen == expected
        assert set().union(*seen.values()) == set(NAMES)
        # one apply per database, by the replica that owns it; every later run found nothing to do
        assert {n: _history(u) for n, u in urls.items()} == {n: [f"--watch --apply --target {n}"] for n in NAMES}


def test_two_replicas_claiming_one_shard_during_a_rollout_are_harmless(empty_db: DbTarget, tmp_path: Path) -> None:
    mine = sorted(n for n in NAMES if shard_of(n, REPLICAS) == 1)
    fleet_manifest(tmp_path)
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets_yaml(NAMES))
    with databases(empty_db.cluster, NAMES) as urls:
        env = {url_variable(n): u for n, u in urls.items()}
        # the old pod reconciler-1 still runs while its replacement has started; both find the targets'
        # locks held (by this test) until each has skipped each target once, then race for them
        with contextlib.ExitStack() as held:
            for name in mine:
                held.enter_context(hold_reconciler_lock(urls[name]))
            with _replicas(tmp_path, targets, env, ["reconciler-1", "reconciler-1"]) as watchers:
                for w in watchers:
                    w.wait_http()
                    wait_until("a skipped run per target", lambda w=w: all(
                        [e for e in w.events("target_cycle_finished") if e["target"] == n and e["result"] == "skipped"]
                        for n in mine), 20)
                held.close()
                for w in watchers:
                    wait_until("a run per target after the release", lambda w=w: all(
                        [e for e in w.events("target_cycle_finished") if e["target"] == n and e["result"] != "skipped"]
                        for n in mine), 20)
                events = [e for w in watchers for e in w.events("target_cycle_finished")]
        assert {e["target"] for e in events} == set(mine)
        for name in mine:
            runs = [e for e in events if e["target"] == name]
            # exactly one run applied; every other one found the lock held (skipped) or nothing to do
            assert len([e for e in runs if e["applied"]]) == 1, runs
            assert all(e["result"] == "skipped" or (e["result"] == "success" and e["error"] is None)
                       for e in runs), runs
        assert {n: len(_history(urls[n])) for n in NAMES} == {n: 1 if n in mine else 0 for n in NAMES}
