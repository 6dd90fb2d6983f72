"""Golden plans: one folder per case under tests/integration/apply/cases/, run against the real database.

A case folder holds `case.yaml` (setup, optional manifest, args, role, steps), `live.sql` (run as the
superuser after the setup to build the live state), and the exact expected plans `expected.txt` /
`expected.json` / `expected.md` (the time an apply was recorded reads `<applied_at>`).
Each case: reset the database, set up, run live.sql, compare `reconcile --dry-run` in both formats with the
expected files, then `--apply` with the same arguments and check that a new plan is empty; a case whose
plan has blocking findings instead checks that apply refuses in one line and changes nothing.

`UPDATE_GOLDEN=1 pytest tests/integration/apply/test_golden.py` rewrites the expected files (read them all
before keeping them). The helpers here are reused by test_no_leaks.py and test_cli.py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from localdb import create_app_tables
from reconciler.cli.main import main
from tests.fix_db import DbTarget

ROOT = Path(__file__).resolve().parents[3]
CASES_DIR = Path(__file__).resolve().parent / "cases"
CASE_NAMES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.yaml").is_file())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
#: When an apply was recorded (the drift section's title, JSON's last_applied): the one thing that varies.
APPLIED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
#: The throwaway cluster's port and socket directory, in the database a plan names: they vary per run.
CLUSTER_PORT = re.compile(r'(\(port |"port": )\d+')
SOCKET_DIRECTORY = re.compile(r'"host": "/[^"]*"')

#: Fixed, recognisable values for every secret source of scheduler.yaml.
SECRET_ENV = {
    "SUPABASE_URL": "https://golden.example.test",
    "SUPABASE_SERVICE_ROLE_KEY": "golden-service-role-key",
    "CRON_SECRET": "golden-cron-secret",
}
CASE_KEYS = {"setup", "manifest", "args", "role", "description", "steps"}
SETUPS = ("audited", "applied", "empty")


@dataclass(frozen=True)
class Case:
    name: str
    setup: str
    manifest: str | None = None  # relative to ROOT (the tests run from there)
    args: tuple[str, ...] = ()
    role: str = "postgres"
    #: Commands run after the setup and before live.sql (`reconcile down --apply`, a pruning apply);
    #: "{dir}" in an argument is the case folder, relative to ROOT.
    steps: tuple[tuple[str, ...], ...] = ()

    @property
    def dir(self) -> Path:
        return CASES_DIR / self.name

    @property
    def cli_args(self) -> list[str]:
        return (["-f", self.manifest] if self.manifest else []) + list(self.args)

    def url(self, target: DbTarget) -> str:
        return target.superuser_url if self.role == "superuser" else target.url


def load_case(name: str) -> Case:
    folder = CASES_DIR / name
    data = yaml.safe_load((folder / "case.yaml").read_text()) or {}
    unknown = set(data) - CASE_KEYS
    assert not unknown, f"{name}/case.yaml: unknown keys {sorted(unknown)}"
    assert data.get("setup") in SETUPS, f"{name}/case.yaml: setup must be one of {SETUPS}"
    assert data.get("role", "postgres") in ("postgres", "superuser"), f"{name}/case.yaml: bad role"
    manifest = data.get("manifest")
    if manifest is not None:
        assert (folder / manifest).is_file(), f"{name}: manifest {manifest} not found"
        manifest = str((folder / manifest).relative_to(ROOT))
    where = str(folder.relative_to(ROOT))
    steps = tuple(tuple(str(a).replace("{dir}", where) for a in step) for step in data.get("steps", ()))
    return Case(name, data["setup"], manifest, tuple(str(a) for a in data.get("args", ())),
                data.get("role", "postgres"), steps)


@dataclass
class Run:
    """One CliRunner invocation: what a user would see."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    logs: list[Mapping[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"reconcile {' '.join(self.args)} -> {self.exit_code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def invoke(args: Sequence[str], url: str | None, env: Mapping[str, str] | None = None) -> Run:
    """Run `reconcile ARGS` in-process with DATABASE_URL=url and the secret sources of `env`.

    A Python exception other than SystemExit is a bug in the CLI (it would print a traceback): re-raised.
    """
    full_env: dict[str, str | None] = {"DATABASE_URL": url, **(SECRET_ENV if env is None else env)}
    result = CliRunner().invoke(main, list(args), env=full_env, prog_name="reconcile")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(list(args), result.exit_code, result.stdout, result.stderr)


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifest paths in the output are relative to the repository root, so plans do not depend on it."""
    monkeypatch.chdir(ROOT)


def superuser_conn(target: DbTarget) -> psycopg.Connection[Any]:
    return psycopg.connect(target.superuser_url, autocommit=True)


def prepare(case: Case, target: DbTarget, env: Mapping[str, str] | None = None) -> Run | None:
    """Bring the reset (empty) database to the case's live state; returns the setup's apply, if any."""
    run = None
    if case.setup in ("audited", "applied"):
        with psycopg.connect(target.url, autocommit=True) as conn:
            create_app_tables(conn)
    if case.setup == "applied":
        run = invoke(["--apply"], case.url(target), env)
        assert run.exit_code == 0, f"setup apply failed:\n{run}"
    for step in case.steps:
        done = invoke(step, case.url(target), env)
        assert done.exit_code == 0, f"setup step failed:\n{done}"
    live_sql = (case.dir / "live.sql").read_text()
    if live_sql.strip():
        with superuser_conn(target) as conn:
            conn.execute(live_sql)  # type: ignore[arg-type]
    return run


_SNAPSHOT_TABLES = {
    "public.scheduled_jobs": "SELECT job_name, job_type, schedule, endpoint, description, is_active, id::text"
                             " FROM public.scheduled_jobs ORDER BY id",
    "vault.secrets": "SELECT id::text, name, description, secret, updated_at::text FROM vault.secrets ORDER BY id",
    "cron.job": "SELECT jobid, jobname, schedule, command, active, username FROM cron.job ORDER BY jobid",
    "reconciler.managed": "SELECT to_jsonb(m) FROM reconciler.managed m ORDER BY kind, key",
    "reconciler.history": "SELECT id FROM reconciler.history ORDER BY id",
}


def snapshot(target: DbTarget) -> dict[str, Any]:
    """Everything the reconciler could change, to prove a refused apply changed nothing."""
    with superuser_conn(target) as conn:
        out: dict[str, Any] = {
            "extensions": conn.execute("SELECT extname, extnamespace::regnamespace::text FROM pg_extension"
                                       " ORDER BY 1").fetchall(),
            "relations": conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1").fetchall(),
        }
        for relation, query in _SNAPSHOT_TABLES.items():
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
            out[relation] = conn.execute(query).fetchall() if exists and exists[0] else None
    return out


def expected_blocking(expected_json: Mapping[str, Any]) -> bool:
    return any(f["severity"] == "error" for f in expected_json["findings"])


@dataclass
class CaseRuns:
    """Everything one golden case printed, for the comparisons here and the leak checks."""

    setup: Run | None = None
    plans: dict[str, Run] = field(default_factory=dict)
    apply: Run | None = None
    after: Run | None = None

    def all(self) -> Iterator[Run]:
        if self.setup is not None:
            yield self.setup
        yield from self.plans.values()
        if self.apply is not None:
            yield self.apply
        if self.after is not None:
            yield self.after


def run_case(case: Case, target: DbTarget, env: Mapping[str, str] | None = None,
             formats: Sequence[str] = ("text", "json")) -> CaseRuns:
    """Set up, plan in each format, apply, re-plan. Asserts only what holds for any secret values."""
    runs = CaseRuns(setup=prepare(case, target, env))
    url = case.url(target)
    for fmt in formats:
        run = invoke(["--dry-run", "--format", fmt, *case.cli_args], url, env)
        assert run.exit_code == 0, str(run)
        runs.plans[fmt] = run
    blocking = expected_blocking(json.loads(runs.plans["json"].stdout)) if "json" in runs.plans else False
    before = snapshot(target) if blocking else None
    runs.apply = invoke(["--apply", *case.cli_args], url, env)
    if blocking:
        assert runs.apply.exit_code == 1, str(runs.apply)
        if "text" in runs.plans:  # the refused plan is shown, findings and fixes included
            assert runs.apply.stdout == runs.plans["text"].stdout, str(runs.apply)
        lines = runs.apply.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: refusing to apply: "), str(runs.apply)
        assert snapshot(target) == before, "a refused apply changed the database"
        return runs
    assert runs.apply.exit_code == 0, str(runs.apply)
    runs.after = invoke(["--dry-run", "--detailed-exitcode", "--format", "json", *case.cli_args], url, env)
    assert runs.after.exit_code == 0, f"plan not empty after apply:\n{runs.after}"
    if "json" in runs.plans:  # what was never ours is still there, untouched (also with --prune)
        assert _unmanaged(runs.after) == _unmanaged(runs.plans["json"]), str(runs.after)
    return runs


def _unmanaged(run: Run) -> list[tuple[str, str]]:
    return [(c["kind"], c["key"]) for c in json.loads(run.stdout)["changes"] if c["action"] == "unmanaged"]


def _compare(path: Path, actual: str) -> None:
    actual = APPLIED_AT.sub("<applied_at>", actual)
    actual = SOCKET_DIRECTORY.sub('"host": "<socket directory>"', CLUSTER_PORT.sub(r"\1<port>", actual))
    if UPDATE:
        path.write_text(actual)
        return
    assert path.is_file(), f"{path} missing: run with UPDATE_GOLDEN=1 and review the result"
    assert actual == path.read_text(), f"{path.relative_to(ROOT)} differs (UPDATE_GOLDEN=1 to regenerate)"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden(name: str, empty_db: DbTarget) -> None:
    case = load_case(name)
    runs = run_case(case, empty_db, formats=("text", "json", "markdown"))
    _compare(case.dir / "expected.txt", runs.plans["text"].stdout)
    _compare(case.dir / "expected.json", runs.plans["json"].stdout)
    _compare(case.dir / "expected.md", runs.plans["markdown"].stdout)
    for run in runs.all():
        assert "Traceback" not in run.stderr


# -- dedicated checks on particular starting points --------------------------------------------------


def _plan_json(case: Case, target: DbTarget, *extra: str) -> dict[str, Any]:
    run = invoke(["--dry-run", "--format", "json", *case.cli_args, *extra], case.url(target))
    assert run.exit_code == 0, str(run)
    return json.loads(run.stdout)


def test_audited_start_creates_the_whole_stack(audited_db: DbTarget) -> None:
    run = invoke(["--dry-run", "--format", "json", "--detailed-exitcode"], audited_db.url)
    assert run.exit_code == 2, str(run)
    plan = json.loads(run.stdout)
    creates: dict[str, int] = {}
    for change in plan["changes"]:
        assert change["action"] == "create", change
        creates[change["kind"]] = creates.get(change["kind"], 0) + 1
    assert creates == {"extension": 3, "secret": 3, "job": 13, "trigger": 1}
    assert plan["summary"]["create"] == 20 and not plan["empty"]
    assert plan["findings"] == []


def _alter_trigger(target: DbTarget, **assignments: str) -> None:
    setters = ", ".join(f"{k} := %({k})s" for k in assignments)
    with superuser_conn(target) as conn:
        conn.execute(f"SELECT cron.alter_job(jobid, {setters}) FROM cron.job WHERE jobname = 'master-scheduler'",
                     assignments)


def _trigger_command(target: DbTarget) -> str:
    with superuser_conn(target) as conn:
        row = conn.execute("SELECT command FROM cron.job WHERE jobname = 'master-scheduler'").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("rewrite", [
    pytest.param(lambda c: "\n\n   " + "\n".join("\t" + line + "   " for line in c.splitlines()) + "\n\n",
                 id="whitespace"),
    pytest.param(lambda c: "-- edited by hand\n" + c.replace(",\n", ", /* same */\n") + " -- trailing", id="comments"),
    pytest.param(lambda c: c.replace(":=", "=>").replace("SELECT", "select").replace("now()", "NOW()") + ";",
                 id="keyword-case-and-arrows"),
])
def test_trigger_command_formatting_is_not_drift(audited_db: DbTarget, rewrite: Any) -> None:
    case = Case("inline", "applied")
    prepare_applied(case, audited_db)
    original = _trigger_command(audited_db)
    edited = rewrite(original)
    assert edited != original
    _alter_trigger(audited_db, command=edited)
    assert _trigger_command(audited_db) == edited
    plan = _plan_json(case, audited_db, "-v")
    trigger = [c for c in plan["changes"] if c["kind"] == "trigger"]
    assert trigger == [{"kind": "trigger", "key": "master-scheduler", "action": "no-op", "reason": "", "fields": [],
                        "origin": None, "kept": False, "last_applied": None}]
    assert plan["empty"] is True
    run = invoke(["--dry-run", "--detailed-exitcode"], audited_db.url)
    assert run.exit_code == 0, str(run)


def test_trigger_schedule_edit_is_exactly_one_field_change(audited_db: DbTarget) -> None:
    case = Case("inline", "applied")
    prepare_applied(case, audited_db)
    _alter_trigger(audited_db, schedule="*/2 * * * *")
    plan = _plan_json(case, audited_db)
    (change,) = plan["changes"]
    assert change.pop("last_applied")["history_id"] == 1
    assert change == {
        "kind": "trigger", "key": "master-scheduler", "action": "update",
        "reason": "changed outside git since apply #1: schedule", "origin": "drift", "kept": False,
        "fields": [{"path": "schedule", "old": "*/2 * * * *", "new": "* * * * *", "sensitive": False,
                    "origin": "drift"}],
    }
    assert {a: n for a, n in plan["summary"].items() if n and a != "no-op"} == {"update": 1}


def test_job_schedule_edit_is_exactly_one_field_change(audited_db: DbTarget) -> None:
    case = Case("inline", "applied")
    prepare_applied(case, audited_db)
    with superuser_conn(audited_db) as conn:
        conn.execute("UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = 'ttl_cleanup'")
    plan = _plan_json(case, audited_db)
    (change,) = plan["changes"]
    assert change.pop("last_applied")["history_id"] == 1
    assert change == {
        "kind": "job", "key": "ttl_cleanup", "action": "update", "reason": "changed outside git since apply #1: schedule",
        "origin": "drift", "kept": False,
        "fields": [{"path": "schedule", "old": "*/7 * * * *", "new": "0 3 * * *", "sensitive": False,
                    "origin": "drift"}],
    }


def prepare_applied(case: Case, target: DbTarget) -> None:
    """`applied` setup without a case folder (no live.sql)."""
    with psycopg.connect(target.url, autocommit=True) as conn:
        create_app_tables(conn)
    run = invoke(["--apply"], case.url(target))
    assert run.exit_code == 0, str(run)
