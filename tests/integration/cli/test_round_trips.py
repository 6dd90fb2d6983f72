"""Round trips after the connection's set-up, counted on the wire (localdb's fault proxy), for each row
of issue 31's table: the same steps as `bench/latency.py`, without the delays (the counts are stable,
times are not)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
import pytest

from bench.common import SECRETS_ENV, manifest_file
from bench.latency import DRIFTED_JOB, MANIFEST, ROWS, drift, large_row, small_rows
from localdb.faultproxy import FaultProxy
from reconciler.engine.apply import ApplyContext, ApplyResult, apply, read_and_plan
from reconciler.engine.sources import resolve_secrets
from reconciler.errors import ReconcilerError
from reconciler.fleet.runner import CapabilitiesCache, run_target
from reconciler.fleet.target import Target, ValueSource
from reconciler.kinds.base import Capabilities, LiveState, PlanOptions
from reconciler.manifest import load_manifest
from reconciler.model import Plan
from tests.fix_db import DbTarget

#: Round trips after set-up, and connections, per row. Lower them as the reads and the apply get cheaper.
EXPECTED = {
    ROWS[0]: (2, 1),
    ROWS[1]: (3, 1),  # BEGIN + lock + capabilities, the reads, the ROLLBACK
    ROWS[2]: (7, 1),  # ... the statements up to the secrets' COPY, the COPY's two, the rest + re-read, COMMIT
    ROWS[3]: (4, 1),  # ... the statements, records and re-read in one pipeline, COMMIT
    ROWS[4]: (7, 1),  # as the runbook's: the number of jobs changes nothing
}


def test_round_trips_of_the_runbook_rows(audited_db: DbTarget) -> None:
    with FaultProxy(audited_db.cluster.port) as proxy:
        measured = small_rows(proxy, audited_db.superuser_url, lambda: None)
    assert {m.row: (m.round_trips, m.connections) for m in measured} == {r: EXPECTED[r] for r in ROWS[:4]}


def test_round_trips_of_a_first_apply_of_1013_jobs(audited_db: DbTarget) -> None:
    with FaultProxy(audited_db.cluster.port) as proxy, tempfile.TemporaryDirectory() as tmp:
        measured = large_row(proxy, manifest_file(1013, Path(tmp)), lambda: None)
    assert (measured.round_trips, measured.connections) == EXPECTED[ROWS[4]]


def _read(proxy: FaultProxy, known: Capabilities | None = None) -> tuple[int, LiveState, Plan]:
    manifest = load_manifest([str(MANIFEST)])
    values = resolve_secrets(manifest, SECRETS_ENV)
    with proxy.counted_after_setup() as trips:
        live, plan = read_and_plan(proxy.url(), manifest, values, PlanOptions(), known=known)
    return trips(), live, plan


def test_a_read_with_known_capabilities_takes_one_round_trip(audited_db: DbTarget) -> None:
    with FaultProxy(audited_db.cluster.port) as proxy:
        small_rows(proxy, audited_db.superuser_url, lambda: None)  # applied, one job drifted and corrected
        cold_trips, cold, cold_plan = _read(proxy)
        warm_trips, warm, warm_plan = _read(proxy, known=cold.capabilities)
    assert (cold_trips, warm_trips) == (2, 1)
    assert warm == cold and warm_plan.is_empty and cold_plan.is_empty


@pytest.mark.parametrize(("table", "expected_trips"), [
    ("job_executions", 1 + 2),  # only a capability: the warm try ends with its ROLLBACK, then the cold read
    ("scheduled_jobs", 1 + 1 + 2),  # read by a query the old capabilities shaped: it fails, the ROLLBACK is skipped
])
def test_changed_capabilities_are_noticed_and_the_state_read_again(audited_db: DbTarget, table: str,
                                                                   expected_trips: int) -> None:
    with FaultProxy(audited_db.cluster.port) as proxy:
        small_rows(proxy, audited_db.superuser_url, lambda: None)
        _, before, _ = _read(proxy)
        with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE public.{table} CASCADE")
        trips, warm, warm_plan = _read(proxy, known=before.capabilities)
        _, cold, cold_plan = _read(proxy)
    assert f"public.{table}" in before.capabilities.relations
    assert f"public.{table}" not in warm.capabilities.relations
    assert warm == cold and warm_plan.changes == cold_plan.changes
    assert trips == expected_trips


def _apply(proxy: FaultProxy, known: Capabilities | None = None) -> tuple[int, ApplyResult]:
    manifest = load_manifest([str(MANIFEST)])
    values = resolve_secrets(manifest, SECRETS_ENV)
    with proxy.counted_after_setup() as trips:
        result = apply(proxy.url(), manifest, values, PlanOptions(), ApplyContext(known=known))
    return trips(), result


def test_an_apply_with_known_capabilities_begins_and_reads_in_one_round_trip(audited_db: DbTarget) -> None:
    """A `--watch --apply` cycle after the first: the reads the previous capabilities shaped go with the
    BEGIN and the lock; an in-sync cycle is that and its ROLLBACK."""
    with FaultProxy(audited_db.cluster.port) as proxy:
        small_rows(proxy, audited_db.superuser_url, lambda: None)
        cold_trips, cold = _apply(proxy)
        warm_trips, warm = _apply(proxy, known=cold.capabilities)
        drift(audited_db.superuser_url)
        drifted_trips, drifted = _apply(proxy, known=warm.capabilities)
    assert cold.plan.is_empty and warm.plan.is_empty and warm.capabilities == cold.capabilities
    assert (cold_trips, warm_trips) == (3, 2)
    assert [(c.kind, c.key) for c in drifted.plan.mutating] == [("job", DRIFTED_JOB)]
    assert drifted_trips == 3 and drifted.history_id is not None


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("table", "expected_trips"), [
    ("job_executions", 1 + 1 + 1),  # only a capability: the state read with the new ones; the ROLLBACK
    ("scheduled_jobs", 1 + 1 + 2 + 1),  # a shaped read fails: back to the savepoint, the cold read; the ROLLBACK
])
def test_an_apply_notices_changed_capabilities_and_reads_again(audited_db: DbTarget, table: str,
                                                               expected_trips: int) -> None:
    """Stopped at its plan (on_plan raises), so the count is the BEGIN, the reads and the ROLLBACK."""
    manifest = load_manifest([str(MANIFEST)])
    values = resolve_secrets(manifest, SECRETS_ENV)
    shown: list[Plan] = []

    def stop(plan: Plan) -> None:
        shown.append(plan)
        raise _Stop

    with FaultProxy(audited_db.cluster.port) as proxy:
        small_rows(proxy, audited_db.superuser_url, lambda: None)
        _, before = _apply(proxy)
        with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE public.{table} CASCADE")
        _, cold, cold_plan = _read(proxy)
        with proxy.counted_after_setup() as trips, pytest.raises(_Stop):
            apply(proxy.url(), manifest, values, PlanOptions(), ApplyContext(known=before.capabilities, on_plan=stop))
        counted = trips()
    assert before.capabilities is not None and f"public.{table}" in before.capabilities.relations
    assert f"public.{table}" not in cold.capabilities.relations
    assert [c for c in shown[0].changes if c.mutating] == [c for c in cold_plan.changes if c.mutating]
    assert counted == expected_trips


def test_a_relation_dropped_inside_the_apply_sends_the_re_read_back_to_its_savepoint(audited_db: DbTarget) -> None:
    """Something in the database drops a relation the re-read was shaped to read (here a trigger on the
    history row): the shaped read fails in the statements' pipeline; the apply goes back to the SAVEPOINT
    before it, reads cold, re-plans (the jobs are missing now) and fails at the correction, named by its
    change: one line, nothing committed."""
    with FaultProxy(audited_db.cluster.port) as proxy:
        small_rows(proxy, audited_db.superuser_url, lambda: None)
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        conn.execute("""CREATE FUNCTION public.drop_jobs() RETURNS trigger LANGUAGE plpgsql AS
                        $$BEGIN DROP TABLE public.scheduled_jobs CASCADE; RETURN NULL; END$$""")
        conn.execute("CREATE TRIGGER drop_jobs AFTER INSERT ON reconciler.history FOR EACH ROW"
                     " EXECUTE FUNCTION public.drop_jobs()")
        histories = conn.execute("SELECT count(*) FROM reconciler.history").fetchone()
    drift(audited_db.superuser_url)
    manifest = load_manifest([str(MANIFEST)])
    values = resolve_secrets(manifest, SECRETS_ENV)
    with pytest.raises(ReconcilerError) as failed:
        apply(audited_db.url, manifest, values, PlanOptions())
    with psycopg.connect(audited_db.superuser_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('public.scheduled_jobs') IS NOT NULL").fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM reconciler.history").fetchone() == histories
        conn.execute("DROP TRIGGER drop_jobs ON reconciler.history")
    line = failed.value.one_line()
    assert line.startswith("insert 13 job row(s) failed: relation \"public.scheduled_jobs\" does not exist"), line


def test_a_fleet_targets_next_run_begins_and_reads_in_one_round_trip(audited_db: DbTarget) -> None:
    """The fleet runner keeps each target's capabilities between runs, as a `--watch` cycle does."""
    with FaultProxy(audited_db.cluster.port) as proxy:
        small_rows(proxy, audited_db.superuser_url, lambda: None)
        target = Target("alpha", ValueSource(from_env="ALPHA_URL"))
        environ = {**SECRETS_ENV, "ALPHA_URL": proxy.url()}
        cache = CapabilitiesCache()
        counts = []
        for apply_mode in (True, True, False):
            with proxy.counted_after_setup() as trips:
                result = run_target(target, [str(MANIFEST)], environ, PlanOptions(), apply=apply_mode,
                                    capabilities=cache)
            assert result.ok and result.plan is not None and result.plan.is_empty, result.error
            counts.append(trips())
    assert counts == [3, 2, 1]  # cold apply, warm apply (BEGIN + lock + reads, ROLLBACK), warm plan
    assert cache.get("alpha") is not None
