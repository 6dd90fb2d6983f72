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
    assert lines[0].split() == ["TARGET", "CHANGES", "FINDINGS", "RESULT"]
    assert lines[1].split() == ["alpha", "1", "0", "ok"]
    assert lines[2].split()[:3] == ["beta-long-name", "-", "-"] and lines[2].endswith("error: cannot connect")
    assert lines[4:] == ["2 target(s): 1 with changes, 1 failed.", "", "Errors:", "  beta-long-name: cannot connect"]


def test_the_document_holds_each_plan_by_name() -> None:
    doc = document([_ok("a", CREATE), TargetResult("b", error="down", retryable=True)], ["gen: x"], apply=False,
                   verbose=False)
    assert doc["format_version"] == "1" and doc["mode"] == "plan" and doc["errors"] == ["gen: x"]
    assert doc["targets"]["a"]["plan"]["changes"][0]["key"] == "fetch_news"
    assert doc["targets"]["a"]["changes"] == 1 and doc["targets"]["a"]["error"] is None
    assert doc["targets"]["b"] == {"plan": None, "error": "down", "status": "error", "retryable": True, "changes": 0,
                                   "findings": 0, "applied": False, "history_id": None, "duration_ms": 0.0}
    assert doc["targets"]["a"]["status"] == "ok"


#: A target's error as the runner records it: without the target's name, which the outputs add once.
LONG = ("database URL: the environment variable DB2_URL is not set (set it, or point the target's "
        "database_url at a file)")


def test_an_error_names_its_target_once_and_the_table_cell_is_one_short_line() -> None:
    from reconciler.cli.fleet import SHORT_ERROR

    failed = TargetResult("db2", error=LONG)
    lines = summary_table([failed]).splitlines()
    cell = lines[1].split(None, 3)[3]
    assert cell.startswith("error: database URL: the environment variable") and cell.endswith(" …")
    assert len(cell) <= len("error: ") + SHORT_ERROR + 2
    assert lines[-2:] == ["Errors:", "  db2: " + LONG]
    assert "target db2" not in summary_table([failed])
    doc = document([failed], [], apply=False, verbose=False)
    assert doc["targets"]["db2"]["error"] == LONG


def test_a_target_not_run_reads_pending_and_an_apply_says_what_it_applied() -> None:
    applied = TargetResult("a", plan=Plan((CREATE,)), applied=True, history_id=7)
    in_sync = TargetResult("b", plan=Plan(()))
    pending = TargetResult("c")
    lines = summary_table([applied, in_sync, pending], apply=True).splitlines()
    assert [line.split(None, 3) for line in lines[1:4]] == [
        ["a", "1", "0", "applied (history #7)"], ["b", "0", "0", "in sync"], ["c", "-", "-", "pending"]]
    assert lines[5] == "3 target(s): 1 applied (1 change(s)), 1 in sync, 0 failed, 1 pending."
    assert "Errors:" not in lines
    assert exit_code([applied, in_sync, pending], [], detailed=False) == 0
    doc = document([pending], [], apply=True, verbose=False)
    assert doc["targets"]["c"]["status"] == "pending" and doc["targets"]["c"]["error"] is None


def test_the_markdown_names_each_target_in_a_sentence_and_paths_are_normalised() -> None:
    from reconciler.cli.fleet import markdown
    from reconciler.fleet.target import Target, ValueSource

    target = Target("db2", ValueSource(from_env="DB2_URL"), files=("./overlays/../overlays/db2.yaml",))
    md = markdown([TargetResult("db2", plan=Plan(()))], [], {"db2": target}, ["./fleet/../scheduler.yaml"],
                  apply=False, verbose=False)
    assert "### Reconciler plan for `scheduler.yaml, overlays/db2.yaml` on target `db2`" in md
    assert "**No changes. The database matches scheduler.yaml, overlays/db2.yaml.**" in md
    assert "db2: scheduler.yaml" not in md and "/../" not in md and "./" not in md
    assert "| target | changes | findings | result |" in md and "| `db2` | 0 | 0 | ok |" in md
