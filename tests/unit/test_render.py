"""Renderers on hand-built plans: exact text, JSON shape, Markdown, and redaction by construction."""

import json

from reconciler import render
from reconciler.model import Action, Change, FieldChange, Finding, Plan, Severity


class FakeSecret:
    """Stands in for a SecretValue: an object that is not plain JSON."""

    def __repr__(self):
        return "LEAKED-VALUE"

    __str__ = __repr__


PLAN = Plan(
    (
        Change("extension", "pg_net", Action.CREATE, after={"name": "pg_net", "schema": "extensions", "version": None},
               reason="missing"),
        Change("secret", "cron_secret", Action.UPDATE, before={"id": "1", "name": "cron_secret", "description": ""},
               after={"id": "1", "name": "cron_secret", "description": "", "value": FakeSecret()},
               fields=(FieldChange("value", sensitive=True),), reason="value differs from its source"),
        Change("job", "ttl_cleanup", Action.UPDATE, before={"job_name": "ttl_cleanup", "schedule": "0 3 * * *"},
               after={"job_name": "ttl_cleanup", "schedule": "0 4 * * *"},
               fields=(FieldChange("schedule", "0 3 * * *", "0 4 * * *"),), reason="changed outside git: schedule"),
        Change("job", "ok", Action.NOOP, before={}, after={}),
        Change("trigger", "old", Action.DELETE, before={"jobid": 7, "jobname": "old", "schedule": "* * * * *"},
               reason="not declared"),
    ),
    (Finding(Severity.WARNING, "cron_timezone", "cron.timezone is CET", "set cron.timezone = 'UTC'"),),
)

EXPECTED_TEXT = """\
Changes from scheduler.yaml:

  + extension pg_net: create (missing)
      schema: "extensions"
  - trigger old: delete (not declared)
      schedule: "* * * * *"

Differences without a record of the last apply (who made them is not known):

  ~ secret cron_secret: update (value differs from its source)
      value: (sensitive) changed
  ~ job ttl_cleanup: update (changed outside git: schedule)
      schedule: "0 3 * * *" → "0 4 * * *"

  Warning: 1 change(s) delete or deactivate existing objects:
    delete trigger old

Findings:
  warning: cron.timezone is CET
      fix: set cron.timezone = 'UTC'

Plan: 1 to create, 2 to update, 1 to delete.
"""


def test_text_plan_exact():
    assert render.to_text(PLAN) == EXPECTED_TEXT


def test_text_verbose_shows_noops():
    assert "  job ok: no-op" in render.to_text(PLAN, verbose=True)
    assert "job ok" not in render.to_text(PLAN)


def test_empty_plan_text():
    assert render.to_text(Plan(), manifest_name="scheduler.yaml") == "No changes. The database matches scheduler.yaml.\n"


def test_json_schema_shape():
    doc = json.loads(render.to_json(PLAN))
    assert doc["format_version"] == "1"
    assert doc["summary"]["create"] == 1 and doc["summary"]["update"] == 2 and doc["summary"]["delete"] == 1
    secret = next(c for c in doc["changes"] if c["kind"] == "secret")
    assert secret == {"kind": "secret", "key": "cron_secret", "action": "update", "reason": "value differs from its source",
                      "fields": [{"path": "value", "old": None, "new": None, "sensitive": True, "origin": None}],
                      "origin": None, "kept": False, "last_applied": None}
    assert doc["origins"] == {"manifest": 0, "drift": 0, "conflict": 0, "unknown": 2} and doc["kept"] == 0  # not attributed
    assert doc["findings"] == [{"severity": "warning", "code": "cron_timezone", "message": "cron.timezone is CET",
                                "fix": "set cron.timezone = 'UTC'"}]
    assert {c["kind"] for c in doc["changes"]} <= {"extension", "secret", "job", "trigger", "table"}


def test_markdown_empty_plan_has_no_table():
    md = render.to_markdown(Plan(), manifest_name="scheduler.yaml")
    assert md == "### Reconciler plan for `scheduler.yaml`\n\n**No changes. The database matches scheduler.yaml.**\n"
    assert "| action |" not in render.to_markdown(Plan(changes=(Change("job", "ok", Action.NOOP),)), verbose=True)


def test_markdown_has_table_and_details():
    md = render.to_markdown(PLAN)
    assert "| create | 1 |" in md and "| update | 2 |" in md and "| delete | 1 |" in md
    assert "<details><summary>Changes from scheduler.yaml</summary>" in md
    assert "! job ttl_cleanup: update" in md
    assert "**Warning:** 1 change(s)" in md


def test_non_plain_values_are_redacted_in_every_format():
    leaky = Plan((Change("secret", "s", Action.CREATE, after={"name": "s", "value": FakeSecret(), "description": "d"}),))
    for out in (render.to_text(leaky), render.to_json(leaky), render.to_markdown(leaky)):
        assert "LEAKED-VALUE" not in out
        assert "(sensitive)" in out or '"sensitive": true' in out


def test_multiline_command_is_an_indented_block():
    change = Change("trigger", "t", Action.UPDATE, before={"command": "SELECT 1\nFROM a"}, after={"command": "SELECT 2\nFROM a"},
                    fields=(FieldChange("command", "SELECT 1\nFROM a", "SELECT 2\nFROM a"),), reason="changed outside git: command")
    text = render.to_text(Plan((change,)))
    assert "      command:\n      old: |\n          SELECT 1\n          FROM a\n      new: |\n          SELECT 2\n" in text


def test_a_plan_of_only_destructive_changes_does_not_list_them_twice():
    down = Plan((Change("trigger", "t", Action.DELETE, before={"jobname": "t"}, reason="rollback"),
                 Change("job", "j", Action.DEACTIVATE, before={"is_active": True}, after={"is_active": False},
                        reason="rollback")))
    text = render.to_text(down)
    assert "  Warning: 2 change(s) delete or deactivate existing objects (all of the above).\n" in text
    assert text.count("trigger t") == 1 and text.count("job j") == 1


def test_kept_objects_are_listed_and_counted_by_default():
    kept = Plan((Change("job", "send_daily_digest", Action.NOOP, before={"job_name": "send_daily_digest"},
                        reason="removed from scheduler.yaml; pruning is off"),))
    text = render.to_text(kept)
    assert "    job send_daily_digest: kept (removed from scheduler.yaml; pruning is off)\n" in text
    assert text.endswith("No changes. The database matches scheduler.yaml. 1 no longer declared, kept.\n")
    doc = json.loads(render.to_json(kept))
    assert doc["kept"] == 1 and doc["changes"][0]["kept"] is True


def test_an_adopt_only_plan_says_the_database_is_in_sync():
    adopt = Plan((Change("job", "a", Action.ADOPT, before={}, after={}, reason="exists, not yet managed"),))
    assert render.summary_line(adopt) == ("Plan: 0 to create, 0 to update, 0 to delete, 1 to adopt. The database is in"
                                          " sync; applying only records that the reconciler manages these objects.")


def test_a_recorded_change_reads_as_field_changes() -> None:
    from reconciler.render import change_head, recorded_field_lines

    assert change_head("job", "a", "update", "changed in scheduler.yaml: schedule") == \
        "~ job a: update (changed in scheduler.yaml: schedule)"
    assert recorded_field_lines("update", {"schedule": "*/5 * * * *", "endpoint": "/e"},
                                {"schedule": "*/10 * * * *", "endpoint": "/e"}) == ['schedule: "*/5 * * * *" → "*/10 * * * *"']
    assert recorded_field_lines("update", {"value": "(sensitive)", "description": "x"},
                                {"value": "(sensitive)", "description": "y"}) == ["value: (sensitive)",
                                                                               'description: "x" → "y"']
    assert recorded_field_lines("delete", {"schedule": "0 5 * * 0"}, None) == ['schedule: "0 5 * * 0"']
    assert recorded_field_lines("adopt", {"a": 1}, {"a": 1}) == []
    assert change_head("job", "a", "renamed-later", None) == "? job a: renamed-later"  # another release's action
    assert recorded_field_lines("renamed-later", {"a": 1}, {"a": 2}) == ["a: 1 → 2"]
