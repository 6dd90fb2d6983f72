"""Issue 18, "Done when": a controller exports the pipeline checks, a real Prometheus sees alerts fire and
resolve, and a webhook receives one message per state change with no secret in it.

One pg_cron timeline, shared by every scenario (pg_cron 1.4 fires at minute boundaries):

    setup       runbook applied; the Edge Function stand-in holds ANOTHER secret than the vault;
                `reconcile --watch` (report mode: no --apply, so nothing is fixed behind the test's back)
                with --notify; Prometheus scrapes it every second with the shipped rules (`for:` 0s), and
                the test polls its API every 0.1 s
    minute M    the trigger fires into a 401 → TriggerUnauthorized fires, one "failing" message
    meanwhile   the edge gets the vault's secret (the runbook's fix); the trigger is paused behind our back
                → SchedulerNotFiring and DriftNotCorrected fire; `reconcile --apply` → both resolve
    minute M+1  the trigger fires into a 200 → TriggerUnauthorized resolves, one "recovered" message
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from localdb import create_app_tables
from localdb.edge import EdgeFunction
from tests.fix_db import Resetter
from tests.integration.apply_support import MANIFEST, reconcile
from tests.integration.controller_support import disable_trigger, metric, wait_until, watcher
from tests.integration.observability_support import Receiver, fast_rules, prometheus_server

pytestmark = pytest.mark.slow

CRON_SECRET = "prom-vault-cron-secret-91d2e7"
EDGE_SECRET = "prom-edge-other-secret-3c8a05"
SERVICE_KEY = "prom-service-role-key-77b1f4"
HTTP = "master-scheduler: http"
RUNS = "master-scheduler: runs"
#: What the test's duration is made of (measured, docs/observability.md): pg_cron 1.4 fires at minute
#: boundaries and the test needs two firings of the trigger, the 401 and then, after the fix, the 200. So
#: it lasts the wait for the first boundary after the apply (0-60 s, wherever the clock is) plus 60 s,
#: plus about 4 s before the controller is up and 3-5 s after the second firing (a cycle, a scrape, an
#: evaluation, a poll, the notification, shutting down). Shorter intervals shave well under a second off
#: that remainder: not worth a controller verifying twice as often or a scrape timeout of 500 ms on a
#: busy CI machine. Polling the API is cheap, so it is polled often.
POLL = 0.1


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(refuse_first=1)  # the first delivery is refused once: the retry must deliver it
    try:
        yield r
    finally:
        r.close()


def test_alerts_fire_and_resolve_and_notifications_arrive_once(_resetter: Resetter, tmp_path: Path,
                                                               receiver: Receiver) -> None:
    _resetter.reset()
    cluster = _resetter.cluster
    url, su = cluster.url(), cluster.superuser_url()
    with psycopg.connect(url, autocommit=True) as conn:
        create_app_tables(conn)
    edge = EdgeFunction(url, EDGE_SECRET, port=0).start()
    env = {"SUPABASE_URL": edge.url, "CRON_SECRET": CRON_SECRET, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY}
    secrets = (CRON_SECRET, EDGE_SECRET, SERVICE_KEY, edge.url)
    try:
        applied = reconcile(url, "--apply", env=env)
        assert applied.exit_code == 0, applied.output
        with watcher(url, MANIFEST, "--notify", receiver.url, workdir=tmp_path, env=env) as w, \
                prometheus_server(tmp_path, [f"127.0.0.1:{w.port}"], fast_rules(tmp_path / "rules.yaml")) as prom:
            w.wait_http()
            wait_until("Prometheus scraping the controller", prom.targets_up, 15, interval=POLL)
            # before the first firing the trigger has never run: a check fails, liveness and readiness hold
            w.wait_event("pipeline_check_changed", 15, where=lambda e: e["check"] == RUNS and e["status"] == "fail")
            assert w.status("/healthz") == 200 and w.status("/readyz") == 200

            # minute M: the 401
            wait_until("the trigger's 401 seen by Prometheus",
                       lambda: "TriggerUnauthorized" in prom.alerts(), 80, interval=POLL)
            firing = prom.alerts()["TriggerUnauthorized"]
            assert firing[0]["trigger"] == "master-scheduler" and firing[0]["severity"] == "critical"
            samples = w.metrics()
            assert metric(samples, "reconciler_pipeline_check", check=HTTP) == 0
            assert metric(samples, "reconciler_trigger_last_http_status_code", trigger="master-scheduler") == 401
            assert metric(samples, "reconciler_trigger_http_responses_total", trigger="master-scheduler",
                          code_class="4xx") >= 1
            assert metric(samples, "reconciler_trigger_last_success_timestamp_seconds",
                          trigger="master-scheduler") > 0
            assert w.status("/healthz") == 200 and w.status("/readyz") == 200  # failing checks never flip them
            wait_until("the 401 notification", lambda: receiver.events("pipeline_check_failing", check=HTTP), 10)

            # the runbook's fix on the edge; then the trigger paused behind our back, with nothing correcting it
            edge.secret = CRON_SECRET
            disable_trigger(su)
            wait_until("SchedulerNotFiring and DriftNotCorrected firing",
                       lambda: {"SchedulerNotFiring", "DriftNotCorrected"} <= prom.alerts().keys(), 15, interval=POLL)
            assert prom.alerts()["DriftNotCorrected"][0]["kind"] == "trigger"
            fixed = reconcile(url, "--apply", env=env)
            assert fixed.exit_code == 0, fixed.output
            wait_until("SchedulerNotFiring and DriftNotCorrected resolved",
                       lambda: not {"SchedulerNotFiring", "DriftNotCorrected"} & prom.alerts().keys(), 15,
                       interval=POLL)

            # minute M+1: a 200 resolves TriggerUnauthorized
            wait_until("TriggerUnauthorized resolved", lambda: "TriggerUnauthorized" not in prom.alerts(), 80,
                       interval=POLL)
            assert 200 in edge.statuses and 401 in edge.statuses
            wait_until("the recovery notification",
                       lambda: receiver.events("pipeline_check_recovered", check=HTTP), 10)
            samples = w.metrics()
            assert metric(samples, "reconciler_pipeline_check", check=HTTP) == 1
            assert metric(samples, "reconciler_trigger_http_responses_total", trigger="master-scheduler",
                          code_class="2xx") >= 1
            assert "ReconcileFailing" not in prom.alerts() and "ManifestInvalid" not in prom.alerts()
            # every metric the rules and the dashboard name is in what Prometheus scraped from the controller
            from tests.monitoring_support import RULES, dashboard_exprs
            named = set(re.findall(r"\breconciler_[a-z_]+\b", RULES.read_text() + " ".join(dashboard_exprs())))
            assert named - prom.metric_names() == set()
            exposition = w.get("/metrics").text
        # one message per change: each notification matches one logged flip of its check, in order
        for check in (HTTP, RUNS):
            flips = [e["status"] == "fail" for e in w.events("pipeline_check_changed") if e["check"] == check
                     and (e["status"] == "fail") != (e["previous"] == "fail")]
            sent = [b["event"] == "pipeline_check_failing" for b in receiver.bodies
                    if b["event"].startswith("pipeline_check_") and b["details"]["check"] == check]
            assert sent == flips, (check, sent, flips)
        assert [b["event"] for b in receiver.bodies if b["event"].startswith("drift_")] == \
            ["drift_detected", "drift_cleared"]
        assert receiver.refused == 1 and w.events("notification_sent", ) and \
            any(e["attempt"] == 2 for e in w.events("notification_sent"))
        http_failing = receiver.events("pipeline_check_failing", check=HTTP)[0]
        assert "differs from the Edge Function's CRON_SECRET" in http_failing["text"]
        # no secret anywhere: payloads, /metrics, logs; the webhook's token is not logged either
        everything = b"".join(receiver.raw).decode() + exposition + w.stderr() + w.stdout()
        for secret in secrets:
            assert secret not in everything, secret
        assert "receiver-token-4f1c" not in w.stderr()
    finally:
        edge.stop()
