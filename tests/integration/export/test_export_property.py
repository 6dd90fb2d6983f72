"""Issue 15 (property): whatever live state the superuser leaves, `reconcile export` as postgres plans to adoption only.

hypothesis generates live states on the real cluster, built as the superuser: cron jobs (`cron.schedule_in_database`
as postgres, or as another role postgres cannot see) with schedules drawn from the whole pg_cron 1.4 dialect
(macros, ranges, steps, lists, names, tabs, runs of blanks, trailing text; only what
`cron.parse(..., version=PG_CRON_1_4)` accepts), raw commands with hostile text and reformatted `http_post`
commands; `scheduled_jobs` rows with hostile strings, inactive rows and names no manifest can declare; vault
secrets with hostile names and descriptions. Each example: reset the rows, build the state, export as postgres
(the real CLI, in-process), set the `from_env:` placeholders to the live values (read as the superuser, never
printed), and plan the export: nothing but `adopt`, and no secret value in anything the export printed or wrote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from psycopg import sql

from reconciler import cron
from reconciler.kinds.triggers.command import render_command
from reconciler.manifest import TriggerSpec
from tests.integration.export_support import placeholder_env
from tests.integration.golden_support import invoke
from tests.integration.security_support import Connections, reset_rows

OTHER_ROLE = "export_other_owner"

# --- schedules: the pg_cron 1.4 dialect ------------------------------------------------------------------------

_MACROS = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly", "@reboot"]
_MONTHS = ["jan", "feb", "mar", "Apr", "MAY", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "Tue", "wed", "THU", "fri", "sat"]


def _field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    number = st.integers(low, high).map(str)
    atom = st.one_of(number, st.sampled_from(names)) if names else number
    span = st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda t: f"{min(t)}-{max(t)}")
    if names:
        span = st.one_of(span, st.tuples(st.integers(0, len(names) - 1), st.integers(0, len(names) - 1)).map(
            lambda t: f"{names[min(t)]}-{names[max(t)]}"))
    stepped = st.tuples(st.one_of(st.just("*"), span), st.integers(1, high - low + 1)).map(lambda t: f"{t[0]}/{t[1]}")
    element = st.one_of(st.just("*"), atom, span, stepped)
    return st.lists(element, min_size=1, max_size=3).map(",".join)


_blank = st.sampled_from([" ", "  ", "\t", " \t ", "\t\t"])
_fields = st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12, _MONTHS), _field(0, 7, _DAYS))


@st.composite
def schedules(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 4)) == 0:
        text = draw(st.sampled_from(_MACROS))
    else:
        parts = draw(_fields)
        text = "".join(p + draw(_blank) for p in parts[:-1]) + parts[-1]
        if draw(st.integers(0, 4)) == 0:
            text += draw(_blank) + draw(st.sampled_from(["trailing words", "*", "# note", "x\ty"]))
    if draw(st.booleans()):
        text = draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " ", "\t"]))
    cron.parse(text, version=cron.PG_CRON_1_4)  # only what 1.4 accepts: a failure here is a bug in this strategy
    return text


# --- text ------------------------------------------------------------------------------------------------------

_SPECIAL = ["'", "''", '"', "$$", "$x$", ";", "\\", "%s", "{}", "/*", "*/", "--", "\n", "\t", "\r\n", " ",
            "\u202e", "\u2066", "\u200f", "\u0301", "\U0001f600", "\u200d", "\ufeff", "\u2028", "\u2029", "\u00a0",
            "é", "E'", "::", "`", "\u05d0", ": ", "- ", "#", "&a", "*a", "!!str", "null", "~", "yes"]
_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
text = st.lists(st.one_of(st.sampled_from(_SPECIAL), st.text(_chars, max_size=5)), max_size=7).map("".join)
non_blank = text.map(lambda s: s if s.strip() else "x" + s)
line = text.map(lambda s: re.sub(r"[\r\n\t\u2028\u2029]", " ", s))
declarable = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,30}", fullmatch=True)
#: Secret values: a random token makes each one unmistakable in the export's text.
secret_value = st.tuples(st.from_regex(r"[0-9a-f]{16}", fullmatch=True), text).map(lambda t: f"sv-{t[0]}-{t[1]}")
secret_name = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True), non_blank)


def _raw_command(draw: st.DrawFn) -> str:
    return draw(st.one_of(
        st.sampled_from(["SELECT 1", "select  1 -- c", "SELECT 1; SELECT 2", "/* only a comment */",
                         "SELECT $$;'$$", "SELECT 'a\tb'", "SELECT '\u2028'", "SELECT '\u202ex'"]),
        text.map(lambda s: "SELECT " + sql.Literal(s).as_string(None).strip()),
        non_blank))


def _http_post_command(draw: st.DrawFn) -> str:
    """A command `http_post:` renders, then reformatted by hand the way the runbook writes it."""
    headers = draw(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True).filter(
        lambda h: h.lower() != "content-type"), line, max_size=2))
    body = draw(st.dictionaries(line.filter(lambda k: k not in ("secret", "now")),
                                st.one_of(line, st.integers(), st.just({"now": "text"})), max_size=2))
    spec = TriggerSpec.model_validate({"name": "x", "schedule": "* * * * *", "http_post": {
        "url": "https://example.test/" + draw(st.from_regex(r"[a-z0-9/_-]{0,12}", fullmatch=True)),
        "headers": headers, "body": body}})
    command = render_command(spec)
    style = draw(st.sampled_from(["as-is", "indented", "runbook", "lower"]))
    if style == "indented":
        command = command.replace("\n", "\n    ")
    elif style == "runbook":
        command = "\n  " + command.replace("\n", "\n  ") + ";\n  "
    elif style == "lower":
        command = "select net.http_post(" + command.removeprefix("SELECT net.http_post(")
    return command


@dataclass
class State:
    jobs: list[dict[str, Any]]
    triggers: list[dict[str, Any]]
    secrets: list[tuple[str, str, str]]  # (name, value, description)


@st.composite
def states(draw: st.DrawFn) -> State:
    jobs = []
    for name in draw(st.lists(st.one_of(declarable, non_blank), max_size=4, unique=True)):
        jobs.append({"job_name": name, "job_type": draw(non_blank), "schedule": draw(schedules()),
                     "endpoint": draw(st.one_of(st.none(), line.map(lambda s: "/" + s.replace(" ", "")))),
                     "description": draw(st.one_of(st.none(), text)), "is_active": draw(st.booleans())})
    triggers = []
    for name in draw(st.lists(st.one_of(declarable, line.map(lambda s: s if s.strip() else 'x' + s)), max_size=4, unique=True)):
        command = _http_post_command(draw) if draw(st.booleans()) else _raw_command(draw)
        triggers.append({"jobname": name, "schedule": draw(schedules()), "command": command,
                         "username": draw(st.sampled_from(["postgres", "postgres", OTHER_ROLE])),
                         "active": draw(st.booleans())})
    vault = [(name, draw(secret_value), draw(text))
             for name in draw(st.lists(secret_name, max_size=3, unique=True))]
    return State(jobs, triggers, vault)


def build(c: Connections, state: State) -> None:
    with c.su.cursor() as cur:
        for row in state.jobs:
            cur.execute("INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, description,"
                        " is_active) VALUES (%(job_name)s, %(job_type)s, %(schedule)s, %(endpoint)s,"
                        " %(description)s, %(is_active)s)", row)
        for trig in state.triggers:
            cur.execute("SELECT cron.schedule_in_database(%(jobname)s, %(schedule)s, %(command)s,"
                        " current_database(), %(username)s, %(active)s)", trig)
        for name, value, description in state.secrets:
            cur.execute("SELECT vault.create_secret(%s, %s, %s)", (value, name, description))


def _ensure_other_role(c: Connections) -> None:
    if c.su.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OTHER_ROLE,)).fetchone() is None:
        c.su.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(OTHER_ROLE)))


@settings(max_examples=18, deadline=None, derandomize=True, database=None, print_blob=True,
          phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(state=states())
def test_export_of_any_live_state_plans_only_adoption(state: State, connections: Connections,
                                                      tmp_path: Path) -> None:
    c = connections
    _ensure_other_role(c)
    reset_rows(c)
    build(c, state)
    out = tmp_path / "exported.yaml"
    run = invoke(["export", "-o", str(out)], c.url, {})
    assert run.exit_code == 0, str(run)
    exported = out.read_text()
    values = {name: value for name, value in c.su.execute(
        "SELECT name, decrypted_secret FROM vault.decrypted_secrets WHERE name IS NOT NULL")}
    for value in values.values():
        assert value not in exported + run.stdout + run.stderr, "a secret value leaked into the export"
    hidden = [t["jobname"] for t in state.triggers if t["username"] == OTHER_ROLE]
    if hidden:
        event("a trigger of another role")
    env = placeholder_env(out, values)
    plan_run = invoke(["-f", str(out), "--dry-run", "--detailed-exitcode", "--format", "json"], c.url, env)
    assert plan_run.exit_code == 0, str(plan_run)  # the round-trip guarantee: in sync (adoption is not a change)
    for value in values.values():
        assert value not in plan_run.stdout + plan_run.stderr, "a secret value leaked into the plan"
    plan = json.loads(plan_run.stdout)
    mutating = [(ch["kind"], ch["key"], ch["action"]) for ch in plan["changes"]
                if ch["action"] not in ("no-op", "unmanaged", "adopt")]
    assert mutating == [], f"{exported}\n{json.dumps(plan, indent=1)}"
    adopted = {(ch["kind"], ch["key"]) for ch in plan["changes"] if ch["action"] == "adopt"}
    for kind in sorted({kind for kind, _ in adopted}):
        event(f"adopt {kind}")
    # Whatever the role can see and a manifest can declare is adopted; the other role's triggers are not.
    assert not any(kind == "trigger" and key in hidden for kind, key in adopted), plan
    visible_declarable = [t["jobname"] for t in state.triggers
                          if t["username"] == "postgres" and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,30}",
                                                                          t["jobname"])]
    for name in visible_declarable:
        assert ("trigger", name) in adopted or f"cron job {name!r}" in exported, (name, exported)
