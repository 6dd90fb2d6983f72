"""render_command: exact text for the runbook trigger, determinism, and quoting that hostile strings cannot escape."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pglast
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pglast import ast
from pglast.visitors import Visitor
from pydantic import ValidationError

from reconciler.kinds.triggers.command import render_command, sql_literal
from reconciler.manifest import TriggerSpec
from tests.unit.planning import RUNBOOK_TRIGGER_COMMAND

RUNBOOK_TRIGGER = {
    "name": "master-scheduler",
    "schedule": "* * * * *",
    "http_post": {
        "url": {"secret": "project_url", "append": "/functions/v1/run-scheduled-jobs"},
        "headers": {"Content-Type": "application/json", "x-cron-secret": {"secret": "cron_secret"}},
        "body": {"triggered_by": "pg_cron", "timestamp": {"now": "text"}},
    },
}

HOSTILE = [
    "it's",
    "$$; DROP TABLE cron.job; --",
    "\\'; SELECT 1; --",
    "back\\slash\\",
    "'); SELECT pg_sleep(10); --",
    "$q$ $$ $x$",
    "line\nbreak",
    "/* comment */ -- x",
    "e'x'",
    "\u00e9\u2603\U0001f600",
]


class _Strings(Visitor):
    def __init__(self) -> None:
        self.strings: list[str] = []
        self.functions: list[str] = []

    def visit_A_Const(self, ancestors: Any, node: ast.A_Const) -> None:
        if isinstance(node.val, ast.String):
            self.strings.append(node.val.sval)

    def visit_FuncCall(self, ancestors: Any, node: ast.FuncCall) -> None:
        self.functions.append(".".join(n.sval for n in node.funcname))


def parsed(text: str) -> _Strings:
    statements = pglast.parse_sql(text)
    assert len(statements) == 1
    assert isinstance(statements[0].stmt, ast.SelectStmt)
    visitor = _Strings()
    visitor(statements[0])
    return visitor


def trigger(**post: Any) -> TriggerSpec:
    return TriggerSpec.model_validate({"name": "t", "schedule": "* * * * *", "http_post": post})


def test_runbook_trigger_exact_text() -> None:
    assert render_command(TriggerSpec.model_validate(RUNBOOK_TRIGGER)) == RUNBOOK_TRIGGER_COMMAND


def test_runbook_trigger_parses_and_embeds_no_value() -> None:
    found = parsed(RUNBOOK_TRIGGER_COMMAND)
    assert "net.http_post" in found.functions
    assert found.strings.count("project_url") == 1 and found.strings.count("cron_secret") == 1


def test_command_trigger_is_returned_as_written() -> None:
    spec = TriggerSpec(name="vacuum", schedule="0 3 * * *", command="VACUUM ANALYZE public.job_executions;  ")
    assert render_command(spec) == "VACUUM ANALYZE public.job_executions;  "


def test_literal_url_timeout_prepend_and_nested_body() -> None:
    spec = trigger(
        url="https://example.com/run",
        headers={"Authorization": {"secret": "service_role_key", "prepend": "Bearer "}},
        body={
            "n": 5,
            "ratio": 0.5,
            "ok": True,
            "none": None,
            "tags": ["a", 1],
            "meta": {"k": "v"},
            "empty": {},
        },
        timeout_milliseconds=2000,
    )
    assert (
        render_command(spec)
        == """\
SELECT net.http_post(
  url := 'https://example.com/run',
  headers := jsonb_build_object(
    'Authorization', 'Bearer ' || (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'service_role_key')
  ),
  body := jsonb_build_object(
    'n', 5,
    'ratio', 0.5,
    'ok', true,
    'none', NULL,
    'tags', jsonb_build_array(
      'a',
      1
    ),
    'meta', jsonb_build_object(
      'k', 'v'
    ),
    'empty', jsonb_build_object()
  ),
  timeout_milliseconds := 2000
) AS request_id"""
    )
    parsed(render_command(spec))


def test_empty_headers_and_body() -> None:
    text = render_command(trigger(url="https://example.com"))
    assert "headers := jsonb_build_object()" in text and "body := jsonb_build_object()" in text
    parsed(text)


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_stay_string_constants(hostile: str) -> None:
    spec = trigger(
        url={"secret": "project_url", "append": "/x" + hostile.replace("\n", "")},
        headers={"x-h": hostile.replace("\n", "")},
        body={hostile: hostile, "nested": [hostile, {hostile: hostile}]},
    )
    found = parsed(render_command(spec))
    one_line = hostile.replace("\n", "")
    assert found.strings.count(hostile) == 5 + (hostile == one_line)  # body: key, value, item, key, value
    assert one_line in found.strings  # the header value
    assert "/x" + one_line in found.strings
    assert found.functions.count("net.http_post") == 1


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40))
def test_any_text_round_trips(value: str) -> None:
    try:
        spec = trigger(url="https://example.com", body={"k": value, value: 1})
    except ValidationError:
        # the only reason to refuse such text: a control character (tab and line breaks are allowed)
        assert re.search(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", value), repr(value)
        return
    found = parsed(render_command(spec))
    assert value in found.strings


@pytest.mark.parametrize("where", ["body", "header", "append", "secret"])
def test_nul_bytes_are_rejected_at_validation(where: str) -> None:
    post: dict[str, Any] = {"url": "https://example.com"}
    if where == "body":
        post["body"] = {"k": "a\x00b"}
    elif where == "header":
        post["headers"] = {"x-h": "a\x00b"}
    elif where == "append":
        post["url"] = {"secret": "project_url", "append": "/a\x00b"}
    else:
        post["url"] = {"secret": "project\x00url"}
    with pytest.raises(ValidationError, match="NUL byte"):
        trigger(**post)


@pytest.mark.parametrize("value", [
    "plain", "it's", "back\\slash", "both '\\' kinds", "", "é ünï", "two\nlines", 0, 1, -1, 2**70, -(2**70),
    1.5, -2.5, 3.0, 1e300, 1e-7, float("inf"), float("-inf"), float("nan"), True, False, None,
], ids=repr)
def test_literals_are_quoted_as_psycopg_quotes_them(value: object) -> None:
    """The planner quotes without the driver; psycopg's own quoting is the oracle, so stored text stays in sync."""
    from psycopg import sql

    assert sql_literal(value) == sql.Literal(value).as_string(None).strip()


def test_rendering_a_trigger_loads_no_driver() -> None:
    code = ("import sys; from reconciler.manifest import TriggerSpec; from reconciler.kinds.triggers.command import "
            "render_command; render_command(TriggerSpec.model_validate({'name': 'a', 'schedule': '* * * * *', "
            "'http_post': {'url': 'https://example.test/', 'body': {'k': 'it\\'s'}}})); print('psycopg' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
