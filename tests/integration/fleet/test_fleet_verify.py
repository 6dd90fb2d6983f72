"""`reconcile --watch --apply --targets --verify-interval`: each target's pipeline verified on its own run;
one broken pipeline (the Edge Function's secret no longer matches: 401) drops only that target's check.

Two clusters (the session's supabase and vanilla ones: pg_cron fires in one database per cluster), each
with the Edge Function stand-in. Both are applied and verified (their http and preflight checks pass; their
runs check fails until the trigger's first firing: "has never run"); then target b's Edge Function is given
another secret, and the next pg_cron firing (once a minute) is answered 401 for b only. Slow: it waits for that firing, like the verify e2e tests.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from localdb import create_app_tables
from localdb.edge import EdgeFunction
from tests.fix_db import Resetter
from tests.integration.apply_support import MANIFEST, wait_until
from tests.integration.controller_support import Watcher, metric

CRON_SECRET = "fleet-verify-cron-secret-4e7d21"
OTHER_SECRET = "fleet-verify-other-secret-9a03bc"
SERVICE_KEY = "fleet-verify-service-role-key-55f2"

pytestmark = pytest.mark.slow


def test_only_the_broken_targets_pipeline_check_drops(_resetter: Resetter, _vanilla_resetter: Resetter,
                                                      tmp_path: Path) -> None:
    _resetter.reset()
    _vanilla_resetter.reset()
    clusters = {"tenant-a": _resetter.cluster, "tenant-b": _vanilla_resetter.cluster}
    edges = {name: EdgeFunction(c.url(), CRON_SECRET, port=0).start() for name, c in clusters.items()}
    watcher = None
    try:
        for cluster in clusters.values():
            with psycopg.connect(cluster.url(), autocommit=True) as conn:
                create_app_tables(conn)
        targets = tmp_path / "targets.yaml"
        targets.write_text("version: 1\ntargets:\n" + "".join(
            f"  - name: {name}\n    database_url: {{from_env: {name.upper().replace('-', '_')}_URL}}\n"
            f"    secrets: {{project_url: {{from_env: {name.upper().replace('-', '_')}_EDGE}}}}\n" for name in clusters))
        env = {"CRON_SECRET": CRON_SECRET, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY, "SUPABASE_URL": "unused",
               **{f"{n.upper().replace('-', '_')}_URL": c.url() for n, c in clusters.items()},
               **{f"{n.upper().replace('-', '_')}_EDGE": e.url for n, e in edges.items()}}
        watcher = Watcher("postgresql://unused@/unused", MANIFEST, "--targets", str(targets), "--apply",
                          "--verify-interval", "2s", interval="1s", workdir=tmp_path, name="fleet-verify", env=env)
        watcher.wait_http()

        def check(target: str, family: str) -> float:
            return metric(watcher.metrics(), "reconciler_fleet_target_pipeline_check", target=target, check=family)

        def verified(target: str) -> bool:
            return metric(watcher.metrics(), "reconciler_fleet_target_pipeline_last_verified_timestamp_seconds",
                          target=target) > 0

        wait_until("both targets verified", lambda: all(verified(n) for n in clusters), 30)
        for name in clusters:
            assert check(name, "http") == 1 and check(name, "preflight") == 1, watcher.stderr()[-3000:]
        edges["tenant-b"].secret = OTHER_SECRET  # the Edge Function's secret changed behind the reconciler's back

        # after the next firing: b's trigger ran (runs passes) but its request was refused (http fails)
        wait_until("a firing judged on both targets, tenant-b's http check failing",
                   lambda: check("tenant-b", "http") == 0 and check("tenant-b", "runs") == check("tenant-a", "runs") == 1,
                   130)
        samples = watcher.metrics()
        families = {"preflight", "runs", "http", "executions", "jobs_freshness", "housekeeping", "secret_literals"}
        for family in families:
            assert metric(samples, "reconciler_fleet_target_pipeline_check", target="tenant-a", check=family) == 1, family
            assert metric(samples, "reconciler_fleet_pipeline_failing_targets", check=family) == (family == "http")
        assert check("tenant-b", "http") == 0
        assert 401 in edges["tenant-b"].statuses and 401 not in edges["tenant-a"].statuses
        http_failed = [e for e in watcher.events("target_pipeline_check_changed")
                       if e.get("status") == "fail" and e.get("check") == "http"]
        assert [e["target"] for e in http_failed] == ["tenant-b"] and "(HTTP 401)" in http_failed[0]["failing"][0]
        assert metric(samples, "reconciler_fleet_target_up", target="tenant-b") == 1  # reconciled fine: only the pipeline is broken
        text = watcher.stderr() + watcher.get("/metrics").text
        for secret in (CRON_SECRET, OTHER_SECRET, SERVICE_KEY):
            assert secret not in text
    finally:
        if watcher is not None:
            watcher.close()
        for edge in edges.values():
            edge.stop()
        _resetter.reset()
        _vanilla_resetter.reset()
