"""The fleet controller's metrics: series per target (labelled by the target's name only) and per replica.

docs/fleet-operations.md lists them and their cardinality.
"""

from __future__ import annotations

import contextlib
import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RESULTS = ("success", "drift", "error", "skipped")


def metric_label(name: str) -> str:
    """A target's name as a label value: the targets file allows only these characters anyway."""
    return re.sub(r"[^a-z0-9._-]", "_", name.lower())[:63]


class FleetMetrics:
    """Series per target: 4 cycle counters, last success, up, drift, changes applied (8 in all)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.targets = Gauge("reconciler_fleet_targets", "Targets this replica reconciles.", registry=r)
        self.targets_file_valid = Gauge("reconciler_fleet_targets_file_valid",
                                        "1 when the targets file last read was valid.", registry=r)
        self.generator_errors = Gauge("reconciler_fleet_generator_errors",
                                      "Generators that failed at the last refresh.", registry=r)
        self.shard = Gauge("reconciler_fleet_shard", "This replica's shard (ordinal of replicas); 0/1 when unsharded.",
                           ["ordinal", "replicas"], registry=r)
        self.shard_replicas = Gauge("reconciler_fleet_shard_replicas",
                                    "How many replicas (shards) the fleet is split into; 1 when unsharded.", registry=r)
        self.ready = Gauge("reconciler_fleet_ready", "1 when this replica is ready (/readyz 200), by its shard ordinal.",
                           ["ordinal"], registry=r)
        self.interval = Gauge("reconciler_fleet_interval_seconds", "--interval: how often each target is run.",
                              registry=r)
        self.cycles = Counter("reconciler_fleet_target_cycles", "Runs by target and result (success, drift, error, "
                              "skipped).", ["target", "result"], registry=r)
        self.last_success = Gauge("reconciler_fleet_target_last_success_timestamp_seconds",
                                  "Unix time of the target's last successful run.", ["target"], registry=r)
        self.up = Gauge("reconciler_fleet_target_up", "1 when the target's last run succeeded.", ["target"], registry=r)
        self.drifted = Gauge("reconciler_fleet_target_drifted_resources",
                             "Resources that differ from the manifest after the target's last run.", ["target"],
                             registry=r)
        self.applied = Counter("reconciler_fleet_target_changes_applied", "Changes applied, by target.", ["target"],
                               registry=r)
        self.duration = Histogram("reconciler_fleet_run_duration_seconds", "Duration of one target's run.",
                                  registry=r, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

    def add(self, name: str) -> None:
        label = metric_label(name)
        for result in RESULTS:
            self.cycles.labels(label, result)
        self.up.labels(label).set(0)
        self.drifted.labels(label).set(0)
        self.applied.labels(label)

    def remove(self, name: str) -> None:
        label = metric_label(name)
        for result in RESULTS:
            self.cycles.remove(label, result)
        for family in (self.last_success, self.up, self.drifted, self.applied):
            with contextlib.suppress(KeyError):  # never set (last_success before a first success)
                family.remove(label)
