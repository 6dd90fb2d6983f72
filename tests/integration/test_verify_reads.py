"""How `reconcile verify` (and the controller's pipeline checks) read their evidence: two round trips in
one read-only transaction, counted on the wire; a relation the role may not read is recorded as
unavailable without losing the rest."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from bench.common import TurnCountingProxy
from reconciler.manifest import load_manifest
from reconciler.verify_read import Reader, declared_triggers
from tests.fix_db import DbTarget
from tests.integration.apply_support import MANIFEST, assert_ok, execute, reconcile


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
