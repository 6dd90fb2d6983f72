"""Issue 5: ownership, pruning and `reconcile down` against the real database.

The reconciler touches only what it recorded in reconciler.managed; pruning is opt-in (`--prune`), follows
the manifest's policy, spares `protect: true` items, and keeps every pruned row's previous values in
reconciler.history.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    JOB_NAMES,
    MANIFEST,
    SECRET_NAMES,
    SECRETS_ENV,
    assert_converged,
    assert_no_markers,
    assert_ok,
    cron_job,
    dump,
    execute,
    history_rows,
    jobs,
    query,
    reconcile,
    reconcile_sub,
    secret_digests,
    write_manifest,
)

HAND_MADE = "SELECT cron.schedule('hand-made', '0 * * * *', 'select 1')"
EXTRA_TRIGGER = {"name": "extra-trigger", "schedule": "*/10 * * * *", "command": "SELECT 2"}


def _without_job(name: str):
    def edit(data: dict[str, Any]) -> None:
        data["jobs"] = [j for j in data["jobs"] if j["name"] != name]
    return edit


@pytest.fixture
def applied(supabase_like: DbTarget) -> DbTarget:
    """The stack applied from scheduler.yaml, plus a cron job made by hand by the same role."""
    assert_ok(reconcile(supabase_like.url, "--apply"))
    execute(supabase_like.url, HAND_MADE)
    return supabase_like


def test_hand_made_cron_job_is_unmanaged_and_survives_prune(applied: DbTarget) -> None:
    plan = reconcile(applied.url, "--detailed-exitcode", "--prune")
    assert plan.exit_code == 0, plan.output  # unmanaged objects are reported, never changed
    assert "No changes." in plan.stdout
    verbose = reconcile(applied.url, "-v", "--format", "json", "--prune")
    changes = {(c["kind"], c["key"]): c for c in json.loads(verbose.stdout)["changes"]}
    assert changes[("trigger", "hand-made")]["action"] == "unmanaged"

    hand = cron_job(applied.superuser_url, "hand-made")
    assert_ok(reconcile(applied.url, "--prune", "--apply"))
    assert cron_job(applied.superuser_url, "hand-made") == hand


def test_rows_it_never_wrote_survive_prune(applied: DbTarget, tmp_path: Path) -> None:
    """A row the application wrote under another job_name is not the reconciler's to prune."""
    su = applied.superuser_url
    execute(su, "INSERT INTO public.scheduled_jobs (job_name, job_type, schedule) VALUES ('app_job', 'custom', '0 0 * * *')")
    manifest = write_manifest(tmp_path, lambda d: d["prune"].update(jobs="delete"))
    rows = query(su, "SELECT row_to_json(j)::text FROM public.scheduled_jobs j ORDER BY 1")

    plan = reconcile(applied.url, "--prune", "--detailed-exitcode", manifest=manifest)
    assert plan.exit_code == 0, plan.output
    assert "? job app_job: unmanaged (not declared)" in plan.stdout
    assert_ok(reconcile(applied.url, "--prune", "--apply", manifest=manifest))
    assert query(su, "SELECT row_to_json(j)::text FROM public.scheduled_jobs j ORDER BY 1") == rows


def test_removed_job_untouched_without_prune_then_deactivated(applied: DbTarget, tmp_path: Path) -> None:
    su = applied.superuser_url
    manifest = write_manifest(tmp_path, _without_job("cleanup_old_cache"))
    before = dump(su)
    assert_converged(applied.url, manifest)
    assert_ok(reconcile(applied.url, "--apply", manifest=manifest))
    assert dump(su) == before

    plan = reconcile(applied.url, "--detailed-exitcode", "--prune", manifest=manifest)
    assert plan.exit_code == 2
    assert "job cleanup_old_cache: deactivate (not declared)" in plan.stdout
    assert "? trigger hand-made: unmanaged (not declared)" in plan.stdout
    assert_ok(reconcile(applied.url, "--prune", "--apply", manifest=manifest))
    assert jobs(su)["cleanup_old_cache"]["is_active"] is False
    assert all(j["is_active"] for n, j in jobs(su).items() if n != "cleanup_old_cache")
    assert cron_job(su, "hand-made") is not None
    assert_converged(applied.url, manifest, "--prune")


def test_prune_delete_keeps_previous_values_in_history(applied: DbTarget, tmp_path: Path) -> None:
    su = applied.superuser_url
    old = jobs(su)["cleanup_old_cache"]
    manifest = write_manifest(tmp_path, lambda d: (_without_job("cleanup_old_cache")(d),
                                                   d["prune"].update(jobs="delete")))
    result = reconcile(applied.url, "--prune", "--apply", manifest=manifest)
    assert_ok(result)
    assert "job cleanup_old_cache: delete (not declared)" in result.stdout
    assert "cleanup_old_cache" not in jobs(su)
    assert len(jobs(su)) == len(JOB_NAMES) - 1
    # the row stays, marked removed, so the next plan knows the tool itself removed it
    assert query(su, "SELECT removed, applied FROM reconciler.managed WHERE kind = 'job' AND key = 'cleanup_old_cache'") \
        == [(True, None)]

    history_id, _, _, changes = history_rows(su)[-1]
    [deleted] = [c for c in changes if c["key"] == "cleanup_old_cache"]
    assert deleted["action"] == "delete" and deleted["after"] is None
    assert {k: deleted["before"][k] for k in old} == old
    assert deleted["before"]["job_name"] == "cleanup_old_cache"

    shown = reconcile_sub(applied.url, "history", "--show", str(history_id), manifest=None)
    assert_ok(shown)
    assert f"Apply #{history_id}" in shown.stdout
    assert '- job cleanup_old_cache: delete (not declared)\n      endpoint: "/functions/v1/cleanup-old-cache"\n' \
        in shown.stdout.split("Before/after of each change:\n", 1)[1]
    assert 'schedule: "0 5 * * 0"' in shown.stdout
    listing = reconcile_sub(applied.url, "history", manifest=None)
    assert f"#{history_id} " in listing.stdout
    assert_no_markers(shown.output + listing.output)


def test_history_never_records_the_database_password(supabase_like: DbTarget,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """History keeps the mode and options of the command, never the database URL or its password."""
    url = supabase_like.url.replace("postgres@", "postgres:apply-pw-marker-41c9@")  # trust auth ignores it
    args = ["-f", str(MANIFEST), "--apply", "--database-url", url]
    monkeypatch.setattr(sys, "argv", ["reconcile", *args])
    result = CliRunner().invoke(main, args, env=SECRETS_ENV, catch_exceptions=False)
    assert_ok(result)
    [(history_id, command, summary, changes)] = history_rows(supabase_like.superuser_url)
    assert command == "--apply" and "postgresql://" not in command
    shown = reconcile_sub(supabase_like.url, "history", "--show", str(history_id), manifest=None)
    assert "apply-pw-marker-41c9" not in "\n".join((result.output, shown.output, command, summary, json.dumps(changes)))


def test_protected_items_are_never_pruned(supabase_like: DbTarget, tmp_path: Path) -> None:
    su = supabase_like.superuser_url

    def protect(data: dict[str, Any]) -> None:
        data["jobs"][-1]["protect"] = True  # cleanup_old_cache
        data["triggers"].append({**EXTRA_TRIGGER, "protect": True})
        data["secrets"]["service_role_key"]["protect"] = True
    first = write_manifest(tmp_path, protect, name="first.yaml")
    assert_ok(reconcile(supabase_like.url, "--apply", manifest=first))
    assert query(su, "SELECT key FROM reconciler.managed WHERE protect ORDER BY key") \
        == [("cleanup_old_cache",), ("extra-trigger",), ("service_role_key",)]

    def drop_all(data: dict[str, Any]) -> None:
        _without_job("cleanup_old_cache")(data)
        del data["secrets"]["service_role_key"]
        data["prune"] = {"jobs": "delete", "triggers": "delete", "secrets": "delete"}
    second = write_manifest(tmp_path, drop_all, name="second.yaml")
    before = dump(su)
    result = reconcile(supabase_like.url, "--prune", "--apply", manifest=second)
    assert_ok(result)
    assert "No changes." in result.stdout
    assert dump(su) == before
    assert cron_job(su, "extra-trigger") is not None
    assert "service_role_key" in secret_digests(su)
    assert jobs(su)["cleanup_old_cache"]["is_active"] is True


def test_removed_trigger_is_unscheduled_only_with_prune(applied: DbTarget, tmp_path: Path) -> None:
    su = applied.superuser_url
    with_extra = write_manifest(tmp_path, lambda d: d["triggers"].append(dict(EXTRA_TRIGGER)), name="extra.yaml")
    assert_ok(reconcile(applied.url, "--apply", manifest=with_extra))
    extra = cron_job(su, "extra-trigger")
    master = cron_job(su)
    assert extra is not None and extra["command"] == "SELECT 2"

    assert_ok(reconcile(applied.url, "--apply"))  # scheduler.yaml no longer declares it; no --prune
    assert cron_job(su, "extra-trigger") == extra

    result = reconcile(applied.url, "--prune", "--apply")
    assert_ok(result)
    assert "trigger extra-trigger: delete (not declared)" in result.stdout
    assert cron_job(su, "extra-trigger") is None
    assert cron_job(su) == master
    assert cron_job(su, "hand-made") is not None
    [pruned] = [c for c in history_rows(su)[-1][3] if c["key"] == "extra-trigger"]
    assert pruned["before"]["command"] == "SELECT 2" and pruned["before"]["schedule"] == "*/10 * * * *"
    assert_converged(applied.url)


# -- reconcile down ------------------------------------------------------------------------------------


def test_down_rolls_back_what_it_manages_and_apply_restores_it(applied: DbTarget) -> None:
    su = applied.superuser_url
    before = dump(su)
    hand = cron_job(su, "hand-made")
    digests = secret_digests(su)
    extensions = before["extensions"]

    dry = reconcile_sub(applied.url, "down", "--dry-run")
    assert_ok(dry)
    assert "- trigger master-scheduler: delete (rollback)\n" in dry.stdout
    assert "! job fetch_google_news: deactivate (rollback)\n" in dry.stdout
    assert "not declared" not in dry.stdout  # everything is declared: the reason is the rollback
    assert "Warning: 14 change(s) delete or deactivate existing objects" in dry.stdout
    data = json.loads(reconcile_sub(applied.url, "down", "--format", "json").stdout)
    actions = {(c["kind"], c["key"]): c["action"] for c in data["changes"]}
    reasons = {c["reason"] for c in data["changes"] if c["action"] in ("delete", "deactivate")}
    assert reasons == {"rollback"}
    assert [c["reason"] for c in data["changes"] if c["action"] == "unmanaged"] == [
        "not created or adopted by reconcile; left alone"]
    assert actions == {("trigger", "master-scheduler"): "delete", ("trigger", "hand-made"): "unmanaged",
                       **{("job", n): "deactivate" for n in JOB_NAMES},
                       **{("secret", n): "no-op" for n in SECRET_NAMES if ("secret", n) in actions}}
    assert dump(su) == before

    down = reconcile_sub(applied.url, "down", "--apply")
    assert_ok(down)
    # it ends as --apply does, and its warning does not list the 14 changes a second time
    assert down.stdout.endswith("Plan: 0 to create, 0 to update, 1 to delete, 13 to deactivate; 3 no longer declared,"
                                " kept.\nRollback complete (history #2).\n"), down.stdout
    assert "Warning: 14 change(s) delete or deactivate existing objects (all of the above).\n" in down.stdout
    assert down.stdout.count("job fetch_google_news") == 1
    assert cron_job(su) is None
    assert cron_job(su, "hand-made") == hand
    assert set(jobs(su)) == set(JOB_NAMES)
    assert not any(j["is_active"] for j in jobs(su).values())
    assert secret_digests(su) == digests
    assert dump(su)["extensions"] == extensions
    history_id, command, _, changes = history_rows(su)[-1]
    assert command == "down"
    assert {(c["kind"], c["action"]) for c in changes} == {("trigger", "delete"), ("job", "deactivate")}
    assert_no_markers(down.output + json.dumps(changes))

    again = reconcile_sub(applied.url, "down", "--dry-run")
    assert again.stdout.endswith("No changes. The database matches the rollback (reconcile down). 16 no longer declared,"
                                 " kept.\n"), again.stdout
    with_secrets = reconcile_sub(applied.url, "down", "--apply", "--include-secrets")
    assert_ok(with_secrets)
    assert secret_digests(su) == {}
    assert dump(su)["extensions"] == extensions
    assert cron_job(su, "hand-made") == hand

    restored = reconcile(applied.url, "--apply")
    assert_ok(restored)
    assert_converged(applied.url)
    # history names what each entry did, as text and as JSON
    listing = reconcile_sub(applied.url, "history", manifest=None)
    assert [line.split()[4] for line in listing.stdout.splitlines()] == ["apply", "down", "down", "apply"]
    entries = json.loads(reconcile_sub(applied.url, "history", "--format", "json", manifest=None).stdout)["entries"]
    assert [(e["id"], e["command"], e["arguments"]) for e in entries] == [
        (4, "apply", "--apply"), (3, "down", "down --include-secrets"), (2, "down", "down"), (1, "apply", "--apply")]
    assert all(j["is_active"] for j in jobs(su).values())
    assert secret_digests(su) == digests
    master = cron_job(su)
    assert master is not None and master["active"]
    assert master["command"] == next(r[3] for r in before["cron.job"] if r[1] == "master-scheduler")
    assert set(SECRET_NAMES) == set(secret_digests(su))
