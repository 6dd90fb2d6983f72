"""The fleet CLI's pure parts: exit codes, the summary table, the JSON document."""

from __future__ import annotations

from reconciler.cli.fleet import document, exit_code, summary_table
from reconciler.fleet.runner import TargetResult
from reconciler.model import Action, Change, Finding, Plan, Severity

CREATE = Change("job", "fetch_news", Action.CREATE, after={"schedule": "* * * * *"}, reason="missing")
ADOPT = Change("job", "fetch_news", Action.ADOPT, before={"a": 1}, after={"a": 1})
BLOCKING = Finding(Severity.ERROR, "no_pg_cron", "pg_cron is not preloaded")


def _ok(name: str, *changes: Change, findings: tuple[Finding, ...] = ()) -> TargetResult:
    return TargetResult(name, plan=Plan(tuple(changes), findings))


def test_exit_codes() -> None:
    assert exit_code([_ok("a"), _ok("b")], [], detailed=True) == 0
    assert exit_code([_ok("a", CREATE), _ok("b")], [], detailed=True) == 2
    assert exit_code([_ok("a", CREATE)], [], detailed=False) == 0
    assert exit_code([_ok("a", findings=(BLOCKING,))], [], detailed=True) == 2
    assert exit_code([_ok("a", ADOPT)], [], detailed=True) == 0  # adopting only is in sync, as for one database
    assert exit_code([_ok("a", CREATE), TargetResult("b", error="down")], [], detailed=True) == 1
    assert exit_code([_ok("a")], ["generator supabase_branches: 401"], detailed=True) == 1


def test_the_summary_has_a_row_per_target_and_a_count() -> None:
    table = summary_table([_ok("alpha", CREATE), TargetResult("beta-long-name", error="cannot connect")])
    lines = table.splitlines()
    assert lines[0].split() == ["TARGET", "CHANGES", "FINDINGS", "ERROR"]
    assert lines[1].split() == ["alpha", "1", "0", "-"]
    assert lines[2].split()[:3] == ["beta-long-name", "-", "-"] and lines[2].endswith("cannot connect")
    assert lines[-1] == "2 target(s): 1 with changes, 1 failed."


def test_the_document_holds_each_plan_by_name() -> None:
    doc = document([_ok("a", CREATE), TargetResult("b", error="down", retryable=True)], ["gen: x"], apply=False,
                   verbose=False)
    assert doc["format_version"] == "1" and doc["mode"] == "plan" and doc["errors"] == ["gen: x"]
    assert doc["targets"]["a"]["plan"]["changes"][0]["key"] == "fetch_news"
    assert doc["targets"]["a"]["changes"] == 1 and doc["targets"]["a"]["error"] is None
    assert doc["targets"]["b"] == {"plan": None, "error": "down", "retryable": True, "changes": 0, "findings": 0,
                                   "applied": False, "history_id": None, "duration_ms": 0.0}
