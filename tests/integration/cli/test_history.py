"""`reconcile history` as a reviewer reads it: each entry's command, and --show's before/after as field changes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    MARKERS,
    assert_ok,
    execute,
    job,
    reconcile,
    reconcile_sub,
    write_manifest,
)


def test_show_renders_before_and_after_as_field_changes(audited_db: DbTarget, tmp_path: Path) -> None:
    url = audited_db.url
    assert_ok(reconcile(url, "--apply"))
    edited = write_manifest(tmp_path, lambda d: job(d, "fetch_rss_feeds").update(schedule="*/10 * * * *"))
    assert_ok(reconcile(url, "--apply", manifest=edited))

    shown = reconcile_sub(url, "history", "--show", "2", manifest=None)
    assert_ok(shown)
    after = shown.stdout.split("\nBefore/after of each change:\n", 1)[1]
    assert after == ("  ~ job fetch_rss_feeds: update (changed in scheduler.yaml: schedule)\n"
                     '      schedule: "*/15 * * * *" → "*/10 * * * *"\n')

    created = reconcile_sub(url, "history", "--show", "1", manifest=None)
    assert_ok(created)
    after = created.stdout.split("\nBefore/after of each change:\n", 1)[1]
    assert '  + secret cron_secret: create (missing)\n      name: "cron_secret"\n      value: (sensitive)\n' in after
    assert ('  + job fetch_rss_feeds: create (missing)\n      endpoint: "/functions/v1/fetch-rss-feeds"\n'
            '      job_name: "fetch_rss_feeds"\n      job_type: "fetch_rss"\n      schedule: "*/15 * * * *"\n') in after
    assert '"job_name":' not in after  # fields, not raw JSON
    assert not any(marker in shown.output + created.output for marker in MARKERS)


def test_an_apply_that_only_adopts_reads_in_sync_and_is_listed_as_adopt(audited_db: DbTarget) -> None:
    url = audited_db.url
    assert_ok(reconcile(url, "--apply"))
    execute(audited_db.superuser_url, "DELETE FROM reconciler.managed")  # as if the objects were made by hand

    plan = reconcile(url, "--dry-run", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    summary = plan.stdout.splitlines()[-1]
    assert summary.startswith("Plan: 0 to create, 0 to update, 0 to delete, ")
    assert summary.endswith("to adopt. The database is in sync; applying only records that the reconciler "
                            "manages these objects.")
    assert_ok(reconcile(url, "--apply"))

    listing = reconcile_sub(url, "history", manifest=None)
    assert [line.split()[4] for line in listing.stdout.splitlines()] == ["adopt", "apply"]
    entries = json.loads(reconcile_sub(url, "history", "--format", "json", manifest=None).stdout)["entries"]
    assert [(e["id"], e["command"], e["arguments"]) for e in entries] == [(2, "adopt", "--apply"), (1, "apply", "--apply")]
