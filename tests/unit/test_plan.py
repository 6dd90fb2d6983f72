"""plan() on hand-built live states: every action and reason, normalisation, pruning rules."""

import subprocess
import sys

import pytest

from reconciler.kinds.base import PlanOptions
from reconciler.kinds.triggers.command import render_command
from reconciler.model import Action
from reconciler.plan import plan
from tests.unit.planning import MANIFEST, VALUES, caps, in_sync_live, job_row, live


def make(live_state, **options):
    return plan(MANIFEST, live_state, VALUES, PlanOptions(**options))


def by(p, kind, key=None):
    return [c for c in p.changes if c.kind == kind and (key is None or c.key == key)]


def test_audited_start_creates_everything():
    p = make(live())
    counts = {k: sum(1 for c in p.changes if c.kind == k and c.action is Action.CREATE)
              for k in ("extension", "secret", "job", "trigger")}
    assert counts == {"extension": 3, "secret": 3, "job": 13, "trigger": 1}
    assert p.counts()["create"] == 20 and not p.is_empty


def test_in_sync_plans_nothing():
    p = make(in_sync_live())
    assert p.is_empty, [(c.kind, c.key, c.action, c.reason) for c in p.mutating]


def test_creates_follow_registry_order():
    kinds = [c.kind for c in make(live()).changes if c.action is Action.CREATE]
    assert kinds == sorted(kinds, key=["extension", "table", "secret", "job", "trigger"].index)


def test_schedule_drift_is_one_field_change():
    state = in_sync_live(job_rows=[job_row(j.name, row_id=str(i), **({"schedule": "*/7 * * * *"} if i == 0 else {}))
                                   for i, j in enumerate(MANIFEST.jobs)])
    (change,) = make(state).mutating
    assert change.action is Action.UPDATE and change.key == "fetch_google_news"
    assert [(f.path, f.old, f.new) for f in change.fields] == [("schedule", "*/7 * * * *", "*/5 * * * *")]
    assert change.reason == "differs: schedule"  # ownership rows without last-applied records: no claim


@pytest.mark.parametrize("schedule", ["*/5  *  * * *", "0-59/5 * * * *", "0,5,10,15,20,25,30,35,40,45,50,55 * * * *"])
def test_equivalent_schedules_are_not_drift(schedule):
    state = in_sync_live(job_rows=[job_row(j.name, row_id=str(i), **({"schedule": schedule} if i == 0 else {}))
                                   for i, j in enumerate(MANIFEST.jobs)])
    assert make(state).is_empty


def _trigger_row(**over):
    t = MANIFEST.triggers[0]
    row = {"jobid": 1, "jobname": t.name, "schedule": t.schedule, "command": render_command(t), "active": True,
           "database": "postgres", "username": "postgres"}
    row.update(over)
    return tuple(row.values())


def test_whitespace_and_comment_edits_of_command_are_not_drift():
    messy = "-- edited by hand\n" + render_command(MANIFEST.triggers[0]).replace("\n", "\n\n   ").replace("SELECT", "select")
    assert make(in_sync_live(trigger_rows=[_trigger_row(command=messy)])).is_empty


def test_command_literal_edit_is_drift():
    edited = render_command(MANIFEST.triggers[0]).replace("pg_cron", "someone")
    (change,) = make(in_sync_live(trigger_rows=[_trigger_row(command=edited)])).mutating
    assert [f.path for f in change.fields] == ["command"]


def test_disabled_trigger_is_update_of_active():
    (change,) = make(in_sync_live(trigger_rows=[_trigger_row(active=False)])).mutating
    assert change.reason == "differs: active" and [(f.path, f.old, f.new) for f in change.fields] == [("active", False, True)]


def test_secret_value_drift_is_sensitive_update():
    rows = [(f"id-{s.name}", s.name, s.description, "0" * 64 if s.name == "cron_secret" else VALUES[s.name].digest)
            for s in MANIFEST.secrets]
    (change,) = make(in_sync_live(secret_rows=rows)).mutating
    assert change.kind == "secret" and change.key == "cron_secret"
    assert [(f.path, f.sensitive, f.old, f.new) for f in change.fields] == [("value", True, None, None)]


def test_rotation_forces_update():
    (change,) = make(in_sync_live(), rotate=frozenset({"cron_secret"})).mutating
    assert change.key == "cron_secret" and change.reason == "rotated"


def test_unmanaged_objects_are_never_touched_even_with_prune():
    rows = [job_row(j.name, row_id=str(i)) for i, j in enumerate(MANIFEST.jobs)] + [job_row("someone_elses", row_id="x")]
    triggers = [_trigger_row(), _trigger_row(jobid=9, jobname="hand-made")]
    p = make(in_sync_live(job_rows=rows, trigger_rows=triggers), prune=True)
    assert p.is_empty
    assert {(c.kind, c.key) for c in p.changes if c.action is Action.UNMANAGED} == {("job", "someone_elses"),
                                                                                     ("trigger", "hand-made")}


def test_managed_undeclared_job_is_deactivated_only_with_prune():
    rows = [job_row(j.name, row_id=str(i)) for i, j in enumerate(MANIFEST.jobs)] + [job_row("retired", row_id="x")]
    managed = [("job", "retired", False)]
    assert make(in_sync_live(job_rows=rows, extra_managed=managed)).is_empty
    (change,) = make(in_sync_live(job_rows=rows, extra_managed=managed), prune=True).mutating
    assert change.action is Action.DEACTIVATE and change.after["is_active"] is False


def test_protected_managed_object_is_never_pruned():
    rows = [job_row(j.name, row_id=str(i)) for i, j in enumerate(MANIFEST.jobs)] + [job_row("keep", row_id="x")]
    assert make(in_sync_live(job_rows=rows, extra_managed=[("job", "keep", True)]), prune=True).is_empty


def test_managed_undeclared_trigger_is_deleted_with_prune():
    triggers = [_trigger_row(), _trigger_row(jobid=9, jobname="old")]
    state = in_sync_live(trigger_rows=triggers, extra_managed=[("trigger", "old", False)])
    (change,) = make(state, prune=True).mutating
    assert change.action is Action.DELETE and change.key == "old" and change.before["jobid"] == 9
    assert make(state).is_empty


def test_duplicates_and_orphans():
    rows = [job_row(j.name, row_id=str(i)) for i, j in enumerate(MANIFEST.jobs)]
    rows += [job_row("ttl_cleanup", row_id="dup"), job_row(None, row_id="orphan")]
    p = make(in_sync_live(job_rows=rows))
    (dup,) = p.mutating
    assert dup.action is Action.DELETE and dup.reason == "duplicate rows" and dup.before["_row"] == "dup"
    orphan = [c for c in p.changes if "orphan" in c.reason]
    assert orphan[0].action is Action.UNMANAGED
    pruned = make(in_sync_live(job_rows=rows), prune=True)
    assert {c.reason for c in pruned.mutating} == {"duplicate rows", "orphan row (job_name is NULL)"}


def test_prune_policy_report_never_deletes_orphan_rows():
    rows = [job_row(j.name, row_id=str(i)) for i, j in enumerate(MANIFEST.jobs)] + [job_row(None, row_id="orphan")]
    reporting = MANIFEST.model_copy(update={"prune": MANIFEST.prune.model_copy(update={"jobs": "report"})})
    p = plan(reporting, in_sync_live(job_rows=rows), VALUES, PlanOptions(prune=True))
    (orphan,) = [c for c in p.changes if "orphan" in c.reason]
    assert orphan.action is Action.UNMANAGED and p.is_empty


def test_deletes_run_after_creates_in_reverse_kind_order():
    triggers = [_trigger_row(jobid=9, jobname="old")]
    managed = [("trigger", "old", False), ("job", "retired", False)]
    rows = [job_row("retired", row_id="x")]
    p = make(live(job_rows=rows, trigger_rows=triggers, managed=managed,
                  capabilities=caps("public.scheduled_jobs", "cron.job", "reconciler.managed")), prune=True)
    actions = [(c.action, c.kind) for c in p.mutating]
    first_destructive = next(i for i, (a, _) in enumerate(actions) if a in (Action.DELETE, Action.DEACTIVATE))
    assert first_destructive > 0 and {a for a, _ in actions[:first_destructive]} == {Action.CREATE}
    assert actions[first_destructive:] == [(Action.DELETE, "trigger"), (Action.DEACTIVATE, "job")]


def test_existing_matching_objects_are_adopted_when_not_managed():
    p = make(in_sync_live(managed=[]))
    assert {c.kind for c in p.changes if c.action is Action.ADOPT} == {"secret", "job", "trigger"}
    assert sum(1 for c in p.changes if c.action is Action.ADOPT) == 17


def test_preflight_findings():
    c = caps("public.scheduled_jobs", settings={"shared_preload_libraries": "", "cron.database_name": "other",
                                                "cron.timezone": "Europe/Paris"})
    codes = {f.code for f in make(live(capabilities=c)).findings}
    assert {"pg_cron_not_preloaded", "pg_cron_wrong_database", "cron_timezone"} <= codes
    no_table = caps(job_columns=frozenset())
    assert "jobs_table_missing" in {f.code for f in make(live(capabilities=no_table)).findings}


def test_plan_module_does_not_import_the_driver():
    code = "import sys, reconciler.plan; sys.exit(1 if 'psycopg' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _vault_and_edge(cron_secret_digest):
    """The plan's cron_secret change and the mirrored Edge Function secret's, for one live vault digest."""
    from reconciler import kinds
    from reconciler.kinds import edge_secrets
    from reconciler.kinds.base import PlanContext

    rows = [(f"id-{s.name}", s.name, s.description,
             cron_secret_digest if s.name == "cron_secret" else VALUES[s.name].digest) for s in MANIFEST.secrets]
    state = in_sync_live(secret_rows=rows)
    want = {"CRON_SECRET": edge_secrets.DesiredEdgeSecret("CRON_SECRET", "cron_secret", VALUES["cron_secret"])}
    edge_live = edge_secrets.EdgeLive(True, "", {"CRON_SECRET": "digest-of-an-old-value"})
    (edge_change,) = kinds.by_name("edge_secret").diff(want, edge_live, PlanContext(state, PlanOptions(), "off"))
    (vault_change,) = by(make(state), "secret", "cron_secret")
    return vault_change.action, edge_change.action


def test_edge_secret_and_vault_agree_on_whether_the_value_is_written():
    # an unreadable vault digest: the vault is not written, so the Edge Function must not get the source value
    assert _vault_and_edge(None) == (Action.NOOP, Action.ADOPT)
    # a readable digest that differs: both are written
    assert _vault_and_edge("digest-of-an-old-value") == (Action.UPDATE, Action.UPDATE)
