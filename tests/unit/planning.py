"""Helpers to build live states by hand for pure planning tests (no database)."""

from __future__ import annotations

import hashlib
from typing import Any

from reconciler import kinds as registry
from reconciler.kinds import extensions, jobs, secrets, triggers
from reconciler.kinds.base import Capabilities, LiveState, Managed
from reconciler.kinds.triggers.command import render_command
from reconciler.manifest import load_manifest
from tests import manifest_lookup as lookup

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
MANIFEST = load_manifest([str(ROOT / "scheduler.yaml")])
JOB_COLUMNS = frozenset({"id", "job_name", "job_type", "schedule", "endpoint", "is_active", "description",
                         "created_at", "updated_at", "last_run_at", "next_run_at"})


class FakeSecretValue:
    def __init__(self, value: str) -> None:
        self._value = value
        self.digest = hashlib.sha256(value.encode()).hexdigest()
        self.generated = False

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "(sensitive)"


VALUES = {"project_url": FakeSecretValue("https://example.test"), "service_role_key": FakeSecretValue("srk"),
          "cron_secret": FakeSecretValue("cs")}


#: Keyword arguments of caps() that set a kind's probe (Capabilities.probes) rather than a field.
PROBE_KWARGS = {"job_columns": "jobs.columns", "job_name_unique": "jobs.name_unique",
                "can_decrypt_secrets": "vault.decrypt", "can_create_secrets": "vault.write",
                "can_alter_cron_jobs": "cron.alter_job"}


def caps(*relations: str, **kw: Any) -> Capabilities:
    probes: dict[str, Any] = {"jobs.columns": JOB_COLUMNS, "jobs.name_unique": True, "vault.decrypt": True,
                              "vault.write": True, "cron.alter_job": True}
    probes.update({PROBE_KWARGS[k]: kw.pop(k) for k in list(kw) if k in PROBE_KWARGS})
    probes.update(kw.pop("probes", {}))
    base = dict(current_user="postgres", database="postgres", is_superuser=False,
                settings={"shared_preload_libraries": "pg_cron", "cron.database_name": "postgres"},
                relations=frozenset(relations), probes=probes)
    base.update(kw)
    return Capabilities(**base)


def ext_rows(installed: dict[str, str] | None = None) -> list[tuple]:
    installed = installed or {}
    defaults = {"pg_cron": "1.4-1", "pg_net": "0.20.4", "supabase_vault": "0.3.1"}
    return [(n, True, v, v if n in installed else None, installed.get(n), False, False)
            for n, v in defaults.items()]


def live(*, capabilities: Capabilities | None = None, installed: dict[str, str] | None = None,
         secret_rows=(), job_rows=(), trigger_rows=(), managed=()) -> LiveState:
    c = capabilities or caps("public.scheduled_jobs", "public.job_executions")
    per_kind = {
        "extension": extensions.kind.from_rows(ext_rows(installed), c),
        "table": {n: c.has(n) for n in ("public.scheduled_jobs", "public.job_executions")},
        "secret": secrets.kind.from_rows(list(secret_rows), c),
        "job": registry.by_name("job").from_rows(list(job_rows), c),
        "trigger": triggers.kind.from_rows(list(trigger_rows), c),
        "edge_secret": registry.by_name("edge_secret").from_rows([], c),
    }
    records = {(k, key): Managed(k, key, protect) for k, key, protect in managed}
    return LiveState(c, per_kind, records, bool(managed))


def job_row(name: str | None, *, row_id: str = "r", **fields: Any) -> tuple:
    spec = lookup.job(MANIFEST, name) if name and any(j.name == name for j in MANIFEST.jobs) else None
    values = {"job_type": spec.type if spec else "t", "schedule": spec.schedule if spec else "* * * * *",
              "endpoint": spec.endpoint if spec else "/x", "description": spec.description if spec else "",
              "is_active": True}
    values.update(fields)
    return (row_id, name, *(values[f] for f in jobs.FIELDS))


def in_sync_live(**kw: Any) -> LiveState:
    """The live state after a perfect apply of scheduler.yaml."""
    c = caps("public.scheduled_jobs", "public.job_executions", "vault.secrets", "vault.decrypted_secrets",
             "cron.job", "reconciler.managed")
    trigger = MANIFEST.triggers[0]
    rows = dict(
        capabilities=c,
        installed={"pg_cron": "pg_catalog", "pg_net": "extensions", "supabase_vault": "vault"},
        secret_rows=[(f"id-{n}", n, s.description, VALUES[n].digest) for n, s in ((s.name, s) for s in MANIFEST.secrets)],
        job_rows=[job_row(j.name, row_id=f"row-{i}") for i, j in enumerate(MANIFEST.jobs)],
        trigger_rows=[(1, trigger.name, trigger.schedule, render_command(trigger), True, "postgres", "postgres")],
        managed=[("secret", s.name, False) for s in MANIFEST.secrets] + [("job", j.name, False) for j in MANIFEST.jobs]
        + [("trigger", trigger.name, False)],
    )
    extra = kw.pop("extra_managed", [])
    rows.update(kw)
    rows["managed"] = list(rows["managed"]) + list(extra)
    return live(**rows)


#: The runbook's master-scheduler command, exactly as the reconciler renders it from scheduler.yaml.
RUNBOOK_TRIGGER_COMMAND = """\
SELECT net.http_post(
  url := (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'project_url') || '/functions/v1/run-scheduled-jobs',
  headers := jsonb_build_object(
    'Content-Type', 'application/json',
    'x-cron-secret', (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'cron_secret')
  ),
  body := jsonb_build_object(
    'triggered_by', 'pg_cron',
    'timestamp', now()::text
  )
) AS request_id"""
