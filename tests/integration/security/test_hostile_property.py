"""Issue 9, item 4 (property): for any valid manifest and any live state, one apply leaves an empty plan.

hypothesis generates manifests within the model's limits (names from the allowed patterns, hostile text in
descriptions, types, endpoints, header values and bodies, schedules from a pool of valid ones with names,
steps and ranges, http_post and raw-command triggers) and live states (a random subset of the jobs
pre-inserted with random edits, triggers pre-created with another schedule or command or disabled,
secrets present with another value or description, undeclared rows, some of them recorded as managed so
`--prune` acts on them). Each example: reset the rows cheaply as the superuser, build the live state as
`postgres`, `apply()` once, then the plan must be empty and every declared value stored as declared.
Derandomized, so CI sees the same 200 examples every run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg import sql

from reconciler import cron
from reconciler.engine.apply import apply, read_and_plan
from reconciler.engine.sources import SecretValue
from reconciler.kinds.base import PlanOptions
from reconciler.kinds.triggers.command import render_command
from reconciler.kinds.triggers.sqltext import normalise_sql
from reconciler.manifest import Manifest
from tests import manifest_lookup as lookup
from tests.integration.security_support import EXTENSIONS, Connections, reset_rows, statement_count

# --- text --------------------------------------------------------------------------------------------------

_SPECIAL = ["'", '"', "$", "$$", "$x$", ";", "\\", "%s", "%(a)s", "%", "{}", "{0}", "/*", "*/", "--", "\n", "\t",
            "\r\n", " ", "\u202e", "\u0301", "\u0308", "\U0001f600", "\u200d", "\ufeff", "\u2028", "\u00a0", "é",
            "E'", "::", "DROP TABLE public.scheduled_jobs", "`", "\u05d0"]
_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
_piece = st.one_of(st.sampled_from(_SPECIAL), st.text(_chars, max_size=6))
#: Free text as `Text` fields allow it: anything but NUL, surrogates and control characters other than
#: tab, CR and LF.
_short = st.lists(_piece, max_size=8).map("".join)
_long = st.builds(lambda: ("'$$;\\ \u202e" * 1500)[:10240])  # 10 kB
text = st.integers(0, 15).flatmap(lambda i: _long if i == 0 else _short)  # one text in 16 is long
non_blank = text.map(lambda s: s if s.strip() else "x" + s)
line = text.map(lambda s: re.sub(r"[\r\n\t]", " ", s))
no_space = text.map(lambda s: "".join(c for c in s if not c.isspace()))

resource_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", fullmatch=True)
secret_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
header_name = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}", fullmatch=True).filter(
    lambda s: s.lower() != "content-type")

#: Valid for jobs (pg_cron 1.6 rules, read by the application): names, steps, ranges, macros, intervals.
JOB_SCHEDULES = ["* * * * *", "*/5 * * * *", "0-59/5 * * * *", "0 0 * * 1-5", "0 0 * * mon-fri", "15 3 1,15 * *",
                 "0 */2 * jan,jul *", "@daily", "@hourly", "@weekly", "@monthly", "@reboot",
                 "5-10/2 1-23/3 * * sun", "0 4 * * 0", "0 4 * * 7", "30 seconds", "0 0 $ * *", " 1  2  3  4  5 "]
#: Valid on pg_cron 1.4 (the test cluster's) and never due during a test: hour and minute are pinned and
#: the day is 1 January (or 29 February); so pg_cron never runs the generated commands.
TRIGGER_SCHEDULES = ["0 0 1 1 *", "*/5 0 1 1 *", "0-59/5 0 1 jan *", "30 4 1 JAN *", "0 0 29 feb *",
                     "5-10/2 0 1 1 *", "0 0 1,29 1 *", "@yearly", "@annually", "  0   0 1 1 * "]

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=False, allow_infinity=False), text)
body_key = text.filter(lambda k: k not in ("secret", "now"))


def body_value(secrets: list[str]) -> st.SearchStrategy[Any]:
    markers: list[st.SearchStrategy[Any]] = [st.just({"now": "text"})]
    if secrets:
        markers.append(st.builds(lambda s, p, a: {"secret": s, "prepend": p, "append": a},
                                 st.sampled_from(secrets), line, line))
    leaf = st.one_of(json_scalar, *markers)
    return st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(body_key, inner, max_size=3)), max_leaves=6)


# --- manifests and live states ------------------------------------------------------------------------------


@dataclass
class Example:
    manifest: Manifest
    values: dict[str, SecretValue]
    prune: bool
    live_jobs: list[dict[str, Any]]             # rows inserted before the apply (declared or not)
    live_triggers: list[dict[str, Any]]         # cron.schedule() before the apply
    live_secrets: list[tuple[str, str, str]]    # (name, value, description)
    managed: list[tuple[str, str]]              # (kind, key) recorded as managed before the apply


@st.composite
def examples(draw: st.DrawFn) -> Example:
    secret_names = draw(st.lists(secret_name, max_size=3, unique=True))
    secrets = {n: {"from_env": "UNUSED", "description": draw(text)} for n in secret_names}
    values = {n: draw(non_blank) for n in secret_names}
    jobs = []
    for name in draw(st.lists(resource_name, max_size=5, unique=True)):
        jobs.append({"name": name, "type": draw(non_blank), "schedule": draw(st.sampled_from(JOB_SCHEDULES)),
                     "endpoint": "/" + draw(no_space), "description": draw(text), "active": draw(st.booleans())})
    triggers = []
    for name in draw(st.lists(resource_name, max_size=3, unique=True)):
        trig: dict[str, Any] = {"name": name, "schedule": draw(st.sampled_from(TRIGGER_SCHEDULES)),
                                "active": draw(st.booleans())}
        if draw(st.booleans()):
            raw = draw(st.one_of(
                st.sampled_from(["SELECT 1 /* x */", "SELECT 1", "select  1 -- c", "SELECT 1; SELECT 2",
                                 "/* only a comment */", "SELECT $$;'$$"]),
                text.map(lambda s: "SELECT " + sql.Literal(s).as_string(None).strip()),
                non_blank))
            trig["command"] = raw
        else:
            refs = [st.builds(lambda s, p, a: {"secret": s, "prepend": p, "append": a},
                              st.sampled_from(secret_names), line, line)] if secret_names else []
            url = draw(st.one_of(no_space.map(lambda s: "https://example.test/" + s), *refs))
            headers = draw(st.dictionaries(header_name, st.one_of(line, *refs), max_size=3))
            if draw(st.booleans()):
                headers["Content-Type"] = "application/json"
            body = draw(st.dictionaries(body_key, body_value(secret_names), max_size=3))
            post: dict[str, Any] = {"url": url, "headers": headers, "body": body}
            if draw(st.booleans()):
                post["timeout_milliseconds"] = draw(st.integers(1, 300_000))
            trig["http_post"] = post
        triggers.append(trig)
    manifest = Manifest.model_validate({"version": 1, "extensions": EXTENSIONS, "secrets": secrets,
                                        "jobs": jobs, "triggers": triggers})

    live_jobs, managed = [], []
    for job in jobs:
        if not draw(st.booleans()):
            continue
        row = {"job_name": job["name"], "job_type": job["type"], "schedule": job["schedule"],
               "endpoint": job["endpoint"], "description": job["description"], "is_active": job["active"]}
        for field, strategy in (("job_type", non_blank), ("schedule", st.sampled_from(JOB_SCHEDULES)),
                                ("endpoint", st.one_of(st.none(), no_space)),
                                ("description", st.one_of(st.none(), text)), ("is_active", st.booleans())):
            if draw(st.integers(0, 3)) == 0:
                row[field] = draw(strategy)
        live_jobs.append(row)
    if draw(st.booleans()):  # an undeclared row, maybe ours from an earlier apply
        extra = "zz undeclared " + draw(text)  # a space: no declared name can be equal
        live_jobs.append({"job_name": extra, "job_type": draw(non_blank), "schedule": "* * * * *",
                          "endpoint": "/x", "description": draw(text), "is_active": draw(st.booleans())})
        if draw(st.booleans()):
            managed.append(("job", extra))
    live_triggers = []
    for trig in triggers:
        if not draw(st.booleans()):
            continue
        spec = lookup.trigger(manifest, trig["name"])
        live = {"jobname": trig["name"], "schedule": trig["schedule"], "command": render_command(spec),
                "active": trig["active"]}
        edit = draw(st.sampled_from(["none", "schedule", "command", "disable", "enable"]))
        if edit == "schedule":
            live["schedule"] = draw(st.sampled_from(TRIGGER_SCHEDULES))
        elif edit == "command":
            live["command"] = draw(st.sampled_from(["SELECT 2", render_command(spec) + " -- edited", "SELECT 1 /* x */"]))
        else:
            live["active"] = {"none": trig["active"], "disable": False, "enable": True}[edit]
        live_triggers.append(live)
    if draw(st.booleans()):
        extra = "zz undeclared trigger"
        live_triggers.append({"jobname": extra, "schedule": "0 0 1 1 *", "command": "SELECT 1", "active": True})
        if draw(st.booleans()):
            managed.append(("trigger", extra))
    live_secrets = []
    for name in secret_names:
        state = draw(st.sampled_from(["absent", "same", "value", "description"]))
        if state != "absent":
            value = draw(non_blank) if state == "value" else values[name]
            description = draw(text) if state == "description" else secrets[name]["description"]
            live_secrets.append((name, value, description))
    return Example(manifest, {n: SecretValue(v) for n, v in values.items()}, draw(st.booleans()),
                   live_jobs, live_triggers, live_secrets, managed)


# --- the database ---------------------------------------------------------------------------------------------


def build_live_state(c: Connections, ex: Example) -> None:
    with c.app.cursor() as cur:
        for row in ex.live_jobs:
            cur.execute("INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, description,"
                        " is_active) VALUES (%(job_name)s, %(job_type)s, %(schedule)s, %(endpoint)s,"
                        " %(description)s, %(is_active)s)", row)
        for trig in ex.live_triggers:
            cur.execute("SELECT cron.schedule(%(jobname)s, %(schedule)s, %(command)s)", trig)
            if not trig["active"]:
                cur.execute("SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = %s",
                            (trig["jobname"],))
        for name, value, description in ex.live_secrets:
            cur.execute("SELECT vault.create_secret(%s, %s, %s)", (value, name, description))
    if ex.managed:
        with c.su.cursor() as cur:
            cur.executemany("INSERT INTO reconciler.managed (kind, key) VALUES (%s, %s)",
                            ex.managed)


def assert_declared_values_stored(c: Connections, ex: Example) -> None:
    """Written values are the manifest's bytes; a pre-existing value may differ only where it means the same."""
    pre_jobs = {r["job_name"]: r for r in ex.live_jobs}
    rows = {r[0]: r[1:] for r in c.su.execute(
        "SELECT job_name, job_type, schedule, endpoint, description, is_active FROM public.scheduled_jobs")}
    for job in ex.manifest.jobs:
        job_type, schedule, endpoint, description, active = rows[job.name]
        assert (job_type, endpoint, description or "", active) == (job.type, job.endpoint, job.description, job.active)
        if schedule != job.schedule:
            assert job.name in pre_jobs and cron.normalise(schedule) == cron.normalise(job.schedule)
    pre_triggers = {t["jobname"]: t for t in ex.live_triggers}
    cron_rows = {r[0]: r[1:] for r in c.su.execute("SELECT jobname::text, schedule, command, active FROM cron.job")}
    for trig in ex.manifest.triggers:
        schedule, command, active = cron_rows[trig.name]
        assert active == trig.active
        want = render_command(trig)
        if command != want:
            assert trig.name in pre_triggers and normalise_sql(command) == normalise_sql(want)
        if schedule != trig.schedule:
            assert trig.name in pre_triggers and cron.normalise(schedule) == cron.normalise(trig.schedule)
        if trig.http_post is not None:
            assert statement_count(want) == 1
    secrets = {r[0]: r[1:] for r in c.su.execute("SELECT name, description, decrypted_secret FROM vault.decrypted_secrets")}
    for secret in ex.manifest.secrets:
        assert secrets[secret.name] == (secret.description, ex.values[secret.name].reveal())
    assert c.su.execute("SELECT to_regclass('public.scheduled_jobs') IS NOT NULL").fetchone() == (True,)


@settings(max_examples=200, deadline=None, derandomize=True, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(ex=examples())
def test_one_apply_always_leaves_an_empty_plan(ex: Example, connections: Connections) -> None:
    reset_rows(connections)
    build_live_state(connections, ex)
    options = PlanOptions(prune=ex.prune)
    result = apply(connections.url, ex.manifest, ex.values, options)
    for change in result.plan.mutating:
        event(f"{change.action.value} {change.kind}")
    _, after = read_and_plan(connections.url, ex.manifest, ex.values, options)
    assert after.is_empty, [(c.kind, c.key, c.action.value, c.reason, c.fields) for c in after.mutating]
    assert_declared_values_stored(connections, ex)
