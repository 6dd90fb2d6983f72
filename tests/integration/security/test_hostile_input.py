"""Issue 9, item 4: hostile text in every field is either refused by validation in one line, or stored
byte-for-byte and read back with no false drift; it is never executed.

Each round-trip case writes a manifest with the hostile string in every free-text field to YAML, loads it
through the real loader, applies it with `apply()` as the non-superuser `postgres`, then compares the raw
database values with the manifest's (scheduled_jobs columns, the Vault secret's description and value,
cron.job.command against `render_command`), parses every rendered command with pglast (one statement,
the hostile text among its string constants), checks the tables are still there, and re-plans: empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from pglast import parser as pg_parser
from psycopg import sql

from reconciler.engine.apply import apply, read_and_plan
from reconciler.engine.sources import SecretValue, resolve_secrets
from reconciler.errors import ManifestError, SecretSourceError
from reconciler.kinds.base import PlanOptions
from reconciler.kinds.triggers.command import render_command
from reconciler.manifest import Manifest, load_manifest
from tests import manifest_lookup as lookup
from tests.fix_db import DbTarget
from tests.integration.apply_support import assert_ok, reconcile
from tests.integration.security_support import EXTENSIONS, statement_count

#: Fires only at 00:00 on 1 January: pg_cron never runs the hostile commands during a test.
NEVER_DURING_TESTS = "0 0 1 1 *"

HOSTILE = {
    "sql_injection": "'); DROP TABLE public.scheduled_jobs; --",
    "dollar_quotes": "$$; DROP TABLE public.scheduled_jobs; $$ $tag$ x $tag$ $1",
    "backslashes": "C:\\temp\\new \\' \\\\' E'\\x41' \\0 \\",
    "quotes": "'\"`\u2018\u2019\u201c\u201d'' \"\"",
    "placeholders": "%s %(name)s %% %d {} {0} {name} {{}} $1 :name ?",
    "sql_comments": "/* unclosed -- line comment */ */ /* /* nested",
    "semicolons": ";;; SELECT pg_sleep(10); COMMIT; BEGIN;",
    "rtl_combining": "\u202egnp.exe\u202c e\u0301 a\u0308\u0308\u0308 Z\u0335\u0321\u035c",
    "emoji": "\U0001f600 \U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f3f3\ufe0f\u200d\U0001f308",
    "invisible": "\u200b\u200d\ufeff\u2060\u00a0x",
    "separators": "line\u2028sep\u2029para\u0085nel",
    "multi_line": "first line\n\tsecond 'line'\r\n-- third; $$",
    "psql_meta": "\\! rm -rf / \\gexec \\set ON_ERROR_STOP",
    "long_10k": ("'$$;\\ \u202e\U0001f600" * 1400)[:10240],
}

_LINE_SEPARATORS = re.compile(r"[\r\n\t]")


def one_line(text: str) -> str:
    """The hostile text as a single-line field may hold it (no CR, LF or tab)."""
    return _LINE_SEPARATORS.sub(" ", text)


def no_space(text: str) -> str:
    """The hostile text as an endpoint may hold it (no whitespace at all)."""
    return "".join(c for c in text if not c.isspace())


def manifest_data(h: str) -> dict[str, Any]:
    """A valid manifest with `h` in every field that takes free text."""
    line = one_line(h)
    return {
        "version": 1,
        "extensions": EXTENSIONS,
        "secrets": {"hostile.secret-1": {"from_env": "HOSTILE_SECRET", "description": h}},
        "jobs": [{"name": "hostile_job-1", "type": h, "schedule": "*/5 * * * *",
                  "endpoint": "/functions/v1/" + no_space(h), "description": h, "active": True}],
        "triggers": [
            {"name": "hostile-post", "schedule": NEVER_DURING_TESTS, "http_post": {
                "url": {"secret": "hostile.secret-1", "append": "/functions/v1/" + line},
                "headers": {"Content-Type": "application/json", "x-hostile": line,
                            "Authorization": {"secret": "hostile.secret-1", "prepend": "Bearer " + line}},
                "body": {h: h, "list": [h, {"nested": h}, None, True, -1, 2.5], "at": {"now": "text"}},
                "timeout_milliseconds": 1000}},
            {"name": "hostile-raw", "schedule": NEVER_DURING_TESTS,
             "command": "SELECT " + sql.Literal(h).as_string(None).strip() + " AS hostile /* x */"},
        ],
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    """UTF-8 YAML with raw characters, except that YAML 1.1 reads a raw U+0085, U+2028 or U+2029 as a line
    break: with one of those anywhere, every non-ASCII character is written as an escape instead."""
    raw = not any(c in json.dumps(data) for c in ("\\u0085", "\\u2028", "\\u2029"))
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=raw), encoding="utf-8")
    return path


def string_constants(command: str) -> list[str]:
    """Every string constant in the parse tree of `command` (pglast's JSON tree, `sval` nodes)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "sval" and isinstance(value, str):
                    out.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(pg_parser.parse_sql_json(command)))
    return out


def raw_state(superuser_url: str) -> dict[str, Any]:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        return {
            "jobs": {r[0]: r[1:] for r in conn.execute(
                "SELECT job_name, job_type, schedule, endpoint, description, is_active FROM public.scheduled_jobs")},
            "triggers": {r[0]: r[1:] for r in conn.execute(
                "SELECT jobname::text, schedule, command, active FROM cron.job")},
            "secrets": {r[0]: r[1:] for r in conn.execute(
                "SELECT name, description, decrypted_secret FROM vault.decrypted_secrets")},
            "tables": conn.execute("SELECT to_regclass('public.scheduled_jobs') IS NOT NULL,"
                                   " to_regclass('public.job_executions') IS NOT NULL").fetchone(),
        }


def assert_stored_verbatim(manifest: Manifest, values: dict[str, SecretValue], superuser_url: str) -> None:
    """Every declared value is in the database exactly as declared (bytes, not just meaning)."""
    state = raw_state(superuser_url)
    assert state["tables"] == (True, True)
    for job in manifest.jobs:
        assert state["jobs"][job.name] == (job.type, job.schedule, job.endpoint, job.description, job.active)
    for trig in manifest.triggers:
        schedule, command, active = state["triggers"][trig.name]
        assert (schedule, active) == (trig.schedule, trig.active)
        assert command == render_command(trig)
    for secret in manifest.secrets:
        assert state["secrets"][secret.name] == (secret.description, values[secret.name].reveal())


@pytest.mark.parametrize("h", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_text_is_stored_verbatim_and_never_executed(h: str, audited_db: DbTarget, tmp_path: Path) -> None:
    data = manifest_data(h)
    manifest = load_manifest([write_yaml(tmp_path / "scheduler.yaml", data)])
    assert manifest.jobs[0].description == h  # the YAML round trip keeps every character
    assert manifest.secrets[0].description == h
    values = {"hostile.secret-1": SecretValue(h)}

    result = apply(audited_db.url, manifest, values, PlanOptions())
    assert result.plan.counts()["create"] == 7  # 3 extensions, a secret, a job, two triggers

    assert_stored_verbatim(manifest, values, audited_db.superuser_url)
    post = render_command(lookup.trigger(manifest, "hostile-post"))
    assert statement_count(post) == 1
    constants = string_constants(post)
    for expected in (h, one_line(h), "/functions/v1/" + one_line(h), "Bearer " + one_line(h)):
        assert expected in constants  # a string literal, never SQL
    _, again = read_and_plan(audited_db.url, manifest, values, PlanOptions())
    assert again.is_empty, [(c.kind, c.key, c.fields) for c in again.mutating]
    assert apply(audited_db.url, manifest, values, PlanOptions()).history_id is None


def test_dollar_quote_in_a_header_stays_a_literal_through_the_cli(audited_db: DbTarget, tmp_path: Path) -> None:
    """`reconcile --apply` end to end: the DROP TABLE description and the `$$` header change nothing else."""
    data = manifest_data("x")
    data["jobs"][0]["description"] = "'); DROP TABLE public.scheduled_jobs; --"
    data["triggers"][0]["http_post"]["headers"]["x-hostile"] = "$$); DROP TABLE public.scheduled_jobs; --$$"
    path = write_yaml(tmp_path / "scheduler.yaml", data)
    env = {"HOSTILE_SECRET": "s3cret $$ '; DROP TABLE public.scheduled_jobs; --"}
    assert_ok(reconcile(audited_db.url, "--apply", manifest=path, env=env))

    state = raw_state(audited_db.superuser_url)
    assert state["tables"] == (True, True)
    assert state["jobs"]["hostile_job-1"][3] == "'); DROP TABLE public.scheduled_jobs; --"
    command = state["triggers"]["hostile-post"][1]
    assert statement_count(command) == 1
    assert "$$); DROP TABLE public.scheduled_jobs; --$$" in string_constants(command)
    manifest = load_manifest([path])
    assert command == render_command(lookup.trigger(manifest, "hostile-post"))
    result = reconcile(audited_db.url, "--detailed-exitcode", manifest=path, env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert resolve_secrets(manifest, env)["hostile.secret-1"].reveal() == state["secrets"]["hostile.secret-1"][1]


RAW_COMMANDS = {
    "comment": "SELECT 1 /* x */",
    "two_statements": "SELECT 1; SELECT 2;",
    "dollar_quoted": "SELECT $$ ' ; -- $$, $t$ $$ $t$",
    "only_a_comment": "-- nothing to run\n/* at all */",
    "not_sql": "%s {} \\ '$$ \u202e\U0001f600",
    "unterminated_comment": "SELECT 1 /* never closed",
    "backslash_string": "SELECT E'\\\\ \\' \\x41', '\\'",
}


@pytest.mark.parametrize("command", list(RAW_COMMANDS.values()), ids=list(RAW_COMMANDS))
def test_raw_trigger_command_is_stored_as_written(command: str, audited_db: DbTarget) -> None:
    """A `command:` trigger is the user's own SQL: kept byte-for-byte, run only by pg_cron, never by us."""
    manifest = Manifest.model_validate({"version": 1, "extensions": EXTENSIONS, "triggers": [
        {"name": "raw", "schedule": NEVER_DURING_TESTS, "command": command}]})
    apply(audited_db.url, manifest, {}, PlanOptions())
    state = raw_state(audited_db.superuser_url)
    assert state["triggers"]["raw"][1] == command
    assert state["tables"] == (True, True)
    _, again = read_and_plan(audited_db.url, manifest, {}, PlanOptions())
    assert again.is_empty


# --- refused by validation, in one line each ------------------------------------------------------------


def _base() -> dict[str, Any]:
    return manifest_data("ok")


def _set(path: tuple[Any, ...], value: Any):
    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


REFUSED = {
    # NUL bytes, wherever text goes (written as the YAML escape "\0")
    "nul_in_description": (("jobs", 0, "description"), "a\0b", "jobs[0] (hostile_job-1).description: contains a NUL byte"),
    "nul_in_job_type": (("jobs", 0, "type"), "a\0b", "jobs[0] (hostile_job-1).type: contains a NUL byte"),
    "nul_in_endpoint": (("jobs", 0, "endpoint"), "/a\0b", "jobs[0] (hostile_job-1).endpoint: contains a NUL byte"),
    "nul_in_command": (("triggers", 1, "command"), "SELECT '\0'", "triggers[1] (hostile-raw).command: contains a NUL byte"),
    "nul_in_header": (("triggers", 0, "http_post", "headers", "x-hostile"), "a\0", "contains a NUL byte"),
    "nul_in_body": (("triggers", 0, "http_post", "body", "list"), ["a\0"], "contains a NUL byte"),
    "nul_in_append": (("triggers", 0, "http_post", "url", "append"), "/x\0", "contains a NUL byte"),
    "nul_in_secret_description": (("secrets", "hostile.secret-1", "description"), "\0",
                                  'secrets["hostile.secret-1"].description: contains a NUL byte'),
    "escape_sequence": (("jobs", 0, "description"), "\x1b[31mred", "contains the control character U+001B"),
    # names have a pattern
    "name_quote": (("jobs", 0, "name"), "a'b", 'jobs[0].name: "a\'b" is not valid'),
    "name_dollar": (("jobs", 0, "name"), "a$$b", "is not valid"),
    "name_semicolon": (("triggers", 0, "name"), "x; DROP TABLE t", "triggers[0].name: \"x; DROP TABLE t\" is not valid"),
    "name_space": (("jobs", 0, "name"), "a b", "is not valid"),
    "name_emoji": (("jobs", 0, "name"), "job\U0001f600", "is not valid"),
    "name_long_s": (("jobs", 0, "name"), "\u017fob", "is not valid"),  # matched (?i)[a-z] before the fix
    "name_kelvin": (("triggers", 0, "name"), "\u212aelvin", "is not valid"),
    "name_dotless_i": (("jobs", 0, "name"), "\u0131d", "is not valid"),
    "name_rtl": (("jobs", 0, "name"), "a\u202eb", 'jobs[0].name: "a\\u202eb" is not valid'),
    "name_line_separator": (("jobs", 0, "name"), "a\u2028b", 'jobs[0].name: "a\\u2028b" is not valid'),
    "name_64_bytes": (("jobs", 0, "name"), "j" * 64, "must be at most 63 bytes (got 64)"),
    "name_leading_dash": (("triggers", 0, "name"), "-lead", "is not valid"),
    "secret_name_quote": (("triggers", 0, "http_post", "url", "secret"), "a'b", 'unknown secret "a\'b"'),
    "header_name": (("triggers", 0, "http_post", "headers"), {"x y": "1"}, '"x y" is not valid: an HTTP header name'),
    "header_newline": (("triggers", 0, "http_post", "headers", "x-hostile"), "a\nb", "must be a single line"),
    "endpoint_space": (("jobs", 0, "endpoint"), "/a b", "must not contain whitespace"),
    "endpoint_relative": (("jobs", 0, "endpoint"), "'; --", 'must be a path starting with "/"'),
    "blank_type": (("jobs", 0, "type"), " \u2028 ", "jobs[0] (hostile_job-1).type: must not be empty"),
    "schedule_injection": (("jobs", 0, "schedule"), "'; DROP TABLE public.scheduled_jobs; --",
                           "jobs[0] (hostile_job-1).schedule: invalid schedule"),
}


@pytest.mark.parametrize("path, value, expected", list(REFUSED.values()), ids=list(REFUSED))
def test_refused_with_one_clear_line(path: tuple[Any, ...], value: Any, expected: str, tmp_path: Path) -> None:
    data = _base()
    _set(path, value)(data)
    file = write_yaml(tmp_path / "scheduler.yaml", data)
    with pytest.raises(ManifestError) as info:
        load_manifest([file])
    message = info.value.one_line()
    assert len(info.value.problems) == 1, message
    assert len(message.splitlines()) == 1 and message.isprintable(), repr(message)
    assert message.startswith(f"{file}:"), message
    assert expected in message


def test_raw_nul_byte_in_the_file_is_a_yaml_error(tmp_path: Path) -> None:
    file = tmp_path / "scheduler.yaml"
    file.write_bytes(yaml.safe_dump(_base()).encode().replace(b"hostile_job-1", b"hostile\0job"))
    with pytest.raises(ManifestError) as info:
        load_manifest([file])
    message = info.value.one_line()
    assert message.startswith(f"{file}:") and "YAML cannot contain the character U+0000" in message, message
    assert len(message.splitlines()) == 1


def test_lone_surrogate_from_python_is_refused() -> None:
    """The YAML loader refuses "\\ud800"; the Python API must too (UTF-8 cannot encode it)."""
    data = _base()
    data["jobs"][0]["description"] = "x\ud800"
    with pytest.raises(ValueError, match="lone surrogate U\\+D800"):
        Manifest.model_validate(data)


def test_nul_byte_in_a_secret_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"abc\0def\n")
    manifest = Manifest.model_validate({"version": 1, "secrets": {"s": {"from_file": str(secret)}}})
    with pytest.raises(SecretSourceError, match="contains a NUL byte") as info:
        resolve_secrets(manifest, {})
    assert "abc" not in info.value.one_line() and len(info.value.one_line().splitlines()) == 1
