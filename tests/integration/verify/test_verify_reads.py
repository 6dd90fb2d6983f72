"""How `reconcile verify` and the controller's pipeline checks read their evidence, counted on the wire:
alone, two round trips in one read-only transaction; in a `--watch` cycle, over the cycle's one
connection and in the plan's own round trips (one more after an apply, to read after its COMMIT), and
none at all when no verification is due. A relation the role may not read, or whose query fails, is
recorded as unavailable without losing the rest, or the plan."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bench.common import TurnCountingProxy
from reconciler.engine.apply import ApplyContext, apply, read_and_plan
from reconciler.engine.sources import resolve_secrets
from reconciler.kinds.base import PlanOptions
from reconciler.manifest import load_manifest
from reconciler.verify.read import EvidenceRead, Reader, declared_triggers
from reconciler.watch.controller import Controller, Settings
from tests.fix_db import DbTarget
from tests.integration.apply_support import MANIFEST, SECRETS_ENV, assert_ok, execute, reconcile
from tests.integration.controller_support import disable_trigger


@pytest.fixture
def applied(supabase_like: DbTarget) -> Iterator[DbTarget]:
    assert_ok(reconcile(supabase_like.url, "--apply"))
    yield supabase_like


def _reader(conn: psycopg.Connection) -> Reader:
    return Reader(conn, declared_triggers(load_manifest([str(MANIFEST)])))


@pytest.mark.parametrize("full", [True, False], ids=["full", "poll"])
def test_evidence_is_read_in_two_round_trips(applied: DbTarget, full: bool) -> None:
    proxy = TurnCountingProxy(applied.cluster.port)
    with psycopg.connect(proxy.url(), autocommit=True) as conn:
        reader = _reader(conn)
        reader.read(full=full)  # connection set-up and type caches out of the count
        with proxy.counted() as trips:
            evidence = reader.read(full=full)
        assert trips() == 2
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # the transaction ended
    assert [j.jobname for j in evidence.cron_jobs] == ["master-scheduler"]
    assert evidence.unavailable == {}
    if full:
        assert len(evidence.scheduled_jobs) == 13


def test_a_relation_the_role_may_not_read_is_unavailable_and_the_rest_is_read(applied: DbTarget) -> None:
    execute(applied.superuser_url, "REVOKE SELECT ON public.job_executions FROM postgres")
    try:
        with psycopg.connect(applied.url, autocommit=True) as conn:
            evidence = _reader(conn).read()
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        execute(applied.superuser_url, "GRANT SELECT ON public.job_executions TO postgres")
    assert evidence.unavailable == {"public.job_executions": "permission denied for table job_executions"}
    assert len(evidence.scheduled_jobs) == 13 and [j.jobname for j in evidence.cron_jobs] == ["master-scheduler"]
    assert {t.table for t in evidence.tables if t.rows is not None} == {"cron.job_run_details",
                                                                           "net._http_response"}


def _settled(proxy: TurnCountingProxy) -> None:
    """Wait until the proxy's threads have relayed the last bytes (the closing Terminate message)."""
    last = -1
    while last != (last := proxy.turns):
        time.sleep(0.1)


def _cycle(controller: Controller, proxy: TurnCountingProxy) -> tuple[int, int]:
    """(round trips, connections opened) of one cycle, connection start-up and close included."""
    with proxy.counted() as trips, proxy.sessions() as sessions:
        controller.cycle()
        _settled(proxy)
    return trips(), sessions()


def _cycles(controller: Controller, result: str) -> float:
    return controller.metrics.registry.get_sample_value("reconciler_cycles_total", {"result": result}) or 0.0


def _verifications(controller: Controller) -> float:
    return controller.metrics.registry.get_sample_value("reconciler_pipeline_verifications_total",
                                                        {"result": "ok"}) or 0.0


@pytest.mark.parametrize("apply_mode", [False, True], ids=["report", "apply"])
def test_a_watch_cycle_reads_the_evidence_over_its_one_connection(applied: DbTarget, apply_mode: bool) -> None:
    proxy = TurnCountingProxy(applied.cluster.port)

    def controller(**settings: Any) -> Controller:
        return Controller(Settings(files=[str(MANIFEST)], url=proxy.url(), apply=apply_mode, environ=SECRETS_ENV,
                                   **settings))

    plan_only, verifying, spaced = controller(verify=False), controller(), controller(verify_interval=3600)
    for c in (plan_only, verifying, spaced):
        c.cycle()  # the first cycle of each: imports and the manifest's load out of the count; `spaced` verifies
    _settled(proxy)
    base, base_sessions = _cycle(plan_only, proxy)
    due, due_sessions = _cycle(verifying, proxy)
    not_due, not_due_sessions = _cycle(spaced, proxy)

    assert (base_sessions, due_sessions, not_due_sessions) == (1, 1, 1)  # one connection per cycle, verifying or not
    # in-sync: a plan carries the evidence in its own round trips, an apply in the round trip of its ROLLBACK;
    # a plan without it reads in one round trip with the previous cycle's capabilities, and the evidence's
    # queries wait for its head's answer: the cold read's two round trips
    assert due == base + (0 if apply_mode else 1), (base, due)
    assert not_due == base, (base, not_due)
    assert [_cycles(c, "success") for c in (plan_only, verifying, spaced)] == [2, 2, 2]
    assert [_verifications(c) for c in (plan_only, verifying, spaced)] == [0, 2, 1]
    assert verifying.pipeline is not None and verifying.pipeline.states.status["preflight"] == "pass"


@pytest.mark.parametrize(("apply_mode", "expected"), [(False, (1, 2)), (True, (2, 2))], ids=["report", "apply"])
def test_an_in_sync_watch_cycle_takes_at_most_two_round_trips_verification_included(
        applied: DbTarget, apply_mode: bool, expected: tuple[int, int]) -> None:
    """After the connection's set-up, a cycle after the first (its capabilities known): report mode reads
    in one round trip, two when the evidence rides along; --apply begins, locks and reads in one and ends
    with its ROLLBACK, which the evidence's round trip carries."""
    proxy = TurnCountingProxy(applied.cluster.port)

    def controller(**settings: Any) -> Controller:
        return Controller(Settings(files=[str(MANIFEST)], url=proxy.url(), apply=apply_mode, environ=SECRETS_ENV,
                                   **settings))

    plan_only, verifying = controller(verify=False), controller()
    for c in (plan_only, verifying):
        c.cycle()  # the first cycle: cold capabilities
    counts = []
    for c in (plan_only, verifying):
        _settled(proxy)
        with proxy.counted_after_setup() as trips:
            c.cycle()
            _settled(proxy)
        counts.append(trips())
    assert tuple(counts) == expected
    assert [_cycles(c, "success") for c in (plan_only, verifying)] == [2, 2]
    assert _verifications(verifying) == 2


def test_after_an_apply_the_evidence_is_read_after_its_commit(applied: DbTarget) -> None:
    """The trigger disabled behind our back: the apply re-enables it, and the evidence read with it says so."""
    manifest = load_manifest([str(MANIFEST)])
    values = resolve_secrets(manifest, SECRETS_ENV)
    proxy = TurnCountingProxy(applied.cluster.port)
    counts = []
    for rider in (None, None, EvidenceRead(declared_triggers(manifest))):  # the first: a warm-up
        disable_trigger(applied.superuser_url)
        _settled(proxy)
        with proxy.counted() as trips, proxy.sessions() as sessions:
            result = apply(proxy.url(), manifest, values, PlanOptions(), ApplyContext(rider=rider))
            _settled(proxy)
        assert [(c.kind, c.key) for c in result.plan.mutating] == [("trigger", "master-scheduler")]
        counts.append((trips(), sessions()))
    assert counts[2] == (counts[1][0] + 1, 1), counts
    assert rider is not None and rider.error is None and rider.evidence is not None
    assert [(j.jobname, j.active) for j in rider.evidence.cron_jobs] == [("master-scheduler", True)]


def test_an_evidence_query_that_fails_in_the_plans_pipeline_costs_neither_the_plan_nor_the_rest(
        applied: DbTarget) -> None:
    """A relation of another shape than verify expects: its query fails inside the plan's pipeline, after
    the kinds' rows arrived; the plan stands, the evidence records that relation as unavailable."""
    manifest = load_manifest([str(MANIFEST)])
    values = resolve_secrets(manifest, SECRETS_ENV)
    execute(applied.superuser_url, "ALTER TABLE public.job_executions RENAME COLUMN error_message TO error_text")
    try:
        read = EvidenceRead(declared_triggers(manifest))
        _, plan = read_and_plan(applied.url, manifest, values, PlanOptions(), rider=read)
    finally:
        execute(applied.superuser_url, "ALTER TABLE public.job_executions RENAME COLUMN error_text TO error_message")
    assert plan.is_empty
    evidence = read.result()
    assert evidence.unavailable == {"public.job_executions": 'column e.error_message does not exist'}
    assert [j.jobname for j in evidence.cron_jobs] == ["master-scheduler"] and len(evidence.scheduled_jobs) == 13
    assert {t.table for t in evidence.tables if t.rows is not None} == {"cron.job_run_details", "net._http_response"}
